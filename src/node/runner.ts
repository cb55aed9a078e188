/**
 * `gridx runner`: an executor that pulls work from a server over HTTP (outbound
 * connections only, so it works behind NAT) and runs it in the same hardened Docker
 * sandbox as a node. It keeps its id and secret in its data dir, claims jobs under
 * leases, renews them with its heartbeats, streams output and reports results; a lease
 * the server says is lost (cancelled, expired) stops the container at once. A job's input
 * blobs come from the server under its lease; its outputs go back under the same lease
 * before the signed result, which covers their manifest.
 */

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writePrivateFile } from '../config/private-file.js';
import type { Config } from '../config/schema.js';
import { type ExecutionResult, startFailureOf } from '../domain/job.js';
import { type JobLimits, misfit } from '../domain/offer.js';
import { imageRefusal } from '../domain/spec.js';
import { ErrorCodes, GridxError, isGridxError, messageOf } from '../errors.js';
import { openDockerExecutor } from '../executor/docker/engine.js';
import type { Executor, OutputStream } from '../executor/executor.js';
import type { Logger } from '../logger.js';
import { newSigningKeys } from '../domain/result-digest.js';
import { type ClaimedJobBody, type LeaseAnswer, RunnerClient } from '../sdk/runner-client.js';
import { MAX_RESULTS_PER_REQUEST } from '../wire/runners.js';
import { type BlobStore, openBlobStore } from '../storage/blob-store.js';
import { type JobFiles, openJobFiles } from '../storage/job-files.js';
import type { OutputVolumes } from '../storage/output-volumes.js';
import { VERSION } from '../version.js';

export interface RunnerOptions {
  config: Readonly<Config>;
  serverUrl: string;
  name?: string;
  labels?: Record<string, string>;
  /** The account key registration authenticates with; earnings go to that account. */
  accountKey?: string;
  log: Logger;
  /** Replaces the Docker executor (tests and benchmarks use the no-op one). */
  executor?: (runnerId: string) => Executor;
}

interface Credentials {
  server: string;
  id: string;
  token: string;
  name: string;
  /** The Ed25519 key results are signed with (PKCS#8 PEM). */
  signingKey: string;
}

interface Running {
  jobId: string;
  /** The server no longer holds this lease for us: stop, report nothing. */
  lost: boolean;
  chunks: Array<{ stream: OutputStream; data: string }>;
  flushing: Promise<void>;
}

/** A result waiting for the request that carries it. */
interface QueuedResult {
  token: string;
  jobId: string;
  result: ExecutionResult;
  resolve: (answer: LeaseAnswer) => void;
  reject: (err: unknown) => void;
}

const CREDENTIALS_FILE = 'runner.json';
/** Output (in characters: JSON may take several bytes each) one request of results carries at most; a larger result goes on its own. */
const RESULTS_BATCH_BYTES = 2 * 1024 * 1024;
const CLAIM_WAIT_S = 20;
const OUTPUT_FLUSH_MS = 100;
/** A job still running after this long is reported started; one that ended sooner only its result. */
const STARTED_AFTER_MS = 50;
/** How long a finished job's report is retried while the server is unreachable. */
const REPORT_RETRY_MS = 10 * 60_000;

export class GridxRunner {
  private client!: RunnerClient;
  private executor!: Executor;
  private credentials!: Credentials;
  private heartbeatMs = 2000;
  private readonly running = new Map<string, Running>();
  private readonly runs = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  private slotFreed?: () => void;
  private loops: Promise<void>[] = [];
  private serverDown = false;
  private stopping?: Promise<void>;
  private blobs?: BlobStore;
  /** leaseToken → output files collected and not yet reported: the collector keeps them. */
  private readonly unsent = new Map<string, string[]>();
  private volumes?: OutputVolumes;
  private readonly queuedResults: QueuedResult[] = [];
  private sendingResults = false;
  /** False once the server turned out not to know /results (an older one): results go one by one. */
  private batchResults = true;

  constructor(private readonly options: RunnerOptions) {}

  get id(): string {
    return this.credentials.id;
  }

  get limits(): JobLimits {
    const { sandbox } = this.options.config;
    return {
      cpus: sandbox.cpus,
      memoryBytes: sandbox.memoryBytes,
      timeoutMs: sandbox.timeoutMs,
      gpus: sandbox.maxGpus ?? 0,
      networks: [...sandbox.allowedNetworks],
    };
  }

