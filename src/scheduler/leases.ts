/**
 * Leases in one place, as BullMQ's LockManager and stalled checker: the claim (one pass
 * over the queue that both the local dispatcher and the runner hub use, with the replica
 * rule and the per-account running caps), renewal for every holder (this node's own
 * executions on a timer, runners through their heartbeats), the sweep that returns
 * expired work to the queue and ends executions held past their deadline, the retry
 * backoff, and the timing constants. The execution id is the lease token; the store keeps
 * its expiry and deadline. Writes go through the Lifecycle.
 */

import { randomUUID } from 'node:crypto';
import type { Job } from '../domain/job.js';
import type { Startable } from '../domain/startable.js';
import { messageOf } from '../errors.js';
import type { OutputSnapshot } from '../executor/executor.js';
import type { Logger } from '../logger.js';
import type { JobStore, NextClaim, OwnerRoom } from '../store/store.js';
import { type DeadlineOptions, claimDeadline, overdueEnd, runDeadline } from './deadlines.js';
import { type Lifecycle, overdueLease } from './lifecycle.js';
import { RunningCaps, type RunningLimits } from './running-caps.js';

/** A holder renews at a third of the TTL: two renewals may fail before the lease expires. */
export function renewEveryMs(leaseTtlMs: number): number {
  return leaseTtlMs / 3;
}

/** The sweep looks for expired leases at least once a second. */
export function sweepEveryMs(leaseTtlMs: number): number {
  return Math.min(1000, renewEveryMs(leaseTtlMs));
}

/** Backoffs double per attempt up to this. */
export const MAX_BACKOFF_MS = 60_000;

/** Wait before a job requeued after `attempts` attempts is tried again. */
export function backoffMs(baseMs: number, attempts: number): number {
  return Math.min(baseMs * 2 ** Math.max(attempts - 1, 0), MAX_BACKOFF_MS);
}

/** Pending jobs looked at per claim pass; the rest wait their turn. */
const CLAIM_SCAN = 256;
/** Scans of the queue one batch claim makes at most when other servers take what it picked. */
const BATCH_SCANS = 3;
/** Expired leases (and overdue executions) handled per sweep. */
const SWEEP_LIMIT = 100;

/**
 * Fitting jobs a batch claim locks and looks at: the batch itself, unless some owner's room
 * is smaller than the batch, and then a few times it, for the jobs the caps pass over.
 * What other claims hold is passed over as the window is read, so it needs no slack.
 */
export function claimWindow(max: number, room: OwnerRoom | undefined): number {
  // Owners with no room at all are left out of the read (CapPass.filter), not passed over in it.
  const short = (n: number) => n > 0 && n < max;
  const binding = room && (short(room.others) || short(room.anonymous) || [...room.owners.values()].some(short));
  return binding ? Math.min(CLAIM_SCAN, 4 * max) : max;
}

/** Who would take a job: the node or runner its execution is recorded for. */
export interface Claimant {
  holder: string;
  /**
   * The account it earns for. Replicas run under k different accounts, so that one account
   * cannot outvote the others with forged results: a claimant without one takes no
   * replica, and the store refuses a replica whose task this account holds, or held,
   * another replica of.
   */
  accountId?: string;
}

/** One pass over the queue, oldest first, as one dispatcher sees it. */
export interface ClaimPass<C extends Claimant> {
  /** Whether to look at further jobs (free slots, the runner's max). */
  more(): boolean;
  /** Who takes `job`, or undefined to pass it over (it does not fit, no target). */
  pick(job: Job): C | undefined;
  /** `job` is now held by `claimant` under `leaseToken`. */
  took(job: Job, leaseToken: string, claimant: C): void;
  /** A picked job that could not be claimed (taken first elsewhere, the replica rule). */
  missed?(job: Job, claimant: C): void;
}

/** What a worker of a batch claim can run: jobs that need more than its limits, or that it cannot run at all, pass over. */
export type ClaimWorker = Pick<NextClaim, 'limits' | 'portableOnly'>;

/** Leases a holder in this process keeps alive on the renewal timer. */
export interface LeaseHolder {
  held(): ReadonlyArray<{ jobId: string; executionId: string }>;
  /** The lease ended (expired, cancelled elsewhere, past its deadline): stop the execution. */
  lost(jobId: string, executionId: string): Promise<void>;
}

