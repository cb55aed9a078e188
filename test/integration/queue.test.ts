/** Queueing, shutdown, restart and cleanup with real containers. */
import { afterEach, describe, expect, it } from 'vitest';
import { LOCAL_IMAGE } from '../../src/executor/docker/engine.js';
import { LABELS } from '../../src/executor/docker/sandbox.js';
import type { JobView } from '../../src/sdk/client.js';
import { containersOf, docker, eventually } from '../helpers/docker.js';
import { startTestNode, tempDir, type TestNode } from '../helpers/node.js';

const image = LOCAL_IMAGE;
const nodes: TestNode[] = [];
async function start(options: Parameters<typeof startTestNode>[0]): Promise<TestNode> {
  const t = await startTestNode(options);
  nodes.push(t);
  return t;
}
afterEach(async () => {
  for (const t of nodes.splice(0)) {
    await t.stop();
    expect(await containersOf(t.node.id), 'containers left behind').toEqual([]);
  }
});

async function allDone(t: TestNode, ids: string[]): Promise<JobView[]> {
  return Promise.all(ids.map((id) => eventually(() => t.client.get(id), (j) => j.finishedAt !== undefined, 30_000)));
}

describe('queue (real Docker)', () => {
  it('runs jobs beyond the free slots in submission order, one slot at a time', async () => {
    const t = await start({ flags: { slots: 1 } });
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      ids.push((await t.client.submit({ image, command: ['sh', '-c', `sleep 0.2; echo ${i}`] }, { wait: false })).id);
    }
    const status = await t.client.status();
    expect(status.status).toBe('busy');
    expect(status.queue.pending).toBeGreaterThanOrEqual(2);
    const jobs = await allDone(t, ids);
    expect(jobs.map((j) => j.stdout)).toEqual(['0\n', '1\n', '2\n', '3\n']);
    for (let i = 1; i < jobs.length; i++) {
      expect(Date.parse(jobs[i]!.startedAt!)).toBeGreaterThanOrEqual(Date.parse(jobs[i - 1]!.finishedAt!));
    }
  });

  it('never runs more jobs at once than it has slots', async () => {
    const t = await start({ flags: { slots: 2 } });
    const jobs = await Promise.all(
      Array.from({ length: 6 }, () => t.client.submit({ image, command: ['sleep', '0.3'] })),
    );
    expect(jobs.every((j) => j.status === 'completed')).toBe(true);
    const edges = jobs.flatMap((j) => [
      { at: Date.parse(j.startedAt!), d: 1 },
      { at: Date.parse(j.finishedAt!), d: -1 },
    ]);
    edges.sort((a, b) => a.at - b.at || a.d - b.d);
    let running = 0;
    let most = 0;
    for (const e of edges) most = Math.max(most, (running += e.d));
    expect(most).toBe(2);
  });

  it('many short jobs at once all complete: no exit is missed under load', async () => {
    const t = await start({ flags: { slots: 4 } });
    const jobs = await Promise.all(
      Array.from({ length: 60 }, (_, i) => t.client.submit({ image, command: `echo ${i}` })),
    );
    expect(jobs.map((j) => j.status)).toEqual(Array(60).fill('completed'));
    expect(jobs.map((j) => j.stdout)).toEqual(jobs.map((_, i) => `${i}\n`));
  });

  it('a graceful stop requeues the running job; after restart every job completes and finished ones stay', async () => {
    const dataDir = tempDir();
    const first = await startTestNode({ dataDir, flags: { slots: 1 } });
    const done = await first.client.submit({ image, command: 'echo finished' });
    const long = await first.client.submit({ image, command: ['sh', '-c', 'sleep 1; echo long'] }, { wait: false });
    const queued = await Promise.all(
      [1, 2].map((i) => first.client.submit({ image, command: `echo queued ${i}` }, { wait: false })),
    );
    await eventually(() => first.client.get(long.id), (j) => j.status === 'running');
    await first.stop();
    expect(await containersOf(first.node.id)).toEqual([]);

    const second = await start({ dataDir, flags: { slots: 1 } });
    expect(second.node.id).toBe(first.node.id);
    const after = await allDone(second, [long.id, ...queued.map((q) => q.id)]);
    expect(after.map((j) => [j.status, j.stdout])).toEqual([
      ['completed', 'long\n'],
      ['completed', 'queued 1\n'],
      ['completed', 'queued 2\n'],
    ]);
    expect(after[0]!.attempts).toBe(2);
    const executions = (await second.client.get(long.id)).executions!;
    expect(executions.map((e) => e.status)).toEqual(['interrupted', 'completed']);
    expect(await second.client.get(done.id)).toMatchObject({ status: 'completed', stdout: 'finished\n', attempts: 1 });
  });

  it('reaps containers an earlier run of the node left behind', async () => {
    const dataDir = tempDir();
    const probe = await startTestNode({ dataDir });
    const nodeId = probe.node.id;
    await probe.stop();
    const orphan = await docker.createContainer({
      Image: image,
      Cmd: ['sleep', '60'],
      Labels: { [LABELS.managed]: 'true', [LABELS.node]: nodeId, [LABELS.execution]: 'lost' },
    });
    await orphan.start();
    expect(await containersOf(nodeId)).toHaveLength(1);
    await start({ dataDir });
    expect(await containersOf(nodeId)).toEqual([]);
  });

  it('cancels a running job: the container is killed and the job says cancelled', async () => {
    const t = await start({ flags: { slots: 1 } });
    const job = await t.client.submit({ image, command: ['sleep', '30'] }, { wait: false });
    await eventually(() => t.client.get(job.id), (j) => j.status === 'running');
    await t.client.cancel(job.id);
    const ended = await eventually(() => t.client.get(job.id), (j) => j.finishedAt !== undefined);
    expect(ended).toMatchObject({ status: 'cancelled', reason: 'cancelled' });
    expect(ended.durationMs).toBeLessThan(10_000);
  });

  it('streams output live while the job runs', async () => {
    const t = await start({ flags: { slots: 1 } });
    const job = await t.client.submit({ image, command: ['sh', '-c', 'echo first; sleep 1.5; echo second'] }, { wait: false });
    const seen: Array<{ data: string; at: number }> = [];
    const end = await t.client.follow(job.id, (e) => {
      if ('stream' in e) seen.push({ data: e.data, at: Date.now() });
    });
    expect(end.status).toBe('completed');
    expect(seen.map((s) => s.data).join('')).toBe('first\nsecond\n');
    const first = seen.find((s) => s.data.includes('first'))!;
    const second = seen.find((s) => s.data.includes('second'))!;
    expect(second.at - first.at).toBeGreaterThan(1000);
  });
});
