import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type JobEventMap, TypedEmitter } from '../../src/domain/events.js';
import type { Job } from '../../src/domain/job.js';
import { silentLogger } from '../../src/logger.js';
import { type Claimant, Leases } from '../../src/scheduler/leases.js';
import { Lifecycle } from '../../src/scheduler/lifecycle.js';
import type { ClaimTerms, JobStore, NextClaim } from '../../src/store/store.js';
import { SPEC } from './fixtures.js';

export { SPEC };

/**
 * The store's half of the production claim (src/scheduler/leases.ts): the ready pending
 * jobs, oldest first, each offered to `claim` until one is taken.
 */
export async function claimNext(store: JobStore, holder: string, lease: string, ttlMs?: number, terms: ClaimTerms = {}): Promise<Job | undefined> {
  for (const job of await store.pendingReady(256)) {
    const claimed = await store.claim(job.id, holder, lease, ttlMs, terms);
    if (claimed) return claimed;
  }
  return undefined;
}

/** The claim as the dispatcher and the runner hub make it, over `store`. */
function leasesOver(store: JobStore, limits?: { accountRunning: number; anonymousRunning: number }) {
  const events = new TypedEmitter<JobEventMap>();
  const lifecycle = new Lifecycle({ store, events, log: silentLogger, maxAttempts: 3, retryBackoffMs: 0 });
  const leases = new Leases({
    store,
    lifecycle,
    log: silentLogger,
    leaseTtlMs: 10_000,
    deadlines: { graceMs: 1000, startWindowMs: 60_000 },
    ...(limits ? { limits } : {}),
    liveOutput: () => undefined,
  });
  /** Up to `max` jobs `claimant` takes in one pass. */
  const take = async (claimant: Claimant, max = 10) => {
    const taken: Array<{ job: Job; leaseToken: string }> = [];
    await leases.claimFromQueue({ more: () => taken.length < max, pick: () => claimant, took: (job, leaseToken) => taken.push({ job, leaseToken }) });
    return taken;
  };
  return { leases, take };
}


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

    it('counts pending jobs per owner, and only pending ones', async () => {
      for (const id of ['x1', 'x2', 'x3']) await store.insert({ id, spec: SPEC, owner: 'acct-x' });
      await store.insert({ id: 'anon', spec: SPEC });
      await store.transition('x3', { status: ['pending'] }, { status: 'cancelled', finishedAt: new Date().toISOString() });
      await claimNext(store, 'n', 'e1'); // x1
      expect(await store.pendingByOwner()).toEqual(new Map([['acct-x', 1], [null, 1]]));
    });

    it('claims in submission order, each job once', async () => {
      for (const id of ['1', '2', '3']) await store.insert({ id, spec: SPEC });
      const first = await claimNext(store, 'n', 'e1');
      const second = await claimNext(store, 'n', 'e2');
      expect([first?.id, second?.id]).toEqual(['1', '2']);
      expect(first).toMatchObject({ status: 'scheduled', executionId: 'e1', attempts: 1, executedBy: 'n' });
      expect((await claimNext(store, 'n', 'e3'))?.id).toBe('3');
      expect(await claimNext(store, 'n', 'e4')).toBeUndefined();
    });

    it('claims through the Leases as the dispatcher and the runner hub do', async () => {
      const { take } = leasesOver(store, { accountRunning: 1, anonymousRunning: 10 });
      await store.insert({ id: 'a1', spec: SPEC, owner: 'acct-a' });
      await store.insert({ id: 'a2', spec: SPEC, owner: 'acct-a' });
      await store.insert({ id: 'task', spec: SPEC, replicas: [{ id: 'r1', spec: SPEC, parent: 'task' }, { id: 'r2', spec: SPEC, parent: 'task' }] });
      await store.insert({ id: 'anon', spec: SPEC });
      // No account: no replica; acct-a at its cap of one: a2 waits.
      const first = await take({ holder: 'runner-x' });
      expect(first.map((t) => t.job.id)).toEqual(['a1', 'anon']);
      expect(first[0]!.job).toMatchObject({ status: 'scheduled', executedBy: 'runner-x', attempts: 1, executionId: first[0]!.leaseToken });
      expect(first[0]!.job.leaseExpiresAt).toBeDefined();
      // One replica per account, however many it asks for.
      expect((await take({ holder: 'runner-b1', accountId: 'acct-b' })).map((t) => t.job.id)).toEqual(['r1']);
      expect(await take({ holder: 'runner-b2', accountId: 'acct-b' })).toEqual([]);
      expect((await take({ holder: 'runner-c', accountId: 'acct-c' }, 1)).map((t) => t.job.id)).toEqual(['r2']);
      expect((await store.get('a2'))?.status).toBe('pending');
    });

    it('takes a worker\'s batch in one step: what fits, in queue order, as far as each owner\'s room allows', async () => {
      const big = { ...SPEC, resources: { ...SPEC.resources, memoryBytes: 2 ** 31 } };
      const withVolume = { ...SPEC, volumes: [{ hostPath: '/srv/data', containerPath: '/data', readOnly: true }] };
      const replica = (id: string) => ({ id, spec: SPEC, owner: 'acct-r', parent: 'task' });
      await store.insert({ id: 'a1', spec: SPEC, owner: 'acct-a' });
      await store.insert({ id: 'big', spec: big });
      await store.insert({ id: 'pinned', spec: SPEC, pinned: true });
      await store.insert({ id: 'volume', spec: withVolume });
      await store.insert({ id: 'anon1', spec: SPEC });
      await store.insert({ id: 'task', spec: SPEC, owner: 'acct-r', replicas: [replica('r1'), replica('r2')] });
      await store.insert({ id: 'a2', spec: SPEC, owner: 'acct-a' });
      await store.insert({ id: 'gpu', spec: { ...SPEC, resources: { ...SPEC.resources, gpus: 1 } } });
      await store.insert({ id: 'anon2', spec: SPEC });
      await store.insert({ id: 'anon3', spec: SPEC });
      const limits = { cpus: 1, memoryBytes: 2 ** 30, gpus: 0, timeoutMs: 60_000, networks: ['none'] };
      const deadlines = { startWindowMs: 0, graceMs: 0 };
      const batch = (query: Partial<NextClaim>) => store.claimNext({ nodeId: 'runner', max: 10, leaseTtlMs: 10_000, window: 50, deadlines, ...query });
      const first = await batch({ limits, portableOnly: true, replicas: true, room: { owners: new Map([['acct-a', 1]]), others: 5, anonymous: 2 } });
      expect(first.claimed.map((j) => j.id)).toEqual(['a1', 'anon1', 'anon2']);
      expect(first.claimed[0]).toMatchObject({ status: 'scheduled', executedBy: 'runner', attempts: 1 });
      expect(first.claimed[0]!.leaseExpiresAt).toBeDefined();
      expect((await store.execution(first.claimed[0]!.executionId!))?.jobId).toBe('a1');
      expect(first.replicas.map((j) => j.id)).toEqual(['r1', 'r2']);
      expect(first.eligible).toBe(3);
      expect((await store.get('r1'))?.status).toBe('pending');
      // The deadline: claim time + start window + the job's timeout + grace (here the timeout alone).
      expect(await store.overdue(10)).toEqual([]);
      // Jobs the worker cannot run do not hold it back: the window counts fitting jobs only.
      const past = await batch({ max: 1, window: 1, limits, portableOnly: true });
      expect(past.claimed.map((j) => j.id)).toEqual(['a2']);
      // Without limits, room or replicas, the oldest pending jobs go, as many as `max`.
      const second = await batch({ max: 2, skip: { skipOwners: ['acct-a'] } });
      expect(second.claimed.map((j) => j.id)).toEqual(['big', 'pinned']);
      expect(second.replicas).toEqual([]);
      expect((await batch({ max: 10 })).claimed.map((j) => j.id)).toEqual(['volume', 'gpu', 'anon3']);
      expect(await batch({})).toEqual({ claimed: [], replicas: [], eligible: 0 });
    });

    it('gives each job of the queue to one of several batch claims made at once', async () => {
      for (let i = 0; i < 30; i++) await store.insert({ id: `j${i}`, spec: { ...SPEC, timeoutMs: 50 } });
      const claim = (nodeId: string) => store.claimNext({ nodeId, max: 8, leaseTtlMs: 10_000, window: 32, deadlines: { startWindowMs: 0, graceMs: 0 } });
      const taken: string[] = [];
      for (let round = 0; round < 3 && taken.length < 30; round++) {
        for (const next of await Promise.all(['w1', 'w2', 'w3', 'w4'].map(claim))) taken.push(...next.claimed.map((j) => j.id));
      }
      expect(taken.sort()).toEqual(Array.from({ length: 30 }, (_, i) => `j${i}`).sort());
      // Each execution's deadline is its job's timeout after the claim.
      await sleep(80);
      expect((await store.overdue(100)).length).toBe(30);
    });

    it('writes a transition only under the expected status and lease token', async () => {
      await store.insert({ id: 'a', spec: SPEC });
      await claimNext(store, 'n', 'lease-1');
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
      await claimNext(store, 'n', 'e1');
      await store.transition('a', { status: ['scheduled'], executionId: 'e1' }, { status: 'pending', executionId: null });
      await claimNext(store, 'n', 'e2');
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

    it('writes each change of status with its event (the outbox): the event shows the job as the change left it', async () => {
      await store.insert({ id: 'a', spec: SPEC, owner: 'acct' });
      await claimNext(store, 'n', 'lease-1', 10_000);
      await store.transition('a', { status: ['scheduled'], executionId: 'lease-1' }, { status: 'completed', stdout: 'hidden', exitCode: 0, executionId: null });
      // A lost race writes neither the change nor an event.
      expect(await store.transition('a', { status: ['running'] }, { status: 'failed' })).toBeUndefined();
      const events = await store.eventsSince(0, { jobId: 'a' });
      expect(events.map((e) => [e.type, (e.data.job as Job).status])).toEqual([
        ['status', 'pending'],
        ['status', 'scheduled'],
        ['result', 'completed'],
      ]);
      expect(events.every((e) => e.owner === 'acct')).toBe(true);
      expect((events[2]!.data.job as Job)).toMatchObject({ id: 'a', exitCode: 0, stdout: '' });
      expect(await store.eventHead()).toBe(events[2]!.seq);
      expect(events[0]!.seq).toBeLessThan(events[1]!.seq);
    });

    it('deletes the oldest events before a time, records the floor, and wakes readers on append', async () => {
      let woken = 0;
      const off = store.onEvents(() => woken++);
      for (let i = 0; i < 5; i++) await store.appendEvent({ jobId: 'a', type: 'output', data: { stream: 'stdout', data: `${i}` } });
      off();
      expect(woken).toBeGreaterThanOrEqual(5);
      const all = await store.eventsSince(0);
      expect(await store.eventFloor()).toBe(0);
      expect(await store.pruneEvents('1970-01-01T00:00:00.000Z', 100)).toBe(0);
      expect(await store.pruneEvents(new Date(Date.now() + 60_000).toISOString(), 3)).toBe(3);
      expect(await store.eventFloor()).toBe(all[2]!.seq);
      expect((await store.eventsSince(0)).map((e) => e.seq)).toEqual(all.slice(3).map((e) => e.seq));
    });

    it('gives a duty to one holder at a time, with a token that grows when the holder changes', async () => {
      const first = await store.holdDuty('sweep', 'server-a', 5_000);
      expect(first).toBeDefined();
      expect(await store.holdDuty('sweep', 'server-b', 5_000)).toBeUndefined();
      expect(await store.holdDuty('sweep', 'server-a', 5_000)).toBe(first);
      expect(await store.holdDuty('other', 'server-b', 5_000)).toBeDefined();
      await store.releaseDuty('sweep', 'server-b'); // not its holder: nothing changes
      expect(await store.holdDuty('sweep', 'server-b', 5_000)).toBeUndefined();
      await store.releaseDuty('sweep', 'server-a');
      const second = await store.holdDuty('sweep', 'server-b', 50);
      expect(second).toBe(first! + 1);
      await new Promise((r) => setTimeout(r, 80));
      // Expired: anyone takes it, and the token moves on again.
      expect(await store.holdDuty('sweep', 'server-a', 5_000)).toBe(first! + 2);
    });

    it('refuses a ledger write fenced by a duty token once another holder has the duty', async () => {
      const token = (await store.holdDuty('settlement', 'server-a', 50))!;
      const fence = { duty: 'settlement', token };
      await store.ledger.post([], { fence, cursor: { name: 'deposits', value: '1' } });
      await new Promise((r) => setTimeout(r, 80));
      // Expired, not yet taken: the paused holder still cannot write.
      await expect(store.ledger.post([], { fence, cursor: { name: 'deposits', value: '2' } })).rejects.toThrow(/no longer held/);
      expect(await store.holdDuty('settlement', 'server-b', 5_000)).toBe(token + 1);
      await expect(store.ledger.post([], { fence, cursor: { name: 'deposits', value: '3' } })).rejects.toThrow(/another server took it over/);
      expect(await store.ledger.chainCursor('deposits')).toBe('1');
      await store.ledger.post([], { fence: { duty: 'settlement', token: token + 1 }, cursor: { name: 'deposits', value: '4' } });
      expect(await store.ledger.chainCursor('deposits')).toBe('4');
    });

    it('lists newest first with a cursor and a status filter, without output', async () => {
      for (let i = 0; i < 5; i++) await store.insert({ id: `j${i}`, spec: SPEC });
      await claimNext(store, 'n', 'e');
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
      // Margins of hundreds of ms: the suite runs beside others on 2 cores.
      const a = await claimNext(store, 'runner-1', 'lease-a', 500);
      await claimNext(store, 'runner-1', 'lease-b', 500);
      expect(a?.leaseExpiresAt).toBeDefined();
      expect(await store.expiredLeases(10)).toEqual([]);
      await sleep(50);
      expect(await store.renewLeases(['lease-a', 'lease-b'], 10_000, 'runner-2')).toEqual([]);
      expect(await store.renewLeases(['lease-a', 'forged'], 10_000, 'runner-1')).toEqual(['lease-a']);
      await sleep(550);
      // b was not renewed: expired; a was: still held.
      expect((await store.expiredLeases(10)).map((j) => j.id)).toEqual(['b']);
      expect(await store.renewLeases(['lease-b'], 10_000)).toEqual([]);
      // The sweep's requeue is conditional on the lease still being expired.
      expect(
        await store.transition('a', { status: ['scheduled'], executionId: 'lease-a', leaseExpired: true }, { status: 'pending', executionId: null }),
      ).toBeUndefined();
      const requeued = await store.transition(
        'b',
        { status: ['scheduled'], executionId: 'lease-b', leaseExpired: true },
        { status: 'pending', executionId: null, notBefore: store.now() + 150 },
      );
      expect(requeued).toMatchObject({ status: 'pending', attempts: 1 });
      expect(requeued?.leaseExpiresAt).toBeUndefined();
      expect((await store.execution('lease-b'))?.status).toBe('interrupted');
      expect(await store.execution('nope')).toBeUndefined();
    });

    it('holds a requeued job back until its backoff has passed', async () => {
      await store.insert({ id: 'a', spec: SPEC });
      await store.insert({ id: 'b', spec: SPEC });
      await claimNext(store, 'n', 'e1');
      await store.transition('a', { status: ['scheduled'], executionId: 'e1' }, { status: 'pending', executionId: null, notBefore: store.now() + 200 });
      expect((await store.pendingReady(10)).map((j) => j.id)).toEqual(['b']);
      expect((await claimNext(store, 'n', 'e2'))?.id).toBe('b');
      expect(await claimNext(store, 'n', 'e3')).toBeUndefined();
      await sleep(220);
      expect((await store.pendingReady(10)).map((j) => j.id)).toEqual(['a']);
      expect(await claimNext(store, 'n', 'e4')).toMatchObject({ id: 'a', attempts: 2 });
    });

    it('runs a replica under one account: never another replica of its task, nor with no account', async () => {
      const replica = (id: string) => ({ id, spec: SPEC, parent: 'task' });
      await store.insert({ id: 'task', spec: SPEC, replicas: [replica('r1'), replica('r2'), replica('r3')] });
      expect(await store.claim('r1', 'runner-a1', 'e1', 10_000, { accountId: 'acct-a' })).toMatchObject({ status: 'scheduled' });
      // Another runner of the same account, and a worker with no account, get nothing.
      expect(await store.claim('r2', 'runner-a2', 'e2', 10_000, { accountId: 'acct-a' })).toBeUndefined();
      expect(await store.claim('r2', 'runner-x', 'e3', 10_000)).toBeUndefined();
      expect(await claimNext(store, 'runner-a2', 'e4', 10_000, { accountId: 'acct-a' })).toBeUndefined();
      expect((await store.get('r2'))?.status).toBe('pending');
      expect(await store.claim('r2', 'runner-b', 'e5', 10_000, { accountId: 'acct-b' })).toMatchObject({ status: 'scheduled' });
      // The account may take its own replica again once it lost the lease; still no other.
      await store.transition('r1', { status: ['scheduled'], executionId: 'e1' }, { status: 'pending', executionId: null });
      expect(await store.claim('r3', 'runner-a2', 'e6', 10_000, { accountId: 'acct-a' })).toBeUndefined();
      expect(await store.claim('r1', 'runner-a2', 'e7', 10_000, { accountId: 'acct-a' })).toMatchObject({ status: 'scheduled', attempts: 2 });
      // The claim passes over the replicas the account may not take.
      await store.insert({ id: 'plain', spec: SPEC });
      expect((await claimNext(store, 'runner-a1', 'e8', 10_000, { accountId: 'acct-a' }))?.id).toBe('plain');
      expect((await claimNext(store, 'runner-c', 'e9', 10_000, { accountId: 'acct-c' }))?.id).toBe('r3');
      // Ordinary jobs need no account.
      await store.insert({ id: 'plain2', spec: SPEC });
      expect((await store.claim('plain2', 'runner-x', 'e10', 10_000))?.status).toBe('scheduled');
    });

    it('counts the jobs each owner holds and leaves capped owners out of the scan', async () => {
      await store.insert({ id: 'a1', spec: SPEC, owner: 'acct-a' });
      await store.insert({ id: 'a2', spec: SPEC, owner: 'acct-a' });
      await store.insert({ id: 'anon1', spec: SPEC });
      await store.insert({ id: 'b1', spec: SPEC, owner: 'acct-b' });
      await store.insert({ id: 'anon2', spec: SPEC });
      await store.insert({ id: 'task', spec: SPEC, owner: 'acct-b', replicas: [{ id: 'rep', spec: SPEC, owner: 'acct-b', parent: 'task' }] });
      expect(await store.heldByOwner()).toEqual([]); // a task's parent holds no execution
      await store.claim('a1', 'n', 'e1', 10_000);
      await store.claim('anon1', 'n', 'e2', 10_000);
      await store.claim('rep', 'n', 'e3', 10_000, { accountId: 'acct-n' });
      const held = (await store.heldByOwner()).sort((x, y) => (x.owner ?? '').localeCompare(y.owner ?? ''));
      expect(held).toEqual([{ held: 1 }, { owner: 'acct-a', held: 1 }, { owner: 'acct-b', held: 1 }]);
      const ids = async (skip?: Parameters<JobStore['pendingReady']>[1]) => (await store.pendingReady(10, skip)).map((j) => j.id);
      expect(await ids()).toEqual(['a2', 'b1', 'anon2']);
      expect(await ids({ skipOwners: ['acct-a'] })).toEqual(['b1', 'anon2']);
      expect(await ids({ skipAnonymous: true })).toEqual(['a2', 'b1']);
      expect(await ids({ skipOwners: ['acct-a', 'acct-b'], skipAnonymous: true })).toEqual([]);
    });

    it('keeps a deadline that renewals never move; the write past it is conditional on it', async () => {
      await store.insert({ id: 'a', spec: SPEC });
      await store.insert({ id: 'b', spec: SPEC });
      await store.claim('a', 'runner-1', 'lease-a', 10_000, { deadlineAt: store.now() + 100 });
      await store.claim('b', 'runner-1', 'lease-b', 10_000, { deadlineAt: store.now() + 60_000 });
      expect(await store.overdue(10)).toEqual([]);
      await sleep(120);
      expect(await store.renewLeases(['lease-a'], 10_000, 'runner-1')).toEqual(['lease-a']);
      expect((await store.overdue(10)).map((j) => j.id)).toEqual(['a']);
      // b starts: its deadline is set anew, and a write expecting it passed loses.
      await store.transition('b', { status: ['scheduled'], executionId: 'lease-b' }, { status: 'running', deadlineAt: store.now() + 400 });
      expect(await store.transition('b', { status: ['running'], executionId: 'lease-b', deadlinePassed: true }, { status: 'timed_out', executionId: null })).toBeUndefined();
      await sleep(420);
      expect((await store.overdue(10)).map((j) => j.id)).toEqual(['a', 'b']);
      const ended = await store.transition('b', { status: ['running'], executionId: 'lease-b', deadlinePassed: true }, { status: 'timed_out', executionId: null });
      expect(ended).toMatchObject({ status: 'timed_out' });
      expect((await store.execution('lease-b'))?.status).toBe('timed_out');
      // Leaving scheduled/running clears the deadline with the lease.
      await store.transition('a', { status: ['scheduled'], executionId: 'lease-a' }, { status: 'pending', executionId: null });
      expect(await store.overdue(10)).toEqual([]);
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
      await claimNext(store, 'r2', 'e1', 10_000);
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
