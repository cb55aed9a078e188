/** The fastify app: one error shape, clear 4xx messages, and the routes of every dialect. */

import rateLimit from '@fastify/rate-limit';
import websocket from '@fastify/websocket';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { JobEventMap, TypedEmitter } from '../domain/events.js';
import type { SpecPolicy } from '../domain/spec.js';
import { formatSize } from '../domain/units.js';
import { GridxError, isGridxError, quote } from '../errors.js';
import { type BrowserGuardOptions, browserGuard } from './guard.js';
import type { StreamSlots } from './stream-slots.js';
import { CallerKeys, RUNNER_ROUTE } from './caller.js';
import { chooseWsProtocol } from './auth.js';
import type { Logger } from '../logger.js';
import type { Mesh } from '../mesh/mesh.js';
import type { NodeMetrics } from '../monitor/metrics.js';
import type { ResourceMonitor } from '../monitor/monitor.js';
import type { RunnerHub } from '../scheduler/runner-hub.js';
import type { Intake } from '../scheduler/intake.js';
import type { Scheduler } from '../scheduler/scheduler.js';
import type { WaitingExplainer } from '../scheduler/waiting.js';
import type { JobStore } from '../store/store.js';
import type { ErrorBody } from '../wire/errors.js';
import { gridxRoutes } from './routes/gridx.js';
import { type EventStreamOptions, eventRoutes } from './routes/events.js';
import { runnerRoutes } from './routes/runners.js';
import { statusRoutes } from './routes/status.js';
import { taskRoutes } from './routes/tasks.js';
import type { EventLog } from './event-log.js';
import type { Accounts } from '../ledger/accounts.js';
import type { Settlement } from '../ledger/settlement.js';
import { accountRoutes } from './routes/accounts.js';
import { blobRoutes } from './routes/blobs.js';
import { outputRoutes } from './routes/outputs.js';
import { registerOpenApi } from './openapi.js';
import { type DashboardAssets, dashboardRoutes } from './dashboard.js';
import type { BlobStore } from '../storage/blob-store.js';

/**
 * Everything the API is built from; wired in src/node/. Each route module takes only its
 * own part (its *RouteDeps), picked here.
 */
export interface ApiDeps {
  store: JobStore;
  scheduler: Scheduler;
  events: TypedEmitter<JobEventMap>;
  monitor: ResourceMonitor;
  /** Per-job limits, for /status. */
  policy: () => SpecPolicy;
  /** The mesh, when the node is part of one. */
  mesh: Mesh | undefined;
  node: { id: string; version: string };
  bodyLimitBytes: number;
  /** Runners that pull work from this node (gridx runner). */
  runners: RunnerHub;
  /** Lease TTL, shown to runners and used to call them online or offline. */
  leaseTtlMs: number;
  /** The update stream behind the WebSocket routes. */
  eventLog: EventLog;
  eventStream?: EventStreamOptions;
  accounts: Accounts;
  /** "required": writes need an account key; "open": anonymous jobs (loopback nodes). */
  auth: 'required' | 'open';
  /** On-chain deposits and withdrawals, when settlement is on. */
  settlement?: Settlement;
  /** Aborts when the node begins to shut down: waits and follows end then. */
  shutdown: AbortSignal;
  log: Logger;
  /** New jobs of both dialects: their limits, the caller's queue limits, escrow, then the scheduler. */
  intake: Intake;
  /** Open streams (event WebSockets, followed logs) per caller. */
  streams: StreamSlots;
  /** Which Host and Origin headers the API answers to. */
  guard: BrowserGuardOptions;
  /** Requests per minute per caller; 0: no limit. */
  rateLimitPerMinute: number;
  /** Files for jobs' inputs and the outputs they leave. */
  blobs: BlobStore;
  /** What GET /metrics serves; every request is timed into it. */
  metrics?: NodeMetrics;
  /** Why pending jobs wait. */
  waiting?: WaitingExplainer;
  /** The built dashboard, served at `/`. */
  dashboard?: DashboardAssets;
}

