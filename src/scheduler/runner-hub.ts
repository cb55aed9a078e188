/**
 * The server's side of `gridx runner`: registration and authentication of runners, and
 * relaying what they do. They claim jobs through the Leases (the execution id is the
 * lease token), renew them with their heartbeats, stream output and report results,
 * which go to the Lifecycle. Every report is checked against the live lease: a stale
 * token (expired, cancelled, requeued) or another runner's is refused, so a job completes
 * exactly once however often it was executed.
 */

import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { JobEventMap, TypedEmitter } from '../domain/events.js';
import { type ExecutionResult, type Job, type JobSpec, type StartFailure, isTerminal, outcomeOf } from '../domain/job.js';
import type { JobLimits } from '../domain/offer.js';
import type { SpecPolicy } from '../domain/spec.js';
import type { Startable } from '../domain/startable.js';
import { MAX_OUTPUT_FILES, type OutputManifest, inputDigests } from '../domain/data.js';
import { formatSize } from '../domain/units.js';
import { GridxError, quote } from '../errors.js';
import type { BlobRef } from '../wire/gridx.js';
import type { OutputStream, OutputSnapshot } from '../executor/executor.js';
import { CappedOutput } from '../executor/output.js';
import { verifyResult } from '../domain/result-digest.js';
import type { Logger } from '../logger.js';
import type { BlobStore } from '../storage/blob-store.js';
import type { ExecutionRecord, JobStore, RunnerRecord, RunnerSummary } from '../store/store.js';
import { type Claimant, type Leases, renewEveryMs } from './leases.js';
import type { Lifecycle } from './lifecycle.js';

export interface RunnerRegistration {
  /** The account its earnings are paid to (none on an open node without a key). */
  accountId?: string;
  /** Ed25519 public key (SPKI DER, base64) its results must be signed with. */
  publicKey: string;
  name: string;
  slots: number;
  labels: Record<string, string>;
  /** What the runner asked for; the rest is filled in by `runnerLimits`. */
  limits: Partial<JobLimits>;
  version: string;
}

/** The per-job limits runner defaults come from. */
export type RunnerDefaults = Pick<SpecPolicy, 'cpus' | 'memoryBytes' | 'timeoutMs'>;

/**
 * The limits a runner is held to: what it asked for; where it is silent, this server's own
 * per-job limits for cpus, memory and time, no GPUs, and no network. `none` is always
 * allowed, whatever else it lists.
 */
export function runnerLimits(asked: Partial<JobLimits>, defaults: RunnerDefaults): JobLimits {
  const networks = asked.networks ?? ['none'];
  return {
    cpus: asked.cpus ?? defaults.cpus,
    memoryBytes: asked.memoryBytes ?? defaults.memoryBytes,
    timeoutMs: asked.timeoutMs ?? defaults.timeoutMs,
    gpus: asked.gpus ?? 0,
    networks: networks.includes('none') ? networks : ['none', ...networks],
  };
}

/** A job handed to a runner: run `spec` and report under `leaseToken`. */
export interface ClaimedJob {
  leaseToken: string;
  jobId: string;
  attempt: number;
  spec: JobSpec;
  leaseExpiresAt: string;
}

export interface HeartbeatAnswer {
  /** Leases extended by this heartbeat. */
  renewed: string[];
  /** Leases the runner no longer holds (expired, cancelled, unknown): stop those executions. */
  lost: string[];
}

interface Relay {
  stdout: CappedOutput;
  stderr: CappedOutput;
}

export interface RunnerHubDeps {
  store: JobStore;
  lifecycle: Lifecycle;
  leases: Leases;
  events: TypedEmitter<JobEventMap>;
  log: Logger;
  /** Cap on output kept per stream, as for local jobs. */
  outputLimitBytes: number;
  /** This server's per-job limits: what a runner that names none of its own is held to. */
  policy: () => RunnerDefaults;
  /** Where jobs' input blobs are read from and runners' output files are stored. */
  blobs: Pick<BlobStore, 'put' | 'stat' | 'open'>;
  /** The most a job's outputs may hold here (runner.docker.outputs_size), whatever the runner's own volume. */
  maxOutputBytes: number;
}

