/** Sums over the journal that both stores compute the same way. */

import { formatAmount } from '../domain/amount.js';
import { GridxError } from '../errors.js';
import { SYSTEM_ACCOUNTS } from './ledger-store.js';

/** What entered the ledger from the world (credits, deposits, reversals) minus what left to it (withdrawals). */
export function inflowOf(rows: ReadonlyArray<{ debit: string; amount: string }>): bigint {
  let net = 0n;
  for (const r of rows) net += r.debit === SYSTEM_ACCOUNTS.world ? BigInt(r.amount) : -BigInt(r.amount);
  return net;
}

/** The 402 for a debit that would take `accountId` below zero. */
export function insufficientFunds(accountId: string, balance: bigint, amount: bigint): GridxError {
  return new GridxError(
    'PAYMENT_REQUIRED',
    `account ${accountId} holds ${formatAmount(balance)} credits, less than the ${formatAmount(amount)} this needs; deposit or get credited first`,
  );
}
