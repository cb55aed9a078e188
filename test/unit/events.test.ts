import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import path from 'node:path';
import { EventLog } from '../../src/api/event-log.js';
import { CLOSE_SLOW_CONSUMER, streamEvents } from '../../src/api/routes/events.js';
import { type JobEventMap, TypedEmitter } from '../../src/domain/events.js';
import { NoopExecutor } from '../../src/executor/noop/noop-executor.js';
import { silentLogger } from '../../src/logger.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { startTestNode, tempDir, type TestNode } from '../helpers/node.js';

const TASK = {
  title: 't',
  type: 'docker',
  config: { command: ['echo', 'hi'] },
  environment: { type: 'docker', config: { image: 'alpine:latest' } },
};

interface Message {
  seq: number;
  type: 'status' | 'result' | 'output';
  task_id: string;
  status?: string;
  stream?: string;
  data?: string;
}

const nodes: TestNode[] = [];
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()));
});

async function node(dataDir?: string): Promise<TestNode> {
  const t = await startTestNode({ executor: new NoopExecutor({ delayMs: 20, output: 'ran\n' }), ...(dataDir ? { dataDir } : {}) });
  nodes.push(t);
  return t;
}

/** Collects messages until `done` says stop (or the timeout passes). */
function collect(url: string, done: (msgs: Message[]) => boolean, timeoutMs = 5000): Promise<Message[]> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const msgs: Message[] = [];
    const timer = setTimeout(() => {
      ws.close();
      resolve(msgs);
    }, timeoutMs);
    ws.on('message', (raw) => {
      msgs.push(JSON.parse(raw.toString()) as Message);
      if (done(msgs)) {
        clearTimeout(timer);
        ws.close();
        resolve(msgs);
      }
    });
    ws.on('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      reject(new Error(`HTTP ${res.statusCode}`));
    });
    ws.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

const post = (t: TestNode) =>
  fetch(`${t.url}/api/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(TASK) }).then(
    (r) => r.json() as Promise<{ id: string }>,
  );

const ws = (t: TestNode, path: string) => t.url.replace('http', 'ws') + path;

describe('WebSocket task events', () => {
  it('streams status changes, output and the result live, in sequence', async () => {
    const t = await node();
    const live = collect(ws(t, '/api/events'), (m) => m.some((x) => x.type === 'result'));
    await new Promise((r) => setTimeout(r, 100));
    const task = await post(t);
    const msgs = await live;
    expect(msgs.map((m) => [m.type, m.status ?? m.stream])).toEqual([
      ['status', 'pending'],
      ['status', 'scheduled'],
      ['status', 'running'],
      ['output', 'stdout'],
      ['result', 'completed'],
    ]);
    expect(msgs.every((m) => m.task_id === task.id)).toBe(true);
    expect(msgs.map((m) => m.seq)).toEqual([...msgs.map((m) => m.seq)].sort((a, b) => a - b));
    expect(msgs.find((m) => m.type === 'output')?.data).toBe('ran\n');
  });

  it('replays what a reconnecting client missed (?since=SEQ), also after a restart', async () => {
    const dataDir = tempDir();
    const first = await node(dataDir);
    const a = await post(first);
    const b = await post(first);
    const all = await collect(ws(first, '/api/events?since=0'), (m) => m.filter((x) => x.type === 'result').length === 2);
    expect(new Set(all.map((m) => m.task_id))).toEqual(new Set([a.id, b.id]));
    const cut = all[3]!.seq;
    const rest = await collect(ws(first, `/api/events?since=${cut}`), (m) => m.at(-1)?.seq === all.at(-1)!.seq);
    expect(rest.map((m) => m.seq)).toEqual(all.filter((m) => m.seq > cut).map((m) => m.seq));

    await first.stop();
    nodes.splice(nodes.indexOf(first), 1);
    const second = await node(dataDir);
    const again = await collect(ws(second, `/api/events?since=${cut}`), (m) => m.at(-1)?.seq === all.at(-1)!.seq);
    expect(again.map((m) => m.seq)).toEqual(rest.map((m) => m.seq));
  });

  it('streams one task on /api/tasks/:id/events; unknown ids and bad SEQs are refused before the upgrade', async () => {
    const t = await node();
    const a = await post(t);
    await post(t);
    const msgs = await collect(ws(t, `/api/tasks/${a.id}/events`), (m) => m.some((x) => x.type === 'result'));
    expect(msgs.length).toBeGreaterThanOrEqual(4);
    expect(msgs.every((m) => m.task_id === a.id)).toBe(true);
    await expect(collect(ws(t, '/api/tasks/nope/events'), () => true)).rejects.toThrow('HTTP 404');
    await expect(collect(ws(t, '/api/events?since=-1'), () => true)).rejects.toThrow('HTTP 400');
  });
});

describe('streamEvents', () => {
  it('closes a consumer that falls too far behind, with a reason and the SEQ to resume from', async () => {
    const store = new SqliteStore(path.join(tempDir(), 'gridx.db'));
    const events = new TypedEmitter<JobEventMap>();
    const eventLog = new EventLog(store, events, silentLogger);
    await eventLog.start();
    for (let i = 0; i < 5; i++) events.emit('job:output', { jobId: 'j', stream: 'stdout', data: `line ${i}\n` });
    await eventLog.flushed();
    const sent: string[] = [];
    let closed: { code: number; reason: string } | undefined;
    // The edge: a socket whose send buffer fills because the client stopped reading.
    const socket = {
      bufferedAmount: 0,
      send: (data: string) => {
        sent.push(data);
        socket.bufferedAmount += 10_000;
      },
      close: (code: number, reason: string) => {
        closed = { code, reason };
      },
      ping: () => {},
      on: () => socket,
      terminate: () => {},
    };
    streamEvents(socket as never, { eventLog, store, shutdown: new AbortController().signal }, { since: 0, maxBufferedBytes: 15_000 });
    await new Promise((r) => setTimeout(r, 100));
    expect(sent).toHaveLength(2);
    const lastSeq = (JSON.parse(sent[1]!) as Message).seq;
    expect(closed).toEqual({ code: CLOSE_SLOW_CONSUMER, reason: `consumer too slow; reconnect with ?since=${lastSeq}` });
    eventLog.stop();
    await store.close();
  });
});
