/**
 * "Why is my job waiting?": for a pending job, where it could run and why each place does
 * not take it now: this node's slots, each peer whose offer the node holds, each runner,
 * and the retry backoff. Worked out when asked, from what the scheduler sees at that
 * moment (slots, the offer book, runners in the store), so it is always current and any
 * server of a fleet answers alike for the runners they share.
 */

import type { Job, JobSpec } from '../domain/job.js';
import type { JobLimits } from '../domain/offer.js';
import { formatDuration, formatSize } from '../domain/units.js';
import { recent } from '../memo.js';
import type { RunnerSummary } from '../store/store.js';
import type { WaitingView } from '../wire/gridx.js';

/** A peer as placement sees it now. */
export interface PeerStanding {
  limits: JobLimits;
  /** Slots free after the jobs this node already sent it. */
  free: number;
  /** It refused or failed a job lately and is passed over for a while. */
  suspended: boolean;
  /** mesh.forward_to allows sending it jobs. */
  allowed: boolean;
}

export interface WaitingDeps {
  /** This node's own slots. */
  slots: () => { total: number; used: number };
  /** What a job may ask of this node. */
  localLimits: () => JobLimits;
  /** The peers whose offers the node holds; absent without a mesh. */
  peers?: () => PeerStanding[];
  runners: () => Promise<RunnerSummary[]>;
  /** Runners heartbeating within this long are online. */
  leaseTtlMs: number;
  now?: () => number;
}

/** How long one read of the runners serves explanations (each GET of a waiting job asks). */
const RUNNERS_READ_MS = 1000;

export class WaitingExplainer {
  private readonly runners: () => Promise<RunnerSummary[]>;

  constructor(private readonly deps: WaitingDeps) {
    this.runners = recent(deps.runners, RUNNERS_READ_MS);
  }

  /** Why `job` waits; undefined unless it is pending. */
  async explain(job: Job): Promise<WaitingView | undefined> {
    if (job.status !== 'pending') return undefined;
    const { deps } = this;
    const now = deps.now?.() ?? Date.now();
    const parts: string[] = [];
    const view: Omit<WaitingView, 'summary'> = {};

    const slots = deps.slots();
    const here = shortfall(job.spec, deps.localLimits());
    view.slots = { total: slots.total, busy: slots.used };
    if (slots.total === 0) parts.push('this node runs no jobs itself (0 slots)');
    else if (here) parts.push(`does not fit this node: it ${here}`);
    else parts.push(`${slots.used} of ${slots.total} slots busy`);

    // A pinned job runs on the node it was sent to; a replica or a job with host volumes here or on runners.
    if (job.pinned) parts.push('pinned to this node: peers and runners are not considered');
    else {
      const peers = deps.peers?.();
      if (peers && !job.parent && job.spec.volumes.length === 0) {
        view.peers = tally(peers.map((p) => peerReason(job.spec, p)));
        parts.push(describe(view.peers, 'peer'));
      }
      const all = job.spec.volumes.length > 0 ? [] : await this.runners();
      const online = all.filter((r) => now - Date.parse(r.lastHeartbeatAt) <= deps.leaseTtlMs);
      if (online.length > 0) {
        view.runners = tally(online.map((r) => shortfall(job.spec, r.limits) ?? (r.running >= r.slots ? 'busy' : 'free')));
        parts.push(describe(view.runners, 'runner'));
      }
    }
    if (job.notBefore !== undefined && job.notBefore > now) {
      view.retryAt = new Date(job.notBefore).toISOString();
      parts.push(`retried in ${formatDuration(job.notBefore - now)} (backoff after a lost attempt)`);
    }
    return { summary: `waiting: ${parts.join('; ')}`, ...view };
  }
}

/** Why a peer does not take the job now, or "free" when it could. */
function peerReason(spec: JobSpec, peer: PeerStanding): string {
  if (!peer.allowed) return 'not allowed by mesh.forward_to';
  return shortfall(spec, peer.limits) ?? (peer.suspended ? 'refused a job lately' : peer.free <= 0 ? 'busy' : 'free');
}

/** What `limits` lack for `spec`, in words ("lacks 8g memory"); undefined when it fits. */
export function shortfall(spec: JobSpec, limits: JobLimits): string | undefined {
  const r = spec.resources;
  if (r.memoryBytes > limits.memoryBytes) return `lacks ${formatSize(r.memoryBytes)} memory`;
  if (r.cpus > limits.cpus) return `lacks ${r.cpus} CPU${r.cpus === 1 ? '' : 's'}`;
  if (r.gpus > limits.gpus) return `lacks ${r.gpus} GPU${r.gpus === 1 ? '' : 's'}`;
  if (spec.timeoutMs > limits.timeoutMs) return `does not allow ${formatDuration(spec.timeoutMs)} jobs`;
  if (!limits.networks.includes(spec.network)) return `does not allow network ${spec.network}`;
  return undefined;
}

/** Reasons counted, most common first. */
function tally(reasons: string[]): { considered: number; reasons: Record<string, number> } {
  const counts = new Map<string, number>();
  for (const r of reasons) counts.set(r, (counts.get(r) ?? 0) + 1);
  return { considered: reasons.length, reasons: Object.fromEntries([...counts].sort((a, b) => b[1] - a[1])) };
}

function describe(group: { considered: number; reasons: Record<string, number> }, noun: string): string {
  if (group.considered === 0) return `no ${noun}s`;
  const reasons = Object.entries(group.reasons).map(([reason, n]) => `${n} ${reason}`);
  return `${group.considered} ${noun}${group.considered === 1 ? '' : 's'}: ${reasons.join(', ')}`;
}
