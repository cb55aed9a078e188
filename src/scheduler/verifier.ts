/**
 * Decides redundant jobs: when every replica of a task has ended, the result that a strict
 * majority of them share becomes the task's result; without a majority the task fails as
 * `unverified`. The ledger then pays the majority's workers and refunds the rest.
 * It decides as each replica ends (`job:ended`), and its own sweep decides the tasks whose
 * last replica ended while this process was down or on another server.
 */

import type { JobEventMap, TypedEmitter } from '../domain/events.js';
import { isTerminal } from '../domain/job.js';
import type { Startable } from '../domain/startable.js';
import { majorityOf } from '../domain/verification.js';
import { messageOf } from '../errors.js';
import type { Logger } from '../logger.js';
import type { JobPatch, JobStore } from '../store/store.js';
import type { Lifecycle } from './lifecycle.js';

export interface VerifierDeps {
  store: JobStore;
  lifecycle: Lifecycle;
  events: TypedEmitter<JobEventMap>;
  log: Logger;
  /** How often the sweep looks for undecided tasks. */
  sweepMs: number;
  /** Whether this process runs the sweep now (a singleton duty, scheduler/duties.ts); always when absent. */
  inCharge?: () => boolean;
}

export class Verifier implements Startable {
  private off = () => {};
  private timer?: NodeJS.Timeout;

  constructor(private readonly deps: VerifierDeps) {}

  /** Decides what ended while this process was down, then each task as its last replica ends. */
  async start(): Promise<void> {
    const { events, log } = this.deps;
    this.off = events.on('job:ended', ({ job }) => {
      if (!job.parent) return;
      this.decide(job.parent).catch((err: unknown) => log.error(`task ${job.parent}: verification failed, the sweep retries it: ${messageOf(err)}`));
    });
    await this.sweep();
    this.timer = setInterval(() => void this.sweep().catch((err: unknown) => log.error(`verification sweep failed: ${messageOf(err)}`)), this.deps.sweepMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.off();
    clearInterval(this.timer);
  }

  /** Ends the parent once all its replicas have ended; a no-op before that, or when already decided. */
  async decide(parentId: string): Promise<void> {
    const { store, lifecycle, log } = this.deps;
    const parent = await store.get(parentId);
    if (!parent?.replicas || parent.status !== 'running') return;
    const replicas = await store.children(parentId);
    if (replicas.some((r) => !isTerminal(r.status))) return;
    const k = replicas.length;
    const majority = majorityOf(replicas);
    let patch: JobPatch;
    if (majority) {
      const w = majority.winners[0]!;
      patch = {
        status: w.status,
        reason: w.reason ?? null,
        message: `${majority.winners.length} of ${k} replicas agree${w.message ? `; ${w.message}` : ''}`,
        stdout: w.stdout,
        stderr: w.stderr,
        stdoutTruncated: w.stdoutTruncated,
        stderrTruncated: w.stderrTruncated,
        finishedAt: new Date().toISOString(),
        ...(w.exitCode === undefined ? {} : { exitCode: w.exitCode }),
        ...(w.durationMs === undefined ? {} : { durationMs: w.durationMs }),
        // The files the majority agreed on (their root is part of what was compared).
        ...(w.outputs ? { outputs: w.outputs } : {}),
      };
    } else {
      const seen = replicas.map((r) => (r.exitCode === undefined ? r.status : `${r.status} ${r.exitCode}`)).join(', ');
      patch = { status: 'failed', reason: 'unverified', message: `no result had a majority of the ${k} replicas (${seen})`, finishedAt: new Date().toISOString() };
    }
    const ended = await lifecycle.endGroup(parentId, patch);
    if (ended) log.info(`task ${parentId}: ${majority ? `${majority.winners.length} of ${k} replicas agree` : 'replicas disagree'}; ${ended.status}`);
  }

  /** Decides parents whose last replica ended while this process was down. */
  async sweep(): Promise<void> {
    if (this.deps.inCharge?.() === false) return;
    for (const job of await this.deps.store.withStatus(['running'])) if (job.replicas) await this.decide(job.id);
  }
}
