/**
 * Money movements of tasks: the reward is escrowed at submit, and when the task ends it is
 * paid to the worker (less the operator's fee) or refunded to the owner, by the policy in
 * `workerEarns`. Every movement's id is derived from the task and the execution, so settling
 * the same task again (a retry, a second server, a restart) moves nothing.
 */

import { randomUUID } from 'node:crypto';
import { formatAmount, parseAmount, share as shareOf } from '../domain/amount.js';
import { majorityOf } from '../domain/verification.js';
import { type Job, isTerminal, workerEarns } from '../domain/job.js';
import { GridxError, messageOf, quote } from '../errors.js';
import type { Logger } from '../logger.js';
import { SYSTEM_ACCOUNTS, type LedgerEntry, type LedgerTotals, type Transfer } from '../store/ledger-store.js';
import type { JobStore } from '../store/store.js';
import type { Accounts } from './accounts.js';

export interface LedgerDeps {
  store: JobStore;
  accounts: Accounts;
  log: Logger;
  /** Operator fee per payout, basis points. */
  feeBasisPoints: number;
}

/** How an ended task is settled: the transfers that pay it out or refund it. */
export interface SettlementPlan {
  jobId: string;
  transfers: Transfer[];
}

export class Ledger {
  constructor(private readonly deps: LedgerDeps) {}

  /** The transfer that moves a task's reward into escrow; undefined when it offers none. */
  escrowOf(jobId: string, owner: string, reward: string | undefined, replicas = 1): Transfer | undefined {
    const amount = (reward === undefined ? 0n : parseAmount(reward, 'reward', { allowZero: true })) * BigInt(replicas);
    if (amount === 0n) return undefined;
    return { id: `escrow:${jobId}`, kind: 'escrow', from: owner, to: SYSTEM_ACCOUNTS.escrow, amount, jobId };
  }

  /** Sums over the whole ledger (the invariant: held = netInflow = −world). */
  totals(): Promise<LedgerTotals> {
    return this.deps.store.ledger.totals();
  }

  /** An account's balance in base units; 0 for an unknown account. */
  async balanceOf(accountId: string): Promise<bigint> {
    return (await this.deps.store.ledger.account(accountId))?.balance ?? 0n;
  }

  /** Development credit from the operator (`gridx account credit`); `key` makes a retried credit idempotent. */
  async credit(accountId: string, amount: bigint, memo: string, key = randomUUID()): Promise<LedgerEntry[]> {
    const account = await this.deps.store.ledger.account(accountId);
    if (!account || account.kind === 'system') throw new GridxError('NOT_FOUND', `no account ${quote(accountId)}; list them with gridx account list`);
    return this.deps.store.ledger.post([{ id: `credit:${key}`, kind: 'credit', from: SYSTEM_ACCOUNTS.world, to: accountId, amount, memo }]);
  }

  /**
   * Pays out or refunds a task that has ended. Idempotent: the transfers have fixed ids and
   * the job is marked settled in the same transaction.
   */
  async settle(job: Job): Promise<void> {
    if (!job.owner || job.settledAt || !isTerminal(job.status)) return;
    const plan = await this.plan(job);
    // Only what moved now is logged: a repeat (another server, a retry) posts nothing.
    for (const t of await this.deps.store.ledger.post(plan.transfers, { settleJob: job.id })) {
      this.deps.log.info(`job ${job.id}: ${t.kind} of ${formatAmount(t.amount)} credits to ${t.to}`);
    }
  }

  /** Settles every ended task whose settlement is missing (a crash, another server's task). */
  async settleAll(): Promise<number> {
    let settled = 0;
    for (;;) {
      const ids = await this.deps.store.ledger.unsettledJobs(100);
      let progressed = false;
      for (const id of ids) {
        const job = await this.deps.store.get(id);
        if (!job) continue;
        try {
          await this.settle(job);
          settled++;
          progressed = true;
        } catch (err) {
          this.deps.log.error(`job ${id}: settlement failed, retried later: ${messageOf(err)}`);
        }
      }
      if (ids.length < 100 || !progressed) return settled;
    }
  }

