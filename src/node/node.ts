/**
 * The one place that wires components and orders their start and stop.
 * Start: store → executor → monitor → scheduler (reap, recover) → API.
 * Stop: refuse new work → stop running jobs and requeue them → close API → close store.
 */

import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../api/app.js';
import type { Config } from '../config/schema.js';
import { type JobEventMap, TypedEmitter } from '../domain/events.js';
import type { SpecPolicy } from '../domain/spec.js';
import { GridxError, messageOf } from '../errors.js';
import { DockerExecutor } from '../executor/docker/docker-executor.js';
import { connectDocker } from '../executor/docker/engine.js';
import type { Executor } from '../executor/executor.js';
import type { Logger } from '../logger.js';
import { ResourceMonitor } from '../monitor/monitor.js';
import { Scheduler } from '../scheduler/scheduler.js';
import { SqliteStore } from '../store/sqlite/sqlite-store.js';
import type { JobStore } from '../store/store.js';
import { VERSION } from '../version.js';
import { loadNodeId } from './identity.js';

export interface NodeOptions {
  config: Readonly<Config>;
  log: Logger;
  /** Replaces the Docker executor (tests and benchmarks use the no-op one). */
  executor?: Executor;
  /** Skip nvidia-smi (tests). */
  detectGpus?: boolean;
}

export class GridxNode {
  readonly id: string;
  readonly events: TypedEmitter<JobEventMap>;
  private store?: JobStore;
  private scheduler?: Scheduler;
  private app?: FastifyInstance;
  private monitor?: ResourceMonitor;
  private readonly shutdown = new AbortController();
  private stopping?: Promise<void>;
  /** Base URL of the API once started. */
  url?: string;

  constructor(private readonly options: NodeOptions) {
    this.id = loadNodeId(options.config.dataDir);
    this.events = new TypedEmitter<JobEventMap>((event, err) =>
      options.log.error(`listener of ${event} failed: ${messageOf(err)}`),
    );
  }

  async start(): Promise<string> {
    const { config, log } = this.options;
    try {
      this.store = new SqliteStore(path.join(config.dataDir, 'gridx.db'));
      const executor = this.options.executor ?? (await this.dockerExecutor());
      this.monitor = new ResourceMonitor({ detectGpus: this.options.detectGpus ?? true });
      await this.monitor.start();
      this.scheduler = new Scheduler({
        store: this.store,
        executor,
        events: this.events,
        log: log.child('scheduler'),
        nodeId: this.id,
        slots: config.slots,
        maxAttempts: config.maxAttempts,
      });
      await this.scheduler.start();

      const monitor = this.monitor;
      const policy = (): SpecPolicy => ({
        ...config.sandbox,
        maxGpus: config.sandbox.maxGpus ?? monitor.snapshot().gpus.length,
      });
      this.app = buildApp({
        store: this.store,
        scheduler: this.scheduler,
        events: this.events,
        monitor,
        policy,
        node: { id: this.id, version: VERSION },
        bodyLimitBytes: config.bodyLimitBytes,
        shutdown: this.shutdown.signal,
        log: log.child('api'),
      });
      const address = await this.app.listen({ host: config.host, port: config.apiPort });
      this.url = address.replace('[::1]', 'localhost');
      return this.url;
    } catch (err) {
      await this.stop().catch(() => {});
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
        throw new GridxError(
          'CONFIG_INVALID',
          `port ${config.apiPort} on ${config.host} is in use; pick another with --api-port`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  private async dockerExecutor(): Promise<Executor> {
    const { config, log } = this.options;
    const docker = await connectDocker(config.dockerSocket);
    return new DockerExecutor({
      docker,
      nodeId: this.id,
      user: config.sandbox.user,
      pidsLimit: config.sandbox.pidsLimit,
      tmpfsBytes: config.sandbox.tmpfsBytes,
      outputLimitBytes: config.sandbox.outputLimitBytes,
      pullTimeoutMs: config.sandbox.pullTimeoutMs,
      log: log.child('docker'),
    });
  }

  /** The fastify instance, for `inject()` in route tests. */
  get http(): FastifyInstance {
    if (!this.app) throw new GridxError('UNAVAILABLE', 'the node is not started');
    return this.app;
  }

  /** Idempotent; running jobs are stopped and requeued, so none is lost. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.shutdown.abort(new GridxError('UNAVAILABLE', 'the node is shutting down'));
      await this.scheduler?.stop();
      await this.app?.close();
      this.monitor?.stop();
      await this.store?.close();
    })();
    return this.stopping;
  }
}
