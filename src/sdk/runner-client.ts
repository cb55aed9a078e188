/** The runner's side of the runner API (src/wire/runners.ts), typed. */

import type { KeyObject } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ExecutionResult } from '../domain/job.js';
import { GridxError } from '../errors.js';
import type { BlobRef } from '../wire/gridx.js';
import { signResult, signingKeyOf } from '../domain/result-digest.js';
import {
  type ClaimAnswer,
  type ClaimRequest,
  type FailedBody,
  type ClaimedJobBody,
  type HeartbeatBody,
  type HeartbeatRequest,
  type LeaseAnswer,
  type LeaveAnswer,
  type OutputBody,
  type RegisteredRunner,
  type ReleaseBody,
  type RunnerList,
  type RunnerRegistrationBody,
  type ResultBody,
  type ResultsAnswer,
  type ResultsBody,
  type RunnerView,
  resultBody,
} from '../wire/runners.js';
import { GridxClient } from './client.js';
import { putBlob } from './files.js';

export type { ClaimedJobBody, HeartbeatBody, LeaseAnswer, RegisteredRunner, RunnerList, RunnerRegistrationBody, RunnerView };

/** Registration authenticates with an account key; everything else as one runner (its own secret). */
export class RunnerClient extends GridxClient {
  constructor(
    baseUrl: string,
    readonly runnerId?: string,
    token?: string,
    /** The runner's Ed25519 private key (PKCS#8 PEM): results are signed with it. */
    signingKeyPem?: string,
  ) {
    super(baseUrl, token === undefined ? {} : { token });
    this.signingKey = signingKeyPem === undefined ? undefined : signingKeyOf(signingKeyPem);
  }

  private readonly signingKey: KeyObject | undefined;

  register(body: RunnerRegistrationBody): Promise<RegisteredRunner> {
    return this.request('POST', '/api/runners', body);
  }

  runners(): Promise<RunnerList> {
    return this.request('GET', '/api/runners');
  }

  heartbeat(leases: string[], signal?: AbortSignal): Promise<HeartbeatBody> {
    return this.request('POST', `${this.base()}/heartbeat`, { leases } satisfies HeartbeatRequest, signal);
  }

  /** This runner is stopping: the jobs it holds go back to the queue. */
  leave(): Promise<LeaveAnswer> {
    return this.request('POST', `${this.base()}/leave`);
  }

  /** Up to `max` jobs; waits up to `waitSeconds` on the server when there are none. */
  async claim(max: number, waitSeconds: number, signal?: AbortSignal): Promise<ClaimedJobBody[]> {
    const answer = await this.request<ClaimAnswer>('POST', `${this.base()}/claim`, { max, wait: waitSeconds } satisfies ClaimRequest, signal);
    return answer.jobs;
  }

  started(token: string): Promise<LeaseAnswer> {
    return this.request('POST', `${this.lease(token)}/started`);
  }

  output(token: string, chunks: OutputBody['chunks']): Promise<void> {
    return this.request('POST', `${this.lease(token)}/output`, { chunks } satisfies OutputBody);
  }

  /** Reports the result of job `jobId` under lease `token`, signed with the runner's key. */
  result(token: string, jobId: string, result: ExecutionResult): Promise<LeaseAnswer> {
    return this.request('POST', `${this.lease(token)}/result`, this.signed(token, jobId, result));
  }

  /**
   * Reports several results in one request (at most MAX_RESULTS_PER_REQUEST), each signed;
   * the answers come in the same order, each the job's status or why that result was refused.
   */
  async results(reports: ReadonlyArray<{ token: string; jobId: string; result: ExecutionResult }>): Promise<ResultsAnswer['results']> {
    const body: ResultsBody = { results: reports.map(({ token, jobId, result }) => ({ lease_token: token, ...this.signed(token, jobId, result) })) };
    return (await this.request<ResultsAnswer>('POST', `${this.base()}/results`, body)).results;
  }

  /** A result as the wire carries it, signed with the runner's key. */
  private signed(token: string, jobId: string, result: ExecutionResult): ResultBody {
    if (this.signingKey === undefined) throw new Error('bug: this RunnerClient has no signing key');
    return resultBody(result, signResult(this.signingKey, jobId, token, result));
  }

  /** An input blob of the job under lease `token`, streamed; whoever stores it checks its digest. */
  async input(token: string, digest: string, signal?: AbortSignal): Promise<Readable> {
    const res = await this.exchange('GET', `${this.lease(token)}/blobs/${encodeURIComponent(digest)}`, { signal });
    if (!res.body) throw new GridxError('REMOTE_ERROR', `the server sent no body for input ${digest}`);
    return Readable.fromWeb(res.body as import('node:stream/web').ReadableStream);
  }

  /**
   * Uploads the file at `file`, an output of the job under lease `token`; the server keeps it
   * only if it hashes to `digest` (the runner's store already named it by its digest).
   */
  putOutput(token: string, file: string, digest: string, signal?: AbortSignal): Promise<BlobRef> {
    return putBlob(this.exchange, file, signal ? { signal } : {}, { at: `${this.lease(token)}/blobs`, digest });
  }

  /** The execution could not start. */
  failed(token: string, reason: FailedBody['reason'], message: string): Promise<LeaseAnswer> {
    return this.request('POST', `${this.lease(token)}/failed`, { reason, message } satisfies FailedBody);
  }

  release(token: string, reason: string): Promise<void> {
    return this.request('POST', `${this.lease(token)}/release`, { reason } satisfies ReleaseBody);
  }

  private base(): string {
    if (this.runnerId === undefined) throw new Error('bug: this RunnerClient has no runner id');
    return `/api/runners/${encodeURIComponent(this.runnerId)}`;
  }

  private lease(token: string): string {
    return `${this.base()}/leases/${encodeURIComponent(token)}`;
  }
}
