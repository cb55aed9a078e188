/** Parity-side faults with real processes: the server killed with a full queue. */
import { describe, expect, it } from 'vitest';
import { LOCAL_IMAGE } from '../../src/executor/docker/engine.js';
import { GridxClient } from '../../src/sdk/client.js';
import { eventually } from '../helpers/docker.js';
import { tempDir } from '../helpers/node.js';
import { cliAccount, spawnNode } from '../helpers/process.js';

describe('gridx server faults', () => {
  it('SIGKILL with 100 tasks queued and some running: after restart every task ends, none lost, none completed twice', async () => {
    const dataDir = tempDir();
    const payer = await cliAccount(['--data-dir', dataDir], { name: 'payer', credit: '1000' });
    const first = await spawnNode(dataDir, ['--slots', '2', '--no-mesh'], 'server');
    const submit = (i: number) =>
      fetch(`${first.url}/api/tasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${payer.key}` },
        body: JSON.stringify({
          title: `task ${i}`,
          type: 'docker',
          config: { command: ['sh', '-c', `sleep 0.2; echo ${i}`] },
          environment: { type: 'docker', config: { image: LOCAL_IMAGE } },
          reward: 1,
        }),
      }).then((r) => r.json() as Promise<{ id: string }>);
    const ids: string[] = [];
    for (let i = 0; i < 100; i++) ids.push((await submit(i)).id);
    const client = new GridxClient(first.url, { token: payer.key });
    await eventually(() => client.list({ status: 'completed' }), (p) => p.jobs.length >= 3, 20_000);
    await eventually(() => client.status(), (s) => s.queue.running > 0, 10_000);
    first.child.kill('SIGKILL');
    await first.exited;

    const second = await spawnNode(dataDir, ['--slots', '2', '--no-mesh'], 'server');
    const again = new GridxClient(second.url, { token: payer.key });
    try {
      await eventually(
        async () => (await again.status()).queue,
        (q) => q.pending === 0 && q.running === 0,
        120_000,
      );
      const jobs = await Promise.all(ids.map((id) => again.get(id)));
      expect(jobs.map((j) => j.status)).toEqual(Array(100).fill('completed'));
      expect(jobs.map((j) => j.stdout)).toEqual(ids.map((_, i) => `${i}\n`));
      for (const job of jobs) {
        // Exactly one execution completed it; any other was interrupted by the kill.
        expect(job.executions!.filter((e) => e.status === 'completed')).toHaveLength(1);
        expect(job.executions!.every((e) => e.status === 'completed' || e.status === 'interrupted')).toBe(true);
      }
      expect(jobs.filter((j) => j.attempts === 2).length).toBeGreaterThan(0);
      // Each task paid for exactly once, to the server's own node account, however often it ran.
      expect((await eventually(() => again.account(), (a) => a.balance === '900', 10_000)).balance).toBe('900');
      const spent = (await again.ledger({ limit: 1000 })).entries.filter((e) => e.kind === 'escrow');
      expect(spent).toHaveLength(100);
    } finally {
      second.child.kill('SIGTERM');
      await second.exited;
    }
  }, 180_000);
});
