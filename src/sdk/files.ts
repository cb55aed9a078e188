/**
 * Files to and from a node: blobs (POST and GET /blobs) and what a job left under /outputs.
 * Everything is streamed, never held whole in memory, and checked against its sha256 as it
 * passes; a download is written to "<dest>.part" and renamed only once its digest matched.
 * The node is not trusted: a manifest path that would land outside the chosen directory
 * stops the download before anything is written.
 */

import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type OutputFile, isDigest, manifestRoot, outputPathOf } from '../domain/data.js';
import { GridxError, messageOf, quote } from '../errors.js';
import type { BlobRef, OutputsView } from '../wire/gridx.js';

/** Called as bytes pass: `done` so far of `total` (undefined when the length is not known). */
export type ProgressListener = (done: number, total: number | undefined) => void;

export interface TransferOptions {
  onProgress?: ProgressListener;
  signal?: AbortSignal;
}

/** Which door a job's outputs are fetched through: Grid-X's /jobs/:id or Parity's /api/tasks/:id. */
export type Dialect = 'gridx' | 'parity';

export interface OutputOptions {
  dialect?: Dialect;
  signal?: AbortSignal;
}

/** What a blob is uploaded from: a local file's path (streamed), bytes, or a stream. */
export type BlobSource = string | Buffer | Readable;

/** Files are read and sent in pieces this large: fetch costs per piece, and 64 KiB pieces halve the rate. */
const CHUNK_BYTES = 1024 * 1024;

/** One raw request as the client sends it; a status that is not 2xx throws the node's GridxError. */
export type Exchange = (
  method: string,
  pathname: string,
  init?: { body?: RequestInit['body']; headers?: Record<string, string>; signal?: AbortSignal | undefined },
) => Promise<Response>;

/**
 * POST /blobs (or `to.at`: a runner's lease). A file or a Buffer is hashed first (a file whose
 * digest the caller knows, `to.digest`, is not read twice) and sent with ?sha256=, so the node checks
 * what it received; a stream is hashed as it goes. Either way the node's answer must name
 * the digest and size that were sent.
 */
export async function putBlob(
  send: Exchange,
  source: BlobSource,
  options: TransferOptions = {},
  to: { at?: string; digest?: string } = {},
): Promise<BlobRef> {
  const what = typeof source === 'string' ? quote(source) : 'the blob';
  let total: number | undefined;
  let expected: string | undefined;
  let chunks: () => AsyncIterable<Buffer | string> | Iterable<Buffer>;
  if (typeof source === 'string') {
    total = await fileSize(source);
    expected = to.digest ?? (await hashFile(source, options.signal));
    // The length announced is the length read, even if the file grows meanwhile.
    chunks = () => (total === 0 ? [] : createReadStream(source, { end: total! - 1, highWaterMark: CHUNK_BYTES }));
  } else if (Buffer.isBuffer(source)) {
    total = source.length;
    expected = `sha256:${createHash('sha256').update(source).digest('hex')}`;
    chunks = () => slices(source, CHUNK_BYTES);
  } else {
    chunks = () => source;
  }

  const hash = createHash('sha256');
  let sent = 0;
  let readError: unknown;
  let read = false;
  async function* body(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of chunks()) {
        const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        // Hashed beforehand: the node checks ?sha256=, so only a stream is hashed on the way.
        if (expected === undefined) hash.update(bytes);
        sent += bytes.length;
        options.onProgress?.(sent, total);
        yield bytes;
      }
      read = true;
    } catch (err) {
      readError = err;
      throw err;
    }
  }

  let res: Response;
  try {
    res = await send('POST', `${to.at ?? '/blobs'}${expected ? `?sha256=${encodeURIComponent(expected)}` : ''}`, {
      body: body(),
      headers: { 'content-type': 'application/octet-stream', ...(total === undefined ? {} : { 'content-length': String(total) }) },
      signal: options.signal,
    });
  } catch (err) {
    // The request failed because of this side: say so, not "cannot reach the node".
    if (readError !== undefined) throw new GridxError('INVALID_INPUT', `cannot read ${what}: ${messageOf(readError)}`, { cause: readError });
    if (read && total !== undefined && sent !== total) {
      throw new GridxError('INVALID_INPUT', `${what} changed while it was uploaded (${sent} bytes read of ${total}); upload it again`, { cause: err });
    }
    throw err;
  }
  const ref = (await res.json()) as BlobRef;
  const digest = expected ?? `sha256:${hash.digest('hex')}`;
  if (ref.digest !== digest || ref.size !== sent) {
    throw new GridxError('REMOTE_ERROR', `the node stored ${quote(ref.digest)} (${ref.size} bytes) but ${digest} (${sent} bytes) was sent; upload again`);
  }
  return ref;
}

