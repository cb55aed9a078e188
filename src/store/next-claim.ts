/**
 * Which jobs a batch claim (NextClaim) may take, as both stores choose them: SQLite asks
 * these inside its claim transaction; the PostgreSQL statement (postgres-store.ts,
 * claimNext) says the same in SQL, and the shared store suite holds the two to one answer.
 */

import type { Job } from '../domain/job.js';
import { misfit } from '../domain/offer.js';
import type { NextClaim, OwnerRoom } from './store.js';

/** Whether the worker can run `job` at all: its limits, pinned jobs and volumes, replicas. */
export function fitsWorker(job: Job, query: NextClaim): boolean {
  if (job.parent && !query.replicas) return false;
  if (query.portableOnly && (job.pinned || job.spec.volumes.length > 0)) return false;
  return !query.limits || misfit(job.spec, query.limits) === undefined;
}

/** Whether each fitting job, offered in queue order, has room under its owner's cap (those it admits use the room up). */
export function roomCounter(room: OwnerRoom | undefined): (job: Job) => boolean {
  const counted = new Map<string | undefined, number>();
  return (job) => {
    const n = (counted.get(job.owner) ?? 0) + 1;
    counted.set(job.owner, n);
    return n <= roomOf(room, job.owner);
  };
}

/** How many more jobs `owner` (undefined: anonymous) may start; unbounded without a cap. */
function roomOf(room: OwnerRoom | undefined, owner: string | undefined): number {
  if (!room) return Infinity;
  return owner === undefined ? room.anonymous : (room.owners.get(owner) ?? room.others);
}

/** Epoch ms by which an execution claimed at `at` must have ended (src/scheduler/deadlines.ts says why). */
export function nextClaimDeadline(job: Job, query: NextClaim, at: number): number {
  return at + query.deadlines.startWindowMs + job.spec.timeoutMs + query.deadlines.graceMs;
}
