/**
 * The Grid-X dialect on the wire: GET /status, GET /peers, POST /job and the /jobs
 * resource. camelCase, limits in human units ("512m", "5m").
 */

import type { ExecutionRecord } from '../domain/execution.js';
import type { FailureReason, JobStatus } from '../domain/job.js';
import type { Offer } from '../domain/offer.js';

/** POST /job: a job spec (DESIGN.md's canonical form) plus how it is run and paid. */
export interface JobRequestBody {
  image: string;
  command: string | string[];
  env?: Record<string, string> | string[];
  workdir?: string;
  resources?: { cpus?: number; memory?: string | number; gpus?: number };
  timeout?: string | number;
  network?: string;
  title?: string;
  /** Run only on the node it is sent to. */
  pin?: boolean;
  /** Credits paid from the caller's account to whoever runs it. */
  reward?: string | number;
  /** Run by this many different workers; the majority result is accepted and paid. */
  verification?: { replicas: number };
  /** Files placed read-only under /inputs before the job starts. */
  inputs?: InputBody[];
}

/** One input file: a path under /inputs and exactly one source. */
export type InputBody =
  | { path: string; digest: string }
  | { path: string; content: string }
  | { path: string; url: string; sha256?: string };

/** POST /blobs's answer. */
export interface BlobRef {
  digest: string;
  size: number;
}

/** GET /jobs/:id/outputs (and /api/tasks/:id/outputs): what the job left under /outputs. */
export interface OutputsView {
  id: string;
  status: JobStatus;
  /** The digest over the manifest (path, size, sha256 of every file). */
  root: string;
  bytes: number;
  /** It ran out of room under /outputs; the files that fitted are listed. */
  exceeded: boolean;
  files: Array<{ path: string; size: number; sha256: string }>;
}

/** A job as its owner (or anybody, for anonymous jobs) sees it. */
export interface JobView {
  id: string;
  status: JobStatus;
  title?: string;
  description?: string;
  reward?: string;
  image: string;
  command: string[];
  exitCode?: number;
  reason?: FailureReason;
  message?: string;
  /** What it left under /outputs, once it ended (the list: GET /jobs/:id/outputs). */
  outputs?: { root: string; files: number; bytes: number; exceeded: boolean };
  /** Left out of listings and events. */
  stdout?: string;
  stderr?: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  durationMs?: number;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  attempts: number;
  executedBy?: string;
  pinned: boolean;
  origin?: string;
  resources: { cpus: number; memory: string; gpus: number };
  timeout: string;
  network: string;
  workdir?: string;
  /** GET /jobs/:id only. */
  executions?: ExecutionRecord[];
  /** Why it waits, while it is pending (GET /jobs/:id). */
  waiting?: WaitingView;
  /** Redundant execution: how many workers run it. */
  replicas?: number;
  /** The task this job is a replica of. */
  parent?: string;
}

/**
 * What anyone but the owner sees of another account's job (GET /jobs/:id, GET
 * /api/tasks/:id): that it exists and where it stands.
 */
export interface StrangerView {
  id: string;
  status: JobStatus;
}

/** GET /jobs: newest first; pass `nextCursor` as ?cursor= for the next page. */
export interface JobList {
  jobs: JobView[];
  nextCursor: string | null;
}

/** GET /jobs/:id/logs (not followed): the output so far. */
export interface JobLogs {
  id: string;
  status: JobStatus;
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
}

/**
 * Why a pending job waits (GET /jobs/:id, /api/tasks/:id, and the follow stream while it
 * waits): `summary` in one line, then the counts it is made of.
 */
export interface WaitingView {
  /** "waiting: 2 of 2 slots busy; 4 peers: 2 busy, 1 lacks 8g memory, 1 does not allow network bridge; …" */
  summary: string;
  slots?: { total: number; busy: number };
  /** Peers whose offers the node holds, counted by why each does not take the job ("free": it could). */
  peers?: { considered: number; reasons: Record<string, number> };
  /** Online runners, counted the same way. */
  runners?: { considered: number; reasons: Record<string, number> };
  /** When a requeued job is tried again (its backoff). */
  retryAt?: string;
}

/** One NDJSON line of GET /jobs/:id/logs?follow=true: output, a status change, why it waits, the end, or an error. */
export type LogEvent =
  | { stream: 'stdout' | 'stderr'; data: string }
  | { event: 'status'; status: JobStatus }
  | { event: 'waiting'; waiting: WaitingView }
  | ({ event: 'end' } & JobView)
  | { event: 'error'; error: string };

/** The machine's resources as the node's monitor last sampled them. */
export interface ResourcesView {
  cpus: number;
  /** Busy share of all CPUs over the last sample interval, 0-100. */
  cpuLoadPercent: number;
  loadAverage: number[];
  memoryTotalBytes: number;
  memoryFreeBytes: number;
  gpus: Array<{ index: number; name: string; memoryTotalBytes: number; memoryUsedBytes: number; utilizationPercent: number }>;
}

/** GET /status. */
export interface NodeStatus {
  status: 'idle' | 'busy';
  nodeId: string;
  /** The node's libp2p peer id (equal to nodeId). */
  peerId: string;
  multiaddrs: string[];
  /** Peers whose offers this node holds. */
  peers: number;
  /** Open libp2p connections. */
  connections: number;
  /**
   * How peers reach this node (absent outside a mesh). local: all its peers are on its own
   * networks; public: peers from outside reach it directly; private: they do not, so it
   * holds a slot on a relay (`relays`). `relaying`: it relays for peers behind NAT.
   */
  reachability?: { state: 'local' | 'public' | 'private'; relaying: boolean; relays: string[] };
  version: string;
  slots: { total: number; used: number; free: number };
  queue: { pending: number; running: number };
  resources: ResourcesView;
  /** Per-job limits of this node. */
  limits: { cpus: number; memory: string; timeout: string; gpus: number; networks: string[] };
}

/** GET /peers: the peers this node knows, each with its current offer. */
export interface PeerList {
  peerId: string;
  /** `connection`: how this node is connected to the peer now, or null when it is not. */
  peers: Array<{ peerId: string; connected: boolean; connection: PeerConnection | null; offer: Offer }>;
}

/** direct; through a relay; or punched through NAT (DCUtR) after starting relayed. */
export type PeerConnection = 'direct' | 'relayed' | 'hole-punched';
