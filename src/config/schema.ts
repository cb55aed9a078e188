/**
 * The one typed configuration schema. Every setting has a YAML key, an environment
 * variable and a documented default; `loadConfig` resolves defaults → file → env →
 * flags into a frozen `Config`. Parity's `runner.docker.*` keys are accepted as they are.
 */

import os from 'node:os';
import path from 'node:path';
import { MAX_OFFER_TTL_MS } from '../domain/offer.js';
import { LEDGER_SETTINGS } from './ledger-settings.js';
import { type MeshAccept, TRUST_SETTINGS } from './trust-settings.js';
import { SANDBOX_SETTINGS } from './sandbox-settings.js';
import { type Parser, bool, duration, durationAtLeast, int, list, size, str } from './parsers.js';
import type { Secret } from './secret.js';

export { Secret } from './secret.js';
export type { MeshAccept } from './trust-settings.js';

export interface SandboxPolicy {
  /** Per-job memory cap and default; swap is held equal (no extra swap). */
  memoryBytes: number;
  /** Per-job CPU cap and default, in cores. */
  cpus: number;
  /** Per-job time cap and default. */
  timeoutMs: number;
  pidsLimit: number;
  /** Size of the writable tmpfs at /tmp. */
  tmpfsBytes: number;
  /** Cap on captured stdout and on stderr, each. */
  outputLimitBytes: number;
  /** Room per job under /outputs. */
  outputsBytes: number;
  /** uid:gid the job runs as, both non-zero, always with the gid (normalized by the config loader). */
  user: string;
  /** Docker network modes a job may ask for; "none" is always allowed. */
  allowedNetworks: string[];
  /** Host path prefixes a job may mount; empty means no volumes. */
  allowedVolumes: string[];
  /** Whether allowed volumes may be mounted read-write. */
  writableVolumes: boolean;
  pullTimeoutMs: number;
  /** Image allow list (references or globs, see image-ref.ts ImagePattern); empty means any image. */
  allowImages: string[];
  /** Image deny list (references or globs), checked after the allow list. */
  denyImages: string[];
  /** Registries images may come from; "*" is any public one. */
  registries: string[];
  /** GPUs a job may ask for; defaults to the GPUs the node detects. */
  maxGpus?: number;
}

export interface Config {
  host: string;
  apiPort: number;
  dataDir: string;
  /** Jobs that run at once. */
  slots: number;
  /** Largest request body accepted, in bytes. */
  bodyLimitBytes: number;
  /** How many executions a job gets before a node restart counts as its failure. */
  maxAttempts: number;
  /** How long a claimed job stays held without a renewal (runner heartbeats renew it). */
  leaseTtlMs: number;
  /** First wait before a requeued job runs again; doubled per attempt. */
  retryBackoffMs: number;
  /** How long the update stream keeps an event. */
  eventRetentionMs: number;
  /** Docker Engine socket; DOCKER_HOST-style tcp URLs are not supported yet. */
  dockerSocket: string;
  /** PostgreSQL URL for the job store; absent means SQLite in the data dir. */
  db?: string;
  sandbox: SandboxPolicy;
  mesh: MeshConfig;
  /** "required": every write needs an account key; "open": anonymous jobs (loopback only). */
  auth: 'required' | 'open';
  /** Operator fee on each payout, in basis points (1% = 100). */
  feeBasisPoints: number;
  settlement: SettlementConfig;
  /** Who may call the API from where, and how much one caller may take. */
  api: ApiGuardConfig;
  limits: CallerLimits;
  /** How URL inputs are fetched. */
  inputs: InputsConfig;
  /** The blob store: inputs and outputs of jobs. */
  storage: StorageConfig;
}

export interface StorageConfig {
  /** The most one blob may hold (storage.max_blob). */
  maxBlobBytes: number;
  /** The most the store may hold (storage.max_size). */
  maxBytes: number;
}

export interface InputsConfig {
  /** URL inputs may point at loopback, private and link-local addresses. */
  allowPrivateUrls: boolean;
  /** The most one URL input may take to fetch. */
  urlTimeoutMs: number;
}

