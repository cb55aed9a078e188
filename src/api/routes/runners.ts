/**
 * The runner API: what `gridx runner` speaks to its server. Registration is open (the
 * server binds to loopback unless told otherwise; accounts come with the ledger); every
 * other route needs the runner's own token, and every lease route the runner's own lease.
 */

import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ExecutionResult } from '../../domain/job.js';
import { formatDuration, formatSize, parseCpus, parseDuration, parseSize } from '../../domain/units.js';
import { invalid, isGridxError } from '../../errors.js';
import type { RunnerRecord, RunnerSummary } from '../../store/store.js';
import type { ApiDeps } from '../app.js';
import { bearerOf, mustBeWorker, optionalAccount, writerAccount } from '../auth.js';
import { isSigningKey } from '../../domain/result-digest.js';

/** A runner as GET /api/runners shows it; never its token, and its account only to that account. */
export function runnerView(runner: RunnerSummary, onlineWithinMs: number, viewer?: string) {
  const heardAgo = Date.now() - Date.parse(runner.lastHeartbeatAt);
  return {
    id: runner.id,
    name: runner.name,
    status: heardAgo <= onlineWithinMs ? 'online' : 'offline',
    slots: runner.slots,
    running: runner.running,
    labels: runner.labels,
    limits: {
      cpu: runner.limits.cpus,
      memory: formatSize(runner.limits.memoryBytes),
      timeout: formatDuration(runner.limits.timeoutMs),
      gpus: runner.limits.gpus,
      networks: runner.limits.networks,
    },
    version: runner.version,
    ...(runner.accountId && runner.accountId === viewer ? { account_id: runner.accountId } : {}),
    registered_at: runner.registeredAt,
    last_heartbeat_at: runner.lastHeartbeatAt,
  };
}

const runnerParams = {
  type: 'object',
  properties: { id: { type: 'string', minLength: 1, maxLength: 100 } },
  required: ['id'],
} as const;

const leaseParams = {
  type: 'object',
  properties: {
    id: { type: 'string', minLength: 1, maxLength: 100 },
    token: { type: 'string', minLength: 1, maxLength: 100 },
  },
  required: ['id', 'token'],
} as const;

const registerSchema = {
  type: 'object',
  required: ['name', 'slots', 'public_key'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 100 },
    slots: { type: 'integer', minimum: 1, maximum: 1024 },
    labels: {
      type: 'object',
      maxProperties: 32,
      additionalProperties: { type: 'string', maxLength: 200 },
      propertyNames: { maxLength: 64 },
    },
    limits: {
      type: 'object',
      additionalProperties: false,
      properties: {
        cpu: { type: ['number', 'string'] },
        memory: { type: ['string', 'number'] },
        timeout: { type: ['string', 'number'] },
        gpus: { type: 'integer', minimum: 0, maximum: 64 },
        networks: { type: 'array', maxItems: 16, items: { type: 'string', maxLength: 64 } },
      },
    },
    version: { type: 'string', maxLength: 64 },
    public_key: { type: 'string', minLength: 40, maxLength: 200 },
  },
} as const;

interface RegisterBody {
  name: string;
  slots: number;
  labels?: Record<string, string>;
  limits?: { cpu?: number | string; memory?: string | number; timeout?: string | number; gpus?: number; networks?: string[] };
  version?: string;
  public_key: string;
}

const claimSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    max: { type: 'integer', minimum: 1, maximum: 64, default: 1 },
    wait: { type: 'number', minimum: 0, maximum: 30, default: 0 },
  },
} as const;

const heartbeatSchema = {
  type: 'object',
  required: ['leases'],
  additionalProperties: false,
  properties: { leases: { type: 'array', maxItems: 1024, items: { type: 'string', minLength: 1, maxLength: 100 } } },
} as const;

const outputSchema = {
  type: 'object',
  required: ['chunks'],
  additionalProperties: false,
  properties: {
    chunks: {
      type: 'array',
      maxItems: 4096,
      items: {
        type: 'object',
        required: ['stream', 'data'],
        additionalProperties: false,
        properties: { stream: { enum: ['stdout', 'stderr'] }, data: { type: 'string' } },
      },
    },
  },
} as const;

