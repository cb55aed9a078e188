/**
 * Ten thousand random ledger operations (credits, tasks submitted with escrow, tasks ended
 * and settled, withdrawals) in a process that is SIGKILLed at random moments and restarted
 * where it stopped. After every crash and at the end: balances plus escrow equal what came
 * in minus what went out, no balance is negative, and escrow holds exactly the rewards of
 * the tasks not yet settled.
 */

import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatAmount } from '../../src/domain/amount.js';
import { SYSTEM_ACCOUNTS } from '../../src/store/ledger-store.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { tempDir } from '../helpers/node.js';

const WORKER = path.resolve('test/fixtures/ledger-crash-worker.mjs');
const TOTAL = 10_000;

/** Runs operations from `from`; kills the worker after `killAfterMs` (if given). Returns the next operation to run. */
function run(db: string, from: number, killAfterMs?: number): Promise<{ next: number; killed: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WORKER, db, String(from), String(TOTAL)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let last = from - 1;
    let buffered = '';
    let errors = '';
    child.stdout.on('data', (d: Buffer) => {
      buffered += d.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) if (line) last = Number(line);
    });
    child.stderr.on('data', (d: Buffer) => (errors += d.toString()));
    const timer = killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL') return resolve({ next: last + 1, killed: true });
      if (code !== 0) return reject(new Error(`worker exited ${code}: ${errors}`));
      resolve({ next: last + 1, killed: false });
    });
  });
}

async function checkInvariant(db: string): Promise<{ held: bigint; escrow: bigint }> {
  const store = new SqliteStore(db);
  try {
    const totals = await store.ledger.totals();
    expect(totals.held, 'balances + escrow = deposits − withdrawals').toBe(totals.netInflow);
    expect(totals.world).toBe(-totals.held);
    for (const id of ['u0', 'u1', 'u2', 'u3', 'u4', SYSTEM_ACCOUNTS.escrow, SYSTEM_ACCOUNTS.fees]) {
      const account = await store.ledger.account(id);
      if (account) expect(account.balance >= 0n, `${id} at ${formatAmount(account.balance)}`).toBe(true);
    }
    return { held: totals.held, escrow: (await store.ledger.account(SYSTEM_ACCOUNTS.escrow))!.balance };
  } finally {
    await store.close();
  }
}

describe('ledger under crashes', () => {
  it('10,000 random operations with SIGKILLs injected keep every balance exact', { timeout: 240_000 }, async () => {
    const db = path.join(tempDir('gridx-ledger-crash-'), 'gridx.db');
    let next = 0;
    let kills = 0;
    let runs = 0;
    let seed = 1;
    while (next < TOTAL) {
      seed = (seed * 48271) % 2147483647;
      const outcome = await run(db, next, kills < 25 ? 120 + (seed % 250) : undefined);
      runs++;
      if (outcome.killed) kills++;
      next = outcome.next;
      await checkInvariant(db);
    }
    console.log(`ledger crash test: ${kills} SIGKILLs, ${runs} runs`);
    expect(kills).toBeGreaterThanOrEqual(5);

    // Settled tasks took their escrow out exactly once: what is left is the unsettled tasks' rewards.
    const store = new SqliteStore(db);
    try {
      const { escrow } = await checkInvariant(db);
      let open = 0n;
      for (const status of ['pending', 'scheduled', 'running'] as const) {
        for (const job of await store.withStatus([status])) {
          const entries = await store.ledger.entries({ jobId: job.id });
          open += entries.filter((e) => e.kind === 'escrow').reduce((sum, e) => sum + e.amount, 0n);
        }
      }
      expect(escrow).toBe(open);
      const settled = (await store.ledger.entries({ accountId: SYSTEM_ACCOUNTS.escrow, limit: 1000 })).filter((e) => e.kind === 'payout' || e.kind === 'refund');
      expect(settled.length).toBeGreaterThan(100);
    } finally {
      await store.close();
    }
  });
});
