/**
 * Settles tasks as they end: each `job:ended` of an owned job is paid out or refunded by
 * the Ledger at once, and a sweep of its own settles what a crash, or another server on
 * the same database, left unsettled. Settling is idempotent (Ledger.settle), so the two
 * paths may meet on one job.
 */

import type { JobEventMap, TypedEmitter } from '../domain/events.js';
import type { Startable } from '../domain/startable.js';
import { messageOf } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Ledger } from './ledger.js';

export interface PayoutsDeps {
  ledger: Pick<Ledger, 'settle' | 'settleAll'>;
  events: TypedEmitter<JobEventMap>;
  log: Logger;
  /** How often the sweep settles what is missing. */
  sweepMs: number;
  /** Whether this process runs the sweep now (a singleton duty, scheduler/duties.ts); always when absent. */
  inCharge?: () => boolean;
}

export class Payouts implements Startable {
  private off = () => {};
  private timer?: NodeJS.Timeout;
  /** Settlements under way; stop waits for them. */
  private readonly settling = new Set<Promise<unknown>>();

  constructor(private readonly deps: PayoutsDeps) {}

  /** Settles what is missing, then each task as it ends. */
  async start(): Promise<void> {
    const { ledger, events, log } = this.deps;
    this.off = events.on('job:ended', ({ job }) => {
      if (!job.owner) return;
      this.track(ledger.settle(job).catch((err: unknown) => log.error(`job ${job.id}: settlement failed, the sweep retries it: ${messageOf(err)}`)));
    });
    const sweep = () => (this.deps.inCharge?.() === false ? Promise.resolve() : ledger.settleAll());
    await sweep();
    this.timer = setInterval(() => {
      this.track(sweep().catch((err: unknown) => log.error(`settlement sweep failed: ${messageOf(err)}`)));
    }, this.deps.sweepMs);
    this.timer.unref();
  }

  /** Stops settling; resolves once the settlements under way have ended. */
  async stop(): Promise<void> {
    this.off();
    clearInterval(this.timer);
    await Promise.allSettled([...this.settling]);
  }

  private track(settling: Promise<unknown>): void {
    this.settling.add(settling);
    void settling.finally(() => this.settling.delete(settling));
  }
}
