import type Docker from 'dockerode';
import { GridxError, messageOf } from '../../errors.js';
import { formatDuration } from '../../domain/units.js';

export interface PullOptions {
  timeoutMs: number;
  /** Progress lines from the engine ("Downloading", "Pull complete", ...). */
  onProgress?: (status: string) => void;
}

/**
 * Pulls `image`, failing with IMAGE_NOT_FOUND after `timeoutMs` or when the registry
 * refuses. The engine keeps pulling layers other callers share; we only stop waiting.
 */
export async function pullImage(docker: Docker, image: string, options: PullOptions): Promise<void> {
  const ref = image.includes(':') || image.includes('@') ? image : `${image}:latest`;
  let stream: NodeJS.ReadableStream | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`pull did not finish within ${formatDuration(options.timeoutMs)}`));
        (stream as { destroy?: () => void } | undefined)?.destroy?.();
      }, options.timeoutMs);
      docker.pull(ref, (err: unknown, s: NodeJS.ReadableStream) => {
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
    throw new GridxError(
      'IMAGE_NOT_FOUND',
      `image "${image}" is not on this node and could not be pulled (${messageOf(err).trim()}); check the name, or load it with docker load`,
      { cause: err },
    );
  } finally {
    clearTimeout(timer);
  }
}

/** True when the engine answered 404 "No such image". */
export function isNoSuchImage(err: unknown): boolean {
  const e = err as { statusCode?: number; json?: { message?: string }; message?: string };
  return e?.statusCode === 404 && /no such image/i.test(e.json?.message ?? e.message ?? '');
}
