/** How accounts, their journal and their withdrawals look on the wire. */

import { formatAmount } from '../../domain/amount.js';
import type { Account, LedgerEntry, Withdrawal } from '../../store/ledger-store.js';
import type { AccountInfo, LedgerLine, LedgerPage, WithdrawalInfo, WithdrawalList } from '../../wire/accounts.js';

/** `chain`: where deposits go and the token, when the server settles on chain. */
export function accountView(account: Account, chain?: { treasury: string; token: string }): AccountInfo {
  return {
    id: account.id,
    kind: account.kind,
    name: account.name,
    balance: formatAmount(account.balance),
    ...(account.address ? { address: account.address } : {}),
    ...(account.peerId ? { peer_id: account.peerId } : {}),
    created_at: account.createdAt,
    ...(chain ? { treasury: chain.treasury, token: chain.token } : {}),
  };
}

/** An entry as its account sees it: money in (+) or out (−). */
export function entryView(entry: LedgerEntry, accountId: string): LedgerLine {
  const incoming = entry.to === accountId;
  return {
    seq: entry.seq,
    id: entry.id,
    kind: entry.kind,
    amount: `${incoming ? '' : '-'}${formatAmount(entry.amount)}`,
    counterparty: incoming ? entry.from : entry.to,
    ...(entry.jobId ? { task_id: entry.jobId } : {}),
    ...(entry.executionId ? { execution_id: entry.executionId } : {}),
    ...(entry.address ? { address: entry.address } : {}),
    ...(entry.txHash ? { tx_hash: entry.txHash } : {}),
    ...(entry.memo ? { memo: entry.memo } : {}),
    at: entry.at,
  };
}

/** A page of the account's journal, newest first. */
export function ledgerPageView(account: Account, entries: LedgerEntry[]): LedgerPage {
  return {
    account: account.id,
    balance: formatAmount(account.balance),
    entries: entries.map((e) => entryView(e, account.id)),
    next_before: entries.length > 0 ? entries.at(-1)!.seq : null,
  };
}

export function withdrawalView(w: Withdrawal): WithdrawalInfo {
  return {
    id: w.id,
    address: w.address,
    amount: formatAmount(w.amount),
    status: w.status,
    ...(w.txHash ? { tx_hash: w.txHash } : {}),
    ...(w.error ? { error: w.error } : {}),
    created_at: w.createdAt,
    updated_at: w.updatedAt,
  };
}

export function withdrawalListView(withdrawals: Withdrawal[]): WithdrawalList {
  return { withdrawals: withdrawals.map(withdrawalView) };
}
