import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { digestOf, manifestOf } from '../../src/domain/data.js';
import { isGridxError } from '../../src/errors.js';
import { createLogger } from '../../src/logger.js';
import { MAX_OUTPUT_FILES } from '../../src/domain/data.js';
import { OutputVolumes, type OutputVolumesOptions } from '../../src/storage/output-volumes.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const SIZE = 4 * MiB;
const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;

let base: string;
let warnings: string[];

beforeAll(async () => {
  base = await fs.mkdtemp(path.join(os.tmpdir(), 'gridx-outputs-'));
});

afterEach(async () => {
  // Whatever a test did or failed to do, no mount outlives it.
  for (const mount of (await mountsUnder(base)).sort((a, b) => b.length - a.length)) {
    await run('umount', ['-l', mount]).catch(() => undefined);
  }
  for (const name of await fs.readdir(base)) await fs.rm(path.join(base, name), { recursive: true, force: true });
});

afterAll(async () => {
  await fs.rm(base, { recursive: true, force: true });
});

/** A started OutputVolumes in its own root under the test's temporary directory. */
async function volumes(name: string, options: Partial<OutputVolumesOptions> = {}): Promise<OutputVolumes> {
  warnings = [];
  const log = createLogger('warn', 'test', (line) => warnings.push(line));
  const v = new OutputVolumes({ root: path.join(base, name), sizeBytes: SIZE, log, ...options });
  await v.start();
  return v;
}

async function mountsUnder(dir: string): Promise<string[]> {
  const table = await fs.readFile('/proc/self/mounts', 'utf8');
  return table
    .split('\n')
    .map((line) => line.split(' ')[1] ?? '')
    .filter((m) => m.startsWith(`${dir}/`));
}

/** A store that hashes what it is given, and remembers what that was. */
function hashingStore() {
  const seen: string[] = [];
  const store = async (file: string) => {
    seen.push(file);
    const bytes = await fs.readFile(file);
    return { digest: digestOf(bytes), size: bytes.length };
  };
  return { store, seen };
}

/**
 * Writes as the job's user would, and says how it ended. The child enters the volume
 * before it drops to that user: like a container's bind, it never crosses the 0700 root.
 */
async function ddAsNobody(file: string, mib: number): Promise<{ ok: boolean; stderr: string }> {
  try {
    const options = { cwd: path.dirname(file), uid: NOBODY, gid: NOBODY };
    await run('dd', ['if=/dev/zero', `of=${path.basename(file)}`, 'bs=1M', `count=${mib}`], options);
    return { ok: true, stderr: '' };
  } catch (err) {
    return { ok: false, stderr: String((err as { stderr?: string }).stderr) };
  }
}

async function exists(file: string): Promise<boolean> {
  return fs.lstat(file).then(
    () => true,
    () => false,
  );
}

async function plantHostile(dir: string): Promise<void> {
  await fs.symlink('/etc/passwd', path.join(dir, 'passwd'));
  await fs.symlink('/etc', path.join(dir, 'etc'));
  await run('mkfifo', [path.join(dir, 'pipe')]);
}

