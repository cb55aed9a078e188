/**
 * The ledger on PostgreSQL: balances are NUMERIC(78,0) and every posting is one
 * transaction. The journal insert comes first (ON CONFLICT DO NOTHING), so a concurrent
 * duplicate waits on the unique id and then does nothing; a debit is a conditional UPDATE
 * that cannot take a balance below zero.
 */

import type pg from 'pg';
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
  type EntryRow,
  COUNTS_SQL,
  NET_INFLOW_SQL,
  WITHDRAWAL_COLUMNS,
  type WithdrawalRow,
  toAccount,
  toEntry,
  countsOf,
  toWithdrawal,
} from '../ledger-rows.js';
import { inflowOf, insufficientFunds } from '../ledger-checks.js';

/** Serialization failures and deadlocks: the transaction is retried from the start. */
const RETRYABLE = new Set(['40001', '40P01']);
/** A transfer as gridx_post reads it (amounts as decimal strings). */
export function transferWire(t: Transfer): Record<string, unknown> {
  if (t.amount <= 0n) throw new Error(`bug: transfer ${t.id} moves ${t.amount}; amounts are positive`);
  return { ...t, amount: t.amount.toString() };
}

/** An account's balance as text; escrow's is derived from the journal, where it is kept per task (see the migrations). */
const BALANCE = `(CASE WHEN id = '${SYSTEM_ACCOUNTS.escrow}' THEN gridx_escrow_held() ELSE balance END)::text`;

export class PostgresLedger implements LedgerStore {
  constructor(private readonly pool: pg.Pool) {}

  async createAccount(a: NewAccount): Promise<Account> {
    try {
      const { rows } = await this.pool.query<AccountRow>(
        'INSERT INTO accounts (id, kind, name, key_hash, peer_id, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *, balance::text AS balance',
        [a.id, a.kind, a.name, a.keyHash ?? null, a.peerId ?? null, new Date().toISOString()],
      );
      return toAccount(rows[0]!);
    } catch (err) {
      if ((err as { code?: string }).code === '23505') throw new GridxError('CONFLICT', `account ${a.id} (or its key or peer id) exists already`);
      throw err;
    }
  }

  account(id: string): Promise<Account | undefined> {
    return this.one('id', id);
  }

  async listAccounts(limit: number): Promise<Account[]> {
    const { rows } = await this.pool.query<AccountRow>(`SELECT *, ${BALANCE} AS balance FROM accounts ORDER BY created_at, id LIMIT $1`, [limit]);
    return rows.map(toAccount);
  }

  accountByKey(keyHash: string): Promise<Account | undefined> {
    return this.one('key_hash', keyHash);
  }

  accountByPeer(peerId: string): Promise<Account | undefined> {
    return this.one('peer_id', peerId);
  }

  accountByAddress(address: string): Promise<Account | undefined> {
    return this.one('address', address.toLowerCase());
  }

  async bindAddress(accountId: string, address: string): Promise<void> {
    try {
      await this.pool.query('UPDATE accounts SET address = $1 WHERE id = $2', [address.toLowerCase(), accountId]);
    } catch (err) {
      if ((err as { code?: string }).code === '23505') throw new GridxError('CONFLICT', `address ${address} is bound to another account`);
      throw err;
    }
  }

  async post(transfers: readonly Transfer[], options: PostOptions = {}): Promise<LedgerEntry[]> {
    const onlyTransfers = !options.cursor && !options.withdrawal && !options.withdrawalUpdate && !options.fence;
    for (let attempt = 1; ; attempt++) {
      try {
        // The common case (escrow, payouts, refunds, credits) is one statement in its own transaction.
        if (onlyTransfers) return await this.postIn(this.pool, transfers, options.settleJob);
        return await this.inTransaction((client) => this.postWith(client, transfers, options));
      } catch (err) {
        if (attempt < 5 && RETRYABLE.has((err as { code?: string }).code ?? '')) continue;
        throw err;
      }
    }
  }

  private async inTransaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  /** Journals and applies the transfers with one call of gridx_post (PG migration 5). */
  private async postIn(db: pg.Pool | pg.PoolClient, transfers: readonly Transfer[], settleJob?: string): Promise<LedgerEntry[]> {
    if (transfers.length === 0 && settleJob === undefined) return [];
    const at = new Date().toISOString();
    const { rows } = await this.errorsOf(() =>
      db.query<{ posted_id: string; posted_seq: string }>('SELECT * FROM gridx_post($1::jsonb, $2, $3)', [
        JSON.stringify(transfers.map(transferWire)),
        settleJob ?? null,
        at,
      ]),
    );
    const seqs = new Map(rows.map((r) => [r.posted_id, Number(r.posted_seq)]));
    return transfers.filter((t) => seqs.has(t.id)).map((t) => ({ ...t, seq: seqs.get(t.id)!, at }));
  }

  /** Runs a statement that calls gridx_post, its refusals turned into the ledger's errors. */
  async errorsOf<T>(statement: () => Promise<T>): Promise<T> {
    try {
      return await statement();
    } catch (err) {
      const { code, message, detail, hint } = err as { code?: string; message?: string; detail?: string; hint?: string };
      if (code === 'P0404') throw new GridxError('NOT_FOUND', `no account ${message}`);
      if (code === 'P0402') throw insufficientFunds(message ?? '?', BigInt(detail ?? '0'), BigInt(hint ?? '0'));
      throw err;
    }
  }

