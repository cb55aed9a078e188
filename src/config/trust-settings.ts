/**
 * Settings of who may reach a node and how much one caller may take: browsers (Origin,
 * Host), peers of the mesh, image registries, and the per-caller limits. Part of the one
 * schema (schema.ts).
 */

import { type Parser, bool, duration, int, list, size } from './parsers.js';
import type { Setting } from './schema.js';

/** Which peers may forward jobs to this node over the mesh. */
export type MeshAccept = 'none' | 'any' | readonly string[];

const PEER_ID_RE = /^[1-9A-HJ-NP-Za-km-z]{46,60}$/;

/** "none", "any", or a list of libp2p peer ids. */
const peerPolicy: Parser<MeshAccept> = (raw) => {
  if (raw === 'none' || raw === 'any') return raw;
  const value = list(raw);
  return value && value.length > 0 && value.every((p) => PEER_ID_RE.test(p)) ? value : undefined;
};

export const TRUST_SETTINGS = {
  corsOrigins: {
    key: 'api.cors_origins',
    env: 'GRIDX_CORS_ORIGINS',
    expect: 'a list of origins such as https://dash.example.org',
    parse: (raw: unknown) => {
      const value = list(raw);
      return value?.every((o) => /^https?:\/\/[^/\s]+$/.test(o)) ? value.map((o) => o.toLowerCase()) : undefined;
    },
    default: () => [] as string[],
    doc: 'Web origins (scheme://host[:port]) whose pages may call the API from a browser. Empty: none but the API\'s own origin.',
  },
  allowedHosts: {
    key: 'api.allowed_hosts',
    env: 'GRIDX_ALLOWED_HOSTS',
    expect: 'a list of host names such as grid.example.org',
    parse: (raw: unknown) => {
      const value = list(raw);
      return value?.every((h) => /^[A-Za-z0-9.:[\]-]+$/.test(h)) ? value.map((h) => h.toLowerCase()) : undefined;
    },
    default: () => [] as string[],
    doc: 'Host names the API answers to besides its listen address, localhost and the loopback addresses (stops DNS rebinding). Add the name clients use behind a proxy.',
  },
  rateLimit: {
    key: 'api.rate_limit',
    env: 'GRIDX_RATE_LIMIT',
    expect: 'a whole number of requests per minute, 0 for no limit',
    parse: int(0, 10_000_000),
    default: () => 6000,
    doc: 'Requests one caller (account, runner, or address when anonymous) may make per minute; past it, 429 with Retry-After.',
  },
  maxQueued: {
    key: 'scheduler.max_queued',
    env: 'GRIDX_MAX_QUEUED',
    expect: 'a whole number 1-10000000',
    parse: int(1, 10_000_000),
    default: () => 100_000,
    doc: 'Jobs waiting in this node\'s queue at most, over all callers; past it, submissions get 429.',
  },
  accountQueued: {
    key: 'limits.account_queued',
    env: 'GRIDX_ACCOUNT_QUEUED',
    expect: 'a whole number 1-10000000',
    parse: int(1, 10_000_000),
    default: () => 5000,
    doc: 'Jobs one account may have waiting at once; past it, its submissions get 429.',
  },
  accountRunning: {
    key: 'limits.account_running',
    env: 'GRIDX_ACCOUNT_RUNNING',
    expect: 'a whole number 1-1000000',
    parse: int(1, 1_000_000),
    default: () => 256,
    doc: 'Jobs of one account that run at once; its further jobs wait until one ends.',
  },
  anonymousQueued: {
    key: 'limits.anonymous_queued',
    env: 'GRIDX_ANONYMOUS_QUEUED',
    expect: 'a whole number 1-10000000',
    parse: int(1, 10_000_000),
    default: () => 1000,
    doc: 'Anonymous jobs (an open node) waiting at once, all anonymous callers together.',
  },
  anonymousRunning: {
    key: 'limits.anonymous_running',
    env: 'GRIDX_ANONYMOUS_RUNNING',
    expect: 'a whole number 1-1000000',
    parse: int(1, 1_000_000),
    default: () => 64,
    doc: 'Anonymous jobs that run at once, all anonymous callers together.',
  },
  eventStreams: {
    key: 'limits.event_streams',
    env: 'GRIDX_EVENT_STREAMS',
    expect: 'a whole number 1-10000',
    parse: int(1, 10_000),
    default: () => 16,
    doc: 'Event streams (WebSocket) one caller may hold open at once.',
  },
  meshAccept: {
    key: 'mesh.accept',
    env: 'GRIDX_MESH_ACCEPT',
    expect: '"none", "any", or a list of peer ids',
    parse: peerPolicy,
    default: () => undefined as MeshAccept | undefined,
    doc: 'Peers whose forwarded jobs this node runs (as jobs of the account node-<peer id>). Default: any on an open node, none where the API requires keys.',
  },
  meshForwardTo: {
    key: 'mesh.forward_to',
    env: 'GRIDX_MESH_FORWARD_TO',
    expect: '"none", "any", or a list of peer ids',
    parse: peerPolicy,
    default: () => undefined as MeshAccept | undefined,
    doc: "Peers this node forwards its jobs to (they see the job's spec, environment included, and report its result). Default: any on an open node, none where the API requires keys.",
  },
  allowPrivateUrls: {
    key: 'inputs.allow_private_urls',
    env: 'GRIDX_ALLOW_PRIVATE_URLS',
    expect: 'true or false',
    parse: bool,
    default: () => false,
    doc: "Whether URL inputs may point at loopback, private or link-local addresses. Off: a public node is not a way into its operator's network.",
  },
  urlTimeoutMs: {
    key: 'inputs.url_timeout',
    env: 'GRIDX_URL_TIMEOUT',
    expect: 'a duration such as "5m"',
    parse: duration,
    default: () => 5 * 60_000,
    doc: 'How long the node may take to fetch one URL input (its size is capped by storage.max_blob).',
  },
  maxBlobBytes: {
    key: 'storage.max_blob',
    env: 'GRIDX_MAX_BLOB',
    expect: 'a size such as "1g"',
    parse: size(1024),
    default: () => 1024 * 1024 * 1024,
    doc: 'The most one blob may hold: an upload (POST /blobs), a URL input, one output file. Larger uploads get 413.',
  },
  storeBytes: {
    key: 'storage.max_size',
    env: 'GRIDX_STORAGE_SIZE',
    expect: 'a size such as "20g"',
    parse: size(1024 * 1024),
    default: () => 20 * 1024 * 1024 * 1024,
    doc: 'What the blob store may hold; past it, least recently used blobs go first, never those of queued or running jobs.',
  },
  registries: {
    key: 'runner.docker.registries',
    env: 'GRIDX_REGISTRIES',
    expect: 'a list of registry hosts such as docker.io or ghcr.io, or "*" for any public one',
    parse: (raw: unknown) => {
      const value = list(raw);
      return value?.every((r) => r === '*' || /^[a-z0-9.-]+(:\d+)?$/.test(r.toLowerCase())) ? value.map((r) => r.toLowerCase()) : undefined;
    },
    default: () => ['docker.io'],
    doc: 'Registries images may come from. "*": any public registry. Loopback, private and link-local hosts are refused unless listed by name.',
  },
} satisfies Record<string, Setting<unknown>>;
