/**
 * The one place that wires components and orders their start and stop. Components are
 * Startable (domain/startable.ts); policy lives in them, not here.
 * Start: identity → store → duties (which singleton duties of a fleet this server holds) →
 * ledger → blob store → output volumes (reaps a crash's) →
 * executor → monitor → runner hub → event log → API (listens; submits wait for the
 * scheduler) → mesh → scheduler (reap, recover, then claim, renew and sweep) → chain
 * settlement → verifier (decides what ended meanwhile) → payouts (settle what ended
 * meanwhile).
 * Stop: refuse new work (shutdown signal) → runner hub → verifier → scheduler (stops
 * running jobs and requeues them) → API → chain settlement → payouts (waits for those
 * under way) → mesh → monitor → event log → duties (handed over at once) → output volumes →
 * blob store → store.
 */

import type { FastifyInstance } from 'fastify';
import { buildApp } from '../api/app.js';
import { loadDashboard } from '../api/dashboard.js';
import { ApiServer } from '../api/server.js';
import type { Startable } from '../domain/startable.js';
import { EventLog } from '../api/event-log.js';
import { Duties } from '../scheduler/duties.js';
import type { Fence } from '../store/ledger-store.js';
import { StreamSlots } from '../api/stream-slots.js';
import type { Config } from '../config/schema.js';
import { checkExposure } from '../config/exposure.js';
import { type JobEventMap, TypedEmitter } from '../domain/events.js';
import { JOB_STATUSES, isTerminal } from '../domain/job.js';
import { type JobLimits, imageRef } from '../domain/offer.js';
import type { SpecPolicy } from '../domain/spec.js';
import { GridxError, messageOf } from '../errors.js';
import { openDockerExecutor } from '../executor/docker/engine.js';
import type { Executor } from '../executor/executor.js';
import type { Logger } from '../logger.js';
import { type Identity, loadIdentity } from '../mesh/identity.js';
import { admitsPeer, serveForwardedJob } from '../mesh/job-service.js';
import { Mesh, type OfferFields } from '../mesh/mesh.js';
import { MeshPlacement, peerPolicies } from '../mesh/placement.js';
import { NodeMetrics } from '../monitor/metrics.js';
import { ResourceMonitor } from '../monitor/monitor.js';
import { Admission } from '../scheduler/admission.js';
import { WaitingExplainer } from '../scheduler/waiting.js';
import { Intake } from '../scheduler/intake.js';
import { RunnerHub } from '../scheduler/runner-hub.js';
import { Scheduler } from '../scheduler/scheduler.js';
import { Verifier } from '../scheduler/verifier.js';
import { openStore } from '../store/open.js';
import type { JobStore } from '../store/store.js';
import { VERSION } from '../version.js';
import { Accounts } from '../ledger/accounts.js';
import { Ledger } from '../ledger/ledger.js';
import { Payouts } from '../ledger/payouts.js';
import type { Settlement } from '../ledger/settlement.js';
import { inputDigests } from '../domain/data.js';
import { type BlobStore, openBlobStore } from '../storage/blob-store.js';
import { type JobFiles, openJobFiles } from '../storage/job-files.js';
import type { OutputVolumes } from '../storage/output-volumes.js';


export interface NodeOptions {
  config: Readonly<Config>;
  log: Logger;
  /** Replaces the Docker executor (tests and benchmarks use the no-op one). */
  executor?: Executor;
  /** Skip nvidia-smi (tests). */
  detectGpus?: boolean;
  /** Fault injection for tests: runs after a withdrawal is broadcast, before it is recorded. */
  afterBroadcast?: () => void;
}

/** Images listed in an offer at most. */
const MAX_OFFER_IMAGES = 64;
const IMAGE_REFRESH_MS = 10_000;
/** How often ended tasks whose settlement or verification is missing (a crash, another server) are swept. */
const SETTLE_SWEEP_MS = 5000;

export class GridxNode {
  readonly events: TypedEmitter<JobEventMap>;
  private identity?: Identity;
  private store?: JobStore;
  private scheduler?: Scheduler;
  private api?: ApiServer;
  private monitor?: ResourceMonitor;
  private metrics?: NodeMetrics;
  private mesh?: Mesh;
  private eventLog?: EventLog;
  private runners?: RunnerHub;
  private settlement?: Settlement;
  private verifier?: Verifier;
  private payouts?: Payouts;
  private duties?: Duties;
  private blobs?: BlobStore;
  private volumes?: OutputVolumes;
  private files?: JobFiles;
  /** Accounts and the ledger, once started. */
  accounts?: Accounts;
  ledger?: Ledger;
  private images: ReadonlySet<string> = new Set();
  private imagesAt = 0;
  private readonly shutdown = new AbortController();
  private stopping?: Promise<void>;
  /** Base URL of the API once started. */
  url?: string;

