import { describe, expect, it } from 'vitest';
import { CappedOutput } from '../../src/executor/output.js';

describe('CappedOutput', () => {
  it('keeps everything under the cap', () => {
    const out = new CappedOutput(100);
    expect(out.push(Buffer.from('hello '))).toBe('hello ');
    out.push(Buffer.from('world'));
    expect(out.text()).toBe('hello world');
    expect(out.truncated).toBe(false);
  });

  it('drops and flags what passes the cap, counting all bytes', () => {
    const out = new CappedOutput(10);
    expect(out.push(Buffer.from('0123456789abc'))).toBe('0123456789');
    expect(out.push(Buffer.from('more'))).toBe('');
    expect(out.text()).toBe('0123456789');
    expect(out.truncated).toBe(true);
    expect(out.totalBytes).toBe(17);
  });

  it('does not split a multi-byte character across live chunks', () => {
    const out = new CappedOutput(100);
    const euro = Buffer.from('€');
    expect(out.push(euro.subarray(0, 1))).toBe('');
    expect(out.push(euro.subarray(1))).toBe('€');
  });
});
