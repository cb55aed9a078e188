/**
 * The Parity dialect on the wire: /api/tasks and the update stream. snake_case, config
 * and environment as Parity submits them. A task is a job (two doors to one model).
 */

import type { FailureReason, JobStatus } from '../domain/job.js';
import type { InputBody, WaitingView } from './gridx.js';

/** POST /api/tasks. */
export interface ParityTask {
  title: string;
  description?: string;
  type?: 'docker';
  config: {
    command: string[];
    resources?: { memory?: string; cpu?: number; timeout?: number | string };
    /** Files placed read-only under /inputs before the task starts (as Grid-X's inputs). */
    inputs?: InputBody[];
  };
  environment: { type?: 'docker'; config: { image: string; workdir?: string; env?: string[] } };
  /** Credits per execution, paid from the caller's account. */
  reward?: number | string;
  /** Run by this many different workers; the majority result is accepted and paid. */
  verification?: { replicas: number };
}

/** How a finished task ended. */
export interface TaskResult {
  exit_code: number | null;
  /** Left out of listings and events. */
  stdout?: string;
  stderr?: string;
  stdout_truncated: boolean;
  stderr_truncated: boolean;
  duration_ms: number | null;
  reason?: FailureReason;
  message?: string;
}

/** A job in Parity's task shape. */
export interface TaskView {
  id: string;
  title: string;
  description: string;
  type: 'docker';
  status: JobStatus;
  reward: string;
  config: {
    command: string[];
    resources: { memory: string; cpu: number; gpus: number; timeout: string };
  };
  environment: { type: 'docker'; config: { image: string; workdir?: string; env: string[] } };
  created_at: string;
  updated_at: string;
  started_at?: string;
  completed_at?: string;
  runner_id?: string;
  verification?: { replicas: number };
  replica_of?: string;
  attempts: number;
  result?: TaskResult;
  /** Why it waits, while it is pending (GET /api/tasks/:id); the Grid-X dialect's shape, retry_at in snake_case. */
  waiting?: Omit<WaitingView, 'retryAt'> & { retry_at?: string };
}

/** GET /api/tasks: newest first; pass `next_cursor` as ?cursor= for the next page. */
export interface TaskList {
  tasks: TaskView[];
  next_cursor: string | null;
}

/** GET /api/tasks/:id/logs: the output so far. */
export interface TaskLogs {
  task_id: string;
  status: JobStatus;
  stdout: string;
  stderr: string;
  stdout_truncated: boolean;
  stderr_truncated: boolean;
}

/**
 * One message of the update stream (GET /api/events, GET /api/tasks/:id/events): a status
 * change or the result (with the task, output left out), or a chunk of output.
 */
export interface TaskEvent {
  seq: number;
  /** error: the stream could not give what was asked (events deleted by retention), said in `message`. */
  type: 'status' | 'result' | 'output' | 'error';
  /** Empty on an error of the whole stream. */
  task_id: string;
  at: string;
  status?: JobStatus;
  task?: TaskView;
  stream?: 'stdout' | 'stderr';
  data?: string;
  message?: string;
}

/** Close code of an update stream whose consumer fell behind (4000-4999 are the application's); reconnect with ?since=. */
export const CLOSE_SLOW_CONSUMER = 4008;
