/**
 * Turns a submitted job body into the canonical JobSpec, checking every field against
 * the node's policy. Pure: the same input and policy always give the same spec or the
 * same error, whose message names the field and the fix.
 */

import path from 'node:path';
import { GridxError, invalid } from '../errors.js';
import { INPUTS_DIR, OUTPUTS_DIR, type JobInput, checkInputPath, digestOf, isDigest, parseSha256 } from './data.js';
import { imageRefusal } from './image-policy.js';
import { parseImageRef } from './image-ref.js';
import type { JobSpec, VolumeMount } from './job.js';
import { checkHostPath } from './volume-paths.js';
import { splitShellWords } from './shellwords.js';
import { formatDuration, formatSize, parseCpus, parseDuration, parseSize } from './units.js';

/** What a node allows a job; the node's config provides it. */
export interface SpecPolicy {
  memoryBytes: number;
  cpus: number;
  timeoutMs: number;
  /** GPUs a job may ask for. */
  maxGpus: number;
  allowedNetworks: readonly string[];
  allowedVolumes: readonly string[];
  writableVolumes: boolean;
  allowImages: readonly string[];
  denyImages: readonly string[];
  /** Registries images may come from; "*" is any public one (see image-policy.ts). */
  registries: readonly string[];
}

export { imageRefusal };

/** The Grid-X dialect's body, as received (unchecked). */
export interface JobRequest {
  image?: unknown;
  command?: unknown;
  env?: unknown;
  workdir?: unknown;
  resources?: unknown;
  timeout?: unknown;
  network?: unknown;
  volumes?: unknown;
  inputs?: unknown;
}

/** A request's spec and the bytes of its inline inputs, by digest (the Intake stores them as blobs). */
export interface NormalizedRequest {
  spec: JobSpec;
  inline: Map<string, Buffer>;
}

const MAX_IMAGE_LENGTH = 512;
const MAX_ARGS = 4096;
const MAX_ENV = 1024;
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function normalizeSpec(body: unknown, policy: SpecPolicy): JobSpec {
  return normalizeRequest(body, policy).spec;
}

/** normalizeSpec, keeping the decoded bytes of inline (`content`) inputs. */
export function normalizeRequest(body: unknown, policy: SpecPolicy): NormalizedRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw invalid('body', 'must be a JSON object such as {"image": "alpine:latest", "command": "echo hi"}');
  }
  const req = body as JobRequest;
  const image = normalizeImage(req.image, policy);
  const command = normalizeCommand(req.command);
  const env = normalizeEnv(req.env);
  const spec: JobSpec = {
    image,
    command,
    env,
    resources: normalizeResources(req.resources, policy),
    timeoutMs: normalizeTimeout(req.timeout, policy),
    network: normalizeNetwork(req.network, policy),
    volumes: normalizeVolumes(req.volumes, policy),
  };
  const inline = new Map<string, Buffer>();
  const inputs = normalizeInputs(req.inputs, inline);
  if (inputs.length > 0) spec.inputs = inputs;
  if (req.workdir !== undefined && req.workdir !== null) {
    if (typeof req.workdir !== 'string' || !req.workdir.startsWith('/') || req.workdir.includes('\0')) {
      throw invalid('workdir', 'must be an absolute path inside the container, such as "/app"');
    }
    spec.workdir = req.workdir;
  }
  return { spec, inline };
}

const MAX_INPUTS = 1000;
const MAX_URL_LENGTH = 4096;

/**
 * `inputs`: files placed under /inputs before the job starts, each with exactly one source:
 * a blob's `digest`, inline base64 `content` (kept in `inline` by its digest), or a `url`
 * with an optional `sha256`.
 */
