/**
 * The files of the executions this node runs: inputs become blobs (URLs fetched by the
 * node, checked against their sha256) bound read-only under /inputs; each execution gets
 * its own size-capped /outputs, collected into blobs when it ends. While an execution holds
 * a blob, the store's collector leaves it alone.
 */

import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Config } from '../config/schema.js';
import { GridxError, clip, isGridxError, messageOf } from '../errors.js';
import type { Logger } from '../logger.js';
import type { JobInput } from '../domain/data.js';
import { OUTPUTS_DIR } from '../domain/data.js';
import type { OutputManifest } from '../domain/data.js';
import type { ExecutionFiles, ExecutionRequest } from '../executor/executor.js';
import type { BlobStore } from './blob-store.js';
import { type FetchUrlOptions, fetchUrl } from './fetch-url.js';
import { OutputVolumes } from './output-volumes.js';

export interface JobFilesDeps {
  blobs: BlobStore;
  volumes: OutputVolumes;
  /** How URL inputs are fetched: inputs.url_timeout, storage.max_blob, inputs.allow_private_urls. */
  fetch: Omit<FetchUrlOptions, 'signal'>;
  /**
   * Where a digest input missing here comes from (a runner: its server, under the
   * execution's lease). Whatever it sends is stored only if it hashes to the digest.
   */
  remote?: (executionId: string, digest: string, signal?: AbortSignal) => Promise<Readable>;
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
      const digest = await this.place(executionId, input, i, held, signal);
      binds.push(`${this.deps.blobs.path(digest)}:${input.path}:ro`);
    }
    const { hostPath } = await this.deps.volumes.acquire(executionId);
    binds.push(`${hostPath}:${OUTPUTS_DIR}:rw`);
    return binds;
  }

  /** The blob input `i` is, fetched when it is a URL; INPUT_UNAVAILABLE naming the input otherwise. */
  private async place(executionId: string, input: JobInput, i: number, held: string[], signal?: AbortSignal): Promise<string> {
    const { blobs, remote } = this.deps;
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
    if (!(await blobs.stat(digest)) && remote) {
      try {
        await blobs.put(await remote(executionId, digest, signal), { expect: digest, ...(signal ? { signal } : {}) });
      } catch (err) {
        throw fail(`cannot fetch ${digest} from the server: ${messageOf(err)}`, err);
      }
    }
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

/**
 * The files of the Docker executor's jobs on a node or a runner: /outputs volumes under
 * `<data dir>/outputs`, started, and inputs placed from `blobs` (and `remote`, for digests
 * that live elsewhere).
 */
export async function openJobFiles(
  config: Readonly<Config>,
  blobs: BlobStore,
  log: Logger,
  remote?: JobFilesDeps['remote'],
): Promise<{ files: JobFiles; volumes: OutputVolumes }> {
  const volumes = new OutputVolumes({ root: path.join(config.dataDir, 'outputs'), sizeBytes: config.sandbox.outputsBytes, log: log.child('outputs') });
  await volumes.start();
  const files = new JobFiles({
    blobs,
    volumes,
    fetch: { timeoutMs: config.inputs.urlTimeoutMs, maxBytes: config.storage.maxBlobBytes, allowPrivate: config.inputs.allowPrivateUrls },
    ...(remote ? { remote } : {}),
  });
  return { files, volumes };
}
