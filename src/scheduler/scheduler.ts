/**
 * The scheduler: the face the API and the mesh talk to (submit, cancel, wait, live output,
 * slots), composed of the Lifecycle (the one writer of job status, lifecycle.ts), the
 * Leases (claim, renewal, sweep, leases.ts) and the local Dispatcher (this node's slots
 * and peers, dispatcher.ts). The runner hub and the verifier use the same Lifecycle and
 * Leases, which it exposes for the wiring in src/node/.
 * Start: dispatcher (reap orphans, recover what a restart left, take work) → leases
 * (renewal and sweep). Stop: refuse new jobs → leases → dispatcher (stop and requeue
 * running jobs, stop the executor).
 */

import { randomUUID } from 'node:crypto';
import type { JobEventMap, TypedEmitter } from '../domain/events.js';
import { type Job, type JobSpec, isTerminal } from '../domain/job.js';
import type { Startable } from '../domain/startable.js';
import { GridxError } from '../errors.js';
import type { Executor, OutputSnapshot } from '../executor/executor.js';
import type { Logger } from '../logger.js';
import type { Transfer } from '../store/ledger-store.js';
import type { JobStore } from '../store/store.js';
import { DEFAULT_START_WINDOW_MS } from './deadlines.js';
import { Dispatcher, type Placement } from './dispatcher.js';
import { Leases } from './leases.js';
import { Lifecycle } from './lifecycle.js';
import type { RunningLimits } from './running-caps.js';

export type { Placement, RemoteTarget } from './dispatcher.js';

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
  /** Awaited before a job's terminal write: the output it printed is stored before its result. */
  outputStored?: (jobId: string) => Promise<void>;
  /** Whether this process sweeps expired leases now (the lease-sweep duty); always when absent. */
  sweepsLeases?: () => boolean;
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

export class Scheduler implements Startable {
  readonly lifecycle: Lifecycle;
  readonly leases: Leases;
  private readonly dispatcher: Dispatcher;
  /** Output of executions this process relays but does not run itself (runners). */
  private readonly outputSources: Array<(jobId: string) => OutputSnapshot | undefined> = [];
  private started = false;
  private stopping = false;

  constructor(private readonly deps: SchedulerDeps) {
    const { store, events, log } = deps;
    this.lifecycle = new Lifecycle({
      store,
      events,
      log,
      maxAttempts: deps.maxAttempts,
      retryBackoffMs: deps.retryBackoffMs,
      ...(deps.outputStored ? { outputStored: deps.outputStored } : {}),
    });
    this.leases = new Leases({
      store,
      lifecycle: this.lifecycle,
      log,
      leaseTtlMs: deps.leaseTtlMs,
      deadlines: { graceMs: deps.deadlineGraceMs ?? deps.leaseTtlMs, startWindowMs: deps.startWindowMs ?? DEFAULT_START_WINDOW_MS },
      ...(deps.limits ? { limits: deps.limits } : {}),
      liveOutput: (jobId) => this.liveOutput(jobId),
      ...(deps.sweepsLeases ? { inCharge: deps.sweepsLeases } : {}),
    });
    this.dispatcher = new Dispatcher({
      store,
      lifecycle: this.lifecycle,
      leases: this.leases,
      executor: deps.executor,
      events,
      log,
      nodeId: deps.nodeId,
      accountId: deps.accountId ?? `node-${deps.nodeId}`,
      slots: deps.slots,
      ...(deps.placement ? { placement: deps.placement } : {}),
    });
    this.leases.keep(this.dispatcher);
    this.leases.onSwept(() => this.dispatcher.poke());
  }

  /** This node's own slots (forwarded jobs use peers' slots, not these). */
  get slots(): { total: number; used: number; free: number } {
    return this.dispatcher.slots;
  }

  async start(): Promise<void> {
    await this.dispatcher.start();
    this.started = true;
    await this.leases.start();
  }

  /** Stops taking work; running jobs are stopped and requeued for the next start. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.leases.stop();
    await this.dispatcher.stop();
  }

  async submit(spec: JobSpec, options: SubmitOptions = {}): Promise<Job> {
    if (this.stopping) {
      throw new GridxError('UNAVAILABLE', 'this node is shutting down and takes no new jobs; submit to another node');
    }
    if (!this.started) throw new GridxError('UNAVAILABLE', 'this node is still starting; try again in a moment');
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
    const job = await this.lifecycle.create(
      {
        ...fields,
        id: options.id ?? randomUUID(),
        ...(options.title ? { title: options.title } : {}),
        ...(options.pinned ? { pinned: true } : {}),
        ...(options.origin ? { origin: options.origin } : {}),
        ...(replicas ? { replicas } : {}),
      },
      options.escrow,
    );
    this.dispatcher.poke();
    return job;
  }

  /**
   * Cancels a job; returns it as it stands after the request (terminal, or on its way).
   * A job held elsewhere (a runner, another server) is cancelled by ending its lease: the
   * holder's next renewal fails and it stops the container.
   */
  async cancel(id: string): Promise<Job> {
    const { store } = this.deps;
    const job = await store.get(id);
    if (!job) throw new GridxError('NOT_FOUND', `no job with id ${id} on this node`);
    if (isTerminal(job.status)) {
      if (job.status === 'cancelled') return job;
      throw new GridxError('CONFLICT', `job ${id} already ended as ${job.status}; nothing to cancel`);
    }
    if (job.replicas) {
      // The parent first, so its replicas ending under the cancel cannot decide it.
      const cancelled = await this.lifecycle.cancelGroup(id);
      for (const replica of await store.children(id)) {
        if (!isTerminal(replica.status)) await this.cancel(replica.id).catch(() => {});
      }
      return cancelled ?? (await store.get(id))!;
    }
    if (job.status === 'pending') {
      // Claimed meanwhile: cancel the execution instead.
      return (await this.lifecycle.cancelPending(id)) ?? this.cancel(id);
    }
    if (!this.dispatcher.runs(id) && job.executionId) {
      return (await this.lifecycle.cancelHeld(id, job.executionId)) ?? this.cancel(id);
    }
    await this.dispatcher.cancel(id);
    return (await store.get(id))!;
  }

  /** Output of a job running now, here, on a peer for this node, or on a runner. */
  liveOutput(jobId: string): OutputSnapshot | undefined {
    const own = this.dispatcher.liveOutput(jobId);
    if (own) return own;
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
    if (this.started) this.dispatcher.poke();
  }
}
