/** The Grid-X dialect: POST /job and the /jobs resource (GET /status and /peers: status.ts). */

import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Job } from '../../domain/job.js';
import { normalizeReward } from '../../domain/task.js';
import { normalizeVerification } from '../../domain/verification.js';
import { GridxError } from '../../errors.js';
import type { Intake } from '../../scheduler/intake.js';
import type { Scheduler } from '../../scheduler/scheduler.js';
import type { JobStore } from '../../store/store.js';
import { type AuthDeps, canSee, mustOwn, optionalAccount, writerAccount } from '../auth.js';
import { type FollowLogsDeps, followLogs } from '../follow-logs.js';
import type { StreamSlots } from '../stream-slots.js';
import { jobListView, jobLogsView, jobView, strangerView } from '../views/jobs.js';
import { type ListQuery, idParams, listPage, listQuerySchema } from './shared.js';

export interface GridxRouteDeps extends AuthDeps, FollowLogsDeps {
  store: Pick<JobStore, 'get' | 'list' | 'executions'>;
  scheduler: Pick<Scheduler, 'waitForTerminal' | 'liveOutput' | 'cancel'>;
  intake: Pick<Intake, 'specOf' | 'submit'>;
  /** Open streams (followed logs) per caller. */
  streams: Pick<StreamSlots, 'acquire'>;
}

export function gridxRoutes(deps: GridxRouteDeps) {
  const { store, scheduler, intake } = deps;

  const mustGet = async (id: string): Promise<Job> => {
    const job = await store.get(id);
    if (!job) throw new GridxError('NOT_FOUND', `no job with id ${id} on this node; list jobs with GET /jobs`);
    return job;
  };

  return async function routes(app: FastifyInstance): Promise<void> {
    app.post<{ Querystring: { wait?: boolean } }>(
      '/job',
      { schema: { querystring: { type: 'object', properties: { wait: { type: 'boolean', default: true } } } } },
      async (request, reply) => {
        const account = await writerAccount(request, deps);
        const body = (request.body ?? {}) as { title?: unknown; pin?: unknown; reward?: unknown; verification?: unknown };
        if (body.pin !== undefined && typeof body.pin !== 'boolean') {
          throw new GridxError('INVALID_INPUT', 'pin: must be true (run only on this node) or false');
        }
        const pinned = body.pin === true;
        const { spec, inline } = intake.specOf(request.body, { pinned });
        const title = typeof body.title === 'string' ? body.title.slice(0, 200) : undefined;
        const reward = normalizeReward(body.reward);
        const replicas = normalizeVerification(body.verification);
        const job = await intake.submit(account, spec, {
          inline,
          ...(title ? { title } : {}),
          pinned,
          ...(reward ? { reward } : {}),
          ...(replicas > 1 ? { replicas } : {}),
        });
        if (request.query.wait === false) return reply.code(202).send(jobView(job));
        const gone = abortOnClose(reply);
        try {
          return jobView(await scheduler.waitForTerminal(job.id, AbortSignal.any([gone.signal, deps.shutdown])));
        } catch (err) {
          if (!deps.shutdown.aborted) throw err;
          throw new GridxError(
            'UNAVAILABLE',
            `the node is shutting down; job ${job.id} is kept and runs when the node restarts (see GET /jobs/${job.id})`,
          );
        } finally {
          gone.dispose();
        }
      },
    );

    app.get<{ Querystring: ListQuery }>('/jobs', { schema: listQuerySchema }, async (request) => {
      const viewer = await optionalAccount(request, deps);
      return jobListView(await listPage(store, request.query, viewer));
    });

    app.get<{ Params: { id: string } }>('/jobs/:id', { schema: { params: idParams } }, async (request) => {
      const job = await mustGet(request.params.id);
      if (!canSee(job, await optionalAccount(request, deps))) return strangerView(job);
      const live = scheduler.liveOutput(job.id);
      const shown = live ? { ...job, ...live } : job;
      const waiting = await deps.waiting?.explain(job);
      return jobView(shown, { executions: await store.executions(job.id), ...(waiting ? { waiting } : {}) });
    });

    app.delete<{ Params: { id: string } }>('/jobs/:id', { schema: { params: idParams } }, async (request) => {
      const account = await writerAccount(request, deps);
      mustOwn(await mustGet(request.params.id), account, 'cancel');
      return jobView(await scheduler.cancel(request.params.id));
    });

    app.get<{ Params: { id: string }; Querystring: { follow?: boolean } }>(
      '/jobs/:id/logs',
      {
        schema: {
          params: idParams,
          querystring: { type: 'object', properties: { follow: { type: 'boolean', default: false } } },
        },
      },
      async (request, reply) => {
        const job = await mustGet(request.params.id);
        const viewer = await optionalAccount(request, deps);
        mustOwn(job, viewer, 'read the logs of');
        if (!request.query.follow) return jobLogsView(job, scheduler.liveOutput(job.id));
        deps.streams.acquire(request, viewer?.id, reply.raw);
        return reply.type('application/x-ndjson').send(followLogs(deps, job, reply));
      },
    );
  };
}

/** An AbortSignal that fires when the client goes away before the reply is sent. */
function abortOnClose(reply: FastifyReply): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onClose = () => {
    if (!reply.raw.writableFinished) {
      controller.abort(new GridxError('UNAVAILABLE', 'client closed the connection'));
    }
  };
  reply.raw.once('close', onClose);
  return { signal: controller.signal, dispose: () => reply.raw.off('close', onClose) };
}
