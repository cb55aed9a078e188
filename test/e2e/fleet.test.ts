/**
 * A fleet of `gridx server` processes on one PostgreSQL acts as one, tested with real
 * processes: every event reaches a WebSocket client on any server (also one that resumes
 * on another server), a server SIGKILLed mid-run loses nothing and pays nothing twice,
 * PostgreSQL restarted under load is survived by everything on it, and a server whose
 * clock is five minutes off neither steals nor keeps leases.
 */

import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { afterAll, describe, expect, inject, it } from 'vitest';
import WebSocket from 'ws';
import { LOCAL_IMAGE } from '../../src/executor/docker/engine.js';
import { NoopExecutor } from '../../src/executor/noop/noop-executor.js';
import type { GridxRunner } from '../../src/node/runner.js';
import { GridxClient } from '../../src/sdk/client.js';
import type { TaskEvent } from '../../src/wire/parity.js';
import { containersOf, docker, eventually } from '../helpers/docker.js';
import { startNoopRunner, tempDir } from '../helpers/node.js';
import { type NodeProcess, cliAccount, freePort, spawnNode, spawnRunner } from '../helpers/process.js';

const FAST_LEASES = { GRIDX_LEASE_TTL: '2s', GRIDX_RETRY_BACKOFF: '0' };
const SERVER_FLAGS = ['--no-mesh', '--slots', '0'];