describe.skipIf(!isRoot)('OutputVolumes, loop mode', () => {
  it('acquires an empty, writable volume of the configured size, mounted nosuid,nodev,noexec', async () => {
    const v = await volumes('acquire');
    expect(v.mode).toBe('loop');
    expect(warnings).toEqual([]);
    const { hostPath } = await v.acquire('job-1');
    expect((await v.acquire('job-1')).hostPath).toBe(hostPath); // idempotent
    const table = (await fs.readFile('/proc/self/mounts', 'utf8')).split('\n').filter((l) => l.split(' ')[1] === hostPath);
    expect(table).toHaveLength(1);
    expect(table[0]).toMatch(/ ext4 .*nosuid.*nodev.*noexec/);
    expect(await fs.readdir(hostPath)).toEqual([]); // no lost+found
    const root = await fs.stat(hostPath);
    expect([root.uid, root.gid]).toEqual([NOBODY, NOBODY]);
    const s = await fs.statfs(hostPath);
    expect(s.blocks * s.bsize).toBeGreaterThan(0.9 * SIZE);
    expect(s.blocks * s.bsize).toBeLessThanOrEqual(SIZE);
    const image = await fs.stat(`${hostPath}.img`);
    expect(image.size).toBe(SIZE);
    expect(image.blocks * 512).toBeLessThan(SIZE / 2); // sparse
    expect(await ddAsNobody(path.join(hostPath, 'small'), 1)).toEqual({ ok: true, stderr: '' });
  });

  it('refuses writes past the size with ENOSPC, and flags the manifest exceeded', async () => {
    const v = await volumes('full');
    const { hostPath } = await v.acquire('job-full');
    const result = await ddAsNobody(path.join(hostPath, 'big'), 8);
    expect(result.ok).toBe(false);
    expect(result.stderr).toMatch(/No space left on device/);
    // dd's last 1 MiB write failed whole, leaving room short of it: still read as full.
    const afterDd = await v.collect('job-full', hashingStore().store);
    expect(afterDd.exceeded).toBe(true);
    expect(afterDd.files.map((f) => f.path)).toEqual(['big']);
    // Root is held to it too: -m 0 leaves no blocks reserved for root.
    await expect(fs.writeFile(path.join(hostPath, 'more'), Buffer.alloc(SIZE))).rejects.toMatchObject({ code: 'ENOSPC' });
    const manifest = await v.collect('job-full', hashingStore().store);
    expect(manifest.exceeded).toBe(true);
    expect(manifest.bytes).toBeLessThanOrEqual(SIZE);
    expect(manifest.files.map((f) => f.path)).toEqual(['big', 'more']);
  });

  it('does not flag a volume half full', async () => {
    const v = await volumes('half');
    const { hostPath } = await v.acquire('job-half');
    expect((await ddAsNobody(path.join(hostPath, 'half'), 2)).ok).toBe(true);
    const manifest = await v.collect('job-half', hashingStore().store);
    expect(manifest.exceeded).toBe(false);
    expect(manifest.bytes).toBe(2 * MiB);
  });

  it('flags exceeded when the volume runs out of inodes', async () => {
    const v = await volumes('inodes');
    const { hostPath } = await v.acquire('job-inodes');
    let error: NodeJS.ErrnoException | undefined;
    for (let i = 0; i < 10_000 && !error; i++) await fs.writeFile(path.join(hostPath, `f${i}`), '').catch((err) => (error = err));
    expect(error?.code).toBe('ENOSPC');
    const manifest = await v.collect('job-inodes', hashingStore().store);
    expect(manifest.exceeded).toBe(true);
    expect(manifest.bytes).toBe(0);
  });

  it('collects regular files in nested directories, never reading links, fifos or the host', async () => {
    const v = await volumes('collect');
    const { hostPath } = await v.acquire('job-c');
    await fs.mkdir(path.join(hostPath, 'dir/sub'), { recursive: true });
    await fs.writeFile(path.join(hostPath, 'a.txt'), 'hello\n');
    await fs.writeFile(path.join(hostPath, 'dir/b.bin'), Buffer.alloc(100_000, 7));
    await fs.writeFile(path.join(hostPath, 'dir/sub/c'), '');
    await plantHostile(hostPath);
    await plantHostile(path.join(hostPath, 'dir'));
    const { store, seen } = hashingStore();
    const manifest = await v.collect('job-c', store);
    expect(manifest.files).toEqual([
      { path: 'a.txt', size: 6, sha256: digestOf('hello\n') },
      { path: 'dir/b.bin', size: 100_000, sha256: digestOf(Buffer.alloc(100_000, 7)) },
      { path: 'dir/sub/c', size: 0, sha256: digestOf('') },
    ]);
    expect(manifest).toEqual(manifestOf(manifest.files, false));
    expect(seen.sort()).toEqual(['a.txt', 'dir/b.bin', 'dir/sub/c'].map((p) => path.join(hostPath, p)));
    expect(warnings.join('\n')).toMatch(/6 outputs left out/);
  });

  it('releases: unmounts and deletes, idempotently, and an id never acquired is no error', async () => {
    const v = await volumes('release');
    const { hostPath } = await v.acquire('job-r');
    await fs.writeFile(path.join(hostPath, 'x'), 'x');
    await v.release('job-r');
    expect(await mountsUnder(base)).toEqual([]);
    expect(await exists(hostPath)).toBe(false);
    expect(await exists(`${hostPath}.img`)).toBe(false);
    await v.release('job-r');
    await v.release('never-acquired');
    // Released while a process still holds it: unmounted lazily.
    const again = await v.acquire('job-r');
    const holder = await fs.open(path.join(again.hostPath, 'held'), 'w');
    try {
      await v.release('job-r');
      expect(await mountsUnder(base)).toEqual([]);
    } finally {
      await holder.close();
    }
  });

  it('makes one volume when the same id is acquired at once', async () => {
    const v = await volumes('race');
    const [a, b] = await Promise.all([v.acquire('job-x'), v.acquire('job-x')]);
    expect(a).toEqual(b);
    expect(await mountsUnder(base)).toEqual([a.hostPath]);
  });

  it('start() reaps the volumes a crashed run left', async () => {
    const crashed = await volumes('reap');
    const { hostPath } = await crashed.acquire('job-left');
    await fs.writeFile(path.join(hostPath, 'x'), 'x');
    await fs.writeFile(path.join(base, 'reap', 'stray.img'), 'junk');
    const next = await volumes('reap');
    expect(await mountsUnder(base)).toEqual([]);
    expect(await fs.readdir(path.join(base, 'reap'))).toEqual([]);
    const fresh = await next.acquire('job-left');
    expect(await fs.readdir(fresh.hostPath)).toEqual([]);
    await next.release('job-left');
  });
});

