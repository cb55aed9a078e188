/** How the update stream and followed logs look on the wire. */

import type { Job } from '../../domain/job.js';
import type { StoredEvent } from '../../store/store.js';
import type { LogEvent } from '../../wire/gridx.js';
import type { TaskEvent } from '../../wire/parity.js';
import { jobView } from './jobs.js';

/** One message of the update stream: the stored event's data (status and task, or output) under its sequence number. */
export function taskEventView(event: StoredEvent): TaskEvent {
  return { seq: event.seq, type: event.type, task_id: event.jobId, at: event.at, ...event.data } as TaskEvent;
}

/** The last line of a followed log: the job as it ended, output left out (it was streamed). */
export function logEndView(job: Job): LogEvent {
  return { event: 'end', ...jobView(job, { output: false }) };
}
