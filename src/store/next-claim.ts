/**
 * Which jobs of a batch claim's window (NextClaim) may be taken, as both stores choose
 * them: SQLite asks this inside its claim transaction; the PostgreSQL statement
 * (postgres-store.ts, claimNext) says the same in SQL, and the shared store suite holds
 * the two to one answer.
 */

import type { Job } from '../domain/job.js';
import { misfit } from '../domain/offer.js';
import type { NextClaim, OwnerRoom } from './store.js';

/**
 * Whether each job of the window, offered in queue order, fits the worker and has room
 * under its owner's cap (the jobs it admits use the room up).
 */
export function eligibility(query: NextClaim): (job: Job) => boolean {
  const counted = new Map<string | undefined, number>();
  return (job) => {
    if (job.parent && !query.replicas) return false;
    if (query.portableOnly && (job.pinned || job.spec.volumes.length > 0)) return false;
    if (query.limits && misfit(job.spec, query.limits)) return false;
    const n = (counted.get(job.owner) ?? 0) + 1;
    counted.set(job.owner, n);
    return n <= roomOf(query.room, job.owner);
  };
}

/** How many more jobs `owner` (undefined: anonymous) may start; unbounded without a cap. */
export function roomOf(room: OwnerRoom | undefined, owner: string | undefined): number {
  if (!room) return Infinity;
  return owner === undefined ? room.anonymous : (room.owners.get(owner) ?? room.others);
}

/** Epoch ms by which an execution claimed at `at` must have ended (src/scheduler/deadlines.ts says why). */
export function nextClaimDeadline(job: Job, query: NextClaim, at: number): number {
  return at + query.deadlines.startWindowMs + job.spec.timeoutMs + query.deadlines.graceMs;
}
