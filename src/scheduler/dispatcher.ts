/**
 * The local dispatcher: fills this node's slots, and idle peers of the mesh, from the
 * queue. It claims through the Leases, runs each execution on its executor (local Docker,
 * or a peer behind the Placement port), and reports what happened to the Lifecycle. Its
 * leases are renewed by the Leases' timer; one it loses is stopped.
 */

import type { JobEventMap, TypedEmitter } from '../domain/events.js';
import { type ExecutionResult, type Job, isTerminal, startFailureOf } from '../domain/job.js';
import type { Startable } from '../domain/startable.js';
import { isGridxError, messageOf } from '../errors.js';
import type { Executor, OutputSnapshot } from '../executor/executor.js';
import type { Logger } from '../logger.js';
import type { JobStore } from '../store/store.js';
import type { Claimant, LeaseHolder, Leases } from './leases.js';
import type { Lifecycle } from './lifecycle.js';

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

interface Target extends Claimant {
  executor: Executor;
  remote: boolean;
}

interface Active {
  executionId: string;
  target: Target;
}

export interface DispatcherDeps {
  store: JobStore;
  lifecycle: Lifecycle;
  leases: Leases;
  executor: Executor;
  events: TypedEmitter<JobEventMap>;
  log: Logger;
  nodeId: string;
  /** The account this node earns for; replicas it runs are claimed under it. */
  accountId: string;
  slots: number;
  placement?: Placement;
}

/** A peer that refused a job, or could not be reached to take it: out of placement, and out of that job's. */
const REFUSED = { suspendMs: 5_000, jobMs: 60_000 };
/** A peer whose connection broke, or that failed, under a running job: it may be back in a while. */
const FAILED = { suspendMs: 30_000, jobMs: 30_000 };

export class Dispatcher implements Startable, LeaseHolder {
  /** jobId → what runs it now. */
  private readonly active = new Map<string, Active>();
  /**
   * jobId → peers that refused or failed it → until when that job does not ask them again.
   * It ends: a peer whose connection broke under a job may be back, and may be the only one
   * that can run it. A failure costs the job an attempt; a refusal does not, so a peer that
   * keeps refusing is asked again once a minute while the job waits (one stream each time).
   */
  private readonly failedPeers = new Map<string, Map<string, number>>();
  private readonly cancelRequested = new Set<string>();
  private readonly tasks = new Set<Promise<void>>();
  private started = false;
  private stopping = false;
  private pumping = false;
  private pumpAgain = false;
  private off = () => {};

  constructor(private readonly deps: DispatcherDeps) {}

  /** This node's own slots (forwarded jobs use peers' slots, not these). */
  get slots(): { total: number; used: number; free: number } {
    const used = this.localUsed();
    return { total: this.deps.slots, used, free: Math.max(this.deps.slots - used, 0) };
  }

  /** Recovers what a previous run of this node left, then starts taking work. */
  async start(): Promise<void> {
    const { executor, store, lifecycle, nodeId } = this.deps;
    this.off = this.deps.events.on('job:status', ({ job }) => {
      if (isTerminal(job.status)) this.failedPeers.delete(job.id);
    });
    await executor.reapOrphans();
    for (const job of await store.withStatus(['scheduled', 'running'])) {
      // Jobs held by runners or by other servers on the same database keep their leases;
      // those run on, or come back when their leases expire.
      if (job.executedBy !== undefined && job.executedBy !== nodeId) continue;
      // A redundant job's parent never runs itself: its replicas decide it.
      if (job.replicas) continue;
      if (job.origin) {
        // The forwarding node saw its stream break and retries the job itself.
        await lifecycle.fail(job, 'node_restarted', `the node restarted while it ran; its origin ${job.origin} places it again`);
        this.failedPeers.delete(job.id);
      } else {
        await lifecycle.requeueOrFail(job, 'the node restarted while it ran', 'node_restarted');
      }
    }
    this.started = true;
    this.pump();
  }

  /** Stops taking work; running jobs are stopped (and requeued) before it resolves. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.off();
    await Promise.all([...this.active.values()].map((a) => a.target.executor.cancel(a.executionId)));
    await Promise.allSettled([...this.tasks]);
    await this.deps.executor.stop();
  }

  held(): Array<{ jobId: string; executionId: string }> {
    return [...this.active].map(([jobId, a]) => ({ jobId, executionId: a.executionId }));
  }

  async lost(jobId: string, executionId: string): Promise<void> {
    const active = this.active.get(jobId);
    if (active?.executionId === executionId) await active.target.executor.cancel(executionId);
  }

  /** Whether an execution of `jobId` runs from here (on this node or a peer). */
  runs(jobId: string): boolean {
    return this.active.has(jobId);
  }

  /** Stops the execution of `jobId` that runs from here; its result then records the cancel. */
  async cancel(jobId: string): Promise<void> {
    this.cancelRequested.add(jobId);
    const active = this.active.get(jobId);
    if (active) await active.target.executor.cancel(active.executionId);
  }

  /** Output of a job running from here. */
  liveOutput(jobId: string): OutputSnapshot | undefined {
    const active = this.active.get(jobId);
    return active ? active.target.executor.logs(active.executionId) : undefined;
  }

  /** Looks at the queue again (a submit, a peer's offer changed, a backoff may have ended). */
  poke(): void {
    if (this.started) this.pump();
  }

