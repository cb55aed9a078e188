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
