/**
 * A content-addressed store of files in the node's data dir: blobs/sha256/<hex>. Bytes are
 * streamed to a temporary name while they are hashed and counted, and renamed to their
 * digest only when it checks, so a reader never sees a partial blob and a crash leaves only
 * temporary files, which start() removes.
 *
 * Who may read a blob is kept beside it (blobs/grants/<hex>/<account>): the account that
 * uploaded it, or "anyone" for an anonymous upload on an open node. Job outputs are served
 * by the job routes, which check the job's owner, not by these grants.
 *
 * A file's mtime is its last use: the collector removes least recently used blobs first
 * when the store passes storage.max_size, never one that `pinned` names (the inputs of
 * queued and running jobs, the files of executions under way).
 */

import { createHash, randomUUID } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { digestHex, isDigest } from '../domain/data.js';
import type { Startable } from '../domain/startable.js';
import { formatSize } from '../domain/units.js';
import { GridxError, messageOf } from '../errors.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../logger.js';

/** Reads go in pieces this large: each piece costs a frame on the mesh and a write on HTTP. */
const READ_CHUNK_BYTES = 1024 * 1024;

export interface BlobStoreOptions {
  /** The node's data dir; blobs live under <dataDir>/blobs. */
  dataDir: string;
  /** The most one blob may hold (storage.max_blob). */
  maxBlobBytes: number;
  /** The most the store may hold before least recently used blobs go (storage.max_size). */
  maxBytes: number;
  /** Blobs the collector must keep. */
  pinned: () => Promise<ReadonlySet<string>>;
  log: Logger;
  /** How often the collector checks the store's size. */
  collectEveryMs?: number;
}

export interface PutOptions {
  /** The digest the bytes must have; a mismatch is INVALID_INPUT and nothing is kept. */
  expect?: string;
  /** Below maxBlobBytes, for this put only. */
  maxBytes?: number;
  signal?: AbortSignal;
}

export interface BlobInfo {
  digest: string;
  size: number;
}

/** The grant of a blob uploaded without an account (open nodes only). */
const ANYONE = 'anyone';
const COLLECT_EVERY_MS = 60_000;

export class BlobStore implements Startable {
  private readonly root: string;
  private readonly tmp: string;
  private readonly grants: string;
  private timer?: NodeJS.Timeout;
  private collecting?: Promise<void>;
  private stored = 0;

  constructor(private readonly options: BlobStoreOptions) {
    this.root = path.join(options.dataDir, 'blobs', 'sha256');
    this.tmp = path.join(options.dataDir, 'blobs', 'tmp');
    this.grants = path.join(options.dataDir, 'blobs', 'grants');
  }

