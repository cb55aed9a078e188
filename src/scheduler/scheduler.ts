/**
 * The local scheduler: a FIFO queue in the store, a fixed number of slots, and the one
 * place that moves jobs through their statuses. Every write is conditional on the
 * expected status and the execution's lease token, so a late or duplicate result is a
 * logged no-op rather than an overwrite.
 */

import { randomUUID } from 'node:crypto';
import type { JobEventMap, TypedEmitter } from '../domain/events.js';
import { type ExecutionResult, type Job, type JobSpec, isTerminal, outcomeOf } from '../domain/job.js';
import { GridxError, isGridxError, messageOf } from '../errors.js';
import type { Executor, OutputSnapshot } from '../executor/executor.js';
import type { Logger } from '../logger.js';
import type { Expectation, JobPatch, JobStore } from '../store/store.js';

export interface SchedulerDeps {
  store: JobStore;
  executor: Executor;
  events: TypedEmitter<JobEventMap>;
  log: Logger;
  nodeId: string;
  slots: number;
  /** Executions a job gets when the node stops under it, before it fails as node_restarted. */
  maxAttempts: number;
}

export class Scheduler {
  /** jobId → executionId of what runs in a slot now. */
  private readonly active = new Map<string, string>();
  private readonly cancelRequested = new Set<string>();
  private readonly tasks = new Set<Promise<void>>();
  private started = false;
  private stopping = false;
  private pumping = false;
  private pumpAgain = false;

  constructor(private readonly deps: SchedulerDeps) {}

  get slots(): { total: number; used: number; free: number } {
    const used = this.active.size;
    return { total: this.deps.slots, used, free: Math.max(this.deps.slots - used, 0) };
  }

  /** Recovers what a previous run of this node left, then starts taking work. */
  async start(): Promise<void> {
    await this.deps.executor.reapOrphans();
    for (const job of await this.deps.store.withStatus(['scheduled', 'running'])) {
      await this.requeueOrFail(job, 'the node restarted while it ran');
    }
    this.started = true;
    this.pump();
  }

  async submit(spec: JobSpec, title?: string): Promise<Job> {
    if (this.stopping || !this.started) {
      throw new GridxError('UNAVAILABLE', 'this node is shutting down and takes no new jobs; submit to another node');
    }
    const job = await this.deps.store.insert({ id: randomUUID(), spec, ...(title ? { title } : {}) });
    this.deps.events.emit('job:status', { job });
    this.pump();
    return job;
  }

  /** Cancels a job; returns it as it stands after the request (terminal, or on its way). */
  async cancel(id: string): Promise<Job> {
    const job = await this.deps.store.get(id);
    if (!job) throw new GridxError('NOT_FOUND', `no job with id ${id} on this node`);
    if (isTerminal(job.status)) {
      if (job.status === 'cancelled') return job;
      throw new GridxError('CONFLICT', `job ${id} already ended as ${job.status}; nothing to cancel`);
    }
    if (job.status === 'pending') {
      const cancelled = await this.write(
        id,
        { status: ['pending'] },
        { status: 'cancelled', reason: 'cancelled', message: 'cancelled before it started', finishedAt: now() },
      );
      if (cancelled) return cancelled;
      return this.cancel(id); // it was claimed meanwhile: cancel the execution instead
    }
    this.cancelRequested.add(id);
    const executionId = this.active.get(id);
    if (executionId) await this.deps.executor.cancel(executionId);
    return (await this.deps.store.get(id))!;
  }

  /** Output of a job running here now. */
  liveOutput(jobId: string): OutputSnapshot | undefined {
    const executionId = this.active.get(jobId);
    return executionId === undefined ? undefined : this.deps.executor.logs(executionId);
  }

  /** Resolves with the job once it is terminal; rejects if `signal` aborts first. */
  async waitForTerminal(id: string, signal?: AbortSignal): Promise<Job> {
    let off = () => {};
    const settled = new Promise<Job>((resolve, reject) => {
      off = this.deps.events.on('job:status', ({ job }) => {
        if (job.id === id && isTerminal(job.status)) resolve(job);
      });
      signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
    });
    try {
      const current = await this.deps.store.get(id);
      if (!current) throw new GridxError('NOT_FOUND', `no job with id ${id} on this node`);
      if (isTerminal(current.status)) return current;
      return await settled;
    } finally {
      off();
    }
  }

