/** Settings of the Docker sandbox (runner.docker.*, Parity's keys as they are); part of the one schema (schema.ts). */

import path from 'node:path';
import { isImagePattern } from '../domain/image-policy.js';
import { type Parser, bool, cpus, duration, int, list, size, str, userSpec } from './parsers.js';
import type { Setting } from './schema.js';

/** An image allow/deny list; an entry the image policy cannot read is an error at start, not a silent no-op. */
const imagePatterns: Parser<string[]> = (raw) => {
  const value = list(raw);
  return value?.every(isImagePattern) ? value.map((entry) => entry.trim()) : undefined;
};

export const SANDBOX_SETTINGS = {
  dockerSocket: {
    key: 'runner.docker.socket',
    env: 'GRIDX_DOCKER_SOCKET',
    expect: 'a unix socket path',
    parse: str,
    default: () => '/var/run/docker.sock',
    doc: 'The Docker Engine API socket.',
  },
  memoryBytes: {
    key: 'runner.docker.memory_limit',
    env: 'GRIDX_MEMORY_LIMIT',
    expect: 'a size of at least 6m, such as "512m"',
    parse: size(6 * 1024 * 1024),
    default: () => 512 * 1024 * 1024,
    doc: 'Memory cap and default per job; swap is held equal to it.',
  },
  cpus: {
    key: 'runner.docker.cpu_limit',
    env: 'GRIDX_CPU_LIMIT',
    expect: 'a positive number of cores, such as 1.0',
    parse: cpus,
    default: () => 1.0,
    doc: 'CPU cap and default per job, in cores.',
  },
  timeoutMs: {
    key: 'runner.docker.timeout',
    env: 'GRIDX_TIMEOUT',
    expect: 'a duration such as "5m" or a number of seconds',
    parse: duration,
    default: () => 5 * 60_000,
    doc: 'Time cap and default per job; then SIGKILL and status timed_out.',
  },
  pidsLimit: {
    key: 'runner.docker.pids_limit',
    env: 'GRIDX_PIDS_LIMIT',
    expect: 'a whole number 8-65536',
    parse: int(8, 65536),
    default: () => 256,
    doc: 'Processes and threads per job.',
  },
  tmpfsBytes: {
    key: 'runner.docker.tmpfs_size',
    env: 'GRIDX_TMPFS_SIZE',
    expect: 'a size such as "64m"',
    parse: size(1024 * 1024),
    default: () => 64 * 1024 * 1024,
    doc: 'Size of the writable tmpfs at /tmp; the root filesystem is read-only.',
  },
  outputLimitBytes: {
    key: 'runner.docker.output_limit',
    env: 'GRIDX_OUTPUT_LIMIT',
    expect: 'a size such as "1m"',
    parse: size(1024),
    default: () => 1024 * 1024,
    doc: 'Captured stdout and stderr are each capped at this; the rest is dropped and flagged.',
  },
  outputsBytes: {
    key: 'runner.docker.outputs_size',
    env: 'GRIDX_OUTPUTS_SIZE',
    expect: 'a size of at least 1m, such as "256m"',
    parse: size(1024 * 1024),
    default: () => 256 * 1024 * 1024,
    doc: 'Room per job under /outputs, on a file system of its own: a job that fills it fails with output_limit and keeps what fitted.',
  },
  user: {
    key: 'runner.docker.user',
    env: 'GRIDX_USER',
    expect: 'a non-root uid or uid:gid in decimal, such as 65534 or 1000:1000 (each 1-4294967294; never 0)',
    parse: userSpec,
    default: () => '65534:65534',
    doc: 'Non-root user the job runs as, as uid or uid:gid; a bare uid runs with gid = uid (images have no passwd entry for it, and Docker would give gid 0).',
  },
  allowedNetworks: {
    key: 'runner.docker.networks',
    env: 'GRIDX_ALLOW_NETWORKS',
    expect: 'a list of Docker network modes',
    parse: list,
    default: () => ['none'],
    doc: 'Network modes a job may ask for; "none" is the default and always allowed.',
  },
  allowedVolumes: {
    key: 'runner.docker.volumes',
    env: 'GRIDX_ALLOW_VOLUMES',
    expect: 'a list of absolute host paths',
    parse: (raw: unknown) => {
      const value = list(raw);
      return value?.every((p) => path.isAbsolute(p)) ? value.map((p) => path.resolve(p)) : undefined;
    },
    default: () => [],
    doc: 'Host paths (and what is under them) a job may mount, judged by real path when the container is created: a symlink may not lead out. Empty: no volumes.',
  },
  writableVolumes: {
    key: 'runner.docker.writable_volumes',
    env: 'GRIDX_WRITABLE_VOLUMES',
    expect: 'true or false',
    parse: bool,
    default: () => false,
    doc: 'Whether allowed volumes may be mounted read-write; read-only otherwise. When true, jobs can plant symlinks there, so each root is mountable only whole (no path below it) and roots must not nest.',
  },
  pullTimeoutMs: {
    key: 'runner.docker.pull_timeout',
    env: 'GRIDX_PULL_TIMEOUT',
    expect: 'a duration such as "2m"',
    parse: duration,
    default: () => 2 * 60_000,
    doc: 'How long an image pull may take before the job fails.',
  },
  allowImages: {
    key: 'runner.docker.images.allow',
    env: 'GRIDX_ALLOW_IMAGES',
    expect: 'a list of images or patterns such as alpine, alpine:3.19, ghcr.io/acme/* or gridx/',
    parse: imagePatterns,
    default: () => [],
    doc: 'Only these images may run, matched after normalizing (alpine = docker.io/library/alpine, any tag). "*" matches within one path component; a trailing "/" covers everything below. Empty: any image (registries still apply).',
  },
  denyImages: {
    key: 'runner.docker.images.deny',
    env: 'GRIDX_DENY_IMAGES',
    expect: 'a list of images or patterns such as alpine, alpine:3.19, ghcr.io/acme/* or gridx/',
    parse: imagePatterns,
    default: () => [],
    doc: 'These images are refused, matched like runner.docker.images.allow. An entry with a tag refuses only that tag (not the same image by digest). With either list set, bare image ids are refused.',
  },
  maxGpus: {
    key: 'runner.docker.gpus',
    env: 'GRIDX_GPUS',
    expect: 'a whole number 0-64',
    parse: int(0, 64),
    default: () => undefined,
    doc: 'GPUs a job may ask for. Default: the GPUs the node detects.',
  },
} satisfies Record<string, Setting<unknown>>;