export function buildApp(deps: ApiDeps): FastifyInstance {
  const app = Fastify({
    logger: false,
    bodyLimit: deps.bodyLimitBytes,
    // A slow or stuck client cannot hold a connection open forever: the whole request must
    // arrive within a minute. Responses may take as long as the job (POST /job waits).
    requestTimeout: 60_000,
    // The router's own refusals (a path parameter past 100 characters, a malformed URL) would
    // echo the whole URL: answer them here, quoted like every other error.
    frameworkErrors: (err, request, reply) => {
      endRefusedUpgrade(request, reply as FastifyReply);
      void (reply as FastifyReply).code(400).send({
        error: `${quote(request.url.split('?')[0])} is not a URL this node reads (${err.code}); ids are at most 100 characters`,
        code: 'INVALID_INPUT',
      } satisfies ErrorBody);
    },
    ajv: { customOptions: { coerceTypes: true, allErrors: false, removeAdditional: false, allowUnionTypes: true } },
  });

  // Only JSON bodies are parsed: a form or text/plain body, which any web page may send
  // without a preflight, is 415.
  app.removeContentTypeParser('text/plain');
  app.addHook('onRequest', browserGuard(deps.guard));
  if (deps.rateLimitPerMinute > 0) {
    const callers = new CallerKeys(deps.accounts);
    app.register(rateLimit, {
      // A runner reports for every job it holds (started, output every 100 ms, result) under
      // its own token: its routes get ten times the room, still bounded per runner.
      max: (request) => (RUNNER_ROUTE.test(request.url) ? 10 : 1) * deps.rateLimitPerMinute,
      timeWindow: 60_000,
      keyGenerator: (request) => callers.of(request),
      errorResponseBuilder: (_request, context) =>
        new GridxError('RATE_LIMITED', `too many requests: this node takes ${context.max} a minute from one caller; try again in ${context.after}`, {
          retryAfterSeconds: Math.max(1, Math.ceil(context.ttl / 1000)),
        }),
    });
  }

  app.setErrorHandler((err: FastifyError | GridxError, request, reply) => {
    const { status, body } = errorResponse(err, deps.bodyLimitBytes);
    if (status >= 500) deps.log.error(`${request.method} ${quote(request.url)}: ${err.stack ?? err.message}`);
    endRefusedUpgrade(request, reply);
    if (isGridxError(err) && err.retryAfterSeconds !== undefined && !reply.hasHeader('retry-after')) {
      void reply.header('retry-after', String(err.retryAfterSeconds));
    }
    void reply.code(status).send(body);
  });

  app.setNotFoundHandler((request, reply) => {
    endRefusedUpgrade(request, reply);
    void reply.code(404).send({
      error: `no route ${request.method} ${quote(request.url.split('?')[0])}; every route is listed at GET /docs (GET /openapi.json), for example GET /status, POST /job, GET /jobs, POST /api/tasks`,
      code: 'NOT_FOUND',
    } satisfies ErrorBody);
  });

  registerOpenApi(app, deps.node.version);
  deps.metrics?.instrument(app);
  app.register(websocket, { options: { maxPayload: 64 * 1024, handleProtocols: chooseWsProtocol } });
  const { store, scheduler, events, intake, streams, shutdown } = deps;
  const auth = { accounts: deps.accounts, auth: deps.auth };
  app.register(
    statusRoutes({ store, scheduler, monitor: deps.monitor, policy: deps.policy, mesh: deps.mesh, node: deps.node, ...(deps.metrics ? { metrics: deps.metrics } : {}) }),
  );
  const waiting = deps.waiting ? { waiting: deps.waiting } : {};
  app.register(gridxRoutes({ ...auth, store, scheduler, events, intake, streams, shutdown, ...waiting }));
  app.register(taskRoutes({ ...auth, store, scheduler, intake, ...waiting }));
  app.register(eventRoutes({ ...auth, eventLog: deps.eventLog, store, streams, shutdown, eventStream: deps.eventStream }));
  app.register(runnerRoutes({ ...auth, runners: deps.runners, leaseTtlMs: deps.leaseTtlMs, shutdown }));
  app.register(accountRoutes({ ...auth, ledger: store.ledger, settlement: deps.settlement }));
  app.register(blobRoutes({ ...auth, blobs: deps.blobs, shutdown }));
  app.register(outputRoutes({ ...auth, store, blobs: deps.blobs }));
  app.register(dashboardRoutes(deps.dashboard ?? new Map()));
  return app;
}

/**
 * A WebSocket upgrade answered with an error: the socket left the HTTP server's hands at
 * the upgrade, so nothing else closes it, and a client that keeps it open would hold the
 * node's stop.
 */
function endRefusedUpgrade(request: FastifyRequest, reply: FastifyReply): void {
  if (request.headers.upgrade === undefined) return;
  reply.raw.once('finish', () => request.raw.socket.destroy());
}

function errorResponse(err: FastifyError | GridxError, bodyLimit: number): { status: number; body: ErrorBody } {
  if (isGridxError(err)) return { status: err.httpStatus, body: { error: err.message, code: err.code } };
  const fe = err as FastifyError & { validationContext?: string };
  if (fe.validation) {
    const first = fe.validation[0];
    const field = `${fe.validationContext ?? 'request'}${first?.instancePath?.replace(/\//g, '.') ?? ''}`;
    const what = first?.params && 'missingProperty' in first.params ? `.${String(first.params.missingProperty)}` : '';
    return { status: 400, body: { error: `${field}${what}: ${first?.message ?? 'is invalid'}`, code: 'INVALID_INPUT' } };
  }
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return {
        status: 413,
        body: { error: `request body is larger than this node accepts (${formatSize(bodyLimit)}); send less`, code: 'BODY_TOO_LARGE' },
      };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { status: 400, body: { error: `body is not valid JSON (${fe.message}); send a JSON object`, code: 'INVALID_INPUT' } };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, body: { error: 'body is empty; send a JSON object such as {"image": "alpine:latest", "command": "echo hi"}', code: 'INVALID_INPUT' } };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return {
        status: 415,
        body: { error: 'the body must be JSON: send Content-Type: application/json (forms and text/plain are refused)', code: 'UNSUPPORTED_MEDIA_TYPE' },
      };
  }
  if (err instanceof SyntaxError || fe.statusCode === 400) {
    return { status: 400, body: { error: `body is not valid JSON (${fe.message}); send a JSON object`, code: 'INVALID_INPUT' } };
  }
  if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) {
    return { status: fe.statusCode, body: { error: fe.message, code: 'INVALID_INPUT' } };
  }
  return { status: 500, body: { error: 'internal error; the node logged the details', code: 'INTERNAL' } };
}
