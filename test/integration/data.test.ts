/**
 * The data plane through a real node on a real Docker engine: blobs in, inputs placed
 * read-only, /outputs collected into a manifest whatever the job's end, downloads with
 * Range and as tar, the size cap, URL inputs, and who may see what.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_IMAGE } from '../../src/executor/docker/engine.js';
import type { JobRequestBody } from '../../src/sdk/client.js';
import { fundedAccount, startTestNode, tempDir, type TestNode } from '../helpers/node.js';

const image = LOCAL_IMAGE;
const sha = (b: string | Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('data plane (real Docker)', () => {
  let t: TestNode;
  let files: http.Server;
  let filesUrl: string;
  const served = new Map<string, Buffer>([['/data.csv', Buffer.from('a,b\n1,2\n')]]);

  beforeAll(async () => {
    // URL inputs come from this loopback server, so this node allows private addresses.
    t = await startTestNode({ flags: { slots: 2 }, env: { GRIDX_ALLOW_PRIVATE_URLS: 'true', GRIDX_OUTPUTS_SIZE: '128m' } });
    files = http.createServer((req, res) => {
      const body = served.get(req.url ?? '');
      if (!body) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-length': body.length }).end(body);
    });
    await new Promise<void>((resolve) => files.listen(0, '127.0.0.1', resolve));
    filesUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await t?.stop();
    await new Promise((resolve) => files?.close(resolve));
  });

  const sh = (script: string, extra: Omit<JobRequestBody, 'image' | 'command'> = {}) =>
    t.client.submit({ image, command: ['sh', '-c', script], ...extra });

  it('places an uploaded blob and inline content read-only under /inputs', async () => {
    const ref = await t.client.putBlob(Buffer.from('from a blob\n'));
    expect(ref).toEqual({ digest: sha('from a blob\n'), size: 12 });
    const job = await sh('cat /inputs/a.txt /inputs/dir/b.txt; echo x > /inputs/a.txt || echo read-only', {
      inputs: [
        { path: '/inputs/a.txt', digest: ref.digest },
        { path: '/inputs/dir/b.txt', content: b64('inline\n') },
      ],
    });
    expect(job).toMatchObject({ status: 'completed', stdout: 'from a blob\ninline\nread-only\n' });
  });

  it('fetches a URL input on the node, checked against its sha256', async () => {
    const body = served.get('/data.csv')!;
    const ok = await sh('cat /inputs/data.csv', { inputs: [{ path: '/inputs/data.csv', url: `${filesUrl}/data.csv`, sha256: sha(body) }] });
    expect(ok).toMatchObject({ status: 'completed', stdout: body.toString() });

    const wrong = await sh('cat /inputs/data.csv', { inputs: [{ path: '/inputs/data.csv', url: `${filesUrl}/data.csv`, sha256: sha('other') }] });
    expect(wrong).toMatchObject({ status: 'failed', reason: 'input_unavailable' });
    expect(wrong.message).toContain('/inputs/data.csv');
    expect(wrong.message).toContain('sha256');

    const missing = await sh('true', { inputs: [{ path: '/inputs/x', url: `${filesUrl}/nothing` }] });
    expect(missing).toMatchObject({ status: 'failed', reason: 'input_unavailable' });
    expect(missing.message).toContain('404');
  });

  it('fails a job whose input blob is not here, naming the input', async () => {
    const res = await fetch(`${t.url}/job`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ image, command: 'true', inputs: [{ path: '/inputs/gone', digest: sha('never uploaded') }] }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toContain('inputs[0]');
  });

  it('refuses input paths outside /inputs with a 400', async () => {
    for (const bad of ['inputs/a', '/inputs/../etc/passwd', '/etc/passwd', '/inputs/', '/inputs/a/./b']) {
      const res = await fetch(`${t.url}/job`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ image, command: 'true', inputs: [{ path: bad, content: b64('x') }] }),
      });
      expect(res.status, bad).toBe(400);
    }
  });

  it('collects /outputs into a manifest of digests, served whole, by range and as tar', async () => {
    const job = await sh('mkdir -p /outputs/sub && printf hello > /outputs/a.txt && printf 0123456789 > /outputs/sub/digits && ln -s /etc/passwd /outputs/link && mkfifo /outputs/fifo');
    expect(job.status).toBe('completed');
    expect(job.outputs).toMatchObject({ files: 2, bytes: 15, exceeded: false });

    const manifest = await t.client.outputs(job.id);
    expect(manifest.files).toEqual([
      { path: 'a.txt', size: 5, sha256: sha('hello') },
      { path: 'sub/digits', size: 10, sha256: sha('0123456789') },
    ]);
    expect(manifest.root).toBe(job.outputs!.root);

    const whole = await fetch(`${t.url}/jobs/${job.id}/outputs/sub/digits`);
    expect(whole.headers.get('x-content-sha256')).toBe(sha('0123456789'));
    expect(await whole.text()).toBe('0123456789');
    const part = await fetch(`${t.url}/jobs/${job.id}/outputs/sub/digits`, { headers: { range: 'bytes=2-4' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe('bytes 2-4/10');
    expect(await part.text()).toBe('234');
    const beyond = await fetch(`${t.url}/jobs/${job.id}/outputs/sub/digits`, { headers: { range: 'bytes=10-' } });
    expect(beyond.status).toBe(416);

    const tar = Buffer.from(await (await fetch(`${t.url}/api/tasks/${job.id}/outputs.tar`)).arrayBuffer());
    const dir = tempDir('gridx-tar-');
    fs.writeFileSync(path.join(dir, 'o.tar'), tar);
    execFileSync('tar', ['-xf', 'o.tar'], { cwd: dir });
    expect(fs.readFileSync(path.join(dir, 'sub/digits'), 'utf8')).toBe('0123456789');
    expect(fs.existsSync(path.join(dir, 'link'))).toBe(false);
    fs.rmSync(dir, { recursive: true, force: true });

    for (const escape of ['..%2F..%2Fetc%2Fpasswd', 'sub/..%2F..%2Fx', '%2Fetc%2Fpasswd', 'link']) {
      const res = await fetch(`${t.url}/jobs/${job.id}/outputs/${escape}`);
      expect([400, 404], escape).toContain(res.status);
    }
  });

  it('keeps the outputs of failed and timed-out jobs', async () => {
    const failed = await sh('echo partial > /outputs/log; exit 3');
    expect(failed).toMatchObject({ status: 'failed', reason: 'exit_code', outputs: { files: 1 } });
    const timedOut = await sh('echo before > /outputs/log; sleep 30', { timeout: 1 });
    expect(timedOut).toMatchObject({ status: 'timed_out', outputs: { files: 1 } });
    expect(await (await fetch(`${t.url}/jobs/${timedOut.id}/outputs/log`)).text()).toBe('before\n');
  });

  it('caps /outputs: a job that fills it fails with output_limit and keeps what fitted', async () => {
    const job = await sh('echo first > /outputs/small; dd if=/dev/zero of=/outputs/big bs=1M count=200 2>/dev/null; echo rc=$?');
    expect(job).toMatchObject({ status: 'failed', reason: 'output_limit' });
    const manifest = await t.client.outputs(job.id);
    expect(manifest.exceeded).toBe(true);
    expect(manifest.files.find((f) => f.path === 'small')).toMatchObject({ size: 6 });
    expect(manifest.bytes).toBeLessThanOrEqual(128 * 1024 * 1024);
  });

  it('returns a 100 MiB output intact, checked by the SDK against its digest', async () => {
    const job = await sh('dd if=/dev/urandom of=/outputs/big.bin bs=1M count=100 2>/dev/null; sha256sum /outputs/big.bin | cut -d" " -f1');
    expect(job.status).toBe('completed');
    const dir = tempDir('gridx-out-');
    const manifest = await t.client.downloadOutputs(job.id, dir);
    expect(manifest.files[0]).toMatchObject({ path: 'big.bin', size: 100 * 1024 * 1024, sha256: `sha256:${job.stdout!.trim()}` });
    expect(fs.statSync(path.join(dir, 'big.bin')).size).toBe(100 * 1024 * 1024);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('answers 409 while a job runs and 404 for a job that never ran', async () => {
    const res = await fetch(`${t.url}/job?wait=false`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ image, command: ['sleep', '5'] }),
    });
    const { id } = (await res.json()) as { id: string };
    expect((await fetch(`${t.url}/jobs/${id}/outputs`)).status).toBe(409);
    await fetch(`${t.url}/jobs/${id}/cancel`, { method: 'POST' });
  });

  it('streams a blob back with Range and HEAD; a wrong ?sha256 keeps nothing', async () => {
    const body = Buffer.from('0123456789abcdef');
    const ref = await t.client.putBlob(body);
    const head = await fetch(`${t.url}/blobs/${ref.digest}`, { method: 'HEAD' });
    expect(head.headers.get('content-length')).toBe('16');
    const part = await fetch(`${t.url}/blobs/${ref.digest}`, { headers: { range: 'bytes=-3' } });
    expect(await part.text()).toBe('def');

    const other = Buffer.from('not what the digest says');
    const bad = await fetch(`${t.url}/blobs?sha256=${sha('something else')}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: other,
    });
    expect(bad.status).toBe(400);
    expect((await fetch(`${t.url}/blobs/${sha(other)}`)).status).toBe(404);
    expect(fs.readdirSync(path.join(t.dataDir, 'blobs', 'tmp'))).toEqual([]);
  });

  it('keeps outputs across a restart of the node', async () => {
    const job = await sh('echo kept > /outputs/k');
    await t.stop();
    t = await startTestNode({ dataDir: t.dataDir, flags: { slots: 2 }, env: { GRIDX_ALLOW_PRIVATE_URLS: 'true', GRIDX_OUTPUTS_SIZE: '128m' } });
    expect(await (await fetch(`${t.url}/jobs/${job.id}/outputs/k`)).text()).toBe('kept\n');
  });
});

describe('data plane on a node that requires keys', () => {
  let t: TestNode;
  let files: http.Server;
  let port: number;
  beforeAll(async () => {
    t = await startTestNode({ flags: { slots: 2, auth: 'required' } });
    files = http.createServer((_req, res) => res.end('internal secret'));
    await new Promise<void>((resolve) => files.listen(0, '127.0.0.1', resolve));
    port = (files.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await t?.stop();
    await new Promise((resolve) => files?.close(resolve));
  });

  it('needs a key to upload, and shows a blob and a job\'s outputs to its owner only', async () => {
    const alice = await fundedAccount(t, '100', { name: 'alice' });
    const mallory = await fundedAccount(t, '100', { name: 'mallory' });
    const anonymous = await fetch(`${t.url}/blobs`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: 'x' });
    expect(anonymous.status).toBe(401);

    const ref = await alice.client.putBlob(Buffer.from('alice only'));
    const get = (key: string) => fetch(`${t.url}/blobs/${ref.digest}`, { headers: { authorization: `Bearer ${key}` } });
    expect((await get(alice.key)).status).toBe(200);
    expect((await get(mallory.key)).status).toBe(404);

    // Mallory cannot name Alice's blob as an input to read it.
    await expect(
      mallory.client.submit({ image, command: 'cat /inputs/x', inputs: [{ path: '/inputs/x', digest: ref.digest }] }),
    ).rejects.toMatchObject({ httpStatus: 400 });

    const job = await alice.client.submit({ image, command: ['sh', '-c', 'cat /inputs/x > /outputs/copy'], inputs: [{ path: '/inputs/x', digest: ref.digest }] });
    expect(job.status).toBe('completed');
    for (const url of [`/jobs/${job.id}/outputs`, `/jobs/${job.id}/outputs/copy`, `/jobs/${job.id}/outputs.tar`, `/api/tasks/${job.id}/outputs/copy`]) {
      expect((await fetch(`${t.url}${url}`, { headers: { authorization: `Bearer ${mallory.key}` } })).status, url).toBe(403);
      expect((await fetch(`${t.url}${url}`)).status, url).toBe(401);
    }
    expect(await (await fetch(`${t.url}/jobs/${job.id}/outputs/copy`, { headers: { authorization: `Bearer ${alice.key}` } })).text()).toBe('alice only');
  });

  it('refuses URL inputs that point at loopback or private addresses', async () => {
    const { client } = await fundedAccount(t, '100');
    for (const url of [`http://127.0.0.1:${port}/`, `http://localhost:${port}/`, `http://[::1]:${port}/`, 'http://169.254.169.254/latest/meta-data/']) {
      const job = await client.submit({ image, command: 'cat /inputs/x', inputs: [{ path: '/inputs/x', url }] });
      expect(job, url).toMatchObject({ status: 'failed', reason: 'input_unavailable' });
      expect(job.message, url).toContain('inputs.allow_private_urls');
    }
  });
});