  async start(): Promise<void> {
    await fs.rm(this.tmp, { recursive: true, force: true });
    for (const dir of [this.root, this.tmp, this.grants]) await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    this.stored = (await this.entries()).reduce((n, e) => n + e.size, 0);
    this.timer = setInterval(() => void this.collect(), this.options.collectEveryMs ?? COLLECT_EVERY_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.collecting;
  }

  /** Where a blob's file is (for read-only bind mounts). */
  path(digest: string): string {
    if (!isDigest(digest)) throw new GridxError('INVALID_INPUT', `${digest} is not a digest; digests look like sha256:<64 hex digits>`);
    return path.join(this.root, digestHex(digest));
  }

  /** Streams bytes in; the blob exists under its digest only once the whole body checked. */
  async put(body: Readable | Buffer, options: PutOptions = {}): Promise<BlobInfo> {
    const max = Math.min(options.maxBytes ?? Infinity, this.options.maxBlobBytes);
    const hash = createHash('sha256');
    let size = 0;
    const count = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        size += chunk.length;
        if (size > max) {
          done(new GridxError('BODY_TOO_LARGE', `the file is larger than this node stores in one blob (${formatSize(max)}, storage.max_blob)`));
          return;
        }
        hash.update(chunk);
        done(null, chunk);
      },
    });
    const tmp = path.join(this.tmp, randomUUID());
    try {
      const source = Buffer.isBuffer(body) ? Readable.from([body]) : body;
      await pipeline(source, count, (await fs.open(tmp, 'wx', 0o600)).createWriteStream(), options.signal ? { signal: options.signal } : {});
      const digest = `sha256:${hash.digest('hex')}`;
      if (options.expect !== undefined && options.expect !== digest) {
        throw new GridxError('INVALID_INPUT', `the bytes' digest is ${digest}, not the ${options.expect} that was asked for`);
      }
      return await this.keep(tmp, digest, size);
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  /**
   * Stores a file already on this host (a job's output). Opened without following a
   * symlink, so a job cannot swap one in to make the node read a host file.
   */
  async putFile(file: string, options: { signal?: AbortSignal } = {}): Promise<BlobInfo> {
    const handle = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      if (!(await handle.stat()).isFile()) throw new GridxError('INVALID_INPUT', `${file} is not a regular file`);
      return await this.put(handle.createReadStream({ autoClose: false }), options);
    } finally {
      await handle.close();
    }
  }

  private async keep(tmp: string, digest: string, size: number): Promise<BlobInfo> {
    const target = this.path(digest);
    if (await this.stat(digest)) {
      await this.touch(digest);
    } else {
      await fs.chmod(tmp, 0o444); // bound read-only into jobs; never changed in place
      await fs.rename(tmp, target);
      this.stored += size;
      if (this.stored > this.options.maxBytes) void this.collect();
    }
    return { digest, size };
  }

  async stat(digest: string): Promise<BlobInfo | undefined> {
    try {
      return { digest, size: (await fs.stat(this.path(digest))).size };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** Bytes start..end inclusive, or all of them. */
  open(digest: string, range?: { start: number; end: number }): Readable {
    return createReadStream(this.path(digest), { highWaterMark: READ_CHUNK_BYTES, ...range });
  }

  /** Marks a blob used now: the collector removes least recently used ones first. */
  async touch(digest: string): Promise<void> {
    const now = new Date();
    await fs.utimes(this.path(digest), now, now).catch(() => {});
  }

  /** Lets `accountId` (undefined: anyone, on an open node) read and use the blob. */
  async grant(digest: string, accountId: string | undefined): Promise<void> {
    const dir = path.join(this.grants, digestHex(digest));
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    await fs.writeFile(path.join(dir, granteeOf(accountId)), '');
  }

  /** Whether `accountId` (undefined: anonymous) may read the blob or name it as an input. */
  async mayUse(digest: string, accountId: string | undefined): Promise<boolean> {
    if (!isDigest(digest)) return false;
    const dir = path.join(this.grants, digestHex(digest));
    const holders = [ANYONE, ...(accountId === undefined ? [] : [granteeOf(accountId)])];
    for (const holder of holders) {
      if (await exists(path.join(dir, holder))) return (await this.stat(digest)) !== undefined;
    }
    return false;
  }

  /** Removes least recently used unpinned blobs until the store is within storage.max_size. */
  collect(): Promise<void> {
    this.collecting ??= this.collectOnce()
      .catch((err: unknown) => this.options.log.warn(`collecting blobs failed: ${messageOf(err)}`))
      .finally(() => (this.collecting = undefined));
    return this.collecting;
  }

  private async collectOnce(): Promise<void> {
    const entries = await this.entries();
    this.stored = entries.reduce((n, e) => n + e.size, 0);
    if (this.stored <= this.options.maxBytes) return;
    const pinned = await this.options.pinned();
    for (const entry of entries.sort((a, b) => a.usedAt - b.usedAt)) {
      if (this.stored <= this.options.maxBytes) break;
      if (pinned.has(entry.digest)) continue;
      await fs.rm(this.path(entry.digest), { force: true });
      await fs.rm(path.join(this.grants, digestHex(entry.digest)), { recursive: true, force: true });
      this.stored -= entry.size;
      this.options.log.debug(`removed blob ${entry.digest} (${formatSize(entry.size)}): the store passed storage.max_size`);
    }
    if (this.stored > this.options.maxBytes) {
      this.options.log.warn(`the blob store holds ${formatSize(this.stored)}, over storage.max_size, and all of it is in use`);
    }
  }

  private async entries(): Promise<Array<{ digest: string; size: number; usedAt: number }>> {
    const names = await fs.readdir(this.root);
    const entries = await Promise.all(
      names.map(async (name) => {
        const stat = await fs.stat(path.join(this.root, name)).catch(() => undefined);
        return stat ? { digest: `sha256:${name}`, size: stat.size, usedAt: stat.mtimeMs } : undefined;
      }),
    );
    return entries.filter((e) => e !== undefined);
  }
}

/** Account ids are safe file names already (acct-…, node-…); anything else is hashed. */
function granteeOf(accountId: string | undefined): string {
  if (accountId === undefined) return ANYONE;
  return /^[A-Za-z0-9_-]{1,200}$/.test(accountId) && accountId !== ANYONE ? accountId : createHash('sha256').update(accountId).digest('hex');
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}

/** The blob store of a node or runner as configured (storage.max_blob, storage.max_size), started. */
export async function openBlobStore(
  config: Pick<Config, 'dataDir' | 'storage'>,
  log: Logger,
  pinned: BlobStoreOptions['pinned'],
): Promise<BlobStore> {
  const blobs = new BlobStore({ dataDir: config.dataDir, maxBlobBytes: config.storage.maxBlobBytes, maxBytes: config.storage.maxBytes, log: log.child('blobs'), pinned });
  await blobs.start();
  return blobs;
}