  private async plan(job: Job): Promise<SettlementPlan> {
    const escrowed = (await this.deps.store.ledger.entries({ jobId: job.id, limit: 1000 }))
      .filter((e) => e.kind === 'escrow')
      .reduce((sum, e) => sum + e.amount, 0n);
    if (escrowed === 0n) return { jobId: job.id, transfers: [] };
    if (job.replicas) return this.planReplicated(job, escrowed);
    const worker = workerEarns(job) ? await this.workerOf(job) : undefined;
    if (!worker) {
      return {
        jobId: job.id,
        transfers: [{ id: `refund:${job.id}`, kind: 'refund', from: SYSTEM_ACCOUNTS.escrow, to: job.owner!, amount: escrowed, jobId: job.id, memo: `task ${job.status}` }],
      };
    }
    const fee = shareOf(escrowed, this.deps.feeBasisPoints);
    const transfers: Transfer[] = [
      { id: `payout:${job.id}:${worker.executionId}`, kind: 'payout', from: SYSTEM_ACCOUNTS.escrow, to: worker.accountId, amount: escrowed - fee, jobId: job.id, executionId: worker.executionId },
    ];
    if (fee > 0n) {
      transfers.push({ id: `fee:${job.id}:${worker.executionId}`, kind: 'fee', from: SYSTEM_ACCOUNTS.escrow, to: SYSTEM_ACCOUNTS.fees, amount: fee, jobId: job.id, executionId: worker.executionId });
    }
    return { jobId: job.id, transfers: transfers.filter((t) => t.amount > 0n) };
  }

  /**
   * A redundant task: each replica in the majority earns one replica's share (less the fee);
   * the shares of the others, and everything when the task was cancelled or unverified, go
   * back to the owner.
   */
  private async planReplicated(job: Job, escrowed: bigint): Promise<SettlementPlan> {
    const replicas = await this.deps.store.children(job.id);
    const share = escrowed / BigInt(job.replicas!);
    const decided = job.status !== 'cancelled' && job.reason !== 'unverified';
    const winners = decided ? (majorityOf(replicas)?.winners ?? []) : [];
    const transfers: Transfer[] = [];
    let paid = 0n;
    for (const replica of winners) {
      const worker = await this.workerOf(replica);
      if (!worker) continue;
      const fee = shareOf(share, this.deps.feeBasisPoints);
      transfers.push({ id: `payout:${job.id}:${worker.executionId}`, kind: 'payout', from: SYSTEM_ACCOUNTS.escrow, to: worker.accountId, amount: share - fee, jobId: job.id, executionId: worker.executionId });
      if (fee > 0n) transfers.push({ id: `fee:${job.id}:${worker.executionId}`, kind: 'fee', from: SYSTEM_ACCOUNTS.escrow, to: SYSTEM_ACCOUNTS.fees, amount: fee, jobId: job.id, executionId: worker.executionId });
      paid += share;
    }
    if (escrowed > paid) {
      transfers.push({ id: `refund:${job.id}`, kind: 'refund', from: SYSTEM_ACCOUNTS.escrow, to: job.owner!, amount: escrowed - paid, jobId: job.id, memo: `${winners.length} of ${job.replicas} replicas paid` });
    }
    return { jobId: job.id, transfers: transfers.filter((t) => t.amount > 0n) };
  }

  /** The account of whoever ran the execution the job ended with: a runner's account, or a node's. */
  private async workerOf(job: Job): Promise<{ accountId: string; executionId: string } | undefined> {
    const executions = await this.deps.store.executions(job.id);
    const last = executions.findLast((e) => e.status === job.status);
    if (!last) return undefined;
    const runner = await this.deps.store.getRunner(last.nodeId);
    if (runner) return runner.accountId ? { accountId: runner.accountId, executionId: last.id } : undefined;
    const node = await this.deps.accounts.ofPeer(last.nodeId);
    return { accountId: node.id, executionId: last.id };
  }
}
