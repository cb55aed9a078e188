/**
 * Redundant execution (verification: {replicas: k}) on a real server with runners over HTTP:
 * k different runners each run the task, results are compared by the digest of exit code
 * and output, only the majority is paid and the rest goes back to the owner.
 */

import { afterEach, describe, expect, it } from 'vitest';
import { NoopExecutor } from '../../src/executor/noop/noop-executor.js';
import { eventually } from '../helpers/docker.js';
import { type TestNode, fundedAccount, startTestNode } from '../helpers/node.js';
import { okResult as result } from '../helpers/fixtures.js';
import { VERIFIED_TASK, runnersOf, verificationServer } from '../helpers/replicas.js';

const TASK = VERIFIED_TASK;

describe('redundant execution', () => {
  const nodes: TestNode[] = [];
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
  });

  const setup = () => verificationServer(nodes);

  it('three runners, one returns a different result: the majority is the result, only the honest are paid', async () => {
    const { s, owner, runners } = await setup();
    const task = await owner.client.submitTask({ ...TASK, reward: '2', verification: { replicas: 3 } });
    expect(task).toMatchObject({ status: 'running', verification: { replicas: 3 } });
    expect((await owner.client.account()).balance).toBe('4'); // 3 × 2 escrowed

    // Each runner gets one replica, however many it asks for: k replicas need k runners.
    const outputs = ['hi\n', 'hi\n', 'forged result\n'];
    for (const [i, { client }] of runners.entries()) {
      const leases = await client.claim(3, 0);
      expect(leases).toHaveLength(1);
      await client.result(leases[0]!.lease_token, leases[0]!.job_id, result(outputs[i]!));
    }
    expect(await runners[0]!.client.claim(3, 0)).toEqual([]);

    const done = await eventually(() => owner.client.get(task.id), (j) => j.status !== 'running', 5000);
    expect(done).toMatchObject({ status: 'completed', exitCode: 0, stdout: 'hi\n', message: '2 of 3 replicas agree', replicas: 3 });
    await eventually(() => owner.client.account(), (a) => a.balance === '6', 5000);
    expect((await runners[0]!.account.client.account()).balance).toBe('2');
    expect((await runners[1]!.account.client.account()).balance).toBe('2');
    expect((await runners[2]!.account.client.account()).balance).toBe('0');
    const refund = (await owner.client.ledger()).entries.find((e) => e.kind === 'refund');
    expect(refund).toMatchObject({ amount: '2', task_id: task.id, memo: '2 of 3 replicas paid' });
    expect(await s.node.ledger!.balanceOf('escrow')).toBe(0n);
  });

  it('no majority: the task fails as unverified and everything is refunded', async () => {
    const { owner, runners } = await setup();
    const task = await owner.client.submitTask({ ...TASK, reward: '1', verification: { replicas: 3 } });
    for (const [i, { client }] of runners.entries()) {
      const [lease] = await client.claim(1, 0);
      await client.result(lease!.lease_token, lease!.job_id, result(`answer ${i}\n`));
    }
    const done = await eventually(() => owner.client.get(task.id), (j) => j.status !== 'running', 5000);
    expect(done).toMatchObject({ status: 'failed', reason: 'unverified' });
    expect(done.message).toContain('no result had a majority of the 3 replicas');
    await eventually(() => owner.client.account(), (a) => a.balance === '10', 5000);
    for (const r of runners) expect((await r.account.client.account()).balance).toBe('0');
  });

  it('cancelling a redundant task cancels its replicas and refunds it all', async () => {
    const { owner, runners } = await setup();
    const task = await owner.client.submitTask({ ...TASK, reward: '1', verification: { replicas: 2 } });
    const [lease] = await runners[0]!.client.claim(1, 0);
    await runners[0]!.client.result(lease!.lease_token, lease!.job_id, result('hi\n'));
    expect((await owner.client.cancel(task.id)).status).toBe('cancelled');
    await eventually(() => owner.client.account(), (a) => a.balance === '10', 5000);
    expect((await runners[0]!.account.client.account()).balance).toBe('0');
  });

  it('a node runs one replica of a task itself, as its own account; the others wait for other workers', async () => {
    const s = await startTestNode({ flags: { slots: 3, auth: 'required' }, env: { GRIDX_RETRY_BACKOFF: '0' }, executor: new NoopExecutor() });
    nodes.push(s);
    const owner = await fundedAccount(s, '10', { name: 'owner' });
    const task = await owner.client.submitTask({ ...TASK, reward: '1', verification: { replicas: 3 } });
    const replicas = async () => (await owner.client.list()).jobs.filter((j) => j.parent === task.id);
    const [ran] = (await eventually(replicas, (js) => js.some((j) => j.status === 'completed'), 5000)).filter((j) => j.status === 'completed');
    expect(ran?.executedBy).toBe(s.node.id);
    await new Promise((r) => setTimeout(r, 300)); // three free slots: the node could take them all
    expect((await replicas()).map((j) => j.status).sort()).toEqual(['completed', 'pending', 'pending']);

    const workers = await Promise.all(['a', 'b'].map((name) => fundedAccount(s, '0', { kind: 'runner', name })));
    for (const worker of workers) {
      const [client] = await runnersOf(s, worker.key, [worker.id]);
      const [lease] = await client!.claim(3, 0);
      await client!.result(lease!.lease_token, lease!.job_id, result(''));
    }
    expect(await eventually(() => owner.client.get(task.id), (j) => j.status !== 'running', 5000)).toMatchObject({ status: 'completed', message: '3 of 3 replicas agree' });
    for (const worker of workers) await eventually(() => worker.client.account(), (a) => a.balance === '1', 5000);
    expect(await s.node.ledger!.balanceOf(`node-${s.node.id}`)).toBe(10n ** 18n);
  });

  it('refuses bad verification settings', async () => {
    const { owner } = await setup();
    for (const [verification, message] of [
      [{ replicas: 0 }, 'verification.replicas: must be a whole number 1-9'],
      [{ replicas: 2.5 }, 'verification.replicas: must be a whole number 1-9'],
      [{ replicas: 10 }, 'verification.replicas: must be a whole number 1-9'],
      [{ quorum: 2 }, 'verification.quorum: is not known'],
      ['3', 'verification: must be an object'],
    ] as const) {
      await expect(owner.client.submitTask({ ...TASK, verification: verification as never })).rejects.toMatchObject({ code: 'INVALID_INPUT', message: expect.stringContaining(message) });
    }
  });
});
