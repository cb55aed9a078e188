import type { ExecutionResult, JobSpec } from '../../src/domain/job.js';
import { isGridxError } from '../../src/errors.js';
import type { SpecPolicy } from '../../src/domain/spec.js';

export const POLICY: SpecPolicy = {
  memoryBytes: 512 * 1024 * 1024,
  cpus: 1,
  timeoutMs: 300_000,
  maxGpus: 0,
  allowedNetworks: ['none'],
  allowedVolumes: [],
  writableVolumes: false,
  allowImages: [],
  denyImages: [],
  registries: ['docker.io'],
};

/** A small valid spec for tests that need one. */
export const SPEC: JobSpec = {
  image: 'gridx/busybox:local',
  command: ['echo', 'hi'],
  env: {},
  resources: { cpus: 1, memoryBytes: 64 * 1024 * 1024, gpus: 0 },
  timeoutMs: 10_000,
  network: 'none',
  volumes: [],
};

/** The code and message of the GridxError `promise` rejects with; fails the test if it resolves. */
export async function errorOf(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (err) {
    if (isGridxError(err)) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected the call to fail');
}

/** A result as a runner reports it: exit 0 (or `exitCode`) with `stdout`. */
export function okResult(stdout = 'hi\n', exitCode = 0): ExecutionResult {
  const at = new Date().toISOString();
  return { exitCode, oomKilled: false, timedOut: false, cancelled: false, stdout, stderr: '', stdoutTruncated: false, stderrTruncated: false, startedAt: at, finishedAt: at, durationMs: 1 };
}