function normalizeInputs(raw: unknown, inline: Map<string, Buffer>): JobInput[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) {
    throw invalid('inputs', 'must be an array such as [{"path": "/inputs/data.csv", "digest": "sha256:..."}]');
  }
  if (raw.length > MAX_INPUTS) throw invalid('inputs', `has ${raw.length} files; at most ${MAX_INPUTS}`);
  const seen = new Set<string>();
  return raw.map((entry, i): JobInput => {
    const field = `inputs[${i}]`;
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
      throw invalid(field, 'must be an object {"path": "/inputs/NAME", and one of "digest", "content" or "url"}');
    }
    const e = entry as Record<string, unknown>;
    const unknown = Object.keys(e).find((k) => !['path', 'digest', 'content', 'url', 'sha256'].includes(k));
    if (unknown !== undefined) throw invalid(`${field}.${unknown}`, 'is not known; use path, digest, content, url or sha256');
    const path = checkInputPath(e.path, `${field}.path`);
    // One file per path, and no file where another input needs a directory.
    for (const other of seen) {
      if (other === path || other.startsWith(`${path}/`) || path.startsWith(`${other}/`)) {
        throw invalid(`${field}.path`, `"${path}" collides with another input at "${other}"`);
      }
    }
    seen.add(path);
    const sources = ['digest', 'content', 'url'].filter((k) => e[k] !== undefined && e[k] !== null);
    if (sources.length !== 1) {
      throw invalid(field, `needs exactly one source: "digest" (an uploaded blob), "content" (base64) or "url"; got ${sources.length === 0 ? 'none' : sources.join(' and ')}`);
    }
    if (e.sha256 !== undefined && e.url === undefined) throw invalid(`${field}.sha256`, 'goes with "url" only; a digest already names the bytes');
    if (e.digest !== undefined) {
      if (!isDigest(e.digest)) throw invalid(`${field}.digest`, 'must be "sha256:" and 64 lowercase hex digits, as POST /blobs answers');
      return { path, digest: e.digest };
    }
    if (e.content !== undefined) {
      if (typeof e.content !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(e.content)) {
        throw invalid(`${field}.content`, 'must be the file\'s bytes in base64');
      }
      const bytes = Buffer.from(e.content, 'base64');
      const digest = digestOf(bytes);
      inline.set(digest, bytes);
      return { path, digest };
    }
    if (typeof e.url !== 'string' || e.url.length > MAX_URL_LENGTH) throw invalid(`${field}.url`, 'must be an http:// or https:// URL');
    let url: URL;
    try {
      url = new URL(e.url);
    } catch {
      throw invalid(`${field}.url`, 'is not a valid URL; give an http:// or https:// URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid(`${field}.url`, `must be http:// or https://, not ${url.protocol}`);
    if (url.username !== '' || url.password !== '') throw invalid(`${field}.url`, 'must not carry a user name or password');
    if (e.sha256 === undefined || e.sha256 === null) return { path, url: url.href };
    const sha256 = parseSha256(e.sha256);
    if (!sha256) throw invalid(`${field}.sha256`, 'must be 64 hex digits (or "sha256:" and 64 hex digits)');
    return { path, url: url.href, sha256 };
  });
}

function normalizeImage(raw: unknown, policy: SpecPolicy): string {
  if (raw === undefined || raw === null) throw invalid('image', 'is required, e.g. "alpine:latest"');
  if (typeof raw !== 'string') throw invalid('image', `must be a string such as "alpine:latest", got ${typeOf(raw)}`);
  const image = raw.trim();
  if (image === '') throw invalid('image', 'must not be empty; give an image such as "alpine:latest"');
  if (image.length > MAX_IMAGE_LENGTH || !parseImageRef(image)) {
    throw invalid('image', `"${clip(image)}" is not a valid image reference; use a name like "alpine:latest"`);
  }
  const refusal = imageRefusal(image, policy);
  if (refusal) throw new GridxError('LIMIT_EXCEEDED', `image: ${refusal}`);
  return image;
}

