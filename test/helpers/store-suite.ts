import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { JobStore } from '../../src/store/store.js';
import { SPEC } from './fixtures.js';

export { SPEC };


/** The contract every JobStore must meet; run once per implementation. */
export function jobStoreSuite(name: string, open: () => Promise<JobStore>): void {
  describe(`JobStore contract: ${name}`, () => {
    let store: JobStore;
    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await store.close();
    });

    it('inserts pending jobs and reads them back', async () => {
      const job = await store.insert({ id: 'a', spec: SPEC, title: 't' });
      expect(job).toMatchObject({ id: 'a', status: 'pending', attempts: 0, title: 't', spec: SPEC });
      expect(await store.get('a')).toEqual(job);
      expect(await store.get('missing')).toBeUndefined();
    });

    it('lists a viewer its own jobs and the anonymous ones', async () => {
      await store.insert({ id: 'x1', spec: SPEC, owner: 'acct-x' });
      await store.insert({ id: 'y1', spec: SPEC, owner: 'acct-y' });
      await store.insert({ id: 'anon', spec: SPEC });
      const ids = async (viewer?: string | null) => (await store.list(viewer === undefined ? {} : { viewer })).jobs.map((j) => j.id);
      expect(await ids('acct-x')).toEqual(['anon', 'x1']);
      expect(await ids(null)).toEqual(['anon']);
      expect(await ids()).toEqual(['anon', 'y1', 'x1']);
    });

    it('claims in submission order, each job once', async () => {
      for (const id of ['1', '2', '3']) await store.insert({ id, spec: SPEC });
      const first = await store.claimNext('n', 'e1');
      const second = await store.claimNext('n', 'e2');
      expect([first?.id, second?.id]).toEqual(['1', '2']);
      expect(first).toMatchObject({ status: 'scheduled', executionId: 'e1', attempts: 1, executedBy: 'n' });
      expect((await store.claimNext('n', 'e3'))?.id).toBe('3');
      expect(await store.claimNext('n', 'e4')).toBeUndefined();
    });

    it('writes a transition only under the expected status and lease token', async () => {
      await store.insert({ id: 'a', spec: SPEC });
      await store.claimNext('n', 'lease-1');
      expect(await store.transition('a', { status: ['scheduled'], executionId: 'forged' }, { status: 'running' })).toBeUndefined();
      expect(await store.transition('a', { status: ['pending'] }, { status: 'running' })).toBeUndefined();
      const running = await store.transition('a', { status: ['scheduled'], executionId: 'lease-1' }, { status: 'running' });
      expect(running?.status).toBe('running');
      const done = await store.transition(
        'a',
        { status: ['running'], executionId: 'lease-1' },
        { status: 'completed', exitCode: 0, stdout: 'hi\n', stdoutTruncated: false, durationMs: 5, executionId: null },
      );
      expect(done).toMatchObject({ status: 'completed', exitCode: 0, stdout: 'hi\n', durationMs: 5 });
      expect(done?.executionId).toBeUndefined();
      // A late duplicate report under the old lease changes nothing.
      expect(
        await store.transition('a', { status: ['running'], executionId: 'lease-1' }, { status: 'failed', exitCode: 1 }),
      ).toBeUndefined();
      expect((await store.get('a'))?.status).toBe('completed');
    });

    it('records each execution and how it ended', async () => {
      await store.insert({ id: 'a', spec: SPEC });
      await store.claimNext('n', 'e1');
      await store.transition('a', { status: ['scheduled'], executionId: 'e1' }, { status: 'pending', executionId: null });
      await store.claimNext('n', 'e2');
      await store.transition('a', { status: ['scheduled'], executionId: 'e2' }, { status: 'completed', exitCode: 0, executionId: null });
      const executions = await store.executions('a');
      expect(executions.map((e) => [e.id, e.attempt, e.status])).toEqual([
        ['e1', 1, 'interrupted'],
        ['e2', 2, 'completed'],
      ]);
      expect((await store.get('a'))?.attempts).toBe(2);
    });

    it('keeps the update stream in order, per job and overall', async () => {
      const first = await store.appendEvent({ jobId: 'a', type: 'status', data: { status: 'pending' } });
      await store.appendEvent({ jobId: 'b', type: 'output', data: { stream: 'stdout', data: 'x' } });
      await store.appendEvent({ jobId: 'a', type: 'result', data: { status: 'completed' } });
      const all = await store.eventsSince(0);
      expect(all.map((e) => e.jobId)).toEqual(['a', 'b', 'a']);
      expect(all[1]!.data).toEqual({ stream: 'stdout', data: 'x' });
      expect((await store.eventsSince(first.seq, { jobId: 'a' })).map((e) => e.type)).toEqual(['result']);
      expect(await store.eventsSince(all.at(-1)!.seq)).toEqual([]);
    });

    it('lists newest first with a cursor and a status filter, without output', async () => {
      for (let i = 0; i < 5; i++) await store.insert({ id: `j${i}`, spec: SPEC });
      await store.claimNext('n', 'e');
      await store.transition('j0', { status: ['scheduled'] }, { status: 'completed', stdout: 'big', executionId: null });
      const page1 = await store.list({ limit: 2 });
      expect(page1.jobs.map((j) => j.id)).toEqual(['j4', 'j3']);
      const page2 = await store.list({ limit: 2, cursor: page1.nextCursor! });
      expect(page2.jobs.map((j) => j.id)).toEqual(['j2', 'j1']);
      const page3 = await store.list({ limit: 2, cursor: page2.nextCursor! });
      expect(page3.jobs.map((j) => j.id)).toEqual(['j0']);
      expect(page3.nextCursor).toBeUndefined();
      expect(page3.jobs[0]?.stdout).toBe('');
      expect((await store.list({ status: 'completed' })).jobs.map((j) => j.id)).toEqual(['j0']);
      const counts = await store.countByStatus();
      expect(counts).toMatchObject({ pending: 4, completed: 1, running: 0 });
      expect((await store.withStatus(['pending'])).map((j) => j.id)).toEqual(['j1', 'j2', 'j3', 'j4']);
    });

    it('leases expire unless renewed; a renewal after expiry is refused', async () => {
      await store.insert({ id: 'a', spec: SPEC });
      await store.insert({ id: 'b', spec: SPEC });
      const a = await store.claimNext('runner-1', 'lease-a', 150);
      await store.claimNext('runner-1', 'lease-b', 150);
      expect(a?.leaseExpiresAt).toBeDefined();
      expect(await store.expiredLeases(10)).toEqual([]);
      await sleep(80);
      expect(await store.renewLeases(['lease-a', 'lease-b'], 150, 'runner-2')).toEqual([]);
      expect(await store.renewLeases(['lease-a', 'forged'], 150, 'runner-1')).toEqual(['lease-a']);
      await sleep(100);
      // b was not renewed: expired; a was: still held.
      expect((await store.expiredLeases(10)).map((j) => j.id)).toEqual(['b']);
      expect(await store.renewLeases(['lease-b'], 150)).toEqual([]);
      // The sweep's requeue is conditional on the lease still being expired.
      expect(
        await store.transition('a', { status: ['scheduled'], executionId: 'lease-a', leaseExpired: true }, { status: 'pending', executionId: null }),
      ).toBeUndefined();
      const requeued = await store.transition(
        'b',
        { status: ['scheduled'], executionId: 'lease-b', leaseExpired: true },
        { status: 'pending', executionId: null, notBefore: Date.now() + 150 },
      );
      expect(requeued).toMatchObject({ status: 'pending', attempts: 1 });
      expect(requeued?.leaseExpiresAt).toBeUndefined();
      expect((await store.execution('lease-b'))?.status).toBe('interrupted');
      expect(await store.execution('nope')).toBeUndefined();
    });

    it('holds a requeued job back until its backoff has passed', async () => {
      await store.insert({ id: 'a', spec: SPEC });
      await store.insert({ id: 'b', spec: SPEC });
      await store.claimNext('n', 'e1');
      await store.transition('a', { status: ['scheduled'], executionId: 'e1' }, { status: 'pending', executionId: null, notBefore: Date.now() + 200 });
      expect((await store.pendingReady(10)).map((j) => j.id)).toEqual(['b']);
      expect((await store.claimNext('n', 'e2'))?.id).toBe('b');
      expect(await store.claimNext('n', 'e3')).toBeUndefined();
      await sleep(220);
      expect((await store.pendingReady(10)).map((j) => j.id)).toEqual(['a']);
      expect(await store.claimNext('n', 'e4')).toMatchObject({ id: 'a', attempts: 2 });
    });

    it('registers runners and counts the jobs each holds', async () => {
      const limits = { cpus: 2, memoryBytes: 1 << 30, timeoutMs: 60_000, gpus: 0, networks: ['none'] };
      const at = new Date().toISOString();
      const base = { tokenHash: 'h', slots: 2, labels: { zone: 'x' }, limits, version: '1', registeredAt: at, lastHeartbeatAt: at };
      await store.addRunner({ id: 'r1', name: 'one', ...base });
      await store.addRunner({ id: 'r2', name: 'two', ...base });
      expect(await store.getRunner('r1')).toEqual({ id: 'r1', name: 'one', ...base });
      expect(await store.getRunner('r9')).toBeUndefined();
      await sleep(5);
      expect(await store.touchRunner('r2')).toBe(true);
      expect(await store.touchRunner('r9')).toBe(false);
      await store.insert({ id: 'a', spec: SPEC });
      await store.claimNext('r2', 'e1', 10_000);
      const runners = await store.listRunners();
      expect(runners.map((r) => [r.id, r.running])).toEqual([
        ['r2', 1],
        ['r1', 0],
      ]);
      expect(runners[0]!.lastHeartbeatAt > at).toBe(true);
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
