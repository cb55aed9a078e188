/**
 * Host paths judged by their real path (every symlink resolved) at the moment the
 * container is created. The check at submit reads only text; between the two, a job on
 * a writable root or the host itself may have put a symlink where a directory was.
 */

import fs from 'node:fs/promises';
import type { VolumeMount } from '../../domain/job.js';
import { type VolumeRoots, checkHostPath, isWithin } from '../../domain/volume-paths.js';
import { GridxError, clip } from '../../errors.js';

/**
 * The mounts to hand the engine: each host path replaced by its real path, so that what
 * was checked is what gets mounted. Throws LIMIT_EXCEEDED, before any container exists,
 * when one leads outside the allowed roots.
 */
export async function resolveMounts(volumes: readonly VolumeMount[], roots: VolumeRoots): Promise<VolumeMount[]> {
  const mounts: VolumeMount[] = [];
  for (const [i, volume] of volumes.entries()) mounts.push(await resolveMount(volume, roots, `volumes[${i}]`));
  return mounts;
}

async function resolveMount(volume: VolumeMount, roots: VolumeRoots, field: string): Promise<VolumeMount> {
  const refuse = (why: string) => new GridxError('LIMIT_EXCEEDED', `${field}: ${why}; the job was not started`);
  // Again here: a spec from a runner's server or a peer never passed this node's submit.
  const checked = checkHostPath(volume.hostPath, roots);
  if ('refusal' in checked) throw refuse(checked.refusal);
  if (!volume.readOnly && !roots.writableVolumes) throw refuse('this node mounts volumes read-only');
  const shown = clip(checked.hostPath);
  const real = await realPath(checked.hostPath);
  // A missing source would be created by the engine, as root, wherever it points.
  if (real === undefined) throw refuse(`${shown} does not exist on this node or cannot be read`);
  const rootReal = await realPath(checked.root);
  if (rootReal === undefined) throw refuse(`the allowed path ${checked.root} does not exist on this node`);
  // Writable roots are mounted whole (checkHostPath says why), so the real path is the
  // root's own; below a read-only root, links the host placed may point anywhere inside it.
  const inside = roots.writableVolumes ? real === rootReal : isWithin(real, rootReal);
  // Where the link leads is the host's business: the message names only the user's path.
  if (!inside) throw refuse(`${shown} leads outside ${checked.root} through a symbolic link`);
  // The engine's bind syntax is "source:target:mode"; a colon in the source would shift it.
  if (/[:,]/.test(real)) throw refuse(`${shown} resolves to a path with ":" or ",", which cannot be mounted`);
  return { ...volume, hostPath: real };
}

async function realPath(p: string): Promise<string | undefined> {
  try {
    return await fs.realpath(p);
  } catch {
    return undefined;
  }
}