  /** Registers (or reuses its registration), clears what a crash left, and starts taking work. */
  async start(): Promise<void> {
    await this.login();
    this.executor = this.options.executor?.(this.id) ?? (await openDockerExecutor(this.options.config, this.id, this.options.log, await this.openFiles()));
    const reaped = await this.executor.reapOrphans();
    if (reaped > 0) this.options.log.info(`removed ${reaped} containers a previous run left; the server requeues their jobs`);
    this.loops = [this.claimLoop(), this.heartbeatLoop(), this.flushLoop()];
  }

  /** Stops claiming, stops running containers and gives their jobs back to the server. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.abort.abort();
      this.slotFreed?.();
      await Promise.all([...this.running.keys()].map((token) => this.executor?.cancel(token)));
      await Promise.allSettled([...this.runs]);
      await Promise.allSettled(this.loops);
      await this.executor?.stop();
      await this.volumes?.stop();
      await this.blobs?.stop();
      // After the last claim: the server returns what this runner holds (or its leases expire).
      await this.client
        ?.leave()
        .then(({ returned }) => returned > 0 && this.options.log.info(`gave ${returned} jobs back to the server`))
        .catch((err: unknown) => this.options.log.warn(`could not tell the server this runner stops (${messageOf(err)}); its leases will expire`));
    })();
    return this.stopping;
  }

  private get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  private async login(): Promise<void> {
    const { serverUrl, config, log } = this.options;
    const file = path.join(config.dataDir, CREDENTIALS_FILE);
    const saved = readCredentials(file);
    if (saved && saved.server === serverUrl) {
      this.client = new RunnerClient(serverUrl, saved.id, saved.token, saved.signingKey);
      try {
        const answer = await this.client.heartbeat([]);
        this.heartbeatMs = answer.heartbeat_ms;
        this.credentials = saved;
        log.info(`runner ${saved.id} (${saved.name}) back on ${serverUrl}`);
        return;
      } catch (err) {
        if (!isGridxError(err, 'UNAUTHORIZED')) throw err;
        log.warn(`the server does not know runner ${saved.id} any more; registering again`);
      }
    }
    const name = this.options.name ?? saved?.name ?? `${os.hostname()}-${process.pid}`;
    const keys = newSigningKeys();
    const registered = await new RunnerClient(serverUrl, undefined, this.options.accountKey).register({
      public_key: keys.publicKey,
      name,
      slots: config.slots,
      labels: this.options.labels ?? {},
      limits: {
        cpu: this.limits.cpus,
        memory: this.limits.memoryBytes,
        timeout: `${this.limits.timeoutMs}ms`,
        gpus: this.limits.gpus,
        networks: this.limits.networks,
      },
      version: VERSION,
    });
    this.credentials = { server: serverUrl, id: registered.id, token: registered.token, name, signingKey: keys.privateKeyPem };
    this.heartbeatMs = registered.heartbeat_ms;
    writePrivateFile(file, `${JSON.stringify(this.credentials, null, 2)}\n`);
    this.client = new RunnerClient(serverUrl, registered.id, registered.token, keys.privateKeyPem);
    log.info(`registered with ${serverUrl} as runner ${registered.id} (${name})`);
  }


  /**
   * The files of this runner's jobs: a blob store of its own, inputs fetched from the
   * server under each job's lease (checked by digest; URLs fetched by the runner under its
   * own inputs.* settings), /outputs volumes as on a node.
   */
  private async openFiles(): Promise<JobFiles> {
    const { config, log } = this.options;
    const blobs = (this.blobs = await openBlobStore(config, log, async () => new Set([...files.held(), ...[...this.unsent.values()].flat()])));
    const { files, volumes } = await openJobFiles(config, blobs, log, (token, digest, signal) => this.client.input(token, digest, signal));
    this.volumes = volumes;
    return files;
  }

  /** Uploads what the job left under /outputs, so that the result's manifest names files the server holds. */
  private async uploadOutputs(token: string, result: ExecutionResult): Promise<void> {
    for (const file of result.outputs?.files ?? []) {
      await this.client.putOutput(token, this.blobs!.path(file.sha256), file.sha256, this.abort.signal);
    }
  }

  private async claimLoop(): Promise<void> {
    const slots = this.options.config.slots;
    let backoff = 250;
    while (!this.stopped) {
      const free = slots - this.running.size;
      if (free <= 0) {
        await new Promise<void>((resolve) => (this.slotFreed = resolve));
        continue;
      }
      let jobs: ClaimedJobBody[];
      try {
        jobs = await this.client.claim(free, CLAIM_WAIT_S, this.abort.signal);
        this.reachable();
        backoff = 250;
      } catch (err) {
        if (this.stopped) return;
        this.unreachable(err);
        await sleep(backoff, this.abort.signal);
        backoff = Math.min(backoff * 2, 10_000);
        continue;
      }
      for (const job of jobs) this.launch(job);
    }
  }

