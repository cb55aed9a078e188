/**
 * The ledger on SQLite. Balances are decimal integer text (they outgrow 64-bit integers), so
 * the arithmetic is done in BigInt inside one IMMEDIATE transaction: the write lock is
 * held from the balance read to the journal insert, across processes sharing the file.
 */

import type Database from 'better-sqlite3';
import { GridxError } from '../../errors.js';
import {
  type Account,
  type EntryQuery,
  fenced,
  type LedgerEntry,
  type LedgerStore,
  type LedgerTotals,
  type NewAccount,
  type PostOptions,
  SYSTEM_ACCOUNTS,
  type Transfer,
  type Withdrawal,
} from '../ledger-store.js';
import {
  type AccountRow,
  ENTRY_COLUMNS,
  type EntryRow,
  COUNTS_SQL,
  NET_INFLOW_SQL,
  WITHDRAWAL_COLUMNS,
  type WithdrawalRow,
  entryValues,
  toAccount,
  toEntry,
  countsOf,
  toWithdrawal,
} from '../ledger-rows.js';
import { inflowOf, insufficientFunds } from '../ledger-checks.js';

export class SqliteLedger implements LedgerStore {
  constructor(
    private readonly db: Database.Database,
    private readonly stmt: (sql: string) => Database.Statement,
  ) {}

  async createAccount(a: NewAccount): Promise<Account> {
    try {
      this.stmt('INSERT INTO accounts (id, kind, name, key_hash, peer_id, created_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(a.id, a.kind, a.name, a.keyHash ?? null, a.peerId ?? null, new Date().toISOString());
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE' || (err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
        throw new GridxError('CONFLICT', `account ${a.id} (or its key or peer id) exists already`);
      }
      throw err;
    }
    return (await this.account(a.id))!;
  }

  async account(id: string): Promise<Account | undefined> {
    return this.one('SELECT * FROM accounts WHERE id = ?', id);
  }

  async listAccounts(limit: number): Promise<Account[]> {
    return (this.stmt('SELECT * FROM accounts ORDER BY created_at, id LIMIT ?').all(limit) as AccountRow[]).map(toAccount);
  }

  async accountByKey(keyHash: string): Promise<Account | undefined> {
    return this.one('SELECT * FROM accounts WHERE key_hash = ?', keyHash);
  }

  async accountByPeer(peerId: string): Promise<Account | undefined> {
    return this.one('SELECT * FROM accounts WHERE peer_id = ?', peerId);
  }

  async accountByAddress(address: string): Promise<Account | undefined> {
    return this.one('SELECT * FROM accounts WHERE address = ?', address.toLowerCase());
  }

  async bindAddress(accountId: string, address: string): Promise<void> {
    const holder = await this.accountByAddress(address);
    if (holder && holder.id !== accountId) throw new GridxError('CONFLICT', `address ${address} is bound to another account`);
    this.stmt('UPDATE accounts SET address = ? WHERE id = ?').run(address.toLowerCase(), accountId);
  }

  async post(transfers: readonly Transfer[], options: PostOptions = {}): Promise<LedgerEntry[]> {
    return this.db.transaction(() => this.postInTransaction(transfers, options)).immediate();
  }

