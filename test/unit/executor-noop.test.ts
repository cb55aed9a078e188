/** The Executor contract against the no-op executor (script mode), and its default mode that tests and benchmarks use. */
import { describe, expect, it } from 'vitest';
import { NoopExecutor } from '../../src/executor/noop/noop-executor.js';
import { executorSuite, scriptRequest } from '../helpers/executor-suite.js';

executorSuite('no-op', async () => {
  const executor = new NoopExecutor({ script: true });
  return { executor, close: () => executor.stop() };
});

describe('NoopExecutor without a script', () => {
  it('runs every command for delayMs and writes output, whatever the command says', async () => {
    const executor = new NoopExecutor({ delayMs: 200, output: 'ran\n' });
    const request = scriptRequest('echo other; exit 3');
    const began = Date.now();
    await executor.start(request);
    expect(executor.logs(request.executionId)?.stdout).toBe('');
    expect(await executor.wait(request.executionId)).toMatchObject({ exitCode: 0, stdout: 'ran\n', timedOut: false });
    expect(Date.now() - began).toBeGreaterThanOrEqual(190);
    expect(executor.started.map((r) => r.executionId)).toEqual([request.executionId]);
  });

  it('still honours the spec timeout when delayMs is longer', async () => {
    const executor = new NoopExecutor({ delayMs: 60_000, output: 'ran\n' });
    const request = scriptRequest('echo ignored', 300);
    await executor.start(request);
    expect(await executor.wait(request.executionId)).toMatchObject({ exitCode: 137, timedOut: true, cancelled: false, stdout: '' });
  });

  it('in script mode, an unsupported statement fails like a missing command (127)', async () => {
    const executor = new NoopExecutor({ script: true });
    const request = scriptRequest('echo a; cat /etc/passwd; echo b');
    await executor.start(request);
    expect(await executor.wait(request.executionId)).toMatchObject({ exitCode: 127, stdout: 'a\n', stderr: 'noop: unsupported: cat /etc/passwd\n' });
  });
});