export interface ApiGuardConfig {
  /** Origins whose pages may call the API; the API's own origin always may. */
  corsOrigins: string[];
  /** Host names the API answers to besides its own address and loopback. */
  allowedHosts: string[];
  /** Requests per minute per caller; 0: no limit. */
  rateLimitPerMinute: number;
}

/** Per-caller caps; past one, the caller gets 429 (or waits, for running jobs). */
export interface CallerLimits {
  /** Pending jobs on this node, all callers together. */
  maxQueued: number;
  accountQueued: number;
  accountRunning: number;
  /** All anonymous callers together (open nodes). */
  anonymousQueued: number;
  anonymousRunning: number;
  /** Open event streams per caller. */
  eventStreams: number;
}

/** ERC20 settlement: off unless enabled; the RPC URL and treasury key are secrets, never logged. */
export interface SettlementConfig {
  enabled: boolean;
  rpcUrl?: Secret;
  /** The ERC20 token contract address. */
  token?: string;
  /** Private key (0x hex) of the treasury: deposits go to its address, withdrawals come from it. */
  treasuryKey?: Secret;
  /** Blocks on top of a deposit before it is credited. */
  confirmations: number;
  pollIntervalMs: number;
  /** First block to scan for deposits when no cursor is stored. */
  startBlock: number;
}

/** Whether this node relays for peers behind NAT: `auto` while it is reachable from outside its own networks. */
export type RelayMode = 'auto' | 'on' | 'off';

export interface MeshConfig {
  /** Whether the node joins a mesh at all; off, it is a lone node. */
  enabled: boolean;
  /** TCP port of the libp2p listener. */
  p2pPort: number;
  /** Address the libp2p listener binds; defaults to the API host. */
  p2pHost?: string;
  /** Multiaddrs of peers to join through; none means the first node of a new mesh. */
  bootstrap: string[];
  /** Credits asked per CPU-second, advertised in the offer. */
  price: number;
  /** How long a published offer stays valid. */
  offerTtlMs: number;
  /** API URL put in the offer when the listen address is not what peers should use. */
  announceApiUrl?: string;
  /** Connections one IP address may hold open to this node (loopback exempt). */
  connectionsPerIp: number;
  /** Streams one peer may open per second on each /gridx/* protocol (twice as many in a burst). */
  peerStreamsPerSecond: number;
  /** How long a peer that floods or sends garbage is kept out. */
  banMs: number;
  /** Circuit relay v2 service for peers behind NAT: always, never, or while this node is reachable itself. */
  relay: RelayMode;
  /** Peers that may hold a relay reservation on this node at once. */
  relayReservations: number;
  /** Bytes one relayed connection may carry before the relay closes it. */
  relayDataBytes: number;
  /** How long one relayed connection may last before the relay closes it. */
  relayTimeMs: number;
  /** Peers whose forwarded jobs this node runs. */
  accept: MeshAccept;
  /** Peers this node forwards its own jobs to. */
  forwardTo: MeshAccept;
}

export interface Setting<T> {
  /** Dotted YAML key; `aliases` are other keys read for the same setting. */
  key: string;
  aliases?: string[];
  env: string;
  /** How the value is written, for error messages. */
  expect: string;
  parse: Parser<T>;
  default: () => T;
  doc: string;
  /** Never echoed, not even in an error about its own value. */
  secret?: boolean;
}

