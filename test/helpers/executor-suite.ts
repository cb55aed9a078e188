import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobSpec } from '../../src/domain/job.js';
import type { ExecutionRequest, Executor, OutputStream } from '../../src/executor/executor.js';
import { eventually } from './docker.js';
import { SPEC, errorOf } from './fixtures.js';

/** One implementation of the Executor contract, ready to run the suite. */
export interface ExecutorHarness {
  executor: Executor;
  /**
   * How many things this execution still holds where it ran (its container; a peer's
   * unfinished jobs), when the implementation can tell; checked after a start was aborted.
   */
  leftovers?: (executionId: string) => Promise<number>;
  close(): Promise<void>;
}

/** A request that runs `script` under `sh -c`, as busybox in a container runs it (and the no-op executor reads it). */
export function scriptRequest(script: string, timeoutMs = 30_000): ExecutionRequest {
  const spec: JobSpec = { ...SPEC, command: ['sh', '-c', script], timeoutMs };
  return { executionId: `x-${randomUUID()}`, jobId: `j-${randomUUID()}`, spec };
}

/** The Executor contract; run once per implementation, like the store and ledger suites. */
export function executorSuite(name: string, open: () => Promise<ExecutorHarness>): void {
  describe(`Executor contract: ${name}`, { timeout: 60_000 }, () => {
    let harness: ExecutorHarness;
    let executor: Executor;
    beforeAll(async () => {
      harness = await open();
      executor = harness.executor;
    }, 120_000);
    afterAll(async () => {
      await harness?.close();
    });

    it('wait returns the exit code and both outputs, then forgets the execution', async () => {
      const request = scriptRequest('echo out; echo err >&2; exit 3');
      const seen: Array<[OutputStream, string]> = [];
      await executor.start(request, { onOutput: (stream, data) => seen.push([stream, data]) });
      const result = await executor.wait(request.executionId);
      expect(result).toMatchObject({ exitCode: 3, stdout: 'out\n', stderr: 'err\n', timedOut: false, cancelled: false, oomKilled: false });
      expect(seen.filter(([s]) => s === 'stdout').map(([, d]) => d).join('')).toBe('out\n');
      expect(seen.filter(([s]) => s === 'stderr').map(([, d]) => d).join('')).toBe('err\n');
      expect(executor.logs(request.executionId)).toBeUndefined();
      expect((await errorOf(executor.wait(request.executionId))).code).toBe('NOT_FOUND');
    });

    it('start is idempotent per execution id: a second start, even with another spec, runs nothing', async () => {
      const first = scriptRequest('sleep 0.5; echo first');
      const again = { ...first, spec: { ...first.spec, command: ['sh', '-c', 'echo second; exit 9'] } };
      await Promise.all([executor.start(first), executor.start(again)]);
      await executor.start(again);
      const result = await executor.wait(first.executionId);
      expect(result).toMatchObject({ exitCode: 0, stdout: 'first\n' });
    });

    it('kills an execution at its timeout and says timedOut, not cancelled', async () => {
      const request = scriptRequest('echo started; sleep 30; echo never', 1500);
      const began = Date.now();
      await executor.start(request);
      const result = await executor.wait(request.executionId);
      expect(result).toMatchObject({ timedOut: true, cancelled: false, stdout: 'started\n' });
      expect(result.exitCode).not.toBe(0);
      expect(Date.now() - began).toBeLessThan(20_000);
    });

    it('cancel ends a running execution with cancelled; a second cancel is a no-op', async () => {
      const request = scriptRequest('echo started; sleep 30; echo never');
      await executor.start(request);
      await eventually(async () => executor.logs(request.executionId)?.stdout, (s) => s === 'started\n', 15_000);
      const began = Date.now();
      await executor.cancel(request.executionId);
      await executor.cancel(request.executionId);
      const result = await executor.wait(request.executionId);
      expect(result).toMatchObject({ cancelled: true, timedOut: false, stdout: 'started\n' });
      expect(result.exitCode).not.toBe(0);
      expect(Date.now() - began).toBeLessThan(15_000);
    });

    it('logs show output while the execution runs, before wait resolves', async () => {
      const request = scriptRequest('echo one; echo two >&2; sleep 30');
      await executor.start(request);
      let ended = false;
      const waiting = executor.wait(request.executionId).then((r) => ((ended = true), r));
      const logs = await eventually(async () => executor.logs(request.executionId), (l) => l?.stdout === 'one\n' && l.stderr === 'two\n', 15_000);
      expect(logs).toMatchObject({ stdoutTruncated: false, stderrTruncated: false });
      expect(ended).toBe(false);
      await executor.cancel(request.executionId);
      expect((await waiting).cancelled).toBe(true);
    });

    it('a signal aborted before start: start fails with UNAVAILABLE and nothing runs', async () => {
      const request = scriptRequest('echo ran');
      expect((await errorOf(executor.start(request, { signal: AbortSignal.abort() }))).code).toBe('UNAVAILABLE');
      expect(executor.logs(request.executionId)).toBeUndefined();
      expect((await errorOf(executor.wait(request.executionId))).code).toBe('NOT_FOUND');
      expect((await harness.leftovers?.(request.executionId)) ?? 0).toBe(0);
    });

    it('a signal aborted while start runs: start fails with UNAVAILABLE, or the execution ends cancelled', async () => {
      const request = scriptRequest('sleep 30; echo never');
      const controller = new AbortController();
      const starting = executor.start(request, { signal: controller.signal });
      controller.abort();
      const outcome = await starting.then(
        () => executor.wait(request.executionId),
        (err: unknown) => err,
      );
      if ('code' in (outcome as object)) {
        expect(outcome).toMatchObject({ code: 'UNAVAILABLE' });
        expect((await errorOf(executor.wait(request.executionId))).code).toBe('NOT_FOUND');
      } else {
        expect(outcome).toMatchObject({ cancelled: true, stdout: '' });
      }
      if (harness.leftovers) await eventually(() => harness.leftovers!(request.executionId), (n) => n === 0, 15_000);
    });

    it('a signal aborted after start cancels the execution', async () => {
      const request = scriptRequest('echo started; sleep 30; echo never');
      const controller = new AbortController();
      await executor.start(request, { signal: controller.signal });
      await eventually(async () => executor.logs(request.executionId)?.stdout, (s) => s === 'started\n', 15_000);
      controller.abort();
      const result = await executor.wait(request.executionId);
      expect(result).toMatchObject({ cancelled: true, timedOut: false, stdout: 'started\n' });
    });

    it('an unknown execution id: wait rejects with NOT_FOUND, logs say nothing, cancel is a no-op', async () => {
      expect((await errorOf(executor.wait('no-such-execution'))).code).toBe('NOT_FOUND');
      expect(executor.logs('no-such-execution')).toBeUndefined();
      await expect(executor.cancel('no-such-execution')).resolves.toBeUndefined();
    });
  });
}
