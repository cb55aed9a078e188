/** Row shapes and their mapping to domain types, shared by the SQLite and PostgreSQL stores. */

import type { OutputManifest } from '../domain/data.js';
import type { Job, JobStatus } from '../domain/job.js';
import type { Transfer } from './ledger-store.js';
import type { ExecutionRecord, JobPatch, NewJob, RunnerRecord, RunnerSummary, StoredEvent } from './store.js';

/** Column list for listings: everything but the captured output. */
export const SUMMARY_COLUMNS = `id, seq, status, spec, title, created_at, updated_at, started_at, finished_at, attempts,
  execution_id, exit_code, reason, message, '' AS stdout, '' AS stderr, stdout_truncated, stderr_truncated,
  duration_ms, executed_by, pinned, origin, description, reward, lease_expires_at, owner, settled_at, parent, replicas, NULL AS outputs`;

/** A jobs row as either driver returns it (SQLite: 0/1 and JSON text; PostgreSQL: booleans, JSONB, bigint text). */
export interface JobRow {
  id: string;
  seq: number | string;
  status: JobStatus;
  spec: string | Job['spec'];
  title: string | null;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
  attempts: number;
  execution_id: string | null;
  exit_code: number | null;
  reason: Job['reason'] | null;
  message: string | null;
  stdout: string;
  stderr: string;
  stdout_truncated: boolean | number;
  stderr_truncated: boolean | number;
  duration_ms: number | null;
  executed_by: string | null;
  pinned: boolean | number;
  origin: string | null;
  description: string | null;
  reward: string | null;
  lease_expires_at: number | string | null;
  /** Absent from listings (SUMMARY_COLUMNS). */
  not_before?: number | string | null;
  owner: string | null;
  settled_at: string | null;
  parent: string | null;
  replicas: number | null;
  outputs: string | null;
}

export function toJob(row: JobRow): Job {
  const job: Job = {
    id: row.id,
    status: row.status,
    spec: typeof row.spec === 'string' ? (JSON.parse(row.spec) as Job['spec']) : row.spec,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    attempts: row.attempts,
    stdout: row.stdout,
    stderr: row.stderr,
    stdoutTruncated: Boolean(row.stdout_truncated),
    stderrTruncated: Boolean(row.stderr_truncated),
    pinned: Boolean(row.pinned),
  };
  if (row.title !== null) job.title = row.title;
  if (row.started_at !== null) job.startedAt = row.started_at;
  if (row.finished_at !== null) job.finishedAt = row.finished_at;
  if (row.execution_id !== null) job.executionId = row.execution_id;
  if (row.exit_code !== null) job.exitCode = row.exit_code;
  if (row.reason !== null) job.reason = row.reason;
  if (row.message !== null) job.message = row.message;
  if (row.duration_ms !== null) job.durationMs = row.duration_ms;
  if (row.executed_by !== null) job.executedBy = row.executed_by;
  if (row.origin !== null) job.origin = row.origin;
  if (row.description !== null) job.description = row.description;
  if (row.reward !== null) job.reward = row.reward;
  if (row.owner !== null) job.owner = row.owner;
  if (row.settled_at !== null) job.settledAt = row.settled_at;
  if (row.parent !== null) job.parent = row.parent;
  if (row.replicas !== null) job.replicas = row.replicas;
  if (row.outputs !== null) job.outputs = JSON.parse(row.outputs) as OutputManifest;
  if (row.lease_expires_at !== null) job.leaseExpiresAt = new Date(Number(row.lease_expires_at)).toISOString();
  if (row.not_before !== null && row.not_before !== undefined) job.notBefore = Number(row.not_before);
  return job;
}

export interface ExecutionRow {
  id: string;
  job_id: string;
  attempt: number;
  node_id: string;
  status: ExecutionRecord['status'];
  started_at: string;
  finished_at: string | null;
  exit_code: number | null;
  message: string | null;
}

export function toExecution(r: ExecutionRow): ExecutionRecord {
  return {
    id: r.id,
    jobId: r.job_id,
    attempt: r.attempt,
    nodeId: r.node_id,
    status: r.status,
    startedAt: r.started_at,
    ...(r.finished_at === null ? {} : { finishedAt: r.finished_at }),
    ...(r.exit_code === null ? {} : { exitCode: r.exit_code }),
    ...(r.message === null ? {} : { message: r.message }),
  };
}

