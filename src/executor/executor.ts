/**
 * The Executor contract: start / wait / cancel / logs, keyed by execution id. The Docker
 * executor is the real one; the no-op executor serves tests and benchmarks of everything
 * around it. Nodes, servers and runners all run work through this contract.
 */

import type { OutputManifest } from '../domain/data.js';
import type { ExecutionResult, JobSpec } from '../domain/job.js';
import { GridxError } from '../errors.js';

export interface ExecutionRequest {
  /** Unique per attempt; also the lease token of the attempt. */
  executionId: string;
  jobId: string;
  spec: JobSpec;
}

export type OutputStream = 'stdout' | 'stderr';

export interface StartOptions {
  /** Called with each piece of output as the job writes it, after the cap is applied. */
  onOutput?: (stream: OutputStream, data: string) => void;
  /**
   * Ends the execution from outside, the same way in every executor. Aborted before
   * start() resolves (already aborted, or during a pull, create or a peer's answer): start
   * rejects with UNAVAILABLE, nothing is left running and the id is forgotten, so wait()
   * rejects with NOT_FOUND. Aborted after: the execution is cancelled, as by cancel().
   */
  signal?: AbortSignal;
}

/** The error start() rejects with when its signal aborts before the execution runs. */
export function startAborted(executionId: string): GridxError {
  return new GridxError('UNAVAILABLE', `execution ${executionId} was not started: its start was aborted (the node is stopping or the caller gave up); try again`);
}

/**
 * An execution's files, for executors that run containers on this host: its inputs placed
 * (URLs fetched by the node, never the container) and a size-capped /outputs, collected
 * into the blob store when it ends, whatever its status.
 */
export interface ExecutionFiles {
  /** Bind mounts ("host:container:mode") for the inputs and /outputs; rejects INPUT_UNAVAILABLE naming the input. */
  prepare(request: ExecutionRequest, signal?: AbortSignal): Promise<string[]>;
  /** What the execution left under /outputs, stored as blobs. */
  collect(executionId: string): Promise<OutputManifest>;
  /** Frees what prepare made; idempotent. */
  release(executionId: string): Promise<void>;
}

export interface OutputSnapshot {
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
}

export interface Executor {
  /**
   * Creates and starts the execution; resolves once it runs. Idempotent: starting an id
   * that is already known is a no-op. Rejects with IMAGE_NOT_FOUND when the image is
   * missing and cannot be pulled, INPUT_UNAVAILABLE when an input cannot be placed, LIMIT_EXCEEDED when the node's policy refuses it at
   * creation (its registry, a volume's real path), DOCKER_UNAVAILABLE when the engine fails,
   * UNAVAILABLE when `options.signal` aborts first (see StartOptions.signal).
   */
  start(request: ExecutionRequest, options?: StartOptions): Promise<void>;
  /** Resolves when the execution has ended and its resources are released or scheduled for release. */
  wait(executionId: string): Promise<ExecutionResult>;
  /** Stops the execution; its result then says `cancelled`. Unknown ids are a no-op. */
  cancel(executionId: string): Promise<void>;
  /** Output captured so far, while the execution is known to this executor. */
  logs(executionId: string): OutputSnapshot | undefined;
  /** Removes what earlier runs of this node left behind; returns how many were removed. */
  reapOrphans(): Promise<number>;
  /** Images present where this executor runs (name:tag), for offers; absent when not known. */
  cachedImages?(): Promise<string[]>;
  /** Cancels everything still running and releases resources. */
  stop(): Promise<void>;
}