  /** The body of post, for callers that already hold a transaction (a job insert with its escrow). */
  postInTransaction(transfers: readonly Transfer[], options: PostOptions = {}): LedgerEntry[] {
    if (options.fence) {
      const held = this.stmt('SELECT 1 FROM duties WHERE name = ? AND token = ? AND expires_at > ?').get(options.fence.duty, options.fence.token, Date.now());
      if (!held) throw fenced(options.fence);
    }
    const posted: LedgerEntry[] = [];
    const at = new Date().toISOString();
    for (const t of transfers) {
      if (t.amount <= 0n) throw new Error(`bug: transfer ${t.id} moves ${t.amount}; amounts are positive`);
      if (this.stmt('SELECT 1 FROM ledger WHERE id = ?').get(t.id)) continue;
      const from = this.balanceOf(t.from);
      if (from < t.amount && t.from !== SYSTEM_ACCOUNTS.world) throw insufficientFunds(t.from, from, t.amount);
      // Escrow is held per task (as on PostgreSQL): a transfer out may not take its task's below zero.
      if (t.from === SYSTEM_ACCOUNTS.escrow) {
        const held = this.escrowOf(t.jobId);
        if (held < t.amount) throw insufficientFunds(SYSTEM_ACCOUNTS.escrow, held, t.amount);
      }
      this.setBalance(t.from, from - t.amount);
      this.setBalance(t.to, this.balanceOf(t.to) + t.amount);
      const result = this.stmt(`INSERT INTO ledger (${ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(...entryValues(t, at));
      posted.push({ ...t, seq: Number(result.lastInsertRowid), at });
    }
    if (options.settleJob) this.stmt('UPDATE jobs SET settled_at = ? WHERE id = ? AND settled_at IS NULL').run(at, options.settleJob);
    if (options.cursor) {
      this.stmt('INSERT INTO chain_cursors (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value')
        .run(options.cursor.name, options.cursor.value);
    }
    if (options.withdrawal) {
      const w = options.withdrawal;
      this.stmt(`INSERT INTO withdrawals (${WITHDRAWAL_COLUMNS}) VALUES (?, ?, ?, ?, ?, NULL, NULL, NULL, NULL, ?, ?)`)
        .run(w.id, w.accountId, w.address, w.amount.toString(), w.status, w.createdAt, w.updatedAt);
    }
    if (options.withdrawalUpdate) {
      const { id, expect, patch } = options.withdrawalUpdate;
      const changed = this.stmt(
          `UPDATE withdrawals SET status = ?, tx_hash = COALESCE(?, tx_hash), nonce = COALESCE(?, nonce),
             raw_tx = COALESCE(?, raw_tx), error = COALESCE(?, error), updated_at = ?
           WHERE id = ? AND status IN (${expect.map(() => '?').join(',')})`,
        )
        .run(patch.status, patch.txHash ?? null, patch.nonce ?? null, patch.rawTx ?? null, patch.error ?? null, at, id, ...expect).changes;
      if (changed === 0) throw new GridxError('CONFLICT', `withdrawal ${id} is no longer ${expect.join('/')}`);
    }
    return posted;
  }

  /** What task `jobId` holds in escrow (the entries without a task: one bucket of their own). */
  private escrowOf(jobId: string | undefined): bigint {
    const escrow = `(credit = '${SYSTEM_ACCOUNTS.escrow}' OR debit = '${SYSTEM_ACCOUNTS.escrow}')`;
    const rows = (
      jobId === undefined
        ? this.stmt(`SELECT credit, debit, amount FROM ledger WHERE job_id IS NULL AND ${escrow}`).all()
        : this.stmt(`SELECT credit, debit, amount FROM ledger WHERE job_id = ? AND ${escrow}`).all(jobId)
    ) as Array<{ credit: string; debit: string; amount: string }>;
    const { escrow: e } = SYSTEM_ACCOUNTS;
    return rows.reduce((sum, r) => sum + (r.credit === e ? BigInt(r.amount) : 0n) - (r.debit === e ? BigInt(r.amount) : 0n), 0n);
  }

  private balanceOf(id: string): bigint {
    const row = this.stmt('SELECT balance FROM accounts WHERE id = ?').get(id) as { balance: string } | undefined;
    if (!row) throw new GridxError('NOT_FOUND', `no account ${id}`);
    return BigInt(row.balance);
  }

  private setBalance(id: string, balance: bigint): void {
    this.stmt('UPDATE accounts SET balance = ? WHERE id = ?').run(balance.toString(), id);
  }

  async entries(query: EntryQuery): Promise<LedgerEntry[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (query.accountId !== undefined) {
      where.push('(debit = ? OR credit = ?)');
      params.push(query.accountId, query.accountId);
    }
    if (query.jobId !== undefined) {
      where.push('job_id = ?');
      params.push(query.jobId);
    }
    if (query.before !== undefined) {
      where.push('seq < ?');
      params.push(query.before);
    }
    const rows = this.stmt(`SELECT * FROM ledger ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?`)
      .all(...params, Math.min(Math.max(query.limit ?? 100, 1), 1000)) as EntryRow[];
    return rows.map(toEntry);
  }

  async totals(): Promise<LedgerTotals> {
    const rows = this.stmt('SELECT id, balance FROM accounts').all() as Array<{ id: string; balance: string }>;
    let held = 0n;
    let world = 0n;
    for (const r of rows) {
      if (r.id === SYSTEM_ACCOUNTS.world) world = BigInt(r.balance);
      else held += BigInt(r.balance);
    }
    return { held, world, netInflow: inflowOf(this.stmt(NET_INFLOW_SQL).all() as Array<{ debit: string; amount: string }>) };
  }

  async counts(): Promise<{ entries: Record<string, number>; withdrawals: Record<string, number> }> {
    return countsOf(this.stmt(COUNTS_SQL).all() as Array<{ what: string; key: string; n: number }>);
  }

  async unsettledJobs(limit: number): Promise<string[]> {
    const rows = this.stmt(
        `SELECT id FROM jobs WHERE owner IS NOT NULL AND settled_at IS NULL
         AND status IN ('completed', 'failed', 'timed_out', 'cancelled') ORDER BY seq LIMIT ?`,
      )
      .all(limit) as Array<{ id: string }>;
    return rows.map((r) => r.id);
  }

  async chainCursor(name: string): Promise<string | undefined> {
    return (this.stmt('SELECT value FROM chain_cursors WHERE name = ?').get(name) as { value: string } | undefined)?.value;
  }

  async withdrawal(id: string): Promise<Withdrawal | undefined> {
    const row = this.stmt('SELECT * FROM withdrawals WHERE id = ?').get(id) as WithdrawalRow | undefined;
    return row && toWithdrawal(row);
  }

  async openWithdrawals(): Promise<Withdrawal[]> {
    const rows = this.stmt("SELECT * FROM withdrawals WHERE status IN ('requested', 'signed') ORDER BY created_at").all() as WithdrawalRow[];
    return rows.map(toWithdrawal);
  }

  async withdrawals(accountId: string, limit: number): Promise<Withdrawal[]> {
    const rows = this.stmt('SELECT * FROM withdrawals WHERE account_id = ? ORDER BY created_at DESC LIMIT ?').all(accountId, limit) as WithdrawalRow[];
    return rows.map(toWithdrawal);
  }

  private one(sql: string, ...params: unknown[]): Account | undefined {
    const row = this.stmt(sql).get(...params) as AccountRow | undefined;
    return row && toAccount(row);
  }
}