  /** The body of post on a client inside a transaction the caller owns (a job insert with its escrow). */
  async postWith(client: pg.PoolClient, transfers: readonly Transfer[], options: PostOptions = {}): Promise<LedgerEntry[]> {
    if (options.fence) {
      // FOR SHARE: a takeover (which updates the row) waits for this write to commit, so
      // nothing the old holder writes lands after the new holder has begun.
      const { rowCount } = await client.query(
        'SELECT 1 FROM duties WHERE name = $1 AND token = $2 AND expires_at > gridx_now_ms() FOR SHARE',
        [options.fence.duty, options.fence.token],
      );
      if (!rowCount) throw fenced(options.fence);
    }
    const posted = await this.postIn(client, transfers, options.settleJob);
    const at = new Date().toISOString();
    if (options.cursor) {
      await client.query(
        'INSERT INTO chain_cursors (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value',
        [options.cursor.name, options.cursor.value],
      );
    }
    if (options.withdrawal) {
      const w = options.withdrawal;
      await client.query(
        `INSERT INTO withdrawals (${WITHDRAWAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, NULL, NULL, NULL, NULL, $6, $7)`,
        [w.id, w.accountId, w.address, w.amount.toString(), w.status, w.createdAt, w.updatedAt],
      );
    }
    if (options.withdrawalUpdate) {
      const { id, expect, patch } = options.withdrawalUpdate;
      const changed = await client.query(
        `UPDATE withdrawals SET status = $1, tx_hash = COALESCE($2, tx_hash), nonce = COALESCE($3, nonce),
           raw_tx = COALESCE($4, raw_tx), error = COALESCE($5, error), updated_at = $6
         WHERE id = $7 AND status = ANY($8)`,
        [patch.status, patch.txHash ?? null, patch.nonce ?? null, patch.rawTx ?? null, patch.error ?? null, at, id, expect],
      );
      if (changed.rowCount === 0) throw new GridxError('CONFLICT', `withdrawal ${id} is no longer ${expect.join('/')}`);
    }
    return posted;
  }

  async entries(query: EntryQuery): Promise<LedgerEntry[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (query.accountId !== undefined) {
      params.push(query.accountId);
      where.push(`(debit = $${params.length} OR credit = $${params.length})`);
    }
    if (query.jobId !== undefined) {
      params.push(query.jobId);
      where.push(`job_id = $${params.length}`);
    }
    if (query.before !== undefined) {
      params.push(query.before);
      where.push(`seq < $${params.length}`);
    }
    params.push(Math.min(Math.max(query.limit ?? 100, 1), 1000));
    const { rows } = await this.pool.query<EntryRow>(
      `SELECT *, amount::text AS amount FROM ledger ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT $${params.length}`,
      params,
    );
    return rows.map(toEntry);
  }

  async totals(): Promise<LedgerTotals> {
    const { rows } = await this.pool.query<{ held: string; world: string }>(
      `SELECT (COALESCE(SUM(balance) FILTER (WHERE id <> $1), 0) + gridx_escrow_held())::text AS held,
              COALESCE(SUM(balance) FILTER (WHERE id = $1), 0)::text AS world FROM accounts`,
      [SYSTEM_ACCOUNTS.world],
    );
    const flows = await this.pool.query<{ debit: string; amount: string }>(NET_INFLOW_SQL);
    return { held: BigInt(rows[0]!.held), world: BigInt(rows[0]!.world), netInflow: inflowOf(flows.rows) };
  }

  async counts(): Promise<{ entries: Record<string, number>; withdrawals: Record<string, number> }> {
    return countsOf((await this.pool.query<{ what: string; key: string; n: string }>(COUNTS_SQL)).rows);
  }

  async unsettledJobs(limit: number): Promise<string[]> {
    const { rows } = await this.pool.query<{ id: string }>(
      `SELECT id FROM jobs WHERE owner IS NOT NULL AND settled_at IS NULL
       AND status IN ('completed', 'failed', 'timed_out', 'cancelled') ORDER BY seq LIMIT $1`,
      [limit],
    );
    return rows.map((r) => r.id);
  }

  async chainCursor(name: string): Promise<string | undefined> {
    const { rows } = await this.pool.query<{ value: string }>('SELECT value FROM chain_cursors WHERE name = $1', [name]);
    return rows[0]?.value;
  }

  async withdrawal(id: string): Promise<Withdrawal | undefined> {
    const { rows } = await this.pool.query<WithdrawalRow>('SELECT *, amount::text AS amount FROM withdrawals WHERE id = $1', [id]);
    return rows[0] && toWithdrawal(rows[0]);
  }

  async openWithdrawals(): Promise<Withdrawal[]> {
    const { rows } = await this.pool.query<WithdrawalRow>(
      "SELECT *, amount::text AS amount FROM withdrawals WHERE status IN ('requested', 'signed') ORDER BY created_at",
    );
    return rows.map(toWithdrawal);
  }

  async withdrawals(accountId: string, limit: number): Promise<Withdrawal[]> {
    const { rows } = await this.pool.query<WithdrawalRow>(
      'SELECT *, amount::text AS amount FROM withdrawals WHERE account_id = $1 ORDER BY created_at DESC LIMIT $2',
      [accountId, limit],
    );
    return rows.map(toWithdrawal);
  }

  private async one(column: 'id' | 'key_hash' | 'peer_id' | 'address', value: string): Promise<Account | undefined> {
    const { rows } = await this.pool.query<AccountRow>(`SELECT *, ${BALANCE} AS balance FROM accounts WHERE ${column} = $1`, [value]);
    return rows[0] && toAccount(rows[0]);
  }

  private async accountWith(client: pg.PoolClient, id: string): Promise<Account | undefined> {
    const { rows } = await client.query<AccountRow>(`SELECT *, ${BALANCE} AS balance FROM accounts WHERE id = $1`, [id]);
    return rows[0] && toAccount(rows[0]);
  }
}
