/**
 * Runs executions in hardened Docker containers through the Engine API. One Run per
 * execution id holds its container, captured output, timer and result.
 */

import { Writable } from 'node:stream';
import type Docker from 'dockerode';
import { registryRefusal } from '../../domain/image-policy.js';
import { type ImageRef, parseImageRef } from '../../domain/image-ref.js';
import type { ExecutionResult, JobSpec } from '../../domain/job.js';
import type { VolumeRoots } from '../../domain/volume-paths.js';
import { GridxError, clip, isGridxError, messageOf } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { type ExecutionFiles, type ExecutionRequest, type Executor, type OutputSnapshot, type StartOptions, startAborted } from '../executor.js';
import { CappedOutput } from '../output.js';
import { type Lookup, isNoSuchImage, pullImage, pullRefusal } from './images.js';
import { LABELS, containerName, containerOptions, type SandboxSettings } from './sandbox.js';
import { resolveMounts } from './volumes.js';

export interface DockerExecutorOptions extends SandboxSettings {
  docker: Docker;
  nodeId: string;
  outputLimitBytes: number;
  pullTimeoutMs: number;
  /** runner.docker.registries: where images may be pulled from. */
  registries: readonly string[];
  /** runner.docker.volumes and writable_volumes, checked again against real paths at creation. */
  volumes: VolumeRoots;
  /** Inputs and /outputs; absent: the container gets neither. */
  files?: ExecutionFiles;
  /** How registry names are resolved before a pull; the system resolver unless a test says otherwise. */
  lookup?: Lookup;
  log: Logger;
  /** Told how long the engine took and how pulls ended (the node's metrics). */
  observe?: ContainerObserver;
}

/** What the executor tells the metrics: the engine's own latency, and pulls. */
export interface ContainerObserver {
  /** Seconds the engine took to create a container (a pull left out) or to start it. */
  timed(phase: 'create' | 'start', seconds: number): void;
  pulled(outcome: 'ok' | 'failed'): void;
}

/** How long to wait for the attach stream to drain after the container exits. */
const DRAIN_TIMEOUT_MS = 2000;
/** How long an unexplained SIGKILL exit waits for the engine to record an OOM kill. */
const OOM_SETTLE_MS = 3000;

class Run {
  container?: Docker.Container;
  readonly stdout: CappedOutput;
  readonly stderr: CappedOutput;
  cancelled = false;
  timedOut = false;
  startedAt = new Date();
  timer?: NodeJS.Timeout;
  readonly result: Promise<ExecutionResult>;
  settle!: (result: Promise<ExecutionResult>) => void;

  constructor(
    readonly request: ExecutionRequest,
    outputLimit: number,
  ) {
    this.stdout = new CappedOutput(outputLimit);
    this.stderr = new CappedOutput(outputLimit);
    this.result = new Promise<ExecutionResult>((resolve) => {
      this.settle = resolve;
    });
    // wait() may never be called if start fails; don't let that surface as unhandled.
    this.result.catch(() => {});
  }

  snapshot(): OutputSnapshot {
    return {
      stdout: this.stdout.text(),
      stderr: this.stderr.text(),
      stdoutTruncated: this.stdout.truncated,
      stderrTruncated: this.stderr.truncated,
    };
  }

  resultWith(exitCode: number | undefined, oomKilled: boolean): ExecutionResult {
    const finishedAt = new Date();
    return {
      ...(exitCode === undefined ? {} : { exitCode }),
      oomKilled,
      timedOut: this.timedOut,
      cancelled: this.cancelled && !this.timedOut,
      ...this.snapshot(),
      startedAt: this.startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      durationMs: finishedAt.getTime() - this.startedAt.getTime(),
    };
  }
}

export class DockerExecutor implements Executor {
  private readonly runs = new Map<string, Run>();
  private readonly removals = new Set<Promise<void>>();
  private readonly removing = new Set<string>();
  private readonly docker: Docker;
  private readonly log: Logger;

  constructor(private readonly options: DockerExecutorOptions) {
    this.docker = options.docker;
    this.log = options.log;
  }

  async start(request: ExecutionRequest, options: StartOptions = {}): Promise<void> {
    const { executionId } = request;
    if (this.runs.has(executionId)) return;
    const { signal } = options;
    if (signal?.aborted) throw startAborted(executionId);
    // Registered before the first await, so cancel() always finds it.
    const run = new Run(request, this.options.outputLimitBytes);
    this.runs.set(executionId, run);
    // An abort kills whatever exists by then; start() below turns one before the start into UNAVAILABLE.
    const onAbort = () => void this.cancel(executionId);
    signal?.addEventListener('abort', onAbort, { once: true });
    const off = () => signal?.removeEventListener('abort', onAbort);
    run.result.then(off, off);
    try {
      await this.launch(run, options);
    } catch (err) {
      if (run.container) this.remove(run.container);
      this.releaseFiles(executionId);
      if (signal?.aborted) {
        this.runs.delete(executionId);
        run.settle(Promise.reject(startAborted(executionId)));
        throw startAborted(executionId);
      }
      if (run.cancelled) {
        // Cancelled while being set up: not an error; wait() reports it as cancelled.
        run.settle(Promise.resolve(run.resultWith(undefined, false)));
        return;
      }
      this.runs.delete(executionId);
      signal?.removeEventListener('abort', onAbort);
      throw isGridxError(err)
        ? err
        : new GridxError('DOCKER_UNAVAILABLE', `Docker could not start the job: ${messageOf(err)}`, { cause: err });
    }
    if (signal?.aborted) {
      // Aborted while the container started: it was killed, and finish() removes it.
      this.runs.delete(executionId);
      throw startAborted(executionId);
    }
  }

