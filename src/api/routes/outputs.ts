/**
 * A job's output files, in both dialects: the manifest, one file by its path (with Range),
 * and all of them as one tar stream. Only those who may see the job's output may download it.
 */

import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type OutputFile, type OutputManifest, outputPathOf } from '../../domain/data.js';
import { type Job, isTerminal } from '../../domain/job.js';
import { GridxError, quote } from '../../errors.js';
import type { BlobStore } from '../../storage/blob-store.js';
import { tarSize, tarStream } from '../../storage/tar.js';
import type { JobStore } from '../../store/store.js';
import { type AuthDeps, mustOwn, optionalAccount } from '../auth.js';
import { sendFile } from '../send-file.js';
import { outputsView } from '../views/jobs.js';
import { idParams } from './shared.js';

export interface OutputRouteDeps extends AuthDeps {
  store: Pick<JobStore, 'get'>;
  blobs: Pick<BlobStore, 'open' | 'stat'>;
}

export function outputRoutes(deps: OutputRouteDeps) {
  /** The job's manifest, once the caller is known to be allowed to see it. */
  const manifestOf = async (request: FastifyRequest<{ Params: { id: string } }>): Promise<{ job: Job; manifest: OutputManifest }> => {
    const { id } = request.params;
    const job = await deps.store.get(id);
    if (!job) throw new GridxError('NOT_FOUND', `no job with id ${id} on this node; list jobs with GET /jobs`);
    mustOwn(job, await optionalAccount(request, deps), 'download the outputs of');
    if (job.outputs) return { job, manifest: job.outputs };
    if (!isTerminal(job.status)) {
      throw new GridxError('CONFLICT', `job ${id} is ${job.status}; its outputs are collected when it ends (wait with GET /jobs/${id})`);
    }
    throw new GridxError('NOT_FOUND', `job ${id} has no outputs: it ended ${job.status} without running to an end${job.message ? ` (${job.message})` : ''}`);
  };

  /** Files the store let go (storage.max_size) are gone: say so before any byte is sent. */
  const mustBeStored = async (job: Job, files: readonly OutputFile[]) => {
    for (const f of files) {
      if (!(await deps.blobs.stat(f.sha256))) {
        throw new GridxError('NOT_FOUND', `the output ${quote(f.path)} of job ${job.id} is no longer stored on this node (its store keeps storage.max_size, least recently used first)`);
      }
    }
  };

  const oneFile = async (request: FastifyRequest<{ Params: { id: string; '*': string } }>, reply: FastifyReply) => {
    const asked = request.params['*'];
    const path = outputPathOf(asked);
    if (path === undefined) {
      throw new GridxError('INVALID_INPUT', `${quote(asked)} is not a path inside the job's outputs: give it relative to /outputs, without "..", "." or empty parts`);
    }
    const { job, manifest } = await manifestOf(request);
    const file = manifest.files.find((f) => f.path === path);
    if (!file) throw new GridxError('NOT_FOUND', `job ${job.id} left no file ${quote(path)} under /outputs; see GET /jobs/${job.id}/outputs`);
    await mustBeStored(job, [file]);
    return sendFile(request, reply, {
      size: file.size,
      digest: file.sha256,
      name: path.slice(path.lastIndexOf('/') + 1),
      open: (range) => deps.blobs.open(file.sha256, range),
    });
  };

  const tarball = async (request: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply) => {
    const { job, manifest } = await manifestOf(request);
    await mustBeStored(job, manifest.files);
    const entries = manifest.files.map((f) => ({ path: f.path, size: f.size, open: () => deps.blobs.open(f.sha256) }));
    void reply
      .type('application/x-tar')
      .header('content-length', String(tarSize(entries)))
      .header('content-disposition', `attachment; filename="${job.id}-outputs.tar"`)
      .header('etag', `"${manifest.root}"`);
    if (request.method === 'HEAD') return reply.send();
    return reply.send(Readable.from(tarStream(entries, new Date(job.finishedAt ?? job.updatedAt))));
  };

  const fileParams = { type: 'object', properties: { id: idParams.properties.id, '*': { type: 'string' } }, required: ['id'] } as const;

  return async function routes(app: FastifyInstance): Promise<void> {
    for (const base of ['/jobs/:id', '/api/tasks/:id']) {
      app.get<{ Params: { id: string } }>(`${base}/outputs`, { schema: { params: idParams } }, async (request) => {
        const { job, manifest } = await manifestOf(request);
        return outputsView(job, manifest);
      });
      app.get<{ Params: { id: string } }>(`${base}/outputs.tar`, { schema: { params: idParams } }, tarball);
      app.get<{ Params: { id: string; '*': string } }>(`${base}/outputs/*`, { schema: { params: fileParams } }, oneFile);
    }
  };
}
