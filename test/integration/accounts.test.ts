/**
 * Accounts and money through the API of a real server (in-process, SQLite, auth required):
 * keys, owners, escrow at submit, payouts to the runner that holds the lease (signed
 * results only), refunds, the operator fee, and bad amounts.
 */

import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { newSigningKeys } from '../../src/domain/result-digest.js';
import { NoopExecutor } from '../../src/executor/noop/noop-executor.js';
import { GridxClient } from '../../src/sdk/client.js';
import { RunnerClient } from '../../src/sdk/runner-client.js';
import { eventually } from '../helpers/docker.js';
import { type TestNode, fundedAccount, startTestNode } from '../helpers/node.js';
import { errorOf, okResult as result } from '../helpers/fixtures.js';

const TASK = {
  title: 'paid',
  type: 'docker' as const,
  config: { command: ['echo', 'hi'] },
  environment: { type: 'docker' as const, config: { image: 'gridx/busybox:local' } },
};

describe('accounts, escrow and payouts (server with auth required)', () => {
  const nodes: TestNode[] = [];
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
  });

  async function server(env: Record<string, string> = {}): Promise<TestNode> {
    const node = await startTestNode({ flags: { slots: 0, auth: 'required' }, env: { GRIDX_RETRY_BACKOFF: '0', ...env }, executor: new NoopExecutor() });
    nodes.push(node);
    return node;
  }

  async function runnerOf(s: TestNode, key: string): Promise<RunnerClient> {
    const keys = newSigningKeys();
    const reg = await new RunnerClient(s.url, undefined, key).register({ name: 'paid-runner', slots: 2, public_key: keys.publicKey });
    return new RunnerClient(s.url, reg.id, reg.token, keys.privateKeyPem);
  }

  it('every write needs a valid key; a wrong or malformed one is a 401 that says what to send', async () => {
    const s = await server();
    const anonymous = new GridxClient(s.url);
    expect(await errorOf(anonymous.submitTask(TASK))).toMatchObject({ code: 'UNAUTHORIZED', message: expect.stringContaining('Authorization: Bearer') });
    expect(await errorOf(anonymous.submit({ image: 'a', command: 'x' }))).toMatchObject({ code: 'UNAUTHORIZED' });
    expect(await errorOf(new GridxClient(s.url, { token: 'gxk_not-a-key-at-all' }).submitTask(TASK))).toMatchObject({
      code: 'UNAUTHORIZED',
      message: expect.stringContaining('not valid here'),
    });
    const res = await fetch(`${s.url}/api/tasks`, { method: 'POST', headers: { authorization: 'Basic abc', 'content-type': 'application/json' }, body: JSON.stringify(TASK) });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: string }).error).toContain('Bearer <key>');
    expect(await errorOf(new RunnerClient(s.url).register({ name: 'r', slots: 1, public_key: newSigningKeys().publicKey }))).toMatchObject({ code: 'UNAUTHORIZED' });
    expect(await errorOf(anonymous.account())).toMatchObject({ code: 'UNAUTHORIZED' });
  });

  it('a paid task: escrow at submit, payout less the fee to the runner holding the lease, once', async () => {
    const s = await server({ GRIDX_FEE: '2.5' });
    const alice = await fundedAccount(s, '10', { name: 'alice' });
    const worker = await fundedAccount(s, '0', { kind: 'runner', name: 'worker' });
    const runner = await runnerOf(s, worker.key);

    const task = await alice.client.submitTask({ ...TASK, reward: '4' });
    expect((await alice.client.account()).balance).toBe('6');
    const [lease] = await runner.claim(1, 0);
    await runner.started(lease!.lease_token);
    await runner.result(lease!.lease_token, task.id, result());
    await runner.result(lease!.lease_token, task.id, result()); // a repeated report pays nothing more

    await eventually(() => worker.client.account(), (a) => a.balance === '3.9', 5000);
    expect((await alice.client.account()).balance).toBe('6');
    const ledger = await worker.client.ledger();
    expect(ledger.entries).toEqual([expect.objectContaining({ kind: 'payout', amount: '3.9', counterparty: 'escrow', task_id: task.id, execution_id: lease!.lease_token })]);
    const mine = await alice.client.ledger();
    expect(mine.entries.map((e) => [e.kind, e.amount])).toEqual([
      ['escrow', '-4'],
      ['credit', '10'],
    ]);
    expect(await s.node.ledger!.balanceOf('fees')).toBe(10n ** 17n); // 0.1
  });

  it('refunds the owner when the task is cancelled, fails without running, or its runner is lost', async () => {
    const s = await server({ GRIDX_LEASE_TTL: '1s', GRIDX_MAX_ATTEMPTS: '1' });
    const alice = await fundedAccount(s, '10');
    const worker = await fundedAccount(s, '0', { kind: 'runner' });
    const runner = await runnerOf(s, worker.key);

    const cancelled = await alice.client.submitTask({ ...TASK, reward: '1' });
    await alice.client.cancel(cancelled.id);
    const noImage = await alice.client.submitTask({ ...TASK, reward: '2' });
    const [lease] = await runner.claim(1, 0);
    await runner.failed(lease!.lease_token, 'image_not_found', 'no such image');
    const lost = await alice.client.submitTask({ ...TASK, reward: '3' });
    await runner.claim(1, 0); // and never heard of again: the lease expires, the last attempt fails
    await eventually(() => alice.client.get(lost.id), (j) => j.status === 'failed', 5000);

    await eventually(() => alice.client.account(), (a) => a.balance === '10', 5000);
    expect((await worker.client.account()).balance).toBe('0');
    const refunds = (await alice.client.ledger()).entries.filter((e) => e.kind === 'refund');
    expect(refunds.map((e) => [e.task_id, e.amount]).sort()).toEqual(
      [[cancelled.id, '1'], [noImage.id, '2'], [lost.id, '3']].sort(),
    );
  });

  it('a reward above the balance is a 402 and creates nothing', async () => {
    const s = await server();
    const poor = await fundedAccount(s, '1.5');
    const before = (await poor.client.list()).jobs.length;
    const err = await errorOf(poor.client.submitTask({ ...TASK, reward: '1.500000000000000001' }));
    expect(err).toMatchObject({ code: 'PAYMENT_REQUIRED', message: expect.stringContaining('holds 1.5 credits, less than the 1.500000000000000001') });
    expect((await poor.client.list()).jobs.length).toBe(before);
    expect((await poor.client.account()).balance).toBe('1.5');
    expect((await poor.client.ledger()).entries).toHaveLength(1);
  });

  it('refuses bad amounts: negative, zero, beyond 18 decimals, overflowing', async () => {
    const s = await server();
    const alice = await fundedAccount(s, '5');
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${s.url}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${alice.key}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: res.status, error: ((await res.json()) as { error: string }).error };
    };
    const cases: Array<[string, unknown, RegExp]> = [
      ['/api/tasks', { ...TASK, reward: -1 }, /reward: must not be negative/],
      ['/api/tasks', { ...TASK, reward: '-0.5' }, /reward: must not be negative/],
      ['/api/tasks', { ...TASK, reward: '0.1234567890123456789' }, /reward: has more than 18 decimals/],
      ['/api/tasks', { ...TASK, reward: '1e3' }, /reward: must be a decimal number/],
      ['/api/tasks', { ...TASK, reward: '1'.repeat(31) }, /reward: is too large/],
      ['/api/tasks', { ...TASK, reward: 1e300 }, /reward: is too large to send as a JSON number/],
      ['/api/accounts/me/withdrawals', { amount: 0 }, /amount: must be more than 0/],
      ['/api/accounts/me/withdrawals', { amount: '-3' }, /amount: must not be negative/],
      ['/api/accounts/me/withdrawals', { amount: '0.0000000000000000001' }, /amount: has more than 18 decimals/],
      ['/api/accounts/me/withdrawals', { amount: '9'.repeat(40) }, /amount: is too large/],
    ];
    for (const [path, body, message] of cases) {
      const answer = await post(path, body);
      expect({ body, status: answer.status }).toEqual({ body, status: 400 });
      expect(answer.error).toMatch(message);
    }
    expect((await alice.client.account()).balance).toBe('5');
    // A valid amount with settlement off says so.
    expect(await post('/api/accounts/me/withdrawals', { amount: '1' })).toMatchObject({ status: 503, error: expect.stringContaining('settlement is off') });
  });

  it("only the owner sees a task's output and result, follows it, or cancels it; nobody acts for another account", async () => {
    const s = await server();
    const alice = await fundedAccount(s, '5', { name: 'alice' });
    const mallory = await fundedAccount(s, '5', { name: 'mallory' });
    const worker = await fundedAccount(s, '0', { kind: 'runner' });
    const runner = await runnerOf(s, worker.key);
    const task = await alice.client.submitTask({ ...TASK, environment: { config: { image: 'gridx/busybox:local', env: ['TOKEN=s3cret'] } }, reward: '1' });
    const [lease] = await runner.claim(1, 0);
    await runner.result(lease!.lease_token, task.id, result('secret\n'));
    for (const path of [`/api/tasks/${task.id}`, '/api/tasks', `/jobs/${task.id}`, '/jobs']) {
      const text = await (await fetch(`${s.url}${path}`, { headers: { authorization: `Bearer ${mallory.key}` } })).text();
      expect(text, path).not.toContain('s3cret');
    }
    expect(JSON.stringify(await (await fetch(`${s.url}/api/tasks/${task.id}`, { headers: { authorization: `Bearer ${alice.key}` } })).json())).toContain('TOKEN=s3cret');
    // Listings show an account its own tasks (and anonymous ones), nobody else's.
    expect((await mallory.client.list()).jobs.map((j) => j.id)).not.toContain(task.id);
    expect((await alice.client.list()).jobs.map((j) => j.id)).toContain(task.id);

    const seen = await mallory.client.get(task.id);
    expect(seen.status).toBe('completed');
    expect(seen).not.toHaveProperty('stdout');
    expect(seen).not.toHaveProperty('exitCode');
    const asTask = (await (await fetch(`${s.url}/api/tasks/${task.id}`, { headers: { authorization: `Bearer ${mallory.key}` } })).json()) as Record<string, unknown>;
    expect(asTask).not.toHaveProperty('result');
    for (const path of [`/api/tasks/${task.id}/logs`, `/jobs/${task.id}/logs`]) {
      const res = await fetch(`${s.url}${path}`, { headers: { authorization: `Bearer ${mallory.key}` } });
      expect(res.status, path).toBe(403);
      expect(((await res.json()) as { error: string }).error).toContain('belongs to another account');
      expect((await fetch(`${s.url}${path}`)).status, path).toBe(401);
    }
    expect(await errorOf(mallory.client.followTask(task.id, () => {}))).toMatchObject({ code: 'FORBIDDEN' });
    expect((await alice.client.get(task.id)).stdout).toBe('secret\n');

    const pending = await alice.client.submitTask(TASK);
    expect(await errorOf(mallory.client.cancel(pending.id))).toMatchObject({ code: 'FORBIDDEN' });
    const res = await fetch(`${s.url}/api/tasks/${pending.id}/cancel`, { method: 'POST', headers: { authorization: `Bearer ${mallory.key}` } });
    expect(res.status).toBe(403);
    expect((await alice.client.get(pending.id)).status).toBe('pending');

    // Another account's balance, ledger and funds are out of reach.
    for (const [method, path, body] of [
      ['GET', `/api/accounts/${alice.id}`, undefined],
      ['GET', `/api/accounts/${alice.id}/ledger`, undefined],
      ['POST', `/api/accounts/${alice.id}/withdrawals`, { amount: '1' }],
    ] as const) {
      const r = await fetch(`${s.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${mallory.key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      expect(r.status, `${method} ${path}`).toBe(403);
    }
    expect((await alice.client.account()).balance).toBe('4');
  });

  it('the global event stream shows each account only its own tasks; a bad key is refused before the upgrade', async () => {
    const s = await server();
    const alice = await fundedAccount(s, '5', { name: 'alice' });
    const bob = await fundedAccount(s, '5', { name: 'bob' });
    const events = (key: string) =>
      new Promise<Array<{ task_id: string }>>((resolve, reject) => {
        const seen: Array<{ task_id: string }> = [];
        const ws = new WebSocket(`${s.url.replace('http', 'ws')}/api/events?since=0`, { headers: { authorization: `Bearer ${key}` } });
        ws.on('message', (raw) => seen.push(JSON.parse(raw.toString()) as { task_id: string }));
        ws.on('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
        ws.on('open', () => setTimeout(() => (ws.close(), resolve(seen)), 500));
      });
    const mine = await alice.client.submitTask(TASK);
    const theirs = await bob.client.submitTask(TASK);
    const seenByAlice = await events(alice.key);
    expect(seenByAlice.length).toBeGreaterThan(0);
    expect(new Set(seenByAlice.map((e) => e.task_id))).toEqual(new Set([mine.id]));
    expect(new Set((await events(bob.key)).map((e) => e.task_id))).toEqual(new Set([theirs.id]));
    await expect(events('gxk_wrong-key-wrong-key')).rejects.toThrow('HTTP 401');
  });

  it('a result whose signature does not verify is refused and pays nothing', async () => {
    const s = await server();
    const alice = await fundedAccount(s, '5');
    const worker = await fundedAccount(s, '0', { kind: 'runner' });
    const honest = await runnerOf(s, worker.key);
    const task = await alice.client.submitTask({ ...TASK, reward: '1' });
    const [lease] = await honest.claim(1, 0);
    // The runner's id and secret, but another key: a report it did not sign.
    const forger = new RunnerClient(s.url, honest.runnerId, (honest as unknown as { token: string }).token, newSigningKeys().privateKeyPem);
    expect(await errorOf(forger.result(lease!.lease_token, task.id, result('forged\n')))).toMatchObject({
      code: 'FORBIDDEN',
      message: expect.stringContaining('signature'),
    });
    expect((await alice.client.get(task.id)).status).toBe('scheduled');
    await honest.result(lease!.lease_token, task.id, result());
    await eventually(() => worker.client.account(), (a) => a.balance === '1', 5000);
  });
});
