import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { normalizeReward, normalizeTask } from '../../src/domain/task.js';
import { GridxError } from '../../src/errors.js';
import { NoopExecutor } from '../../src/executor/noop/noop-executor.js';
import { POLICY } from '../helpers/fixtures.js';
import { fundedAccount, startTestNode, type TestNode } from '../helpers/node.js';

/** The shape of the seed's curl example for Parity (title, type, config.command, environment, reward). */
const SEED_TASK = {
  title: 'Hello World Task',
  description: 'A simple hello world task',
  type: 'docker',
  config: { command: ['echo', 'Hello from Parity!'] },
  environment: {
    type: 'docker',
    config: { image: 'alpine:latest', workdir: '/app', env: ['KEY=value'] },
  },
  reward: 100,
};

function errorOf(fn: () => unknown): GridxError {
  try {
    fn();
  } catch (err) {
    if (err instanceof GridxError) return err;
    throw err;
  }
  throw new Error('expected an error');
}

describe('normalizeTask', () => {
  it("maps Parity's task body onto the job spec", () => {
    const task = normalizeTask(SEED_TASK, POLICY);
    expect(task).toMatchObject({ title: 'Hello World Task', description: 'A simple hello world task', reward: '100' });
    expect(task.spec).toMatchObject({
      image: 'alpine:latest',
      command: ['echo', 'Hello from Parity!'],
      workdir: '/app',
      env: { KEY: 'value' },
      resources: { cpus: 1, memoryBytes: 512 * 2 ** 20, gpus: 0 },
    });
  });

  it('reads config.resources {memory, cpu, timeout}', () => {
    const task = normalizeTask({ ...SEED_TASK, config: { ...SEED_TASK.config, resources: { memory: '128m', cpu: 0.5, timeout: 30 } } }, POLICY);
    expect(task.spec.resources).toEqual({ cpus: 0.5, memoryBytes: 128 * 2 ** 20, gpus: 0 });
    expect(task.spec.timeoutMs).toBe(30_000);
  });

  it.each([
    [{ ...SEED_TASK, title: undefined }, 'title: is required'],
    [{ ...SEED_TASK, type: 'wasm' }, 'type: must be "docker"'],
    [{ ...SEED_TASK, config: undefined }, 'config: is required'],
    [{ ...SEED_TASK, config: { command: [] } }, 'config.command: must not be empty'],
    [{ ...SEED_TASK, config: { command: 'echo', resources: { memory: 'lots' } } }, 'config.resources.memory: must be a size'],
    [{ ...SEED_TASK, config: { command: ['x'], resources: { disk: 1 } } }, 'config.resources.disk: is not known'],
    [{ ...SEED_TASK, config: { command: ['x'], resources: { timeout: 'never' } } }, 'config.resources.timeout: must be a duration'],
    [{ ...SEED_TASK, environment: { type: 'docker', config: { image: '' } } }, 'environment.config.image: must not be empty'],
    [{ ...SEED_TASK, environment: { type: 'docker', config: { image: 'a', env: ['NOPE'] } } }, 'environment.config.env[0]'],
    [{ ...SEED_TASK, environment: { type: 'docker' } }, 'environment.config: is required'],
    [{ ...SEED_TASK, reward: -1 }, 'reward: must not be negative'],
    [{ ...SEED_TASK, reward: '1.0000000000000000001' }, 'reward: has more than 18 decimals'],
    [{ ...SEED_TASK, reward: 1e30 }, 'reward: is too large to send as a JSON number'],
    [{ ...SEED_TASK, reward: { amount: 1 } }, 'reward: must be a number or a decimal string'],
  ])('refuses %j naming the Parity field', (body, message) => {
    expect(errorOf(() => normalizeTask(body, POLICY)).message).toContain(message);
  });

  it('keeps rewards exact', () => {
    expect(normalizeReward('000123.4500')).toBe('123.45');
    expect(normalizeReward(0.1)).toBe('0.1');
    expect(normalizeReward('0')).toBe('0');
    expect(normalizeReward('123456789012345678901234567890.123456789012345678')).toBe(
      '123456789012345678901234567890.123456789012345678',
    );
  });
});

