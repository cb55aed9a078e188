/**
 * The runner API on the wire: what `gridx runner` and its server say to each other
 * (/api/runners/...). snake_case, like the rest of /api.
 */

import type { ExecutionResult, JobSpec, JobStatus } from '../domain/job.js';
import type { ErrorCode } from '../errors.js';
import { type OutputFile, manifestOf } from '../domain/data.js';

/** Limits a runner asks for; what it leaves out, the server fills in from its own per-job limits. */
export interface RunnerLimitsBody {
  cpu?: number | string;
  memory?: string | number;
  timeout?: string | number;
  gpus?: number;
  networks?: string[];
}

/** POST /api/runners. */
export interface RunnerRegistrationBody {
  name: string;
  slots: number;
  labels?: Record<string, string>;
  limits?: RunnerLimitsBody;
  version?: string;
  /** Ed25519 public key (SPKI DER, base64) the runner signs its results with. */
  public_key: string;
}

/** A runner as GET /api/runners shows it; never its token, and its account only to that account. */
export interface RunnerView {
  id: string;
  name: string;
  /** Online while it heartbeats within a lease TTL. */
  status: 'online' | 'offline';
  slots: number;
  running: number;
  labels: Record<string, string>;
  limits: { cpu: number; memory: string; timeout: string; gpus: number; networks: string[] };
  version: string;
  account_id?: string;
  registered_at: string;
  last_heartbeat_at: string;
}

/** GET /api/runners. */
export interface RunnerList {
  runners: RunnerView[];
}

/** The answer to POST /api/runners: the runner, its secret, and how often to heartbeat. */
export interface RegisteredRunner extends RunnerView {
  token: string;
  lease_ttl_ms: number;
  heartbeat_ms: number;
}

/** POST /api/runners/:id/heartbeat. */
export interface HeartbeatRequest {
  /** Lease tokens the runner holds. */
  leases: string[];
}

export interface HeartbeatBody {
  /** Leases extended by this heartbeat. */
  renewed: string[];
  /** Leases the runner no longer holds (expired, cancelled, unknown): stop those executions. */
  lost: string[];
  lease_ttl_ms: number;
  heartbeat_ms: number;
}

/** POST /api/runners/:id/claim. */
export interface ClaimRequest {
  /** Jobs wanted at most (default 1). */
  max?: number;
  /** Seconds to wait on the server when there are none (default 0). */
  wait?: number;
}

/** A job handed to a runner: run `spec` and report under `lease_token`. */
export interface ClaimedJobBody {
  lease_token: string;
  job_id: string;
  attempt: number;
  spec: JobSpec;
  lease_expires_at: string;
}

export interface ClaimAnswer {
  jobs: ClaimedJobBody[];
}

/** POST /api/runners/:id/leave: how many held jobs went back to the queue. */
export interface LeaveAnswer {
  returned: number;
}

/** POST .../leases/:token/output. */
export interface OutputBody {
  chunks: Array<{ stream: 'stdout' | 'stderr'; data: string }>;
}

/** POST .../leases/:token/result: a result as runners send it. */
export interface ResultBody {
  exit_code?: number | null;
  oom_killed: boolean;
  timed_out: boolean;
  cancelled: boolean;
  stdout: string;
  stderr: string;
  stdout_truncated?: boolean;
  stderr_truncated?: boolean;
  started_at: string;
  finished_at: string;
  duration_ms: number;
  /**
   * What the job left under /outputs, each file uploaded under the lease first. The server
   * computes the root digest itself; the signature covers it.
   */
  outputs?: { files: OutputFile[]; exceeded: boolean };
  /** The runner's Ed25519 signature over the result (domain/result-digest.ts). */
  signature: string;
}

/** POST .../leases/:token/failed: the execution could not start. */
export interface FailedBody {
  reason: 'image_not_found' | 'input_unavailable' | 'executor_error';
  message: string;
}

/** POST .../leases/:token/release: the runner gives the job back. */
export interface ReleaseBody {
  reason?: string;
}

/** The answer to started, result and failed: where the job stands now. */
export interface LeaseAnswer {
  job_id: string;
  status: JobStatus;
}

/** The most results one request to /results carries. */
export const MAX_RESULTS_PER_REQUEST = 64;

/** POST /api/runners/:id/results: several results in one request, each as .../leases/:token/result takes one. */
export interface ResultsBody {
  results: Array<ResultBody & { lease_token: string }>;
}

/** Its answer: one entry per result, in the order sent: where the job stands, or why that result was refused. */
export interface ResultsAnswer {
  results: Array<{ lease_token: string } & (LeaseAnswer | { error: { code: ErrorCode; message: string } })>;
}

/** An execution result as a runner sends it, with its signature. */
export function resultBody(r: ExecutionResult, signature: string): ResultBody {
  return {
    signature,
    exit_code: r.exitCode ?? null,
    oom_killed: r.oomKilled,
    timed_out: r.timedOut,
    cancelled: r.cancelled,
    stdout: r.stdout,
    stderr: r.stderr,
    stdout_truncated: r.stdoutTruncated,
    stderr_truncated: r.stderrTruncated,
    started_at: r.startedAt,
    finished_at: r.finishedAt,
    duration_ms: r.durationMs,
    ...(r.outputs ? { outputs: { files: r.outputs.files, exceeded: r.outputs.exceeded } } : {}),
  };
}

/** The execution result a runner's report carries (its signature aside). */
export function executionResultOf(b: ResultBody): ExecutionResult {
  return {
    ...(b.exit_code === null || b.exit_code === undefined ? {} : { exitCode: b.exit_code }),
    oomKilled: b.oom_killed,
    timedOut: b.timed_out,
    cancelled: b.cancelled,
    stdout: b.stdout,
    stderr: b.stderr,
    stdoutTruncated: b.stdout_truncated ?? false,
    stderrTruncated: b.stderr_truncated ?? false,
    startedAt: b.started_at,
    finishedAt: b.finished_at,
    durationMs: b.duration_ms,
    ...(b.outputs ? { outputs: manifestOf(b.outputs.files, b.outputs.exceeded) } : {}),
  };
}
