/**
 * Framing for the /gridx/* protocols: length-prefixed JSON messages with a size cap and
 * a read timeout. Garbage, truncated or oversized input ends in a ProtocolError, which
 * handlers log in one line before they reset the stream; nothing crashes the node.
 */

import type { Stream } from '@libp2p/interface';
import { type LengthPrefixedStream, lpStream } from '@libp2p/utils';

export const PROTOCOLS = {
  /** A peer's offer book, read in pages (offers themselves travel by gossipsub). */
  offer: '/gridx/offer/2.0.0',
  job: '/gridx/job/1.0.0',
} as const;

/** Largest message on any /gridx protocol. A job spec or a batch of offers fits well inside. */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

/**
 * The peer ended the stream before a whole message came: it hung up or timed out. A
 * ProtocolError all the same, but no sign of a hostile peer (peer-guard.ts counts the others).
 */
export class StreamEndedError extends ProtocolError {
  override name = 'StreamEndedError';
}

export interface JsonChannel {
  read<T = unknown>(options?: { signal?: AbortSignal }): Promise<T>;
  write(message: unknown, options?: { signal?: AbortSignal }): Promise<void>;
  /** One frame of raw bytes (a piece of a file), as written by writeBytes. */
  readBytes(options?: { signal?: AbortSignal }): Promise<Uint8Array>;
  writeBytes(bytes: Uint8Array, options?: { signal?: AbortSignal }): Promise<void>;
  stream: Stream;
}

export function jsonChannel(stream: Stream): JsonChannel {
  const lp: LengthPrefixedStream<Stream> = lpStream(stream, { maxDataLength: MAX_MESSAGE_BYTES });
  const readFrame = async (options: { signal?: AbortSignal }): Promise<Uint8Array> => {
    try {
      return (await lp.read(options)).subarray();
    } catch (err) {
      const e = err as Error;
      if (e.name === 'AbortError' || e.name === 'TimeoutError') throw err;
      if (e.name === 'UnexpectedEOFError') throw new StreamEndedError(`the stream ended inside a message: ${e.message}`);
      throw new ProtocolError(`unreadable message: ${e.message}`);
    }
  };
  return {
    stream,
    readBytes: (options = {}) => readFrame(options),
    async writeBytes(bytes: Uint8Array, options: { signal?: AbortSignal } = {}): Promise<void> {
      await lp.write(bytes, options);
    },
    async read<T>(options: { signal?: AbortSignal } = {}): Promise<T> {
      const bytes = await readFrame(options);
      try {
        return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as T;
      } catch (err) {
        throw new ProtocolError(`message is not JSON: ${(err as Error).message}`);
      }
    },
    async write(message: unknown, options: { signal?: AbortSignal } = {}): Promise<void> {
      await lp.write(new TextEncoder().encode(JSON.stringify(message)), options);
    },
  };
}
