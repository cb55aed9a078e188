/**
 * The job store contract. SQLite (embedded) implements it now; PostgreSQL implements the
 * same contract for servers at scale, and one shared test suite runs against both.
 * Every change of status is a conditional write on the expected status (and, while a job
 * holds an execution, its lease token); a lost race returns undefined and changes nothing.
 */

import type { OutputManifest } from '../domain/data.js';
import type { ExecutionRecord } from '../domain/execution.js';
import type { FailureReason, Job, JobSpec, JobStatus } from '../domain/job.js';
import type { JobLimits } from '../domain/offer.js';
import type { LedgerStore, Transfer } from './ledger-store.js';

export type { ExecutionRecord };

export interface NewJob {
  id: string;
  spec: JobSpec;
  title?: string;
  /** Run only on this node, never forwarded. */
  pinned?: boolean;
  /** Peer id of the node that forwarded the job here. */
  origin?: string;
  description?: string;
  /** Credits offered, as a decimal string. */
  reward?: string;
  /** The account that pays the reward and alone may see the result and cancel. */
  owner?: string;
  /**
   * Redundant execution: the job is inserted as a running parent that is never claimed,
   * with these child jobs (one per replica) pending under it, in the same transaction.
   */
  replicas?: NewJob[];
  /** Set on the children of a redundant job. */
  parent?: string;
}

/** Fields a transition may set. `undefined` leaves a field alone; `null` clears it. */
export interface JobPatch {
  status: JobStatus;
  executionId?: string | null;
  /** Sets the attempt count (an attempt a peer refused before it began is given back). */
  attempts?: number;
  startedAt?: string;
  finishedAt?: string;
  exitCode?: number;
  reason?: FailureReason | null;
  message?: string | null;
  stdout?: string;
  stderr?: string;
  stdoutTruncated?: boolean;
  stderrTruncated?: boolean;
  durationMs?: number;
  /** Epoch ms before which a requeued job is not claimed again (retry backoff). */
  notBefore?: number | null;
  /** Epoch ms by which the execution must have ended; renewals never move it. */
  deadlineAt?: number | null;
  /** The files the execution left under /outputs. */
  outputs?: OutputManifest;
}

export interface Expectation {
  /** The statuses the job must be in for the write to happen. */
  status: readonly JobStatus[];
  /** When set, the job's current lease token must equal it. */
  executionId?: string;
  /** When true, the job's lease must have expired (the sweep's requeue loses to a renewal). */
  leaseExpired?: boolean;
  /** When true, the execution's deadline must have passed (a start that moved it wins). */
  deadlinePassed?: boolean;
}

/** What a claim records besides the lease. */
export interface ClaimTerms {
  /**
   * The account the worker earns for. A replica of a task is claimed only with one, and
   * only by an account that holds no other replica of that task and never did: k replicas
   * run under k different accounts.
   */
  accountId?: string;
  /** Epoch ms by which the execution must have ended (see JobPatch.deadlineAt). */
  deadlineAt?: number;
}

/**
 * How far past the head of the queue (in queue positions, seq) a claim looks for jobs that
 * fit: jobs a worker cannot run do not block it, and a queue of them costs a bounded read.
 */
export const CLAIM_SPAN = 4096;

/** Jobs one batch claim takes at most: PostgreSQL numbers a transaction's events in 12 bits (events.pos). */
export const MAX_BATCH_CLAIM = 4096;

/**
 * A worker's batch claim, made by the store in one step (one statement on PostgreSQL):
 * the ready pending jobs in queue order, less the owners `skip` names, that fit the
 * worker, at most `window` of them and no further than CLAIM_SPAN past the head of the
 * queue; of those, the ones their owners' `room` allows; and of those, the first `max`
 * that no other claim holds, each under a fresh lease token.
 */
export interface NextClaim {
  nodeId: string;
  max: number;
  leaseTtlMs: number;
  /** Fitting jobs looked at (at least `max`; more when the owners' room may pass over some). */
  window: number;
  skip?: PendingFilter;
  /** The worker's limits: jobs that need more are passed over. Absent: every job fits. */
  limits?: JobLimits;
  /** Pass over jobs pinned to this node or mounting host volumes (a runner can run neither). */
  portableOnly?: boolean;
  /** How many more jobs each owner may start now (its running cap less what it holds); absent: no cap. */
  room?: OwnerRoom;
  /** Also return the replicas among the fitting jobs (they are claimed one by one, under the replica rule). */
  replicas?: boolean;
  /** The deadline of each execution: claim time + startWindowMs + the job's timeout + graceMs. */
  deadlines: { startWindowMs: number; graceMs: number };
}

