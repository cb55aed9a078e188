/**
 * Blobs: files uploaded for jobs' inputs. POST /blobs streams a raw body into the store
 * (never whole in memory); GET and HEAD /blobs/:digest stream it back, with Range. A blob
 * is readable by the account that uploaded it (anyone's, on an open node, when uploaded
 * without a key); to anybody else it does not exist.
 */

import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { isDigest, parseSha256 } from '../../domain/data.js';
import { GridxError, quote } from '../../errors.js';
import type { BlobStore } from '../../storage/blob-store.js';
import type { BlobRef } from '../../wire/gridx.js';
import { type AuthDeps, optionalAccount, writerAccount } from '../auth.js';
import { RAW, abortOnClose, acceptRawBodies, storeUpload } from '../raw-upload.js';
import { sendFile } from '../send-file.js';

export interface BlobRouteDeps extends AuthDeps {
  blobs: Pick<BlobStore, 'put' | 'grant' | 'mayUse' | 'stat' | 'open'>;
  /** Aborts uploads under way when the node stops. */
  shutdown: AbortSignal;
}

export function blobRoutes(deps: BlobRouteDeps) {
  return async function routes(app: FastifyInstance): Promise<void> {
    acceptRawBodies(app);

    app.post<{ Querystring: { sha256?: string } }>(
      '/blobs',
      { schema: { querystring: { type: 'object', properties: { sha256: { type: 'string', maxLength: 80 } }, additionalProperties: false } } },
      async (request, reply) => {
        const account = await writerAccount(request, deps);
        if (request.headers['content-type']?.split(';')[0]?.trim().toLowerCase() !== RAW) {
          throw new GridxError('UNSUPPORTED_MEDIA_TYPE', `send the file's bytes as the body with Content-Type: ${RAW}`);
        }
        const { sha256 } = request.query;
        const expect = sha256 === undefined ? undefined : parseSha256(sha256);
        if (sha256 !== undefined && expect === undefined) {
          throw new GridxError('INVALID_INPUT', `sha256 ${quote(sha256, 80)} is not a sha256: give 64 hex digits, with or without "sha256:"`);
        }
        const signal = AbortSignal.any([deps.shutdown, abortOnClose(request.raw)]);
        const ref = await storeUpload(request, reply, () => deps.blobs.put(request.body as Readable, { ...(expect ? { expect } : {}), signal }));
        await deps.blobs.grant(ref.digest, account?.id);
        return reply.code(201).send(ref satisfies BlobRef);
      },
    );

    app.route<{ Params: { digest: string } }>({
      method: ['GET', 'HEAD'],
      url: '/blobs/:digest',
      schema: { params: { type: 'object', properties: { digest: { type: 'string', maxLength: 100 } }, required: ['digest'] } },
      exposeHeadRoute: false,
      handler: async (request, reply) => {
        const { digest } = request.params;
        if (!isDigest(digest)) {
          throw new GridxError('INVALID_INPUT', `${quote(digest, 100)} is not a digest: blobs are named "sha256:" and 64 lowercase hex digits, as POST /blobs answers`);
        }
        const account = await optionalAccount(request, deps);
        const blob = (await deps.blobs.mayUse(digest, account?.id)) ? await deps.blobs.stat(digest) : undefined;
        if (!blob) {
          // The same answer whether it is missing or someone else's: nobody learns what others stored.
          throw new GridxError('NOT_FOUND', `no blob ${digest} here for ${account ? `account ${account.id}` : 'callers without a key'}; upload it with POST /blobs`);
        }
        return sendFile(request, reply, { size: blob.size, digest, open: (range) => deps.blobs.open(digest, range) });
      },
    });
  };
}