  /** Stops taking work; running jobs are stopped and requeued for the next start. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all([...this.active.values()].map((executionId) => this.deps.executor.cancel(executionId)));
    await Promise.allSettled([...this.tasks]);
    await this.deps.executor.stop();
  }

  /** Fills free slots from the queue, oldest first. */
  private pump(): void {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    const loop = async () => {
      do {
        this.pumpAgain = false;
        while (!this.stopping && this.active.size < this.deps.slots) {
          const executionId = randomUUID();
          const job = await this.deps.store.claimNext(this.deps.nodeId, executionId);
          if (!job) break;
          this.deps.events.emit('job:status', { job });
          this.active.set(job.id, executionId);
          const task = this.execute(job, executionId)
            .catch((err: unknown) => this.deps.log.error(`job ${job.id}: ${messageOf(err)}`))
            .finally(() => {
              this.active.delete(job.id);
              this.cancelRequested.delete(job.id);
              this.tasks.delete(task);
              this.pump();
            });
          this.tasks.add(task);
        }
      } while (this.pumpAgain && !this.stopping);
    };
    loop()
      .catch((err: unknown) => this.deps.log.error(`queue: ${messageOf(err)}`))
      .finally(() => {
        this.pumping = false;
      });
  }

  private async execute(job: Job, executionId: string): Promise<void> {
    const { executor, events, log } = this.deps;
    const lease: Expectation = { status: ['scheduled', 'running'], executionId };
    try {
      await executor.start(
        { executionId, jobId: job.id, spec: job.spec },
        { onOutput: (stream, data) => events.emit('job:output', { jobId: job.id, stream, data }) },
      );
    } catch (err) {
      if (this.stopping) return void (await this.requeueOrFail(job, 'the node stopped while it started'));
      const reason = isGridxError(err, 'IMAGE_NOT_FOUND') ? 'image_not_found' : 'executor_error';
      log.warn(`job ${job.id} could not start: ${messageOf(err)}`);
      await this.write(job.id, lease, {
        status: 'failed',
        reason,
        message: messageOf(err),
        finishedAt: now(),
        executionId: null,
      });
      return;
    }
    await this.write(job.id, { status: ['scheduled'], executionId }, { status: 'running', startedAt: now() });

    let result: ExecutionResult;
    try {
      result = await executor.wait(executionId);
    } catch (err) {
      // The engine failed under a running job (daemon restarted, container vanished).
      log.warn(`job ${job.id} lost its container: ${messageOf(err)}`);
      await this.write(job.id, lease, {
        status: 'failed',
        reason: 'executor_error',
        message: `the container was lost while the job ran: ${messageOf(err)}`,
        finishedAt: now(),
        executionId: null,
      });
      return;
    }
    if (this.stopping && !this.cancelRequested.has(job.id) && !result.timedOut && result.cancelled) {
      await this.requeueOrFail(job, 'the node stopped while it ran');
      return;
    }
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
      finishedAt: result.finishedAt,
      executionId: null,
    };
    if (result.exitCode !== undefined) patch.exitCode = result.exitCode;
    const written = await this.write(job.id, lease, patch);
    if (!written) log.warn(`job ${job.id}: result of execution ${executionId} arrived after its lease ended; ignored`);
  }

  /** A job whose execution the node lost goes back to the queue, or fails once it has used its attempts. */
  private async requeueOrFail(job: Job, why: string): Promise<void> {
    const expect: Expectation = { status: ['scheduled', 'running'], ...(job.executionId ? { executionId: job.executionId } : {}) };
    if (job.attempts >= this.deps.maxAttempts) {
      await this.write(job.id, expect, {
        status: 'failed',
        reason: 'node_restarted',
        message: `${why}, and it has used all ${this.deps.maxAttempts} attempts`,
        finishedAt: now(),
        executionId: null,
      });
      this.deps.log.warn(`job ${job.id} failed: ${why} (attempt ${job.attempts} of ${this.deps.maxAttempts})`);
    } else {
      await this.write(job.id, expect, {
        status: 'pending',
        message: `requeued: ${why} (attempt ${job.attempts} of ${this.deps.maxAttempts})`,
        executionId: null,
      });
      this.deps.log.info(`job ${job.id} requeued: ${why}`);
    }
  }

  /** A conditional write that announces the change; undefined when the race was lost. */
  private async write(id: string, expect: Expectation, patch: JobPatch): Promise<Job | undefined> {
    const job = await this.deps.store.transition(id, expect, patch);
    if (job) this.deps.events.emit('job:status', { job });
    else this.deps.log.debug(`job ${id}: transition to ${patch.status} skipped, it was no longer ${expect.status.join('/')}`);
    return job;
  }
}

function now(): string {
  return new Date().toISOString();
}
