/**
 * The runner API: what `gridx runner` speaks to its server. Registration is open (the
 * server binds to loopback unless told otherwise; accounts come with the ledger); every
 * other route needs the runner's own token, and every lease route the runner's own lease.
 */

import type { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { DIGEST_PATTERN, MAX_OUTPUT_FILES, reportedFilesProblem } from '../../domain/data.js';
import type { Job } from '../../domain/job.js';
import type { JobLimits } from '../../domain/offer.js';
import { isSigningKey } from '../../domain/result-digest.js';
import { parseCpus, parseDuration, parseSize } from '../../domain/units.js';
import { invalid, isGridxError } from '../../errors.js';
import type { RunnerHub } from '../../scheduler/runner-hub.js';
import type { RunnerRecord } from '../../store/store.js';
import {
  type ClaimAnswer,
  type ClaimRequest,
  type FailedBody,
  type HeartbeatRequest,
  type LeaveAnswer,
  type OutputBody,
  type ReleaseBody,
  type ResultBody,
  type ResultsAnswer,
  type ResultsBody,
  type RunnerLimitsBody,
  MAX_RESULTS_PER_REQUEST,
  type RunnerRegistrationBody,
  executionResultOf,
} from '../../wire/runners.js';
import type { BlobRef } from '../../wire/gridx.js';
import { abortOnClose, acceptRawBodies, storeUpload } from '../raw-upload.js';
import { sendFile } from '../send-file.js';
import { type AuthDeps, bearerOf, mustBeWorker, optionalAccount, writerAccount } from '../auth.js';
import { claimedJobView, heartbeatView, leaseAnswerView, registeredView, runnerListView } from '../views/runners.js';

export interface RunnerRouteDeps extends AuthDeps {
  runners: Pick<
    RunnerHub,
    'authenticate' | 'register' | 'list' | 'heartbeat' | 'heartbeatMs' | 'leave' | 'claim' | 'giveBack' | 'started' | 'output' | 'result' | 'failed' | 'release' | 'input' | 'putOutput'
  >;
  /** Lease TTL, shown to runners and used to call them online or offline. */
  leaseTtlMs: number;
  /** Aborts when the node begins to shut down: waiting claims end then. */
  shutdown: AbortSignal;
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
    outputs: {
      type: 'object',
      required: ['files', 'exceeded'],
      additionalProperties: false,
      properties: {
        files: {
          type: 'array',
          maxItems: MAX_OUTPUT_FILES,
          items: {
            type: 'object',
            required: ['path', 'size', 'sha256'],
            additionalProperties: false,
            properties: {
              path: { type: 'string', minLength: 1, maxLength: 4096 },
              size: { type: 'integer', minimum: 0 },
              sha256: { type: 'string', pattern: DIGEST_PATTERN },
            },
          },
        },
        exceeded: { type: 'boolean' },
      },
    },
    signature: { type: 'string', minLength: 1, maxLength: 200 },
  },
} as const;

/** Output of up to the cap per stream, JSON-escaped: well past the usual body limit. */
const RESULT_BODY_LIMIT = 16 * 1024 * 1024;

const resultsSchema = {
  type: 'object',
  required: ['results'],
  additionalProperties: false,
  properties: {
    results: {
      type: 'array',
      minItems: 1,
      maxItems: MAX_RESULTS_PER_REQUEST,
      items: {
        ...resultSchema,
        required: [...resultSchema.required, 'lease_token'],
        properties: { ...resultSchema.properties, lease_token: leaseParams.properties.token },
      },
    },
  },
} as const;

/** The limits a runner asked for, parsed; the hub fills in the rest (runner-hub.ts: runnerLimits). */
function askedLimits(limits: RunnerLimitsBody): Partial<JobLimits> {
  const asked: Partial<JobLimits> = {};
  if (limits.cpu !== undefined) {
    asked.cpus = parseCpus(limits.cpu);
    if (asked.cpus === undefined) throw invalid('body.limits.cpu', 'must be a positive number of cores, such as 2 or "1.5"');
  }
  if (limits.memory !== undefined) {
    asked.memoryBytes = parseSize(limits.memory);
    if (asked.memoryBytes === undefined) throw invalid('body.limits.memory', 'must be a size such as "2g" or "512m"');
  }
  if (limits.timeout !== undefined) {
    asked.timeoutMs = parseDuration(limits.timeout);
    if (asked.timeoutMs === undefined) throw invalid('body.limits.timeout', 'must be a duration such as "10m" or a number of seconds');
  }
  if (limits.gpus !== undefined) asked.gpus = limits.gpus;
  if (limits.networks !== undefined) asked.networks = limits.networks;
  return asked;
}

