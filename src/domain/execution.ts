/** Executions: one attempt at a job on one node or runner, as the store records it. */

import type { JobStatus } from './job.js';

/** One attempt at a job, as recorded. */
export interface ExecutionRecord {
  id: string;
  jobId: string;
  attempt: number;
  nodeId: string;
  /** 'running' while live; then the job status it ended in, or 'interrupted'. */
  status: JobStatus | 'interrupted';
  startedAt: string;
  finishedAt?: string;
  exitCode?: number;
  message?: string;
}