/** What a runner uploaded under one lease: the files its result may name. */
interface Uploads {
  jobId: string;
  digests: Set<string>;
  bytes: number;
}

/** A blob a runner may read under its lease. */
export interface LeaseBlob {
  digest: string;
  size: number;
  open: (range?: { start: number; end: number }) => Readable;
}

/** Heartbeats at most this far apart, so that a cancel reaches a runner quickly. */
const MAX_HEARTBEAT_MS = 2000;
/** A waiting claim looks at the queue at least this often (jobs submitted to another server, ended backoffs). */
const RECHECK_MS = 500;

export class RunnerHub implements Startable {
  private readonly waiters = new Set<() => void>();
  /** leaseToken → output relayed so far, for live logs while the runner works. */
  private readonly relays = new Map<string, Relay & { jobId: string }>();
  /** leaseToken → output files uploaded under it, until the job ends or goes back to the queue. */
  private readonly uploads = new Map<string, Uploads>();
  private claiming: Promise<unknown> = Promise.resolve();
  /** Runners that said they are stopping: no more claims until they heartbeat again. */
  private readonly leaving = new Set<string>();
  private stopped = false;
  private off = () => {};

  constructor(private readonly deps: RunnerHubDeps) {}

  /** Wakes waiting claims when work comes back, and drops relays of executions that ended. */
  async start(): Promise<void> {
    this.stopped = false;
    this.off = this.deps.events.on('job:status', ({ job }) => {
      if (job.status === 'pending') this.wake();
      if (isTerminal(job.status) || job.status === 'pending') this.forget(job.id);
    });
  }

  /** How often runners should heartbeat: the lease renewal rule, and often enough that a cancel reaches them quickly. */
  get heartbeatMs(): number {
    return Math.min(Math.floor(renewEveryMs(this.deps.leases.ttlMs)), MAX_HEARTBEAT_MS);
  }

  async register(registration: RunnerRegistration): Promise<{ runner: RunnerRecord; token: string }> {
    const token = randomBytes(32).toString('base64url');
    const at = new Date().toISOString();
    const runner: RunnerRecord = {
      id: `runner-${randomUUID()}`,
      ...registration,
      limits: runnerLimits(registration.limits, this.deps.policy()),
      tokenHash: hashToken(token),
      registeredAt: at,
      lastHeartbeatAt: at,
    };
    await this.deps.store.addRunner(runner);
    this.deps.log.info(`runner ${runner.id} (${runner.name}) registered with ${runner.slots} slots`);
    return { runner, token };
  }

  /** The runner whose id and secret these are; 401 otherwise (the runner then registers again). */
  async authenticate(id: string, token: string | undefined): Promise<RunnerRecord> {
    if (!token) {
      throw new GridxError('UNAUTHORIZED', 'runner routes need "Authorization: Bearer <runner token>"; register with POST /api/runners');
    }
    const runner = await this.deps.store.getRunner(id);
    const given = Buffer.from(hashToken(token), 'hex');
    if (!runner || !timingSafeEqual(given, Buffer.from(runner.tokenHash, 'hex'))) {
      throw new GridxError('UNAUTHORIZED', `runner ${id} is unknown here or its token is wrong; register again with POST /api/runners`);
    }
    return runner;
  }

  list(): Promise<RunnerSummary[]> {
    return this.deps.store.listRunners();
  }

  /** Records that the runner is alive and renews the leases it still holds. */
  async heartbeat(runner: RunnerRecord, leases: readonly string[]): Promise<HeartbeatAnswer> {
    this.leaving.delete(runner.id);
    await this.deps.store.touchRunner(runner.id);
    // Only leases this runner holds are renewed: a token of another runner is reported lost.
    return this.deps.leases.renew(leases, runner.id);
  }

