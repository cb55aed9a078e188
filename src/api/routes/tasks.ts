/**
 * The Parity dialect: /api/tasks. A task is a job (DESIGN.md: two doors to one model), so
 * every task is also under /jobs, and these routes share the scheduler and store.
 */

import type { FastifyInstance } from 'fastify';
import type { Job } from '../../domain/job.js';
import { normalizeTask } from '../../domain/task.js';
import { formatDuration, formatSize } from '../../domain/units.js';
import { GridxError } from '../../errors.js';
import type { ApiDeps } from '../app.js';
import { type ListQuery, idParams, listPage, listQuerySchema, submitPaid } from './shared.js';
import { canSee, mustOwn, optionalAccount, writerAccount } from '../auth.js';
import { strangerView } from '../views.js';

/** A job in Parity's task shape (snake_case, config/environment as submitted); `output: false` leaves stdout/stderr out. */
export function taskView(job: Job, options: { output?: boolean } = {}) {
  const { spec } = job;
  return {
    id: job.id,
    title: job.title ?? '',
    description: job.description ?? '',
    type: 'docker',
    status: job.status,
    reward: job.reward ?? '0',
    config: {
      command: spec.command,
      resources: {
        memory: formatSize(spec.resources.memoryBytes),
        cpu: spec.resources.cpus,
        gpus: spec.resources.gpus,
        timeout: formatDuration(spec.timeoutMs),
      },
    },
    environment: {
      type: 'docker',
      config: {
        image: spec.image,
        ...(spec.workdir === undefined ? {} : { workdir: spec.workdir }),
        env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
      },
    },
    created_at: job.createdAt,
    updated_at: job.updatedAt,
    ...(job.startedAt ? { started_at: job.startedAt } : {}),
    ...(job.finishedAt ? { completed_at: job.finishedAt } : {}),
    ...(job.executedBy ? { runner_id: job.executedBy } : {}),
    ...(job.replicas ? { verification: { replicas: job.replicas } } : {}),
    ...(job.parent ? { replica_of: job.parent } : {}),
    attempts: job.attempts,
    ...(job.finishedAt
      ? {
          result: {
            exit_code: job.exitCode ?? null,
            ...(options.output === false ? {} : { stdout: job.stdout, stderr: job.stderr }),
            stdout_truncated: job.stdoutTruncated,
            stderr_truncated: job.stderrTruncated,
            duration_ms: job.durationMs ?? null,
            ...(job.reason ? { reason: job.reason } : {}),
            ...(job.message ? { message: job.message } : {}),
          },
        }
      : {}),
  };
}

export function taskRoutes(deps: ApiDeps) {
  const { store, scheduler } = deps;
  const mustGet = async (id: string): Promise<Job> => {
    const job = await store.get(id);
    if (!job) throw new GridxError('NOT_FOUND', `no task with id ${id}; list tasks with GET /api/tasks`);
    return job;
  };

  return async function routes(app: FastifyInstance): Promise<void> {
    app.post('/api/tasks', async (request, reply) => {
      const account = await writerAccount(request, deps);
      const task = normalizeTask(request.body, deps.policy());
      const job = await submitPaid(deps, account, task.spec, {
        title: task.title,
        ...(task.description ? { description: task.description } : {}),
        ...(task.reward ? { reward: task.reward } : {}),
        ...(task.replicas > 1 ? { replicas: task.replicas } : {}),
      });
      return reply.code(201).send(taskView(job));
    });

    app.get<{ Querystring: ListQuery }>('/api/tasks', { schema: listQuerySchema }, async (request) => {
      const viewer = await optionalAccount(request, deps);
      const page = await listPage(store, request.query, viewer);
      return {
        tasks: page.jobs.map((j) => taskView(j, { output: false })),
        next_cursor: page.nextCursor ?? null,
      };
    });

    app.get<{ Params: { id: string } }>('/api/tasks/:id', { schema: { params: idParams } }, async (request) => {
      const job = await mustGet(request.params.id);
      return canSee(job, await optionalAccount(request, deps)) ? taskView(job) : strangerView(job);
    });

    app.get<{ Params: { id: string } }>('/api/tasks/:id/logs', { schema: { params: idParams } }, async (request) => {
      const job = await mustGet(request.params.id);
      mustOwn(job, await optionalAccount(request, deps), 'read the logs of');
      const out = scheduler.liveOutput(job.id) ?? job;
      return {
        task_id: job.id,
        status: job.status,
        stdout: out.stdout,
        stderr: out.stderr,
        stdout_truncated: out.stdoutTruncated,
        stderr_truncated: out.stderrTruncated,
      };
    });

    app.post<{ Params: { id: string } }>('/api/tasks/:id/cancel', { schema: { params: idParams } }, async (request) => {
      const account = await writerAccount(request, deps);
      mustOwn(await mustGet(request.params.id), account, 'cancel');
      return taskView(await scheduler.cancel(request.params.id));
    });
  };
}
