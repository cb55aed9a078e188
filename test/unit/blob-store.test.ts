import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/logger.js';
import { BlobStore, type BlobStoreOptions } from '../../src/storage/blob-store.js';

const tempDir = (prefix: string) => fs.mkdtempSync(path.join(os.tmpdir(), prefix));
const sha = (b: string | Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('blob store', () => {
  const stores: BlobStore[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.stop();
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });
  const open = async (options: Partial<BlobStoreOptions> = {}) => {
    const dataDir = options.dataDir ?? tempDir('gridx-blobs-');
    dirs.push(dataDir);
    const store = new BlobStore({ dataDir, maxBlobBytes: 1024, maxBytes: 1 << 20, pinned: async () => new Set(), log: silentLogger, ...options });
    await store.start();
    stores.push(store);
    return { store, dataDir, tmp: path.join(dataDir, 'blobs', 'tmp') };
  };

  it('streams bytes in under their digest, read-only, once; reads back whole and by range', async () => {
    const { store } = await open();
    const ref = await store.put(Readable.from([Buffer.from('hello '), Buffer.from('world')]));
    expect(ref).toEqual({ digest: sha('hello world'), size: 11 });
    expect(await store.put(Buffer.from('hello world'))).toEqual(ref);
    expect(fs.statSync(store.path(ref.digest)).mode & 0o777).toBe(0o444);
    const read = async (r: Readable) => Buffer.concat(await r.toArray()).toString();
    expect(await read(store.open(ref.digest))).toBe('hello world');
    expect(await read(store.open(ref.digest, { start: 6, end: 10 }))).toBe('world');
    expect(await store.stat(sha('other'))).toBeUndefined();
  });

  it('refuses a body past storage.max_blob and a wrong expected digest, keeping nothing', async () => {
    const { store, tmp } = await open();
    await expect(store.put(Readable.from([Buffer.alloc(1000), Buffer.alloc(1000)]))).rejects.toMatchObject({ code: 'BODY_TOO_LARGE' });
    await expect(store.put(Buffer.from('abc'), { expect: sha('abd') })).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    expect(await store.stat(sha('abc'))).toBeUndefined();
    expect(fs.readdirSync(tmp)).toEqual([]);
  });

  it('stops an upload whose signal aborts, keeping nothing', async () => {
    const { store, tmp } = await open();
    const controller = new AbortController();
    const endless = new Readable({ read() {} });
    endless.push(Buffer.from('part'));
    const put = store.put(endless, { signal: controller.signal });
    controller.abort(new Error('client went away'));
    await expect(put).rejects.toThrow();
    expect(fs.readdirSync(tmp)).toEqual([]);
  });

  it('stores a regular file but never follows a symlink to one', async () => {
    const { store, dataDir } = await open();
    const file = path.join(dataDir, 'out.txt');
    fs.writeFileSync(file, 'output');
    expect(await store.putFile(file)).toEqual({ digest: sha('output'), size: 6 });
    fs.symlinkSync('/etc/hostname', path.join(dataDir, 'link'));
    await expect(store.putFile(path.join(dataDir, 'link'))).rejects.toMatchObject({ code: 'ELOOP' });
  });

  it('shows a blob to its uploader, or to anyone when uploaded without an account', async () => {
    const { store } = await open();
    const mine = (await store.put(Buffer.from('mine'))).digest;
    await store.grant(mine, 'acct-alice');
    expect(await store.mayUse(mine, 'acct-alice')).toBe(true);
    expect(await store.mayUse(mine, 'acct-bob')).toBe(false);
    expect(await store.mayUse(mine, undefined)).toBe(false);
    const open_ = (await store.put(Buffer.from('open'))).digest;
    await store.grant(open_, undefined);
    expect(await store.mayUse(open_, 'acct-bob')).toBe(true);
    expect(await store.mayUse('sha256:../../etc', 'acct-bob')).toBe(false);
  });

  it('removes least recently used blobs past storage.max_size, never pinned ones', async () => {
    const { store: filler, dataDir } = await open();
    const blobs = [];
    for (const [i, c] of ['a', 'b', 'c'].entries()) {
      const ref = await filler.put(Buffer.alloc(100, c));
      const past = new Date(Date.now() - (10 - i) * 60_000);
      fs.utimesSync(filler.path(ref.digest), past, past);
      blobs.push(ref.digest);
    }
    const [a, b, c] = blobs as [string, string, string];
    const { store } = await open({ dataDir, maxBytes: 250, pinned: async () => new Set([a]) });
    await store.touch(c);
    await store.collect();
    // a is the oldest but pinned; b goes; a and c stay (200 bytes <= 250).
    expect(await store.stat(a)).toBeDefined();
    expect(await store.stat(b)).toBeUndefined();
    expect(await store.stat(c)).toBeDefined();
  });

  it('clears a crash\'s temporary files at start', async () => {
    const { dataDir } = await open();
    fs.writeFileSync(path.join(dataDir, 'blobs', 'tmp', 'partial'), 'half');
    const { tmp } = await open({ dataDir });
    expect(fs.readdirSync(tmp)).toEqual([]);
  });
});
