/**
 * Files on a /gridx/job stream: a job's inputs from the origin to the peer before it runs,
 * its outputs from the peer back before the result. A file is a `blob` message naming its
 * digest and size, then raw frames of its bytes; the receiver keeps it only when the bytes
 * hash to the digest, so neither side has to trust the other's store.
 */

import { Readable } from 'node:stream';
import { isDigest } from '../domain/data.js';
import { GridxError } from '../errors.js';
import type { BlobStore } from '../storage/blob-store.js';
import type { JsonChannel } from './wire.js';

/** A transfer that goes silent this long is given up. */
const SILENCE_MS = 15_000;
/** The slowest transfer tolerated, for a whole file's deadline: 1 MiB/s. */
const MIN_BYTES_PER_MS = (1024 * 1024) / 1000;

/** How long a file of `size` bytes may take to arrive. */
export function transferDeadline(size: number): AbortSignal {
  return AbortSignal.timeout(SILENCE_MS + Math.ceil(size / MIN_BYTES_PER_MS));
}

export interface BlobHeader {
  type: 'blob';
  digest: string;
  size: number;
}

export function isBlobHeader(message: unknown): message is BlobHeader {
  const m = message as Partial<BlobHeader> | null;
  return m?.type === 'blob' && isDigest(m.digest) && Number.isSafeInteger(m.size) && (m.size as number) >= 0;
}

/** Sends the stored blob `digest`: its header, then its bytes. */
export async function sendBlob(channel: JsonChannel, blobs: Pick<BlobStore, 'stat' | 'open'>, digest: string, signal?: AbortSignal): Promise<void> {
  const blob = await blobs.stat(digest);
  if (!blob) throw new GridxError('NOT_FOUND', `no blob ${digest} here to send`);
  const options = signal ? { signal } : {};
  await channel.write({ type: 'blob', digest, size: blob.size } satisfies BlobHeader, options);
  // The store's read chunks (64 KiB) are the frames.
  for await (const chunk of blobs.open(digest)) await channel.writeBytes(chunk as Buffer, options);
}

/**
 * Reads the bytes a header announced into `blobs`, kept only when they hash to its digest
 * (INVALID_INPUT otherwise) and fit `maxBytes` (BODY_TOO_LARGE). Either failure leaves the
 * stream mid-file: the caller ends it.
 */
export async function receiveBlob(
  channel: JsonChannel,
  blobs: Pick<BlobStore, 'put'>,
  header: BlobHeader,
  options: { maxBytes: number; signal?: AbortSignal },
): Promise<void> {
  if (header.size > options.maxBytes) {
    throw new GridxError('BODY_TOO_LARGE', `blob ${header.digest} is ${header.size} bytes, past the ${options.maxBytes} this node takes`);
  }
  const read = options.signal ? { signal: options.signal } : {};
  async function* frames(): AsyncGenerator<Uint8Array> {
    for (let left = header.size; left > 0; ) {
      const frame = await channel.readBytes(read);
      if (frame.length === 0 || frame.length > left) throw new GridxError('REMOTE_ERROR', `blob ${header.digest} came with more or fewer bytes than its ${header.size}`);
      left -= frame.length;
      yield frame;
    }
  }
  await blobs.put(Readable.from(frames()), { expect: header.digest, maxBytes: options.maxBytes, ...read });
}