export interface LeasesDeps {
  store: JobStore;
  lifecycle: Lifecycle;
  log: Logger;
  /** How long a claim holds a job without renewal. */
  leaseTtlMs: number;
  deadlines: DeadlineOptions;
  /** Caps on the jobs one owner has running at once; none when absent. */
  limits?: RunningLimits;
  /** Output relayed so far for a job running anywhere (kept when it is ended past its deadline). */
  liveOutput(jobId: string): OutputSnapshot | undefined;
  /** Whether this process runs the sweep now (a singleton duty, duties.ts); always when absent. */
  inCharge?: () => boolean;
}

export class Leases implements Startable {
  private readonly caps: RunningCaps;
  private readonly holders: LeaseHolder[] = [];
  private readonly sweepListeners: Array<() => void> = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private sweeping = false;
  private stopped = false;

  constructor(private readonly deps: LeasesDeps) {
    this.caps = new RunningCaps(deps.store, deps.limits);
  }

  get ttlMs(): number {
    return this.deps.leaseTtlMs;
  }

  /** Renews `holder`'s leases on the timer from start on. */
  keep(holder: LeaseHolder): void {
    this.holders.push(holder);
  }

  /** Calls `fn` after each sweep: backoffs end with time, not with an event. */
  onSwept(fn: () => void): void {
    this.sweepListeners.push(fn);
  }

  /** Epoch ms by which an execution of `job` claimed now must have ended. */
  claimDeadline(job: Pick<Job, 'spec'>): number {
    return claimDeadline(job.spec, this.deps.deadlines, this.deps.store.now());
  }

  /** Epoch ms by which an execution of `job` that starts now must have ended. */
  runDeadline(job: Pick<Job, 'spec'>): number {
    return runDeadline(job.spec, this.deps.deadlines, this.deps.store.now());
  }

  /**
   * The claim: offers each ready pending job whose owner is under its running cap to
   * `pass`, and claims the ones it picks under a fresh lease, until `pass.more()` says no.
   */
  async claimFromQueue<C extends Claimant>(pass: ClaimPass<C>): Promise<void> {
    if (!pass.more()) return;
    const caps = await this.caps.pass();
    for (const job of await this.deps.store.pendingReady(CLAIM_SCAN, caps.filter())) {
      if (!pass.more()) break;
      if (!caps.admits(job.owner)) continue; // it waits for one of its owner's jobs to end
      const claimant = pass.pick(job);
      if (!claimant) continue;
      const leaseToken = randomUUID();
      const held =
        job.parent && !claimant.accountId
          ? undefined
          : await this.deps.lifecycle.claim(job.id, claimant.holder, leaseToken, this.deps.leaseTtlMs, {
              ...(claimant.accountId ? { accountId: claimant.accountId } : {}),
              deadlineAt: this.claimDeadline(job),
            });
      if (!held) {
        pass.missed?.(job, claimant);
        continue;
      }
      caps.took(job.owner);
      pass.took(held, leaseToken, claimant);
    }
  }

  /**
   * A worker's claim in one batch: up to `max` ready jobs that fit `worker` and whose
   * owners are under their running caps, taken by the store in one step that passes over
   * what other claims hold (replicas one by one, under the replica rule, and only with an
   * account). When other claims held jobs it wanted, the queue is read again a few times.
   */
  async claimBatch(claimant: Claimant, max: number, worker: ClaimWorker = {}): Promise<Array<{ job: Job; leaseToken: string }>> {
    const { lifecycle, leaseTtlMs, deadlines } = this.deps;
    const taken: Array<{ job: Job; leaseToken: string }> = [];
    for (let scan = 0; scan < BATCH_SCANS && taken.length < max; scan++) {
      const caps = await this.caps.pass();
      const room = caps.room();
      const want = max - taken.length;
      const next = await lifecycle.claimNext({
        nodeId: claimant.holder,
        max: want,
        leaseTtlMs,
        window: claimWindow(want, room),
        skip: caps.filter(),
        ...worker,
        ...(room ? { room } : {}),
        replicas: claimant.accountId !== undefined,
        deadlines,
      });
      for (const job of next.claimed) {
        caps.took(job.owner);
        taken.push({ job, leaseToken: job.executionId! });
      }
      for (const job of next.replicas) {
        if (taken.length >= max) break;
        if (!caps.admits(job.owner)) continue;
        const leaseToken = randomUUID();
        const terms = { accountId: claimant.accountId!, deadlineAt: this.claimDeadline(job) };
        const held = await lifecycle.claim(job.id, claimant.holder, leaseToken, leaseTtlMs, terms);
        if (!held) continue;
        caps.took(job.owner);
        taken.push({ job: held, leaseToken });
      }
      // Read again only when other claims held jobs it wanted: otherwise the next read finds the same.
      if (next.claimed.length === Math.min(want, next.eligible)) break;
    }
    return taken;
  }

