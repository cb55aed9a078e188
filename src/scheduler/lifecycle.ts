/**
 * The one writer of a job's status and executions. Every change goes through here as a
 * conditional write on the expected status (and, while a job holds an execution, its
 * lease token), checked against the transition table in domain/job.ts: a lost race is a
 * logged no-op, never an overwrite. Each write that lands is announced: `job:status`
 * always, then `job:started` when a container started, `job:ended` when the job reached a
 * terminal status, and `job:lost` when an execution was lost under it. The dispatcher, the
 * runner hub, the leases and the verifier decide *when* to move a job; only this module
 * moves it.
 * ESLint (eslint.config.js) refuses `store.transition/claim/insert` anywhere else in src/.
 */

import type { JobEventMap, TypedEmitter } from '../domain/events.js';
import { type ExecutionResult, type FailureReason, type Job, canTransition, isTerminal, outcomeOf } from '../domain/job.js';
import type { Logger } from '../logger.js';
import type { Transfer } from '../store/ledger-store.js';
import type { ClaimTerms, Expectation, JobPatch, JobStore, NewJob, NextClaim, NextClaimed } from '../store/store.js';
import { backoffMs } from './leases.js';

export interface LifecycleDeps {
  store: JobStore;
  events: TypedEmitter<JobEventMap>;
  log: Logger;
  /** Executions a job gets when its holder stops under it, before it fails. */
  maxAttempts: number;
  /** Wait before a requeued job is tried again, doubled per attempt (leases.ts caps it). */
  retryBackoffMs: number;
  /** Awaited before a terminal write, so the output printed before it is stored before its result event. */
  outputStored?: (jobId: string) => Promise<void>;
}

export class Lifecycle {
  constructor(private readonly deps: LifecycleDeps) {}

  /** Inserts a pending job (and its replicas); with `escrow`, in the same transaction. */
  async create(job: NewJob, escrow?: Transfer): Promise<Job> {
    const created = await this.deps.store.insert(job, escrow);
    this.deps.events.emit('job:status', { job: created });
    return created;
  }

  /** pending → scheduled under a new lease; undefined when it is taken or `terms` refuse it. Only leases.ts calls this. */
  async claim(jobId: string, holder: string, leaseToken: string, ttlMs: number, terms: ClaimTerms): Promise<Job | undefined> {
    const job = await this.deps.store.claim(jobId, holder, leaseToken, ttlMs, terms);
    if (job) this.deps.events.emit('job:status', { job });
    return job;
  }

  /** A worker's batch claim: pending → scheduled for several jobs at once (no replicas), each under its own lease. Only leases.ts calls this. */
  async claimNext(query: NextClaim): Promise<NextClaimed> {
    const next = await this.deps.store.claimNext(query);
    for (const job of next.claimed) this.deps.events.emit('job:status', { job });
    return next;
  }

  /** scheduled → running under the lease, when the container has started; `deadlineAt` replaces the claim's deadline when given. */
  markRunning(job: Pick<Job, 'id'>, executionId: string, deadlineAt?: number): Promise<Job | undefined> {
    return this.write(
      job.id,
      { status: ['scheduled'], executionId },
      { status: 'running', startedAt: new Date().toISOString(), ...(deadlineAt === undefined ? {} : { deadlineAt }) },
    );
  }

  /** Records an execution's result under its lease; undefined when the lease is no longer held. */
  finish(job: Job, executionId: string, result: ExecutionResult): Promise<Job | undefined> {
    const outcome = outcomeOf(result, job.spec);
    const patch: JobPatch = {
      status: outcome.status,
      reason: outcome.reason ?? null,
      message: outcome.message ?? null,
      stdout: result.stdout,
      stderr: result.stderr,
      stdoutTruncated: result.stdoutTruncated,
      stderrTruncated: result.stderrTruncated,
      durationMs: result.durationMs,
      startedAt: result.startedAt,
      finishedAt: result.finishedAt,
      executionId: null,
    };
    if (result.exitCode !== undefined) patch.exitCode = result.exitCode;
    if (result.outputs) patch.outputs = result.outputs;
    return this.write(job.id, { status: ['scheduled', 'running'], executionId }, patch);
  }

  /** Puts a claimed job back that never began: the attempt is given back, no backoff. */
  unclaim(job: Job, executionId: string, why: string): Promise<Job | undefined> {
    return this.write(
      job.id,
      { status: ['scheduled'], executionId },
      { status: 'pending', attempts: job.attempts - 1, executionId: null, message: why },
    );
  }

  /** Ends an execution that could not run, or lost its container, as the job's failure. */
  failExecution(jobId: string, executionId: string, reason: FailureReason, message: string): Promise<Job | undefined> {
    return this.write(
      jobId,
      { status: ['scheduled', 'running'], executionId },
      { status: 'failed', reason, message, finishedAt: now(), executionId: null },
    );
  }

