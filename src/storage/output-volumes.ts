/**
 * Each execution's /outputs: a file system of its own, so the kernel caps what a job may
 * write (runner.docker.outputs_size) and a job cannot fill the host's disk. It is a sparse
 * ext4 image on a loop device: no journal (it lives for one job, and a crash reaps it), no
 * reserved blocks, mounted nosuid,nodev,noexec and owned by the job's user. Making one
 * takes tens of milliseconds, so there is no pool.
 *
 * Collecting walks the volume without following links: a job may leave a symlink to
 * /etc/shadow, and the node must never read through it. Only regular files on the volume's
 * own device are kept, each looked at again just before it is stored.
 *
 * Where loop mounts are impossible (not root, no mkfs.ext4, no loop devices), volumes are
 * plain directories and the cap is applied only when collecting: the start log says so.
 *
 * The root belongs to this component: start() unmounts and deletes whatever is under it.
 */

import { execFile } from 'node:child_process';
import type { Dirent } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { MAX_OUTPUT_FILES, type OutputFile, type OutputManifest, manifestOf } from '../domain/data.js';
import type { Startable } from '../domain/startable.js';
import { formatSize } from '../domain/units.js';
import { GridxError, isGridxError, messageOf, quote } from '../errors.js';
import type { Logger } from '../logger.js';

const run = promisify(execFile);

export interface OutputVolumesOptions {
  /** Volumes live here: <root>/<executionId> (the mount point) and <root>/<executionId>.img. */
  root: string;
  /** Room per execution (runner.docker.outputs_size). */
  sizeBytes: number;
  log: Logger;
  /** The job's user, who owns the volume's root (default nobody, 65534:65534). */
  owner?: { uid: number; gid: number };
  /** 'directory' forces plain directories (tests); 'auto' (default) uses loop mounts where they work. */
  mode?: 'auto' | 'directory';
}

export type StoreFile = (file: string) => Promise<{ digest: string; size: number }>;

/** Entries (files, directories, links) looked at at most: a job may leave millions of empty ones. */
const MAX_ENTRIES = 100_000;
/** Longest path kept, relative to /outputs (the same bound as an input's path). */
const MAX_PATH = 1024;
/**
 * A loop volume with less free room than this counts as full. ext4 refuses a write that
 * does not fit whole (measured: `dd bs=1M` into a full volume stops with ~0.7 MiB still
 * free), so "the job hit the cap" cannot be told apart from "the job stopped just short of
 * it" at finer grain than the size of one write; 1 MiB covers the usual ones. On a tiny
 * volume the slack is at most a quarter of it, so an empty one never reads as full.
 */
const FULL_SLACK_BYTES = 1024 * 1024;
const ID_RE = /^[A-Za-z0-9._-]{1,128}$/;
const NOBODY = { uid: 65534, gid: 65534 };
const COMMAND_TIMEOUT_MS = 30_000;
/** No execution id starts with ".", so the probe's volume never meets a job's. */
const PROBE = '.probe';

export class OutputVolumes implements Startable {
  private loop = false;
  private started = false;
  /** The root as the mount table spells it (resolved, links followed once it exists). */
  private root: string;
  /** The last operation on each execution's volume: acquire, collect and release run one at a time. */
  private readonly busy = new Map<string, Promise<unknown>>();

  constructor(private readonly options: OutputVolumesOptions) {
    this.root = path.resolve(options.root);
  }

  /** How sizes are enforced here: by the kernel ('loop') or only when collecting ('directory'). */
  get mode(): 'loop' | 'directory' {
    return this.loop ? 'loop' : 'directory';
  }

  /** Reaps what a crash left, then finds out whether loop mounts work here by making one. */
  async start(): Promise<void> {
    const { log, sizeBytes } = this.options;
    // Only this node's user may reach the volumes; Docker, as root, still binds them.
    await fs.mkdir(this.root, { recursive: true, mode: 0o700 });
    this.root = await fs.realpath(this.root);
    await this.reap();
    this.loop = false;
    if (this.options.mode !== 'directory') {
      const why = process.getuid?.() !== 0 ? 'the node does not run as root' : await this.probe();
      if (why === undefined) this.loop = true;
      else log.warn(`/outputs are plain directories, not ${formatSize(sizeBytes)} loop volumes (${why}): a job may fill the disk while it runs, and its outputs are cut to ${formatSize(sizeBytes)} when collected`);
    }
    this.started = true;
    log.debug(`output volumes in ${this.root}: ${this.mode} mode, ${formatSize(sizeBytes)} each`);
  }

  async stop(): Promise<void> {
    // Executions release their own volumes; whatever is left is reaped at the next start.
    this.started = false;
  }

