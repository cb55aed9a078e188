import { describe, expect, it } from 'vitest';
import { formatDuration, formatSize, parseCpus, parseDuration, parseSize } from '../../src/domain/units.js';

describe('parseSize', () => {
  it.each([
    ['512m', 512 * 1024 ** 2],
    ['1g', 1024 ** 3],
    ['1.5GiB', 1.5 * 1024 ** 3],
    ['64k', 64 * 1024],
    ['100', 100],
    [2048, 2048],
  ])('%s → %d bytes', (input, bytes) => expect(parseSize(input)).toBe(bytes));

  it.each(['', 'abc', '-1m', '12q', '1e400g', -5, 1.5])('rejects %s', (input) => expect(parseSize(input)).toBeUndefined());

  it('formats back to the shortest exact unit', () => {
    expect(formatSize(512 * 1024 ** 2)).toBe('512m');
    expect(formatSize(1024 ** 3)).toBe('1g');
    expect(formatSize(1536 * 1024)).toBe('1536k');
    expect(formatSize(1000)).toBe('1000b');
  });
});

describe('parseDuration', () => {
  it.each([
    ['5m', 300_000],
    ['90s', 90_000],
    ['1h30m', 5_400_000],
    ['250ms', 250],
    ['300', 300_000],
    [2, 2000],
    [0.5, 500],
  ])('%s → %d ms', (input, ms) => expect(parseDuration(input)).toBe(ms));

  it.each(['', 'soon', '5 minutes', '5mx', '-1s', -3, Number.NaN])('rejects %s', (input) =>
    expect(parseDuration(input)).toBeUndefined(),
  );

  it('formats', () => {
    expect(formatDuration(300_000)).toBe('5m');
    expect(formatDuration(2000)).toBe('2s');
    expect(formatDuration(1500)).toBe('1500ms');
  });
});

describe('parseCpus', () => {
  it('accepts positive numbers and numeric strings', () => {
    expect(parseCpus(0.5)).toBe(0.5);
    expect(parseCpus('2')).toBe(2);
  });
  it.each([0, -1, '', 'two', Number.POSITIVE_INFINITY])('rejects %s', (input) => expect(parseCpus(input)).toBeUndefined());
});
