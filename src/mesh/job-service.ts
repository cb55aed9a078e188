/**
 * The executing side of /gridx/job/1.0.0: takes a job another node forwards, checks it
 * against this node's own policy and capacity, runs it as a pinned local job, and streams
 * status, output and the result back. If the origin goes away first, the job is cancelled
 * here: the origin places it again, so it must not also finish here.
 */

import type { JobEventMap, TypedEmitter } from '../domain/events.js';
import { type ExecutionResult, type Job, type JobSpec, isTerminal } from '../domain/job.js';
import { signedBytes } from '../domain/result-digest.js';
import { inputDigests } from '../domain/data.js';
import { type SpecPolicy, normalizeSpec } from '../domain/spec.js';
import { messageOf } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Scheduler } from '../scheduler/scheduler.js';
import type { JobStore } from '../store/store.js';
import type { BlobStore } from '../storage/blob-store.js';
import { type BlobHeader, Grants, SILENCE_MS, isBlobHeader, receiveBlob, sendBlob, transferDeadline } from './file-transfer.js';
import { type JsonChannel, ProtocolError } from './wire.js';
import type { MeshAccept } from '../config/schema.js';
import type { Intake } from '../scheduler/intake.js';
import type { Account } from '../store/ledger-store.js';

/** Whether this node's policy admits jobs forwarded by `peerId`. */
export function admitsPeer(accept: MeshAccept, peerId: string): boolean {
  return accept === 'any' || (accept !== 'none' && accept.includes(peerId));
}

export type JobMessage =
  | { type: 'run'; jobId: string; executionId: string; spec: JobSpec }
  | { type: 'need'; digests: string[] }
  | { type: 'more' }
  | BlobHeader
  | { type: 'accepted'; jobId: string }
  | { type: 'refused'; reason: string }
  | { type: 'status'; status: Job['status'] }
  | { type: 'output'; stream: 'stdout' | 'stderr'; data: string }
  | { type: 'heartbeat' }
  | { type: 'result'; result: ExecutionResult; signature: string }
  | { type: 'cancel' };

export interface JobServiceDeps {
  scheduler: Scheduler;
  /** Which peers may forward jobs here (mesh.accept). */
  accept: MeshAccept;
  /**
   * An open node's "any" means any peer on this machine: it may have dialled out to a
   * remote bootstrap peer, and that peer can open streams on the same connection.
   */
  loopbackOnly: boolean;
  /** The account a forwarding peer's jobs belong to (node-<peer id>), made on first use. */
  accountOf: (peerId: string) => Promise<Account>;
  /** The HTTP API's own front door: the same queue limits apply. */
  intake: Pick<Intake, 'submit'>;
  store: JobStore;
  events: TypedEmitter<JobEventMap>;
  policy: () => SpecPolicy;
  log: Logger;
  heartbeatMs?: number;
  /** Signs with this node's libp2p key: the origin checks a result against the peer id it ran on. */
  sign: (bytes: Uint8Array) => Promise<Uint8Array>;
  /** Where a forwarded job's inputs are received and its outputs sent from. */
  files: PeerFiles;
}

export interface PeerFiles {
  blobs: Pick<BlobStore, 'stat' | 'put' | 'open' | 'grant' | 'mayUse'>;
  /** storage.max_blob: the most one input may hold. */
  maxBlobBytes: number;
}

/**
 * The canonical spec back into the request shape, so one validator checks both doors.
 * The spec comes off the network: any field may be missing or of the wrong type.
 */
export function specToRequest(raw: unknown): Record<string, unknown> {
  const spec = (raw ?? {}) as Partial<JobSpec>;
  const r = spec.resources as Partial<JobSpec['resources']> | undefined;
  return {
    image: spec.image,
    command: spec.command,
    env: spec.env,
    ...(spec.workdir === undefined ? {} : { workdir: spec.workdir }),
    ...(r && typeof r === 'object' ? { resources: { cpus: r.cpus, memory: r.memoryBytes, gpus: r.gpus } } : {}),
    ...(typeof spec.timeoutMs === 'number' ? { timeout: `${spec.timeoutMs}ms` } : {}),
    network: spec.network,
    ...(spec.inputs === undefined ? {} : { inputs: spec.inputs }),
    volumes: Array.isArray(spec.volumes)
      ? spec.volumes.map((v) => `${v?.hostPath}:${v?.containerPath}:${v?.readOnly === false ? 'rw' : 'ro'}`)
      : spec.volumes,
  };
}

export function resultOf(job: Job): ExecutionResult {
  return {
    ...(job.exitCode === undefined ? {} : { exitCode: job.exitCode }),
    oomKilled: job.reason === 'oom',
    timedOut: job.status === 'timed_out',
    cancelled: job.status === 'cancelled',
    stdout: job.stdout,
    stderr: job.stderr,
    stdoutTruncated: job.stdoutTruncated,
    stderrTruncated: job.stderrTruncated,
    startedAt: job.startedAt ?? job.createdAt,
    finishedAt: job.finishedAt ?? new Date().toISOString(),
    durationMs: job.durationMs ?? 0,
    ...(job.outputs ? { outputs: job.outputs } : {}),
  };
}

/**
 * The digest inputs of a forwarded job, received from the origin before the job is queued:
 * each one the origin's account may not use yet comes over the stream, kept only when it
 * hashes to its digest. A blob this node holds for someone else is still sent: a digest
 * alone proves nothing, and must not open another user's file to the origin.
 */
