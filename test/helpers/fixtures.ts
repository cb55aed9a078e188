import type { JobSpec } from '../../src/domain/job.js';
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
