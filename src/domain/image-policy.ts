/**
 * The node's image policy: registries, allow and deny lists, applied to the reference as
 * the engine reads it (image-ref.ts), never to the text as written. Pure; the executor
 * adds what needs I/O (resolving a registry's name) before it pulls.
 */

import { internalHostKind } from './addresses.js';
import { clip } from '../errors.js';
import { type ImageRef, canonicalRegistry, matchesImage, parseImagePattern, parseImageRef, registryHost } from './image-ref.js';

export interface ImagePolicy {
  /** Entries of runner.docker.images.allow; empty: any image. */
  allowImages: readonly string[];
  /** Entries of runner.docker.images.deny. */
  denyImages: readonly string[];
  /** runner.docker.registries: registry hosts, or "*" for any public one. */
  registries: readonly string[];
}

/** Why the policy refuses `image`, or undefined when it allows it. */
export function imageRefusal(image: string, policy: ImagePolicy): string | undefined {
  const shown = `"${clip(image)}"`;
  const ref = parseImageRef(image);
  if (!ref) return `${shown} is not a valid image reference; use a name like "alpine:latest"`;
  const registry = registryRefusal(ref.registry, policy.registries);
  if (registry) return `${shown}: ${registry}`;
  const { allowImages, denyImages } = policy;
  // Names are the policy's language; an id would let the engine pick whatever local image
  // starts with those digits, so it cannot be judged by name.
  if (ref.looksLikeId && (allowImages.length > 0 || denyImages.length > 0)) {
    return `${shown} looks like an image id, and this node's image allow/deny lists (runner.docker.images) judge names only; give the image as repository:tag`;
  }
  // A malformed entry fails closed: it admits nothing on the allow list and refuses
  // everything on the deny list. Config loading rejects such entries first.
  if (allowImages.length > 0 && !allowImages.some((entry) => matches(entry, ref, false))) {
    return `${shown} is not on this node's image allow list (runner.docker.images.allow: ${clip(allowImages.join(', '))})`;
  }
  const denied = denyImages.find((entry) => matches(entry, ref, true));
  if (denied !== undefined) return `${shown} is denied by this node's image deny list (runner.docker.images.deny: ${clip(denied)})`;
  return undefined;
}

/**
 * Why `registry` may not be pulled from, by its name alone. A host listed by exact
 * name (with its port, if it has one) is allowed; a loopback, private or link-local
 * host is refused otherwise, even under "*"; "*" allows any other.
 */
export function registryRefusal(registry: string, registries: readonly string[]): string | undefined {
  if (isListed(registry, registries)) return undefined;
  const kind = internalHostKind(registryHost(registry));
  if (kind) {
    return `registry ${clip(registry)} is a ${kind} address; this node pulls from such a registry only when runner.docker.registries lists it by name`;
  }
  if (registries.includes('*')) return undefined;
  return `registry ${clip(registry)} is not allowed on this node (runner.docker.registries: ${clip(registries.join(', ') || 'none')})`;
}

/** Whether runner.docker.registries names `registry` itself (not through "*"). */
export function isListed(registry: string, registries: readonly string[]): boolean {
  return registries.some((r) => r !== '*' && canonicalRegistry(r) === registry);
}

/** Whether an allow/deny entry is one the policy can read (for checking config). */
export function isImagePattern(entry: string): boolean {
  return parseImagePattern(entry) !== undefined;
}

function matches(entry: string, ref: ImageRef, ifInvalid: boolean): boolean {
  const pattern = parseImagePattern(entry);
  return pattern ? matchesImage(pattern, ref) : ifInvalid;
}
