import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NoopExecutor } from '../../src/executor/noop/noop-executor.js';
import { startTestNode, type TestNode } from '../helpers/node.js';

describe('Grid-X API (no-op executor)', () => {
  let t: TestNode;
  const executor = new NoopExecutor({ delayMs: 20, output: 'ran\n' });

  beforeAll(async () => {
    t = await startTestNode({ executor, flags: { slots: 2 }, env: { GRIDX_BODY_LIMIT: '4k' } });
  });
  afterAll(async () => {
    await t.stop();
  });

  const post = (payload: unknown, query = '', headers: Record<string, string> = { 'content-type': 'application/json' }) =>
    t.node.http.inject({
      method: 'POST',
      url: `/job${query}`,
      payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
      headers,
    });

  it('GET /status says idle with id, version, slots and live resources', async () => {
    const res = await t.node.http.inject({ method: 'GET', url: '/status' });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({
      status: 'idle',
      nodeId: t.node.id,
      version: expect.any(String),
      slots: { total: 2, used: 0, free: 2 },
      limits: { cpus: 1, memory: '512m', timeout: '5m', gpus: 0, networks: ['none'] },
    });
    expect(body.resources.cpus).toBeGreaterThan(0);
    expect(body.resources.memoryTotalBytes).toBeGreaterThan(body.resources.memoryFreeBytes);
    expect(body.resources.gpus).toEqual([]);
  });

  it('POST /job answers when the job ends, like the original', async () => {
    const res = await post({ image: 'alpine:latest', command: 'echo hello' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      status: 'completed',
      exitCode: 0,
      stdout: 'ran\n',
      stderr: '',
      command: ['echo', 'hello'],
      executedBy: t.node.id,
      durationMs: expect.any(Number),
    });
  });

  it('POST /job?wait=false answers 202 with the id at once', async () => {
    const res = await post({ image: 'alpine', command: ['true'] }, '?wait=false');
    expect(res.statusCode).toBe(202);
    const { id, status } = res.json();
    expect(status).toBe('pending');
    const done = await t.client.get(id);
    expect(['pending', 'scheduled', 'running', 'completed']).toContain(done.status);
  });

  it('refuses a curl -d body sent without a JSON content type (a web page can send those), saying which to send', async () => {
    const res = await post('{"image":"alpine","command":"true"}', '', {
      'content-type': 'application/x-www-form-urlencoded',
    });
    expect(res.statusCode).toBe(415);
    expect(res.json().error).toContain('Content-Type: application/json');
  });

  it.each([
    ['{"image": "alpine", ', 400, 'body is not valid JSON'],
    ['', 400, 'body is empty'],
    [{ command: 'x' }, 400, 'image: is required'],
    [{ image: 'alpine', command: '' }, 400, 'command: must not be empty'],
    [{ image: 'alpine', command: 5 }, 400, 'command: must be a string or an array'],
    [{ image: 'alpine', command: 'x', resources: { memory: '64g' } }, 400, 'resources.memory: 64g is more than this node allows'],
    [{ image: 'alpine', command: 'x', timeout: -5 }, 400, 'timeout: must be a duration'],
    [[1, 2], 400, 'body: must be a JSON object'],
  ])('refuses %j with %d naming the field', async (payload, status, message) => {
    const res = await post(payload);
    expect(res.statusCode).toBe(status);
    expect(res.json().error).toContain(message);
    expect(res.json().code).toMatch(/INVALID_INPUT|LIMIT_EXCEEDED/);
  });

  it('refuses a body over the limit with 413', async () => {
    const res = await post({ image: 'alpine', command: 'echo', env: { BIG: 'x'.repeat(10_000) } });
    expect(res.statusCode).toBe(413);
    expect(res.json().error).toContain('request body is larger than this node accepts (4k)');
  });

  it('refuses a wrong query type', async () => {
    const res = await post({ image: 'alpine', command: 'x' }, '?wait=maybe');
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toContain('querystring.wait');
  });

  it('answers 404 for unknown jobs and routes', async () => {
    for (const [method, url] of [
      ['GET', '/jobs/nope'],
      ['GET', '/jobs/nope/logs'],
      ['DELETE', '/jobs/nope'],
      ['GET', '/nothing-here'],
    ] as const) {
      const res = await t.node.http.inject({ method, url });
      expect(res.statusCode, `${method} ${url}`).toBe(404);
      expect(res.json().error).toMatch(/no job with id nope|no route/);
    }
  });

  it('lists jobs newest first, filters by status and pages', async () => {
    for (let i = 0; i < 3; i++) await post({ image: 'alpine', command: `echo ${i}` });
    const res = await t.node.http.inject({ method: 'GET', url: '/jobs?limit=2&status=completed' });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.jobs).toHaveLength(2);
    expect(body.jobs[0].command).toEqual(['echo', '2']);
    expect(body.jobs[0].stdout).toBeUndefined();
    expect(body.nextCursor).toMatch(/^\d+$/);
    const bad = await t.node.http.inject({ method: 'GET', url: '/jobs?status=exploded' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toContain('querystring.status');
  });

  it('GET /jobs/:id shows the job with its executions; logs as JSON', async () => {
    const job = (await post({ image: 'alpine', command: 'echo x' })).json();
    const res = await t.node.http.inject({ method: 'GET', url: `/jobs/${job.id}` });
    expect(res.json().executions).toEqual([
      expect.objectContaining({ attempt: 1, status: 'completed', nodeId: t.node.id }),
    ]);
    const logs = await t.node.http.inject({ method: 'GET', url: `/jobs/${job.id}/logs` });
    expect(logs.json()).toMatchObject({ id: job.id, status: 'completed', stdout: 'ran\n', stderr: '' });
  });

  it('DELETE cancels a queued job; cancelling a finished one is a 409', async () => {
    // Fill both slots with slow work so the third waits.
    const slow = new NoopExecutor({ delayMs: 10_000 });
    const s = await startTestNode({ executor: slow, flags: { slots: 1 } });
    try {
      const running = await s.client.submit({ image: 'alpine', command: 'a' }, { wait: false });
      const queued = await s.client.submit({ image: 'alpine', command: 'b' }, { wait: false });
      const cancelled = await s.client.cancel(queued.id);
      expect(cancelled.status).toBe('cancelled');
      expect(cancelled.reason).toBe('cancelled');
      await s.client.cancel(running.id);
      const stopped = await s.client.get(running.id);
      expect(stopped.status).toBe('cancelled');
    } finally {
      await s.stop();
    }
    const done = (await post({ image: 'alpine', command: 'x' })).json();
    const res = await t.node.http.inject({ method: 'DELETE', url: `/jobs/${done.id}` });
    expect(res.statusCode).toBe(409);
    expect(res.json().error).toContain('already ended as completed');
  });

  it('follows logs as NDJSON ending with the job', async () => {
    const job = (await post({ image: 'alpine', command: 'x' }, '?wait=false')).json();
    const lines: unknown[] = [];
    const end = await t.client.follow(job.id, (e) => lines.push(e));
    expect(end.status).toBe('completed');
    expect(lines).toContainEqual({ stream: 'stdout', data: 'ran\n' });
    expect(lines.at(-1)).toMatchObject({ event: 'end', status: 'completed', id: job.id });
  });
});
