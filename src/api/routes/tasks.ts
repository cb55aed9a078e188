/**
 * The Parity dialect: /api/tasks. A task is a job (DESIGN.md: two doors to one model), so
 * every task is also under /jobs, and these routes share the scheduler and store.
 */

import type { FastifyInstance } from 'fastify';
import type { Job } from '../../domain/job.js';
import { normalizeTask } from '../../domain/task.js';
import { GridxError } from '../../errors.js';
import type { Intake } from '../../scheduler/intake.js';
import type { Scheduler } from '../../scheduler/scheduler.js';
import type { WaitingExplainer } from '../../scheduler/waiting.js';
import type { JobStore } from '../../store/store.js';
import { type AuthDeps, canSee, mustOwn, optionalAccount, writerAccount } from '../auth.js';
import { strangerView } from '../views/jobs.js';
import { taskListView, taskLogsView, taskView } from '../views/tasks.js';
import { type ListQuery, idParams, listPage, listQuerySchema } from './shared.js';

export interface TaskRouteDeps extends AuthDeps {
  store: Pick<JobStore, 'get' | 'list'>;
  scheduler: Pick<Scheduler, 'liveOutput' | 'cancel'>;
  intake: Pick<Intake, 'policy' | 'submit'>;
  /** Why a pending task waits. */
  waiting?: Pick<WaitingExplainer, 'explain'>;
}

export function taskRoutes(deps: TaskRouteDeps) {
  const { store, scheduler, intake } = deps;
  const mustGet = async (id: string): Promise<Job> => {
    const job = await store.get(id);
    if (!job) throw new GridxError('NOT_FOUND', `no task with id ${id}; list tasks with GET /api/tasks`);
    return job;
  };

  return async function routes(app: FastifyInstance): Promise<void> {
    app.post('/api/tasks', async (request, reply) => {
      const account = await writerAccount(request, deps);
      const task = normalizeTask(request.body, intake.policy());
      const job = await intake.submit(account, task.spec, {
        inline: task.inline,
        title: task.title,
        ...(task.description ? { description: task.description } : {}),
        ...(task.reward ? { reward: task.reward } : {}),
        ...(task.replicas > 1 ? { replicas: task.replicas } : {}),
      });
      return reply.code(201).send(taskView(job));
    });

    app.get<{ Querystring: ListQuery }>('/api/tasks', { schema: listQuerySchema }, async (request) => {
      const viewer = await optionalAccount(request, deps);
      return taskListView(await listPage(store, request.query, viewer));
    });

    app.get<{ Params: { id: string } }>('/api/tasks/:id', { schema: { params: idParams } }, async (request) => {
      const job = await mustGet(request.params.id);
      if (!canSee(job, await optionalAccount(request, deps))) return strangerView(job);
      const waiting = await deps.waiting?.explain(job);
      return taskView(job, waiting ? { waiting } : {});
    });

    app.get<{ Params: { id: string } }>('/api/tasks/:id/logs', { schema: { params: idParams } }, async (request) => {
      const job = await mustGet(request.params.id);
      mustOwn(job, await optionalAccount(request, deps), 'read the logs of');
      return taskLogsView(job, scheduler.liveOutput(job.id));
    });

    app.post<{ Params: { id: string } }>('/api/tasks/:id/cancel', { schema: { params: idParams } }, async (request) => {
      const account = await writerAccount(request, deps);
      mustOwn(await mustGet(request.params.id), account, 'cancel');
      return taskView(await scheduler.cancel(request.params.id));
    });
  };
}
