import { describe, expect, it } from 'vitest';
import { type Chunk, keepNewest } from '../../src/web/log.js';

const chunk = (n: number, i: number): Chunk => ({ stream: 'stdout', text: String(i % 10).repeat(n) });

describe("the dashboard's live log", () => {
  it('keeps the newest chunks within the limit however long the job prints', () => {
    let log: Chunk[] = [];
    for (let i = 0; i < 3000; i++) {
      log = keepNewest([...log, chunk(1000, i)], 100_000);
      const size = log.reduce((sum, c) => sum + c.text.length, 0);
      expect(size).toBeLessThanOrEqual(100_000);
      if (i >= 100) expect(size).toBe(100_000);
    }
    expect(log.at(-1)!.text[0]).toBe('9');
  });

  it('keeps one chunk larger than the limit rather than nothing', () => {
    expect(keepNewest([chunk(10, 1), chunk(500, 2)], 100)).toEqual([chunk(500, 2)]);
  });
});