const resultSchema = {
  type: 'object',
  required: ['oom_killed', 'timed_out', 'cancelled', 'stdout', 'stderr', 'started_at', 'finished_at', 'duration_ms', 'signature'],
  additionalProperties: false,
  properties: {
    exit_code: { type: ['integer', 'null'], minimum: -1, maximum: 255 },
    oom_killed: { type: 'boolean' },
    timed_out: { type: 'boolean' },
    cancelled: { type: 'boolean' },
    stdout: { type: 'string' },
    stderr: { type: 'string' },
    stdout_truncated: { type: 'boolean', default: false },
    stderr_truncated: { type: 'boolean', default: false },
    started_at: { type: 'string', format: 'date-time' },
    finished_at: { type: 'string', format: 'date-time' },
    duration_ms: { type: 'integer', minimum: 0 },
    signature: { type: 'string', minLength: 1, maxLength: 200 },
  },
} as const;

/** A result as runners send it (snake_case, like the rest of /api). */
export interface ResultBody {
  exit_code?: number | null;
  oom_killed: boolean;
  timed_out: boolean;
  cancelled: boolean;
  stdout: string;
  stderr: string;
  stdout_truncated?: boolean;
  stderr_truncated?: boolean;
  started_at: string;
  finished_at: string;
  duration_ms: number;
  /** The runner's Ed25519 signature over the result (domain/result-digest.ts). */
  signature: string;
}

export function resultBody(r: ExecutionResult, signature: string): ResultBody {
  return {
    signature,
    exit_code: r.exitCode ?? null,
    oom_killed: r.oomKilled,
    timed_out: r.timedOut,
    cancelled: r.cancelled,
    stdout: r.stdout,
    stderr: r.stderr,
    stdout_truncated: r.stdoutTruncated,
    stderr_truncated: r.stderrTruncated,
    started_at: r.startedAt,
    finished_at: r.finishedAt,
    duration_ms: r.durationMs,
  };
}

function fromResultBody(b: ResultBody): ExecutionResult {
  return {
    ...(b.exit_code === null || b.exit_code === undefined ? {} : { exitCode: b.exit_code }),
    oomKilled: b.oom_killed,
    timedOut: b.timed_out,
    cancelled: b.cancelled,
    stdout: b.stdout,
    stderr: b.stderr,
    stdoutTruncated: b.stdout_truncated ?? false,
    stderrTruncated: b.stderr_truncated ?? false,
    startedAt: b.started_at,
    finishedAt: b.finished_at,
    durationMs: b.duration_ms,
  };
}

