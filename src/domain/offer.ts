/**
 * Offers: what a node advertises to the mesh. Plain data plus the pure rules on it:
 * canonical bytes for signing, whether a job fits, and which offer to prefer.
 */

import type { JobSpec } from './job.js';

/** Per-job limits a node accepts. */
export interface JobLimits {
  cpus: number;
  memoryBytes: number;
  timeoutMs: number;
  gpus: number;
  networks: string[];
}

export interface Offer {
  /** Format version. */
  v: 1;
  peerId: string;
  /** Where clients reach the node's HTTP API. */
  apiUrl: string;
  multiaddrs: string[];
  status: 'idle' | 'busy';
  slots: { total: number; free: number };
  /** The machine: CPU count, memory, GPUs. */
  cpus: number;
  memoryBytes: number;
  gpus: number;
  limits: JobLimits;
  /** Images present on the node (capped); jobs using them start without a pull. */
  images: string[];
  /** Credits per CPU-second. */
  price: number;
  version: string;
  /** Strictly increasing per node: a lower or equal seq is a replay. */
  seq: number;
  issuedAt: number;
  expiresAt: number;
}

/** An offer with the Ed25519 signature of its canonical bytes, by the key of `offer.peerId`. */
export interface SignedOffer {
  offer: Offer;
  /** base64 */
  signature: string;
}

/** JSON with keys sorted at every level: the same offer always gives the same bytes. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The longest an offer may claim to live: peers drop a longer one as malformed (mesh.offer_ttl is held to it). */
export const MAX_OFFER_TTL_MS = 3_600_000;

/** What an offer says of its node, less what changes with every signing (seq and dates): equal terms, nothing new. */
export function offerTerms(offer: Partial<Offer>): string {
  const { seq: _s, issuedAt: _i, expiresAt: _e, ...terms } = offer;
  return canonicalJson(terms);
}

export function offerBytes(offer: Offer): Uint8Array {
  return new TextEncoder().encode(canonicalJson(offer));
}

/** Why `spec` does not fit `limits`, or undefined when it fits. */
export function misfit(spec: JobSpec, limits: JobLimits): string | undefined {
  const r = spec.resources;
  if (r.cpus > limits.cpus) return `needs ${r.cpus} cpus, allows ${limits.cpus}`;
  if (r.memoryBytes > limits.memoryBytes) return `needs ${r.memoryBytes} bytes of memory, allows ${limits.memoryBytes}`;
  if (r.gpus > limits.gpus) return `needs ${r.gpus} gpus, has ${limits.gpus}`;
  if (spec.timeoutMs > limits.timeoutMs) return `needs ${spec.timeoutMs} ms, allows ${limits.timeoutMs}`;
  if (!limits.networks.includes(spec.network)) return `needs network ${spec.network}`;
  return undefined;
}

/** "alpine" and "alpine:latest" are the same image; a registry port is not a tag. */
export function imageRef(image: string): string {
  const name = image.slice(image.lastIndexOf('/') + 1);
  return image.includes('@') || name.includes(':') ? image : `${image}:latest`;
}

/** Idle offers that fit, best first: image already cached, then most free slots, then cheapest. */
export function rankOffers(offers: Offer[], spec: JobSpec): Offer[] {
  const image = imageRef(spec.image);
  const cached = (o: Offer) => (o.images.includes(image) ? 1 : 0);
  return offers
    .filter((o) => o.status === 'idle' && o.slots.free > 0 && misfit(spec, o.limits) === undefined)
    .sort((a, b) => cached(b) - cached(a) || b.slots.free - a.slots.free || a.price - b.price);
}

/** Addresses an offer may name; peers drop an offer with more as malformed. */
export const MAX_OFFER_ADDRS = 32;

/** Structural check of an offer received from the network; the reason when malformed. */
export function malformedOffer(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object') return 'not an object';
  const o = value as Partial<Offer>;
  if (o.v !== 1) return 'unknown version';
  if (typeof o.peerId !== 'string' || o.peerId.length > 128) return 'bad peerId';
  if (typeof o.apiUrl !== 'string' || !/^https?:\/\//.test(o.apiUrl) || o.apiUrl.length > 512) return 'bad apiUrl';
  if (!Array.isArray(o.multiaddrs) || o.multiaddrs.length > MAX_OFFER_ADDRS || !o.multiaddrs.every((a) => typeof a === 'string')) {
    return 'bad multiaddrs';
  }
  if (o.status !== 'idle' && o.status !== 'busy') return 'bad status';
  if (!o.slots || !Number.isInteger(o.slots.total) || !Number.isInteger(o.slots.free)) return 'bad slots';
  const l = o.limits;
  if (!l || ![l.cpus, l.memoryBytes, l.timeoutMs, l.gpus].every((n) => typeof n === 'number' && n >= 0) || !Array.isArray(l.networks)) {
    return 'bad limits';
  }
  if (!Array.isArray(o.images) || o.images.length > 256) return 'bad images';
  for (const n of [o.cpus, o.memoryBytes, o.gpus, o.price, o.seq, o.issuedAt, o.expiresAt]) {
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return 'bad number';
  }
  if (typeof o.version !== 'string') return 'bad version';
  return undefined;
}