async function receiveInputs(channel: JsonChannel, spec: JobSpec, accountId: string, files: PeerFiles): Promise<void> {
  const wanted = inputDigests(spec.inputs);
  if (wanted.length === 0) return;
  const missing: string[] = [];
  for (const digest of wanted) if (!(await files.blobs.mayUse(digest, accountId))) missing.push(digest);
  await channel.write({ type: 'need', digests: missing } satisfies JobMessage);
  for (let left = new Set(missing); left.size > 0; ) {
    const header = await channel.read<unknown>({ signal: AbortSignal.timeout(SILENCE_MS) });
    if (!isBlobHeader(header) || !left.has(header.digest)) throw new ProtocolError('expected one of the inputs asked for');
    await receiveBlob(channel, files.blobs, header, { maxBytes: files.maxBlobBytes, signal: transferDeadline(header.size) });
    await files.blobs.grant(header.digest, accountId);
    left.delete(header.digest);
  }
}

/** Sends the files a job left under /outputs before its result, which names them; the origin's grants come through `grants`. */
async function sendOutputs(channel: JsonChannel, job: Job, files: PeerFiles, grants: Grants): Promise<void> {
  for (const file of job.outputs?.files ?? []) await sendBlob(channel, files.blobs, file.sha256, { grant: grants.next });
}

export async function serveForwardedJob(
  channel: JsonChannel,
  from: string,
  deps: JobServiceDeps,
  via: { loopback: boolean } = { loopback: false },
): Promise<void> {
  const { scheduler, events, log } = deps;
  const refuse = async (reason: string) => {
    log.info(`refused a job from ${from}: ${reason}`);
    await channel.write({ type: 'refused', reason } satisfies JobMessage);
    await channel.stream.close();
  };
  const request = await channel.read<JobMessage>({ signal: AbortSignal.timeout(10_000) });
  if (request?.type !== 'run' || typeof request.spec !== 'object' || request.spec === null) {
    throw new Error(`expected a "run" message, got ${JSON.stringify((request as { type?: unknown })?.type)}`);
  }
  // The mesh is no side door around api.auth: only peers the operator admits get in.
  if (!admitsPeer(deps.accept, from) || (deps.accept === 'any' && deps.loopbackOnly && !via.loopback)) {
    return refuse('this node does not run jobs forwarded by this peer (mesh.accept)');
  }
  let spec: JobSpec;
  try {
    spec = normalizeSpec(specToRequest(request.spec), deps.policy());
  } catch (err) {
    return refuse(messageOf(err));
  }
  const pending = [...(await deps.store.pendingByOwner()).values()].reduce((a, n) => a + n, 0);
  if (scheduler.slots.free - pending <= 0) return refuse('busy: no free slot');

  let job: Job;
  try {
    // The job is the forwarding node's: its account alone sees it, and its limits apply.
    const account = await deps.accountOf(from);
    await receiveInputs(channel, spec, account.id, deps.files);
    job = await deps.intake.submit(account, spec, { pinned: true, origin: from, title: `forwarded by ${from}` });
  } catch (err) {
    return refuse(messageOf(err));
  }
  log.info(`running job ${job.id} for ${from} (its job ${String(request.jobId)})`);

  // Writes are chained so messages leave in the order they happened.
  let chain = Promise.resolve();
  let closed = false;
  const send = (message: JobMessage) => {
    chain = chain.then(() => (closed ? undefined : channel.write(message))).catch((err: unknown) => {
      closed = true;
      log.debug(`job ${job.id}: stream to ${from} failed: ${messageOf(err)}`);
    });
    return chain;
  };

  let resolveEnd!: (job: Job) => void;
  const ended = new Promise<Job>((r) => (resolveEnd = r));
  const offs = [
    events.on('job:output', (e) => {
      if (e.jobId === job.id) void send({ type: 'output', stream: e.stream, data: e.data });
    }),
    events.on('job:status', ({ job: j }) => {
      if (j.id !== job.id) return;
      if (isTerminal(j.status)) resolveEnd(j);
      else void send({ type: 'status', status: j.status });
    }),
  ];
  const heartbeat = setInterval(() => void send({ type: 'heartbeat' }), deps.heartbeatMs ?? 5_000);
  try {
    await send({ type: 'accepted', jobId: job.id });
    // The job may have ended before we subscribed.
    void deps.store.get(job.id).then((j) => j && isTerminal(j.status) && resolveEnd(j));
    // The one reader of the origin's side: a cancel, grants for the outputs sent at the end, or the end of the stream.
    const grants = new Grants();
    const reading = (async () => {
      for (;;) {
        const message = await channel.read<JobMessage>();
        if (message?.type === 'cancel') await scheduler.cancel(job.id).catch(() => {});
        if (message?.type === 'more') grants.add();
      }
    })();
    const outcome = await Promise.race([ended.then((j) => ({ job: j })), reading.then(() => ({}), (err: unknown) => ({ err }))]);
    if ('job' in outcome && outcome.job) {
      const result = resultOf(outcome.job);
      const signature = Buffer.from(await deps.sign(signedBytes(request.jobId, request.executionId, result))).toString('base64');
      // Nothing else may write between a file's frames: no more heartbeats or output.
      clearInterval(heartbeat);
      offs.forEach((off) => off());
      await chain;
      await sendOutputs(channel, outcome.job, deps.files, grants);
      await send({ type: 'result', result, signature });
      await chain;
      await channel.stream.close().catch(() => {});
    } else {
      closed = true;
      log.warn(`origin ${from} went away during job ${job.id}; cancelling it here`);
      await scheduler.cancel(job.id).catch(() => {});
    }
  } finally {
    clearInterval(heartbeat);
    offs.forEach((off) => off());
  }
}
