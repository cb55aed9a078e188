/** How jobs look in the Parity dialect: tasks, snake_case, config/environment as submitted. */

import type { Job } from '../../domain/job.js';
import { formatDuration, formatSize } from '../../domain/units.js';
import type { OutputSnapshot } from '../../executor/executor.js';
import type { WaitingView } from '../../wire/gridx.js';
import type { TaskList, TaskLogs, TaskView } from '../../wire/parity.js';

/** A job in Parity's task shape; `output: false` leaves stdout/stderr out (listings, events). */
export function taskView(job: Job, options: { output?: boolean; waiting?: WaitingView } = {}): TaskView {
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
    ...(options.waiting ? { waiting: parityWaiting(options.waiting) } : {}),
  };
}

/** A page of tasks, output left out. */
export function taskListView(page: { jobs: Job[]; nextCursor?: string | undefined }): TaskList {
  return { tasks: page.jobs.map((j) => taskView(j, { output: false })), next_cursor: page.nextCursor ?? null };
}

/** A task's output so far: `out` is the live output of a running execution, else the job's own. */
export function taskLogsView(job: Job, out: OutputSnapshot = job): TaskLogs {
  return {
    task_id: job.id,
    status: job.status,
    stdout: out.stdout,
    stderr: out.stderr,
    stdout_truncated: out.stdoutTruncated,
    stderr_truncated: out.stderrTruncated,
  };
}

/** The Grid-X dialect's waiting view with Parity's snake_case. */
function parityWaiting({ retryAt, ...rest }: WaitingView): NonNullable<TaskView['waiting']> {
  return { ...rest, ...(retryAt ? { retry_at: retryAt } : {}) };
}
