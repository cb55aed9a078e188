/**
 * Which host paths a job may mount, judged by their text. Pure: the executor judges the
 * same paths again by their real path (symlinks resolved) when it creates the container
 * (src/executor/docker/volumes.ts), because only then is the file system what it is.
 */

import path from 'node:path';
import { clip } from '../errors.js';

/** The operator's volume policy (runner.docker.volumes, runner.docker.writable_volumes). */
export interface VolumeRoots {
  allowedVolumes: readonly string[];
  writableVolumes: boolean;
}

/** A host path that passed the textual rules, with the allowed root it falls under. */
export interface CheckedHostPath {
  /** Normalized: no ".", no doubled or trailing slashes. */
  hostPath: string;
  root: string;
}

/**
 * Checks `hostPath` against the roots by its text; returns it normalized, or why not.
 *
 * - `..` is refused in every position, not resolved: the kernel resolves `a/..` after
 *   following `a`, so when `a` is a symlink the text and the mount disagree.
 * - Where jobs may write (writableVolumes), a root is mounted whole or not at all: a job
 *   that can write under the root can swap any path component below it for a symlink
 *   between our check and the engine's mount, so no path below such a root is safe.
 *   For the same reason a root that lies inside another root is not mountable then.
 */
export function checkHostPath(hostPath: string, roots: VolumeRoots): CheckedHostPath | { refusal: string } {
  if (!path.posix.isAbsolute(hostPath)) return { refusal: 'the host path must be absolute' };
  if (hostPath.includes('\0')) return { refusal: 'the host path must not contain NUL characters' };
  if (hostPath.split('/').includes('..')) return { refusal: 'the host path must not contain ".."; name the directory itself' };
  const normalized = trimSlash(path.posix.normalize(hostPath));
  const allowed = roots.allowedVolumes.map(trimSlash);
  if (allowed.length === 0) return { refusal: 'this node allows no volumes' };
  const root = allowed.filter((r) => isWithin(normalized, r)).sort((a, b) => b.length - a.length)[0];
  if (root === undefined) return { refusal: `${clip(normalized)} is not under a path this node allows (${allowed.join(', ')})` };
  if (roots.writableVolumes) {
    if (normalized !== root) {
      return { refusal: `${clip(normalized)} is below ${root}, which jobs can write to; such a root is mounted only whole: mount ${root}` };
    }
    const outer = allowed.find((r) => r !== root && isWithin(root, r));
    if (outer !== undefined) {
      return { refusal: `${root} lies inside ${outer}, which jobs can write to, so it cannot be mounted safely; the operator should not nest writable volume roots` };
    }
  }
  return { hostPath: normalized, root };
}

/** Whether `p` is `root` or below it (both normalized, absolute). */
export function isWithin(p: string, root: string): boolean {
  return p === root || root === '/' || p.startsWith(`${root}/`);
}

function trimSlash(p: string): string {
  const normalized = path.posix.normalize(p);
  return normalized.length > 1 && normalized.endsWith('/') ? normalized.slice(0, -1) : normalized;
}
