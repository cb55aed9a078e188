/** Sums over the journal that both stores compute the same way. */

import { SYSTEM_ACCOUNTS } from './ledger-store.js';

/** What entered the ledger from the world (credits, deposits, reversals) minus what left to it (withdrawals). */
export function inflowOf(rows: ReadonlyArray<{ debit: string; amount: string }>): bigint {
  let net = 0n;
  for (const r of rows) net += r.debit === SYSTEM_ACCOUNTS.world ? BigInt(r.amount) : -BigInt(r.amount);
  return net;
}
