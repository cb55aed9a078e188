/**
 * The ledger's half of the store: accounts and a double-entry journal in the same database
 * as the jobs (SQLite or PostgreSQL), so that a task and the escrow of its reward are
 * written in one transaction. Every transfer has an idempotency key as its id: posting it
 * again changes nothing, so retries, crashes and duplicate reports never move money twice.
 */

import { GridxError } from '../errors.js';

/** Who holds a balance. System accounts are the operator's books, not anybody's money. */
export type AccountKind = 'user' | 'runner' | 'node' | 'system';

/** The system accounts every ledger has. */
export const SYSTEM_ACCOUNTS = {
  /** The outside world: deposits come from it, withdrawals go to it. The only account that may go negative. */
  world: 'world',
  /** Rewards held for tasks that have not ended. */
  escrow: 'escrow',
  /** The operator's fee on each payout. */
  fees: 'fees',
  /** Deposits from addresses not bound to an account yet; claimed when one binds it. */
  unclaimed: 'unclaimed',
} as const;

export interface Account {
  id: string;
  kind: AccountKind;
  name: string;
  /** Peer id of the mesh node this account belongs to (kind node). */
  peerId?: string;
  /** Ethereum address bound to the account (lowercase): deposits from it are credited here. */
  address?: string;
  /** Base units (18 decimals). */
  balance: bigint;
  createdAt: string;
}

export interface NewAccount {
  id: string;
  kind: AccountKind;
  name: string;
  /** sha256 of the account's API key, hex; the key itself is never stored. */
  keyHash?: string;
  peerId?: string;
}

/**
 * How money moves:
 * credit (operator, development) and deposit (on-chain): world → account;
 * withdrawal: account → world (and its reversal when the chain refused it);
 * escrow: submitter → escrow; payout: escrow → worker; fee: escrow → fees;
 * refund: escrow → submitter; claim: unclaimed → the account that bound the address.
 */
export type TransferKind = 'credit' | 'deposit' | 'withdrawal' | 'reversal' | 'escrow' | 'payout' | 'fee' | 'refund' | 'claim';

export interface Transfer {
  /** Idempotency key, e.g. `payout:<job>:<execution>`; a second post of the same id is a no-op. */
  id: string;
  kind: TransferKind;
  from: string;
  to: string;
  /** Base units, > 0. */
  amount: bigint;
  jobId?: string;
  executionId?: string;
  /** The on-chain counterparty (deposits, withdrawals). */
  address?: string;
  txHash?: string;
  memo?: string;
}

export interface LedgerEntry extends Transfer {
  seq: number;
  at: string;
}

/** An on-chain payout: requested (money left the balance), signed (tx hash known), then confirmed or failed. */
export type WithdrawalStatus = 'requested' | 'signed' | 'confirmed' | 'failed';

export interface Withdrawal {
  id: string;
  accountId: string;
  address: string;
  amount: bigint;
  status: WithdrawalStatus;
  txHash?: string;
  nonce?: number;
  /** The signed transaction, kept so a restart re-broadcasts the same one (same nonce: it can only land once). */
  rawTx?: string;
  error?: string;
  createdAt: string;
  updatedAt: string;
}

export interface WithdrawalPatch {
  status: WithdrawalStatus;
  txHash?: string;
  nonce?: number;
  rawTx?: string;
  error?: string;
}

export interface PostOptions {
  /** Marks this job's escrow as settled in the same transaction. */
  settleJob?: string;
  /** Moves a chain cursor in the same transaction (deposits credited up to a block). */
  cursor?: { name: string; value: string };
  /** Records a withdrawal request in the same transaction as its debit. */
  withdrawal?: Withdrawal;
  /** Moves a withdrawal to a new status in the same transaction, if it is in `expect`. */
  withdrawalUpdate?: { id: string; expect: readonly WithdrawalStatus[]; patch: WithdrawalPatch };
  /**
   * Posts only while singleton duty `duty` is held under `token` (JobStore.holdDuty);
   * otherwise nothing is written (FENCED). A holder that paused and lost its duty cannot act.
   */
  fence?: Fence;
}

/** A singleton duty as held: its name and fencing token. */
export interface Fence {
  duty: string;
  token: number;
}

/** What a write under a duty this process no longer holds fails with. */
export function fenced(fence: Fence): GridxError {
  return new GridxError('CONFLICT', `duty ${fence.duty} is no longer held under token ${fence.token}; another server took it over`);
}

export interface EntryQuery {
  accountId?: string;
  jobId?: string;
  /** Only entries with seq below this (paging, newest first). */
  before?: number;
  limit?: number;
}

export interface LedgerTotals {
  /** Sum of every balance but the world's: users, runners, nodes, escrow, fees, unclaimed. */
  held: bigint;
  /** The world account's balance: always −held in a consistent ledger. */
  world: bigint;
  /** Credits and deposits minus withdrawals (and their reversals), summed from the journal. */
  netInflow: bigint;
}

export interface LedgerStore {
  /** Creates the system accounts if absent; idempotent. */
  createAccount(account: NewAccount): Promise<Account>;
  account(id: string): Promise<Account | undefined>;
  /** Accounts, oldest first, at most `limit`. */
  listAccounts(limit: number): Promise<Account[]>;
  accountByKey(keyHash: string): Promise<Account | undefined>;
  accountByPeer(peerId: string): Promise<Account | undefined>;
  accountByAddress(address: string): Promise<Account | undefined>;
  /** Binds `address` to the account; CONFLICT when another account has it. */
  bindAddress(accountId: string, address: string): Promise<void>;
  /**
   * Posts the transfers in one transaction, all or none; those already posted (same id)
   * are skipped. PAYMENT_REQUIRED when one would take an account below zero (the world
   * account excepted). Returns the entries posted now.
   */
  post(transfers: readonly Transfer[], options?: PostOptions): Promise<LedgerEntry[]>;
  /** Journal entries, newest first. */
  entries(query: EntryQuery): Promise<LedgerEntry[]>;
  totals(): Promise<LedgerTotals>;
  /** Ended jobs with an owner whose escrow has not been settled, oldest first. */
  unsettledJobs(limit: number): Promise<string[]>;
  /** Journal entries per kind, and withdrawals per status, for the metrics (a scan of both tables). */
  counts(): Promise<{ entries: Record<string, number>; withdrawals: Record<string, number> }>;
  chainCursor(name: string): Promise<string | undefined>;
  withdrawal(id: string): Promise<Withdrawal | undefined>;
  /** Withdrawals not yet confirmed or failed, oldest first. */
  openWithdrawals(): Promise<Withdrawal[]>;
  withdrawals(accountId: string, limit: number): Promise<Withdrawal[]>;
}
