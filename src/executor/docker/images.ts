import dns from 'node:dns/promises';
import type Docker from 'dockerode';
import { internalAddressKind } from '../../domain/addresses.js';
import { isListed, registryRefusal } from '../../domain/image-policy.js';
import { type ImageRef, registryHost } from '../../domain/image-ref.js';
import { formatDuration } from '../../domain/units.js';
import { GridxError, clip, messageOf } from '../../errors.js';

export interface PullOptions {
  timeoutMs: number;
  /** Progress lines from the engine ("Downloading", "Pull complete", ...). */
  onProgress?: (status: string) => void;
  /**
   * The engine's own words when the pull fails, for the operator's log only: they may
   * quote whatever the remote end answered, and that goes to no user.
   */
  onFailure?: (engineMessage: string) => void;
  /** Stops waiting for the pull (the engine may finish it for others). */
  signal?: AbortSignal;
}

/** Resolves a host name to its addresses (all of them). */
export type Lookup = (host: string) => Promise<string[]>;

export const systemLookup: Lookup = async (host) => (await dns.lookup(host, { all: true, verbatim: true })).map((a) => a.address);

/** The resolver can stall for its own retries; a registry that slow to resolve is refused. */
const LOOKUP_TIMEOUT_MS = 10_000;

/**
 * Why `ref` may not be pulled, checked just before the engine would connect: the
 * registry rule by name (image-policy.ts), then, for a host admitted only through "*",
 * every address its name resolves to. A listed host is the operator's word and is not
 * resolved. The engine resolves the name again itself, so a name whose answers change
 * between the two lookups is not caught here.
 */
export async function pullRefusal(ref: ImageRef, registries: readonly string[], lookup: Lookup = systemLookup): Promise<string | undefined> {
  const byName = registryRefusal(ref.registry, registries);
  if (byName) return byName;
  if (isListed(ref.registry, registries)) return undefined;
  let addresses: string[];
  let timer: NodeJS.Timeout | undefined;
  try {
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('lookup timed out')), LOOKUP_TIMEOUT_MS);
    });
    addresses = await Promise.race([lookup(registryHost(ref.registry)), late]);
  } catch {
    return `registry ${clip(ref.registry)} does not resolve on this node`;
  } finally {
    clearTimeout(timer);
  }
  const kind = addresses.map((a) => internalAddressKind(a)).find((k) => k !== undefined);
  // The address itself stays out of the message: it describes the operator's network.
  if (kind) {
    return `registry ${clip(ref.registry)} resolves to a ${kind} address; this node pulls from such a registry only when runner.docker.registries lists it by name`;
  }
  return undefined;
}

/**
 * Pulls `ref` by its canonical name, failing with IMAGE_NOT_FOUND after `timeoutMs` or
 * when the registry refuses. `shown` is the image as the user wrote it. The engine keeps
 * pulling layers other callers share; we only stop waiting.
 */
export async function pullImage(docker: Docker, ref: ImageRef, shown: string, options: PullOptions): Promise<void> {
  let stream: NodeJS.ReadableStream | undefined;
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  let onAbort: (() => void) | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => {
        timedOut = true;
        reject(new Error(`pull did not finish within ${formatDuration(options.timeoutMs)}`));
        (stream as { destroy?: () => void } | undefined)?.destroy?.();
      }, options.timeoutMs);
      if (options.signal?.aborted) return reject(new Error('pull aborted'));
      onAbort = () => {
        reject(new Error('pull aborted'));
        (stream as { destroy?: () => void } | undefined)?.destroy?.();
      };
      options.signal?.addEventListener('abort', onAbort, { once: true });
      // A digest, when given, goes where the tag would: the engine reads it as one.
      const from = { fromImage: `${ref.registry}/${ref.repository}`, tag: ref.digest ?? ref.tag ?? 'latest' };
      docker.createImage(from, (err: unknown, s: NodeJS.ReadableStream) => {
        if (err) return reject(err);
        stream = s;
        docker.modem.followProgress(
          s,
          (doneErr: Error | null, events: Array<{ error?: string }>) => {
            const failed = events?.find((e) => e.error);
            if (doneErr) reject(doneErr);
            else if (failed) reject(new Error(failed.error));
            else resolve();
          },
          (event: { status?: string; id?: string; progress?: string }) => {
            if (event.status) options.onProgress?.([event.id, event.status, event.progress].filter(Boolean).join(' '));
          },
        );
      });
    });
  } catch (err) {
    options.onFailure?.(messageOf(err).trim());
    // No cause either: whoever serializes the error must not find the remote's answer in it.
    throw new GridxError(
      'IMAGE_NOT_FOUND',
      `image "${clip(shown)}" is not on this node and could not be pulled from ${clip(ref.registry)}` +
        (timedOut ? ` within ${formatDuration(options.timeoutMs)}` : '') +
        '; check the name and tag and that the registry serves it, or load the image onto the node (docker load)',
    );
  } finally {
    clearTimeout(timer);
    if (onAbort) options.signal?.removeEventListener('abort', onAbort);
  }
}

/** True when the engine answered 404 "No such image". */
export function isNoSuchImage(err: unknown): boolean {
  const e = err as { statusCode?: number; json?: { message?: string }; message?: string };
  return e?.statusCode === 404 && /no such image/i.test(e.json?.message ?? e.message ?? '');
}
