/**
 * The scheduler: a FIFO queue in the store, this node's slots, the mesh's peers as further
 * targets, and the one place that moves jobs through their statuses. Every write is
 * conditional on the expected status and the execution's lease token, so a late or
 * duplicate result is a logged no-op rather than an overwrite.
 */

import { randomUUID } from 'node:crypto';
import type { JobEventMap, TypedEmitter } from '../domain/events.js';
import {
  type ExecutionResult,
  type FailureReason,
  type Job,
  type JobSpec,
  canTransition,
  isTerminal,
  outcomeOf,
} from '../domain/job.js';
import { GridxError, isGridxError, messageOf } from '../errors.js';
import type { Executor, OutputSnapshot } from '../executor/executor.js';
import type { Logger } from '../logger.js';
import type { Transfer } from '../store/ledger-store.js';
import type { Expectation, JobPatch, JobStore } from '../store/store.js';
import { DEFAULT_START_WINDOW_MS, type DeadlineOptions, claimDeadline, overdueEnd, runDeadline } from './deadlines.js';
import { RunningCaps, type RunningLimits } from './running-caps.js';

/** Where a job can run besides this node: the mesh. */
export interface Placement {
  /** Whether this node itself can run the job (limits, image). */
  fitsLocally(job: Job): boolean;
  /** Whether an idle peer would serve the job better (it has the image; this node lacks it). */
  prefersRemote(job: Job): boolean;
  /** An idle peer that fits, holding one of its slots, or undefined. */
  choosePeer(job: Job, exclude: ReadonlySet<string>): RemoteTarget | undefined;
  /** Gives back the slot choosePeer held. */
  release(peerId: string): void;
  /** Keeps a peer out of placement for a while after it refused or failed. */
  suspend(peerId: string, ms: number): void;
}

export interface RemoteTarget {
  peerId: string;
  executor: Executor;
}

interface Target {
  nodeId: string;
  executor: Executor;
  remote: boolean;
}

interface Active {
  executionId: string;
  target: Target;
}

export interface SchedulerDeps {
  store: JobStore;
  executor: Executor;
  events: TypedEmitter<JobEventMap>;
  log: Logger;
  nodeId: string;
  slots: number;
  /** Executions a job gets when the node (or peer) stops under it, before it fails. */
  maxAttempts: number;
  /** How long a claim holds a job without renewal; the holder renews at a third of it. */
  leaseTtlMs: number;
  /** Wait before a requeued job is tried again, doubled per attempt (capped at a minute). */
  retryBackoffMs: number;
  placement?: Placement;
  /** The account this node earns for; replicas it runs are claimed under it. Default `node-<nodeId>` (Accounts.ofPeer). */
  accountId?: string;
  /** Caps on the jobs one owner has running at once; none when absent. */
  limits?: RunningLimits;
  /**
   * Past a job's timeout, how long before the server ends an execution whose worker has
   * not reported (deadlines.ts). Default: one lease TTL, so a report sent at the last
   * moment has a full lease period to arrive.
   */
  deadlineGraceMs?: number;
  /** How long a claimed job may take to start before it goes back to the queue. Default 5 min. */
  startWindowMs?: number;
}

export interface SubmitOptions {
  /** The job's id; a new UUID when absent (an escrow transfer names it beforehand). */
  id?: string;
  /** The paying account. */
  owner?: string;
  /** Moves the reward into escrow in the same transaction as the insert. */
  escrow?: Transfer;
  /** Redundant execution: this many different workers run the job (2 or more). */
  replicas?: number;
  title?: string;
  description?: string;
  reward?: string;
  pinned?: boolean;
  origin?: string;
}

/** Pending jobs looked at per pass; the rest wait their turn. */
const SCAN_LIMIT = 256;
const SUSPEND_REFUSED_MS = 5_000;
const SUSPEND_FAILED_MS = 30_000;
const MAX_BACKOFF_MS = 60_000;
/** Expired leases handled per sweep. */
const SWEEP_LIMIT = 100;

export class Scheduler {
  /** jobId → what runs it now. */
  private readonly active = new Map<string, Active>();
  /** jobId → peers that refused or failed it; not asked again for that job. */
  private readonly failedPeers = new Map<string, Set<string>>();
  private readonly cancelRequested = new Set<string>();
  private readonly tasks = new Set<Promise<void>>();
  private started = false;
  private stopping = false;
  private pumping = false;
  private pumpAgain = false;
  private readonly timers: NodeJS.Timeout[] = [];
  /** Output of executions this process relays but does not run itself (runners). */
  private readonly outputSources: Array<(jobId: string) => OutputSnapshot | undefined> = [];
  private sweeping = false;
  private readonly deadlines: DeadlineOptions;
  private readonly caps: RunningCaps;
  private readonly accountId: string;