  /**
   * A job whose execution was lost goes back to the queue after a backoff, or fails once it
   * has used its attempts. `extra` narrows the conditional write (the sweep requires the
   * lease to be still expired, so a renewal that wins the race keeps the job).
   */
  async requeueOrFail(job: Job, why: string, reason: FailureReason, extra: Partial<Expectation> = {}): Promise<void> {
    const { maxAttempts, retryBackoffMs } = this.deps;
    const lease = { ...leaseOf(job), ...extra };
    if (job.attempts >= maxAttempts) {
      const failed = await this.fail(job, reason, `${why}, and it has used all ${maxAttempts} attempts`, lease);
      if (failed) this.deps.events.emit('job:lost', { job: failed, reason });
      return;
    }
    const delay = backoffMs(retryBackoffMs, job.attempts);
    const requeued = await this.write(job.id, lease, {
      status: 'pending',
      message: `requeued: ${why} (attempt ${job.attempts} of ${maxAttempts})`,
      executionId: null,
      notBefore: this.deps.store.now() + delay,
    });
    if (!requeued) return;
    this.deps.log.info(`job ${job.id} requeued: ${why}; retried in ${delay} ms`);
    this.deps.events.emit('job:lost', { job: requeued, reason });
  }

  /** Fails a held job under its lease (or `lease`), whatever its result would have been. */
  async fail(job: Job, reason: FailureReason, message: string, lease = leaseOf(job)): Promise<Job | undefined> {
    const failed = await this.write(job.id, lease, { status: 'failed', reason, message, finishedAt: now(), executionId: null });
    if (failed) this.deps.log.warn(`job ${job.id} failed: ${message}`);
    return failed;
  }

  /** Ends an execution held past its deadline with `patch` (deadlines.ts), unless a start moved the deadline meanwhile. */
  async endOverdue(job: Job, patch: JobPatch): Promise<Job | undefined> {
    const ended = await this.write(job.id, overdueLease(job), patch);
    if (ended) this.deps.log.warn(`job ${job.id}: ${patch.message}`);
    return ended;
  }

  /** Cancels a job nobody holds yet; undefined when it was claimed meanwhile. */
  cancelPending(jobId: string): Promise<Job | undefined> {
    return this.write(jobId, { status: ['pending'] }, { status: 'cancelled', reason: 'cancelled', message: 'cancelled before it started', finishedAt: now() });
  }

  /** Cancels a job by ending the lease `executionId` (held elsewhere: its holder's next renewal fails). */
  cancelHeld(jobId: string, executionId: string): Promise<Job | undefined> {
    return this.write(
      jobId,
      { status: ['scheduled', 'running'], executionId },
      { status: 'cancelled', reason: 'cancelled', message: 'cancelled by request', finishedAt: now(), executionId: null },
    );
  }

  /** Cancels a redundant job's parent (running, never leased); its replicas are cancelled after it. */
  cancelGroup(parentId: string): Promise<Job | undefined> {
    return this.endGroup(parentId, { status: 'cancelled', reason: 'cancelled', message: 'cancelled by request', finishedAt: now() });
  }

  /** Ends a redundant job's parent (running, never leased) as its replicas decided. */
  endGroup(parentId: string, patch: JobPatch): Promise<Job | undefined> {
    return this.write(parentId, { status: ['running'] }, patch);
  }

  /** A conditional write that announces the change; undefined when the race was lost. */
  private async write(id: string, expect: Expectation, patch: JobPatch): Promise<Job | undefined> {
    const illegal = expect.status.find((from) => !canTransition(from, patch.status));
    if (illegal) throw new Error(`bug: ${illegal} → ${patch.status} is not a job transition (job ${id})`);
    const { store, events, log } = this.deps;
    if (isTerminal(patch.status)) await this.deps.outputStored?.(id);
    const job = await store.transition(id, expect, patch);
    if (!job) {
      log.debug(`job ${id}: transition to ${patch.status} skipped, it was no longer ${expect.status.join('/')}`);
      return undefined;
    }
    events.emit('job:status', { job });
    if (job.status === 'running' && expect.executionId) events.emit('job:started', { job, executionId: expect.executionId });
    if (isTerminal(job.status)) events.emit('job:ended', { job });
    return job;
  }
}

/** The lease a held job is written under: its status and current token. */
function leaseOf(job: Job): Expectation {
  return { status: ['scheduled', 'running'], ...(job.executionId ? { executionId: job.executionId } : {}) };
}

/** The lease of a job past its deadline: the write loses to a start that moved the deadline meanwhile. */
export function overdueLease(job: Job): Expectation {
  return { status: [job.status], executionId: job.executionId!, deadlinePassed: true };
}

function now(): string {
  return new Date().toISOString();
}
