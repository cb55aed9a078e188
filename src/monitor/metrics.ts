/**
 * What a node or server says to Prometheus at GET /metrics (prom-client, one registry per
 * node: several nodes may share a process in tests). Job metrics come from the lifecycle's
 * events, so every door (both dialects, runners, the mesh) is counted alike; the engine's
 * timings from the Docker executor; counts that live in the store (jobs by status, runners,
 * ledger entries, withdrawals) are read when Prometheus scrapes, so every server of a fleet
 * reports the whole store for those, and its own traffic for the rest.
 */

import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { JobEventMap, TypedEmitter } from '../domain/events.js';
import { JOB_STATUSES, type Job } from '../domain/job.js';
import type { ContainerObserver } from '../executor/docker/docker-executor.js';
import { recent } from '../memo.js';
import type { JobStore } from '../store/store.js';

export interface MetricsDeps {
  events: TypedEmitter<JobEventMap>;
  store: Pick<JobStore, 'countByStatus' | 'listRunners' | 'ledger'>;
  /** This node's id: a job executed by anyone else (not a runner) was forwarded to a peer. */
  nodeId: string;
  /** Runners heartbeating within this long are online. */
  leaseTtlMs: number;
  /** The mesh, when the node is part of one. */
  mesh?: () => { peers: number; offers: number } | undefined;
}

/** Store counts are read at most this often, however often /metrics is asked (it is as open as /status). */
const STORE_READ_MS = 5000;

/** Seconds, from a few milliseconds (a no-op job) to hours (a long job). */
const JOB_BUCKETS = [0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600];
/** Seconds the engine takes to create or start a container. */
const ENGINE_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Seconds an HTTP request takes (long-polls and waits included). */
const HTTP_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30];

export class NodeMetrics {
  readonly registry = new Registry();
  /** For the Docker executor: how long the engine took, and how pulls ended. */
  readonly container: ContainerObserver;
  private readonly http: Histogram<'method' | 'route' | 'status_code'>;
  private off: Array<() => void> = [];