  /** The execution's empty volume, made once; its host path is bound at /outputs. */
  async acquire(executionId: string): Promise<{ hostPath: string }> {
    const dir = this.dirOf(executionId);
    if (!this.started) throw new GridxError('UNAVAILABLE', 'output volumes are not started; start the node before running jobs');
    return this.serial(executionId, async () => {
      if (this.loop) {
        if (!(await this.isMounted(dir))) {
          try {
            await this.make(dir);
          } catch (err) {
            await this.destroy(dir).catch(() => undefined);
            throw new GridxError('INTERNAL', `could not make the /outputs volume of ${executionId} in ${this.root}: ${messageOf(err)}; check the disk has room and loop devices are free`, { cause: err });
          }
        }
      } else {
        await fs.mkdir(dir, { recursive: true, mode: 0o700 });
        const owner = this.options.owner ?? NOBODY;
        // Not root: the job's user must still write, and the root above keeps others out.
        await fs.chown(dir, owner.uid, owner.gid).catch(() => fs.chmod(dir, 0o777));
      }
      return { hostPath: dir };
    });
  }

  /**
   * Stores each regular file with `store` and returns the manifest, sorted by path.
   * `exceeded` when the volume is full, the files pass the size, or there are too many.
   */
  async collect(executionId: string, store: StoreFile): Promise<OutputManifest> {
    const dir = this.dirOf(executionId);
    return this.serial(executionId, () => this.walk(dir, store));
  }

  /** Unmounts and deletes the execution's volume; idempotent, and harmless if never acquired. */
  async release(executionId: string): Promise<void> {
    const dir = this.dirOf(executionId);
    return this.serial(executionId, () => this.destroy(dir));
  }

  private async walk(dir: string, store: StoreFile): Promise<OutputManifest> {
    const { log, sizeBytes } = this.options;
    const files: OutputFile[] = [];
    let bytes = 0;
    let entries = 0;
    let exceeded = false;
    let skipped = 0;
    const top = await fs.lstat(dir).catch(() => undefined);
    if (!top?.isDirectory()) return manifestOf([], false); // never acquired: nothing to collect
    const visit = async (at: string): Promise<void> => {
      let list: Dirent[];
      try {
        list = await fs.readdir(at, { withFileTypes: true });
      } catch {
        skipped++; // a directory the job made unreadable
        return;
      }
      for (const entry of list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
        if (exceeded) return;
        if (++entries > MAX_ENTRIES) {
          exceeded = true;
          return;
        }
        const full = path.join(at, entry.name);
        const rel = path.relative(dir, full).split(path.sep).join('/');
        // A control character (a newline above all) could forge a line of the manifest's root.
        if (rel.length > MAX_PATH || hasControl(entry.name)) {
          skipped++;
          continue;
        }
        if (entry.isDirectory()) {
          await visit(full);
          continue;
        }
        if (!entry.isFile()) {
          skipped++; // links, fifos, sockets and devices are never read
          continue;
        }
        if (files.length >= MAX_OUTPUT_FILES) {
          exceeded = true;
          return;
        }
        // Looked at again just before reading, and sized first: in directory mode a file may be far past the cap.
        const now = await fs.lstat(full).catch(() => undefined);
        if (!now?.isFile() || now.dev !== top.dev) {
          skipped++;
          continue;
        }
        if (bytes + now.size > sizeBytes) {
          exceeded = true;
          return;
        }
        const stored = await store(full).catch((err: unknown) => {
          if (isGridxError(err, 'BODY_TOO_LARGE')) return 'too large' as const; // one file past storage.max_blob
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOENT' || code === 'ELOOP' || isGridxError(err, 'INVALID_INPUT')) return 'gone' as const; // swapped since lstat
          throw err;
        });
        if (stored === 'too large') {
          exceeded = true;
          return;
        }
        if (stored === 'gone') {
          skipped++;
          continue;
        }
        bytes += stored.size;
        files.push({ path: rel, size: stored.size, sha256: stored.digest });
      }
    };
    await visit(dir);
    if (skipped > 0) log.warn(`${path.basename(dir)}: ${skipped} outputs left out (links, special files, unreadable, or names that are too long or hold control characters)`);
    if (this.loop && !exceeded && (await this.isMounted(dir))) {
      const s = await fs.statfs(dir);
      exceeded = s.bavail * s.bsize < Math.min(FULL_SLACK_BYTES, (s.blocks * s.bsize) / 4) || s.ffree === 0;
    }
    return manifestOf(files, exceeded);
  }

