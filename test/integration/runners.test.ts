/**
 * The runner API against a real server (in-process, SQLite): leases, stale and forged
 * tokens, expiry and requeue, cancel through the heartbeat, bad input on every route;
 * and GridxRunner itself with the no-op executor.
 */

import { afterEach, describe, expect, it } from 'vitest';
import { newSigningKeys } from '../../src/domain/result-digest.js';
import { loadConfig } from '../../src/config/load.js';
import { NoopExecutor } from '../../src/executor/noop/noop-executor.js';
import { silentLogger } from '../../src/logger.js';
import { GridxRunner } from '../../src/node/runner.js';
import { RunnerClient } from '../../src/sdk/runner-client.js';
import { eventually } from '../helpers/docker.js';
import { type TestNode, startNoopRunner, startTestNode, tempDir } from '../helpers/node.js';
import { errorOf, okResult as ok } from '../helpers/fixtures.js';

const TASK = {
  title: 't',
  type: 'docker' as const,
  config: { command: ['echo', 'hi'] },
  environment: { type: 'docker' as const, config: { image: 'gridx/busybox:local' } },
};

async function registered(server: TestNode, name = 'r'): Promise<RunnerClient> {
  const keys = newSigningKeys();
  const reg = await new RunnerClient(server.url).register({ name, slots: 2, public_key: keys.publicKey });
  return new RunnerClient(server.url, reg.id, reg.token, keys.privateKeyPem);
}

function terminal(node: TestNode, id: string) {
  return eventually(() => node.client.get(id), (j) => ['completed', 'failed', 'cancelled', 'timed_out'].includes(j.status), 10_000);
}