function normalizeCommand(raw: unknown): string[] {
  if (raw === undefined || raw === null) {
    throw invalid('command', 'is required: a string such as "echo hi" or an array such as ["echo", "hi"]');
  }
  let argv: string[];
  if (typeof raw === 'string') {
    try {
      argv = splitShellWords(raw);
    } catch (err) {
      throw invalid('command', `cannot be split into words: ${(err as Error).message}`);
    }
  } else if (Array.isArray(raw)) {
    raw.forEach((arg, i) => {
      if (typeof arg !== 'string') throw invalid(`command[${i}]`, `must be a string, got ${typeOf(arg)}`);
    });
    argv = raw as string[];
  } else {
    throw invalid('command', `must be a string or an array of strings, got ${typeOf(raw)}`);
  }
  if (argv.length === 0 || argv[0] === '') throw invalid('command', 'must not be empty; give the program to run');
  if (argv.length > MAX_ARGS) throw invalid('command', `has ${argv.length} arguments; at most ${MAX_ARGS}`);
  if (argv.some((a) => a.includes('\0'))) throw invalid('command', 'must not contain NUL characters');
  return argv;
}

function normalizeEnv(raw: unknown): Record<string, string> {
  if (raw === undefined || raw === null) return {};
  const env: Record<string, string> = {};
  const add = (field: string, name: string, value: unknown) => {
    if (!ENV_NAME_RE.test(name)) throw invalid(field, `"${clip(name)}" is not a valid variable name`);
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      throw invalid(`${field}`, `value must be a string, got ${typeOf(value)}`);
    }
    const text = String(value);
    if (text.includes('\0')) throw invalid(field, 'must not contain NUL characters');
    env[name] = text;
  };
  if (Array.isArray(raw)) {
    raw.forEach((entry, i) => {
      if (typeof entry !== 'string' || !entry.includes('=')) {
        throw invalid(`env[${i}]`, 'must be a string "NAME=value"');
      }
      const eq = entry.indexOf('=');
      add(`env[${i}]`, entry.slice(0, eq), entry.slice(eq + 1));
    });
  } else if (typeof raw === 'object') {
    for (const [name, value] of Object.entries(raw as Record<string, unknown>)) add(`env.${name}`, name, value);
  } else {
    throw invalid('env', 'must be an object {"NAME": "value"} or an array ["NAME=value"]');
  }
  if (Object.keys(env).length > MAX_ENV) throw invalid('env', `has more than ${MAX_ENV} variables`);
  return env;
}

function normalizeResources(raw: unknown, policy: SpecPolicy): JobSpec['resources'] {
  if (raw === undefined || raw === null) {
    return { cpus: policy.cpus, memoryBytes: policy.memoryBytes, gpus: 0 };
  }
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw invalid('resources', 'must be an object such as {"cpus": 1, "memory": "512m"}');
  }
  const r = raw as Record<string, unknown>;

  let cpus = policy.cpus;
  if (r.cpus !== undefined && r.cpus !== null) {
    const parsed = typeof r.cpus === 'number' || typeof r.cpus === 'string' ? parseCpus(r.cpus) : undefined;
    if (parsed === undefined || parsed < 0.01) {
      throw invalid('resources.cpus', `must be a number of cores of at least 0.01, such as 0.5, got ${show(r.cpus)}`);
    }
    if (parsed > policy.cpus) {
      throw new GridxError(
        'LIMIT_EXCEEDED',
        `resources.cpus: ${parsed} is more than this node allows per job (${policy.cpus}); ask for at most ${policy.cpus}`,
      );
    }
    cpus = parsed;
  }

  let memoryBytes = policy.memoryBytes;
  if (r.memory !== undefined && r.memory !== null) {
    const parsed = typeof r.memory === 'number' || typeof r.memory === 'string' ? parseSize(r.memory) : undefined;
    const min = 6 * 1024 * 1024;
    if (parsed === undefined || parsed < min) {
      throw invalid('resources.memory', `must be a size of at least 6m, such as "256m", got ${show(r.memory)}`);
    }
    if (parsed > policy.memoryBytes) {
      throw new GridxError(
        'LIMIT_EXCEEDED',
        `resources.memory: ${formatSize(parsed)} is more than this node allows per job (${formatSize(policy.memoryBytes)}); ask for at most ${formatSize(policy.memoryBytes)}`,
      );
    }
    memoryBytes = parsed;
  }

  let gpus = 0;
  if (r.gpus !== undefined && r.gpus !== null) {
    if (typeof r.gpus !== 'number' || !Number.isInteger(r.gpus) || r.gpus < 0) {
      throw invalid('resources.gpus', `must be a whole number of GPUs, such as 1, got ${show(r.gpus)}`);
    }
    if (r.gpus > policy.maxGpus) {
      throw new GridxError(
        'LIMIT_EXCEEDED',
        `resources.gpus: ${r.gpus} is more than this node offers (${policy.maxGpus}); ask for at most ${policy.maxGpus}`,
      );
    }
    gpus = r.gpus;
  }
  const known = new Set(['cpus', 'memory', 'gpus']);
  for (const key of Object.keys(r)) {
    if (!known.has(key)) throw invalid(`resources.${key}`, 'is not a known resource; use cpus, memory or gpus');
  }
  return { cpus, memoryBytes, gpus };
}