  /** A sparse image of the configured size, formatted and mounted at `dir`, empty. */
  private async make(dir: string): Promise<void> {
    const image = `${dir}.img`;
    const owner = this.options.owner ?? NOBODY;
    const handle = await fs.open(image, 'w', 0o600);
    try {
      await handle.truncate(this.options.sizeBytes);
    } finally {
      await handle.close();
    }
    // 4 KiB blocks and one inode per 16 KiB: mkfs's small-disk defaults spend 6% on inode tables.
    const mkfs = ['-q', '-F', '-m', '0', '-b', '4096', '-i', '16384', '-O', '^has_journal,^resize_inode'];
    await run('mkfs.ext4', [...mkfs, '-E', `lazy_itable_init=1,root_owner=${owner.uid}:${owner.gid}`, image], { timeout: COMMAND_TIMEOUT_MS });
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    await run('mount', ['-o', 'loop,nosuid,nodev,noexec', image, dir], { timeout: COMMAND_TIMEOUT_MS });
    await fs.rm(path.join(dir, 'lost+found'), { recursive: true, force: true });
  }

  /** Unmounts `dir` if mounted, then deletes it and its image. */
  private async destroy(dir: string): Promise<void> {
    // Never delete through a mount that failed to go: that would empty it, then fail.
    if (await this.isMounted(dir)) {
      await unmount(dir).catch((err: unknown) => {
        throw new GridxError('INTERNAL', `could not unmount the output volume ${dir}: ${messageOf(err)}; unmount it by hand (umount -l)`, { cause: err });
      });
    }
    await fs.rm(dir, { recursive: true, force: true });
    await fs.rm(`${dir}.img`, { force: true });
  }

  /** Why loop volumes do not work here, or undefined when one was made and removed. */
  private async probe(): Promise<string | undefined> {
    const dir = path.join(this.root, PROBE);
    try {
      await this.make(dir);
      if (!(await this.isMounted(dir))) return 'the probe volume did not mount';
      return undefined;
    } catch (err) {
      return messageOf(err).split('\n')[0];
    } finally {
      await this.destroy(dir).catch((err: unknown) => this.options.log.warn(`could not remove the probe volume ${dir}: ${messageOf(err)}`));
    }
  }

  /** Unmounts every volume under the root and deletes everything else there. */
  private async reap(): Promise<void> {
    const { root } = this;
    const { log } = this.options;
    const stuck = new Set<string>();
    // Deepest first, so a mount inside another goes before it.
    for (const mount of (await this.mounts()).sort((a, b) => b.length - a.length)) {
      try {
        await unmount(mount);
        log.info(`unmounted ${mount}, left by an earlier run`);
      } catch (err) {
        stuck.add(mount);
        log.warn(`could not unmount ${mount}, left by an earlier run: ${messageOf(err)}; unmount it by hand`);
      }
    }
    for (const name of await fs.readdir(root)) {
      const full = path.join(root, name);
      if (![...stuck].some((m) => m === full || m.startsWith(`${full}/`))) await fs.rm(full, { recursive: true, force: true });
    }
  }

  private async serial<T>(executionId: string, work: () => Promise<T>): Promise<T> {
    const before = this.busy.get(executionId) ?? Promise.resolve();
    const result = before.then(work, work);
    const settled = result.catch(() => undefined);
    this.busy.set(executionId, settled);
    try {
      return await result;
    } finally {
      if (this.busy.get(executionId) === settled) this.busy.delete(executionId);
    }
  }

  private dirOf(executionId: string): string {
    // Not "." first (no "..", no clash with the probe), not ".img" last (another volume's image).
    if (typeof executionId !== 'string' || !ID_RE.test(executionId) || executionId.startsWith('.') || executionId.endsWith('.img')) {
      throw new GridxError('INVALID_INPUT', `execution id ${quote(executionId, 140)} cannot name an output volume: use at most 128 letters, digits, ".", "_" and "-", not "." first nor ".img" last`);
    }
    return path.join(this.root, executionId);
  }

  private async isMounted(dir: string): Promise<boolean> {
    return (await this.mounts()).includes(dir);
  }

  /** Mount points under the root, as /proc/self/mounts lists them (octal escapes undone). */
  private async mounts(): Promise<string[]> {
    const table = await fs.readFile('/proc/self/mounts', 'utf8').catch(() => '');
    const prefix = `${this.root}/`;
    return table
      .split('\n')
      .map((line) => (line.split(' ')[1] ?? '').replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))))
      .filter((mount) => mount.startsWith(prefix));
  }
}

/** Unmounts; lazily when something (a container being removed) still holds it. */
async function unmount(dir: string): Promise<void> {
  try {
    await run('umount', [dir], { timeout: COMMAND_TIMEOUT_MS });
  } catch {
    await run('umount', ['-l', dir], { timeout: COMMAND_TIMEOUT_MS });
  }
}

function hasControl(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}