export function runnerRoutes(deps: RunnerRouteDeps) {
  const { runners } = deps;
  const timing = () => ({ leaseTtlMs: deps.leaseTtlMs, heartbeatMs: runners.heartbeatMs });
  const caller = (request: FastifyRequest<{ Params: { id: string } }>): Promise<RunnerRecord> =>
    runners.authenticate(request.params.id, bearerOf(request));

  /** Records one reported result under `token`: its file list checked first, then the runner and its lease. */
  const record = async (runner: () => Promise<RunnerRecord>, token: string, body: ResultBody): Promise<Job> => {
    const problem = reportedFilesProblem(body.outputs?.files ?? []);
    if (problem) throw invalid('body.outputs.files', problem);
    return runners.result(await runner(), token, executionResultOf(body), body.signature);
  };

  return async function routes(app: FastifyInstance): Promise<void> {
    app.post<{ Body: RunnerRegistrationBody }>('/api/runners', { schema: { body: registerSchema } }, async (request, reply) => {
      const account = await writerAccount(request, deps);
      mustBeWorker(account);
      const body = request.body;
      if (!isSigningKey(body.public_key)) throw invalid('body.public_key', 'must be an Ed25519 public key, SPKI DER in base64');
      const { runner, token } = await runners.register({
        ...(account ? { accountId: account.id } : {}),
        publicKey: body.public_key,
        name: body.name,
        slots: body.slots,
        labels: body.labels ?? {},
        limits: askedLimits(body.limits ?? {}),
        version: body.version ?? 'unknown',
      });
      return reply.code(201).send(registeredView({ ...runner, running: 0 }, token, timing(), account?.id));
    });

    app.get('/api/runners', async (request) => {
      // A runner may send its own token here: that is no account, and sees what anybody does.
      const viewer = (await optionalAccount(request, deps).catch((err: unknown) => {
        if (isGridxError(err, 'UNAUTHORIZED')) return undefined;
        throw err;
      }))?.id;
      return runnerListView(await runners.list(), deps.leaseTtlMs, viewer);
    });

    app.post<{ Params: { id: string }; Body: HeartbeatRequest }>(
      '/api/runners/:id/heartbeat',
      { schema: { params: runnerParams, body: heartbeatSchema } },
      async (request) => {
        return heartbeatView(await runners.heartbeat(await caller(request), request.body.leases), timing());
      },
    );

    app.post<{ Params: { id: string } }>('/api/runners/:id/leave', { schema: { params: runnerParams } }, async (request) => ({
      returned: await runners.leave(await caller(request)),
    }) satisfies LeaveAnswer);

    app.post<{ Params: { id: string }; Body: ClaimRequest | undefined }>(
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
            return { jobs: [] } satisfies ClaimAnswer;
          }
          return { jobs: jobs.map(claimedJobView) } satisfies ClaimAnswer;
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
        return leaseAnswerView(await runners.started(await caller(request), request.params.token));
      },
    );

    app.post<{ Params: { id: string; token: string }; Body: OutputBody }>(
      '/api/runners/:id/leases/:token/output',
      { schema: { params: leaseParams, body: outputSchema } },
      async (request, reply) => {
        await runners.output(await caller(request), request.params.token, request.body.chunks);
        return reply.code(204).send();
      },
    );

    app.post<{ Params: { id: string; token: string }; Body: ResultBody }>(
      '/api/runners/:id/leases/:token/result',
      { schema: { params: leaseParams, body: resultSchema }, bodyLimit: RESULT_BODY_LIMIT },
      async (request) => leaseAnswerView(await record(() => caller(request), request.params.token, request.body)),
    );

    // Several results in one request: each is checked and recorded as the route above does
    // one, and answered on its own (a refused lease refuses only its own result). A failure
    // that is not the report's fault (the store is down) fails the request: the runner sends
    // them all again, and results already recorded answer as they did.
    app.post<{ Params: { id: string }; Body: ResultsBody }>(
      '/api/runners/:id/results',
      { schema: { params: runnerParams, body: resultsSchema }, bodyLimit: RESULT_BODY_LIMIT },
      async (request) => {
        const runner = await caller(request);
        const tokens = new Set(request.body.results.map((r) => r.lease_token));
        if (tokens.size !== request.body.results.length) throw invalid('body.results', 'names a lease_token twice; send each result once');
        const answers = await Promise.all(
          request.body.results.map(async (body) => {
            try {
              return { lease_token: body.lease_token, ...leaseAnswerView(await record(async () => runner, body.lease_token, body)) };
            } catch (err) {
              if (!isGridxError(err) || err.retryable) throw err;
              return { lease_token: body.lease_token, error: { code: err.code, message: err.message } };
            }
          }),
        );
        return { results: answers } satisfies ResultsAnswer;
      },
    );

    app.register(async (files) => {
      acceptRawBodies(files);

      files.route<{ Params: { id: string; token: string; digest: string } }>({
        method: ['GET', 'HEAD'],
        url: '/api/runners/:id/leases/:token/blobs/:digest',
        schema: { params: { ...leaseParams, properties: { ...leaseParams.properties, digest: { type: 'string', pattern: DIGEST_PATTERN } } } },
        exposeHeadRoute: false,
        handler: async (request, reply) => {
          const blob = await runners.input(await caller(request), request.params.token, request.params.digest);
          return sendFile(request, reply, blob);
        },
      });

      files.post<{ Params: { id: string; token: string }; Querystring: { sha256: string } }>(
        '/api/runners/:id/leases/:token/blobs',
        {
          schema: {
            params: leaseParams,
            querystring: { type: 'object', required: ['sha256'], additionalProperties: false, properties: { sha256: { type: 'string', pattern: DIGEST_PATTERN } } },
          },
        },
        async (request, reply) => {
          const runner = await caller(request);
          const signal = AbortSignal.any([deps.shutdown, abortOnClose(request.raw)]);
          const ref = await storeUpload(request, reply, () =>
            runners.putOutput(runner, request.params.token, request.body as Readable, request.query.sha256, signal),
          );
          return reply.code(201).send(ref satisfies BlobRef);
        },
      );
    });

    app.post<{ Params: { id: string; token: string }; Body: FailedBody }>(
      '/api/runners/:id/leases/:token/failed',
      {
        schema: {
          params: leaseParams,
          body: {
            type: 'object',
            required: ['reason', 'message'],
            additionalProperties: false,
            properties: {
              reason: { enum: ['image_not_found', 'input_unavailable', 'executor_error'] },
              message: { type: 'string', maxLength: 2000 },
            },
          },
        },
      },
      async (request) => {
        const { reason, message } = request.body;
        return leaseAnswerView(await runners.failed(await caller(request), request.params.token, reason, message));
      },
    );

    app.post<{ Params: { id: string; token: string }; Body: ReleaseBody | undefined }>(
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
