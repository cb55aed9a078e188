/**
 * Uploads of raw bytes (POST /blobs, a runner's output files): the body reaches the handler
 * as the request stream, never whole in memory, and a refused upload does not leave the
 * connection stuck behind the rest of its body.
 */

import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { GridxError } from '../errors.js';

export const RAW = 'application/octet-stream';

/**
 * In `app`'s scope only: a raw body reaches the handler as the request stream, uncounted by
 * api.body_limit (the store caps it at storage.max_blob as it hashes it).
 */
export function acceptRawBodies(app: FastifyInstance): void {
  app.addContentTypeParser(RAW, (_request, payload, done) => done(null, payload));
}

/** Aborts when the client goes away before its upload ended. */
export function abortOnClose(request: IncomingMessage): AbortSignal {
  const controller = new AbortController();
  request.once('close', () => {
    if (!request.complete) controller.abort(new GridxError('INVALID_INPUT', 'the upload was cut off before its end'));
  });
  return controller.signal;
}

/**
 * Runs `store`; when it throws before the body was read to its end, the connection closes
 * after the answer, or the client's next request on it would wait behind bytes nobody reads.
 */
export async function storeUpload<T>(request: FastifyRequest, reply: FastifyReply, store: () => Promise<T>): Promise<T> {
  try {
    return await store();
  } catch (err) {
    if (!request.raw.complete) reply.header('connection', 'close');
    throw err;
  }
}