  private launch(job: ClaimedJobBody): void {
    const state: Running = { jobId: job.job_id, lost: false, chunks: [], flushing: Promise.resolve() };
    this.running.set(job.lease_token, state);
    const run = this.execute(job, state)
      .catch((err: unknown) => this.options.log.error(`job ${job.job_id}: ${messageOf(err)}`))
      .finally(() => {
        this.running.delete(job.lease_token);
        this.runs.delete(run);
        this.slotFreed?.();
      });
    this.runs.add(run);
  }

  private async execute(job: ClaimedJobBody, state: Running): Promise<void> {
    const { log } = this.options;
    const token = job.lease_token;
    // The server chose this runner by its limits; the runner still enforces its own.
    const unfit =
      misfit(job.spec, this.limits) ??
      imageRefusal(job.spec.image, this.options.config.sandbox) ??
      (job.spec.volumes.length > 0 ? 'asks for host volumes' : undefined);
    if (unfit) {
      log.warn(`job ${job.job_id} does not fit this runner (${unfit}); giving it back`);
      await this.client.release(token, `does not fit runner ${this.credentials.name}: ${unfit}`).catch(() => {});
      return;
    }
    try {
      await this.executor.start(
        { executionId: token, jobId: job.job_id, spec: job.spec },
        { onOutput: (stream, data) => state.chunks.push({ stream, data }) },
      );
    } catch (err) {
      if (this.stopped) return; // given back when the runner leaves
      log.warn(`job ${job.job_id} could not start: ${messageOf(err)}`);
      const reason = startFailureOf(isGridxError(err) ? err.code : undefined);
      await this.report(job, state, () => this.client.failed(token, reason, messageOf(err)));
      return;
    }
    // A job that ends within STARTED_AFTER_MS reports only its result (a result may end a
    // job the server still has as scheduled): short tasks cost one request, not two.
    const ended = new AbortController();
    const started = sleep(STARTED_AFTER_MS, ended.signal).then(() =>
      ended.signal.aborted ? undefined : this.client.started(token).catch((err: unknown) => this.onLeaseError(token, state, err)),
    );
    const result = await this.executor.wait(token);
    ended.abort();
    await started;
    if (state.lost) return;
    if (this.stopped && result.cancelled) return; // given back when the runner leaves
    // What was printed since the last flush goes with the result, which carries all of it:
    // the server relays what it had not seen before it records the end.
    await state.flushing;
    state.chunks.length = 0;
    this.unsent.set(token, (result.outputs?.files ?? []).map((f) => f.sha256));
    try {
      await this.report(job, state, async () => {
        await this.uploadOutputs(token, result);
        return this.sendResult(token, job.job_id, result);
      });
    } finally {
      this.unsent.delete(token);
    }
  }

  /**
   * Sends a result with the others that are waiting: one request at a time carries all that
   * queued while the last was on the wire, so a lone result goes at once and many that end
   * together cost one request. Each result is answered on its own.
   */
  private sendResult(token: string, jobId: string, result: ExecutionResult): Promise<LeaseAnswer> {
    if (!this.batchResults) return this.client.result(token, jobId, result);
    return new Promise((resolve, reject) => {
      this.queuedResults.push({ token, jobId, result, resolve, reject });
      void this.sendQueuedResults();
    });
  }

  private async sendQueuedResults(): Promise<void> {
    if (this.sendingResults) return;
    this.sendingResults = true;
    try {
      while (this.queuedResults.length > 0) {
        const batch = takeResults(this.queuedResults);
        try {
          const answers = await this.client.results(batch);
          batch.forEach((queued, i) => {
            const answer = answers[i];
            if (answer?.lease_token !== queued.token) queued.reject(new GridxError('REMOTE_ERROR', 'the server answered results out of order'));
            else if ('error' in answer) queued.reject(new GridxError(Object.hasOwn(ErrorCodes, answer.error.code) ? answer.error.code : 'INTERNAL', answer.error.message));
            else queued.resolve(answer);
          });
        } catch (err) {
          // Too large together (escaping can grow a body past its estimate): each goes alone.
          if (isGridxError(err, 'BODY_TOO_LARGE') && batch.length > 1) {
            this.sendAlone(batch);
            continue;
          }
          if (!isGridxError(err, 'NOT_FOUND')) {
            for (const queued of batch) queued.reject(err);
            continue;
          }
          this.options.log.info(`${this.options.serverUrl} takes results one at a time (it has no /results); sending them so`);
          this.batchResults = false;
          this.sendAlone([...batch, ...this.queuedResults.splice(0)]);
        }
      }
    } finally {
      this.sendingResults = false;
    }
  }