  constructor(private readonly deps: SchedulerDeps) {
    this.deadlines = { graceMs: deps.deadlineGraceMs ?? deps.leaseTtlMs, startWindowMs: deps.startWindowMs ?? DEFAULT_START_WINDOW_MS };
    this.caps = new RunningCaps(deps.store, deps.limits);
    this.accountId = deps.accountId ?? `node-${deps.nodeId}`;
  }

  /** This node's own slots (forwarded jobs use peers' slots, not these). */
  get slots(): { total: number; used: number; free: number } {
    const used = this.localUsed();
    return { total: this.deps.slots, used, free: Math.max(this.deps.slots - used, 0) };
  }

  /** Recovers what a previous run of this node left, then starts taking work. */
  async start(): Promise<void> {
    await this.deps.executor.reapOrphans();
    for (const job of await this.deps.store.withStatus(['scheduled', 'running'])) {
      // Jobs held by runners or by other servers on the same database keep their leases;
      // those run on, or come back when their leases expire.
      if (job.executedBy !== undefined && job.executedBy !== this.deps.nodeId) continue;
      // A redundant job's parent never runs itself: its replicas decide it.
      if (job.replicas) continue;
      if (job.origin) {
        // The forwarding node saw its stream break and retries the job itself.
        await this.fail(job, 'node_restarted', `the node restarted while it ran; its origin ${job.origin} places it again`);
      } else {
        await this.requeueOrFail(job, 'the node restarted while it ran', 'node_restarted');
      }
    }
    this.started = true;
    const { leaseTtlMs } = this.deps;
    this.every(leaseTtlMs / 3, () => this.renewOwnLeases());
    this.every(Math.min(1000, leaseTtlMs / 3), () => this.sweep());
    this.pump();
  }

  private every(ms: number, fn: () => Promise<void>): void {
    const timer = setInterval(() => {
      fn().catch((err: unknown) => this.deps.log.error(`scheduler: ${messageOf(err)}`));
    }, ms);
    timer.unref();
    this.timers.push(timer);
  }

  /** Keeps the leases of what runs here (and on peers for this node) alive; stops what lost its lease. */
  private async renewOwnLeases(): Promise<void> {
    const held = [...this.active.entries()];
    if (held.length === 0) return;
    const renewed = new Set(await this.deps.store.renewLeases(held.map(([, a]) => a.executionId), this.deps.leaseTtlMs));
    for (const [jobId, { executionId, target }] of held) {
      if (renewed.has(executionId) || this.active.get(jobId)?.executionId !== executionId) continue;
      this.deps.log.warn(`job ${jobId}: lease ${executionId} was lost (expired or ended elsewhere); stopping this execution`);
      await target.executor.cancel(executionId);
    }
  }

  /** Puts back jobs whose holders stopped renewing their leases (a runner died, a server crashed). */
  private async sweep(): Promise<void> {
    if (this.sweeping || this.stopping) return;
    this.sweeping = true;
    try {
      for (const job of await this.deps.store.expiredLeases(SWEEP_LIMIT)) {
        await this.requeueOrFail(job, `the lease of ${job.executedBy ?? 'its holder'} expired`, 'lease_expired', {
          leaseExpired: true,
        });
      }
      for (const job of await this.deps.store.overdue(SWEEP_LIMIT)) await this.endOverdue(job);
      // Backoffs end with time, not with an event: look at the queue again.
      this.pump();
    } finally {
      this.sweeping = false;
    }
  }

  /** Ends an execution held past its deadline, under its lease: heartbeats cannot keep a job past its time. */
  private async endOverdue(job: Job): Promise<void> {
    const end = overdueEnd(job, this.deadlines, this.liveOutput(job.id));
    const lease: Expectation = { status: [job.status], executionId: job.executionId!, deadlinePassed: true };
    if (end.kind === 'requeue') {
      await this.requeueOrFail(job, end.why, 'lease_expired', lease);
    } else if (await this.write(job.id, lease, end.patch)) {
      this.deps.log.warn(`job ${job.id}: ${end.patch.message}`);
    }
    // Stops it at once when it runs here or on a peer for this node (renewals would, later).
    const active = this.active.get(job.id);
    if (active && active.executionId === job.executionId) await active.target.executor.cancel(active.executionId);
  }