function schemaUrl(base: string, name: string): string {
  return `${base}?schema=${name}_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
}

const task = (i: number, seconds = 0) => ({
  title: `t${i}`,
  config: { command: ['echo', String(i)] },
  environment: { config: { image: LOCAL_IMAGE } },
  reward: '1',
  ...(seconds ? { config: { command: ['sleep', String(seconds)] } } : {}),
});

/** Runners in this process run the real runner code over HTTP; a no-op executor stands in for Docker. */
async function noopRunners(urls: string[], key: string, delayMs = 2): Promise<{ runners: GridxRunner[]; executors: NoopExecutor[] }> {
  const executors: NoopExecutor[] = [];
  const runners = await Promise.all(
    urls.map((serverUrl, i) => startNoopRunner({ serverUrl, slots: 4, name: `r${i}`, accountKey: key, delayMs, executors })),
  );
  return { runners, executors };
}

/**
 * A client of GET /api/events that drops its connection at random moments and resumes with
 * ?since= on the next server in `urls` (the other one, when there are two): it counts
 * every task's result event and any event it is sent twice or out of order.
 */
class Watcher {
  readonly results = new Map<string, number>();
  since = 0;
  reconnects = 0;
  outOfOrder = 0;
  private at: number;
  private stopped = false;
  private socket?: WebSocket;

  constructor(
    private readonly urls: string[],
    first: number,
    private readonly key: string,
  ) {
    this.at = first;
    this.connect();
  }

  private connect(): void {
    if (this.stopped) return;
    const url = `${this.urls[this.at]!.replace(/^http/, 'ws')}/api/events?since=${this.since}`;
    const ws = (this.socket = new WebSocket(url, { headers: { authorization: `Bearer ${this.key}` } }));
    const drop = setTimeout(() => ws.close(), 150 + Math.random() * 600);
    ws.on('message', (raw) => {
      const event = JSON.parse(raw.toString()) as TaskEvent;
      if (event.seq <= this.since) this.outOfOrder++;
      this.since = event.seq;
      if (event.type === 'result') this.results.set(event.task_id, (this.results.get(event.task_id) ?? 0) + 1);
    });
    ws.on('unexpected-response', () => ws.terminate());
    ws.on('error', () => {});
    ws.on('close', () => {
      clearTimeout(drop);
      if (this.stopped) return;
      this.reconnects++;
      this.at = (this.at + 1) % this.urls.length;
      setTimeout(() => this.connect(), 20 + Math.random() * 80);
    });
  }

  stop(): void {
    this.stopped = true;
    this.socket?.terminate();
  }
}

describe('a fleet of servers on one PostgreSQL', () => {
  const processes: NodeProcess[] = [];
  const cleanups: Array<() => Promise<void> | void> = [];
  afterAll(async () => {
    for (const p of processes) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it(
    'two servers, four runners, 1,000 tasks: clients that resume on the other server see every result exactly once; a server SIGKILLed halfway loses and double-pays nothing',
    { timeout: 180_000 },
    async () => {
      const db = schemaUrl(inject('pgUrl'), 'fleet');
      const user = await cliAccount(['--db', db], { name: 'user', credit: '1000' });
      const worker = await cliAccount(['--db', db], { name: 'worker', kind: 'runner' });
      const ports = [await freePort(), await freePort()];
      const dirs = [tempDir(), tempDir()];
      const start = (i: number) => spawnNode(dirs[i]!, [...SERVER_FLAGS, '--db', db], 'server', FAST_LEASES, ports[i]);
      const servers = [await start(0), await start(1)];
      processes.push(...servers);
      const urls = servers.map((s) => s.url);
      const { runners, executors } = await noopRunners([urls[0]!, urls[1]!, urls[0]!, urls[1]!], worker.key);
      const watchers = [new Watcher(urls, 0, user.key), new Watcher(urls, 1, user.key)];
      cleanups.push(
        () => watchers.forEach((w) => w.stop()),
        () => Promise.all(runners.map((r) => r.stop())).then(() => {}),
      );

      // Half to each server; each server's runners also take the other's through the queue.
      const ids: string[] = [];
      const clients = urls.map((url) => new GridxClient(url, { token: user.key }));
      for (let i = 0; i < 1000; i += 50) {
        const batch = Array.from({ length: 50 }, (_, k) => clients[(i + k) % 2]!.submitTask(task(i + k)));
        ids.push(...(await Promise.all(batch)).map((t) => t.id));
      }
      const survivor = clients[1]!;
      await eventually(() => survivor.list({ status: 'completed', limit: 500 }), (p) => p.jobs.length >= 500, 60_000);
      servers[0]!.child.kill('SIGKILL');
      await servers[0]!.exited;
      // Its operator restarts it on its port; its runners carry on where they stopped.
      await new Promise((r) => setTimeout(r, 1000));
      const restarted = await start(0);
      processes.push(restarted);

      const completed = async () => {
        let n = 0;
        let cursor: string | undefined;
        do {
          const page = await survivor.list({ status: 'completed', limit: 500, ...(cursor ? { cursor } : {}) });
          n += page.jobs.length;
          cursor = page.nextCursor ?? undefined;
        } while (cursor);
        return n;
      };
      await eventually(completed, (n) => n === 1000, 90_000);
      const jobs = await Promise.all(ids.map((id) => survivor.get(id)));
      for (const job of jobs) {
        expect(job.status).toBe('completed');
        expect(job.executions!.filter((e) => e.status === 'completed')).toHaveLength(1);
      }
      // Each task paid exactly once, whichever server settled it.
      const earned = await eventually(() => new GridxClient(urls[1]!, { token: worker.key }).account(), (a) => a.balance === '1000', 30_000);
      expect(earned.balance).toBe('1000');
      expect((await survivor.account()).balance).toBe('0');
      expect(new Set(executors.flatMap((e) => e.started.map((r) => r.jobId))).size).toBe(1000);

      // Every client saw every result, each once, in order, across its reconnections.
      for (const watcher of watchers) {
        await eventually(async () => watcher.results.size, (n) => n === 1000, 30_000);
        expect([...watcher.results.values()].every((n) => n === 1)).toBe(true);
        expect(watcher.outOfOrder).toBe(0);
        expect(watcher.reconnects).toBeGreaterThan(5);
      }
      expect(new Set(watchers[0]!.results.keys())).toEqual(new Set(ids));
    },
  );

  it('PostgreSQL restarted under load: the server and its runners recover by themselves and nothing is lost', { timeout: 120_000 }, async () => {
    // A database of its own: restarting the suite's shared one would fail the tests beside this one.
    const port = await freePort();
    const dir = fs.mkdtempSync('/tmp/gridx-pg-restart-');
    const pgEnv = { ...process.env, GRIDX_TEST_PG_PORT: String(port), GRIDX_TEST_PG_DIR: dir };
    const base = execFileSync('bash', ['scripts/postgres.sh'], { encoding: 'utf8', env: pgEnv }).trim();
    const bin = execFileSync('bash', ['-c', 'ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1'], { encoding: 'utf8' }).trim();
    const pgCtl = (...args: string[]) => execFileSync('runuser', ['-u', 'postgres', '--', `${bin}/pg_ctl`, '-D', dir, ...args], { stdio: 'ignore' });
    cleanups.push(() => {
      try {
        pgCtl('stop', '-m', 'immediate', '-w');
      } catch {
        // not running
      }
      fs.rmSync(dir, { recursive: true, force: true });
    });

    const db = schemaUrl(base, 'restart');
    const user = await cliAccount(['--db', db], { name: 'user', credit: '300' });
    const worker = await cliAccount(['--db', db], { name: 'worker', kind: 'runner' });
    const server = await spawnNode(tempDir(), [...SERVER_FLAGS, '--db', db], 'server', FAST_LEASES);
    processes.push(server);
    const { runners } = await noopRunners([server.url, server.url], worker.key, 20);
    const watcher = new Watcher([server.url], 0, user.key);
    cleanups.push(
      () => watcher.stop(),
      () => Promise.all(runners.map((r) => r.stop())).then(() => {}),
    );
    const client = new GridxClient(server.url, { token: user.key });
    const ids: string[] = [];
    for (let i = 0; i < 300; i += 50) {
      ids.push(...(await Promise.all(Array.from({ length: 50 }, (_, k) => client.submitTask(task(i + k))))).map((t) => t.id));
    }
    await eventually(() => client.list({ status: 'completed', limit: 100 }), (p) => p.jobs.length >= 50, 30_000);
    pgCtl('restart', '-m', 'fast', '-w', '-t', '30');

    const ended = await eventually(
      () => Promise.all(ids.map((id) => client.get(id).catch(() => undefined))),
      (jobs) => jobs.every((j) => j?.status === 'completed'),
      60_000,
    );
    for (const job of ended) expect(job!.executions!.filter((e) => e.status === 'completed')).toHaveLength(1);
    await eventually(() => client.account(), (a) => a.balance === '0', 20_000);
    expect((await new GridxClient(server.url, { token: worker.key }).account()).balance).toBe('300');
    await eventually(async () => watcher.results.size, (n) => n === 300, 20_000);
    expect([...watcher.results.values()].every((n) => n === 1)).toBe(true);
    // The server itself lived through it.
    expect(server.child.exitCode).toBeNull();
  });

  describe('a server whose clock is 5 minutes off', () => {
    it('running fast, it steals no live lease', { timeout: 60_000 }, async () => {
      const db = schemaUrl(inject('pgUrl'), 'fast');
      const user = await cliAccount(['--db', db], { name: 'user', credit: '10' });
      const worker = await cliAccount(['--db', db], { name: 'worker', kind: 'runner' });
      // Started first, the skewed server holds the lease sweep.
      const skewed = await spawnNode(tempDir(), [...SERVER_FLAGS, '--db', db], 'server', { ...FAST_LEASES, GRIDX_FAULT_CLOCK_SKEW_MS: '300000' });
      const honest = await spawnNode(tempDir(), [...SERVER_FLAGS, '--db', db], 'server', FAST_LEASES);
      processes.push(skewed, honest);
      // Runs for three lease TTLs, its lease renewed by heartbeats to the honest server.
      const { runners } = await noopRunners([honest.url], worker.key, 6000);
      cleanups.push(() => Promise.all(runners.map((r) => r.stop())).then(() => {}));
      const client = new GridxClient(honest.url, { token: user.key });
      const { id } = await client.submitTask(task(0));
      const done = await eventually(() => client.get(id), (j) => j.status === 'completed', 30_000);
      expect(done.attempts).toBe(1);
      expect(done.executions!.map((e) => e.status)).toEqual(['completed']);
      expect(skewed.output()).toContain('duty lease-sweep: now held here');
    });

    it('running slow, it keeps no dead lease', { timeout: 60_000 }, async () => {
      const db = schemaUrl(inject('pgUrl'), 'slow');
      const user = await cliAccount(['--db', db], { name: 'user', credit: '10' });
      const worker = await cliAccount(['--db', db], { name: 'worker', kind: 'runner' });
      const skewed = await spawnNode(tempDir(), [...SERVER_FLAGS, '--db', db], 'server', { ...FAST_LEASES, GRIDX_FAULT_CLOCK_SKEW_MS: '-300000' });
      const honest = await spawnNode(tempDir(), [...SERVER_FLAGS, '--db', db], 'server', FAST_LEASES);
      processes.push(skewed, honest);
      const runner = await spawnRunner(honest.url, tempDir('gridx-runner-'), ['--slots', '1', '--key', worker.key]);
      processes.push(runner);
      cleanups.push(async () => {
        for (const c of await containersOf(runner.id)) await docker.getContainer(c.Id).remove({ force: true });
      });
      const client = new GridxClient(honest.url, { token: user.key });
      const { id } = await client.submitTask(task(0, 60));
      await eventually(() => client.get(id), (j) => j.status === 'running', 20_000);
      runner.child.kill('SIGKILL');
      // The skewed server sweeps: by its own clock the lease has minutes left; by the database's it is gone.
      const requeued = await eventually(() => client.get(id), (j) => j.executions?.[0]?.status === 'interrupted', 15_000);
      expect(requeued.executions![0]!.message).toContain('expired');
      expect(skewed.output()).toContain('duty lease-sweep: now held here');
    });
  });
});