  constructor(private readonly deps: MetricsDeps) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'gridx_' });
    // Gauges prom-client names "_total", a suffix Prometheus reserves for counters (promtool
    // refuses them); the per-type gauges beside them (nodejs_active_handles, …_requests,
    // …_resources) hold the same counts.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
      this.registry.removeSingleMetric(`gridx_${name}`);
    }
    const { events } = deps;
    const counts = recent(() => deps.store.countByStatus(), STORE_READ_MS);
    const runners = recent(() => deps.store.listRunners(), STORE_READ_MS);
    const ledger = recent(() => deps.store.ledger.counts(), STORE_READ_MS);

    new Gauge({
      name: 'gridx_jobs',
      help: 'Jobs in the store by status (all servers of a fleet share them).',
      labelNames: ['status'],
      registers,
      async collect() {
        const byStatus = await counts();
        for (const status of JOB_STATUSES) this.set({ status }, byStatus[status] ?? 0);
      },
    });
    new Gauge({
      name: 'gridx_queue_depth',
      help: 'Jobs waiting to be placed (pending).',
      registers,
      async collect() {
        this.set((await counts()).pending ?? 0);
      },
    });
    const ended = new Counter({ name: 'gridx_jobs_ended_total', help: 'Jobs that reached a terminal status here, by status and reason.', labelNames: ['status', 'reason'], registers });
    const waited = new Histogram({ name: 'gridx_job_wait_seconds', help: 'Time from submit to the container starting.', buckets: JOB_BUCKETS, registers });
    const ran = new Histogram({ name: 'gridx_job_duration_seconds', help: 'How long ended jobs ran, by status.', labelNames: ['status'], buckets: JOB_BUCKETS, registers });
    const lost = new Counter({
      name: 'gridx_executions_lost_total',
      help: 'Executions whose holder stopped holding them (reason lease_expired: a lease expired), requeued or failed.',
      labelNames: ['reason'],
      registers,
    });
    const forwarded = new Counter({ name: 'gridx_forwarded_jobs_total', help: 'Jobs that ran on a mesh peer for this node, by how they ended.', labelNames: ['outcome'], registers });
    this.off.push(
      events.on('job:started', ({ job }) => {
        if (job.startedAt) waited.observe(secondsBetween(job.createdAt, job.startedAt));
      }),
      events.on('job:ended', ({ job }) => {
        ended.inc({ status: job.status, reason: job.reason ?? '' });
        if (job.durationMs !== undefined) ran.observe({ status: job.status }, job.durationMs / 1000);
        if (forwardedJob(job, deps.nodeId)) forwarded.inc({ outcome: job.status });
      }),
      events.on('job:lost', ({ reason }) => lost.inc({ reason })),
    );

    const engine = new Histogram({ name: 'gridx_container_seconds', help: 'Seconds the Docker engine took, by phase (create, start).', labelNames: ['phase'], buckets: ENGINE_BUCKETS, registers });
    const pulls = new Counter({ name: 'gridx_image_pulls_total', help: 'Image pulls, by outcome (ok, failed).', labelNames: ['outcome'], registers });
    this.container = {
      timed: (phase, seconds) => engine.observe({ phase }, seconds),
      pulled: (outcome) => pulls.inc({ outcome }),
    };

    const ttl = deps.leaseTtlMs;
    new Gauge({
      name: 'gridx_runners',
      help: 'Registered runners, online (heartbeat within a lease TTL) or offline.',
      labelNames: ['state'],
      registers,
      async collect() {
        const now = Date.now();
        const all = await runners();
        const online = all.filter((r) => now - Date.parse(r.lastHeartbeatAt) <= ttl).length;
        this.set({ state: 'online' }, online);
        this.set({ state: 'offline' }, all.length - online);
      },
    });
    const mesh = deps.mesh;
    if (mesh) {
      new Gauge({ name: 'gridx_peers', help: 'Mesh peers connected now.', registers, collect() { this.set(mesh()?.peers ?? 0); } });
      new Gauge({ name: 'gridx_offers', help: 'Signed offers held in the offer book.', registers, collect() { this.set(mesh()?.offers ?? 0); } });
    }
    new Gauge({
      name: 'gridx_ledger_entries',
      help: 'Journal entries in the ledger by kind (escrow, payout, refund, fee, credit, deposit, withdrawal, …).',
      labelNames: ['kind'],
      registers,
      async collect() {
        for (const [kind, n] of Object.entries((await ledger()).entries)) this.set({ kind }, n);
      },
    });
    new Gauge({
      name: 'gridx_withdrawals',
      help: 'On-chain withdrawals by status (requested, signed, confirmed, failed).',
      labelNames: ['status'],
      registers,
      async collect() {
        const withdrawals = (await ledger()).withdrawals;
        for (const status of ['requested', 'signed', 'confirmed', 'failed']) this.set({ status }, withdrawals[status] ?? 0);
      },
    });

    this.http = new Histogram({
      name: 'gridx_http_request_duration_seconds',
      help: 'HTTP requests by method, route (its pattern) and status code.',
      labelNames: ['method', 'route', 'status_code'],
      buckets: HTTP_BUCKETS,
      registers,
    });
  }

  /** Times every request by its route's pattern (unknown URLs as one label: no label per URL a caller makes up). */
  instrument(app: FastifyInstance): void {
    app.addHook('onResponse', async (request, reply) => {
      const route = request.routeOptions.url ?? 'unmatched';
      this.http.observe({ method: request.method, route, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000);
    });
  }

  /** The text Prometheus scrapes. */
  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  stop(): void {
    for (const off of this.off.splice(0)) off();
    this.registry.clear();
  }
}

/** Whether a mesh peer ran the job for this node (runners' ids start with "runner-"). */
function forwardedJob(job: Job, nodeId: string): boolean {
  return job.executedBy !== undefined && job.executedBy !== nodeId && !job.executedBy.startsWith('runner-') && job.origin === undefined;
}

function secondsBetween(from: string, to: string): number {
  return Math.max(0, (Date.parse(to) - Date.parse(from)) / 1000);
}
