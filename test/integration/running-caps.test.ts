/**
 * Caps on the jobs one caller has running at once (limits.account_running,
 * limits.anonymous_running): past a cap its jobs wait in the queue, they are not refused,
 * and other callers' jobs pass them by. Both dispatchers keep the caps: the node's own
 * slots and the runner hub.
 */

import { afterEach, describe, expect, it } from 'vitest';
import { newSigningKeys } from '../../src/domain/result-digest.js';
import { isTerminal } from '../../src/domain/job.js';
import { NoopExecutor } from '../../src/executor/noop/noop-executor.js';
import { RunnerClient } from '../../src/sdk/runner-client.js';
import { eventually } from '../helpers/docker.js';
import { okResult } from '../helpers/fixtures.js';
import { type TestNode, fundedAccount, startTestNode } from '../helpers/node.js';

const JOB = { image: 'gridx/busybox:local', command: ['sleep', '1'] };

describe('running caps per caller', () => {
  const nodes: TestNode[] = [];
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
  });

  async function start(flags: Record<string, unknown>, env: Record<string, string>, delayMs = 500): Promise<TestNode> {
    const t = await startTestNode({ flags, env: { GRIDX_RETRY_BACKOFF: '0', ...env }, executor: new NoopExecutor({ delayMs }) });
    nodes.push(t);
    return t;
  }

  /** Most jobs of each owner (anonymous: "") held at once, as the node announced them. */
  function watchHeld(t: TestNode): Map<string, number> {
    const held = new Map<string, Set<string>>();
    const most = new Map<string, number>();
    t.node.events.on('job:status', ({ job }) => {
      const owner = job.owner ?? '';
      const mine = held.get(owner) ?? new Set<string>();
      held.set(owner, mine);
      if (job.status === 'scheduled' || job.status === 'running') mine.add(job.id);
      else if (isTerminal(job.status) || job.status === 'pending') mine.delete(job.id);
      most.set(owner, Math.max(most.get(owner) ?? 0, mine.size));
    });
    return most;
  }

  it('an account with a cap of 2 submits 5 jobs to 5 free slots: 2 run at a time, all 5 complete', async () => {
    const t = await start({ slots: 5, auth: 'required' }, { GRIDX_ACCOUNT_RUNNING: '2' });
    const most = watchHeld(t);
    const alice = await fundedAccount(t, '10', { name: 'alice' });
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push((await alice.client.submit(JOB, { wait: false })).id);
    await new Promise((r) => setTimeout(r, 150));
    const early = (await alice.client.list()).jobs.map((j) => j.status);
    expect(early.filter((s) => s === 'pending')).toHaveLength(3); // waiting, not refused

    const done = await Promise.all(ids.map((id) => eventually(() => alice.client.get(id), (j) => isTerminal(j.status), 10_000)));
    expect(done.map((j) => j.status)).toEqual(Array(5).fill('completed'));
    expect(most.get(alice.id)).toBe(2);
    // Three waves of 500 ms: 2, 2, 1.
    const span = Math.max(...done.map((j) => Date.parse(j.finishedAt!))) - Math.min(...done.map((j) => Date.parse(j.startedAt!)));
    expect(span).toBeGreaterThanOrEqual(1400);
  });

  it("a capped caller's waiting jobs do not hold back another caller's", async () => {
    const t = await start({ slots: 4 }, { GRIDX_ANONYMOUS_RUNNING: '1' }, 600);
    const most = watchHeld(t);
    const anonymous = [];
    for (let i = 0; i < 3; i++) anonymous.push((await t.client.submit(JOB, { wait: false })).id);
    const bob = await fundedAccount(t, '10', { name: 'bob' });
    const theirs = await bob.client.submit(JOB, { wait: false });
    // Bob's job, submitted last, runs while the anonymous ones wait their turn one by one.
    const bobs = await eventually(() => bob.client.get(theirs.id), (j) => j.status === 'completed', 5000);
    const firstAnonymous = await t.client.get(anonymous[0]!);
    expect(Date.parse(bobs.startedAt!)).toBeLessThan(Date.parse(firstAnonymous.finishedAt ?? new Date().toISOString()));
    for (const id of anonymous) await eventually(() => t.client.get(id), (j) => j.status === 'completed', 10_000);
    expect(most.get('')).toBe(1);
  });

  it('the runner hub keeps the cap too: a runner is handed one job of a capped account at a time', async () => {
    const t = await start({ slots: 0, auth: 'required' }, { GRIDX_ACCOUNT_RUNNING: '1' });
    const alice = await fundedAccount(t, '10', { name: 'alice' });
    const worker = await fundedAccount(t, '0', { kind: 'runner', name: 'worker' });
    const keys = newSigningKeys();
    const reg = await new RunnerClient(t.url, undefined, worker.key).register({ name: 'r', slots: 4, public_key: keys.publicKey });
    const runner = new RunnerClient(t.url, reg.id, reg.token, keys.privateKeyPem);
    const first = await alice.client.submit(JOB, { wait: false });
    const second = await alice.client.submit(JOB, { wait: false });

    const leases = await runner.claim(4, 0);
    expect(leases.map((l) => l.job_id)).toEqual([first.id]);
    expect(await runner.claim(4, 0)).toEqual([]);
    await runner.result(leases[0]!.lease_token, first.id, okResult());
    expect((await runner.claim(4, 0)).map((l) => l.job_id)).toEqual([second.id]);
  });
});