  private async launch(run: Run, options: StartOptions): Promise<void> {
    const { request } = run;
    const { ref, spec } = await this.admit(request.spec);
    if (!this.options.files && request.spec.inputs?.length) {
      throw new GridxError('INPUT_UNAVAILABLE', 'this executor cannot place input files (a runner does not fetch them from its server yet); run the job on a node');
    }
    const binds = this.options.files ? await this.options.files.prepare(request, options.signal) : [];
    if (run.cancelled || options.signal?.aborted) throw new Error('cancelled before start');
    const create = containerOptions({ ...request, spec }, this.options, this.options.nodeId, binds);
    const container = await this.create(create, ref, request.spec.image, options.signal);
    run.container = container;
    if (run.cancelled) throw new Error('cancelled before start');

    const stream = await container.attach({ stream: true, stdout: true, stderr: true });
    const sink = (output: CappedOutput, name: 'stdout' | 'stderr') =>
      new Writable({
        write(chunk: Buffer, _enc, done) {
          const kept = output.push(chunk);
          if (kept && options.onOutput) options.onOutput(name, kept);
          done();
        },
      });
    this.docker.modem.demuxStream(stream, sink(run.stdout, 'stdout'), sink(run.stderr, 'stderr'));
    const drained = new Promise<void>((resolve) => {
      stream.once('end', resolve);
      stream.once('close', resolve);
      stream.once('error', () => resolve());
    });

    const starting = performance.now();
    await container.start();
    this.options.observe?.timed('start', (performance.now() - starting) / 1000);
    // Asked after start, 'not-running' cannot miss a fast exit: it answers at once for an
    // exited container. ('next-exit' asked before start races the start request.)
    const exited = container.wait({ condition: 'not-running' });
    run.startedAt = new Date();
    if (run.cancelled) await this.kill(container);
    run.timer = setTimeout(() => {
      run.timedOut = true;
      void this.kill(container);
    }, request.spec.timeoutMs);

    run.settle(this.finish(run, container, exited, drained));
  }

  private async finish(
    run: Run,
    container: Docker.Container,
    exited: Promise<{ StatusCode: number }>,
    drained: Promise<void>,
  ): Promise<ExecutionResult> {
    try {
      const { StatusCode } = await exited;
      clearTimeout(run.timer);
      await Promise.race([drained, new Promise((r) => setTimeout(r, DRAIN_TIMEOUT_MS))]);
      const oomKilled = await this.oomKilled(run, container, StatusCode);
      const result = run.resultWith(StatusCode, oomKilled);
      this.remove(container);
      // Whatever the status: a failed, timed-out or killed job's files are kept too.
      if (this.options.files) result.outputs = await this.collect(run.request.executionId, this.options.files);
      return result;
    } finally {
      clearTimeout(run.timer);
      this.remove(container);
      this.releaseFiles(run.request.executionId);
    }
  }

  private async collect(executionId: string, files: ExecutionFiles) {
    try {
      return await files.collect(executionId);
    } catch (err) {
      throw new GridxError('DOCKER_UNAVAILABLE', `the job ended but its outputs could not be collected: ${messageOf(err)}`, { cause: err });
    }
  }

  private releaseFiles(executionId: string): void {
    if (!this.options.files) return;
    const release = this.options.files
      .release(executionId)
      .catch((err: unknown) => this.log.warn(`could not release the files of ${containerName(executionId)}: ${messageOf(err)}`))
      .finally(() => this.removals.delete(release));
    this.removals.add(release);
  }

