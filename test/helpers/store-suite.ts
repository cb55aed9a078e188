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
  });
}
