/** How jobs look in the Grid-X dialect: stable field names, human units for limits. */

import type { OutputManifest } from '../../domain/data.js';
import type { ExecutionRecord } from '../../domain/execution.js';
import type { Job } from '../../domain/job.js';
import { formatDuration, formatSize } from '../../domain/units.js';
import type { OutputSnapshot } from '../../executor/executor.js';
import type { JobList, JobLogs, JobView, OutputsView, StrangerView, WaitingView } from '../../wire/gridx.js';

/** What anyone but the owner sees of another account's job: its command, image, title, environment and result are the owner's alone. */
export function strangerView(job: Pick<Job, 'id' | 'status'>): StrangerView {
  return { id: job.id, status: job.status };
}

/** `output: false` leaves stdout/stderr out (listings, events). */
export function jobView(job: Job, options: { output?: boolean; executions?: ExecutionRecord[]; waiting?: WaitingView } = {}): JobView {
  return {
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
    ...(job.outputs ? { outputs: outputsSummary(job.outputs) } : {}),
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
    ...(options.waiting ? { waiting: options.waiting } : {}),
  };
}

function outputsSummary(m: OutputManifest): NonNullable<JobView['outputs']> {
  return { root: m.root, files: m.files.length, bytes: m.bytes, exceeded: m.exceeded };
}

/** A job's output files: the manifest collected when it ended. */
export function outputsView(job: Job, manifest: OutputManifest): OutputsView {
  return { id: job.id, status: job.status, root: manifest.root, bytes: manifest.bytes, exceeded: manifest.exceeded, files: manifest.files };
}

/** A page of jobs, output left out. */
export function jobListView(page: { jobs: Job[]; nextCursor?: string | undefined }): JobList {
  return { jobs: page.jobs.map((j) => jobView(j, { output: false })), nextCursor: page.nextCursor ?? null };
}

/** A job's output so far: `out` is the live output of a running execution, else the job's own. */
export function jobLogsView(job: Job, out: OutputSnapshot = job): JobLogs {
  return {
    id: job.id,
    status: job.status,
    stdout: out.stdout,
    stderr: out.stderr,
    stdoutTruncated: out.stdoutTruncated,
    stderrTruncated: out.stderrTruncated,
  };
}
