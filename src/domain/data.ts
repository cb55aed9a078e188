/**
 * Files in and out of jobs: inputs placed under /inputs before a job starts, outputs it
 * leaves under /outputs, and the digests that name them. Pure: no I/O happens here.
 */

import { createHash } from 'node:crypto';
import path from 'node:path';
import { invalid, quote } from '../errors.js';

/** Where inputs appear in the container (read-only). */
export const INPUTS_DIR = '/inputs';
/** Where a job leaves its outputs (writable, size-capped). */
export const OUTPUTS_DIR = '/outputs';

/** Files kept of one job's outputs at most; past it the manifest says `exceeded`. */
export const MAX_OUTPUT_FILES = 10_000;

/** A digest, as a JSON-schema pattern. */
export const DIGEST_PATTERN = '^sha256:[0-9a-f]{64}$';
const DIGEST_RE = new RegExp(DIGEST_PATTERN);
const HEX_RE = /^[0-9a-f]{64}$/;

/** "sha256:<64 lowercase hex>", the only digest form accepted anywhere. */
export function isDigest(text: unknown): text is string {
  return typeof text === 'string' && DIGEST_RE.test(text);
}

/** The digest of some bytes, in the accepted form. */
export function digestOf(bytes: Buffer | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** The hex part of a digest (its file name in a blob store). */
export function digestHex(digest: string): string {
  return digest.slice('sha256:'.length);
}

/** A sha256 as users give it for URL inputs: hex, or "sha256:hex". Undefined when it is neither. */
export function parseSha256(text: unknown): string | undefined {
  if (typeof text !== 'string') return undefined;
  const lower = text.trim().toLowerCase();
  if (HEX_RE.test(lower)) return `sha256:${lower}`;
  return DIGEST_RE.test(lower) ? lower : undefined;
}

/**
 * One file a job gets before it starts, at `path` under /inputs, from exactly one source:
 * a blob already in the node's store (`digest`) or a URL the node fetches (`url`, checked
 * against `sha256` when given). Inline content is stored as a blob at submit and kept as
 * its digest, so a spec never carries file bytes.
 */
export type JobInput = { path: string; digest: string } | { path: string; url: string; sha256?: string };

/** One file a job left under /outputs. `path` is relative to /outputs, with "/" separators. */
export interface OutputFile {
  path: string;
  size: number;
  /** "sha256:<hex>": also the blob the file is stored as. */
  sha256: string;
}

/** What a job left under /outputs, collected after it ended, whatever its status. */
export interface OutputManifest {
  /** Sorted by path. */
  files: OutputFile[];
  /** The digest over `files` (see manifestRoot): one name for all of them. */
  root: string;
  /** The sum of the files' sizes. */
  bytes: number;
  /** The job ran out of room under /outputs (runner.docker.outputs_size): what fitted is kept. */
  exceeded: boolean;
}

/**
 * The root digest of a manifest: sha256 over one line per file, "<sha256> <size> <path>\n",
 * in path order. Results, replicas and signatures refer to outputs by this digest.
 */
export function manifestRoot(files: readonly OutputFile[]): string {
  const hash = createHash('sha256');
  for (const f of [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    hash.update(`${f.sha256} ${f.size} ${f.path}\n`);
  }
  return `sha256:${hash.digest('hex')}`;
}

/** A manifest from collected files: sorted, summed and rooted. */
export function manifestOf(files: readonly OutputFile[], exceeded: boolean): OutputManifest {
  const sorted = [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { files: sorted, root: manifestRoot(sorted), bytes: sorted.reduce((n, f) => n + f.size, 0), exceeded };
}

/** The distinct blobs a job's inputs name by digest (URL inputs name none until fetched). */
export function inputDigests(inputs: readonly JobInput[] | undefined): string[] {
  return [...new Set((inputs ?? []).flatMap((input) => ('digest' in input ? [input.digest] : [])))];
}

/**
 * What is wrong with the files a worker reports it left under /outputs (a runner's result,
 * a mesh peer's): a path that would escape /outputs, or one path twice. Undefined when
 * nothing is.
 */
export function reportedFilesProblem(files: ReadonlyArray<{ path: string }>): string | undefined {
  const bad = files.find((f) => outputPathOf(f.path) === undefined);
  if (bad) return `${quote(bad.path, 200)} is not a path relative to /outputs without "..", "." or empty parts`;
  if (new Set(files.map((f) => f.path)).size !== files.length) return 'names a path twice';
  return undefined;
}

/**
 * An input's container path, checked: absolute, under /inputs, no "..", "." or empty
 * component, no NUL. Returns the normalized path or throws INVALID_INPUT naming `field`.
 */
export function checkInputPath(raw: unknown, field: string): string {
  if (typeof raw !== 'string' || raw === '') {
    throw invalid(field, `must be a path under ${INPUTS_DIR}, such as "${INPUTS_DIR}/data.csv"`);
  }
  const parts = raw.split('/');
  if (
    !raw.startsWith(`${INPUTS_DIR}/`) ||
    raw.includes('\0') ||
    parts.slice(1).some((p) => p === '' || p === '.' || p === '..') ||
    raw.length > 1024
  ) {
    throw invalid(field, `must be a path under ${INPUTS_DIR} without "..", "." or empty parts, such as "${INPUTS_DIR}/data.csv"`);
  }
  return path.posix.normalize(raw);
}

/**
 * A path a caller asks for inside a job's outputs (from a URL), checked the same way:
 * relative, no "..", "." or empty component. Undefined when it would escape.
 */
export function outputPathOf(raw: string): string | undefined {
  if (raw === '' || raw.includes('\0') || raw.startsWith('/') || raw.length > 4096) return undefined;
  const parts = raw.split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..')) return undefined;
  return raw;
}
