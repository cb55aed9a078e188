/**
 * Hostile user: a web page open in the operator's browser, against a loopback node.
 * CSRF (a form or text/plain POST needs no preflight), DNS rebinding (the page's own name
 * re-pointed at 127.0.0.1: its Host header gives it away), cross-site WebSockets.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { NoopExecutor } from '../../src/executor/noop/noop-executor.js';
import { startTestNode, type TestNode } from '../helpers/node.js';

let t: TestNode;
const body = JSON.stringify({ image: 'alpine:latest', command: 'echo pwned' });

beforeAll(async () => {
  t = await startTestNode({ executor: new NoopExecutor(), env: { GRIDX_CORS_ORIGINS: 'https://dash.example.org' } });
});
afterAll(() => t.stop());

async function jobCount(): Promise<number> {
  return (await t.client.list()).jobs.length;
}

describe('a web page cannot use the node', () => {
  it('refuses text/plain and form bodies (simple requests a page sends without asking) with 415, running nothing', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      const res = await fetch(`${t.url}/job`, { method: 'POST', headers: { 'content-type': type }, body });
      expect(res.status, type).toBe(415);
      expect(((await res.json()) as { error: string }).error).toContain('application/json');
    }
    expect(await jobCount()).toBe(0);
  });

  it('refuses a foreign Origin on writes and reads (403), and runs nothing', async () => {
    const evil = { origin: 'https://evil.example', 'content-type': 'application/json' };
    const post = await t.node.http.inject({ method: 'POST', url: '/job', headers: evil, payload: body });
    expect(post.statusCode).toBe(403);
    expect(post.json().error).toContain('api.cors_origins');
    const task = await t.node.http.inject({ method: 'POST', url: '/api/tasks', headers: evil, payload: { title: 't', config: { command: ['true'] }, environment: { config: { image: 'x' } } } });
    expect(task.statusCode).toBe(403);
    expect((await t.node.http.inject({ method: 'GET', url: '/jobs', headers: { origin: 'null' } })).statusCode).toBe(403);
    expect(await jobCount()).toBe(0);
  });

  it('answers its own origin and a listed one (with CORS headers and a preflight)', async () => {
    const own = await t.node.http.inject({ method: 'GET', url: '/status', headers: { host: 'localhost:8000', origin: 'http://localhost:8000' } });
    expect(own.statusCode).toBe(200);
    const preflight = await t.node.http.inject({ method: 'OPTIONS', url: '/job', headers: { origin: 'https://dash.example.org', 'access-control-request-method': 'POST' } });
    expect(preflight.statusCode).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe('https://dash.example.org');
    const listed = await t.node.http.inject({ method: 'GET', url: '/status', headers: { origin: 'https://dash.example.org' } });
    expect(listed.statusCode).toBe(200);
    expect(listed.headers['access-control-allow-origin']).toBe('https://dash.example.org');
  });

  it('refuses a Host that is not its own (DNS rebinding), even for reads', async () => {
    for (const host of ['evil.example', 'evil.example:8000', '127.0.0.1.nip.io', 'localhost.evil.example']) {
      const res = await t.node.http.inject({ method: 'GET', url: '/status', headers: { host } });
      expect(res.statusCode, host).toBe(403);
      expect(res.json().error).toContain('api.allowed_hosts');
    }
    for (const host of ['127.0.0.1:8000', 'localhost', '[::1]:8000']) {
      expect((await t.node.http.inject({ method: 'GET', url: '/status', headers: { host } })).statusCode, host).toBe(200);
    }
  });

  it('refuses a cross-site WebSocket upgrade and a rebound one', async () => {
    const statusOf = (headers: Record<string, string>) =>
      new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(`${t.url.replace('http', 'ws')}/api/events`, { headers });
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.on('open', () => {
          ws.close();
          resolve(101);
        });
        ws.on('error', reject);
      });
    expect(await statusOf({ origin: 'https://evil.example' })).toBe(403);
    expect(await statusOf({ host: 'evil.example' })).toBe(403);
    expect(await statusOf({})).toBe(101);
  });
});
