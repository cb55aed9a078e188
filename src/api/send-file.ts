/**
 * Sends stored bytes (a blob, one output file) with HTTP range support: `Range: bytes=a-b`,
 * `a-` and `-n` (one range; a multi-range request gets the whole file, as RFC 9110 allows),
 * 206 with Content-Range, 416 when nothing of the file is asked for. HEAD gets the headers.
 */

import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { GridxError, quote } from '../errors.js';

export interface StoredFile {
  size: number;
  /** The sha256 digest: the ETag. */
  digest: string;
  /** Opens bytes start..end inclusive. */
  open: (range?: { start: number; end: number }) => Readable;
  /** Offered as the download's file name. */
  name?: string;
}

/** The byte range a Range header asks of a file of `size` bytes; undefined: the whole file; 'unsatisfiable': 416. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | undefined | 'unsatisfiable' {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined; // malformed or several ranges: ignored
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

export function sendFile(request: FastifyRequest, reply: FastifyReply, file: StoredFile): FastifyReply {
  const range = parseRange(request.headers.range, file.size);
  void reply
    .header('accept-ranges', 'bytes')
    .header('etag', `"${file.digest}"`)
    .header('x-content-sha256', file.digest)
    .type('application/octet-stream');
  if (file.name !== undefined) {
    void reply.header('content-disposition', `attachment; filename*=UTF-8''${encodeURIComponent(file.name)}`);
  }
  if (range === 'unsatisfiable') {
    void reply.header('content-range', `bytes */${file.size}`);
    throw new GridxError('RANGE_NOT_SATISFIABLE', `range ${quote(request.headers.range, 100)} asks for nothing of this file's ${file.size} bytes`);
  }
  const length = range ? range.end - range.start + 1 : file.size;
  void reply.header('content-length', String(length));
  if (range) void reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${file.size}`);
  if (request.method === 'HEAD' || length === 0) return reply.send();
  return reply.send(file.open(range));
}
