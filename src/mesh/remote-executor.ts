/**
 * The Executor contract over /gridx/job/1.0.0: runs an execution on one peer and relays
 * its status, live output and result. A peer that refuses rejects start(); a peer that
 * dies or goes silent mid-job rejects wait(), and the scheduler places the job again.
 */

import { peerIdFromString } from '@libp2p/peer-id';
import type { ExecutionResult } from '../domain/job.js';
import { signedBytes } from '../domain/result-digest.js';
import { GridxError, messageOf } from '../errors.js';
import { type ExecutionRequest, type Executor, type OutputSnapshot, type StartOptions, startAborted } from '../executor/executor.js';
import { CappedOutput } from '../executor/output.js';
import { MAX_OUTPUT_FILES, type OutputFile, type OutputManifest, inputDigests, manifestOf, reportedFilesProblem } from '../domain/data.js';
import type { BlobStore } from '../storage/blob-store.js';
import { type BlobHeader, isBlobHeader, receiveBlob, sendBlob, transferDeadline } from './file-transfer.js';
import type { JsonChannel } from './wire.js';
import type { JobMessage } from './job-service.js';

/** A peer that sends nothing (not even a heartbeat) for this long is taken for dead. */
export const SILENCE_LIMIT_MS = 15_000;
const ANSWER_TIMEOUT_MS = 10_000;

/** Where a forwarded job's inputs are sent from and its outputs received into. */
export interface OriginFiles {
  blobs: Pick<BlobStore, 'stat' | 'open' | 'put'>;
  /** The most a job's outputs may hold here (runner.docker.outputs_size). */
  maxOutputBytes: number;
}

interface RemoteRun {
  jobId: string;
  executionId: string;
  /** Output files the peer sent, checked, by digest → size. */
  received: Map<string, number>;
  channel?: JsonChannel;
  cancelled: boolean;
  stdout: CappedOutput;
  stderr: CappedOutput;
  result?: Promise<ExecutionResult>;
}

export class RemoteExecutor implements Executor {
  private readonly runs = new Map<string, RemoteRun>();

  constructor(
    readonly peerId: string,
    private readonly open: (peerId: string, signal: AbortSignal) => Promise<JsonChannel>,
    private readonly outputLimitBytes: number,
    private readonly files: OriginFiles,
  ) {}

  async start(request: ExecutionRequest, options: StartOptions = {}): Promise<void> {
    if (this.runs.has(request.executionId)) return;
    const aborted = options.signal;
    if (aborted?.aborted) throw startAborted(request.executionId);
    const run: RemoteRun = {
      jobId: request.jobId,
      executionId: request.executionId,
      received: new Map(),
      cancelled: false,
      stdout: new CappedOutput(this.outputLimitBytes),
      stderr: new CappedOutput(this.outputLimitBytes),
    };
    this.runs.set(request.executionId, run);
    try {
      const answerTime = AbortSignal.timeout(ANSWER_TIMEOUT_MS);
      const signal = aborted ? AbortSignal.any([answerTime, aborted]) : answerTime;
      const channel = await this.open(this.peerId, signal);
      run.channel = channel;
      await channel.write({ type: 'run', jobId: request.jobId, executionId: request.executionId, spec: request.spec }, { signal });
      let answer = await channel.read<JobMessage>({ signal });
      if (answer?.type === 'need') {
        await this.sendInputs(channel, request, answer.digests, aborted);
        const answerAgain = aborted ? AbortSignal.any([AbortSignal.timeout(ANSWER_TIMEOUT_MS), aborted]) : AbortSignal.timeout(ANSWER_TIMEOUT_MS);
        answer = await channel.read<JobMessage>({ signal: answerAgain });
      }
      if (answer?.type === 'refused') {
        channel.stream.abort(new Error('refused'));
        throw new GridxError('REMOTE_ERROR', `refused: ${answer.reason}`);
      }
      if (answer?.type !== 'accepted') throw new GridxError('REMOTE_ERROR', `unexpected answer ${JSON.stringify(answer?.type)}`);
      // Accepted, then aborted: the closed stream tells the peer to cancel its copy.
      if (aborted?.aborted) throw startAborted(request.executionId);
      run.result = this.follow(run, channel, options);
      run.result.catch(() => {});
      if (run.cancelled) await channel.write({ type: 'cancel' }).catch(() => {});
      if (aborted) {
        const onAbort = () => void this.cancel(request.executionId);
        aborted.addEventListener('abort', onAbort, { once: true });
        const off = () => aborted.removeEventListener('abort', onAbort);
        run.result.then(off, off);
      }
    } catch (err) {
      this.runs.delete(request.executionId);
      run.channel?.stream.abort(err as Error);
      if (aborted?.aborted) throw startAborted(request.executionId);
      throw err instanceof GridxError ? err : new GridxError('REMOTE_ERROR', `peer ${this.peerId}: ${messageOf(err)}`, { cause: err });
    }
  }

