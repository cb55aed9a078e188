/** How runners look on the runner API. */

import { formatDuration, formatSize } from '../../domain/units.js';
import type { RunnerSummary } from '../../store/store.js';
import type { HeartbeatAnswer, ClaimedJob } from '../../scheduler/runner-hub.js';
import type { ClaimedJobBody, HeartbeatBody, LeaseAnswer, RegisteredRunner, RunnerList, RunnerView } from '../../wire/runners.js';
import type { Job } from '../../domain/job.js';

/** A runner as GET /api/runners shows it; never its token, and its account only to that account. */
export function runnerView(runner: RunnerSummary, onlineWithinMs: number, viewer?: string): RunnerView {
  const heardAgo = Date.now() - Date.parse(runner.lastHeartbeatAt);
  return {
    id: runner.id,
    name: runner.name,
    status: heardAgo <= onlineWithinMs ? 'online' : 'offline',
    slots: runner.slots,
    running: runner.running,
    labels: runner.labels,
    limits: {
      cpu: runner.limits.cpus,
      memory: formatSize(runner.limits.memoryBytes),
      timeout: formatDuration(runner.limits.timeoutMs),
      gpus: runner.limits.gpus,
      networks: runner.limits.networks,
    },
    version: runner.version,
    ...(runner.accountId && runner.accountId === viewer ? { account_id: runner.accountId } : {}),
    registered_at: runner.registeredAt,
    last_heartbeat_at: runner.lastHeartbeatAt,
  };
}

/** GET /api/runners: `viewer` sees the account of its own runners. */
export function runnerListView(runners: RunnerSummary[], onlineWithinMs: number, viewer?: string): RunnerList {
  return { runners: runners.map((r) => runnerView(r, onlineWithinMs, viewer)) };
}

/** Lease timing a runner is told at registration and with every heartbeat. */
export interface LeaseTiming {
  leaseTtlMs: number;
  heartbeatMs: number;
}

/** The answer to a registration: the new runner, its secret (shown this once) and its lease timing. */
export function registeredView(runner: RunnerSummary, token: string, timing: LeaseTiming, viewer?: string): RegisteredRunner {
  return { ...runnerView(runner, timing.leaseTtlMs, viewer), token, lease_ttl_ms: timing.leaseTtlMs, heartbeat_ms: timing.heartbeatMs };
}

export function heartbeatView(answer: HeartbeatAnswer, timing: LeaseTiming): HeartbeatBody {
  return { ...answer, lease_ttl_ms: timing.leaseTtlMs, heartbeat_ms: timing.heartbeatMs };
}

export function claimedJobView(j: ClaimedJob): ClaimedJobBody {
  return { lease_token: j.leaseToken, job_id: j.jobId, attempt: j.attempt, spec: j.spec, lease_expires_at: j.leaseExpiresAt };
}

/** Where a job stands after a runner's report. */
export function leaseAnswerView(job: Pick<Job, 'id' | 'status'>): LeaseAnswer {
  return { job_id: job.id, status: job.status };
}