  /**
   * Up to `max` jobs that fit the runner, each under a new lease; waits up to `waitMs` for
   * work when there is none. Claims are serialized in this process (the store keeps them
   * atomic across processes), so runners waiting together do not race for the same job.
   */
  async claim(runner: RunnerRecord, max: number, waitMs: number, signal?: AbortSignal): Promise<ClaimedJob[]> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const claimed = await this.serialized(() => (signal?.aborted ? Promise.resolve([]) : this.claimOnce(runner, max)));
      if (claimed.length > 0 && signal?.aborted) {
        // The runner went away while we claimed: nobody will run these.
        await this.giveBack(claimed, `runner ${runner.name} left before it received the job`);
        return [];
      }
      if (claimed.length > 0 || this.stopped || signal?.aborted || Date.now() >= deadline) return claimed;
      await this.waitForWork(Math.min(RECHECK_MS, deadline - Date.now()), signal);
    }
  }

  /** Returns claimed jobs that could not be handed over, attempts given back. */
  async giveBack(claimed: readonly ClaimedJob[], why: string): Promise<void> {
    for (const c of claimed) {
      this.relays.delete(c.leaseToken);
      const job = await this.deps.store.get(c.jobId);
      if (job) await this.deps.lifecycle.unclaim(job, c.leaseToken, why);
    }
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.claiming.then(fn, fn);
    this.claiming = run.catch(() => {});
    return run;
  }

  private async claimOnce(runner: RunnerRecord, max: number): Promise<ClaimedJob[]> {
    const claimed: ClaimedJob[] = [];
    if (this.leaving.has(runner.id)) return claimed;
    // A runner without an account (an open server) takes no replica: the Leases' replica rule.
    const claimant: Claimant = { holder: runner.id, ...(runner.accountId ? { accountId: runner.accountId } : {}) };
    // A runner runs no job pinned to this node and mounts no host volume.
    for (const { job: held, leaseToken } of await this.deps.leases.claimBatch(claimant, max, { limits: runner.limits, portableOnly: true })) {
      this.newRelay(leaseToken, held.id);
      claimed.push({ leaseToken, jobId: held.id, attempt: held.attempts, spec: held.spec, leaseExpiresAt: held.leaseExpiresAt! });
    }
    return claimed;
  }

  private waitForWork(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(ms, 0));
      this.waiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  /** The container started: scheduled → running. */
  async started(runner: RunnerRecord, token: string): Promise<Job> {
    const { job } = await this.held(runner, token);
    if (job.status === 'running') return job;
    return (await this.deps.lifecycle.markRunning(job, token, this.deps.leases.runDeadline(job))) ?? this.refuse(job.id, token);
  }

  /** Output the runner relays as the job prints it. */
  async output(runner: RunnerRecord, token: string, chunks: ReadonlyArray<{ stream: OutputStream; data: string }>): Promise<void> {
    const { job } = await this.held(runner, token);
    const relay = this.relays.get(token) ?? this.newRelay(token, job.id);
    for (const { stream, data } of chunks) {
      const kept = relay[stream].push(Buffer.from(data, 'utf8'));
      if (kept !== '') this.deps.events.emit('job:output', { jobId: job.id, stream, data: kept });
    }
  }

  /**
   * The execution's result, signed with the runner's key (403 when the signature does not
   * verify: the report is not the runner's). A repeat of a report already recorded answers
   * with the job.
   */
  async result(runner: RunnerRecord, token: string, result: ExecutionResult, signature: string): Promise<Job> {
    const execution = await this.execution(runner, token);
    if (!runner.publicKey || !verifyResult(runner.publicKey, signature, execution.jobId, token, result)) {
      this.deps.log.warn(`runner ${runner.id}: result for job ${execution.jobId} has a bad signature; refused`);
      throw new GridxError('FORBIDDEN', `the signature of this result does not verify against runner ${runner.id}'s key; the report is refused`);
    }
    const job = await this.deps.store.get(execution.jobId);
    // A retried report (its answer was lost) finds its own outcome recorded: answer alike.
    if (job && execution.status === job.status && execution.status === outcomeOf(result, job.spec).status) return job;
    if (!job || job.executionId !== token) return this.refuse(execution.jobId, token);
    if (result.outputs) this.mustHoldOutputs(result.outputs, token);
    const capped = this.cap(result);
    this.relayRest(job.id, token, capped);
    const written = await this.deps.lifecycle.finish(job, token, capped);
    if (!written) return this.refuse(job.id, token);
    this.relays.delete(token);
    this.deps.log.info(`job ${job.id} ${written.status} on runner ${runner.id}`);
    return written;
  }

  /**
   * Relays what the result holds beyond the output relayed live (a runner sends the last
   * of it, or all of a short job's, with the result): followers see every line, before the end.
   */
  private relayRest(jobId: string, token: string, result: ExecutionResult): void {
    const relay = this.relays.get(token);
    for (const stream of ['stdout', 'stderr'] as const) {
      const seen = relay ? relay[stream].text() : '';
      const all = result[stream];
      if (all.length > seen.length && all.startsWith(seen)) this.deps.events.emit('job:output', { jobId, stream, data: all.slice(seen.length) });
    }
  }

  /**
   * An input of the job under the runner's live lease, to place before it starts. Only the
   * blobs the job names as inputs: a lease is no key to the rest of the store.
   */
  async input(runner: RunnerRecord, token: string, digest: string): Promise<LeaseBlob> {
    const { job } = await this.held(runner, token);
    const named = inputDigests(job.spec.inputs).includes(digest);
    const blob = named ? await this.deps.blobs.stat(digest) : undefined;
    if (!blob) throw new GridxError('NOT_FOUND', `job ${job.id} has no input ${digest} on this server`);
    return { digest, size: blob.size, open: (range) => this.deps.blobs.open(digest, range) };
  }

  /**
   * A file the job under the runner's live lease left under /outputs, streamed in and kept
   * only when it hashes to `digest`. The result that follows names it in its manifest.
   */
  async putOutput(runner: RunnerRecord, token: string, body: Readable, digest: string, signal?: AbortSignal): Promise<BlobRef> {
    const { job } = await this.held(runner, token);
    const uploads = this.uploads.get(token) ?? { jobId: job.id, digests: new Set<string>(), bytes: 0 };
    this.uploads.set(token, uploads);
    const room = this.deps.maxOutputBytes - uploads.bytes;
    if (uploads.digests.size >= MAX_OUTPUT_FILES || room <= 0) {
      throw new GridxError(
        'BODY_TOO_LARGE',
        `job ${job.id} already has ${uploads.digests.size} output files (${formatSize(uploads.bytes)}) on this server; it keeps at most ${MAX_OUTPUT_FILES} files and ${formatSize(this.deps.maxOutputBytes)} (runner.docker.outputs_size) per job`,
      );
    }
    const ref = await this.deps.blobs.put(body, { expect: digest, maxBytes: room, ...(signal ? { signal } : {}) });
    if (!uploads.digests.has(ref.digest)) {
      uploads.digests.add(ref.digest);
      uploads.bytes += ref.size;
    }
    return ref;
  }

  /** The execution could not start: the job fails with `reason`. A repeat answers with the job. */
  async failed(runner: RunnerRecord, token: string, reason: StartFailure, message: string): Promise<Job> {
    const execution = await this.execution(runner, token);
    const job = await this.deps.store.get(execution.jobId);
    if (job && execution.status === 'failed' && job.status === 'failed' && job.reason === reason) return job;
    if (!job || job.executionId !== token) return this.refuse(execution.jobId, token);
    const written = await this.deps.lifecycle.failExecution(job.id, token, reason, `on runner ${runner.name}: ${message}`);
    this.relays.delete(token);
    return written ?? this.refuse(job.id, token);
  }

  /** The runner gives the job back (it is stopping): requeued with the attempt counted. */
  async release(runner: RunnerRecord, token: string, why: string): Promise<void> {
    const { job } = await this.held(runner, token);
    this.relays.delete(token);
    await this.deps.lifecycle.requeueOrFail(job, `runner ${runner.name} gave it back: ${why}`, 'node_restarted');
  }

  /**
   * The runner is stopping: its waiting claims end empty (one whose answer is still on the
   * wire cannot reach it), and every job it holds goes back to the queue, attempt counted.
   */
  async leave(runner: RunnerRecord): Promise<number> {
    this.leaving.add(runner.id);
    this.wake();
    await this.claiming;
    const held = (await this.deps.store.withStatus(['scheduled', 'running'])).filter((j) => j.executedBy === runner.id);
    for (const job of held) {
      if (job.executionId) this.relays.delete(job.executionId);
      await this.deps.lifecycle.requeueOrFail(job, `runner ${runner.name} stopped while it held it`, 'node_restarted');
    }
    this.deps.log.info(`runner ${runner.id} (${runner.name}) left; ${held.length} jobs it held went back to the queue`);
    return held.length;
  }

  /** Output files runners uploaded for results still to come, for the blob store's collector. */
  uploading(): Set<string> {
    return new Set([...this.uploads.values()].flatMap((u) => [...u.digests]));
  }

  liveOutput(jobId: string): OutputSnapshot | undefined {
    for (const relay of this.relays.values()) {
      if (relay.jobId !== jobId) continue;
      return {
        stdout: relay.stdout.text(),
        stderr: relay.stderr.text(),
        stdoutTruncated: relay.stdout.truncated,
        stderrTruncated: relay.stderr.truncated,
      };
    }
    return undefined;
  }

  /** Ends waiting claims; the runners' next claims go to whichever server runs then. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.off();
    this.wake();
  }

  private newRelay(token: string, jobId: string): Relay {
    const relay = {
      jobId,
      stdout: new CappedOutput(this.deps.outputLimitBytes),
      stderr: new CappedOutput(this.deps.outputLimitBytes),
    };
    this.relays.set(token, relay);
    return relay;
  }

  /** Drops the relays and uploads of a job's executions: it ended or went back to the queue. */
  private forget(jobId: string): void {
    for (const [token, relay] of this.relays) if (relay.jobId === jobId) this.relays.delete(token);
    for (const [token, uploads] of this.uploads) if (uploads.jobId === jobId) this.uploads.delete(token);
  }

  /** The runner's own execution under `token`; 403 for unknown tokens and other runners' leases. */
  private async execution(runner: RunnerRecord, token: string): Promise<ExecutionRecord> {
    const execution = await this.deps.store.execution(token);
    if (!execution) throw new GridxError('FORBIDDEN', `lease token ${token} was never handed out; claim work with POST /api/runners/${runner.id}/claim`);
    if (execution.nodeId !== runner.id) {
      this.deps.log.warn(`runner ${runner.id} presented the lease of ${execution.nodeId} for job ${execution.jobId}; refused`);
      throw new GridxError('FORBIDDEN', `lease ${token} belongs to another runner`);
    }
    return execution;
  }

  /** The job under the runner's live lease `token`; 403/409 otherwise. */
  private async held(runner: RunnerRecord, token: string): Promise<{ job: Job; execution: ExecutionRecord }> {
    const execution = await this.execution(runner, token);
    const job = await this.deps.store.get(execution.jobId);
    if (!job || job.executionId !== token) return this.refuse(execution.jobId, token);
    return { job, execution };
  }

  private async refuse(jobId: string, token: string): Promise<never> {
    const job = await this.deps.store.get(jobId);
    const now = job ? `it is ${job.status}${job.message ? ` (${job.message})` : ''}` : 'the job is gone';
    throw new GridxError('CONFLICT', `lease ${token} on job ${jobId} is no longer held: ${now}; stop this execution, its report is discarded`);
  }

  /**
   * Every file of a reported manifest must have been uploaded under this lease before the
   * result: a manifest naming a blob the server holds for someone else would otherwise
   * hand it to the job's owner.
   */
  private mustHoldOutputs(outputs: OutputManifest, token: string): void {
    const uploaded = this.uploads.get(token)?.digests;
    for (const file of outputs.files) {
      if (!uploaded?.has(file.sha256)) {
        throw new GridxError(
          'CONFLICT',
          `output ${quote(file.path, 200)} (${file.sha256}, ${file.size} bytes) is not on the server; upload it under lease ${token} before the result`,
        );
      }
    }
  }

  /** A runner's report is held to the same output cap as local jobs. */
  private cap(result: ExecutionResult): ExecutionResult {
    const limit = this.deps.outputLimitBytes;
    const clip = (text: string): [string, boolean] => {
      const bytes = Buffer.from(text, 'utf8');
      return bytes.length <= limit ? [text, false] : [bytes.subarray(0, limit).toString('utf8'), true];
    };
    const [stdout, outCut] = clip(result.stdout);
    const [stderr, errCut] = clip(result.stderr);
    return {
      ...result,
      stdout,
      stderr,
      stdoutTruncated: result.stdoutTruncated || outCut,
      stderrTruncated: result.stderrTruncated || errCut,
    };
  }
}

function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}
