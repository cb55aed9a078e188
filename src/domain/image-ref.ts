/**
 * Image references read the way the Docker engine reads them, so that a policy judges
 * the image the engine will run and not the text the user chose to write: `alpine`,
 * `docker.io/alpine`, `index.docker.io/library/alpine:latest` are one image. Pure.
 */

/** Docker Hub, as every spelling of it is normalized. */
export const DOCKER_HUB = 'docker.io';

const HUB_ALIASES = new Set([DOCKER_HUB, 'index.docker.io', 'registry-1.docker.io']);
const MAX_REFERENCE_LENGTH = 512;
const MAX_NAME_LENGTH = 255;
// Docker's reference grammar (github.com/distribution/reference): host components with
// an optional port; lowercase path components joined by '.', '_', '__' or dashes.
const DOMAIN_RE = /^[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]{1,5})?$/;
const COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^\w[\w.-]{0,127}$/;
const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
// What the engine looks up as a local image id (or a prefix of one) when no image has
// that name: "sha256:<hex>", or a name made of hex digits only.
const IMAGE_ID_RE = /^(?:sha256:)?[a-f0-9]+$/;

/** A reference as the engine resolves it. */
export interface ImageRef {
  /** Registry host[:port], lowercase; every spelling of Docker Hub is "docker.io". */
  registry: string;
  /** Path inside the registry; Docker Hub's one-word names live under "library/". */
  repository: string;
  /** "latest" unless given; absent when a digest pins the image, which then decides alone. */
  tag?: string;
  /** "sha256:<64 hex>" when the reference pins content. */
  digest?: string;
  /** registry/repository[:tag][@digest]: the only form handed to the engine, so it never guesses. */
  canonical: string;
  /** The text is what the engine would also take for a local image id (see IMAGE_ID_RE). */
  looksLikeId: boolean;
}

interface Parts {
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
}

/** Parses `text` like the engine does; undefined when it is not a valid reference. */
export function parseImageRef(text: string): ImageRef | undefined {
  const parts = parseParts(text, true);
  if (!parts) return undefined;
  const tag = parts.digest === undefined ? (parts.tag ?? 'latest') : undefined;
  const ref: ImageRef = {
    registry: parts.registry,
    repository: parts.repository,
    canonical: `${parts.registry}/${parts.repository}${tag === undefined ? '' : `:${tag}`}${parts.digest === undefined ? '' : `@${parts.digest}`}`,
    looksLikeId: IMAGE_ID_RE.test(text),
  };
  if (tag !== undefined) ref.tag = tag;
  if (parts.digest !== undefined) ref.digest = parts.digest;
  return ref;
}

/** A registry name as references use it: lowercase, every Docker Hub alias as docker.io. */
export function canonicalRegistry(name: string): string {
  const lower = name.trim().toLowerCase();
  return HUB_ALIASES.has(lower) ? DOCKER_HUB : lower;
}

/** The host of a registry name, without its port. */
export function registryHost(registry: string): string {
  return registry.replace(/:[0-9]+$/, '');
}

/**
 * @param hubLibrary put one-word Docker Hub names under library/, as the engine does
 *   (off for namespace patterns, where "docker.io/" means all of Docker Hub)
 */
function parseParts(text: string, hubLibrary: boolean): Parts | undefined {
  if (text.length === 0 || text.length > MAX_REFERENCE_LENGTH) return undefined;
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_RE.test(digest)) return undefined;
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) return undefined;
  }
  // The engine's rule: the first component names a registry only when it looks like a
  // host (a dot, a port, "localhost", or capitals, which paths may not have).
  const slash = rest.indexOf('/');
  const first = slash < 0 ? '' : rest.slice(0, slash);
  let registry = DOCKER_HUB;
  let repository = rest;
  if (slash >= 0 && (/[.:]/.test(first) || first === 'localhost' || first !== first.toLowerCase())) {
    if (!DOMAIN_RE.test(first)) return undefined;
    registry = canonicalRegistry(first);
    repository = rest.slice(slash + 1);
  }
  if (!repository.split('/').every((c) => COMPONENT_RE.test(c))) return undefined;
  if (registry === DOCKER_HUB && hubLibrary && !repository.includes('/')) repository = `library/${repository}`;
  if (repository.length > MAX_NAME_LENGTH) return undefined;
  const parts: Parts = { registry, repository };
  if (tag !== undefined) parts.tag = tag;
  if (digest !== undefined) parts.digest = digest;
  return parts;
}

/**
 * One entry of an image allow or deny list, normalized like a reference:
 * - `alpine`, `docker.io/library/alpine`: that repository, any tag or digest;
 * - `alpine:3.19`, `alpine@sha256:…`: only that tag, or only that digest (an image
 *   pinned by digest has no tag, so a tag entry never matches it);
 * - `ghcr.io/acme/*`: `*` matches any run of characters within one path component
 *   (not across "/"), in the registry, the repository and the tag alike;
 * - `ghcr.io/acme/`, `gridx/`: a trailing "/" is every repository below that path, at
 *   any depth (what prefix entries such as "gridx/" meant before references were parsed).
 */
export interface ImagePattern {
  /** The entry as the operator wrote it. */
  entry: string;
  /** Tested against "registry/repository". */
  name: RegExp;
  /** When set, the image's tag must match it. */
  tag?: RegExp;
  /** When set, the image's digest must equal it. */
  digest?: string;
}

// Stands in for '*' while a pattern is parsed as a reference: valid in a host, a path
// component and a tag, and not a word anyone writes.
const STAR = '0gridxstar0';

/** Parses an allow/deny entry; undefined when it is neither a reference nor a pattern. */
export function parseImagePattern(entry: string): ImagePattern | undefined {
  const text = entry.trim();
  if (text === '' || text.includes(STAR)) return undefined;
  if (text.endsWith('/')) {
    const base = text.slice(0, -1);
    if (base === '' || /[*@]/.test(base)) return undefined;
    const parts = parseParts(`${base}/${STAR}`, false);
    if (!parts || parts.tag !== undefined) return undefined;
    const prefix = `${parts.registry}/${parts.repository.slice(0, -STAR.length)}`;
    return { entry, name: new RegExp(`^${escapeRegExp(prefix)}.+$`) };
  }
  const parts = parseParts(text.replaceAll('*', STAR), true);
  if (!parts) return undefined;
  const glob = (s: string) => new RegExp(`^${escapeRegExp(s).replaceAll(STAR, '[^/]*')}$`);
  const pattern: ImagePattern = { entry, name: glob(`${parts.registry}/${parts.repository}`) };
  if (parts.digest !== undefined) pattern.digest = parts.digest;
  else if (parts.tag !== undefined) pattern.tag = glob(parts.tag);
  return pattern;
}

/** Whether `pattern` names `ref`. */
export function matchesImage(pattern: ImagePattern, ref: ImageRef): boolean {
  if (!pattern.name.test(`${ref.registry}/${ref.repository}`)) return false;
  if (pattern.digest !== undefined) return ref.digest === pattern.digest;
  if (pattern.tag !== undefined) return ref.tag !== undefined && pattern.tag.test(ref.tag);
  return true;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
