/**
 * Runner faults with real processes: a runner SIGKILLed mid-task (real Docker), and two
 * servers sharing one PostgreSQL queue with four runners and 500 tasks.
 */

import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { LOCAL_IMAGE } from '../../src/executor/docker/engine.js';
import { NoopExecutor } from '../../src/executor/noop/noop-executor.js';
import { silentLogger } from '../../src/logger.js';
import { GridxRunner } from '../../src/node/runner.js';
import { GridxClient } from '../../src/sdk/client.js';
import { RunnerClient } from '../../src/sdk/runner-client.js';
import { containersOf, docker, eventually } from '../helpers/docker.js';
import { tempDir } from '../helpers/node.js';
import { type NodeProcess, cliAccount, runCli, spawnNode, spawnRunner } from '../helpers/process.js';

const FAST_LEASES = { GRIDX_LEASE_TTL: '2s', GRIDX_RETRY_BACKOFF: '0' };

describe('gridx runner faults', () => {
  const processes: NodeProcess[] = [];
  const killedRunners: string[] = [];
  afterAll(async () => {
    for (const p of processes) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    // A SIGKILLed runner leaves its container to finish on its own; clear what is left.
    for (const id of killedRunners) for (const c of await containersOf(id)) await docker.getContainer(c.Id).remove({ force: true });
  });

  it('a runner SIGKILLed mid-task: the task completes on another runner after the lease expires', async () => {
    const dataDir = tempDir();
    const user = await cliAccount(['--data-dir', dataDir], { name: 'user', credit: '10' });
    const worker = await cliAccount(['--data-dir', dataDir], { name: 'worker', kind: 'runner' });
    const server = await spawnNode(dataDir, ['--no-mesh', '--slots', '0'], 'server', FAST_LEASES);
    processes.push(server);
    const first = await spawnRunner(server.url, tempDir('gridx-runner-'), ['--slots', '1', '--name', 'first', '--key', worker.key]);
    processes.push(first);

    // The client follows the task over the event stream while its runner dies under it.
    const following = runCli(['run', '--server', server.url, '--reward', '2', LOCAL_IMAGE, '--', 'sh', '-c', 'echo start; sleep 2; echo done'], {
      GRIDX_KEY: user.key,
    });
    const client = new GridxClient(server.url, { token: user.key });
    const running = await eventually(
      () => client.list({ status: 'running' }),
      (page) => page.jobs.length === 1,
      20_000,
    );
    const taskId = running.jobs[0]!.id;
    expect(running.jobs[0]!.executedBy).toBe(first.id);
    first.child.kill('SIGKILL');
    await first.exited;
    killedRunners.push(first.id);

    const second = await spawnRunner(server.url, tempDir('gridx-runner-'), ['--slots', '1', '--name', 'second', '--key', worker.key]);
    processes.push(second);
    const result = await following;
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('done');

    const job = await client.get(taskId);
    expect(job).toMatchObject({ status: 'completed', attempts: 2, executedBy: second.id, stdout: 'start\ndone\n' });
    expect(job.executions!.map((e) => [e.nodeId, e.status])).toEqual([
      [first.id, 'interrupted'],
      [second.id, 'completed'],
    ]);
    expect(job.executions![0]!.message).toContain(`the lease of ${first.id} expired`);
    const { runners } = await new RunnerClient(server.url).runners();
    expect(Object.fromEntries(runners.map((r) => [r.name, r.status]))).toEqual({ first: 'offline', second: 'online' });
    // Paid once, to the runners' account, for the execution that completed.
    const paid = await eventually(() => new GridxClient(server.url, { token: worker.key }).ledger(), (l) => l.entries.length > 0, 5000);
    expect(paid.entries).toEqual([expect.objectContaining({ kind: 'payout', amount: '2', task_id: taskId, execution_id: job.executions![1]!.id })]);
    expect((await client.account()).balance).toBe('8');

    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
  }, 90_000);

  it('two servers on one PostgreSQL, four runners, 500 tasks: each completed exactly once', async () => {
    const db = `${inject('pgUrl')}?schema=runners_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
    const user = await cliAccount(['--db', db], { name: 'user', credit: '1000' });
    const worker = await cliAccount(['--db', db], { name: 'worker', kind: 'runner' });
    const servers = [
      await spawnNode(tempDir(), ['--no-mesh', '--slots', '0', '--db', db], 'server', FAST_LEASES),
      await spawnNode(tempDir(), ['--no-mesh', '--slots', '0', '--db', db], 'server', FAST_LEASES),
    ];
    processes.push(...servers);
    // Runners in this process run the real runner code over HTTP with a no-op executor:
    // the property under test is the queue's, not Docker's.
    const executors: NoopExecutor[] = [];
    const runners = await Promise.all(
      [0, 1, 2, 3].map(async (i) => {
        const runner = new GridxRunner({
          config: loadConfig({ flags: { slots: 4, dataDir: tempDir('gridx-runner-') } }),
          serverUrl: servers[i % 2]!.url,
          name: `r${i}`,
          accountKey: worker.key,
          log: silentLogger,
          executor: () => {
            const executor = new NoopExecutor({ delayMs: 2, output: 'ok\n' });
            executors.push(executor);
            return executor;
          },
        });
        await runner.start();
        return runner;
      }),
    );
    try {
      const task = (i: number) => ({
        title: `t${i}`,
        config: { command: ['echo', String(i)] },
        environment: { config: { image: LOCAL_IMAGE } },
        reward: '1',
      });
      // All submitted to the first server: the second server's runners get them through the shared queue.
      const submitter = new GridxClient(servers[0]!.url, { token: user.key });
      const ids: string[] = [];
      for (let i = 0; i < 500; i += 50) {
        ids.push(...(await Promise.all(Array.from({ length: 50 }, (_, k) => submitter.submitTask(task(i + k))))).map((t) => t.id));
      }
      const reader = new GridxClient(servers[1]!.url, { token: user.key });
      await eventually(() => reader.list({ status: 'completed', limit: 500 }), (p) => p.jobs.length === 500, 60_000);

      const jobs = await Promise.all(ids.map((id) => reader.get(id)));
      for (const job of jobs) {
        expect(job.status).toBe('completed');
        expect(job.executions!.filter((e) => e.status === 'completed')).toHaveLength(1);
      }
      const started = executors.flatMap((e) => e.started.map((r) => r.jobId));
      expect(new Set(started).size).toBe(500);
      expect(started).toHaveLength(500); // no faults here, so no job ran twice
      // Work spread over both servers' runners.
      const byRunner = new Map<string, number>();
      for (const job of jobs) byRunner.set(job.executedBy!, (byRunner.get(job.executedBy!) ?? 0) + 1);
      expect(byRunner.size).toBe(4);
      // Each task paid exactly once, whichever server settled it.
      const earned = await eventually(() => new GridxClient(servers[1]!.url, { token: worker.key }).account(), (a) => a.balance === '500', 20_000);
      expect(earned.balance).toBe('500');
      expect((await reader.account()).balance).toBe('500');
    } finally {
      await Promise.all(runners.map((r) => r.stop()));
    }
  }, 120_000);
});