  /** Epoch ms by which an execution of `job` claimed now must have ended (it is moved once, when it starts). */
  claimDeadline(job: Pick<Job, 'spec'>): number {
    return claimDeadline(job.spec, this.deadlines);
  }

  async submit(spec: JobSpec, options: SubmitOptions = {}): Promise<Job> {
    if (this.stopping) {
      throw new GridxError('UNAVAILABLE', 'this node is shutting down and takes no new jobs; submit to another node');
    }
    if (!this.started) throw new GridxError('UNAVAILABLE', 'this node is still starting; try again in a moment');
    const id = options.id ?? randomUUID();
    const fields = {
      spec,
      ...(options.owner ? { owner: options.owner } : {}),
      ...(options.description ? { description: options.description } : {}),
      ...(options.reward ? { reward: options.reward } : {}),
    };
    const k = options.replicas ?? 1;
    const replicas =
      k > 1
        ? Array.from({ length: k }, (_, i) => ({
            ...fields,
            id: randomUUID(),
            title: `${options.title ?? spec.image} (replica ${i + 1} of ${k})`,
          }))
        : undefined;
    const job = await this.deps.store.insert(
      {
        ...fields,
        id,
        ...(options.title ? { title: options.title } : {}),
        ...(options.pinned ? { pinned: true } : {}),
        ...(options.origin ? { origin: options.origin } : {}),
        ...(replicas ? { replicas } : {}),
      },
      options.escrow,
    );
    this.deps.events.emit('job:status', { job });
    this.pump();
    return job;
  }

