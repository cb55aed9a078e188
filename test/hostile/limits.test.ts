/**
 * Hostile user: one caller trying to take the whole node. Queue caps (per account, for
 * anonymous callers, node-wide), request rate, open streams; and output that is stored once,
 * so a flood of output costs the disk once, and replays still lose nothing.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { LOCAL_IMAGE } from '../../src/executor/docker/engine.js';
import { NoopExecutor } from '../../src/executor/noop/noop-executor.js';
import { fundedAccount, startTestNode, type TestNode } from '../helpers/node.js';

const nodes: TestNode[] = [];
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()));
});

async function node(env: Record<string, string>, options: { docker?: boolean; slots?: number } = {}): Promise<TestNode> {
  const t = await startTestNode({ flags: { slots: options.slots ?? 0 }, env, ...(options.docker ? {} : { executor: new NoopExecutor() }) });
  nodes.push(t);
  return t;
}

const JOB = { image: 'alpine:latest', command: 'true' };

async function post(t: TestNode, payload: object, key?: string) {
  return t.node.http.inject({
    method: 'POST',
    url: '/job?wait=false',
    headers: key ? { authorization: `Bearer ${key}` } : {},
    payload,
  });
}

describe('limits per caller', () => {
  it('caps waiting jobs per account, for anonymous callers together, and node-wide: 429 with Retry-After naming the limit', async () => {
    const t = await node({ GRIDX_ACCOUNT_QUEUED: '3', GRIDX_ANONYMOUS_QUEUED: '2', GRIDX_MAX_QUEUED: '6' });
    for (let i = 0; i < 2; i++) expect((await post(t, JOB)).statusCode).toBe(202);
    const anon = await post(t, JOB);
    expect(anon.statusCode).toBe(429);
    expect(anon.headers['retry-after']).toBeDefined();
    expect(anon.json()).toMatchObject({ code: 'RATE_LIMITED' });
    expect(anon.json().error).toContain('anonymous');

    const a = await fundedAccount(t, '0', { name: 'a' });
    for (let i = 0; i < 3; i++) expect((await post(t, JOB, a.key)).statusCode).toBe(202);
    const over = await post(t, JOB, a.key);
    expect(over.statusCode).toBe(429);
    expect(over.json().error).toContain(`account ${a.id}`);
    // Replicas count one each: three more would pass the cap.
    const b = await fundedAccount(t, '0', { name: 'b' });
    expect((await post(t, { ...JOB, verification: { replicas: 3 } }, b.key)).statusCode).toBe(429);

    expect((await post(t, JOB, b.key)).statusCode).toBe(202);
    const full = await post(t, JOB, b.key);
    expect(full.statusCode).toBe(429);
    expect(full.json().error).toContain('scheduler.max_queued');
    // The Parity door applies the same limits.
    const task = await t.node.http.inject({
      method: 'POST',
      url: '/api/tasks',
      headers: { authorization: `Bearer ${b.key}` },
      payload: { title: 't', config: { command: ['true'] }, environment: { config: { image: 'alpine:latest' } } },
    });
    expect(task.statusCode).toBe(429);

    // Room again once a job leaves the queue.
    const waiting = (await a.client.list()).jobs.find((j) => j.status === 'pending')!;
    await a.client.cancel(waiting.id);
    expect((await post(t, JOB, a.key)).statusCode).toBe(202);
  });

  it('limits the request rate per caller: 429 with Retry-After, other callers unaffected', async () => {
    const t = await node({ GRIDX_RATE_LIMIT: '20' });
    const codes: number[] = [];
    for (let i = 0; i < 25; i++) codes.push((await fetch(`${t.url}/status`)).status);
    expect(codes.slice(0, 20).every((c) => c === 200)).toBe(true);
    const res = await fetch(`${t.url}/status`);
    expect(res.status).toBe(429);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await res.json()) as { error: string }).error).toContain('a minute');
    const other = await fundedAccount(t, '0', { name: 'other' });
    expect((await fetch(`${t.url}/status`, { headers: { authorization: `Bearer ${other.key}` } })).status).toBe(200);
    // A made-up key counts against the address, which is spent.
    expect((await fetch(`${t.url}/status`, { headers: { authorization: 'Bearer made-up-key-123' } })).status).toBe(429);
    // Another spelling of the same key is the same caller.
    for (let i = 0; i < 19; i++) await fetch(`${t.url}/status`, { headers: { authorization: `bearer   ${other.key}` } });
    expect((await fetch(`${t.url}/status`, { headers: { authorization: `BEARER ${other.key}` } })).status).toBe(429);
    // And so is the key offered as a WebSocket subprotocol (a browser's way), from anywhere.
    const upgrade = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`${t.url.replace('http', 'ws')}/api/events`, ['gridx', `gridx.bearer.${other.key}`], { localAddress: '127.0.0.9' });
      ws.once('unexpected-response', (_req, r) => resolve(r.statusCode ?? 0));
      ws.once('open', () => (ws.close(), resolve(101)));
    });
    expect(upgrade).toBe(429);
  });

  it('caps open event streams per caller', async () => {
    const t = await node({ GRIDX_EVENT_STREAMS: '2' });
    const open = (headers: Record<string, string> = {}) =>
      new Promise<{ status: number; ws: WebSocket }>((resolve, reject) => {
        const ws = new WebSocket(`${t.url.replace('http', 'ws')}/api/events`, { headers });
        ws.on('unexpected-response', (_req, res) => resolve({ status: res.statusCode ?? 0, ws }));
        ws.on('open', () => resolve({ status: 101, ws }));
        ws.on('error', reject);
      });
    // Plain GETs of the stream routes (an <img> on a web page can send those) hold no slot.
    for (let i = 0; i < 5; i++) expect((await fetch(`${t.url}/api/events`)).status).toBe(404);
    const first = await open();
    const second = await open();
    expect([first.status, second.status]).toEqual([101, 101]);
    expect((await open()).status).toBe(429);
    // Another account has streams of its own.
    const other = await fundedAccount(t, '0', { name: 'other' });
    const theirs = await open({ authorization: `Bearer ${other.key}` });
    expect(theirs.status).toBe(101);
    first.ws.close();
    await new Promise((r) => first.ws.once('close', r));
    await expect.poll(async () => (await open()).status, { timeout: 5000 }).toBe(101);
    for (const ws of [second.ws, theirs.ws]) ws.close();
  });
});

describe('output is stored once', () => {
  it('a finished job keeps its output on the job only; a replay from any point still gets every byte', async () => {
    const t = await node({}, { docker: true, slots: 1 });
    const job = await t.client.submit({ image: LOCAL_IMAGE, command: ['sh', '-c', 'echo one; sleep 0.5; echo two >&2; sleep 0.5; printf "thr\\303\\251e\\n"'] });
    expect(job).toMatchObject({ status: 'completed', stdout: 'one\nthrée\n', stderr: 'two\n' });

    const db = new Database(path.join(t.dataDir, 'gridx.db'), { readonly: true });
    const rows = db.prepare(`SELECT seq, data FROM events WHERE job_id = ? AND type = 'output' ORDER BY seq`).all(job.id) as Array<{ seq: number; data: string }>;
    db.close();
    expect(rows.length).toBeGreaterThanOrEqual(3);
    for (const row of rows) expect(JSON.parse(row.data)).not.toHaveProperty('data');

    const replay = async (since: number) => {
      const ws = new WebSocket(`${t.url.replace('http', 'ws')}/api/tasks/${job.id}/events?since=${since}`);
      const out: string[] = [];
      await new Promise<void>((resolve, reject) => {
        ws.on('message', (raw) => {
          const e = JSON.parse(String(raw)) as { type: string; stream?: string; data?: string };
          if (e.type === 'output') out.push(`${e.stream}:${e.data}`);
          if (e.type === 'result') resolve();
        });
        ws.on('error', reject);
      });
      ws.close();
      return out.join('');
    };
    expect(await replay(0)).toBe('stdout:one\nstderr:two\nstdout:thrée\n');
    // From just after the first chunk: the rest, exactly.
    expect(await replay(rows[0]!.seq)).toBe('stderr:two\nstdout:thrée\n');
  });
});
