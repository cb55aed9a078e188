/** The account routes on the wire: /api/accounts/:account/... (snake_case). */

/** GET /api/accounts/me (and the answer to binding an address). */
export interface AccountInfo {
  id: string;
  kind: 'user' | 'runner' | 'node' | 'system';
  name: string;
  /** Credits, as a decimal string. */
  balance: string;
  address?: string;
  peer_id?: string;
  created_at: string;
  /** When the server settles on chain: where deposits go, and the token (GET only). */
  treasury?: string;
  token?: string;
}

/** One entry of an account's journal, as that account sees it. */
export interface LedgerLine {
  seq: number;
  id: string;
  kind: string;
  /** Signed: "-5" left the account. */
  amount: string;
  counterparty: string;
  task_id?: string;
  execution_id?: string;
  address?: string;
  tx_hash?: string;
  memo?: string;
  at: string;
}

/** GET /api/accounts/me/ledger: newest first; pass `next_before` as ?before= for older ones. */
export interface LedgerPage {
  account: string;
  balance: string;
  entries: LedgerLine[];
  next_before: number | null;
}

/** POST /api/accounts/me/address: binds the address deposits are credited from. */
export interface AddressBody {
  address: string;
  /** The address's signature over the binding message. */
  signature: string;
}

/** POST /api/accounts/me/withdrawals. */
export interface WithdrawalRequest {
  amount: string | number;
  /** Defaults to the account's bound address. */
  address?: string;
}

export interface WithdrawalInfo {
  id: string;
  address: string;
  amount: string;
  status: 'requested' | 'signed' | 'confirmed' | 'failed';
  tx_hash?: string;
  error?: string;
  created_at: string;
  updated_at: string;
}

/** GET /api/accounts/me/withdrawals. */
export interface WithdrawalList {
  withdrawals: WithdrawalInfo[];
}