export interface RunnerRow {
  id: string;
  name: string;
  token_hash: string;
  slots: number;
  labels: string | Record<string, string>;
  limits: string | RunnerRecord['limits'];
  version: string;
  registered_at: string;
  last_heartbeat_at: string;
  account_id: string | null;
  public_key: string | null;
  running?: number | string;
}

export function toRunner(r: RunnerRow): RunnerSummary {
  return {
    id: r.id,
    name: r.name,
    tokenHash: r.token_hash,
    slots: r.slots,
    labels: typeof r.labels === 'string' ? (JSON.parse(r.labels) as Record<string, string>) : r.labels,
    limits: typeof r.limits === 'string' ? (JSON.parse(r.limits) as RunnerRecord['limits']) : r.limits,
    version: r.version,
    registeredAt: r.registered_at,
    lastHeartbeatAt: r.last_heartbeat_at,
    ...(r.account_id === null ? {} : { accountId: r.account_id }),
    ...(r.public_key === null ? {} : { publicKey: r.public_key }),
    running: Number(r.running ?? 0),
  };
}

/** Runners with the count of jobs each holds, most recently heard from first. */
export const LIST_RUNNERS_SQL = `SELECT r.*, (SELECT COUNT(*) FROM jobs j WHERE j.executed_by = r.id
  AND j.status IN ('scheduled', 'running')) AS running FROM runners r ORDER BY r.last_heartbeat_at DESC`;

/** The columns a transition's patch sets, besides status and updated_at; `undefined` values leave a column alone. */
export function patchColumns(patch: JobPatch): Array<[string, unknown]> {
  return [
    ['execution_id', patch.executionId],
    ['attempts', patch.attempts],
    ['started_at', patch.startedAt],
    ['finished_at', patch.finishedAt],
    ['exit_code', patch.exitCode],
    ['reason', patch.reason],
    ['message', patch.message],
    ['stdout', patch.stdout],
    ['stderr', patch.stderr],
    ['stdout_truncated', patch.stdoutTruncated],
    ['stderr_truncated', patch.stderrTruncated],
    ['duration_ms', patch.durationMs],
    ['not_before', patch.notBefore],
    ['deadline_at', patch.deadlineAt],
    ['outputs', patch.outputs === undefined ? undefined : JSON.stringify(patch.outputs)],
  ];
}

/** An events row as either driver returns it, its cursor as `seq`. */
export interface EventRow {
  seq: number | string;
  job_id: string;
  type: StoredEvent['type'];
  data: string | Record<string, unknown>;
  at: string;
  owner: string | null;
}

/**
 * A stored event; a status event's data holds the job row as the change left it (output
 * left out), returned as the Job. Events stored before the outbox carry their view as is.
 */
export function toEvent(r: EventRow): StoredEvent {
  let data = typeof r.data === 'string' ? (JSON.parse(r.data) as Record<string, unknown>) : r.data;
  if (r.type !== 'output' && typeof data.job === 'object' && data.job !== null) {
    data = { job: toJob({ ...(data.job as JobRow), stdout: '', stderr: '' }) };
  }
  return { seq: Number(r.seq), jobId: r.job_id, type: r.type, data, ...(r.owner === null ? {} : { owner: r.owner }), at: r.at };
}

/** A status event's data as SQLite stores it: the changed row less its output. */
export function eventData(row: JobRow): string {
  const { stdout: _o, stderr: _e, ...rest } = row;
  return JSON.stringify({ job: rest });
}

/**
 * When a job is settled as it is inserted: at once unless it carries the escrow. A job with
 * nothing in escrow (no reward; a replica, whose reward its parent holds) has nothing to pay
 * out or refund, so the settlement that would only mark it is skipped.
 */
export function settledAt(job: Pick<NewJob, 'id'>, escrow: Pick<Transfer, 'jobId'> | undefined, at: string): string | null {
  return escrow?.jobId === job.id ? null : at;
}
