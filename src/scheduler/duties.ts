/**
 * Singleton duties for a fleet of servers on one database: settlement, the lease sweep,
 * the settlement sweep and retention each run on exactly one server at a time. Each is a
 * lease in the store (JobStore.holdDuty), renewed at a third of its TTL in the store's
 * clock; when its holder dies, another server takes it within one TTL. A holder counts
 * itself in charge only until its TTL has passed on its own monotonic clock since the
 * renewal was sent, so a server that paused stops acting by itself; writes that must never
 * come from a stale holder (settlement's) also carry the fencing token, which the store
 * checks in the same transaction (PostOptions.fence).
 */

import type { Startable } from '../domain/startable.js';
import { messageOf } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Fence } from '../store/ledger-store.js';
import type { JobStore } from '../store/store.js';

export const DUTIES = ['settlement', 'lease-sweep', 'settlement-sweep', 'retention'] as const;
export type DutyName = (typeof DUTIES)[number];

/** How long a duty stays with a holder that stopped renewing it: the failover time. */
export const DUTY_TTL_MS = 5000;
/** A holder stops acting this much before its lease could have expired in the store. */
const SAFETY_MS = 500;

export interface DutiesDeps {
  store: Pick<JobStore, 'holdDuty' | 'releaseDuty'>;
  /**
   * Who holds: the node's id. A server restarted after a crash takes its duties back at
   * once instead of waiting out its dead life's lease (one identity runs once).
   */
  holder: string;
  log: Logger;
  ttlMs?: number;
}

export class Duties implements Startable {
  private readonly held = new Map<DutyName, { token: number; until: number }>();
  private timer?: NodeJS.Timeout;
  private renewing?: Promise<void>;

  constructor(private readonly deps: DutiesDeps) {}

  private get ttlMs(): number {
    return this.deps.ttlMs ?? DUTY_TTL_MS;
  }

  /** The fence of `duty` while this process holds it; undefined when another server does (or nobody knows). */
  fence(duty: DutyName): Fence | undefined {
    const held = this.held.get(duty);
    if (!held || performance.now() >= held.until) return undefined;
    return { duty, token: held.token };
  }

  /** Whether this process is in charge of `duty` now. */
  holds(duty: DutyName): boolean {
    return this.fence(duty) !== undefined;
  }

  async start(): Promise<void> {
    await this.renew();
    this.timer = setInterval(() => void this.renew(), this.ttlMs / 3);
    this.timer.unref();
  }

  /** Gives every duty up, so the other servers take them at once instead of after a TTL. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.renewing;
    const mine = [...this.held.keys()];
    this.held.clear();
    await Promise.all(mine.map((duty) => this.deps.store.releaseDuty(duty, this.deps.holder).catch(() => {})));
  }

  private renew(): Promise<void> {
    this.renewing ??= (async () => {
      for (const duty of DUTIES) {
        const sent = performance.now();
        try {
          const token = await this.deps.store.holdDuty(duty, this.deps.holder, this.ttlMs);
          const had = this.held.get(duty);
          if (token === undefined) {
            if (had) this.deps.log.warn(`duty ${duty}: taken over by another server`);
            this.held.delete(duty);
            continue;
          }
          if (!had || had.token !== token) this.deps.log.info(`duty ${duty}: now held here (token ${token})`);
          this.held.set(duty, { token, until: sent + this.ttlMs - SAFETY_MS });
        } catch (err) {
          // The database is away: the duty lapses by itself (until) unless a renewal gets through.
          this.deps.log.warn(`duty ${duty}: could not renew: ${messageOf(err)}`);
        }
      }
    })().finally(() => (this.renewing = undefined));
    return this.renewing;
  }
}
