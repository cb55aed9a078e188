/** The runner's side of the runner API (src/api/routes/runners.ts), typed. */

import { resultBody } from '../api/routes/runners.js';
import type { ExecutionResult, JobSpec } from '../domain/job.js';
import { signResult } from '../domain/result-digest.js';
import type { OutputStream } from '../executor/executor.js';
import { GridxClient } from './client.js';

export interface RunnerRegistrationBody {
  name: string;
  slots: number;
  labels?: Record<string, string>;
  limits?: { cpu?: number; memory?: string | number; timeout?: string | number; gpus?: number; networks?: string[] };
  version?: string;
  /** Ed25519 public key (SPKI DER, base64) the runner signs its results with. */
  public_key: string;
}

export interface RegisteredRunner {
  id: string;
  name: string;
  token: string;
  lease_ttl_ms: number;
  heartbeat_ms: number;
}

export interface RunnerView {
  id: string;
  name: string;
  status: 'online' | 'offline';
  slots: number;
  running: number;
  labels: Record<string, string>;
  version: string;
  registered_at: string;
  last_heartbeat_at: string;
}

export interface ClaimedJobBody {
  lease_token: string;
  job_id: string;
  attempt: number;
  spec: JobSpec;
  lease_expires_at: string;
}

export interface HeartbeatBody {
  renewed: string[];
  lost: string[];
  lease_ttl_ms: number;
  heartbeat_ms: number;
}

/** Registration authenticates with an account key; everything else as one runner (its own secret). */
export class RunnerClient extends GridxClient {
  constructor(
    baseUrl: string,
    readonly runnerId?: string,
    token?: string,
    /** The runner's Ed25519 private key (PKCS#8 PEM): results are signed with it. */
    private readonly signingKey?: string,
  ) {
    super(baseUrl, token === undefined ? {} : { token });
  }

  register(body: RunnerRegistrationBody): Promise<RegisteredRunner> {
    return this.request('POST', '/api/runners', body);
  }

  runners(): Promise<{ runners: RunnerView[] }> {
    return this.request('GET', '/api/runners');
  }

  heartbeat(leases: string[], signal?: AbortSignal): Promise<HeartbeatBody> {
    return this.request('POST', `${this.base()}/heartbeat`, { leases }, signal);
  }

  /** This runner is stopping: the jobs it holds go back to the queue. */
  leave(): Promise<{ returned: number }> {
    return this.request('POST', `${this.base()}/leave`);
  }

  /** Up to `max` jobs; waits up to `waitSeconds` on the server when there are none. */
  async claim(max: number, waitSeconds: number, signal?: AbortSignal): Promise<ClaimedJobBody[]> {
    const answer = await this.request<{ jobs: ClaimedJobBody[] }>('POST', `${this.base()}/claim`, { max, wait: waitSeconds }, signal);
    return answer.jobs;
  }

  started(token: string): Promise<{ job_id: string; status: string }> {
    return this.request('POST', `${this.lease(token)}/started`);
  }

  output(token: string, chunks: Array<{ stream: OutputStream; data: string }>): Promise<void> {
    return this.request('POST', `${this.lease(token)}/output`, { chunks });
  }

  /** Reports the result of job `jobId` under lease `token`, signed with the runner's key. */
  result(token: string, jobId: string, result: ExecutionResult): Promise<{ job_id: string; status: string }> {
    if (this.signingKey === undefined) throw new Error('bug: this RunnerClient has no signing key');
    return this.request('POST', `${this.lease(token)}/result`, resultBody(result, signResult(this.signingKey, jobId, token, result)));
  }

  /** The execution could not start. */
  failed(token: string, reason: 'image_not_found' | 'executor_error', message: string): Promise<{ job_id: string; status: string }> {
    return this.request('POST', `${this.lease(token)}/failed`, { reason, message });
  }

  release(token: string, reason: string): Promise<void> {
    return this.request('POST', `${this.lease(token)}/release`, { reason });
  }

  private base(): string {
    if (this.runnerId === undefined) throw new Error('bug: this RunnerClient has no runner id');
    return `/api/runners/${encodeURIComponent(this.runnerId)}`;
  }

  private lease(token: string): string {
    return `${this.base()}/leases/${encodeURIComponent(token)}`;
  }
}