/** Jobs each owner may still start; owners not named get `others`, anonymous jobs together `anonymous`. */
export interface OwnerRoom {
  owners: ReadonlyMap<string, number>;
  others: number;
  anonymous: number;
}

export interface NextClaimed {
  /** Jobs taken, in queue order; each job's executionId is its lease token. */
  claimed: Job[];
  /** Pending replicas that fit (only when asked for), not taken. */
  replicas: Job[];
  /** Jobs (not replicas) that fit and had room: fewer taken than this means other claims held some. */
  eligible: number;
}

/** Pending jobs a dispatcher leaves out of a scan (their owners are at a cap). */
export interface PendingFilter {
  /** Owners whose jobs are left out. */
  skipOwners?: readonly string[];
  /** Leave out the anonymous jobs (no owner). */
  skipAnonymous?: boolean;
}

/** Jobs one owner holds executions for now (scheduled or running). */
export interface OwnerLoad {
  /** Undefined: the anonymous jobs, all together. */
  owner?: string;
  held: number;
}

export interface ListOptions {
  status?: JobStatus;
  /**
   * Whose listing: an account id lists that account's jobs and the anonymous ones, null
   * only the anonymous ones; absent lists every job (the node's own use).
   */
  viewer?: string | null;
  /** Page size; the store caps it. */
  limit?: number;
  /** Opaque cursor from a previous page. */
  cursor?: string;
}

export interface JobPage {
  /** Newest first; stdout/stderr are left empty in listings. */
  jobs: Job[];
  nextCursor?: string;
}

/**
 * One entry of the update stream. Status and result events are written by the store in
 * the same transaction as the change they report (a transactional outbox): a change is
 * never stored without its event, nor an event without its change.
 */
export interface StoredEvent {
  /**
   * The cursor: increasing in commit order, so a client that resumes after it never
   * skips an event that committed later with a smaller number. Not dense.
   */
  seq: number;
  jobId: string;
  /** status: a non-terminal change; result: the terminal one; output: a chunk printed. */
  type: 'status' | 'result' | 'output';
  /** Output: {stream, data}. Status and result: {job}, the job as the change left it, output left out. */
  data: Record<string, unknown>;
  /** The job's owner: only that account is streamed the event (none: anybody). */
  owner?: string;
  at: string;
}

/** A runner as registered with a server. */
export interface RunnerRecord {
  id: string;
  name: string;
  /** sha256 of the runner's secret, hex; the secret itself is never stored. */
  tokenHash: string;
  slots: number;
  labels: Record<string, string>;
  /** The most one job may ask of this runner. */
  limits: JobLimits;
  version: string;
  /** The account its earnings are paid to. */
  accountId?: string;
  /** Ed25519 public key (SPKI DER, base64) its results are signed with. */
  publicKey?: string;
  registeredAt: string;
  lastHeartbeatAt: string;
}

export interface RunnerSummary extends RunnerRecord {
  /** Jobs it holds leases on now. */
  running: number;
}

