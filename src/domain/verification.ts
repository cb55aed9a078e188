/**
 * Redundant execution: a task may ask to be run by k different workers
 * (`verification: {replicas: k}`); their results are compared by the digest of exit code
 * and output, and only a strict majority is accepted (and paid).
 */

import { invalid, quote } from '../errors.js';
import { type Job, workerEarns } from './job.js';
import { outputDigest } from './result-digest.js';

export const MAX_REPLICAS = 9;

/** `{replicas: k}` → k (1 when absent: run once, no comparison). */
export function normalizeVerification(raw: unknown): number {
  if (raw === undefined || raw === null) return 1;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw invalid('verification', 'must be an object such as {"replicas": 3}');
  const { replicas, ...rest } = raw as Record<string, unknown>;
  const unknown = Object.keys(rest)[0];
  if (unknown !== undefined) throw invalid(`verification.${unknown}`, 'is not known; the only setting is replicas');
  if (replicas === undefined) return 1;
  if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 1 || replicas > MAX_REPLICAS) {
    throw invalid('verification.replicas', `must be a whole number 1-${MAX_REPLICAS} (different workers that each run the task), got ${quote(replicas)}`);
  }
  return replicas;
}

/**
 * The replicas whose result more than half of all replicas share, or undefined when none
 * has a majority. Only results the job itself produced count (a replica that never ran to
 * an end has no result to vote with).
 */
export function majorityOf(replicas: readonly Job[]): { winners: Job[]; digest: string } | undefined {
  const groups = new Map<string, Job[]>();
  for (const r of replicas) {
    if (!workerEarns(r)) continue;
    const digest = outputDigest({ exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr, outputs: r.outputs });
    groups.set(digest, [...(groups.get(digest) ?? []), r]);
  }
  for (const [digest, winners] of groups) if (winners.length * 2 > replicas.length) return { winners, digest };
  return undefined;
}
