import { describe, expect, it } from 'vitest';
import { MAX_AMOUNT, formatAmount, parseAmount, share } from '../../src/domain/amount.js';
import { digestOf, manifestOf } from '../../src/domain/data.js';
import type { Job } from '../../src/domain/job.js';
import { majorityOf } from '../../src/domain/verification.js';
import { GridxError } from '../../src/errors.js';
import { loadConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/logger.js';
import { GridxNode } from '../../src/node/node.js';
import { tempDir } from '../helpers/node.js';

describe('credit amounts', () => {
  it('reads decimals exactly into base units and writes them back', () => {
    expect(parseAmount('1', 'a')).toBe(10n ** 18n);
    expect(parseAmount(0.1, 'a')).toBe(10n ** 17n);
    expect(parseAmount('0.000000000000000001', 'a')).toBe(1n);
    expect(parseAmount('12.50', 'a')).toBe(125n * 10n ** 17n);
    expect(parseAmount('0', 'a', { allowZero: true })).toBe(0n);
    expect(formatAmount(125n * 10n ** 17n)).toBe('12.5');
    expect(formatAmount(-1n)).toBe('-0.000000000000000001');
    expect(formatAmount(MAX_AMOUNT)).toBe(`${'9'.repeat(30)}.${'9'.repeat(18)}`);
    expect(share(1000n, 250)).toBe(25n);
    expect(share(39n, 250)).toBe(0n); // fees round down
  });

  it.each([
    [-1, 'must not be negative'],
    ['-0.0', 'must not be negative'],
    [0, 'must be more than 0'],
    ['0.0000000000000000001', 'more than 18 decimals'],
    ['1e18', 'must be a decimal number'],
    ['0x10', 'must be a decimal number'],
    [' ', 'must be a decimal number'],
    ['1'.repeat(31), 'is too large'],
    [1e21, 'too large to send as a JSON number'],
    [Number.NaN, 'must be a finite number'],
    [Infinity, 'must be a finite number'],
    [true, 'must be a number or a decimal string'],
  ])('refuses %j', (raw, message) => {
    expect(() => parseAmount(raw, 'amount')).toThrow(GridxError);
    expect(() => parseAmount(raw, 'amount')).toThrow(message);
  });
});

describe('majority of replicas', () => {
  const replica = (stdout: string, status: Job['status'] = 'completed', exitCode: number | undefined = 0) =>
    ({ status, exitCode, stdout, stderr: '', reason: status === 'failed' ? 'exit_code' : undefined }) as Job;

  it('needs more than half of all replicas to agree on exit code and output', () => {
    expect(majorityOf([replica('a'), replica('a'), replica('b')])?.winners).toHaveLength(2);
    expect(majorityOf([replica('a'), replica('b')])).toBeUndefined();
    expect(majorityOf([replica('a'), replica('a', 'failed', 1), replica('a')])?.winners).toHaveLength(2);
    // A replica that never produced a result does not vote, but still counts in the total.
    expect(majorityOf([replica('a'), { status: 'failed', reason: 'lease_expired', stdout: '', stderr: '' } as Job])).toBeUndefined();
    expect(majorityOf([replica('x', 'failed', 3), replica('x', 'failed', 3), replica('y')])?.winners[0]?.exitCode).toBe(3);
  });

  it('counts the files under /outputs: replicas that print alike but wrote different files disagree', () => {
    const wrote = (content: string) => ({ ...replica('same'), outputs: manifestOf([{ path: 'out', size: content.length, sha256: digestOf(content) }], false) }) as Job;
    expect(majorityOf([wrote('honest'), wrote('forged'), wrote('honest')])?.winners).toHaveLength(2);
    expect(majorityOf([wrote('honest'), wrote('forged')])).toBeUndefined();
    // No files at all is the same as a worker that collects none.
    expect(majorityOf([replica('a'), { ...replica('a'), outputs: manifestOf([], false) } as Job])?.winners).toHaveLength(2);
  });
});

describe('an open API', () => {
  it('refuses to listen open on a non-loopback address', async () => {
    const config = loadConfig({ flags: { host: '0.0.0.0', dataDir: tempDir(), meshEnabled: false, apiPort: 0 } });
    const node = new GridxNode({ config, log: silentLogger, detectGpus: false });
    await expect(node.start()).rejects.toThrow(/an open API \(api.auth: open\) on 0.0.0.0 would let anyone/);
  });
});