/** GET /blobs/:digest into the file `dest`, checked against the digest as it is written. */
export async function getBlob(send: Exchange, digest: string, dest: string, options: TransferOptions = {}): Promise<BlobRef> {
  if (!isDigest(digest)) {
    throw new GridxError('INVALID_INPUT', `${quote(digest)} is not a blob digest: give "sha256:" and 64 lowercase hex digits, as POST /blobs answers`);
  }
  // Checked above: "sha256:" and hex, nothing to escape.
  const res = await send('GET', `/blobs/${digest}`, { signal: options.signal });
  const size = await saveChecked(res, dest, { sha256: digest, what: `blob ${digest}` }, options);
  return { digest, size };
}

/** GET /jobs/:id/outputs (or /api/tasks/:id/outputs): the manifest of what the job left under /outputs. */
export async function outputs(send: Exchange, id: string, options: OutputOptions = {}): Promise<OutputsView> {
  const res = await send('GET', outputsBase(id, options.dialect), { signal: options.signal });
  return (await res.json()) as OutputsView;
}

/**
 * One output file into the file `dest`, checked against `expect` (the manifest's entry)
 * when given, else against the digest the node sends with it (x-content-sha256).
 */
export async function downloadOutput(
  send: Exchange,
  id: string,
  filePath: string,
  dest: string,
  options: TransferOptions & OutputOptions & { expect?: { sha256: string; size: number } } = {},
): Promise<OutputFile> {
  const relative = outputPathOf(filePath);
  if (relative === undefined) {
    throw new GridxError('INVALID_INPUT', `${quote(filePath)} is not a path inside a job's outputs: give it relative to /outputs, without "..", "." or empty parts`);
  }
  const url = `${outputsBase(id, options.dialect)}/${relative.split('/').map(encodeURIComponent).join('/')}`;
  const res = await send('GET', url, { signal: options.signal });
  const announced = res.headers.get('x-content-sha256') ?? undefined;
  let expect = options.expect;
  if (expect && announced !== undefined && announced !== expect.sha256) {
    await res.body?.cancel();
    throw new GridxError('REMOTE_ERROR', `the node sends ${quote(filePath)} of job ${id} as ${quote(announced)} but its manifest says ${expect.sha256}; try again`);
  }
  if (!expect) {
    if (announced === undefined || !isDigest(announced)) {
      await res.body?.cancel();
      throw new GridxError('REMOTE_ERROR', `the node sent ${quote(filePath)} of job ${id} without a valid x-content-sha256, so it cannot be checked; is the node older than this client?`);
    }
    expect = { sha256: announced, size: Number(res.headers.get('content-length') ?? NaN) };
  }
  const size = await saveChecked(res, dest, { ...expect, what: `${quote(filePath)} of job ${id}` }, options);
  return { path: relative, size, sha256: expect.sha256 };
}

/**
 * Every file of a job's outputs into `dir` (subdirectories created), each checked against
 * the manifest, the manifest against its root digest. Resolves with the manifest.
 */
export async function downloadOutputs(
  send: Exchange,
  id: string,
  dir: string,
  options: TransferOptions & OutputOptions = {},
): Promise<OutputsView> {
  const manifest = await outputs(send, id, options);
  const targets = checkManifest(manifest, dir);
  await mkdir(path.resolve(dir), { recursive: true });
  let before = 0;
  for (const { file, dest } of targets) {
    const offset = before;
    await downloadOutput(send, id, file.path, dest, {
      ...options,
      expect: file,
      ...(options.onProgress ? { onProgress: (done: number) => options.onProgress!(offset + done, manifest.bytes) } : {}),
    });
    before += file.size;
  }
  return manifest;
}

/**
 * Where each file of `manifest` lands under `dir`, all checked before anything is written:
 * digests and sizes well formed, no path twice, the root digest the files' own.
 */