  /**
   * Cancels a job; returns it as it stands after the request (terminal, or on its way).
   * A job held elsewhere (a runner, another server) is cancelled by ending its lease: the
   * holder's next renewal fails and it stops the container.
   */
  async cancel(id: string): Promise<Job> {
    const job = await this.deps.store.get(id);
    if (!job) throw new GridxError('NOT_FOUND', `no job with id ${id} on this node`);
    if (isTerminal(job.status)) {
      if (job.status === 'cancelled') return job;
      throw new GridxError('CONFLICT', `job ${id} already ended as ${job.status}; nothing to cancel`);
    }
    if (job.replicas) {
      // The parent first, so its replicas ending under the cancel cannot decide it.
      const cancelled = await this.write(id, { status: ['running'] }, { status: 'cancelled', reason: 'cancelled', message: 'cancelled by request', finishedAt: now() });
      for (const replica of await this.deps.store.children(id)) {
        if (!isTerminal(replica.status)) await this.cancel(replica.id).catch(() => {});
      }
      return cancelled ?? (await this.deps.store.get(id))!;
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
    const active = this.active.get(id);
    if (!active && job.executionId) {
      const cancelled = await this.write(
        id,
        { status: ['scheduled', 'running'], executionId: job.executionId },
        { status: 'cancelled', reason: 'cancelled', message: 'cancelled by request', finishedAt: now(), executionId: null },
      );
      return cancelled ?? this.cancel(id);
    }
    this.cancelRequested.add(id);
    if (active) await active.target.executor.cancel(active.executionId);
    return (await this.deps.store.get(id))!;
  }

  /** Output of a job running now, here or on a peer for this node. */
  liveOutput(jobId: string): OutputSnapshot | undefined {
    const active = this.active.get(jobId);
    if (active) return active.target.executor.logs(active.executionId);
    for (const source of this.outputSources) {
      const out = source(jobId);
      if (out) return out;
    }
    return undefined;
  }

  /** Adds a place liveOutput looks for jobs that run elsewhere (the runner hub). */
  addOutputSource(source: (jobId: string) => OutputSnapshot | undefined): void {
    this.outputSources.push(source);
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

  /** Looks at the queue again (the mesh calls this when a peer's offer changes). */
  poke(): void {
    if (this.started) this.pump();
  }

  /** Stops taking work; running jobs are stopped and requeued for the next start. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.timers.forEach(clearInterval);
    await Promise.all([...this.active.values()].map((a) => a.target.executor.cancel(a.executionId)));
    await Promise.allSettled([...this.tasks]);
    await this.deps.executor.stop();
  }

  private localUsed(): number {
    let used = 0;
    for (const a of this.active.values()) if (!a.target.remote) used++;
    return used;
  }

  /** Where `job` should run now, or undefined when nowhere can take it yet. */
  private choose(job: Job): Target | undefined {
    const { placement } = this.deps;
    const local: Target = { nodeId: this.deps.nodeId, executor: this.deps.executor, remote: false };
    const localOk = this.localUsed() < this.deps.slots && (placement?.fitsLocally(job) ?? true);
    // Replicas run here or on runners, where the distinct-worker rule can be kept; never forwarded.
    if (job.pinned || job.parent || !placement) return localOk ? local : undefined;
    if (localOk && !placement.prefersRemote(job)) return local;
    const peer = placement.choosePeer(job, this.failedPeers.get(job.id) ?? new Set());
    if (peer) return { nodeId: peer.peerId, executor: peer.executor, remote: true };
    return localOk ? local : undefined;
  }

  /** Fills free slots, here and on peers, from the queue, oldest first. */
  private pump(): void {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    const loop = async () => {
      do {
        this.pumpAgain = false;
        if (this.stopping) break;
        if (!this.deps.placement && this.localUsed() >= this.deps.slots) break;
        const caps = await this.caps.pass();
        for (const job of await this.deps.store.pendingReady(SCAN_LIMIT, caps.filter())) {
          if (this.stopping) break;
          if (!this.deps.placement && this.localUsed() >= this.deps.slots) break;
          if (!caps.admits(job.owner)) continue; // it waits for one of its owner's jobs to end
          const target = this.choose(job);
          if (!target) continue;
          const executionId = randomUUID();
          // A replica is claimed under this node's account: the store refuses it when the
          // account holds, or held, another replica of the task (replicas are never forwarded).
          const claimed = await this.deps.store.claim(job.id, target.nodeId, executionId, this.deps.leaseTtlMs, {
            ...(target.remote ? {} : { accountId: this.accountId }),
            deadlineAt: this.claimDeadline(job),
          });
          if (!claimed) {
            if (target.remote) this.deps.placement?.release(target.nodeId);
            continue;
          }
          caps.took(job.owner);
          this.launch(claimed, executionId, target);
        }
      } while (this.pumpAgain && !this.stopping);
    };
    loop()
      .catch((err: unknown) => this.deps.log.error(`queue: ${messageOf(err)}`))
      .finally(() => {
        this.pumping = false;
      });
  }

  private launch(job: Job, executionId: string, target: Target): void {
    this.deps.events.emit('job:status', { job });
    this.active.set(job.id, { executionId, target });
    const task = this.execute(job, executionId, target)
      .catch((err: unknown) => this.deps.log.error(`job ${job.id}: ${messageOf(err)}`))
      .finally(() => {
        this.active.delete(job.id);
        this.cancelRequested.delete(job.id);
        if (target.remote) this.deps.placement?.release(target.nodeId);
        this.tasks.delete(task);
        this.pump();
      });
    this.tasks.add(task);
  }

  private async execute(job: Job, executionId: string, target: Target): Promise<void> {
    const { events, log } = this.deps;
    const { executor } = target;
    const lease: Expectation = { status: ['scheduled', 'running'], executionId };
    try {
      await executor.start(
        { executionId, jobId: job.id, spec: job.spec },
        { onOutput: (stream, data) => events.emit('job:output', { jobId: job.id, stream, data }) },
      );
    } catch (err) {
      if (this.stopping) return void (await this.requeueOrFail(job, 'the node stopped while it started', 'node_restarted'));
      if (target.remote && !this.cancelRequested.has(job.id)) {
        // The peer said no (busy, limits) or could not be reached: not the job's fault.
        this.avoid(job.id, target.nodeId, SUSPEND_REFUSED_MS);
        log.info(`job ${job.id}: peer ${target.nodeId} did not take it (${messageOf(err)}); placing it elsewhere`);
        await this.unclaim(job, executionId, `peer ${target.nodeId} did not take it: ${messageOf(err)}`);
        return;
      }
      const reason = isGridxError(err, 'IMAGE_NOT_FOUND') ? 'image_not_found' : 'executor_error';
      log.warn(`job ${job.id} could not start: ${messageOf(err)}`);
      await this.failExecution(job.id, executionId, reason, messageOf(err));
      return;
    }
    // A peer's acceptance is not its start (it may still queue and pull): the claim's deadline stays.
    await this.markRunning(job, executionId, { keepDeadline: target.remote });

    let result: ExecutionResult;
    try {
      result = await executor.wait(executionId);
    } catch (err) {
      if (target.remote) {
        this.avoid(job.id, target.nodeId, SUSPEND_FAILED_MS);
        log.warn(`job ${job.id}: peer ${target.nodeId} failed under it: ${messageOf(err)}`);
        await this.requeueOrFail(job, `peer ${target.nodeId} failed or vanished while it ran`, 'peer_failed');
        return;
      }
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
      await this.requeueOrFail(job, 'the node stopped while it ran', 'node_restarted');
      return;
    }
    const written = await this.finish(job, executionId, result);
    if (!written) log.warn(`job ${job.id}: result of execution ${executionId} arrived after its lease ended; ignored`);
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

  /** Ends an execution that could not run (no image, engine failure) as the job's failure. */
  failExecution(jobId: string, executionId: string, reason: FailureReason, message: string): Promise<Job | undefined> {
    return this.write(
      jobId,
      { status: ['scheduled', 'running'], executionId },
      { status: 'failed', reason, message, finishedAt: now(), executionId: null },
    );
  }

  /** Ends a redundant job's parent (running, never leased) as its replicas decided. */
  endGroup(parentId: string, patch: JobPatch): Promise<Job | undefined> {
    return this.write(parentId, { status: ['running'] }, patch);
  }

  /** scheduled → running under the lease, when the container has started; its deadline then counts from the start. */
  markRunning(job: Pick<Job, 'id' | 'spec'>, executionId: string, options: { keepDeadline?: boolean } = {}): Promise<Job | undefined> {
    const at = Date.now();
    return this.write(
      job.id,
      { status: ['scheduled'], executionId },
      {
        status: 'running',
        startedAt: new Date(at).toISOString(),
        ...(options.keepDeadline ? {} : { deadlineAt: runDeadline(job.spec, this.deadlines, at) }),
      },
    );
  }

  private avoid(jobId: string, peerId: string, ms: number): void {
    let peers = this.failedPeers.get(jobId);
    if (!peers) this.failedPeers.set(jobId, (peers = new Set()));
    peers.add(peerId);
    this.deps.placement?.suspend(peerId, ms);
  }

  /**
   * A job whose execution was lost goes back to the queue after a backoff, or fails once it
   * has used its attempts. `extra` narrows the conditional write (the sweep requires the
   * lease to be still expired, so a renewal that wins the race keeps the job).
   */
  async requeueOrFail(job: Job, why: string, reason: FailureReason, extra: Partial<Expectation> = {}): Promise<void> {
    const lease = { ...this.leaseOf(job), ...extra };
    if (job.attempts >= this.deps.maxAttempts) {
      await this.fail(job, reason, `${why}, and it has used all ${this.deps.maxAttempts} attempts`, lease);
      return;
    }
    const backoffMs = Math.min(this.deps.retryBackoffMs * 2 ** Math.max(job.attempts - 1, 0), MAX_BACKOFF_MS);
    const requeued = await this.write(job.id, lease, {
      status: 'pending',
      message: `requeued: ${why} (attempt ${job.attempts} of ${this.deps.maxAttempts})`,
      executionId: null,
      notBefore: Date.now() + backoffMs,
    });
    if (requeued) this.deps.log.info(`job ${job.id} requeued: ${why}; retried in ${backoffMs} ms`);
  }

  private async fail(job: Job, reason: FailureReason, message: string, lease = this.leaseOf(job)): Promise<void> {
    const failed = await this.write(job.id, lease, { status: 'failed', reason, message, finishedAt: now(), executionId: null });
    this.failedPeers.delete(job.id);
    if (failed) this.deps.log.warn(`job ${job.id} failed: ${message}`);
  }

  private leaseOf(job: Job): Expectation {
    return { status: ['scheduled', 'running'], ...(job.executionId ? { executionId: job.executionId } : {}) };
  }

  /** A conditional write that announces the change; undefined when the race was lost. */
  private async write(id: string, expect: Expectation, patch: JobPatch): Promise<Job | undefined> {
    const illegal = expect.status.find((from) => !canTransition(from, patch.status));
    if (illegal) throw new Error(`bug: ${illegal} → ${patch.status} is not a job transition (job ${id})`);
    const job = await this.deps.store.transition(id, expect, patch);
    if (job) {
      if (isTerminal(job.status)) this.failedPeers.delete(id);
      this.deps.events.emit('job:status', { job });
    } else {
      this.deps.log.debug(`job ${id}: transition to ${patch.status} skipped, it was no longer ${expect.status.join('/')}`);
    }
    return job;
  }
}

function now(): string {
  return new Date().toISOString();
}
