import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NoopExecutor } from '../../src/executor/noop/noop-executor.js';
import type { LogEvent } from '../../src/wire/gridx.js';
import { eventually } from '../helpers/docker.js';
import { type TestNode, startTestNode } from '../helpers/node.js';

describe('why a job waits, through the API', () => {
  let t: TestNode;
  beforeAll(async () => {
    t = await startTestNode({ flags: { slots: 1 }, executor: new NoopExecutor({ script: true }) });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('GET /jobs/:id and /api/tasks/:id say why a pending job waits; the follow stream says it, then each change, then runs it', async () => {
    const long = await t.client.submit({ image: 'alpine:3.20', command: 'sleep 30' }, { wait: false });
    await eventually(() => t.client.get(long.id), (j) => j.status === 'running');
    const next = await t.client.submit({ image: 'alpine:3.20', command: 'echo next' }, { wait: false });

    const job = await t.client.get(next.id);
    expect(job.status).toBe('pending');
    expect(job.waiting).toEqual({ summary: 'waiting: 1 of 1 slots busy', slots: { total: 1, busy: 1 } });
    const task = (await (await fetch(`${t.url}/api/tasks/${next.id}`)).json()) as { waiting?: { summary: string } };
    expect(task.waiting?.summary).toBe('waiting: 1 of 1 slots busy');
    // A job that is not pending says nothing of the kind.
    expect((await t.client.get(long.id)).waiting).toBeUndefined();

    const events: LogEvent[] = [];
    const followed = t.client.follow(next.id, (e) => events.push(e));
    await eventually(async () => events, (es) => es.some((e) => 'event' in e && e.event === 'waiting'));
    await t.client.cancel(long.id);
    const end = await followed;
    expect(end.status).toBe('completed');
    expect(events).toContainEqual({ stream: 'stdout', data: 'next\n' });
    const waits = events.filter((e): e is Extract<LogEvent, { event: 'waiting' }> => 'event' in e && e.event === 'waiting');
    expect(waits.map((e) => e.waiting.summary)).toEqual(['waiting: 1 of 1 slots busy']);
  });
});
