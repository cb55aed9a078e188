/**
 * The server's deadlines on executions, with the scheduler and runner hub built from light
 * real parts (SQLite in memory, the no-op executor) and the windows made short: a job
 * claimed and never started goes back to the queue, one that started and never reported
 * ends as timed_out; renewals move neither.
 */

import { afterEach, describe, expect, it } from 'vitest';
import { type JobEventMap, TypedEmitter } from '../../src/domain/events.js';
import type { Job } from '../../src/domain/job.js';
import { NoopExecutor } from '../../src/executor/noop/noop-executor.js';
import { silentLogger } from '../../src/logger.js';
import { overdueEnd } from '../../src/scheduler/deadlines.js';
import { RunnerHub } from '../../src/scheduler/runner-hub.js';
import { Scheduler } from '../../src/scheduler/scheduler.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { SPEC } from '../helpers/fixtures.js';

/** These tests move no files: a runner that tried would be refused. */
const NO_BLOBS = {
  stat: async () => undefined,
  put: () => Promise.reject(new Error('no blobs in this test')),
  open: () => {
    throw new Error('no blobs in this test');
  },
};
const LIMITS = { cpus: 4, memoryBytes: 1 << 30, timeoutMs: 600_000, gpus: 0, networks: ['none'] };

describe('deadlines', () => {
  const stops: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
  });

  async function setup() {
    const store = new SqliteStore(':memory:');
    const events = new TypedEmitter<JobEventMap>();
    const scheduler = new Scheduler({
      store,
      executor: new NoopExecutor(),
      events,
      log: silentLogger,
      nodeId: 'server',
      slots: 0,
      maxAttempts: 3,
      leaseTtlMs: 1000,
      retryBackoffMs: 0,
      deadlineGraceMs: 200,
      startWindowMs: 300,
    });
    await scheduler.start();
    const hub = new RunnerHub({ store, lifecycle: scheduler.lifecycle, leases: scheduler.leases, events, log: silentLogger, outputLimitBytes: 1 << 20, policy: () => LIMITS, blobs: NO_BLOBS, maxOutputBytes: 0 });
    await hub.start();
    scheduler.addOutputSource((jobId) => hub.liveOutput(jobId));
    stops.push(async () => {
      await hub.stop();
      await scheduler.stop();
      await store.close();
    });
    const { runner } = await hub.register({ name: 'r', publicKey: 'k', slots: 1, labels: {}, limits: LIMITS, version: 't' });
    return { store, scheduler, hub, runner };
  }

  /** Heartbeats every 150 ms until the lease is reported lost; the time it was held. */
  async function holdUntilLost(hub: RunnerHub, runner: Awaited<ReturnType<typeof setup>>['runner'], token: string): Promise<number> {
    const from = Date.now();
    while (Date.now() - from < 5000) {
      if ((await hub.heartbeat(runner, [token])).lost.includes(token)) return Date.now() - from;
      await new Promise((r) => setTimeout(r, 150));
    }
    throw new Error('the lease was never lost');
  }

  it('a job claimed and never started goes back to the queue after the start window, its attempt counted', async () => {
    const { scheduler, hub, runner, store } = await setup();
    const job = await scheduler.submit({ ...SPEC, timeoutMs: 500 });
    const [claimed] = await hub.claim(runner, 1, 0);
    const held = await holdUntilLost(hub, runner, claimed!.leaseToken);
    expect(held).toBeGreaterThanOrEqual(300 + 500 + 200 - 150); // window + timeout + grace
    const back = (await store.get(job.id))!;
    expect(back).toMatchObject({ status: 'pending', attempts: 1 });
    expect(back.message).toContain('did not start it in time');
    expect((await store.execution(claimed!.leaseToken))?.status).toBe('interrupted');
  });

  it('a started job that never reports ends as timed_out at start + timeout + grace, with the output relayed so far', async () => {
    const { scheduler, hub, runner, store } = await setup();
    const job = await scheduler.submit({ ...SPEC, timeoutMs: 500 });
    const [claimed] = await hub.claim(runner, 1, 0);
    await new Promise((r) => setTimeout(r, 200));
    await hub.started(runner, claimed!.leaseToken);
    await hub.output(runner, claimed!.leaseToken, [{ stream: 'stdout', data: 'partial\n' }]);
    const held = await holdUntilLost(hub, runner, claimed!.leaseToken);
    expect(held).toBeGreaterThanOrEqual(500 + 200 - 150);
    const ended = (await store.get(job.id))!;
    expect(ended).toMatchObject({ status: 'timed_out', reason: 'timeout', stdout: 'partial\n', attempts: 1 });
    expect(ended.durationMs).toBeGreaterThanOrEqual(700);
    await expect(hub.started(runner, claimed!.leaseToken)).rejects.toMatchObject({ code: 'CONFLICT' });
  });

  it('overdueEnd: requeue before the start, timed_out after it', () => {
    const options = { graceMs: 30_000, startWindowMs: 300_000 };
    const base = { id: 'j', spec: SPEC, createdAt: '', updatedAt: '', attempts: 1, stdout: '', stderr: '', stdoutTruncated: false, stderrTruncated: false, pinned: false, executedBy: 'runner-1' };
    expect(overdueEnd({ ...base, status: 'scheduled' } as Job, options)).toEqual({ kind: 'requeue', why: 'runner-1 did not start it in time (start window 5m)' });
    const end = overdueEnd({ ...base, status: 'running', startedAt: new Date(1000).toISOString() } as Job, options, undefined, 41_000);
    expect(end).toMatchObject({ kind: 'time_out', patch: { status: 'timed_out', reason: 'timeout', durationMs: 40_000, executionId: null } });
    expect(end.kind === 'time_out' && end.patch.message).toBe('ended by the server at its time limit of 10s (plus 30s of grace): runner-1 did not report in time');
  });
});
