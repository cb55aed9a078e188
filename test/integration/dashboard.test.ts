/**
 * How a node serves the dashboard (the built dist/web): headers, caching, compression, and
 * the two things a browser needs of the API that other clients do not: a WebSocket that
 * takes the key as a subprotocol, and a stream that starts at the newest event.
 */

import fs from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { DASHBOARD_CSP, dashboardRoutes, loadDashboard, pickEncoding } from '../../src/api/dashboard.js';
import Fastify from 'fastify';
import { isGridxError } from '../../src/errors.js';
import { NoopExecutor } from '../../src/executor/noop/noop-executor.js';
import { fundedAccount, startTestNode, tempDir, type TestNode } from '../helpers/node.js';

let t: TestNode;
beforeAll(async () => {
  t = await startTestNode({ executor: new NoopExecutor({ delayMs: 20 }) });
});
afterAll(() => t.stop());

describe('the dashboard as served', () => {
  it('serves the page uncached under a strict CSP, and its hashed files cached for good, compressed', async () => {
    const page = await fetch(`${t.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('cache-control')).toBe('no-cache');
    expect(page.headers.get('content-security-policy')).toBe(DASHBOARD_CSP);
    expect(DASHBOARD_CSP).toContain("script-src 'self'");
    expect(DASHBOARD_CSP).toContain("frame-ancestors 'none'");
    expect(DASHBOARD_CSP).not.toMatch(/unsafe|https?:|\*/);
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    const html = await page.text();
    const script = /src="(\/assets\/app-[A-Z0-9]+\.js)"/.exec(html)?.[1];
    const style = /href="(\/assets\/app-[A-Z0-9]+\.css)"/.exec(html)?.[1];
    expect(script && style).toBeTruthy();

    const js = await t.node.http.inject({ method: 'GET', url: script!, headers: { 'accept-encoding': 'gzip, br' } });
    expect(js.statusCode).toBe(200);
    expect(js.headers['content-encoding']).toBe('br');
    expect(js.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(js.headers['x-content-type-options']).toBe('nosniff');
    expect(js.rawPayload.length).toBeLessThan(300 * 1024);
    const again = await t.node.http.inject({ method: 'GET', url: script!, headers: { 'accept-encoding': 'br', 'if-none-match': `"old", W/${js.headers.etag}` } });
    expect(again.statusCode).toBe(304);
    // Each encoding is its own representation, with its own validator.
    const gzipped = await t.node.http.inject({ method: 'GET', url: script!, headers: { 'accept-encoding': 'gzip', 'if-none-match': String(js.headers.etag) } });
    expect(gzipped.statusCode).toBe(200);
    expect(gzipped.headers.etag).not.toBe(js.headers.etag);
    const plain = await t.node.http.inject({ method: 'GET', url: style! });
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.body).toContain('--accent');

    const missing = await fetch(`${t.url}/assets/app-OLD.js`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: string }).error).toContain('reload the page');
    // The API is where it was.
    expect((await fetch(`${t.url}/status`)).status).toBe(200);
  });

  it('says how to build it where it was not built, and the API still works', async () => {
    const app = Fastify();
    // The app's own handler renders a GridxError as its status and message (src/api/app.ts).
    app.setErrorHandler((err, _request, reply) => reply.code(isGridxError(err) ? err.httpStatus : 500).send({ error: (err as Error).message }));
    app.register(dashboardRoutes(loadDashboard(tempDir())));
    const res = await app.inject({ method: 'GET', url: '/' });
    expect(res.statusCode).toBe(503);
    expect(res.json().error).toContain('npm run build');
    await app.close();
  });

  it('reads the build with a .gz and .br beside every file, and compresses what has none', () => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, 'assets'));
    for (const [file, body] of [['index.html', '<!doctype html>'], ['assets/app-X.js', 'x'], ['assets/notes.txt', 'skipped']]) {
      fs.writeFileSync(path.join(dir, file!), body!);
      fs.writeFileSync(path.join(dir, `${file}.gz`), 'gz');
      fs.writeFileSync(path.join(dir, `${file}.br`), 'br');
    }
    fs.writeFileSync(path.join(dir, 'assets/bare.css'), 'a{}');
    const assets = loadDashboard(dir);
    expect([...assets.keys()].sort()).toEqual(['/', '/assets/app-X.js', '/assets/bare.css']);
    expect(gunzipSync(assets.get('/assets/bare.css')!.gzip).toString()).toBe('a{}');
  });

  it('picks the encoding the browser accepts, q=0 meaning no', () => {
    expect(pickEncoding('gzip, deflate, br, zstd')).toBe('br');
    expect(pickEncoding('gzip, br;q=0')).toBe('gzip');
    expect(pickEncoding('br;q=0.0, gzip;q=0')).toBe('identity');
    expect(pickEncoding(undefined)).toBe('identity');
  });
});

/** Opens a WebSocket and waits for the first message, the refusal or `ms`. */
function openStream(url: string, protocols: string[]): Promise<{ protocol?: string; status?: number; first?: Record<string, unknown>; ws?: WebSocket }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, protocols);
    ws.once('unexpected-response', (_req, res) => resolve({ status: res.statusCode }));
    ws.once('message', (raw) => resolve({ protocol: ws.protocol, first: JSON.parse(String(raw)) as Record<string, unknown>, ws }));
    ws.once('error', () => resolve({}));
  });
}

describe('the update stream, as a browser opens it', () => {
  it('takes the key as a subprotocol, answers with "gridx" (never the key), and keeps other accounts out', async () => {
    const owner = await fundedAccount(t);
    const other = await fundedAccount(t);
    const job = await owner.client.submit({ image: 'alpine', command: ['true'] });
    const url = `${t.url.replace('http', 'ws')}/api/tasks/${job.id}/events?since=0`;

    const own = await openStream(url, ['gridx', `gridx.bearer.${owner.key}`]);
    expect(own.protocol).toBe('gridx');
    expect(own.first).toMatchObject({ task_id: job.id });
    own.ws!.close();

    expect((await openStream(url, ['gridx', `gridx.bearer.${other.key}`])).status).toBe(403);
    expect((await openStream(url, ['gridx'])).status).toBe(401);
    expect((await openStream(url, ['gridx', 'gridx.bearer.gx_not-a-key-anybody-has'])).status).toBe(401);
    // Only the key offered alone: the node still does not send it back.
    const alone = await openStream(url, [`gridx.bearer.${owner.key}`]);
    expect(alone.status).toBeUndefined();
    expect(alone.protocol ?? '').not.toContain(owner.key);
    alone.ws?.close();
  });

  it('reads the subprotocol key on a WebSocket upgrade only, never on a plain request', async () => {
    const owner = await fundedAccount(t);
    const plain = await t.node.http.inject({
      method: 'GET',
      url: '/api/accounts/me',
      headers: { upgrade: 'x', 'sec-websocket-protocol': `gridx, gridx.bearer.${owner.key}` },
    });
    expect(plain.statusCode).toBe(401);
    const empty = await openStream(`${t.url.replace('http', 'ws')}/api/events`, ['gridx', 'gridx.bearer.']);
    expect(empty.status).toBe(401);
  });

  it('with ?live=true, starts at the newest event: no history, then what happens next', async () => {
    const before = await t.client.submit({ image: 'alpine', command: ['echo', 'old'] });
    const ws = new WebSocket(`${t.url.replace('http', 'ws')}/api/events?live=true`);
    const seen: Array<{ task_id: string }> = [];
    ws.on('message', (raw) => seen.push(JSON.parse(String(raw)) as { task_id: string }));
    await new Promise((resolve) => ws.once('open', resolve));
    const after = await t.client.submit({ image: 'alpine', command: ['echo', 'new'] });
    await expect.poll(() => seen.some((e) => e.task_id === after.id), { timeout: 10_000 }).toBe(true);
    expect(seen.some((e) => e.task_id === before.id)).toBe(false);
    ws.close();
  });
});
