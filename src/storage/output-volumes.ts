/**
 * Each execution's /outputs: a file system of its own, so the kernel caps what a job may
 * write (runner.docker.outputs_size) and a job cannot fill the host's disk. It is a sparse
 * ext4 image on a loop device (no journal: it lives for one job; no reserved blocks),
 * mounted nosuid,nodev,noexec and owned by the job's user. Making one takes tens of
 * milliseconds.
 *
 * Collecting walks the volume without following links: a job may leave a symlink to
 * /etc/shadow, and the node must never read through it. Only regular files are kept.
 *
 * Where loop mounts are impossible (not root, no mkfs.ext4), volumes are plain directories
 * and the cap is applied only when collecting: the start log says so.
 */

import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { type OutputFile, type OutputManifest, manifestOf } from '../domain/data.js';
import type { Startable } from '../domain/startable.js';
import { formatSize } from '../domain/units.js';
import { GridxError, isGridxError, messageOf } from '../errors.js';
import type { Logger } from '../logger.js';

const run = promisify(execFile);

export interface OutputVolumesOptions {
  /** Volumes live here: <root>/<executionId> (the mount point) and <root>/<executionId>.img. */
  root: string;
  /** Room per execution (runner.docker.outputs_size). */
  sizeBytes: number;
  log: Logger;
  /** The job's user, who owns the volume's root. */
  owner?: { uid: number; gid: number };
  /** 'directory' forces plain directories (tests); 'auto' uses loop mounts where it can. */
  mode?: 'auto' | 'directory';
}

/** Files collected from one volume at most: past it the manifest is cut and flagged. */
export const MAX_OUTPUT_FILES = 10_000;
/** A volume with less free room than this counts as full: the job was stopped by it. */
const FULL_SLACK_BYTES = 64 * 1024;
const ID_RE = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;
const NOBODY = { uid: 65534, gid: 65534 };

export type StoreFile = (file: string) => Promise<{ digest: string; size: number }>;

export class OutputVolumes implements Startable {
  private loop = false;

  constructor(private readonly options: OutputVolumesOptions) {}

  get mode(): 'loop' | 'directory' {
    return this.loop ? 'loop' : 'directory';
  }

  /** Reaps what a crash left, then finds out whether loop mounts work here. */
  async start(): Promise<void> {
    const { root, log } = this.options;
    await fs.mkdir(root, { recursive: true, mode: 0o711 });
    for (const mount of await this.mounts()) await unmount(mount);
    for (const name of await fs.readdir(root)) await fs.rm(path.join(root, name), { recursive: true, force: true });
    this.loop = false;
    if (this.options.mode !== 'directory') {
      try {
        await this.make('probe');
        this.loop = true;
      } catch (err) {
        log.warn(`/outputs are plain directories: loop mounts failed here (${messageOf(err)}); a job may fill the disk while it runs, and its outputs are cut to ${formatSize(this.options.sizeBytes)} when collected`);
      } finally {
        await this.release('probe');
      }
    }
  }

  async stop(): Promise<void> {
    // Executions release their own volumes; whatever is left is reaped at the next start.
  }

  /** The execution's empty volume, made once; its host path is bound at /outputs. */
  async acquire(executionId: string): Promise<{ hostPath: string }> {
    const dir = this.dirOf(executionId);
    if (!this.loop) {
      await fs.mkdir(dir, { recursive: true });
      const owner = this.options.owner ?? NOBODY;
      await fs.chown(dir, owner.uid, owner.gid).catch(() => fs.chmod(dir, 0o777));
      return { hostPath: dir };
    }
    if (!(await this.mounts()).includes(dir)) await this.make(executionId);
    return { hostPath: dir };
  }

  private async make(executionId: string): Promise<void> {
    const dir = this.dirOf(executionId);
    const image = `${dir}.img`;
    const owner = this.options.owner ?? NOBODY;
    const handle = await fs.open(image, 'w', 0o600);
    await handle.truncate(this.options.sizeBytes);
    await handle.close();
    await run('mkfs.ext4', ['-q', '-F', '-m', '0', '-O', '^has_journal,^resize_inode', '-E', `lazy_itable_init=1,root_owner=${owner.uid}:${owner.gid}`, image]);
    await fs.mkdir(dir, { recursive: true });
    await run('mount', ['-o', 'loop,nosuid,nodev,noexec', image, dir]);
    await fs.rm(path.join(dir, 'lost+found'), { recursive: true, force: true });
  }

  /**
   * Stores each regular file with `store` and returns the manifest. `exceeded` when the
   * volume is full, the files pass the size, or there are more than MAX_OUTPUT_FILES.
   */
  async collect(executionId: string, store: StoreFile): Promise<OutputManifest> {
    const dir = this.dirOf(executionId);
    const files: OutputFile[] = [];
    let bytes = 0;
    let exceeded = false;
    const walk = async (at: string): Promise<void> => {
      const entries = await fs.readdir(at, { withFileTypes: true }).catch(() => []);
      for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
        if (exceeded) return;
        const full = path.join(at, entry.name);
        if (entry.isDirectory()) await walk(full);
        if (!entry.isFile()) continue; // links, fifos, sockets and devices are never read
        if (files.length >= MAX_OUTPUT_FILES) {
          exceeded = true;
          return;
        }
        // Sized before it is read: in directory mode a file may be far past the cap.
        const { size } = await fs.lstat(full);
        if (bytes + size > this.options.sizeBytes) {
          exceeded = true;
          return;
        }
        const stored = await store(full).catch((err: unknown) => {
          if (isGridxError(err, 'BODY_TOO_LARGE')) return undefined; // one file past storage.max_blob
          throw err;
        });
        if (!stored) {
          exceeded = true;
          return;
        }
        bytes += stored.size;
        files.push({ path: path.relative(dir, full).split(path.sep).join('/'), size: stored.size, sha256: stored.digest });
      }
    };
    await walk(dir);
    if (this.loop && !exceeded) {
      const fsStat = await fs.statfs(dir);
      exceeded = fsStat.bavail * fsStat.bsize < FULL_SLACK_BYTES;
    }
    return manifestOf(files, exceeded);
  }

  /** Unmounts and deletes the execution's volume; idempotent. */
  async release(executionId: string): Promise<void> {
    const dir = this.dirOf(executionId);
    if ((await this.mounts()).includes(dir)) await unmount(dir);
    await fs.rm(dir, { recursive: true, force: true });
    await fs.rm(`${dir}.img`, { force: true });
  }

  private dirOf(executionId: string): string {
    if (!ID_RE.test(executionId)) throw new GridxError('INVALID_INPUT', `execution id ${JSON.stringify(executionId).slice(0, 140)} cannot name a volume`);
    return path.join(this.options.root, executionId);
  }

  /** Mount points under the root. */
  private async mounts(): Promise<string[]> {
    const table = await fs.readFile('/proc/self/mounts', 'utf8').catch(() => '');
    const prefix = `${path.resolve(this.options.root)}/`;
    return table
      .split('\n')
      .map((line) => line.split(' ')[1]?.replace(/\\040/g, ' ') ?? '')
      .filter((mount) => mount.startsWith(prefix));
  }
}

/** Unmounts; lazily when something (a container being removed) still holds it. */
async function unmount(dir: string): Promise<void> {
  try {
    await run('umount', [dir]);
  } catch {
    await run('umount', ['-l', dir]);
  }
}
