import { describe, expect, it } from 'vitest';
import { parseAmount } from '../../src/domain/amount.js';
import { normalizeTask } from '../../src/domain/task.js';
import { normalizeVerification } from '../../src/domain/verification.js';
import { GridxError, QUOTE_MAX, invalid, quote } from '../../src/errors.js';
import { POLICY } from '../helpers/fixtures.js';

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GridxError);
    return (err as GridxError).message;
  }
  throw new Error('expected an error');
}

describe('quote', () => {
  it('shows strings and objects as JSON, other values as written', () => {
    expect(quote('a "b"\n')).toBe('"a \\"b\\"\\n"');
    expect(quote({ a: [1] })).toBe('{"a":[1]}');
    expect(quote(12.5)).toBe('12.5');
    expect(quote(NaN)).toBe('NaN');
    expect(quote(undefined)).toBe('undefined');
    expect(quote(null)).toBe('null');
    expect(quote(10n)).toBe('10');
  });

  it('clips to 200 characters with an ellipsis', () => {
    expect(QUOTE_MAX).toBe(200);
    const shown = quote('x'.repeat(100_000));
    expect(shown).toBe(`"${'x'.repeat(199)}…`);
    expect(quote('x'.repeat(198))).toBe(`"${'x'.repeat(198)}"`);
    expect(quote('abcdef', 3)).toBe('"ab…');
    expect(quote(Array.from({ length: 50_000 }, (_, i) => i)).length).toBe(201);
  });

  it('never cuts a surrogate pair in half', () => {
    const shown = quote(`${'x'.repeat(198)}😀😀`);
    expect(shown).toBe(`"${'x'.repeat(198)}…`);
    expect(shown).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/); // no lone high surrogate
  });

  it('shows what JSON cannot hold without throwing', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(quote(cyclic)).toBe('[object Object]');
    expect(quote({ n: 1n })).toBe('[object Object]');
  });

  it("clips the field of invalid(), which may hold a caller's keys", () => {
    expect(invalid(`env.${'K'.repeat(100_000)}`, 'is bad').message.length).toBeLessThan(220);
  });
});

describe('validation messages quote at most 200 characters of the input', () => {
  const huge = '9'.repeat(50_000);
  it.each([
    ['a reward', () => parseAmount(`${huge}x`, 'reward')],
    ['a negative reward', () => parseAmount(`-${huge}`, 'reward')],
    ['a reward with too many decimals', () => parseAmount(`1.${huge}`, 'reward')],
    ['a reward too large', () => parseAmount(huge, 'reward')],
    ['verification.replicas', () => normalizeVerification({ replicas: huge })],
    ['an unknown verification key', () => normalizeVerification({ [huge]: 1 })],
    ['a task type', () => normalizeTask({ title: 't', type: huge }, POLICY)],
    ['a task environment type', () => normalizeTask({ title: 't', config: {}, environment: { type: huge } }, POLICY)],
    ['an unknown resources key', () => normalizeTask({ title: 't', config: { resources: { [huge]: 1 } }, environment: { config: {} } }, POLICY)],
  ])('%s', (_, fn) => {
    const message = messageOf(fn);
    expect(message.length).toBeLessThan(400);
    expect(message).toContain('999');
  });
});
