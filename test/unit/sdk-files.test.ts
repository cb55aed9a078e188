/**
 * The SDK's file transfers against a stub node on loopback (the edge): the node is not
 * trusted, so a manifest path that would leave the chosen directory, a wrong digest or a
 * lying root must stop the download and leave nothing behind.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { manifestRoot } from '../../src/domain/data.js';
import { isGridxError } from '../../src/errors.js';
import { GridxClient, type OutputsView, outputTarget } from '../../src/sdk/client.js';
import { checkManifest } from '../../src/sdk/files.js';

const sha = (bytes: Buffer | string) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

function manifestOf(files: Record<string, string>, root?: string): OutputsView {
  const list = Object.entries(files).map(([p, content]) => ({ path: p, size: Buffer.byteLength(content), sha256: sha(content) }));
  return { id: 'j1', status: 'completed', root: root ?? manifestRoot(list), bytes: list.reduce((n, f) => n + f.size, 0), exceeded: false, files: list };
}

describe('outputTarget: where a manifest path lands', () => {
  const dir = path.resolve('/tmp/out');

  it('keeps plain relative paths inside the directory, subdirectories included', () => {
    expect(outputTarget(dir, 'result.txt')).toBe(path.join(dir, 'result.txt'));
    expect(outputTarget(dir, 'a/b/c.bin')).toBe(path.join(dir, 'a', 'b', 'c.bin'));
    expect(outputTarget('relative/dir', 'x')).toBe(path.resolve('relative/dir', 'x'));
    expect(outputTarget(dir, '..data')).toBe(path.join(dir, '..data'));
  });

  it.each([
    '../escape',
    'a/../../escape',
    'a/../b',
    '/etc/passwd',
    '/tmp/out/x',
    '..',
    '.',
    '',
    'a//b',
    'a/./b',
    'a/',
    'nul\0byte',
  ])('refuses %j', (hostile) => {
    expect(() => outputTarget(dir, hostile)).toThrow(/would land outside/);
    try {
      outputTarget(dir, hostile);
    } catch (err) {
      expect(isGridxError(err, 'REMOTE_ERROR')).toBe(true);
    }
  });

  it('refuses a path that is not a string at all', () => {
    expect(() => outputTarget(dir, 42 as unknown as string)).toThrow(/would land outside/);
  });

  it('works when the directory is the filesystem root', () => {
    expect(outputTarget('/', 'x')).toBe(path.resolve('/', 'x'));
    expect(() => outputTarget('/', '../x')).toThrow(/would land outside/);
  });
});

describe('checkManifest', () => {
  it('refuses a root digest that is not the files\' own, duplicates and malformed entries', () => {
    expect(() => checkManifest(manifestOf({ a: '1' }, sha('other')), '/tmp/o')).toThrow(/does not match its root digest/);
    const twice = manifestOf({ a: '1' });
    twice.files.push({ ...twice.files[0]! });
    twice.root = manifestRoot(twice.files);
    expect(() => checkManifest(twice, '/tmp/o')).toThrow(/twice/);
    const bad = manifestOf({ a: '1' });
    bad.files[0]!.sha256 = 'md5:abc';
    expect(() => checkManifest(bad, '/tmp/o')).toThrow(/malformed digest or size/);
  });
});

/** A stub node: serves `manifest`, the files in `contents` by path, and stores POST /blobs. */
describe('GridxClient file transfers against a stub node', () => {
  let server: Server;
  let client: GridxClient;
  let manifest: OutputsView;
  let contents: Record<string, string>;
  let headerSha: Record<string, string>;
  const blobs = new Map<string, Buffer>();
  const requests: string[] = [];

  beforeAll(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      requests.push(`${req.method} ${req.url}`);
      const url = new URL(req.url ?? '/', 'http://stub');
      const json = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      if (req.method === 'POST' && url.pathname === '/blobs') {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const bytes = Buffer.concat(chunks);
          const digest = sha(bytes);
          const asked = url.searchParams.get('sha256');
          if (asked !== null && asked !== digest) return json(400, { error: `the body's digest is ${digest}, not ${asked}`, code: 'INVALID_INPUT' });
          blobs.set(digest, bytes);
          json(201, { digest, size: bytes.length });
        });
        return;
      }
      const blob = /^\/blobs\/(.+)$/.exec(url.pathname);
      if (blob) {
        const digest = decodeURIComponent(blob[1]!);
        const bytes = blobs.get(digest);
        if (!bytes) return json(404, { error: `no blob ${digest}`, code: 'NOT_FOUND' });
        return res.writeHead(200, { 'content-length': bytes.length, 'x-content-sha256': digest }).end(bytes);
      }
      for (const base of ['/jobs/j1/outputs', '/api/tasks/j1/outputs']) {
        if (url.pathname === base) return json(200, manifest);
        if (url.pathname.startsWith(`${base}/`)) {
          const file = url.pathname.slice(base.length + 1).split('/').map(decodeURIComponent).join('/');
          const content = contents[file];
          if (content === undefined) return json(404, { error: `no file ${file}`, code: 'NOT_FOUND' });
          return res.writeHead(200, { 'x-content-sha256': headerSha[file] ?? sha(content) }).end(content);
        }
      }
      json(404, { error: 'no such route', code: 'NOT_FOUND' });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    client = new GridxClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
  beforeEach(() => {
    contents = { 'a.txt': 'alpha\n', 'sub dir/b.bin': 'beta', 'sub dir/deeper/c': '' };
    manifest = manifestOf(contents);
    headerSha = {};
    requests.length = 0;
  });

  const tmp = () => mkdtempSync(path.join(tmpdir(), 'gridx-files-'));

  it('downloads every file into the directory, subdirectories created, and resolves with the manifest', async () => {
    const dir = path.join(tmp(), 'out');
    const seen: Array<[number, number | undefined]> = [];
    const got = await client.downloadOutputs('j1', dir, { onProgress: (done, total) => seen.push([done, total]) });
    expect(got).toEqual(manifest);
    expect(readFileSync(path.join(dir, 'a.txt'), 'utf8')).toBe('alpha\n');
    expect(readFileSync(path.join(dir, 'sub dir', 'b.bin'), 'utf8')).toBe('beta');
    expect(readFileSync(path.join(dir, 'sub dir', 'deeper', 'c'), 'utf8')).toBe('');
    expect(seen.at(-1)).toEqual([10, 10]);
    expect(requests).toContain('GET /jobs/j1/outputs/sub%20dir/b.bin');
  });

  it('uses the Parity door for a task', async () => {
    await client.downloadOutputs('j1', tmp(), { dialect: 'parity' });
    expect(requests[0]).toBe('GET /api/tasks/j1/outputs');
    expect(requests.every((r) => r.startsWith('GET /api/tasks/j1/'))).toBe(true);
  });

  it('refuses a manifest that escapes the directory before writing anything', async () => {
    const parent = tmp();
    const dir = path.join(parent, 'out');
    contents = { 'a.txt': 'fine', '../escaped': 'owned' };
    manifest = manifestOf(contents);
    await expect(client.downloadOutputs('j1', dir)).rejects.toThrow(/"\.\.\/escaped" that would land outside/);
    expect(readdirSync(parent)).toEqual([]);
    expect(requests).toEqual(['GET /jobs/j1/outputs']);
  });

  it('keeps nothing of a file whose bytes do not match the manifest', async () => {
    const dir = tmp();
    contents['a.txt'] = 'tampered';
    headerSha['a.txt'] = manifest.files.find((f) => f.path === 'a.txt')!.sha256;
    await expect(client.downloadOutputs('j1', dir)).rejects.toThrow(/arrived as sha256:\w+ \(8 bytes\), not the sha256:/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('refuses a file the node sends under another digest than its manifest', async () => {
    headerSha['a.txt'] = sha('something else');
    await expect(client.downloadOutputs('j1', tmp())).rejects.toThrow(/but its manifest says/);
  });

  it('downloadOutput alone checks against the digest the node sends with the file', async () => {
    const dest = path.join(tmp(), 'one', 'a.txt');
    expect(await client.downloadOutput('j1', 'a.txt', dest)).toEqual({ path: 'a.txt', size: 6, sha256: sha('alpha\n') });
    expect(readFileSync(dest, 'utf8')).toBe('alpha\n');
    headerSha['a.txt'] = sha('nope');
    await expect(client.downloadOutput('j1', 'a.txt', `${dest}2`)).rejects.toThrow(/nothing was kept/);
    expect(existsSync(`${dest}2`) || existsSync(`${dest}2.part`)).toBe(false);
    await expect(client.downloadOutput('j1', '../x', dest)).rejects.toThrow(/not a path inside a job's outputs/);
  });

  it('putBlob streams a file with ?sha256= and getBlob brings it back, checked', async () => {
    const dir = tmp();
    const file = path.join(dir, 'data.bin');
    const bytes = Buffer.alloc(3 * 1024 * 1024 + 17, 7);
    writeFileSync(file, bytes);
    const progress: number[] = [];
    const ref = await client.putBlob(file, { onProgress: (sent) => progress.push(sent) });
    expect(ref).toEqual({ digest: sha(bytes), size: bytes.length });
    expect(requests[0]).toBe(`POST /blobs?sha256=${encodeURIComponent(sha(bytes))}`);
    expect(progress.at(-1)).toBe(bytes.length);
    expect(progress.length).toBeGreaterThan(1);

    const back = path.join(dir, 'back.bin');
    expect(await client.getBlob(ref.digest, back)).toEqual(ref);
    expect(readFileSync(back).equals(bytes)).toBe(true);
  });

  it('putBlob takes bytes and streams too; an unreadable file or a bad digest is a clear error', async () => {
    expect(await client.putBlob(Buffer.from('hello'))).toEqual({ digest: sha('hello'), size: 5 });
    expect(await client.putBlob(Readable.from([Buffer.from('he'), 'llo!']))).toEqual({ digest: sha('hello!'), size: 6 });
    await expect(client.putBlob('/no/such/file')).rejects.toThrow(/cannot read "\/no\/such\/file": ENOENT/);
    await expect(client.getBlob('sha256:nothex', '/tmp/x')).rejects.toThrow(/is not a blob digest/);
    await expect(client.getBlob(sha('never uploaded'), path.join(tmp(), 'x'))).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});
