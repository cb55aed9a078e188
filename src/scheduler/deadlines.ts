/**
 * Time limits the server keeps on every execution it hands out, whoever runs it: a runner
 * (or a peer) that keeps renewing its lease still cannot hold a job past the job's own
 * timeout. An execution must start within a window after its claim (an image pull) and
 * end within its timeout after it started, each plus a grace for the report to arrive.
 * The deadlines live in the store beside the lease, and renewals never move them. Past
 * one, the scheduler ends the execution under its lease: a job that started ends as
 * `timed_out` (settled as any timeout: it ran its time), one that never started goes back
 * to the queue. The holder learns it from its next renewal (lost) and stops the container.
 */

import type { Job, JobSpec } from '../domain/job.js';
import { formatDuration } from '../domain/units.js';
import type { OutputSnapshot } from '../executor/executor.js';
import type { JobPatch } from '../store/store.js';

export interface DeadlineOptions {
  /** Past a job's timeout (or start window), how long the worker's report may take to arrive. */
  graceMs: number;
  /** How long a claimed job may take to start: image pull, container creation. */
  startWindowMs: number;
}

/** Default start window: longer than the default image pull timeout (2 min). */
export const DEFAULT_START_WINDOW_MS = 5 * 60_000;

/** Epoch ms by which an execution claimed at `at` must have ended (it is moved once, when it starts). */
export function claimDeadline(spec: Pick<JobSpec, 'timeoutMs'>, options: DeadlineOptions, at = Date.now()): number {
  return at + options.startWindowMs + spec.timeoutMs + options.graceMs;
}

/** Epoch ms by which an execution that started at `at` must have ended. */
export function runDeadline(spec: Pick<JobSpec, 'timeoutMs'>, options: DeadlineOptions, at = Date.now()): number {
  return at + spec.timeoutMs + options.graceMs;
}

/** How the scheduler ends an execution past its deadline. */
export type OverdueEnd =
  | { kind: 'requeue'; why: string }
  | { kind: 'time_out'; patch: JobPatch };

/** What to do with `job`, held past its deadline; `output` is what its worker relayed so far. */
export function overdueEnd(job: Job, options: DeadlineOptions, output?: OutputSnapshot, at = Date.now()): OverdueEnd {
  const holder = job.executedBy ?? 'its worker';
  if (job.status === 'scheduled') {
    return { kind: 'requeue', why: `${holder} did not start it in time (start window ${formatDuration(options.startWindowMs)})` };
  }
  const startedAt = job.startedAt ? Date.parse(job.startedAt) : undefined;
  return {
    kind: 'time_out',
    patch: {
      status: 'timed_out',
      reason: 'timeout',
      message: `ended by the server at its time limit of ${formatDuration(job.spec.timeoutMs)} (plus ${formatDuration(options.graceMs)} of grace): ${holder} did not report in time`,
      finishedAt: new Date(at).toISOString(),
      executionId: null,
      ...(startedAt === undefined ? {} : { durationMs: at - startedAt }),
      ...(output
        ? { stdout: output.stdout, stderr: output.stderr, stdoutTruncated: output.stdoutTruncated, stderrTruncated: output.stderrTruncated }
        : {}),
    },
  };
}
