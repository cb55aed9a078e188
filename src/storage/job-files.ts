/**
 * The files of the executions this node runs: inputs become blobs (URLs fetched by the
 * node, checked against their sha256) bound read-only under /inputs; each execution gets
 * its own size-capped /outputs, collected into blobs when it ends. While an execution holds
 * a blob, the store's collector leaves it alone.
 */

import { GridxError, clip, isGridxError, messageOf } from '../errors.js';
import type { JobInput } from '../domain/data.js';
import { OUTPUTS_DIR } from '../domain/data.js';
import type { OutputManifest } from '../domain/data.js';
import type { ExecutionFiles, ExecutionRequest } from '../executor/executor.js';
import type { BlobStore } from './blob-store.js';
import { type FetchUrlOptions, fetchUrl } from './fetch-url.js';
import type { OutputVolumes } from './output-volumes.js';

export interface JobFilesDeps {
  blobs: BlobStore;
  volumes: OutputVolumes;
  /** How URL inputs are fetched: inputs.url_timeout, storage.max_blob, inputs.allow_private_urls. */
  fetch: Omit<FetchUrlOptions, 'signal'>;
}

export class JobFiles implements ExecutionFiles {
  /** Blobs each execution holds: its inputs. */
  private readonly holds = new Map<string, string[]>();

  constructor(private readonly deps: JobFilesDeps) {}

  async prepare(request: ExecutionRequest, signal?: AbortSignal): Promise<string[]> {
    const { executionId } = request;
    const held: string[] = [];
    this.holds.set(executionId, held);
    const binds: string[] = [];
    for (const [i, input] of (request.spec.inputs ?? []).entries()) {
      const digest = await this.place(input, i, held, signal);
      binds.push(`${this.deps.blobs.path(digest)}:${input.path}:ro`);
    }
    const { hostPath } = await this.deps.volumes.acquire(executionId);
    binds.push(`${hostPath}:${OUTPUTS_DIR}:rw`);
    return binds;
  }

  /** The blob input `i` is, fetched when it is a URL; INPUT_UNAVAILABLE naming the input otherwise. */
  private async place(input: JobInput, i: number, held: string[], signal?: AbortSignal): Promise<string> {
    const { blobs } = this.deps;
    const fail = (what: string, cause?: unknown) =>
      new GridxError('INPUT_UNAVAILABLE', `inputs[${i}] (${clip(input.path, 100)}): ${what}`, cause === undefined ? {} : { cause });
    let digest: string;
    if ('digest' in input) {
      digest = input.digest;
    } else {
      try {
        const body = await fetchUrl(input.url, { ...this.deps.fetch, ...(signal ? { signal } : {}) });
        digest = (await blobs.put(body, { ...(input.sha256 ? { expect: input.sha256 } : {}), ...(signal ? { signal } : {}) })).digest;
      } catch (err) {
        const why = isGridxError(err, 'INVALID_INPUT') ? `the file at ${clip(input.url, 100)} does not match its sha256: ${messageOf(err)}` : messageOf(err);
        throw fail(why, err);
      }
    }
    held.push(digest);
    if (!(await blobs.stat(digest))) throw fail(`no blob ${digest} on this node (upload it with POST /blobs)`);
    await blobs.touch(digest);
    return digest;
  }

  collect(executionId: string): Promise<OutputManifest> {
    return this.deps.volumes.collect(executionId, (file) => this.deps.blobs.putFile(file));
  }

  async release(executionId: string): Promise<void> {
    this.holds.delete(executionId);
    await this.deps.volumes.release(executionId);
  }

  /** Blobs that running executions hold, for the store's collector. */
  held(): Set<string> {
    return new Set([...this.holds.values()].flat());
  }
}
