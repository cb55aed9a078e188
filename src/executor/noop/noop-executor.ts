/**
 * An executor that starts no process. It serves tests and benchmarks of the scheduler,
 * store and API without Docker's cost, and keeps the Executor contract as the Docker
 * executor does: idempotent start, exit codes, the spec's timeout, cancel, logs, signal.
 *
 * By default every execution "runs" for `delayMs`, then writes `output` to stdout and
 * exits 0. With `script: true` the spec's command is read as a small script instead, so
 * one spec means the same thing here as in a container: `["sh", "-c", "echo hi; sleep 0.5;
 * echo oops >&2; exit 3"]` (or the same words as plain argv). Statements are split on `;`
 * and newlines: `echo WORDS` (`>&2` sends it to stderr), `sleep SECONDS`, `exit CODE`,
 * `true`. Anything else writes "noop: unsupported: ..." to stderr and exits 127.
 * Past the spec's timeout an execution ends with exit 137 and `timedOut`, as a killed
 * container does; a cancelled one ends with 137 and `cancelled`.
 */

import type { ExecutionResult, JobSpec } from '../../domain/job.js';
import { GridxError } from '../../errors.js';
import { type ExecutionRequest, type Executor, type OutputSnapshot, type OutputStream, type StartOptions, startAborted } from '../executor.js';

export interface NoopExecutorOptions {
  /** How long each execution runs, without `script`. */
  delayMs?: number;
  /** What each execution writes to stdout as it ends, without `script`. */
  output?: string;
  /** Read the spec's command as a script (see above) instead of `delayMs` and `output`. */
  script?: boolean;
}

type Step = { kind: 'sleep'; ms: number } | { kind: 'write'; stream: OutputStream; data: string } | { kind: 'exit'; code: number };

/** The exit code of a process ended by SIGKILL, which is how Docker ends a timed-out or cancelled job. */
const KILLED = 137;

interface RunState {
  startedAt: Date;
  stdout: string;
  stderr: string;
  cancelled: boolean;
  timedOut: boolean;
  ended: boolean;
  /** Aborted by cancel() or the timeout: ends the current sleep and the script. */
  halt: AbortController;
}

interface NoopRun extends RunState {
  result: Promise<ExecutionResult>;
}

export class NoopExecutor implements Executor {
  private readonly runs = new Map<string, NoopRun>();
  /** Every request started, in order, for assertions. */
  readonly started: ExecutionRequest[] = [];

  constructor(private readonly options: NoopExecutorOptions = {}) {}

  async start(request: ExecutionRequest, options: StartOptions = {}): Promise<void> {
    const { executionId } = request;
    if (this.runs.has(executionId)) return;
    const { signal } = options;
    // Nothing here waits, so a signal can only abort before the start or after it.
    if (signal?.aborted) throw startAborted(executionId);
    this.started.push(request);
    const state: RunState = { startedAt: new Date(), stdout: '', stderr: '', cancelled: false, timedOut: false, ended: false, halt: new AbortController() };
    const timer = setTimeout(() => {
      state.timedOut = true;
      state.halt.abort();
    }, request.spec.timeoutMs);
    const onAbort = () => void this.cancel(executionId);
    signal?.addEventListener('abort', onAbort, { once: true });
    const result = this.execute(state, this.steps(request.spec), options).then((exitCode) => {
      state.ended = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      return this.resultOf(state, exitCode);
    });
    this.runs.set(executionId, Object.assign(state, { result }));
  }

  private steps(spec: JobSpec): Step[] {
    if (!this.options.script) {
      const output = this.options.output ? [{ kind: 'write', stream: 'stdout', data: this.options.output } as const] : [];
      return [{ kind: 'sleep', ms: this.options.delayMs ?? 0 }, ...output];
    }
    const [program, flag, script] = spec.command;
    const text = program === 'sh' && flag === '-c' && spec.command.length === 3 ? script! : spec.command.join(' ');
    return text
      .split(/[;\n]/)
      .map((s) => s.trim())
      .filter(Boolean)
      .flatMap(parseStatement);
  }

  private async execute(run: RunState, steps: Step[], options: StartOptions): Promise<number> {
    for (const step of steps) {
      if (run.halt.signal.aborted) return KILLED;
      if (step.kind === 'exit') return step.code;
      if (step.kind === 'sleep') {
        await sleep(step.ms, run.halt.signal);
      } else {
        run[step.stream] += step.data;
        options.onOutput?.(step.stream, step.data);
      }
    }
    return run.halt.signal.aborted ? KILLED : 0;
  }

  private resultOf(run: RunState, exitCode: number): ExecutionResult {
    const finishedAt = new Date();
    return {
      exitCode,
      oomKilled: false,
      timedOut: run.timedOut,
      cancelled: run.cancelled && !run.timedOut,
      stdout: run.stdout,
      stderr: run.stderr,
      stdoutTruncated: false,
      stderrTruncated: false,
      startedAt: run.startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      durationMs: finishedAt.getTime() - run.startedAt.getTime(),
    };
  }

  wait(executionId: string): Promise<ExecutionResult> {
    const run = this.runs.get(executionId);
    if (!run) return Promise.reject(new GridxError('NOT_FOUND', `execution ${executionId} is not running`));
    return run.result.finally(() => {
      if (this.runs.get(executionId) === run) this.runs.delete(executionId);
    });
  }

  async cancel(executionId: string): Promise<void> {
    const run = this.runs.get(executionId);
    if (!run || run.cancelled || run.ended) return;
    run.cancelled = true;
    run.halt.abort();
  }

  logs(executionId: string): OutputSnapshot | undefined {
    const run = this.runs.get(executionId);
    if (!run) return undefined;
    return { stdout: run.stdout, stderr: run.stderr, stdoutTruncated: false, stderrTruncated: false };
  }

  async reapOrphans(): Promise<number> {
    return 0;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.runs.keys()].map((id) => this.cancel(id)));
  }
}

function parseStatement(statement: string): Step[] {
  const [word, ...args] = statement.split(/\s+/);
  const rest = args.join(' ');
  if (word === 'true') return [];
  if (word === 'echo') {
    const toStderr = /\s*>&2$/.test(rest);
    const words = rest.replace(/\s*>&2$/, '').replace(/^(['"])(.*)\1$/, '$2');
    return [{ kind: 'write', stream: toStderr ? 'stderr' : 'stdout', data: `${words}\n` }];
  }
  const n = Number(rest);
  if (word === 'sleep' && args.length === 1 && Number.isFinite(n) && n >= 0) return [{ kind: 'sleep', ms: n * 1000 }];
  if (word === 'exit' && args.length === 1 && Number.isInteger(n) && n >= 0 && n <= 255) return [{ kind: 'exit', code: n }];
  return [
    { kind: 'write', stream: 'stderr', data: `noop: unsupported: ${statement}\n` },
    { kind: 'exit', code: 127 },
  ];
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
