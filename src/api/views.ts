/** How jobs look on the wire: stable field names, human units for limits. */

import type { Job } from '../domain/job.js';
import { formatDuration, formatSize } from '../domain/units.js';
import type { ExecutionRecord } from '../store/store.js';

export interface JobView {
  id: string;
  status: Job['status'];
  title?: string;
  description?: string;
  reward?: string;
  image: string;
  command: string[];
  exitCode?: number;
  reason?: Job['reason'];
  message?: string;
  stdout?: string;
  stderr?: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  durationMs?: number;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  attempts: number;
  executedBy?: string;
  pinned: boolean;
  origin?: string;
  resources: { cpus: number; memory: string; gpus: number };
  timeout: string;
  network: string;
  workdir?: string;
  executions?: ExecutionRecord[];
  /** Redundant execution: how many workers run it. */
  replicas?: number;
  /** The task this job is a replica of. */
  parent?: string;
}

/**
 * What anyone but the owner sees of another account's job: that it exists and where it
 * stands. Its command, image, title, environment and result are the owner's alone.
 */
export interface StrangerView {
  id: string;
  status: Job['status'];
}

export function strangerView(job: Pick<Job, 'id' | 'status'>): StrangerView {
  return { id: job.id, status: job.status };
}

/** `output: false` leaves stdout/stderr out (listings, events). */
export function jobView(job: Job, options: { output?: boolean; executions?: ExecutionRecord[] } = {}): JobView {
  const view: JobView = {
    id: job.id,
    status: job.status,
    ...(job.title === undefined ? {} : { title: job.title }),
    ...(job.description === undefined ? {} : { description: job.description }),
    ...(job.reward === undefined ? {} : { reward: job.reward }),
    image: job.spec.image,
    command: job.spec.command,
    ...(job.exitCode === undefined ? {} : { exitCode: job.exitCode }),
    ...(job.reason === undefined ? {} : { reason: job.reason }),
    ...(job.message === undefined ? {} : { message: job.message }),
    ...(options.output === false ? {} : { stdout: job.stdout, stderr: job.stderr }),
    stdoutTruncated: job.stdoutTruncated,
    stderrTruncated: job.stderrTruncated,
    ...(job.durationMs === undefined ? {} : { durationMs: job.durationMs }),
    createdAt: job.createdAt,
    ...(job.startedAt === undefined ? {} : { startedAt: job.startedAt }),
    ...(job.finishedAt === undefined ? {} : { finishedAt: job.finishedAt }),
    attempts: job.attempts,
    ...(job.executedBy === undefined ? {} : { executedBy: job.executedBy }),
    pinned: job.pinned,
    ...(job.replicas === undefined ? {} : { replicas: job.replicas }),
    ...(job.parent === undefined ? {} : { parent: job.parent }),
    ...(job.origin === undefined ? {} : { origin: job.origin }),
    resources: {
      cpus: job.spec.resources.cpus,
      memory: formatSize(job.spec.resources.memoryBytes),
      gpus: job.spec.resources.gpus,
    },
    timeout: formatDuration(job.spec.timeoutMs),
    network: job.spec.network,
    ...(job.spec.workdir === undefined ? {} : { workdir: job.spec.workdir }),
    ...(options.executions ? { executions: options.executions } : {}),
  };
  return view;
}
