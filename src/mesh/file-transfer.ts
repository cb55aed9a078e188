/**
 * Files on a /gridx/job stream: a job's inputs from the origin to the peer before it runs,
 * its outputs from the peer back before the result. A file is a `blob` message naming its
 * digest and size, then raw frames of its bytes; the receiver keeps it only when the bytes
 * hash to the digest, so neither side has to trust the other's store.
 *
 * Flow control is the receiver's: the sender may have WINDOW_BYTES unconsumed, and the
 * receiver grants STEP_BYTES more with a `more` message as it stores what came. The
 * muxer's own window grows past what libp2p buffers for a slow reader (4 MiB, then the
 * stream is aborted), so without this a file larger than that broke off mid-transfer.
 */

import { Readable } from 'node:stream';
import { isDigest } from '../domain/data.js';
import { GridxError } from '../errors.js';
import type { BlobStore } from '../storage/blob-store.js';
import { type JsonChannel, ProtocolError } from './wire.js';

/** Bytes a sender may have on the way before the receiver grants more: under libp2p's 4 MiB read buffer. */
const WINDOW_BYTES = 2 * 1024 * 1024;
/** Bytes one `more` grants; frames (the store's read pieces) are at most this large. */
const STEP_BYTES = 1024 * 1024;

/** A transfer that goes silent this long is given up (and an origin that sends no input file). */
export const SILENCE_MS = 15_000;
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

/**
 * Sends the stored blob `digest`: its header, then its bytes as the receiver grants room.
 * `grant` waits for the next `more`; by default it reads it off the channel (a side that
 * reads the channel elsewhere meanwhile routes them to it).
 */
export async function sendBlob(
  channel: JsonChannel,
  blobs: Pick<BlobStore, 'stat' | 'open'>,
  digest: string,
  options: { signal?: AbortSignal; grant?: () => Promise<void> } = {},
): Promise<void> {
  const blob = await blobs.stat(digest);
  if (!blob) throw new GridxError('NOT_FOUND', `no blob ${digest} here to send`);
  const { signal } = options;
  const io = signal ? { signal } : {};
  const grant =
    options.grant ??
    (async () => {
      const message = await channel.read<{ type?: unknown }>(io);
      if (message?.type !== 'more') throw new ProtocolError(`expected "more" while sending ${digest}`);
    });
  await channel.write({ type: 'blob', digest, size: blob.size } satisfies BlobHeader, io);
  let credit = Math.min(WINDOW_BYTES, blob.size);
  // The store's read pieces (at most STEP_BYTES) are the frames.
  for await (const chunk of blobs.open(digest)) {
    while (credit < (chunk as Buffer).length) {
      await grant();
      credit += STEP_BYTES;
    }
    credit -= (chunk as Buffer).length;
    await channel.writeBytes(chunk as Buffer, io);
  }
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
    let granted = Math.min(WINDOW_BYTES, header.size);
    for (let consumed = 0; consumed < header.size; ) {
      const frame = await channel.readBytes(read);
      if (frame.length === 0 || frame.length > header.size - consumed || frame.length > granted - consumed) {
        throw new GridxError('REMOTE_ERROR', `blob ${header.digest} came with more bytes than its ${header.size}, or than were granted`);
      }
      yield frame;
      // Asked for the next frame: this one is stored. Grant only what the sender still needs.
      consumed += frame.length;
      while (granted < header.size && granted - consumed <= WINDOW_BYTES - STEP_BYTES) {
        await channel.write({ type: 'more' }, read);
        granted += STEP_BYTES;
      }
    }
  }
  // One frame at a time: what is not yet stored stays with the sender.
  await blobs.put(Readable.from(frames(), { highWaterMark: 1 }), { expect: header.digest, maxBytes: options.maxBytes, ...read });
}

/** Grants (`more` messages) that a channel's one reader hands on to a sendBlob waiting for them. */
export class Grants {
  private waiting: Array<() => void> = [];
  private banked = 0;

  /** A `more` arrived. */
  add(): void {
    const waiter = this.waiting.shift();
    if (waiter) waiter();
    else this.banked++;
  }

  /** Resolves with the next grant. */
  next = (): Promise<void> => {
    if (this.banked > 0) {
      this.banked--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  };
}
