/**
 * The update stream: every job status change and output chunk, appended in order to the
 * store (so it survives restarts and can be replayed from any sequence number) and handed
 * to live subscribers with its sequence number.
 */

import { type JobEventMap, TypedEmitter } from '../domain/events.js';
import { isTerminal } from '../domain/job.js';
import { messageOf } from '../errors.js';
import type { Logger } from '../logger.js';
import type { JobStore, StoredEvent } from '../store/store.js';
import { taskView } from './views/tasks.js';

/** Jobs whose owner is remembered for their output events; older ones are looked up again. */
const MAX_OWNERS = 10_000;

export class EventLog {
  private chain: Promise<void> = Promise.resolve();
  private readonly live = new TypedEmitter<{ 'event:appended': StoredEvent }>((_, err) =>
    this.log.warn(`event subscriber failed: ${messageOf(err)}`),
  );
  private offs: Array<() => void> = [];
  /** Owner of each job with events in flight (output events do not carry the job). */
  private readonly owners = new Map<string, string | null>();

  constructor(
    private readonly store: JobStore,
    private readonly events: TypedEmitter<JobEventMap>,
    private readonly log: Logger,
  ) {}

  /** Starts recording: every change emitted from now on is stored, in order. */
  async start(): Promise<void> {
    const { events } = this;
    this.offs = [
      events.on('job:status', ({ job }) => {
        if (isTerminal(job.status)) this.owners.delete(job.id);
        else this.owners.set(job.id, job.owner ?? null);
        // Jobs that end elsewhere (another server's runner) never say so here: keep the map bounded.
        if (this.owners.size > MAX_OWNERS) this.owners.delete(this.owners.keys().next().value!);
        // A new attempt: what the last one printed is not the job's output any more.
        if (job.status === 'scheduled' && job.attempts > 1) this.then(() => this.store.forgetOutput(job.id));
        this.append(async () => ({
          jobId: job.id,
          type: isTerminal(job.status) ? 'result' : 'status',
          data: { status: job.status, task: taskView(job, { output: false }) },
          ...(job.owner ? { owner: job.owner } : {}),
        }));
        // The job now holds its output: the events keep only where each chunk lies in it.
        if (isTerminal(job.status)) this.then(() => this.store.compactOutput(job.id));
      }),
      events.on('job:output', (e) => {
        const known = this.owners.get(e.jobId);
        this.append(async () => {
          const owner = known !== undefined ? known : ((await this.store.get(e.jobId))?.owner ?? null);
          return { jobId: e.jobId, type: 'output', data: { stream: e.stream, data: e.data }, ...(owner ? { owner } : {}) };
        });
      }),
    ];
  }

  /** Live events, each after it is stored; returns the unsubscribe function. */
  subscribe(listener: (event: StoredEvent) => void): () => void {
    return this.live.on('event:appended', listener);
  }

  /** Resolves once everything emitted so far is stored. */
  flushed(): Promise<void> {
    return this.chain;
  }

  /** Stops listening and waits until what was emitted before is stored. */
  async stop(): Promise<void> {
    this.offs.forEach((off) => off());
    await this.chain;
  }

  /** Appends in emit order; `make` may look the owner up first. */
  private append(make: () => Promise<Omit<StoredEvent, 'seq' | 'at'>>): void {
    this.then(async () => this.live.emit('event:appended', await this.store.appendEvent(await make())));
  }

  /** Runs `step` after everything emitted before it is stored. */
  private then(step: () => Promise<void>): void {
    this.chain = this.chain.then(step).catch((err: unknown) => this.log.error(`storing an event failed: ${messageOf(err)}`));
  }
}
