/** Ledger row shapes and their mapping, shared by the SQLite and PostgreSQL stores. */

import type { Account, LedgerEntry, Transfer, Withdrawal } from './ledger-store.js';

export interface AccountRow {
  id: string;
  kind: Account['kind'];
  name: string;
  peer_id: string | null;
  address: string | null;
  balance: string;
  created_at: string;
}

export function toAccount(r: AccountRow): Account {
  return {
    id: r.id,
    kind: r.kind,
    name: r.name,
    ...(r.peer_id === null ? {} : { peerId: r.peer_id }),
    ...(r.address === null ? {} : { address: r.address }),
    balance: BigInt(r.balance),
    createdAt: r.created_at,
  };
}

export interface EntryRow {
  seq: number | string;
  id: string;
  kind: Transfer['kind'];
  debit: string;
  credit: string;
  amount: string;
  job_id: string | null;
  execution_id: string | null;
  address: string | null;
  tx_hash: string | null;
  memo: string | null;
  at: string;
}

export function toEntry(r: EntryRow): LedgerEntry {
  return {
    seq: Number(r.seq),
    id: r.id,
    kind: r.kind,
    from: r.debit,
    to: r.credit,
    amount: BigInt(r.amount),
    ...(r.job_id === null ? {} : { jobId: r.job_id }),
    ...(r.execution_id === null ? {} : { executionId: r.execution_id }),
    ...(r.address === null ? {} : { address: r.address }),
    ...(r.tx_hash === null ? {} : { txHash: r.tx_hash }),
    ...(r.memo === null ? {} : { memo: r.memo }),
    at: r.at,
  };
}

/** Column values of a transfer, in the order of ENTRY_COLUMNS. */
export function entryValues(t: Transfer, at: string): unknown[] {
  return [t.id, t.kind, t.from, t.to, t.amount.toString(), t.jobId ?? null, t.executionId ?? null, t.address ?? null, t.txHash ?? null, t.memo ?? null, at];
}

export const ENTRY_COLUMNS = 'id, kind, debit, credit, amount, job_id, execution_id, address, tx_hash, memo, at';

export interface WithdrawalRow {
  id: string;
  account_id: string;
  address: string;
  amount: string;
  status: Withdrawal['status'];
  tx_hash: string | null;
  nonce: number | string | null;
  raw_tx: string | null;
  error: string | null;
  created_at: string;
  updated_at: string;
}

export function toWithdrawal(r: WithdrawalRow): Withdrawal {
  return {
    id: r.id,
    accountId: r.account_id,
    address: r.address,
    amount: BigInt(r.amount),
    status: r.status,
    ...(r.tx_hash === null ? {} : { txHash: r.tx_hash }),
    ...(r.nonce === null ? {} : { nonce: Number(r.nonce) }),
    ...(r.raw_tx === null ? {} : { rawTx: r.raw_tx }),
    ...(r.error === null ? {} : { error: r.error }),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** Net inflow from the journal: what came in from the world minus what went out to it. */
export const NET_INFLOW_SQL = `SELECT debit, amount FROM ledger WHERE debit = 'world' OR credit = 'world'`;

export const WITHDRAWAL_COLUMNS = 'id, account_id, address, amount, status, tx_hash, nonce, raw_tx, error, created_at, updated_at';

/** LedgerStore.counts in both stores' SQL: rows of (what, key, n). */
export const COUNTS_SQL = `SELECT 'entries' AS what, kind AS key, COUNT(*) AS n FROM ledger GROUP BY kind
  UNION ALL SELECT 'withdrawals', status, COUNT(*) FROM withdrawals GROUP BY status`;

/** The rows of COUNTS_SQL, as LedgerStore.counts answers. */
export function countsOf(rows: ReadonlyArray<{ what: string; key: string; n: string | number }>): {
  entries: Record<string, number>;
  withdrawals: Record<string, number>;
} {
  const counts = { entries: {} as Record<string, number>, withdrawals: {} as Record<string, number> };
  for (const r of rows) counts[r.what === 'entries' ? 'entries' : 'withdrawals'][r.key] = Number(r.n);
  return counts;
}