export interface JobStore {
  /** Accounts and the journal, in the same database. */
  readonly ledger: LedgerStore;
  /** Inserts a pending job; with `escrow`, posts that transfer in the same transaction (PAYMENT_REQUIRED: nothing written). */
  insert(job: NewJob, escrow?: Transfer): Promise<Job>;
  get(id: string): Promise<Job | undefined>;
  list(options?: ListOptions): Promise<JobPage>;
  /** Jobs in any of `statuses`, oldest first, at most `limit` (default all). */
  withStatus(statuses: readonly JobStatus[], limit?: number): Promise<Job[]>;
  countByStatus(): Promise<Record<JobStatus, number>>;
  /**
   * Pending jobs per owner (null: the anonymous ones), for the queue caps: one read of the
   * pending jobs alone, however many ended jobs the store keeps. Owners with none are absent.
   */
  pendingByOwner(): Promise<Map<string | null, number>>;
  /** Pending jobs whose retry backoff has passed, oldest first, at most `limit`, less those `skip` names. */
  pendingReady(limit: number, skip?: PendingFilter): Promise<Job[]>;
  /** Jobs holding an execution (scheduled or running), counted per owner; owners holding none are absent. */
  heldByOwner(): Promise<OwnerLoad[]>;
  /**
   * Atomically takes pending job `id` if `terms` allow it: pending → scheduled with a fresh
   * lease token `executionId`, attempts + 1, and an execution record for `nodeId`; undefined
   * if it is no longer pending or `terms` do not allow it. The lease expires `leaseTtlMs`
   * from now unless renewed; without a TTL it does not expire (the holder's own restart
   * recovers the job). Production claims through src/scheduler/leases.ts, which scans
   * `pendingReady` and claims here.
   */
  claim(id: string, nodeId: string, executionId: string, leaseTtlMs?: number, terms?: ClaimTerms): Promise<Job | undefined>;
  /** A worker's batch claim (NextClaim); replicas are never taken here: they go through `claim` and its replica rule. */
  claimNext(query: NextClaim): Promise<NextClaimed>;
  /**
   * Extends the live, unexpired leases among `executionIds` to `ttlMs` from now, only those
   * `holder` holds when given; returns those renewed.
   */
  renewLeases(executionIds: readonly string[], ttlMs: number, holder?: string): Promise<string[]>;
  /** Scheduled or running jobs whose lease has expired, oldest first, at most `limit`. */
  expiredLeases(limit: number): Promise<Job[]>;
  /** Scheduled or running jobs past their deadline, the longest overdue first, at most `limit`. */
  overdue(limit: number): Promise<Job[]>;
  execution(id: string): Promise<ExecutionRecord | undefined>;
  /** Conditional write; undefined when the expectation no longer holds. */
  transition(id: string, expect: Expectation, patch: JobPatch): Promise<Job | undefined>;
  executions(jobId: string): Promise<ExecutionRecord[]>;
  /** The replicas of a redundant job, in the order they were made. */
  children(parentId: string): Promise<Job[]>;
  /** Epoch ms in the store's clock, the one leases, backoffs and deadlines are compared in. */
  now(): number;
  /** Appends an output event to the update stream (status events come with their changes). */
  appendEvent(event: Omit<StoredEvent, 'seq' | 'at'>): Promise<StoredEvent>;
  /** The cursor of the newest event a reader may see now (0 when none). */
  eventHead(): Promise<number>;
  /**
   * Calls `listener` when events may have been appended, by this process or (PostgreSQL)
   * any other on the database; it reads them with eventsSince. Returns the unsubscribe.
   */
  onEvents(listener: () => void): () => void;
  /** Deletes up to `limit` of the oldest events stored before `before` (ISO time); returns how many. */
  pruneEvents(before: string, limit: number): Promise<number>;
  /** The cursor at and below which events were deleted by retention (0: none were). */
  eventFloor(): Promise<number>;
  /**
   * Takes or keeps singleton duty `name` for `holder` for `ttlMs` in the store's clock:
   * its fencing token when held (the same while the holder keeps it, larger after any
   * change of holder), undefined while another holder's lease is live.
   */
  holdDuty(name: string, holder: string, ttlMs: number): Promise<number | undefined>;
  /** Gives duty `name` up if `holder` holds it, so another takes it at once. */
  releaseDuty(name: string, holder: string): Promise<void>;
  /** Drops a job's output events: an attempt that ended without a result (requeued) will not be shown. */
  forgetOutput(jobId: string): Promise<void>;
  /**
   * Turns a finished job's output events into references ({stream, offset, length}, in
   * characters) into the output stored on the job, so the output is kept once.
   */
  compactOutput(jobId: string): Promise<void>;
  /** Events after `since`, oldest first, optionally of one job, at most `limit`. */
  eventsSince(since: number, options?: { jobId?: string; limit?: number }): Promise<StoredEvent[]>;
  addRunner(runner: RunnerRecord): Promise<void>;
  getRunner(id: string): Promise<RunnerRecord | undefined>;
  /** Records a heartbeat; false when no such runner. */
  touchRunner(id: string): Promise<boolean>;
  /** Runners, most recently heard from first, with the jobs each holds. */
  listRunners(): Promise<RunnerSummary[]>;
  close(): Promise<void>;
}
