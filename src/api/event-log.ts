/**
 * The update stream. Status events are written by the store with the changes they report
 * (a transactional outbox); this records the output chunks jobs print, in the order they
 * were printed, and tails the store from its cursor, handing every event of every server
 * on the database to live subscribers in cursor order. The tail is woken by the store
 * (its own writes at once; other servers' by NOTIFY) and also polls, since a wake can
 * come before an event is readable (an older transaction still in flight holds the
 * horizon) and a NOTIFY can be lost with its connection.
 */

import { type JobEventMap, TypedEmitter } from '../domain/events.js';
import { isTerminal } from '../domain/job.js';
import { messageOf } from '../errors.js';
import type { Logger } from '../logger.js';
import type { JobStore, StoredEvent } from '../store/store.js';

/** Jobs whose owner is remembered for their output events; older ones are looked up again. */
const MAX_OWNERS = 10_000;
/** Events read per query of the tail. */
const TAIL_PAGE = 1000;
/** The tail reads again this long after a wake: what an older transaction held back is readable by then. */
const AFTER_WAKE_MS = 50;
/** And at least this often. */
const POLL_MS = 1000;
/** How often retention looks for events past their time, and how many it deletes per statement. */
const PRUNE_EVERY_MS = 60_000;
const PRUNE_BATCH = 5000;

export interface Retention {
  /** Events older than this are deleted. */
  ms: number;
  /** Whether this process runs retention now (a singleton duty); always when absent. */
  inCharge?: () => boolean;
}

export class EventLog {
  /** Per job, the writes of its output events still under way, in print order. */
  private readonly chains = new Map<string, Promise<void>>();
  private readonly live = new TypedEmitter<{ 'event:appended': StoredEvent }>((_, err) =>
    this.log.warn(`event subscriber failed: ${messageOf(err)}`),
  );
  private offs: Array<() => void> = [];
  /** Owner of each job with events in flight (output events do not carry the job). */
  private readonly owners = new Map<string, string | null>();
  private cursor = 0;
  private tailing?: Promise<void>;
  private again = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  private afterWake?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly store: JobStore,
    private readonly events: TypedEmitter<JobEventMap>,
    private readonly log: Logger,
    private readonly retention?: Retention,
  ) {}

  /** Starts recording output and tailing the store from its newest event. */
  async start(): Promise<void> {
    const { events, store } = this;
    this.stopped = false;
    this.cursor = await store.eventHead();
    this.offs = [
      events.on('job:status', ({ job }) => {
        if (isTerminal(job.status)) this.owners.delete(job.id);
        else this.owners.set(job.id, job.owner ?? null);
        // Jobs that end elsewhere (another server's runner) never say so here: keep the map bounded.
        if (this.owners.size > MAX_OWNERS) this.owners.delete(this.owners.keys().next().value!);
        // A new attempt: what the last one printed is not the job's output any more.
        if (job.status === 'scheduled' && job.attempts > 1) this.then(job.id, () => this.store.forgetOutput(job.id));
        // The job now holds its output: the events keep only where each chunk lies in it.
        if (isTerminal(job.status)) this.then(job.id, () => this.store.compactOutput(job.id));
      }),
      events.on('job:output', (e) => {
        const known = this.owners.get(e.jobId);
        this.then(e.jobId, async () => {
          const owner = known !== undefined ? known : ((await this.store.get(e.jobId))?.owner ?? null);
          await this.store.appendEvent({ jobId: e.jobId, type: 'output', data: { stream: e.stream, data: e.data }, ...(owner ? { owner } : {}) });
        });
      }),
      store.onEvents(() => {
        this.tail();
        this.later(AFTER_WAKE_MS);
      }),
    ];
    const poll = setInterval(() => this.tail(), POLL_MS);
    poll.unref();
    this.timers.add(poll);
    if (this.retention) {
      const prune = setInterval(() => void this.prune(), PRUNE_EVERY_MS);
      prune.unref();
      this.timers.add(prune);
    }
  }

  /** Deletes the events past retention, a batch at a time; returns how many. */
  async prune(): Promise<number> {
    const { retention } = this;
    if (!retention || retention.inCharge?.() === false) return 0;
    const before = new Date(Date.now() - retention.ms).toISOString();
    let total = 0;
    try {
      for (let n = PRUNE_BATCH; n === PRUNE_BATCH && !this.stopped; total += n) n = await this.store.pruneEvents(before, PRUNE_BATCH);
    } catch (err) {
      this.log.warn(`retention: deleting old events failed, retried in ${PRUNE_EVERY_MS / 1000}s: ${messageOf(err)}`);
    }
    if (total > 0) this.log.info(`retention: deleted ${total} events stored before ${before}`);
    return total;
  }

  /** The last event handed to subscribers: a stream that starts here sees only what happens next. */
  get position(): number {
    return this.cursor;
  }

  /** Live events of every server, each once, in cursor order; returns the unsubscribe function. */
  subscribe(listener: (event: StoredEvent) => void): () => void {
    return this.live.on('event:appended', listener);
  }

  /**
   * Resolves once the output `jobId` (every job, when absent) printed so far is stored: a
   * job's last chunk lands before its result, and a job's end waits for no other job's.
   */
  flushed(jobId?: string): Promise<void> {
    if (jobId !== undefined) return this.chains.get(jobId) ?? Promise.resolve();
    return Promise.all(this.chains.values()).then(() => {});
  }

  /** Stops recording and tailing; waits until what was printed before is stored. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.offs.forEach((off) => off());
    this.timers.forEach((t) => clearTimeout(t));
    this.timers.clear();
    await this.flushed();
    await this.tailing;
  }

  /** One read after the wakes of the last `ms`: a burst of writes costs one more read, not one each. */
  private later(ms: number): void {
    if (this.afterWake) return;
    const timer = (this.afterWake = setTimeout(() => {
      this.timers.delete(timer);
      this.afterWake = undefined;
      this.tail();
    }, ms));
    timer.unref();
    this.timers.add(timer);
  }

  /** Reads what was appended after the cursor and hands it on; one read at a time. */
  private tail(): void {
    if (this.stopped) return;
    if (this.tailing) {
      this.again = true;
      return;
    }
    this.tailing = (async () => {
      try {
        do {
          this.again = false;
          for (;;) {
            const page = await this.store.eventsSince(this.cursor, { limit: TAIL_PAGE });
            for (const event of page) {
              this.cursor = event.seq;
              this.live.emit('event:appended', event);
            }
            if (page.length < TAIL_PAGE) break;
          }
        } while (this.again && !this.stopped);
      } catch (err) {
        this.log.warn(`reading the update stream failed, retried: ${messageOf(err)}`);
      } finally {
        this.tailing = undefined;
      }
    })();
  }

  /** Runs `step` after what `jobId` printed before it is stored; jobs do not wait for each other. */
  private then(jobId: string, step: () => Promise<void>): void {
    const next = (this.chains.get(jobId) ?? Promise.resolve())
      .then(step)
      .catch((err: unknown) => this.log.error(`storing an event failed: ${messageOf(err)}`));
    this.chains.set(jobId, next);
    void next.then(() => {
      if (this.chains.get(jobId) === next) this.chains.delete(jobId);
    });
  }
}