describe('runner API (in-process server)', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function server(env: Record<string, string> = {}): Promise<TestNode> {
    const node = await startTestNode({ flags: { slots: 0 }, env: { GRIDX_RETRY_BACKOFF: '0', ...env }, executor: new NoopExecutor() });
    cleanup.push(() => node.stop());
    return node;
  }

  it('a runner registers, claims under a lease, reports, and the task completes once', async () => {
    const s = await server();
    const runner = await registered(s, 'one');
    const task = await s.client.submitTask(TASK);
    const [claimed] = await runner.claim(4, 0);
    expect(claimed).toMatchObject({ job_id: task.id, attempt: 1, spec: { image: 'gridx/busybox:local', command: ['echo', 'hi'] } });
    expect(Date.parse(claimed!.lease_expires_at)).toBeGreaterThan(Date.now());
    expect(await runner.claim(4, 0)).toEqual([]);

    expect(await runner.started(claimed!.lease_token)).toMatchObject({ status: 'running' });
    await runner.output(claimed!.lease_token, [{ stream: 'stdout', data: 'hi\n' }]);
    expect((await s.client.get(task.id)).stdout).toBe('hi\n'); // live, relayed
    expect(await runner.result(claimed!.lease_token, claimed!.job_id, ok())).toMatchObject({ status: 'completed' });
    // The same report again (a retry after a lost answer) is recorded once and answered alike.
    expect(await runner.result(claimed!.lease_token, claimed!.job_id, ok('other\n'))).toMatchObject({ status: 'completed' });

    const job = await s.client.get(task.id);
    expect(job).toMatchObject({ status: 'completed', exitCode: 0, stdout: 'hi\n', attempts: 1, executedBy: runner.runnerId });
    expect(job.executions?.map((e) => e.status)).toEqual(['completed']);
    const { runners } = await runner.runners();
    expect(runners).toEqual([expect.objectContaining({ id: runner.runnerId, name: 'one', status: 'online', slots: 2, running: 0 })]);
    expect(JSON.stringify(runners)).not.toContain('token');
  });

  it('a long-poll claim returns as soon as a task arrives', async () => {
    const s = await server();
    const runner = await registered(s);
    const t0 = Date.now();
    const claiming = runner.claim(1, 10);
    await new Promise((r) => setTimeout(r, 200));
    const task = await s.client.submitTask(TASK);
    const [claimed] = await claiming;
    expect(claimed?.job_id).toBe(task.id);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('refuses forged, foreign and stale lease tokens, and unauthenticated runners', async () => {
    const s = await server({ GRIDX_LEASE_TTL: '1s' });
    const a = await registered(s, 'a');
    const b = await registered(s, 'b');
    const task = await s.client.submitTask(TASK);
    const [lease] = await a.claim(1, 0);
    const token = lease!.lease_token;

    expect(await errorOf(b.result(token, task.id, ok('forged\n')))).toMatchObject({ code: 'FORBIDDEN', message: expect.stringContaining('another runner') });
    expect(await errorOf(a.result('0b7c0a55-0000-4000-8000-000000000000', task.id, ok())))
      .toMatchObject({ code: 'FORBIDDEN', message: expect.stringContaining('never handed out') });
    expect(await errorOf(new RunnerClient(s.url, a.runnerId).heartbeat([]))).toMatchObject({ code: 'UNAUTHORIZED' });
    expect(await errorOf(new RunnerClient(s.url, a.runnerId, 'wrong').heartbeat([]))).toMatchObject({ code: 'UNAUTHORIZED' });
    // b's heartbeat cannot renew a's lease.
    expect(await b.heartbeat([token])).toMatchObject({ renewed: [], lost: [token] });

    // a stops renewing: the lease expires, the task goes back and b takes it.
    const [again] = await eventually(() => b.claim(1, 0), (claimed) => claimed.length === 1, 5000);
    expect(again).toMatchObject({ job_id: task.id, attempt: 2 });
    // a's late report under the stale lease is refused and changes nothing.
    expect(await errorOf(a.result(token, task.id, ok('late\n')))).toMatchObject({ code: 'CONFLICT', message: expect.stringContaining('no longer held') });
    expect(await a.heartbeat([token])).toMatchObject({ renewed: [], lost: [token] });
    await b.result(again!.lease_token, task.id, ok('b\n'));
    const job = await s.client.get(task.id);
    expect(job).toMatchObject({ status: 'completed', stdout: 'b\n', attempts: 2, executedBy: b.runnerId });
    expect(job.executions?.map((e) => [e.nodeId, e.status])).toEqual([
      [a.runnerId, 'interrupted'],
      [b.runnerId, 'completed'],
    ]);
  });

  it('answers each result of a batch on its own: good ones are recorded, forged and stale ones refused, repeats answered alike', async () => {
    const s = await server();
    const a = await registered(s, 'a');
    const b = await registered(s, 'b');
    for (let i = 0; i < 3; i++) await s.client.submitTask(TASK);
    const leases = await a.claim(3, 0);
    expect(leases).toHaveLength(3);
    const [first, second, third] = leases.map((l) => ({ token: l.lease_token, jobId: l.job_id }));
    expect((await s.client.cancel(third!.jobId)).status).toBe('cancelled');

    const answers = await a.results([
      { ...first!, result: ok('one\n') },
      // Signed by a, but for another job than the lease's: the signature does not verify.
      { token: second!.token, jobId: first!.jobId, result: ok('forged\n') },
      { ...third!, result: ok('late\n') },
    ]);
    expect(answers).toEqual([
      { lease_token: first!.token, job_id: first!.jobId, status: 'completed' },
      { lease_token: second!.token, error: { code: 'FORBIDDEN', message: expect.stringContaining('does not verify') } },
      { lease_token: third!.token, error: { code: 'CONFLICT', message: expect.stringContaining('no longer held') } },
    ]);
    // Another runner's batch cannot report a's lease; a's repeat is answered as before.
    expect(await b.results([{ ...second!, result: ok() }])).toEqual([
      { lease_token: second!.token, error: { code: 'FORBIDDEN', message: expect.stringContaining('another runner') } },
    ]);
    expect(await a.results([{ ...first!, result: ok('one\n') }, { ...second!, result: ok('two\n') }])).toEqual([
      { lease_token: first!.token, job_id: first!.jobId, status: 'completed' },
      { lease_token: second!.token, job_id: second!.jobId, status: 'completed' },
    ]);
    expect(await s.client.get(first!.jobId)).toMatchObject({ status: 'completed', stdout: 'one\n' });
    expect(await s.client.get(second!.jobId)).toMatchObject({ status: 'completed', stdout: 'two\n' });
    expect((await s.client.get(third!.jobId)).status).toBe('cancelled');
    // A lease named twice in one batch is refused whole: each result goes once.
    expect(await errorOf(a.results([{ ...first!, result: ok('one\n') }, { ...first!, result: ok('one\n') }]))).toMatchObject({
      code: 'INVALID_INPUT',
      message: expect.stringContaining('names a lease_token twice'),
    });
    // A batch past the cap is refused whole, saying what the cap is.
    const many = Array.from({ length: 65 }, () => ({ ...first!, result: ok() }));
    expect(await errorOf(a.results(many))).toMatchObject({ code: 'INVALID_INPUT', message: expect.stringContaining('64') });
  });

  it('an expired lease past the last attempt fails the task as lease_expired', async () => {
    const s = await server({ GRIDX_LEASE_TTL: '1s', GRIDX_MAX_ATTEMPTS: '1' });
    const runner = await registered(s);
    const task = await s.client.submitTask(TASK);
    await runner.claim(1, 0);
    const job = await eventually(() => s.client.get(task.id), (j) => j.status === 'failed', 5000);
    expect(job).toMatchObject({ reason: 'lease_expired', attempts: 1 });
    expect(job.message).toContain(`the lease of ${runner.runnerId} expired`);
  });

  it('heartbeats renew leases; a cancelled task is reported lost so the runner stops it', async () => {
    const s = await server({ GRIDX_LEASE_TTL: '1s' });
    const runner = await registered(s);
    const task = await s.client.submitTask(TASK);
    const [lease] = await runner.claim(1, 0);
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, 400));
      expect(await runner.heartbeat([lease!.lease_token])).toMatchObject({ renewed: [lease!.lease_token], lost: [] });
    }
    expect((await s.client.get(task.id)).status).toBe('scheduled'); // held past 1 s by renewals
    expect((await s.client.cancel(task.id)).status).toBe('cancelled');
    expect(await runner.heartbeat([lease!.lease_token])).toMatchObject({ lost: [lease!.lease_token] });
    expect(await errorOf(runner.result(lease!.lease_token, task.id, ok()))).toMatchObject({ code: 'CONFLICT' });
    expect((await s.client.get(task.id)).status).toBe('cancelled');
  });

  it('hands out only tasks that fit the runner', async () => {
    const s = await server();
    const small = new RunnerClient(s.url);
    const reg = await small.register({ name: 'small', slots: 1, limits: { cpu: 0.5, memory: '64m', timeout: '10s' }, public_key: newSigningKeys().publicKey });
    const runner = new RunnerClient(s.url, reg.id, reg.token);
    await s.client.submitTask({ ...TASK, config: { command: ['true'], resources: { memory: '128m' } } });
    const fits = await s.client.submitTask({ ...TASK, config: { command: ['true'], resources: { memory: '32m', cpu: 0.5, timeout: 5 } } });
    const claimed = await runner.claim(4, 0);
    expect(claimed.map((c) => c.job_id)).toEqual([fits.id]);
  });

  it('answers bad input on every runner route with 4xx naming the field', async () => {
    const s = await server();
    const reg = await new RunnerClient(s.url).register({ name: 'r', slots: 1, public_key: newSigningKeys().publicKey });
    const post = async (path: string, body: unknown, auth = true) => {
      const res = await fetch(`${s.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(auth ? { authorization: `Bearer ${reg.token}` } : {}) },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as { error: string; code: string } };
    };
    const base = `/api/runners/${reg.id}`;
    const pk = newSigningKeys().publicKey;
    const cases: Array<[string, unknown, number, RegExp]> = [
      ['/api/runners', { slots: 1, public_key: pk }, 400, /body\.name/],
      ['/api/runners', { name: 'x', slots: 0, public_key: pk }, 400, /body\.slots/],
      ['/api/runners', { name: 'x', slots: 1, limits: { memory: 'lots' }, public_key: pk }, 400, /body\.limits\.memory/],
      ['/api/runners', { name: 'x', slots: 1, limits: { cpu: -1 }, public_key: pk }, 400, /body\.limits\.cpu/],
      ['/api/runners', { name: 'x', slots: 1, extra: true, public_key: pk }, 400, /body/],
      ['/api/runners', { name: 'x', slots: 1 }, 400, /body\.public_key/],
      ['/api/runners', { name: 'x', slots: 1, public_key: 'A'.repeat(60) }, 400, /body\.public_key: must be an Ed25519/],
      [`${base}/claim`, { max: 0 }, 400, /body\.max/],
      [`${base}/claim`, { wait: 999 }, 400, /body\.wait/],
      [`${base}/heartbeat`, { leases: 'all' }, 400, /body\.leases/],
      [`${base}/leases/x/output`, { chunks: [{ stream: 'stdin', data: 'x' }] }, 400, /body\.chunks/],
      [`${base}/leases/x/result`, { exit_code: 0 }, 400, /body\.oom_killed|body/],
      [`${base}/leases/x/failed`, { reason: 'bored', message: 'x' }, 400, /body\.reason/],
      [`/api/runners/nobody/heartbeat`, { leases: [] }, 401, /unknown here/],
    ];
    for (const [path, body, status, message] of cases) {
      // Registration takes an account key (none: this server runs open), not a runner token.
      const answer = await post(path, body, path !== '/api/runners');
      expect({ path, body, status: answer.status }).toEqual({ path, body, status });
      expect(answer.body.error).toMatch(message);
    }
    expect((await post(`${base}/heartbeat`, { leases: [] }, false)).status).toBe(401);
  });
});

describe('gridx runner (GridxRunner with the no-op executor)', () => {
  it('takes tasks, reports them, and gives running ones back when it stops', async () => {
    const server = await startTestNode({ flags: { slots: 0 }, env: { GRIDX_RETRY_BACKOFF: '0' }, executor: new NoopExecutor() });
    const executors: NoopExecutor[] = [];
    const start = (delayMs: number) => startNoopRunner({ serverUrl: server.url, slots: 2, name: 'noop', delayMs, executors });
    try {
      const fast = await start(5);
      const tasks = await Promise.all(Array.from({ length: 10 }, () => server.client.submitTask(TASK)));
      for (const t of tasks) {
        const job = await terminal(server, t.id);
        expect(job).toMatchObject({ status: 'completed', stdout: 'ok\n', executedBy: fast.id });
      }
      await fast.stop();

      // A runner that stops with work in hand gives it back; another finishes it.
      const slow = await start(60_000);
      const held = await server.client.submitTask(TASK);
      await eventually(() => server.client.get(held.id), (j) => j.status === 'running', 5000);
      await slow.stop();
      expect(await server.client.get(held.id)).toMatchObject({ status: 'pending', attempts: 1 });
      const next = await start(5);
      expect(await terminal(server, held.id)).toMatchObject({ status: 'completed', attempts: 2, executedBy: next.id });
      await next.stop();
    } finally {
      await server.stop();
    }
  });

  it('stops the container when the server times the job out, and reports nothing for it', async () => {
    const server = await startTestNode({ flags: { slots: 0 }, env: { GRIDX_LEASE_TTL: '1s' }, executor: new NoopExecutor() });
    // An executor that ignores the job's time limit: only the server's deadline ends the run.
    const executor = new NoopExecutor({ delayMs: 60_000 });
    const runner = new GridxRunner({
      config: loadConfig({ flags: { slots: 1, dataDir: tempDir('gridx-runner-') } }),
      serverUrl: server.url,
      log: silentLogger,
      executor: () => executor,
    });
    await runner.start();
    try {
      const task = await server.client.submitTask({ ...TASK, config: { command: ['sleep', '600'], resources: { timeout: 1 } } });
      const job = await terminal(server, task.id);
      expect(job).toMatchObject({ status: 'timed_out', reason: 'timeout', attempts: 1 });
      const token = executor.started[0]!.executionId;
      // The next heartbeat hears the lease is lost and the runner cancels the execution.
      await eventually(async () => executor.logs(token), (logs) => logs === undefined, 5000);
      expect((await server.client.get(task.id)).status).toBe('timed_out');
    } finally {
      await runner.stop();
      await server.stop();
    }
  });

  it("enforces the runner's own image policy: a denied image is given back, never run", async () => {
    const server = await startTestNode({ flags: { slots: 0 }, env: { GRIDX_MAX_ATTEMPTS: '1' }, executor: new NoopExecutor() });
    const executor = new NoopExecutor();
    const runner = new GridxRunner({
      config: loadConfig({ flags: { slots: 1, dataDir: tempDir('gridx-runner-'), denyImages: 'gridx/' } }),
      serverUrl: server.url,
      log: silentLogger,
      executor: () => executor,
    });
    await runner.start();
    try {
      const task = await server.client.submitTask(TASK);
      const job = await terminal(server, task.id);
      expect(job).toMatchObject({ status: 'failed', attempts: 1 });
      expect(job.message).toContain('"gridx/busybox:local" is denied');
      expect(executor.started).toEqual([]);
    } finally {
      await runner.stop();
      await server.stop();
    }
  });
});
