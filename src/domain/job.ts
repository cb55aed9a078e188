/** Jobs: what a user submits, its statuses and the pure rules for moving between them. */

import type { JobInput, OutputManifest } from './data.js';
import { formatDuration, formatSize } from './units.js';

/** The lifecycle of a job. Parity's "task" is the same thing under another name. */
export type JobStatus =
  | 'pending' // accepted and queued, waiting for a slot
  | 'scheduled' // a slot is reserved and an execution (lease) created; the container is being set up
  | 'running' // the container has started
  | 'completed' // exited 0
  | 'failed' // exited non-zero, or could not run; `reason` says why
  | 'timed_out' // killed at its time limit
  | 'cancelled'; // stopped by the user

export const JOB_STATUSES: readonly JobStatus[] = [
  'pending',
  'scheduled',
  'running',
  'completed',
  'failed',
  'timed_out',
  'cancelled',
];

const TERMINAL: ReadonlySet<JobStatus> = new Set(['completed', 'failed', 'timed_out', 'cancelled']);

export function isTerminal(status: JobStatus): boolean {
  return TERMINAL.has(status);
}

/** Which status may follow which. Anything else is a bug or a lost race. */
const TRANSITIONS: Record<JobStatus, readonly JobStatus[]> = {
  pending: ['scheduled', 'cancelled', 'failed'],
  scheduled: ['running', 'pending', 'completed', 'failed', 'timed_out', 'cancelled'],
  running: ['pending', 'completed', 'failed', 'timed_out', 'cancelled'],
  completed: [],
  failed: [],
  timed_out: [],
  cancelled: [],
};

export function canTransition(from: JobStatus, to: JobStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

/** Why a job did not complete. Stable codes for programs; `message` is for people. */
export type FailureReason =
  | 'exit_code' // the command exited non-zero
  | 'oom' // killed for exceeding its memory limit
  | 'timeout' // killed at its time limit
  | 'image_not_found' // the image is not present and could not be pulled
  | 'node_restarted' // the node stopped while the job ran, too many times
  | 'peer_failed' // the peers it was forwarded to failed or vanished, too many times
  | 'lease_expired' // the runner or server holding it stopped renewing its lease, too many times
  | 'cancelled' // the user cancelled it
  | 'unverified' // redundant executions disagreed: no result had a majority
  | 'input_unavailable' // an input could not be fetched, was missing, or did not match its sha256
  | 'output_limit' // the job wrote more under /outputs than the node allows (what fitted is kept)
  | 'executor_error'; // Docker refused or failed in a way that is not the job's fault

/** The canonical job spec; the Grid-X and Parity request bodies both map onto it. */
export interface JobSpec {
  /** Image reference, e.g. "alpine:latest". */
  image: string;
  /** argv; never run through a shell on the host. */
  command: string[];
  env: Record<string, string>;
  /** Working directory inside the container; the image's default when absent. */
  workdir?: string;
  /** Effective limits, resolved against the node's policy when the job was accepted. */
  resources: {
    cpus: number;
    memoryBytes: number;
    gpus: number;
  };
  timeoutMs: number;
  /** Docker network mode; "none" unless the operator allows another. */
  network: string;
  volumes: VolumeMount[];
  /** Files placed read-only under /inputs before the job starts; absent when none. */
  inputs?: JobInput[];
}

export interface VolumeMount {
  hostPath: string;
  containerPath: string;
  readOnly: boolean;
}

/** A job as stored and as the API shows it. */
export interface Job {
  id: string;
  status: JobStatus;
  spec: JobSpec;
  /** Human label (Parity's `title`); optional. */
  title?: string;
  createdAt: string;
  updatedAt: string;
  startedAt?: string;
  finishedAt?: string;
  /** Executions started so far, including the current one. */
  attempts: number;
  /** Lease token of the current execution; transitions while scheduled/running must present it. */
  executionId?: string;
  exitCode?: number;
  reason?: FailureReason;
  /** One line for people: why it failed, what was requeued. */
  message?: string;
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  durationMs?: number;
  /** Id of the node that ran (or is running) the job. */
  executedBy?: string;
  /** When the current execution's lease runs out unless its holder renews it. */
  leaseExpiresAt?: string;
  /** A requeued job is not placed before this (epoch ms): its retry backoff. */
  notBefore?: number;
  /** Run only on the node it was sent to. */
  pinned: boolean;
  /** Peer that forwarded the job to this node, when it came from the mesh. */
  origin?: string;
  /** Parity's task description. */
  description?: string;
  /** Credits offered for the job, as a decimal string (exact; settled by the ledger). */
  reward?: string;
  /** The account that pays the reward; it alone sees the result and may cancel. */
  owner?: string;
  /** When the reward's escrow was paid out or refunded. */
  settledAt?: string;
  /** The files the job left under /outputs, once it has ended. */
  outputs?: OutputManifest;
  /** Redundant execution: how many workers run this task (it is then a parent, never run itself). */
  replicas?: number;
  /** The task this job is one replica of. */
  parent?: string;
}

/**
 * Whether the worker earns the reward for a job that ended so: it delivered what the job
 * asked for (exit 0, a non-zero exit, an out-of-memory kill, the time limit or a full /outputs
 * are the job's own doing). Cancelled jobs and jobs that never ran to an end (no image, engine failure,
 * lost executions) are refunded to the owner in full.
 */
export function workerEarns(job: Pick<Job, 'status' | 'reason'>): boolean {
  if (job.status === 'completed' || job.status === 'timed_out') return true;
  return job.status === 'failed' && (job.reason === 'exit_code' || job.reason === 'oom' || job.reason === 'output_limit');
}

/** The reasons a job fails with when its execution could not be started. */
export type StartFailure = 'image_not_found' | 'input_unavailable' | 'executor_error';

/** Which StartFailure an executor's start() error code means. */
export function startFailureOf(code: string | undefined): StartFailure {
  if (code === 'IMAGE_NOT_FOUND') return 'image_not_found';
  if (code === 'INPUT_UNAVAILABLE') return 'input_unavailable';
  return 'executor_error';
}

/** What one execution produced, as the executor observed it. */
export interface ExecutionResult {
  /** The container's exit status; undefined when it never started. */
  exitCode?: number;
  oomKilled: boolean;
  timedOut: boolean;
  cancelled: boolean;
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  /** What the job left under /outputs; absent where the executor collects none. */
  outputs?: OutputManifest;
}

/** The terminal status, reason and message an execution result implies. */
export function outcomeOf(
  result: ExecutionResult,
  spec: JobSpec,
): { status: JobStatus; reason?: FailureReason; message?: string } {
  if (result.cancelled) return { status: 'cancelled', reason: 'cancelled', message: 'cancelled by request' };
  if (result.timedOut) {
    return {
      status: 'timed_out',
      reason: 'timeout',
      message: `killed at its time limit of ${formatDuration(spec.timeoutMs)}`,
    };
  }
  if (result.outputs?.exceeded) {
    return {
      status: 'failed',
      reason: 'output_limit',
      message: `wrote more under /outputs than this node allows; the ${result.outputs.files.length} file(s) that fitted are kept`,
    };
  }
  // Docker flags any OOM kill in the container; it is the job's failure only if the job failed.
  if (result.oomKilled && result.exitCode !== 0) {
    return {
      status: 'failed',
      reason: 'oom',
      message: `out of memory: killed at its memory limit of ${formatSize(spec.resources.memoryBytes)}`,
    };
  }
  if (result.exitCode === 0) return { status: 'completed' };
  return { status: 'failed', reason: 'exit_code', message: `exited with code ${result.exitCode}` };
}
