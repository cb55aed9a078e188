/**
 * Whether a caller may queue more work: one node-wide cap on waiting jobs, one per
 * account, and one shared by every anonymous caller of an open node. The HTTP API and the
 * mesh's job service ask the same question, so neither door takes what the other refuses.
 * Counts are read, then the job is inserted: concurrent submits may pass a cap by the few
 * that raced, which bounds growth all the same.
 */

import type { CallerLimits } from '../config/schema.js';
import { GridxError } from '../errors.js';
import type { JobStore } from '../store/store.js';

export type QueueLimits = Pick<CallerLimits, 'maxQueued' | 'accountQueued' | 'anonymousQueued'>;

/** Seconds a refused caller is told to wait: queues drain at the speed of jobs. */
const RETRY_AFTER_S = 5;

export class Admission {
  constructor(private readonly deps: { store: Pick<JobStore, 'countPending'>; limits: QueueLimits }) {}

  /** 429 (RATE_LIMITED) when `count` more pending jobs of `owner` (undefined: anonymous) would pass a cap. */
  async admit(owner: string | undefined, count = 1): Promise<void> {
    const { store, limits } = this.deps;
    const { owned: mine, all: pending } = await store.countPending(owner ?? null);
    const cap = owner === undefined ? limits.anonymousQueued : limits.accountQueued;
    if (mine + count > cap) {
      const who = owner === undefined ? 'anonymous callers together' : `account ${owner}`;
      throw refused(`${who} may have ${cap} jobs waiting on this node and ${mine} are; wait for some to run, or cancel some`);
    }
    if (pending + count > limits.maxQueued) {
      throw refused(`this node's queue is full (${limits.maxQueued} jobs waiting, scheduler.max_queued); try again later or another node`);
    }
  }
}

function refused(message: string): GridxError {
  return new GridxError('RATE_LIMITED', message, { retryAfterSeconds: RETRY_AFTER_S });
}
