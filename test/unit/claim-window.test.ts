import { describe, expect, it } from 'vitest';
import { claimWindow } from '../../src/scheduler/leases.js';

describe('claimWindow', () => {
  const room = (owners: Record<string, number>, others = 256, anonymous = 64) => ({ owners: new Map(Object.entries(owners)), others, anonymous });

  it('is the batch itself when no owner\'s cap can pass over a job of it', () => {
    expect(claimWindow(8, undefined)).toBe(8);
    expect(claimWindow(8, room({ a: 100 }))).toBe(8);
    // An owner with no room at all is left out of the read, not passed over in it.
    expect(claimWindow(8, room({ a: 0 }, 256, 0))).toBe(8);
  });

  it('is a few times the batch when some owner has room for fewer jobs than the batch', () => {
    expect(claimWindow(8, room({ a: 3 }))).toBe(32);
    expect(claimWindow(8, room({}, 2))).toBe(32);
    expect(claimWindow(8, room({}, 256, 5))).toBe(32);
    expect(claimWindow(1000, room({ a: 3 }))).toBe(256);
  });
});