  /** Renews the live leases among `tokens` (only those `holder` holds, when given); the rest are lost. */
  async renew(tokens: readonly string[], holder?: string): Promise<{ renewed: string[]; lost: string[] }> {
    const renewed = await this.deps.store.renewLeases(tokens, this.deps.leaseTtlMs, holder);
    const kept = new Set(renewed);
    return { renewed, lost: tokens.filter((t) => !kept.has(t)) };
  }

  /** Starts renewing this process's leases and sweeping; call once what a restart left is recovered. */
  async start(): Promise<void> {
    this.stopped = false;
    const ttl = this.deps.leaseTtlMs;
    this.every(renewEveryMs(ttl), () => this.renewHeld());
    this.every(sweepEveryMs(ttl), () => this.sweep());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.timers.splice(0).forEach(clearInterval);
  }

  private every(ms: number, fn: () => Promise<void>): void {
    const timer = setInterval(() => {
      fn().catch((err: unknown) => this.deps.log.error(`leases: ${messageOf(err)}`));
    }, ms);
    timer.unref();
    this.timers.push(timer);
  }

  /** Keeps the leases of what runs here (and on peers for this node) alive; stops what lost its lease. */
  private async renewHeld(): Promise<void> {
    for (const holder of this.holders) {
      const held = holder.held();
      if (held.length === 0) continue;
      const { lost } = await this.renew(held.map((h) => h.executionId));
      for (const token of lost) {
        const entry = held.find((h) => h.executionId === token)!;
        // It may have ended by itself while the renewal was on its way.
        if (!holder.held().some((h) => h.executionId === token)) continue;
        this.deps.log.warn(`job ${entry.jobId}: lease ${token} was lost (expired or ended elsewhere); stopping this execution`);
        await holder.lost(entry.jobId, token);
      }
    }
  }

  /** Puts back jobs whose holders stopped renewing their leases, and ends those past their deadline. */
  private async sweep(): Promise<void> {
    if (this.sweeping || this.stopped) return;
    this.sweeping = true;
    try {
      const { store, lifecycle, inCharge } = this.deps;
      if (inCharge?.() !== false) {
        for (const job of await store.expiredLeases(SWEEP_LIMIT)) {
          await lifecycle.requeueOrFail(job, `the lease of ${job.executedBy ?? 'its holder'} expired`, 'lease_expired', { leaseExpired: true });
        }
        for (const job of await store.overdue(SWEEP_LIMIT)) await this.endOverdue(job);
      }
      for (const fn of this.sweepListeners) fn();
    } finally {
      this.sweeping = false;
    }
  }

  /** Ends an execution held past its deadline, under its lease: heartbeats cannot keep a job past its time. */
  private async endOverdue(job: Job): Promise<void> {
    const end = overdueEnd(job, this.deps.deadlines, this.deps.liveOutput(job.id), this.deps.store.now());
    if (end.kind === 'requeue') await this.deps.lifecycle.requeueOrFail(job, end.why, 'lease_expired', overdueLease(job));
    else await this.deps.lifecycle.endOverdue(job, end.patch);
    // Stops it at once when it runs here or on a peer for this node (renewals would, later).
    for (const holder of this.holders) {
      if (holder.held().some((h) => h.executionId === job.executionId)) await holder.lost(job.id, job.executionId!);
    }
  }
}
