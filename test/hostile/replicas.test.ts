/**
 * Hostile user: one account that registers k runners to claim every replica of a task and
 * report the same forged result, to be "verified" by itself and paid k times. Replicas run
 * under distinct accounts: it holds one at most, and honest accounts still decide.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { digestOf, manifestOf } from '../../src/domain/data.js';
import type { RunnerClient } from '../../src/sdk/runner-client.js';
import { NoopExecutor } from '../../src/executor/noop/noop-executor.js';
import { eventually } from '../helpers/docker.js';
import { okResult as result } from '../helpers/fixtures.js';
import { type TestNode, fundedAccount, startTestNode, tempDir } from '../helpers/node.js';
import { VERIFIED_TASK as TASK, claimAll, runnersOf, verificationServer } from '../helpers/replicas.js';

const nodes: TestNode[] = [];
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()));
});
const setup = () => verificationServer(nodes);

describe('replicas on independent workers', () => {
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

  it('a replica that prints the same but wrote a different file loses the vote, and its file is not the output', async () => {
    const { s, owner, runners } = await setup();
    const task = await owner.client.submitTask({ ...TASK, reward: '2', verification: { replicas: 3 } });
    const dir = tempDir('gridx-replica-files-');
    const report = async (client: RunnerClient, content: string) => {
      const [lease] = await client.claim(3, 0);
      const file = path.join(dir, `${lease!.lease_token}`);
      fs.writeFileSync(file, content);
      await client.putOutput(lease!.lease_token, file, digestOf(content));
      const outputs = manifestOf([{ path: 'answer', size: content.length, sha256: digestOf(content) }], false);
      await client.result(lease!.lease_token, lease!.job_id, { ...result('hi\n'), outputs });
    };
    await report(runners[2]!.client, 'forged answer');
    await report(runners[0]!.client, 'true answer');
    await report(runners[1]!.client, 'true answer');
    const done = await eventually(() => owner.client.get(task.id), (j) => j.status !== 'running', 5000);
    expect(done).toMatchObject({ status: 'completed', message: '2 of 3 replicas agree' });
    const answer = await fetch(`${s.url}/api/tasks/${task.id}/outputs/answer`, { headers: { authorization: `Bearer ${owner.key}` } });
    expect(await answer.text()).toBe('true answer');
    await eventually(() => runners[1]!.account.client.account(), (a) => a.balance === '2', 5000);
    expect((await runners[2]!.account.client.account()).balance).toBe('0');
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

});