describe('OutputVolumes, directory mode', () => {
  it('makes a plain directory owned by the job user, and cuts outputs at the size', async () => {
    const v = await volumes('dirmode', { mode: 'directory' });
    expect(v.mode).toBe('directory');
    const { hostPath } = await v.acquire('job-d');
    expect(await mountsUnder(base)).toEqual([]);
    if (isRoot) expect((await fs.stat(hostPath)).uid).toBe(NOBODY);
    await fs.writeFile(path.join(hostPath, 'a'), Buffer.alloc(3 * MiB));
    await fs.writeFile(path.join(hostPath, 'b'), Buffer.alloc(MiB));
    await plantHostile(hostPath);
    const fits = await v.collect('job-d', hashingStore().store);
    expect(fits.exceeded).toBe(false);
    expect(fits.files.map((f) => [f.path, f.size])).toEqual([
      ['a', 3 * MiB],
      ['b', MiB],
    ]);
    await fs.writeFile(path.join(hostPath, 'c'), 'one byte too many');
    const cut = await v.collect('job-d', hashingStore().store);
    expect(cut.exceeded).toBe(true);
    expect(cut.bytes).toBeLessThanOrEqual(SIZE);
    await v.release('job-d');
    expect(await exists(hostPath)).toBe(false);
  });

  it(`keeps at most ${MAX_OUTPUT_FILES} files and flags the rest`, async () => {
    const v = await volumes('many', { mode: 'directory' });
    const { hostPath } = await v.acquire('job-many');
    for (let i = 0; i <= MAX_OUTPUT_FILES; i += 500) {
      await Promise.all(Array.from({ length: Math.min(500, MAX_OUTPUT_FILES + 1 - i) }, (_, j) => fs.writeFile(path.join(hostPath, `f${i + j}`), '')));
    }
    const manifest = await v.collect('job-many', async () => ({ digest: digestOf(''), size: 0 }));
    expect(manifest.files).toHaveLength(MAX_OUTPUT_FILES);
    expect(manifest.exceeded).toBe(true);
  });

  it('collects nothing from a volume never acquired', async () => {
    const v = await volumes('empty', { mode: 'directory' });
    expect(await v.collect('job-none', hashingStore().store)).toEqual(manifestOf([], false));
  });
});

describe('OutputVolumes, ids and lifecycle', () => {
  it('refuses ids that could escape the root or clash with another volume', async () => {
    const v = await volumes('ids', { mode: 'directory' });
    for (const id of ['', '.', '..', '../x', 'a/b', '.probe', 'x.img', 'a b', 'x'.repeat(129)]) {
      for (const call of [() => v.acquire(id), () => v.collect(id, hashingStore().store), () => v.release(id)]) {
        const err = await call().catch((e: unknown) => e);
        expect(isGridxError(err, 'INVALID_INPUT'), `id ${JSON.stringify(id)}`).toBe(true);
      }
    }
    await expect(v.acquire(`job-${crypto.randomUUID()}-1`)).resolves.toBeDefined();
  });

  it('refuses to acquire before start', async () => {
    const v = new OutputVolumes({ root: path.join(base, 'unstarted'), sizeBytes: SIZE, log: createLogger('silent') });
    await expect(v.acquire('job-1')).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });
});
