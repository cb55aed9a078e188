/**
 * Hostile user: a runner that holds a job past its time limit by heartbeating forever. The
 * server keeps the job's time itself: at start + timeout + grace the lease ends, the runner
 * hears it has lost the job, and the job is settled as timed out.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { newSigningKeys } from '../../src/domain/result-digest.js';
import { NoopExecutor } from '../../src/executor/noop/noop-executor.js';
import { RunnerClient } from '../../src/sdk/runner-client.js';
import { eventually } from '../helpers/docker.js';
import { errorOf, okResult as ok } from '../helpers/fixtures.js';
import { type TestNode, fundedAccount, startTestNode } from '../helpers/node.js';

const TASK = {
  title: 't',
  type: 'docker' as const,
  config: { command: ['echo', 'hi'] },
  environment: { type: 'docker' as const, config: { image: 'gridx/busybox:local' } },
};

const nodes: TestNode[] = [];
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()));
});

describe('the server keeps time', () => {
  it('the server times out a job its runner holds past timeout + grace: heartbeats cannot extend it', async () => {
    // Grace is one lease TTL: 1 s here.
    const s = await startTestNode({ flags: { slots: 0, auth: 'required' }, env: { GRIDX_LEASE_TTL: '1s', GRIDX_RETRY_BACKOFF: '0' }, executor: new NoopExecutor() });
    nodes.push(s);
    const owner = await fundedAccount(s, '10', { name: 'owner' });
    const worker = await fundedAccount(s, '0', { kind: 'runner', name: 'worker' });
    const keys = newSigningKeys();
    const reg = await new RunnerClient(s.url, undefined, worker.key).register({ name: 'stalling', slots: 1, public_key: keys.publicKey });
    const runner = new RunnerClient(s.url, reg.id, reg.token, keys.privateKeyPem);
    const task = await owner.client.submitTask({ ...TASK, reward: '1', config: { command: ['sleep', '600'], resources: { timeout: 1 } } });
    const [lease] = await runner.claim(1, 0);
    const token = lease!.lease_token;
    await runner.started(token);
    const started = Date.now();

    // The runner keeps its lease alive and never reports.
    let answer = await runner.heartbeat([token]);
    while (answer.lost.length === 0 && Date.now() - started < 10_000) {
      await new Promise((r) => setTimeout(r, 200));
      answer = await runner.heartbeat([token]);
    }
    const heldMs = Date.now() - started;
    expect(answer).toMatchObject({ renewed: [], lost: [token] });
    expect(heldMs).toBeGreaterThanOrEqual(2000 - 50); // 1 s timeout + 1 s grace
    expect(heldMs).toBeLessThan(4500); // the deadline sweep runs every second at most
    expect(await errorOf(runner.result(token, task.id, ok()))).toMatchObject({ code: 'CONFLICT', message: expect.stringContaining('no longer held') });

    const job = await owner.client.get(task.id);
    expect(job).toMatchObject({ status: 'timed_out', reason: 'timeout', attempts: 1 });
    expect(job.message).toContain('time limit of 1s');
    expect(job.executions?.map((e) => e.status)).toEqual(['timed_out']);
    // Settled as any timeout: the job ran its time, the worker is paid.
    await eventually(() => worker.client.account(), (a) => a.balance === '1', 5000);
    expect((await owner.client.account()).balance).toBe('9');
  });

});
