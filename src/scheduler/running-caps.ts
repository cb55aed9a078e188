/**
 * Caps on the jobs one caller has running at once: limits.account_running per account,
 * limits.anonymous_running for all anonymous callers together. Both dispatchers (this
 * node's slots and the runner hub) pass over the pending jobs of an owner at its cap: they
 * wait in the queue, they are not refused, and other owners' jobs go ahead of them. The
 * counts are read once per dispatch pass and kept by the pass itself; a claim made in the
 * same moment by the other dispatcher or another server may pass a cap by the few that
 * raced, which bounds what one caller takes all the same.
 */

import type { CallerLimits } from '../config/schema.js';
import type { JobStore, OwnerLoad, OwnerRoom, PendingFilter } from '../store/store.js';

export type RunningLimits = Pick<CallerLimits, 'accountRunning' | 'anonymousRunning'>;

export class RunningCaps {
  /** Without `limits`, nobody is capped. */
  constructor(
    private readonly store: Pick<JobStore, 'heldByOwner'>,
    private readonly limits?: RunningLimits,
  ) {}

  /** The counts one dispatch pass works with; no store read when nothing is capped. */
  async pass(): Promise<CapPass> {
    return new CapPass(this.limits, this.limits ? await this.store.heldByOwner() : []);
  }
}

/** Jobs held per owner (undefined: anonymous) during one pass over the queue. */
export class CapPass {
  private readonly held = new Map<string | undefined, number>();

  constructor(
    private readonly limits: RunningLimits | undefined,
    loads: readonly OwnerLoad[],
  ) {
    for (const load of loads) this.held.set(load.owner, load.held);
  }

  /** Whether a job of `owner` may start now. */
  admits(owner: string | undefined): boolean {
    return (this.held.get(owner) ?? 0) < this.capOf(owner);
  }

  /** Counts a job of `owner` this pass claimed. */
  took(owner: string | undefined): void {
    this.held.set(owner, (this.held.get(owner) ?? 0) + 1);
  }

  /** Owners already at their cap, left out of the scan so their waiting jobs cannot fill it. */
  filter(): PendingFilter {
    const skipOwners: string[] = [];
    let skipAnonymous = false;
    for (const [owner, held] of this.held) {
      if (held < this.capOf(owner)) continue;
      if (owner === undefined) skipAnonymous = true;
      else skipOwners.push(owner);
    }
    return { skipOwners, skipAnonymous };
  }

  /** How many more jobs each owner may start, for a claim the store makes in one step; undefined when nobody is capped. */
  room(): OwnerRoom | undefined {
    if (!this.limits) return undefined;
    const owners = new Map<string, number>();
    for (const [owner, held] of this.held) if (owner !== undefined) owners.set(owner, Math.max(this.capOf(owner) - held, 0));
    return {
      owners,
      others: this.limits.accountRunning,
      anonymous: Math.max(this.limits.anonymousRunning - (this.held.get(undefined) ?? 0), 0),
    };
  }

  private capOf(owner: string | undefined): number {
    if (!this.limits) return Infinity;
    return owner === undefined ? this.limits.anonymousRunning : this.limits.accountRunning;
  }
}
