/**
 * Runner faults with real processes: a runner SIGKILLed mid-task (real Docker); its task
 * completes on another runner, and the killed runner, restarted, removes the container
 * its last life left. (Servers sharing one PostgreSQL: fleet.test.ts.)
 */

import { afterAll, describe, expect, it } from 'vitest';
import { LOCAL_IMAGE } from '../../src/executor/docker/engine.js';
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
    const firstDir = tempDir('gridx-runner-');
    const first = await spawnRunner(server.url, firstDir, ['--slots', '1', '--name', 'first', '--key', worker.key]);
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

    // Restarted on its data dir (same registration), it removes what its last life left.
    expect(await containersOf(first.id)).toHaveLength(1);
    const again = await spawnRunner(server.url, firstDir, ['--slots', '1', '--name', 'first', '--key', worker.key]);
    processes.push(again);
    expect(again.id).toBe(first.id);
    expect(await containersOf(first.id)).toEqual([]);
    again.child.kill('SIGTERM');
    expect(await again.exited).toBe(0);

    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
  }, 90_000);
});