export function runnerRoutes(deps: ApiDeps) {
  const { runners } = deps;
  const caller = (request: FastifyRequest<{ Params: { id: string } }>): Promise<RunnerRecord> =>
    runners.authenticate(request.params.id, bearerOf(request));

  return async function routes(app: FastifyInstance): Promise<void> {
    app.post<{ Body: RegisterBody }>('/api/runners', { schema: { body: registerSchema } }, async (request, reply) => {
      const account = await writerAccount(request, deps);
      mustBeWorker(account);
      const body = request.body;
      if (!isSigningKey(body.public_key)) throw invalid('body.public_key', 'must be an Ed25519 public key, SPKI DER in base64');
      const policy = deps.policy();
      const limits = body.limits ?? {};
      const parsed = {
        cpus: limits.cpu === undefined ? policy.cpus : parseCpus(limits.cpu),
        memoryBytes: limits.memory === undefined ? policy.memoryBytes : parseSize(limits.memory),
        timeoutMs: limits.timeout === undefined ? policy.timeoutMs : parseDuration(limits.timeout),
      };
      if (parsed.cpus === undefined) throw invalid('body.limits.cpu', 'must be a positive number of cores, such as 2 or "1.5"');
      if (parsed.memoryBytes === undefined) throw invalid('body.limits.memory', 'must be a size such as "2g" or "512m"');
      if (parsed.timeoutMs === undefined) throw invalid('body.limits.timeout', 'must be a duration such as "10m" or a number of seconds');
      const networks = limits.networks ?? ['none'];
      const { runner, token } = await runners.register({
        ...(account ? { accountId: account.id } : {}),
        publicKey: body.public_key,
        name: body.name,
        slots: body.slots,
        labels: body.labels ?? {},
        limits: {
          cpus: parsed.cpus,
          memoryBytes: parsed.memoryBytes,
          timeoutMs: parsed.timeoutMs,
          gpus: limits.gpus ?? 0,
          networks: networks.includes('none') ? networks : ['none', ...networks],
        },
        version: body.version ?? 'unknown',
      });
      return reply.code(201).send({
        ...runnerView({ ...runner, running: 0 }, deps.leaseTtlMs, account?.id),
        token,
        lease_ttl_ms: deps.leaseTtlMs,
        heartbeat_ms: runners.heartbeatMs,
      });
    });

    app.get('/api/runners', async (request) => {
      // A runner may send its own token here: that is no account, and sees what anybody does.
      const viewer = (await optionalAccount(request, deps).catch((err: unknown) => {
        if (isGridxError(err, 'UNAUTHORIZED')) return undefined;
        throw err;
      }))?.id;
      return { runners: (await runners.list()).map((r) => runnerView(r, deps.leaseTtlMs, viewer)) };
    });

    app.post<{ Params: { id: string }; Body: { leases: string[] } }>(
      '/api/runners/:id/heartbeat',
      { schema: { params: runnerParams, body: heartbeatSchema } },
      async (request) => {
        const answer = await runners.heartbeat(await caller(request), request.body.leases);
        return { ...answer, lease_ttl_ms: deps.leaseTtlMs, heartbeat_ms: runners.heartbeatMs };
      },
    );

    app.post<{ Params: { id: string } }>('/api/runners/:id/leave', { schema: { params: runnerParams } }, async (request) => ({
      returned: await runners.leave(await caller(request)),
    }));

    app.post<{ Params: { id: string }; Body: { max: number; wait: number } | undefined }>(
      '/api/runners/:id/claim',
      { schema: { params: runnerParams, body: claimSchema } },
      async (request, reply) => {
        const runner = await caller(request);
        const body = request.body ?? { max: 1, wait: 0 };
        const gone = new AbortController();
        const onClose = () => gone.abort();
        reply.raw.once('close', onClose);
        deps.shutdown.addEventListener('abort', onClose, { once: true });
        try {
          const jobs = await runners.claim(runner, body.max ?? 1, (body.wait ?? 0) * 1000, gone.signal);
          if (jobs.length > 0 && (gone.signal.aborted || reply.raw.destroyed)) {
            await runners.giveBack(jobs, `runner ${runner.name} left before it received the job`);
            return { jobs: [] };
          }
          return {
            jobs: jobs.map((j) => ({
              lease_token: j.leaseToken,
              job_id: j.jobId,
              attempt: j.attempt,
              spec: j.spec,
              lease_expires_at: j.leaseExpiresAt,
            })),
          };
        } finally {
          reply.raw.off('close', onClose);
          deps.shutdown.removeEventListener('abort', onClose);
        }
      },
    );

    app.post<{ Params: { id: string; token: string } }>(
      '/api/runners/:id/leases/:token/started',
      { schema: { params: leaseParams } },
      async (request) => {
        const job = await runners.started(await caller(request), request.params.token);
        return { job_id: job.id, status: job.status };
      },
    );

    app.post<{ Params: { id: string; token: string }; Body: { chunks: Array<{ stream: 'stdout' | 'stderr'; data: string }> } }>(
      '/api/runners/:id/leases/:token/output',
      { schema: { params: leaseParams, body: outputSchema } },
      async (request, reply) => {
        await runners.output(await caller(request), request.params.token, request.body.chunks);
        return reply.code(204).send();
      },
    );

    app.post<{ Params: { id: string; token: string }; Body: ResultBody }>(
      '/api/runners/:id/leases/:token/result',
      // Output of up to the cap per stream, JSON-escaped: allow well past the usual body limit.
      { schema: { params: leaseParams, body: resultSchema }, bodyLimit: 16 * 1024 * 1024 },
      async (request) => {
        const job = await runners.result(await caller(request), request.params.token, fromResultBody(request.body), request.body.signature);
        return { job_id: job.id, status: job.status };
      },
    );

    app.post<{ Params: { id: string; token: string }; Body: { reason: 'image_not_found' | 'executor_error'; message: string } }>(
      '/api/runners/:id/leases/:token/failed',
      {
        schema: {
          params: leaseParams,
          body: {
            type: 'object',
            required: ['reason', 'message'],
            additionalProperties: false,
            properties: {
              reason: { enum: ['image_not_found', 'executor_error'] },
              message: { type: 'string', maxLength: 2000 },
            },
          },
        },
      },
      async (request) => {
        const { reason, message } = request.body;
        const job = await runners.failed(await caller(request), request.params.token, reason, message);
        return { job_id: job.id, status: job.status };
      },
    );

    app.post<{ Params: { id: string; token: string }; Body: { reason?: string } | undefined }>(
      '/api/runners/:id/leases/:token/release',
      {
        schema: {
          params: leaseParams,
          body: { type: 'object', additionalProperties: false, properties: { reason: { type: 'string', maxLength: 500 } } },
        },
      },
      async (request, reply) => {
        await runners.release(await caller(request), request.params.token, request.body?.reason ?? 'no reason given');
        return reply.code(204).send();
      },
    );
  };
}
