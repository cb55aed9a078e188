/**
 * An executor that runs nothing: every execution "exits 0" after `delayMs`. It serves
 * tests and benchmarks of the scheduler, store and API without Docker's cost.
 */

import type { ExecutionResult } from '../../domain/job.js';
import { GridxError } from '../../errors.js';
import type { ExecutionRequest, Executor, OutputSnapshot, StartOptions } from '../executor.js';

interface NoopRun {
  cancelled: boolean;
  startedAt: Date;
  timer?: NodeJS.Timeout;
  resolve: (result: ExecutionResult) => void;
  result: Promise<ExecutionResult>;
}

export class NoopExecutor implements Executor {
  private readonly runs = new Map<string, NoopRun>();
  /** Every request started, in order, for assertions. */
  readonly started: ExecutionRequest[] = [];

  constructor(private readonly options: { delayMs?: number; output?: string } = {}) {}

  async start(request: ExecutionRequest, options: StartOptions = {}): Promise<void> {
    if (this.runs.has(request.executionId)) return;
    this.started.push(request);
    let resolve!: (result: ExecutionResult) => void;
    const result = new Promise<ExecutionResult>((r) => (resolve = r));
    const run: NoopRun = { cancelled: false, startedAt: new Date(), resolve, result };
    this.runs.set(request.executionId, run);
    run.timer = setTimeout(() => {
      if (this.options.output) options.onOutput?.('stdout', this.options.output);
      this.settle(run, 0);
    }, this.options.delayMs ?? 0);
  }

  private settle(run: NoopRun, exitCode: number): void {
    clearTimeout(run.timer);
    const finishedAt = new Date();
    run.resolve({
      exitCode,
      oomKilled: false,
      timedOut: false,
      cancelled: run.cancelled,
      stdout: run.cancelled ? '' : (this.options.output ?? ''),
      stderr: '',
      stdoutTruncated: false,
      stderrTruncated: false,
      startedAt: run.startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      durationMs: finishedAt.getTime() - run.startedAt.getTime(),
    });
  }

  wait(executionId: string): Promise<ExecutionResult> {
    const run = this.runs.get(executionId);
    if (!run) return Promise.reject(new GridxError('NOT_FOUND', `execution ${executionId} is not running`));
    return run.result.finally(() => this.runs.delete(executionId));
  }

  async cancel(executionId: string): Promise<void> {
    const run = this.runs.get(executionId);
    if (!run || run.cancelled) return;
    run.cancelled = true;
    this.settle(run, 137);
  }

  logs(executionId: string): OutputSnapshot | undefined {
    if (!this.runs.has(executionId)) return undefined;
    return { stdout: '', stderr: '', stdoutTruncated: false, stderrTruncated: false };
  }

  async reapOrphans(): Promise<number> {
    return 0;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.runs.keys()].map((id) => this.cancel(id)));
  }
}
