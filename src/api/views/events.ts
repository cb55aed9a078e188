/** How the update stream and followed logs look on the wire. */

import type { Job } from '../../domain/job.js';
import type { StoredEvent } from '../../store/store.js';
import type { LogEvent } from '../../wire/gridx.js';
import type { TaskEvent } from '../../wire/parity.js';
import { jobView } from './jobs.js';
import { taskView } from './tasks.js';

/** One message of the update stream: status and task (or the output chunk) under its cursor. */
export function taskEventView(event: StoredEvent): TaskEvent {
  const job = event.data.job as Job | undefined;
  const data = job ? { status: job.status, task: taskView(job, { output: false }) } : event.data;
  return { seq: event.seq, type: event.type, task_id: event.jobId, at: event.at, ...data } as TaskEvent;
}

/** The last line of a followed log: the job as it ended, output left out (it was streamed). */
export function logEndView(job: Job): LogEvent {
  return { event: 'end', ...jobView(job, { output: false }) };
}
