/**
 * Whether a caller may queue more work: one node-wide cap on waiting jobs, one per
 * account, and one shared by every anonymous caller of an open node. The HTTP API and the
 * mesh's job service ask the same question, so neither door takes what the other refuses.
 * A read of the pending jobs per owner serves admissions for COUNTS_FRESH_MS, with what this
 * process admitted since added at once; a refusal always reads afresh, so a caller whose jobs
 * left the queue is admitted at once. Submits racing that read (their jobs not stored yet),
 * and other servers' submits within the window, may pass a cap by the few that raced, which
 * bounds growth all the same; the cost is one read per window, not one per submit.
 */

import type { CallerLimits } from '../config/schema.js';
import { GridxError } from '../errors.js';
import type { JobStore } from '../store/store.js';

export type QueueLimits = Pick<CallerLimits, 'maxQueued' | 'accountQueued' | 'anonymousQueued'>;

/** Seconds a refused caller is told to wait: queues drain at the speed of jobs. */
const RETRY_AFTER_S = 5;
/** How long a read of the pending counts serves admissions. */
export const COUNTS_FRESH_MS = 250;

interface PendingCounts {
  readAt: number;
  all: number;
  byOwner: Map<string | null, number>;
}

export class Admission {
  private counts?: PendingCounts;
  private reading?: Promise<PendingCounts>;

  constructor(private readonly deps: { store: Pick<JobStore, 'pendingByOwner'>; limits: QueueLimits }) {}

  /** 429 (RATE_LIMITED) when `count` more pending jobs of `owner` (undefined: anonymous) would pass a cap. */
  async admit(owner: string | undefined, count = 1): Promise<void> {
    const key = owner ?? null;
    let counts = this.counts && performance.now() - this.counts.readAt < COUNTS_FRESH_MS ? this.counts : await this.read();
    if (this.refusal(counts, key, count)) counts = await this.read(true);
    const refusal = this.refusal(counts, key, count);
    if (refusal) throw refused(refusal);
    counts.all += count;
    counts.byOwner.set(key, (counts.byOwner.get(key) ?? 0) + count);
  }

  /** Why `count` more jobs of `owner` would pass a cap, if they would. */
  private refusal(counts: PendingCounts, owner: string | null, count: number): string | undefined {
    const { limits } = this.deps;
    const mine = counts.byOwner.get(owner) ?? 0;
    const cap = owner === null ? limits.anonymousQueued : limits.accountQueued;
    if (mine + count > cap) {
      const who = owner === null ? 'anonymous callers together' : `account ${owner}`;
      return `${who} may have ${cap} jobs waiting on this node and ${mine} are; wait for some to run, or cancel some`;
    }
    if (counts.all + count > limits.maxQueued) {
      return `this node's queue is full (${limits.maxQueued} jobs waiting, scheduler.max_queued); try again later or another node`;
    }
    return undefined;
  }

  /** The pending counts as the store has them; concurrent callers share one read unless `fresh` asks for one begun after the call. */
  private async read(fresh = false): Promise<PendingCounts> {
    if (fresh || !this.reading) {
      const readAt = performance.now();
      const reading = this.deps.store.pendingByOwner().then((byOwner) => {
        const counts = { readAt, all: [...byOwner.values()].reduce((a, n) => a + n, 0), byOwner };
        if (!this.counts || this.counts.readAt <= readAt) this.counts = counts;
        return this.counts;
      });
      this.reading = reading;
      void reading.finally(() => this.reading === reading && (this.reading = undefined)).catch(() => {});
    }
    return this.reading!;
  }
}

function refused(message: string): GridxError {
  return new GridxError('RATE_LIMITED', message, { retryAfterSeconds: RETRY_AFTER_S });
}