function normalizeTimeout(raw: unknown, policy: SpecPolicy): number {
  if (raw === undefined || raw === null) return policy.timeoutMs;
  const ms = typeof raw === 'number' || typeof raw === 'string' ? parseDuration(raw) : undefined;
  if (ms === undefined || ms < 100) {
    throw invalid('timeout', `must be a duration of at least 100ms, such as "30s", "5m" or 300 (seconds), got ${show(raw)}`);
  }
  if (ms > policy.timeoutMs) {
    throw new GridxError(
      'LIMIT_EXCEEDED',
      `timeout: ${formatDuration(ms)} is more than this node allows per job (${formatDuration(policy.timeoutMs)}); ask for at most ${formatDuration(policy.timeoutMs)}`,
    );
  }
  return ms;
}

function normalizeNetwork(raw: unknown, policy: SpecPolicy): string {
  if (raw === undefined || raw === null) return 'none';
  if (typeof raw !== 'string' || raw.trim() === '') throw invalid('network', 'must be a network mode such as "none"');
  if (!policy.allowedNetworks.includes(raw)) {
    throw new GridxError(
      'LIMIT_EXCEEDED',
      `network: "${clip(raw)}" is not allowed on this node; allowed: ${policy.allowedNetworks.join(', ')}`,
    );
  }
  return raw;
}

function normalizeVolumes(raw: unknown, policy: SpecPolicy): VolumeMount[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) {
    throw invalid('volumes', 'must be an array of "host:container[:ro|rw]" strings');
  }
  return raw.map((entry, i): VolumeMount => {
    const field = `volumes[${i}]`;
    if (typeof entry !== 'string') throw invalid(field, 'must be a string "host:container[:ro|rw]"');
    const [hostPath, containerPath, mode = 'ro', ...rest] = entry.split(':');
    if (!hostPath || !containerPath || rest.length > 0 || (mode !== 'ro' && mode !== 'rw')) {
      throw invalid(field, `"${clip(entry)}" must be "host:container[:ro|rw]"`);
    }
    if (!path.isAbsolute(hostPath) || !path.isAbsolute(containerPath)) {
      throw invalid(field, 'both paths must be absolute');
    }
    const target = path.posix.normalize(containerPath);
    if ([INPUTS_DIR, OUTPUTS_DIR].some((dir) => target === dir || target.startsWith(`${dir}/`) || dir.startsWith(`${target}/`))) {
      throw invalid(field, `cannot be mounted at ${target}: ${INPUTS_DIR} and ${OUTPUTS_DIR} hold the job's input and output files`);
    }
    const checked = checkHostPath(hostPath, policy);
    if ('refusal' in checked) {
      throw new GridxError('LIMIT_EXCEEDED', `${field}: ${checked.refusal}`);
    }
    if (mode === 'rw' && !policy.writableVolumes) {
      throw new GridxError('LIMIT_EXCEEDED', `${field}: this node mounts volumes read-only; drop ":rw"`);
    }
    return { hostPath: checked.hostPath, containerPath: path.posix.normalize(containerPath), readOnly: mode !== 'rw' };
  });
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

function show(value: unknown): string {
  return clip(JSON.stringify(value) ?? String(value));
}

function clip(text: string, max = 80): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