  constructor(private readonly options: NodeOptions) {
    this.events = new TypedEmitter<JobEventMap>((event, err) =>
      options.log.error(`listener of ${event} failed: ${messageOf(err)}`),
    );
  }

  /** The node's peer id (also its id when it runs without a mesh). */
  get id(): string {
    if (!this.identity) throw new GridxError('UNAVAILABLE', 'the node is not started');
    return this.identity.peerId.toString();
  }

  /** The node's blob store, once started (benchmarks move files through it directly). */
  get blobStore(): BlobStore | undefined {
    return this.blobs;
  }

  get peerMesh(): Mesh | undefined {
    return this.mesh;
  }

  async start(): Promise<string> {
    const { config, log } = this.options;
    checkExposure(config);
    const p2pHost = config.mesh.p2pHost ?? config.host;
    try {
      this.identity = await loadIdentity(config.dataDir);
      const store = (this.store = await openStore(config));
      // Settlement, the sweeps and retention run on one server of a fleet at a time.
      const duties = (this.duties = new Duties({ store, holder: this.id, log: log.child('duties') }));
      await duties.start();
      const accounts = (this.accounts = new Accounts(store.ledger));
      const self = await accounts.ofPeer(this.id);
      const ledger = (this.ledger = new Ledger({ store, accounts, log: log.child('ledger'), feeBasisPoints: config.feeBasisPoints }));
      if (config.settlement.enabled) this.settlement = await this.openSettlement(store, () => duties.fence('settlement'));
      const files = await this.openFiles(store);
      const metrics = (this.metrics = new NodeMetrics({
        events: this.events,
        store,
        nodeId: this.id,
        leaseTtlMs: config.leaseTtlMs,
        mesh: () => this.mesh && { peers: this.mesh.connectedPeers, offers: this.mesh.book.size },
      }));
      const executor = this.options.executor ?? (await openDockerExecutor(config, this.id, log, files, metrics.container));
      const monitor = (this.monitor = new ResourceMonitor({ detectGpus: this.options.detectGpus ?? true }));
      await monitor.start();
      await this.refreshImages(executor);

      const policy = (): SpecPolicy => ({
        ...config.sandbox,
        maxGpus: config.sandbox.maxGpus ?? monitor.snapshot().gpus.length,
      });
      const limits = (): JobLimits => {
        const p = policy();
        return { cpus: p.cpus, memoryBytes: p.memoryBytes, timeoutMs: p.timeoutMs, gpus: p.maxGpus, networks: [...p.allowedNetworks] };
      };

      const admission = new Admission({ store, limits: config.limits });
      if (config.mesh.enabled) {
        this.mesh = new Mesh({
          identity: this.identity,
          host: p2pHost,
          port: config.mesh.p2pPort,
          bootstrap: config.mesh.bootstrap,
          offerTtlMs: config.mesh.offerTtlMs,
          guard: { connectionsPerIp: config.mesh.connectionsPerIp, streamsPerSecond: config.mesh.peerStreamsPerSecond, banMs: config.mesh.banMs },
          relay: {
            mode: config.mesh.relay,
            reservations: config.mesh.relayReservations,
            dataBytes: config.mesh.relayDataBytes,
            timeMs: config.mesh.relayTimeMs,
          },
          log: log.child('mesh'),
          describe: async () => this.describe(executor, this.scheduler!, limits()),
          serveJob: (channel, from, via) =>
            serveForwardedJob(channel, from, {
              scheduler: this.scheduler!,
              accept: config.mesh.accept,
              loopbackOnly: config.auth === 'open',
              accountOf: (peerId) => accounts.ofPeer(peerId),
              // Built below, once the scheduler exists; forwarded jobs arrive after start.
              intake: { submit: (account, spec, options) => intake.submit(account, spec, options) },
              store,
              events: this.events,
              policy,
              log: log.child('jobs'),
              sign: async (bytes) => this.identity!.privateKey.sign(bytes),
              files: { blobs: this.blobs!, maxBlobBytes: config.storage.maxBlobBytes },
            }, via),
          onOffersChanged: () => this.scheduler?.poke(),
        });
      }
      const eventLog = (this.eventLog = new EventLog(store, this.events, log.child('events'), {
        ms: config.eventRetentionMs,
        inCharge: () => duties.holds('retention'),
      }));
      const scheduler = (this.scheduler = new Scheduler({
        store,
        outputStored: (jobId) => eventLog.flushed(jobId),
        sweepsLeases: () => duties.holds('lease-sweep'),
        executor,
        events: this.events,
        log: log.child('scheduler'),
        nodeId: this.id,
        slots: config.slots,
        maxAttempts: config.maxAttempts,
        leaseTtlMs: config.leaseTtlMs,
        retryBackoffMs: config.retryBackoffMs,
        accountId: self.id,
        limits: config.limits,
        ...(this.mesh
          ? {
              placement: new MeshPlacement(
                this.mesh,
                limits,
                () => this.images,
                config.sandbox.outputLimitBytes,
                { blobs: this.blobs!, maxOutputBytes: config.sandbox.outputsBytes },
                config.mesh.forwardTo,
              ),
            }
          : {}),
      }));
      // The offer follows the node's status: a change of free slots is published at once.
      this.events.on('job:status', () => this.mesh?.requestPublish());
      const { lifecycle, leases } = scheduler;
      const settles = () => duties.holds('settlement-sweep');
      const verifier = (this.verifier = new Verifier({ store, lifecycle, events: this.events, log: log.child('verifier'), sweepMs: SETTLE_SWEEP_MS, inCharge: settles }));
      const payouts = (this.payouts = new Payouts({ ledger, events: this.events, log: log.child('ledger'), sweepMs: SETTLE_SWEEP_MS, inCharge: settles }));
      const runners = (this.runners = new RunnerHub({
        store,
        lifecycle,
        leases,
        events: this.events,
        log: log.child('runners'),
        outputLimitBytes: config.sandbox.outputLimitBytes,
        policy,
        blobs: this.blobs!,
        maxOutputBytes: config.sandbox.outputsBytes,
      }));
      scheduler.addOutputSource((jobId) => runners.liveOutput(jobId));
      await runners.start();
      const mesh = this.mesh;
      const blobs = this.blobs!;
      // A job's outputs are its owner's blobs too: the next job may name them as inputs.
      this.events.on('job:ended', ({ job }) => {
        for (const file of job.outputs?.files ?? []) {
          blobs.grant(file.sha256, job.owner).catch((err: unknown) => log.warn(`could not grant ${file.sha256} to the owner of ${job.id}: ${messageOf(err)}`));
        }
      });
      const intake = new Intake({
        inputs: {
          keep: async (bytes, accountId) => blobs.grant((await blobs.put(bytes)).digest, accountId),
          mayUse: (digest, accountId) => blobs.mayUse(digest, accountId),
        },
        scheduler,
        admission,
        ledger,
        policy,
        ...(mesh ? { peerPolicies: (local: SpecPolicy) => peerPolicies(mesh.book, local) } : {}),
      });
      const app = buildApp({
        eventLog: this.eventLog,
        runners,
        leaseTtlMs: config.leaseTtlMs,
        store,
        scheduler,
        events: this.events,
        monitor,
        policy,
        accounts,
        auth: config.auth,
        ...(this.settlement ? { settlement: this.settlement } : {}),
        mesh: this.mesh,
        node: { id: this.id, version: VERSION },
        bodyLimitBytes: config.bodyLimitBytes,
        guard: { listenHost: config.host, allowedHosts: config.api.allowedHosts, corsOrigins: config.api.corsOrigins },
        rateLimitPerMinute: config.api.rateLimitPerMinute,
        intake,
        streams: new StreamSlots(config.limits.eventStreams),
        shutdown: this.shutdown.signal,
        log: log.child('api'),
        blobs,
        metrics,
        waiting: new WaitingExplainer({
          slots: () => scheduler.slots,
          localLimits: limits,
          ...(mesh
            ? {
                peers: () =>
                  mesh.book.standing().map(({ offer, suspended }) => ({
                    limits: offer.limits,
                    free: offer.slots.free,
                    suspended,
                    allowed: admitsPeer(config.mesh.forwardTo, offer.peerId),
                  })),
              }
            : {}),
          runners: () => store.listRunners(),
          leaseTtlMs: config.leaseTtlMs,
        }),
        dashboard: loadDashboard(),
      });
      const api = (this.api = new ApiServer(app, { host: config.host, port: config.apiPort }));
      // The order of the header comment; stop() runs its own order over the same components.
      for (const component of [this.eventLog, api, this.mesh, scheduler, this.settlement, verifier, payouts]) {
        await component?.start();
      }
      this.url = api.url!;
      return this.url;
    } catch (err) {
      await this.stop().catch(() => {});
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
        const { address, port } = err as { address?: string; port?: number };
        throw new GridxError(
          'CONFIG_INVALID',
          `the API port ${port ?? config.apiPort} on ${address ?? config.host} is in use (another gridx node?); pick another with --api-port (node.api_port), or 0 for any free port`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  /**
   * The blob store, started, and the files of the Docker executor's jobs: inputs placed
   * from blobs and URLs, /outputs on volumes of their own. Blobs that queued and running
   * jobs name, or that executions hold, are never collected.
   */
  private async openFiles(store: JobStore): Promise<JobFiles | undefined> {
    const { config, log } = this.options;
    const blobs = (this.blobs = await openBlobStore(config, log, async () => {
      const live = await store.withStatus(JOB_STATUSES.filter((s) => !isTerminal(s)));
      const inputs = live.flatMap((job) => inputDigests(job.spec.inputs));
      return new Set([...inputs, ...(this.files?.held() ?? []), ...(this.runners?.uploading() ?? [])]);
    }));
    if (this.options.executor) return undefined;
    ({ files: this.files, volumes: this.volumes } = await openJobFiles(config, blobs, log));
    return this.files;
  }

  private async openSettlement(store: JobStore, fence: () => Fence | undefined): Promise<Settlement> {
    const { settlement: s } = this.options.config;
    // Loaded only here: the chain client (viem) is a fifth of an idle node's memory.
    const [{ connectChain }, { Settlement }] = await Promise.all([import('../ledger/chain.js'), import('../ledger/settlement.js')]);
    const clients = await connectChain(s.rpcUrl!, s.treasuryKey!);
    return new Settlement({
      ledger: store.ledger,
      clients,
      token: s.token as `0x${string}`,
      confirmations: s.confirmations,
      pollIntervalMs: s.pollIntervalMs,
      startBlock: s.startBlock,
      log: this.options.log.child('settlement'),
      fence,
      ...(this.options.afterBroadcast ? { afterBroadcast: this.options.afterBroadcast } : {}),
    });
  }

  private async describe(executor: Executor, scheduler: Scheduler, limits: JobLimits): Promise<OfferFields> {
    const { config } = this.options;
    // The image list costs an engine call: refreshed with the periodic republish, not on
    // every change of status.
    if (Date.now() - this.imagesAt > IMAGE_REFRESH_MS) await this.refreshImages(executor);
    const slots = scheduler.slots;
    const resources = this.monitor!.snapshot();
    return {
      apiUrl: config.mesh.announceApiUrl ?? this.api?.url ?? '',
      status: slots.free > 0 ? 'idle' : 'busy',
      slots: { total: slots.total, free: slots.free },
      cpus: resources.cpus,
      memoryBytes: resources.memoryTotalBytes,
      gpus: resources.gpus.length,
      limits,
      images: [...this.images].slice(0, MAX_OFFER_IMAGES),
      price: config.mesh.price,
      version: VERSION,
    };
  }

  private async refreshImages(executor: Executor): Promise<void> {
    if (!executor.cachedImages) return;
    try {
      this.images = new Set((await executor.cachedImages()).map(imageRef));
      this.imagesAt = Date.now();
    } catch (err) {
      this.options.log.debug(`listing images failed: ${messageOf(err)}`);
    }
  }


  /** Every job on this node, whoever owns it: for operator tools and tests, never for callers. */
  get jobs(): JobStore {
    if (!this.store) throw new GridxError('UNAVAILABLE', 'the node is not started');
    return this.store;
  }

  /** The fastify instance, for `inject()` in route tests. */
  get http(): FastifyInstance {
    if (!this.api) throw new GridxError('UNAVAILABLE', 'the node is not started');
    return this.api.app;
  }

  /** Idempotent; running jobs are stopped and requeued, so none is lost. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.shutdown.abort(new GridxError('UNAVAILABLE', 'the node is shutting down'));
      const order: Array<Startable | undefined> = [
        this.runners,
        this.verifier,
        this.scheduler,
        this.api,
        this.settlement,
        this.payouts,
        this.mesh,
        this.monitor,
        this.eventLog,
        this.duties,
        this.volumes,
        this.blobs,
      ];
      for (const component of order) await component?.stop();
      this.metrics?.stop();
      await this.store?.close();
    })();
    return this.stopping;
  }
}