  private localUsed(): number {
    let used = 0;
    for (const a of this.active.values()) if (!a.target.remote) used++;
    return used;
  }

  private hasRoom(): boolean {
    return !this.stopping && (this.deps.placement !== undefined || this.localUsed() < this.deps.slots);
  }

  /** Where `job` should run now, or undefined when nowhere can take it yet. */
  private choose(job: Job): Target | undefined {
    const { placement, nodeId, executor, accountId } = this.deps;
    const local: Target = { holder: nodeId, accountId, executor, remote: false };
    const localOk = this.localUsed() < this.deps.slots && (placement?.fitsLocally(job) ?? true);
    // Replicas run here or on runners, where the distinct-worker rule can be kept; never forwarded.
    if (job.pinned || job.parent || !placement) return localOk ? local : undefined;
    if (localOk && !placement.prefersRemote(job)) return local;
    const peer = placement.choosePeer(job, this.avoided(job.id));
    if (peer) return { holder: peer.peerId, executor: peer.executor, remote: true };
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
        await this.deps.leases.claimFromQueue<Target>({
          more: () => this.hasRoom(),
          pick: (job) => this.choose(job),
          missed: (_job, target) => {
            if (target.remote) this.deps.placement?.release(target.holder);
          },
          took: (job, executionId, target) => this.launch(job, executionId, target),
        });
      } while (this.pumpAgain && !this.stopping);
    };
    loop()
      .catch((err: unknown) => this.deps.log.error(`queue: ${messageOf(err)}`))
      .finally(() => {
        this.pumping = false;
      });
  }

  private launch(job: Job, executionId: string, target: Target): void {
    this.active.set(job.id, { executionId, target });
    const task = this.execute(job, executionId, target)
      .catch((err: unknown) => this.deps.log.error(`job ${job.id}: ${messageOf(err)}`))
      .finally(() => {
        this.active.delete(job.id);
        this.cancelRequested.delete(job.id);
        if (target.remote) this.deps.placement?.release(target.holder);
        this.tasks.delete(task);
        this.pump();
      });
    this.tasks.add(task);
  }

  private async execute(job: Job, executionId: string, target: Target): Promise<void> {
    const { events, log, lifecycle, leases } = this.deps;
    const { executor } = target;
    try {
      await executor.start(
        { executionId, jobId: job.id, spec: job.spec },
        { onOutput: (stream, data) => events.emit('job:output', { jobId: job.id, stream, data }) },
      );
    } catch (err) {
      if (this.stopping) return void (await lifecycle.requeueOrFail(job, 'the node stopped while it started', 'node_restarted'));
      if (target.remote && !this.cancelRequested.has(job.id)) {
        // The peer said no (busy, limits) or could not be reached: not the job's fault.
        this.avoid(job.id, target.holder, REFUSED);
        log.info(`job ${job.id}: peer ${target.holder} did not take it (${messageOf(err)}); placing it elsewhere`);
        await lifecycle.unclaim(job, executionId, `peer ${target.holder} did not take it: ${messageOf(err)}`);
        return;
      }
      const reason = startFailureOf(isGridxError(err) ? err.code : undefined);
      log.warn(`job ${job.id} could not start: ${messageOf(err)}`);
      await lifecycle.failExecution(job.id, executionId, reason, messageOf(err));
      return;
    }
    // A peer's acceptance is not its start (it may still queue and pull): the claim's deadline stays.
    await lifecycle.markRunning(job, executionId, target.remote ? undefined : leases.runDeadline(job));

    let result: ExecutionResult;
    try {
      result = await executor.wait(executionId);
    } catch (err) {
      if (target.remote) {
        this.avoid(job.id, target.holder, FAILED);
        log.warn(`job ${job.id}: peer ${target.holder} failed under it: ${messageOf(err)}`);
        await lifecycle.requeueOrFail(job, `peer ${target.holder} failed or vanished while it ran`, 'peer_failed');
        return;
      }
      // The engine failed under a running job (daemon restarted, container vanished).
      log.warn(`job ${job.id} lost its container: ${messageOf(err)}`);
      await lifecycle.failExecution(job.id, executionId, 'executor_error', `the container was lost while the job ran: ${messageOf(err)}`);
      return;
    }
    if (this.stopping && !this.cancelRequested.has(job.id) && !result.timedOut && result.cancelled) {
      await lifecycle.requeueOrFail(job, 'the node stopped while it ran', 'node_restarted');
      return;
    }
    const written = await lifecycle.finish(job, executionId, result);
    if (!written) log.warn(`job ${job.id}: result of execution ${executionId} arrived after its lease ended; ignored`);
  }

  private avoid(jobId: string, peerId: string, { suspendMs, jobMs }: { suspendMs: number; jobMs: number }): void {
    let peers = this.failedPeers.get(jobId);
    if (!peers) this.failedPeers.set(jobId, (peers = new Map()));
    peers.set(peerId, Date.now() + jobMs);
    this.deps.placement?.suspend(peerId, suspendMs);
  }

  /** The peers `jobId` does not ask now. */
  private avoided(jobId: string): Set<string> {
    const peers = this.failedPeers.get(jobId);
    const now = Date.now();
    const avoided = new Set<string>();
    for (const [peerId, until] of peers ?? []) {
      if (until > now) avoided.add(peerId);
      else peers!.delete(peerId);
    }
    return avoided;
  }
}