  /**
   * Whether the kernel's OOM killer ended the container. The engine records the OOM event
   * apart from the exit and can lag it, so a SIGKILL exit we did not cause (137) is
   * checked again for a short while before it counts as a plain exit.
   */
  private async oomKilled(run: Run, container: Docker.Container, exitCode: number): Promise<boolean> {
    const unexplainedKill = exitCode === 137 && !run.timedOut && !run.cancelled;
    const deadline = Date.now() + (unexplainedKill ? OOM_SETTLE_MS : 0);
    for (;;) {
      try {
        if ((await container.inspect()).State.OOMKilled) return true;
      } catch (err) {
        this.log.warn(`inspect of ${containerName(run.request.executionId)} failed: ${messageOf(err)}`);
        return false;
      }
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /**
   * The spec as the engine gets it: the image by its canonical reference, so the engine
   * never falls back to taking the name for a local image id, and each volume by its
   * checked real path. Judged here as well as at submit: a runner's or a peer's job never
   * passed this node's submit, and the file system may have changed since.
   */
  private async admit(submitted: JobSpec): Promise<{ ref: ImageRef; spec: JobSpec }> {
    const shown = `image "${clip(submitted.image)}"`;
    const ref = parseImageRef(submitted.image);
    if (!ref) throw new GridxError('INVALID_INPUT', `${shown} is not a valid image reference; use a name like "alpine:latest"`);
    const refusal = registryRefusal(ref.registry, this.options.registries);
    if (refusal) throw new GridxError('LIMIT_EXCEEDED', `${shown}: ${refusal}`);
    const volumes = await resolveMounts(submitted.volumes, this.options.volumes);
    return { ref, spec: { ...submitted, image: ref.canonical, volumes } };
  }

  private async create(create: Docker.ContainerCreateOptions, ref: ImageRef, shown: string, signal?: AbortSignal): Promise<Docker.Container> {
    const timed = async () => {
      const creating = performance.now();
      const container = await this.docker.createContainer(create);
      this.options.observe?.timed('create', (performance.now() - creating) / 1000);
      return container;
    };
    try {
      return await timed();
    } catch (err) {
      if (isNoSuchImage(err)) {
        const refusal = await pullRefusal(ref, this.options.registries, this.options.lookup);
        if (refusal) throw new GridxError('LIMIT_EXCEEDED', `image "${clip(shown)}": ${refusal}`);
        const image = ref.canonical;
        this.log.info(`pulling image ${image}`);
        await pullImage(this.docker, ref, shown, {
          timeoutMs: this.options.pullTimeoutMs,
          ...(signal ? { signal } : {}),
          onProgress: (line) => this.log.debug(`pull ${image}: ${line}`),
          onFailure: (message) => this.log.debug(`pull ${image} failed: ${message}`),
        }).then(
          () => this.options.observe?.pulled('ok'),
          (pullErr: unknown) => {
            this.options.observe?.pulled('failed');
            throw pullErr;
          },
        );
        if (signal?.aborted) throw new Error('start aborted during the pull');
        return await timed();
      }
      if ((err as { statusCode?: number }).statusCode === 409) {
        // A container with this execution's name exists: left by a crash. Replace it.
        await this.docker.getContainer(create.name!).remove({ force: true });
        return await timed();
      }
      throw err;
    }
  }

  wait(executionId: string): Promise<ExecutionResult> {
    const run = this.runs.get(executionId);
    if (!run) {
      return Promise.reject(new GridxError('NOT_FOUND', `execution ${executionId} is not running on this node`));
    }
    // The run is forgotten once its result has been handed out.
    return run.result.finally(() => {
      if (this.runs.get(executionId) === run) this.runs.delete(executionId);
    });
  }

  async cancel(executionId: string): Promise<void> {
    const run = this.runs.get(executionId);
    if (!run || run.cancelled) return;
    run.cancelled = true;
    if (run.container) await this.kill(run.container);
  }

  logs(executionId: string): OutputSnapshot | undefined {
    return this.runs.get(executionId)?.snapshot();
  }

  async reapOrphans(): Promise<number> {
    const leftovers = await this.docker.listContainers({
      all: true,
      filters: { label: [`${LABELS.node}=${this.options.nodeId}`] },
    });
    const ours = leftovers.filter((c) => !this.runs.has(c.Labels[LABELS.execution] ?? ''));
    await Promise.all(
      ours.map((c) =>
        this.docker
          .getContainer(c.Id)
          .remove({ force: true })
          .catch((err: unknown) => this.log.warn(`could not remove orphan ${c.Id.slice(0, 12)}: ${messageOf(err)}`)),
      ),
    );
    if (ours.length > 0) this.log.info(`removed ${ours.length} container(s) left by an earlier run of this node`);
    return ours.length;
  }

  async cachedImages(): Promise<string[]> {
    const images = await this.docker.listImages();
    return images.flatMap((i) => i.RepoTags ?? []).filter((t) => t !== '<none>:<none>');
  }

  async stop(): Promise<void> {
    await Promise.all([...this.runs.keys()].map((id) => this.cancel(id)));
    await Promise.allSettled([...this.runs.values()].map((r) => r.result));
    await Promise.allSettled([...this.removals]);
  }

  private async kill(container: Docker.Container): Promise<void> {
    try {
      await container.kill({ signal: 'SIGKILL' });
    } catch (err) {
      // 404 or 409 "not running": it already ended, which is what we wanted.
      const status = (err as { statusCode?: number }).statusCode;
      if (status !== 404 && status !== 409) this.log.warn(`kill failed: ${messageOf(err)}`);
    }
  }

  /** Removal happens after the result is read and off the job's critical path; once per container. */
  private remove(container: Docker.Container): void {
    if (this.removing.has(container.id)) return;
    this.removing.add(container.id);
    const removal = container
      .remove({ force: true, v: true })
      .catch((err: unknown) => {
        if ((err as { statusCode?: number }).statusCode !== 404) {
          this.log.warn(`could not remove container ${container.id.slice(0, 12)}: ${messageOf(err)}`);
        }
      })
      .finally(() => {
        this.removals.delete(removal);
        this.removing.delete(container.id);
      });
    this.removals.add(removal);
  }
}