export function checkManifest(manifest: OutputsView, dir: string): Array<{ file: OutputFile; dest: string }> {
  const seen = new Set<string>();
  const targets = manifest.files.map((file) => {
    if (!isDigest(file.sha256) || !Number.isSafeInteger(file.size) || file.size < 0) {
      throw new GridxError('REMOTE_ERROR', `the node's manifest of job ${manifest.id} lists ${quote(file.path)} with a malformed digest or size; nothing was downloaded`);
    }
    if (seen.has(file.path)) throw new GridxError('REMOTE_ERROR', `the node's manifest of job ${manifest.id} lists ${quote(file.path)} twice; nothing was downloaded`);
    seen.add(file.path);
    return { file, dest: outputTarget(dir, file.path) };
  });
  if (manifestRoot(manifest.files) !== manifest.root) {
    throw new GridxError('REMOTE_ERROR', `the node's manifest of job ${manifest.id} does not match its root digest ${quote(manifest.root)}; nothing was downloaded`);
  }
  return targets;
}

/**
 * Where the manifest path `file` lands under `dir`. Throws when it would land anywhere
 * else (absolute, "..", empty parts): a manifest comes from a node, and nodes are not trusted.
 */
export function outputTarget(dir: string, file: string): string {
  const root = path.resolve(dir);
  const relative = typeof file === 'string' ? outputPathOf(file) : undefined;
  const target = relative === undefined ? undefined : path.resolve(root, ...relative.split('/'));
  const inside = target === undefined ? undefined : path.relative(root, target);
  if (inside === undefined || inside === '' || inside === '..' || inside.startsWith(`..${path.sep}`) || path.isAbsolute(inside)) {
    throw new GridxError('REMOTE_ERROR', `the node lists an output ${quote(file)} that would land outside ${root}; nothing was downloaded`);
  }
  return target!;
}

function outputsBase(id: string, dialect: Dialect = 'gridx'): string {
  return `${dialect === 'parity' ? '/api/tasks' : '/jobs'}/${encodeURIComponent(id)}/outputs`;
}

/** Streams a response body into `dest` through "<dest>.part"; keeps it only when its sha256 (and size, when known) match. */
async function saveChecked(
  res: Response,
  dest: string,
  expect: { sha256: string; size?: number; what: string },
  options: TransferOptions,
): Promise<number> {
  const announced = Number(res.headers.get('content-length') ?? NaN);
  const total = expect.size !== undefined && Number.isSafeInteger(expect.size) ? expect.size : Number.isSafeInteger(announced) ? announced : undefined;
  const part = `${dest}.part`;
  const hash = createHash('sha256');
  let received = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      received += chunk.length;
      options.onProgress?.(received, total);
      callback(null, chunk);
    },
  });
  try {
    await mkdir(path.dirname(path.resolve(dest)), { recursive: true });
    const body = res.body ? Readable.from(res.body as AsyncIterable<Uint8Array>) : Readable.from([]);
    await pipeline(body, meter, createWriteStream(part), options.signal ? { signal: options.signal } : {});
    const digest = `sha256:${hash.digest('hex')}`;
    if (digest !== expect.sha256 || (total !== undefined && received !== total)) {
      throw new GridxError('REMOTE_ERROR', `${expect.what} arrived as ${digest} (${received} bytes), not the ${expect.sha256}${total === undefined ? '' : ` (${total} bytes)`} asked for; nothing was kept, try again`);
    }
    await rename(part, dest);
    return received;
  } catch (err) {
    await rm(part, { force: true });
    throw err;
  }
}

async function fileSize(file: string): Promise<number> {
  try {
    const s = await stat(file);
    if (s.isFile()) return s.size;
  } catch (err) {
    throw new GridxError('INVALID_INPUT', `cannot read ${quote(file)}: ${(err as NodeJS.ErrnoException).code ?? messageOf(err)}; give a file that exists`, { cause: err });
  }
  throw new GridxError('INVALID_INPUT', `${quote(file)} is not a regular file; give a file (a directory can be packed with tar first)`);
}

async function hashFile(file: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(file, { highWaterMark: CHUNK_BYTES, ...(signal ? { signal } : {}) })) hash.update(chunk as Buffer);
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new GridxError('INVALID_INPUT', `cannot read ${quote(file)}: ${messageOf(err)}`, { cause: err });
  }
  return `sha256:${hash.digest('hex')}`;
}

function* slices(bytes: Buffer, size: number): Iterable<Buffer> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}