  private async follow(run: RemoteRun, channel: JsonChannel, options: StartOptions): Promise<ExecutionResult> {
    for (;;) {
      let message: JobMessage;
      try {
        message = await channel.read<JobMessage>({ signal: AbortSignal.timeout(SILENCE_LIMIT_MS) });
      } catch (err) {
        channel.stream.abort(err as Error);
        throw new GridxError('REMOTE_ERROR', `lost peer ${this.peerId} mid-job: ${messageOf(err)}`, { cause: err });
      }
      if (message?.type === 'output' && (message.stream === 'stdout' || message.stream === 'stderr')) {
        const kept = (message.stream === 'stdout' ? run.stdout : run.stderr).push(Buffer.from(String(message.data)));
        if (kept) options.onOutput?.(message.stream, kept);
      } else if (isBlobHeader(message)) {
        await this.receiveOutput(run, channel, message);
      } else if (message?.type === 'result') {
        await channel.stream.close().catch(() => {});
        const result = this.withCheckedOutputs(run, message.result);
        if (!result || !(await this.signedByPeer(run, result, message.signature))) {
          throw new GridxError('REMOTE_ERROR', `peer ${this.peerId} sent a result its key did not sign, or whose files it did not send; discarded`);
        }
        return result;
      }
      // status and heartbeat messages only prove the peer is alive.
    }
  }

  /** The job's inputs the peer asked for: only those the spec names, each sent whole. */
  private async sendInputs(channel: JsonChannel, request: ExecutionRequest, digests: unknown, signal?: AbortSignal): Promise<void> {
    const named = new Set(inputDigests(request.spec.inputs));
    if (!Array.isArray(digests) || digests.some((d) => typeof d !== 'string' || !named.has(d))) {
      throw new GridxError('REMOTE_ERROR', `peer ${this.peerId} asked for files that are not this job's inputs`);
    }
    for (const digest of new Set(digests as string[])) await sendBlob(channel, this.files.blobs, digest, signal ? { signal } : {});
  }

  /** One output file from the peer, kept when it hashes to its digest and fits what a job may leave here. */
  private async receiveOutput(run: RemoteRun, channel: JsonChannel, header: BlobHeader): Promise<void> {
    const used = [...run.received.values()].reduce((a, b) => a + b, 0);
    try {
      if (run.received.size >= MAX_OUTPUT_FILES) throw new GridxError('BODY_TOO_LARGE', `more than ${MAX_OUTPUT_FILES} output files`);
      await receiveBlob(channel, this.files.blobs, header, { maxBytes: this.files.maxOutputBytes - used, signal: transferDeadline(header.size) });
    } catch (err) {
      channel.stream.abort(err as Error);
      throw new GridxError('REMOTE_ERROR', `peer ${this.peerId} sent output ${header.digest} that does not check (${messageOf(err)}); its result is discarded`, { cause: err });
    }
    run.received.set(header.digest, header.size);
  }

  /**
   * The result with its manifest's root computed here, from files the peer sent over this
   * stream; undefined when the manifest is malformed or names a file that did not come.
   */
  private withCheckedOutputs(run: RemoteRun, result: ExecutionResult): ExecutionResult | undefined {
    if (typeof result !== 'object' || result === null) return undefined;
    const outputs = result.outputs as Partial<OutputManifest> | undefined;
    if (outputs === undefined) return run.received.size === 0 ? result : undefined;
    if (!Array.isArray(outputs.files) || typeof outputs.exceeded !== 'boolean') return undefined;
    for (const f of outputs.files as Partial<OutputFile>[]) {
      if (typeof f?.path !== 'string' || typeof f.sha256 !== 'string' || run.received.get(f.sha256) !== f.size) return undefined;
    }
    const files = (outputs.files as OutputFile[]).map(({ path, size, sha256 }) => ({ path, size, sha256 }));
    if (reportedFilesProblem(files)) return undefined;
    return { ...result, outputs: manifestOf(files, outputs.exceeded) };
  }

  /** Whether the result is signed by the key the peer id names (the peer that ran it, not a relay). */
  private async signedByPeer(run: RemoteRun, result: ExecutionResult, signature: unknown): Promise<boolean> {
    try {
      const key = peerIdFromString(this.peerId).publicKey;
      if (!key || typeof signature !== 'string' || typeof result !== 'object' || result === null) return false;
      return await key.verify(signedBytes(run.jobId, run.executionId, result), Buffer.from(signature, 'base64'));
    } catch {
      return false;
    }
  }

  wait(executionId: string): Promise<ExecutionResult> {
    const run = this.runs.get(executionId);
    if (!run?.result) return Promise.reject(new GridxError('NOT_FOUND', `execution ${executionId} is not running`));
    return run.result.finally(() => this.runs.delete(executionId));
  }

  async cancel(executionId: string): Promise<void> {
    const run = this.runs.get(executionId);
    if (!run || run.cancelled) return;
    run.cancelled = true;
    if (run.result) await run.channel?.write({ type: 'cancel' }).catch(() => {});
  }

  logs(executionId: string): OutputSnapshot | undefined {
    const run = this.runs.get(executionId);
    if (!run) return undefined;
    return {
      stdout: run.stdout.text(),
      stderr: run.stderr.text(),
      stdoutTruncated: run.stdout.truncated,
      stderrTruncated: run.stderr.truncated,
    };
  }

  async reapOrphans(): Promise<number> {
    return 0;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.runs.keys()].map((id) => this.cancel(id)));
  }
}