describe('/api/tasks (no-op executor)', () => {
  let t: TestNode;
  let auth: { authorization: string };
  beforeAll(async () => {
    t = await startTestNode({ executor: new NoopExecutor({ output: 'ran\n' }) });
    auth = { authorization: `Bearer ${(await fundedAccount(t, '100000')).key}` };
  });
  afterAll(async () => {
    await t.stop();
  });

  it('accepts the seed curl body, answers 201 with the task, and shows it under /jobs too', async () => {
    const res = await t.node.http.inject({ method: 'POST', url: '/api/tasks', payload: SEED_TASK, headers: auth });
    expect(res.statusCode).toBe(201);
    const task = res.json();
    expect(task).toMatchObject({
      id: expect.any(String),
      title: 'Hello World Task',
      type: 'docker',
      status: 'pending',
      reward: '100',
      config: { command: ['echo', 'Hello from Parity!'] },
      environment: { type: 'docker', config: { image: 'alpine:latest', workdir: '/app', env: ['KEY=value'] } },
    });
    const job = await t.client.submit({ image: 'a', command: 'x' }); // let the queue move
    expect(job.status).toBe('completed');
    const same = (await t.node.http.inject({ method: 'GET', url: `/jobs/${task.id}`, headers: auth })).json();
    expect(same).toMatchObject({ title: 'Hello World Task', reward: '100', status: 'completed' });
    // Anybody else sees that it exists and how it stands, nothing more.
    expect(await t.client.get(task.id)).toEqual({ id: task.id, status: 'completed' });
    const got = (await t.node.http.inject({ method: 'GET', url: `/api/tasks/${task.id}`, headers: auth })).json();
    expect(got).toMatchObject({ status: 'completed', result: { exit_code: 0, stdout: 'ran\n' } });
    const logs = (await t.node.http.inject({ method: 'GET', url: `/api/tasks/${task.id}/logs`, headers: auth })).json();
    expect(logs).toMatchObject({ task_id: task.id, stdout: 'ran\n', stderr: '' });
  });

  it('lists tasks by status with pagination', async () => {
    for (let i = 0; i < 3; i++) await t.node.http.inject({ method: 'POST', url: '/api/tasks', payload: { ...SEED_TASK, title: `t${i}` }, headers: auth });
    const res = await t.node.http.inject({ method: 'GET', url: '/api/tasks?limit=2', headers: auth });
    expect(res.statusCode).toBe(200);
    const page = res.json();
    expect(page.tasks).toHaveLength(2);
    expect(page.tasks[0].title).toBe('t2');
    expect(page.next_cursor).toMatch(/^\d+$/);
    const next = (await t.node.http.inject({ method: 'GET', url: `/api/tasks?limit=2&cursor=${page.next_cursor}`, headers: auth })).json();
    expect(next.tasks[0].title).toBe('t0');
    const bad = await t.node.http.inject({ method: 'GET', url: '/api/tasks?status=done' });
    expect(bad.statusCode).toBe(400);
  });

  it('answers 400 naming the field, and 404 for unknown tasks', async () => {
    const res = await t.node.http.inject({ method: 'POST', url: '/api/tasks', payload: { ...SEED_TASK, config: { command: 7 } } });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toContain('config.command: must be a string or an array');
    for (const [method, url] of [
      ['GET', '/api/tasks/nope'],
      ['GET', '/api/tasks/nope/logs'],
      ['POST', '/api/tasks/nope/cancel'],
    ] as const) {
      const r = await t.node.http.inject({ method, url });
      expect(r.statusCode, url).toBe(404);
      expect(r.json().error).toContain('no task with id nope');
    }
  });

  it('cancels a queued task', async () => {
    const slow = await startTestNode({ executor: new NoopExecutor({ delayMs: 10_000 }), flags: { slots: 1 } });
    try {
      const headers = { authorization: `Bearer ${(await fundedAccount(slow)).key}` };
      await slow.node.http.inject({ method: 'POST', url: '/api/tasks', payload: SEED_TASK, headers });
      const queued = (await slow.node.http.inject({ method: 'POST', url: '/api/tasks', payload: SEED_TASK, headers })).json();
      const res = await slow.node.http.inject({ method: 'POST', url: `/api/tasks/${queued.id}/cancel`, headers });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ status: 'cancelled', result: { reason: 'cancelled' } });
    } finally {
      await slow.stop();
    }
  });
});