  /** Sends each of `queued` in a request of its own, answering it with that request's answer. */
  private sendAlone(queued: readonly QueuedResult[]): void {
    for (const q of queued) this.client.result(q.token, q.jobId, q.result).then(q.resolve, q.reject);
  }

  /** Sends a report, retrying while the server is unreachable; a refused lease ends it. */
  private async report(job: ClaimedJobBody, state: Running, send: () => Promise<{ status: string }>): Promise<void> {
    const deadline = Date.now() + REPORT_RETRY_MS;
    for (let delay = 250; ; delay = Math.min(delay * 2, 10_000)) {
      try {
        const answer = await send();
        this.reachable();
        this.options.log.info(`job ${job.job_id} ${answer.status}`);
        return;
      } catch (err) {
        if (!isGridxError(err) || !err.retryable || Date.now() > deadline || state.lost) {
          return this.onLeaseError(job.lease_token, state, err);
        }
        this.unreachable(err);
        await sleep(delay);
      }
    }
  }

  /** A refused lease stops the execution; an unreachable server is retried elsewhere. */
  private onLeaseError(token: string, state: Running, err: unknown): void {
    if (isGridxError(err) && !err.retryable) {
      state.lost = true;
      this.options.log.warn(`job ${state.jobId}: ${messageOf(err)}`);
      void this.executor.cancel(token);
    } else {
      this.unreachable(err);
    }
  }

  private async heartbeatLoop(): Promise<void> {
    while (!this.stopped) {
      await sleep(this.heartbeatMs, this.abort.signal);
      if (this.stopped) return;
      try {
        const answer = await this.client.heartbeat([...this.running.keys()], this.abort.signal);
        this.heartbeatMs = answer.heartbeat_ms;
        this.reachable();
        for (const token of answer.lost) {
          const state = this.running.get(token);
          if (!state || state.lost) continue;
          state.lost = true;
          this.options.log.info(`job ${state.jobId}: the server no longer holds its lease (cancelled or expired); stopping it`);
          await this.executor.cancel(token);
        }
      } catch (err) {
        if (this.stopped) return;
        if (isGridxError(err, 'UNAUTHORIZED')) {
          this.options.log.error(`the server no longer knows this runner (${messageOf(err)}); restart the runner to register again`);
        }
        this.unreachable(err);
      }
    }
  }

  private async flushLoop(): Promise<void> {
    while (!this.stopped) {
      await sleep(OUTPUT_FLUSH_MS, this.abort.signal);
      for (const [token, state] of this.running) if (state.chunks.length > 0) void this.flush(token, state);
    }
  }

  /** Sends the output gathered so far, in order, one request at a time per job. */
  private flush(token: string, state: Running): Promise<void> {
    state.flushing = state.flushing.then(async () => {
      const chunks = state.chunks.splice(0);
      if (chunks.length === 0 || state.lost) return;
      // Live output is best effort: the result carries all of it.
      await this.client.output(token, chunks).catch((err: unknown) => this.onLeaseError(token, state, err));
    });
    return state.flushing;
  }

  private reachable(): void {
    if (!this.serverDown) return;
    this.serverDown = false;
    this.options.log.info(`${this.options.serverUrl} answers again`);
  }

  private unreachable(err: unknown): void {
    if (this.serverDown) return;
    this.serverDown = true;
    this.options.log.warn(`cannot reach the server: ${messageOf(err)}; retrying`);
  }
}

/** The first of `queue`'s results that fit one request (at least one), taken off it. */
function takeResults(queue: QueuedResult[]): QueuedResult[] {
  let bytes = 0;
  let n = 0;
  while (n < queue.length && n < MAX_RESULTS_PER_REQUEST) {
    // Output and the outputs' manifest (up to 10,000 paths) are what make a result large.
    bytes += JSON.stringify(queue[n]!.result).length;
    if (n > 0 && bytes > RESULTS_BATCH_BYTES) break;
    n++;
  }
  return queue.splice(0, n);
}

function readCredentials(file: string): Credentials | undefined {
  try {
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<Credentials>;
    if (typeof parsed.id === 'string' && typeof parsed.token === 'string' && typeof parsed.server === 'string' && typeof parsed.signingKey === 'string') {
      return { id: parsed.id, token: parsed.token, server: parsed.server, name: parsed.name ?? parsed.id, signingKey: parsed.signingKey };
    }
    throw new Error('missing id, token, server or signingKey');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new GridxError(
      'CONFIG_INVALID',
      `cannot read the runner credentials ${file} (${messageOf(err)}); move the file away to register anew`,
      { cause: err },
    );
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
