/**
 * Redundant execution (verification: {replicas: k}) on a real server with runners over HTTP:
 * k different runners each run the task, results are compared by the digest of exit code
 * and output, only the majority is paid and the rest goes back to the owner.
 */

import { afterEach, describe, expect, it } from 'vitest';
import { newSigningKeys } from '../../src/domain/result-digest.js';
import { NoopExecutor } from '../../src/executor/noop/noop-executor.js';
import { RunnerClient } from '../../src/sdk/runner-client.js';
import { eventually } from '../helpers/docker.js';
import { type TestNode, fundedAccount, startTestNode } from '../helpers/node.js';
import { okResult as result } from '../helpers/fixtures.js';

const TASK = {
  title: 'verified',
  type: 'docker' as const,
  config: { command: ['echo', 'hi'] },
  environment: { type: 'docker' as const, config: { image: 'gridx/busybox:local' } },
};

describe('redundant execution', () => {
  const nodes: TestNode[] = [];
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
  });

  async function setup() {
    const s = await startTestNode({ flags: { slots: 0, auth: 'required' }, env: { GRIDX_RETRY_BACKOFF: '0' }, executor: new NoopExecutor() });
    nodes.push(s);
    const owner = await fundedAccount(s, '10', { name: 'owner' });
    const runners = await Promise.all(
      ['honest-a', 'honest-b', 'liar'].map(async (name) => {
        const account = await fundedAccount(s, '0', { kind: 'runner', name });
        const keys = newSigningKeys();
        const reg = await new RunnerClient(s.url, undefined, account.key).register({ name, slots: 4, public_key: keys.publicKey });
        return { account, client: new RunnerClient(s.url, reg.id, reg.token, keys.privateKeyPem) };
      }),
    );
    return { s, owner, runners };
  }

  /** Runners registered under one account's key. */
  function runnersOf(s: TestNode, key: string | undefined, names: string[]): Promise<RunnerClient[]> {
    return Promise.all(
      names.map(async (name) => {
        const keys = newSigningKeys();
        const reg = await new RunnerClient(s.url, undefined, key).register({ name, slots: 4, public_key: keys.publicKey });
        return new RunnerClient(s.url, reg.id, reg.token, keys.privateKeyPem);
      }),
    );
  }

  /** Every runner asks for every replica at once; the leases each got. */
  async function claimAll(clients: RunnerClient[]) {
    const answers = await Promise.all(clients.map((client) => client.claim(3, 0)));
    return answers.flatMap((leases, i) => leases.map((lease) => ({ client: clients[i]!, lease })));
  }

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

  it('one account with k runners holds one replica of a task: its forged result loses to independent accounts', async () => {
    const { s, owner, runners } = await setup();
    const sybil = await fundedAccount(s, '0', { kind: 'runner', name: 'sybil' });
    const sybils = await runnersOf(s, sybil.key, ['s1', 's2', 's3']);
    const task = await owner.client.submitTask({ ...TASK, reward: '2', verification: { replicas: 3 } });

    const held = await claimAll(sybils);
    expect(held).toHaveLength(1);
    await held[0]!.client.result(held[0]!.lease.lease_token, held[0]!.lease.job_id, result('forged result\n'));
    // Having held one, the account gets no other replica of this task, on any of its runners.
    expect(await claimAll(sybils)).toEqual([]);

    for (const { client } of runners.slice(0, 2)) {
      const [lease] = await client.claim(3, 0);
      await client.result(lease!.lease_token, lease!.job_id, result('hi\n'));
    }
    const done = await eventually(() => owner.client.get(task.id), (j) => j.status !== 'running', 5000);
    expect(done).toMatchObject({ status: 'completed', stdout: 'hi\n', message: '2 of 3 replicas agree' });
    await eventually(() => runners[1]!.account.client.account(), (a) => a.balance === '2', 5000);
    expect((await runners[0]!.account.client.account()).balance).toBe('2');
    expect((await sybil.client.account()).balance).toBe('0');
  });

  it('an account that agrees with the majority is paid for one replica, however many runners it has', async () => {
    const { s, owner, runners } = await setup();
    const sybil = await fundedAccount(s, '0', { kind: 'runner', name: 'sybil' });
    const sybils = await runnersOf(s, sybil.key, ['s1', 's2', 's3']);
    const task = await owner.client.submitTask({ ...TASK, reward: '2', verification: { replicas: 3 } });
    const held = [...(await claimAll(sybils)), ...(await claimAll(runners.slice(0, 2).map((r) => r.client)))];
    expect(held).toHaveLength(3);
    for (const { client, lease } of held) await client.result(lease.lease_token, lease.job_id, result('hi\n'));
    const done = await eventually(() => owner.client.get(task.id), (j) => j.status !== 'running', 5000);
    expect(done).toMatchObject({ status: 'completed', message: '3 of 3 replicas agree' });
    await eventually(() => sybil.client.account(), (a) => a.balance === '2', 5000);
    expect((await runners[0]!.account.client.account()).balance).toBe('2');
    expect((await runners[1]!.account.client.account()).balance).toBe('2');
    expect((await owner.client.account()).balance).toBe('4');
  });

  it('runners without an account (an open server) take no replicas: they cannot be told apart', async () => {
    const s = await startTestNode({ flags: { slots: 0 }, env: { GRIDX_RETRY_BACKOFF: '0' }, executor: new NoopExecutor() });
    nodes.push(s);
    const [anonymous] = await runnersOf(s, undefined, ['anonymous']);
    const task = await s.client.submitTask({ ...TASK, verification: { replicas: 2 } });
    expect(await anonymous!.claim(3, 0)).toEqual([]);
    const plain = await s.client.submitTask(TASK);
    expect((await anonymous!.claim(3, 0)).map((l) => l.job_id)).toEqual([plain.id]);
    expect((await s.client.get(task.id)).status).toBe('running');
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