export const SETTINGS = {
  host: {
    key: 'node.host',
    env: 'GRIDX_HOST',
    expect: 'an IP address or host name',
    parse: str,
    default: () => '127.0.0.1',
    doc: 'Address the API listens on. Loopback by default: only this machine can submit.',
  },
  apiPort: {
    key: 'node.api_port',
    env: 'GRIDX_API_PORT',
    expect: 'a port number 0-65535',
    parse: int(0, 65535),
    default: () => 8000,
    doc: 'Port of the HTTP API (0 picks a free one).',
  },
  dataDir: {
    key: 'node.data_dir',
    env: 'GRIDX_DATA_DIR',
    expect: 'a directory path',
    parse: str,
    default: () => path.join(os.homedir(), '.gridx'),
    doc: 'Where the job store and the node identity live.',
  },
  slots: {
    key: 'node.slots',
    env: 'GRIDX_SLOTS',
    expect: 'a whole number 0-1024',
    parse: int(0, 1024),
    default: () => os.availableParallelism(),
    doc: 'Jobs that run at once on this machine; further jobs wait in order. 0: run nothing here, only dispatch to runners and peers.',
  },
  bodyLimitBytes: {
    key: 'api.body_limit',
    env: 'GRIDX_BODY_LIMIT',
    expect: 'a size such as "1m"',
    parse: size(1024),
    default: () => 1024 * 1024,
    doc: 'Largest request body; larger ones get 413.',
  },
  maxAttempts: {
    key: 'scheduler.max_attempts',
    env: 'GRIDX_MAX_ATTEMPTS',
    expect: 'a whole number 1-100',
    parse: int(1, 100),
    default: () => 3,
    doc: 'Executions a job gets when the node, runner or peer running it is lost, before it fails.',
  },
  leaseTtlMs: {
    key: 'scheduler.lease_ttl',
    env: 'GRIDX_LEASE_TTL',
    expect: 'a duration of at least 1s, such as "30s"',
    parse: durationAtLeast(1000),
    default: () => 30_000,
    doc: 'How long a claimed job is held without a renewal; then it goes back to the queue (attempt counted).',
  },
  retryBackoffMs: {
    key: 'scheduler.retry_backoff',
    env: 'GRIDX_RETRY_BACKOFF',
    expect: 'a duration such as "1s", or 0',
    parse: (raw: unknown) => (raw === 0 || raw === '0' ? 0 : duration(raw)),
    default: () => 1000,
    doc: 'Wait before a requeued job is retried, doubled per attempt up to a minute.',
  },
  eventRetentionMs: {
    key: 'events.retention',
    env: 'GRIDX_EVENTS_RETENTION',
    expect: 'a duration of at least 1s, such as "7d"',
    parse: durationAtLeast(1000),
    default: () => 7 * 24 * 3600_000,
    doc: 'How long the update stream (/api/events) keeps events; older ones are deleted, and a client resuming before them is told where to restart.',
  },
  db: {
    key: 'store.url',
    env: 'GRIDX_DB',
    expect: 'a postgres:// URL (optionally ?schema=NAME)',
    parse: (raw: unknown) => (typeof raw === 'string' && /^postgres(ql)?:\/\/\S+$/.test(raw) ? raw : undefined),
    default: () => undefined,
    doc: 'Keep jobs in PostgreSQL instead of SQLite in the data dir; servers sharing one database share one queue.',
  },
  ...SANDBOX_SETTINGS,
  meshEnabled: {
    key: 'mesh.enabled',
    env: 'GRIDX_MESH',
    expect: 'true or false',
    parse: bool,
    default: () => true,
    doc: 'Join a mesh over libp2p. Off: a lone node that runs only its own jobs.',
  },
  p2pPort: {
    key: 'mesh.p2p_port',
    env: 'GRIDX_P2P_PORT',
    expect: 'a port number 0-65535',
    parse: int(0, 65535),
    default: () => 8468,
    doc: 'TCP port of the libp2p (DHT and /gridx/*) listener (0 picks a free one).',
  },
  p2pHost: {
    key: 'mesh.p2p_host',
    env: 'GRIDX_P2P_HOST',
    expect: 'an IP address',
    parse: str,
    default: () => undefined,
    doc: 'Address the libp2p listener binds. Default: the API host.',
  },
  bootstrap: {
    key: 'mesh.bootstrap',
    env: 'GRIDX_BOOTSTRAP',
    expect: 'a list of multiaddrs such as /ip4/127.0.0.1/tcp/8468/p2p/12D3Koo...',
    parse: (raw: unknown) => {
      const value = list(raw);
      return value?.every((a) => a.startsWith('/')) ? value : undefined;
    },
    default: () => [],
    doc: 'Peers to join the mesh through (repeatable). None: this node starts a new mesh.',
  },
  price: {
    key: 'mesh.price',
    env: 'GRIDX_PRICE',
    expect: 'a number of credits, 0 or more',
    parse: (raw: unknown) => {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
      return Number.isFinite(n) && n >= 0 ? n : undefined;
    },
    default: () => 0,
    doc: 'Credits asked per CPU-second, advertised in the offer.',
  },
  offerTtlMs: {
    key: 'mesh.offer_ttl',
    env: 'GRIDX_OFFER_TTL',
    expect: 'a duration from 2s to 1h, such as "30s"',
    parse: (raw: unknown) => {
      const ms = duration(raw);
      return ms !== undefined && ms >= 2000 && ms <= MAX_OFFER_TTL_MS ? ms : undefined;
    },
    default: () => 30_000,
    doc: 'How long an offer is valid, at least; it is re-signed a third of the way through, and lives longer on a mesh of more than 20 nodes, so that re-signing stays at 2 offers a second across the mesh. Peers drop offers that claim more than 1h.',
  },
  announceApiUrl: {
    key: 'mesh.announce_api_url',
    env: 'GRIDX_ANNOUNCE_API_URL',
    expect: 'an http(s) URL',
    parse: (raw: unknown) => (typeof raw === 'string' && /^https?:\/\/\S+$/.test(raw) ? raw.replace(/\/+$/, '') : undefined),
    default: () => undefined,
    doc: 'API URL advertised in the offer, when peers reach this node at another address (containers, NAT).',
  },
  connectionsPerIp: {
    key: 'mesh.connections_per_ip',
    env: 'GRIDX_CONNECTIONS_PER_IP',
    expect: 'a whole number 1-10000',
    parse: int(1, 10_000),
    default: () => 8,
    doc: 'libp2p connections one IP address may hold open to this node; loopback is exempt (a mesh on one machine shares it).',
  },
  peerStreamsPerSecond: {
    key: 'mesh.peer_streams_per_second',
    env: 'GRIDX_PEER_STREAMS_PER_SECOND',
    expect: 'a whole number 1-100000',
    parse: int(1, 100_000),
    default: () => 20,
    doc: 'Streams one peer may open per second on each /gridx/* protocol, twice as many in a burst; past it they are reset, and a peer that keeps at it is banned.',
  },
  banMs: {
    key: 'mesh.ban_time',
    env: 'GRIDX_BAN_TIME',
    expect: 'a duration such as "10m"',
    parse: (raw: unknown) => {
      const ms = duration(raw);
      return ms !== undefined && ms >= 1000 ? ms : undefined;
    },
    default: () => 10 * 60_000,
    doc: 'How long a peer that floods or sends garbage is disconnected and refused.',
  },
  relay: {
    key: 'mesh.relay',
    env: 'GRIDX_RELAY',
    expect: 'auto, on or off',
    parse: (raw: unknown) => (raw === 'auto' || raw === 'on' || raw === 'off' ? (raw as RelayMode) : undefined),
    default: () => 'auto' as RelayMode,
    doc: 'Relay connections (circuit relay v2) for peers behind NAT. auto: while peers from outside this node\'s own networks reach it directly; on: always; off: never.',
  },
  relayReservations: {
    key: 'mesh.relay_reservations',
    env: 'GRIDX_RELAY_RESERVATIONS',
    expect: 'a whole number 1-100000',
    parse: int(1, 100_000),
    default: () => 128,
    doc: 'Peers behind NAT that may hold a relay slot on this node at once.',
  },
  relayDataBytes: {
    key: 'mesh.relay_data_limit',
    env: 'GRIDX_RELAY_DATA_LIMIT',
    expect: 'a size of at least 1MiB, such as "256MiB"',
    parse: size(1024 * 1024),
    default: () => 256 * 1024 * 1024,
    doc: 'Bytes one relayed connection may carry; past it the relay closes it and the peers connect again.',
  },
  relayTimeMs: {
    key: 'mesh.relay_time_limit',
    env: 'GRIDX_RELAY_TIME_LIMIT',
    expect: 'a duration of at least 1m, such as "1h"',
    parse: durationAtLeast(60_000),
    default: () => 60 * 60_000,
    doc: 'How long one relayed connection may last; past it the relay closes it and the peers connect again.',
  },
  ...LEDGER_SETTINGS,
  ...TRUST_SETTINGS,
} satisfies Record<string, Setting<unknown>>;

export type SettingName = keyof typeof SETTINGS;

/** Values given on the command line, by setting name. */
export type Overrides = { [K in SettingName]?: unknown };
