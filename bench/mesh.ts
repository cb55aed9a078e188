/**
 * Mesh benchmark. Sides that are compared run in the same process, alternating, with the
 * order flipped every sample; each round prints its ratio, and the summary is the median of
 * the round ratios.
 *
 *   formation   N nodes (--sizes) join through one bootstrap; time until every node holds
 *               every other's signed offer. No baseline: an absolute time against the target
 *               (20 nodes < 2 s). Also with one process per node (--process-sizes).
 *   find        an idle provider that fits a job, as a fresh client finds one (`gridx run
 *               --mesh`: new key, new libp2p node, bootstrap, offers, a DHT query, ranking,
 *               stop), on each formed mesh. Main baseline: the same kind of fresh libp2p node
 *               dialling the bootstrap peer and completing identify, then stopping: the least
 *               any fresh mesh client pays before it can learn anything. Second baseline: a
 *               fresh HTTP connection asking a known node's GET /status (the non-mesh way to
 *               ask one node whether it is idle). Target: < 100 ms median.
 *   forward     `echo hi` sent to a busy node and forwarded to an idle peer, against the same
 *               job run on that peer directly. Target ≤ 1.15×.
 *   scale       N nodes (--scale-sizes) in this process (no-op executors, real libp2p over
 *               loopback), spread over --threads worker threads (default: one per core, so
 *               that the mesh is not held to one event loop), joined through --seeds seed nodes: how long a changed offer takes to
 *               reach 50%, 99% and 100% of the other nodes (target: 99% within 1 s); bytes each
 *               node writes to its TCP sockets per minute, at rest and while 10% of the nodes
 *               leave and 10% join per minute (target: the same at every N); memory per node.
 *               No baseline: absolute figures, compared across N.
 *   idle        one `gridx node` process on its own; its resident memory 12 s after start
 *               (target < 120 MiB).
 *
 * Usage: npm run bench:mesh -- [--sizes 5,20,50] [--process-sizes 5,20] [--rounds N]
 *                              [--runs N] [--only inproc,processes,forward,scale,idle]
 *                              [--scale-sizes 50,100,200] [--seeds 1] [--threads N] [--window 30]
 *                              [--changes 10]
 *   --rounds × --runs is the number of samples per side for find and forward (default 5 × 6).
 */

import '../src/polyfills.js';
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { identify } from '@libp2p/identify';
import { tcp } from '@libp2p/tcp';
import { multiaddr } from '@multiformats/multiaddr';
import { createLibp2p } from 'libp2p';
import { loadConfig } from '../src/config/load.js';
import { NODE_FLAGS } from '../src/cli/node-flags.js';
import { connectDocker, ensureLocalImage, LOCAL_IMAGE } from '../src/executor/docker/engine.js';
import { LABELS } from '../src/executor/docker/sandbox.js';
import { NoopExecutor } from '../src/executor/noop/noop-executor.js';
import { createLogger } from '../src/logger.js';
import { GridxNode } from '../src/node/node.js';
import { GridxClient } from '../src/sdk/client.js';
import { findNodes } from '../src/sdk/mesh-client.js';
import type { Methods } from './mesh-scale-worker.js';
import { flipped, fmtMs, median, round, timed, verdict } from './stats.js';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '5,20,50' },
    'process-sizes': { type: 'string', default: '5,20' },
    rounds: { type: 'string', default: '5' },
    runs: { type: 'string', default: '6' },
    only: { type: 'string', default: 'inproc,processes,forward,scale,idle' },
    'scale-sizes': { type: 'string', default: '50,100,200' },
    seeds: { type: 'string', default: '1' },
    threads: { type: 'string', default: String(os.cpus().length) },
    window: { type: 'string', default: '30' },
    changes: { type: 'string', default: '10' },
  },
});
const list = (s: string) => s.split(',').filter(Boolean).map(Number);
const SIZES = list(values.sizes);
const PROCESS_SIZES = list(values['process-sizes']);
const ROUNDS = Number(values.rounds);
const RUNS = Number(values.runs);
const ONLY = new Set(values.only.split(','));
const SCALE_SIZES = list(values['scale-sizes']);
const SEEDS = Number(values.seeds);
const THREADS = Number(values.threads);
const WINDOW_S = Number(values.window);
const CHANGES = Number(values.changes);
if (![ROUNDS, RUNS, SEEDS, THREADS, WINDOW_S, CHANGES].every((n) => Number.isInteger(n) && n > 0)) {
  throw new Error('--rounds, --runs, --seeds, --threads, --window and --changes take positive whole numbers');
}
const log = createLogger('error');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'gridx-bench-mesh-'));
const results: Record<string, unknown> = {};
let dirs = 0;

function config(bootstrap: string[], slots = 1) {
  return loadConfig({
    env: {},
    flags: { dataDir: path.join(root, `n${dirs++}`), apiPort: 0, p2pPort: 0, slots, bootstrap, meshEnabled: true },
  });
}

interface Side {
  name: string;
  once: () => Promise<void>;
  /** Off the clock, after each sample: lets work the sample left behind (container removal) finish. */
  settle?: () => Promise<void>;
}

/**
 * --rounds rounds of --runs samples per side, order flipped every sample. Prints each
 * round's ratio of the first side to each other side, and the median of those ratios.
 */
async function alternate(sides: Side[], indent = '  '): Promise<{ medians: Record<string, number>; ratios: Record<string, number[]> }> {
  const [ours, ...others] = sides as [Side, ...Side[]];
  const all = new Map(sides.map((s) => [s.name, [] as number[]]));
  const ratios = new Map(others.map((o) => [o.name, [] as number[]]));
  for (let r = 0; r < ROUNDS; r++) {
    const mine = new Map(sides.map((s) => [s.name, [] as number[]]));
    for (let i = 0; i < RUNS; i++) {
      for (const side of flipped(sides, r * RUNS + i)) {
        mine.get(side.name)!.push(await timed(side.once));
        await side.settle?.();
      }
    }
    for (const [name, xs] of mine) all.get(name)!.push(...xs);
    const m = (name: string) => median(mine.get(name)!);
    for (const o of others) ratios.get(o.name)!.push(m(ours.name) / m(o.name));
    const parts = sides.map((s) => `${s.name} ${fmtMs(m(s.name))}`).join(', ');
    const rs = others.map((o) => `${ours.name}/${o.name} ${ratios.get(o.name)!.at(-1)!.toFixed(2)}`).join(', ');
    console.log(`${indent}round ${r + 1}: medians ${parts}; ${rs}`);
  }
  const medians = Object.fromEntries(sides.map((s) => [s.name, median(all.get(s.name)!)]));
  console.log(`${indent}all ${ROUNDS * RUNS} samples per side: ${sides.map((s) => `${s.name} median ${fmtMs(medians[s.name]!)}`).join(', ')}`);
  for (const [name, rs] of ratios) {
    console.log(`${indent}${ours.name}/${name} per round: ${rs.map((x) => x.toFixed(2)).join(' ')}; median ratio ${median(rs).toFixed(2)}`);
  }
  return { medians, ratios: Object.fromEntries(ratios) };
}

/** The main find baseline: a fresh libp2p node (same transport, encryption, muxer) dials and identifies one known peer. */
async function dialAndIdentify(target: string): Promise<void> {
  const node = await createLibp2p({
    privateKey: await generateKeyPair('Ed25519'),
    addresses: { listen: [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify() },
  });
  try {
    const identified = new Promise<void>((resolve) => node.addEventListener('peer:identify', () => resolve(), { once: true }));
    await node.dial(multiaddr(target), { signal: AbortSignal.timeout(5000) });
    await Promise.race([identified, new Promise((_, reject) => setTimeout(() => reject(new Error('identify timed out')), 5000).unref())]);
  } finally {
    await node.stop();
  }
}

/** The second find baseline: GET /status of a known node on a new TCP connection (no keep-alive pool). */
function askStatus(url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${url}/status`, { agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => ((JSON.parse(body) as { status?: string }).status === 'idle' ? resolve() : reject(new Error(`status: ${body.slice(0, 200)}`))));
    });
    req.once('error', reject);
  });
}

async function formation(n: number): Promise<void> {
  const nodes: GridxNode[] = [];
  try {
    const first = new GridxNode({ config: config([]), log, executor: new NoopExecutor(), detectGpus: false });
    await first.start();
    nodes.push(first);
    const bootstrap = [first.peerMesh!.multiaddrs[0]!];
    const t0 = performance.now();
    const joiners = Array.from({ length: n - 1 }, () => new GridxNode({ config: config(bootstrap), log, executor: new NoopExecutor(), detectGpus: false }));
    nodes.push(...joiners);
    await Promise.all(joiners.map((j) => j.start()));
    const started = performance.now() - t0;
    while (!nodes.every((x) => x.peerMesh!.book.size === n - 1)) {
      if (performance.now() - t0 > 60_000) throw new Error(`mesh of ${n} not formed within 60 s`);
      await sleep(5);
    }
    const formed = performance.now() - t0;
    console.log(`
  N=${String(n).padStart(2)}: formed in ${fmtMs(formed)} (all ${n - 1} joiners started within ${fmtMs(started)}; every node holds ${n - 1} offers)`);

    // A fresh client each sample, bootstrapping from the first node, as `gridx run --mesh` does.
    const freshClient: Side = {
      name: 'fresh-client',
      once: async () => {
        const found = await findNodes({ image: LOCAL_IMAGE, command: 'echo hi' }, { bootstrap });
        if (found.length === 0) throw new Error('the fresh client found no idle provider');
      },
    };
    const dial: Side = { name: 'dial+identify', once: () => dialAndIdentify(bootstrap[0]!) };
    const status: Side = { name: 'http-status', once: () => askStatus(first.url!) };
    for (const s of [freshClient, dial, status]) await s.once(); // warm-up, off the record
    console.log(`  find an idle fitting provider from a fresh client, ${ROUNDS} rounds × ${RUNS} samples per side:`);
    const { medians, ratios } = await alternate([freshClient, dial, status], '    ');
    const ms = medians['fresh-client']!;
    console.log(`    fresh client median ${fmtMs(ms)}: target < 100 ms ${ms < 100 ? 'MET' : 'MISSED'}`);
    results[`formation_${n}`] = { formedMs: round(formed), joinersStartedMs: round(started) };
    results[`find_${n}`] = {
      medianMs: Object.fromEntries(Object.entries(medians).map(([k, v]) => [k, round(v, 2)])),
      ratioVsDialIdentify: round(median(ratios['dial+identify']!), 2),
      ratioVsHttpStatus: round(median(ratios['http-status']!), 2),
    };
  } finally {
    await Promise.all(nodes.map((x) => x.stop()));
  }
}

/** Formation with every node its own `gridx node` process, as a real deployment runs them. */
async function formationProcesses(n: number): Promise<void> {
  const cli = path.resolve('dist/src/cli/main.js');
  const children: ChildProcess[] = [];
  const spawnNode = (i: number, bootstrap?: string) =>
    new Promise<{ url: string; p2p: string }>((resolve, reject) => {
      const args = [...NODE_FLAGS, cli, 'node', '--api-port', '0', '--p2p-port', '0', '--slots', '1', '--data-dir', path.join(root, `p${dirs++}`)];
      if (bootstrap) args.push('--bootstrap', bootstrap);
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, GRIDX_LOG_LEVEL: 'error' } });
      children.push(child);
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const url = /listening on (\S+)/.exec(out)?.[1];
        const p2p = /p2p (\/ip4\/\S+)/.exec(out)?.[1];
        if (url && p2p && /first node|joining through/.test(out)) resolve({ url, p2p });
      });
      child.once('exit', (code) => reject(new Error(`node ${i} exited ${code}`)));
    });
  try {
    const hub = await spawnNode(0);
    const t0 = performance.now();
    const joiners = await Promise.all(Array.from({ length: n - 1 }, (_, i) => spawnNode(i + 1, hub.p2p)));
    const started = performance.now() - t0;
    const clients = [hub, ...joiners].map((x) => new GridxClient(x.url));
    const done = new Set<number>();
    while (done.size < n) {
      if (performance.now() - t0 > 60_000) throw new Error(`mesh of ${n} processes not formed within 60 s`);
      await Promise.all(
        clients.map(async (c, i) => {
          if (!done.has(i) && (await c.status()).peers === n - 1) done.add(i);
        }),
      );
    }
    const formed = performance.now() - t0;
    console.log(`  N=${String(n).padStart(2)} processes: formed in ${fmtMs(formed)} (all ${n - 1} joiners listening within ${fmtMs(started)}; formed ${fmtMs(formed - started)} after the last one listened)`);
    results[`formation_processes_${n}`] = { formedMs: round(formed), listeningMs: round(started), afterLastListenedMs: round(formed - started) };
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : undefined)));
  }
}

async function forwarding(): Promise<void> {
  const docker = await connectDocker('/var/run/docker.sock');
  await ensureLocalImage(docker);
  const a = new GridxNode({ config: config([]), log, detectGpus: false });
  await a.start();
  const b = new GridxNode({ config: config([a.peerMesh!.multiaddrs[0]!]), log, detectGpus: false });
  await b.start();
  try {
    const ca = new GridxClient(a.url!);
    const cb = new GridxClient(b.url!);
    while ((await ca.status()).peers < 1) await sleep(20);
    // Keep A's only slot busy, so everything sent to A is forwarded to B.
    const blocker = await ca.submit({ image: LOCAL_IMAGE, command: ['sleep', '600'], pin: true }, { wait: false });
    while ((await ca.get(blocker.id)).status !== 'running') await sleep(20);
    const run = async (client: GridxClient, pin: boolean, expectOn: string) => {
      const job = await client.submit({ image: LOCAL_IMAGE, command: 'echo hi', pin });
      if (job.status !== 'completed' || job.stdout !== 'hi\n' || job.executedBy !== expectOn) {
        throw new Error(`job ${job.id}: ${job.status} on ${job.executedBy}`);
      }
    };
    // Both sides run their container on B; B removes it after answering, so wait for that
    // before the next sample starts (the blocker on A carries A's label, not B's).
    const settle = async () => {
      while ((await docker.listContainers({ all: true, filters: { label: [`${LABELS.node}=${b.id}`] } })).length > 0) {
        await sleep(10);
      }
    };
    const forwarded: Side = { name: 'forwarded', once: () => run(ca, false, b.id), settle };
    const local: Side = { name: 'local', once: () => run(cb, true, b.id), settle };
    for (let i = 0; i < 3; i++) for (const s of [forwarded, local]) await s.once(); // warm-up
    console.log(`\nforward, \`echo hi\` in the sandbox, ${ROUNDS} rounds × ${RUNS} runs per side, alternating:`);
    console.log('  forwarded = sent to busy node A, forwarded to B; local = sent to B directly, run there');
    const { medians, ratios } = await alternate([forwarded, local]);
    const ratio = median(ratios.local!);
    console.log(`  median ratio forwarded / local: ${ratio.toFixed(3)}   ${verdict(ratio, 1.15, 'at-most')}`);
    results.forward = { medianMs: { forwarded: round(medians.forwarded!), local: round(medians.local!) }, roundRatios: ratios.local!.map((x) => round(x, 3)), ratio: round(ratio, 3) };
    await ca.cancel(blocker.id);
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
}

/** A worker thread of the scale part (mesh-scale-worker.ts) holding a share of the nodes, called by method name. */
class NodeThread {
  private readonly worker: Worker;
  private next = 0;
  private readonly waiting = new Map<number, { resolve: (x: unknown) => void; reject: (err: Error) => void }>();

  constructor(name: string) {
    this.worker = new Worker(new URL('./mesh-scale-worker.js', import.meta.url), { workerData: { root, name } });
    this.worker.on('message', ({ id, result, error }: { id: number; result?: unknown; error?: string }) => {
      const call = this.waiting.get(id)!;
      this.waiting.delete(id);
      if (error === undefined) call.resolve(result);
      else call.reject(new Error(error));
    });
    this.worker.on('error', (err) => {
      for (const call of this.waiting.values()) call.reject(err);
      this.waiting.clear();
    });
  }

  call<M extends keyof Methods>(method: M, ...args: Parameters<Methods[M]>): Promise<Awaited<ReturnType<Methods[M]>>> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (x: unknown) => void, reject });
      this.worker.postMessage({ id, method, args: args[0] });
    });
  }

  async close(): Promise<void> {
    await this.call('stop').catch(() => {});
    await this.worker.terminate();
  }
}

/** Milliseconds until the share `p` of `times` (one per other node; Infinity: never) had arrived. */
function reached(times: readonly number[], p: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)]!;
}

const fmtReach = (ms: number) => (Number.isFinite(ms) ? fmtMs(ms) : 'never (10 s)');
const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

async function scale(n: number): Promise<void> {
  const threads = Array.from({ length: Math.min(THREADS, n) }, (_, i) => new NodeThread(`t${i}-`));
  const each = <M extends keyof Methods>(method: M, ...args: Parameters<Methods[M]>) => Promise.all(threads.map((t) => t.call(method, ...args)));
  /** A thread chosen with odds by its non-seed live nodes. */
  const someThread = async () => {
    const counts = (await each('stats')).map((s) => s.churnable);
    let i = Math.floor(Math.random() * sum(counts));
    return threads[counts.findIndex((c) => (i -= c) < 0)]!;
  };
  try {
    const heapBefore = sum(await each('heap'));
    const rssBefore = process.memoryUsage().rss;
    const seedAddrs: string[] = [];
    for (let i = 0; i < Math.min(SEEDS, n); i++) seedAddrs.push(await threads[i % threads.length]!.call('seed', [...seedAddrs]));
    const t0 = performance.now();
    const joiners = n - seedAddrs.length;
    await Promise.all(threads.map((t, i) => t.call('join', { count: Math.floor(joiners / threads.length) + (i < joiners % threads.length ? 1 : 0), seedAddrs })));
    const started = performance.now() - t0;
    const complete = async () => sum(await each('complete', n - 1));
    while ((await complete()) < n && performance.now() - t0 < 120_000) await sleep(20);
    const held = await complete();
    const formed = held === n ? performance.now() - t0 : undefined;
    console.log(
      `\n  N=${n} (${seedAddrs.length} seed${seedAddrs.length > 1 ? 's' : ''}, ${threads.length} thread${threads.length > 1 ? 's' : ''}): joiners started within ${fmtMs(started)}; ` +
        (formed ? `every node held every offer after ${fmtMs(formed)}` : `after 120 s ${held} of ${n} nodes held every offer`),
    );
    await sleep(5_000); // the joins' DHT queries and first republications settle
    const heapPerNode = (sum(await each('heap')) - heapBefore) / n;
    const rssPerNode = (process.memoryUsage().rss - rssBefore) / n;
    console.log(`  memory per node: ${(rssPerNode / 2 ** 20).toFixed(2)} MiB resident, ${(heapPerNode / 2 ** 20).toFixed(2)} MiB JS heap (growth of this process / N)`);

    const totals = async () => {
      const stats = await each('stats');
      return { live: sum(stats.map((s) => s.live)), connections: sum(stats.map((s) => s.connections)), bytes: sum(stats.map((s) => s.bytes)) };
    };
    const settled = await totals();
    const degree = settled.connections / settled.live;
    console.log(`  connections per node: ${degree.toFixed(1)} on average`);
    /** Over a window: bytes written per node per minute, this process's CPU (1 = one core busy), the worst thread's event loop p99 delay. */
    const measure = async (during: Promise<unknown>) => {
      const before = await totals();
      const t = performance.now();
      const cpu = process.cpuUsage();
      await each('lag', true);
      await during;
      const lagP99 = Math.max(...(await each('lag', false)));
      const { user, system } = process.cpuUsage(cpu);
      // The churn's stops and starts may outlast the window on a loaded machine: the time taken counts.
      const windowMs = performance.now() - t;
      const after = await totals();
      return { bytes: (after.bytes - before.bytes) / ((before.live + after.live) / 2) / (windowMs / 60_000), cpu: (user + system) / 1000 / windowMs, lagP99 };
    };
    const describe = (m: { bytes: number; cpu: number; lagP99: number }) =>
      `${(m.bytes / 1024).toFixed(1)} KiB written per node per minute (process CPU ${m.cpu.toFixed(2)} cores, event loop delay p99 ${m.lagP99.toFixed(0)} ms)`;
    const rest = await measure(sleep(WINDOW_S * 1000));
    console.log(`  at rest, ${WINDOW_S} s: ${describe(rest)}`);

    // A changed offer: a node re-signs (new seq); every other node's book is watched for it.
    const shares = { p50: [] as number[], p99: [] as number[], p100: [] as number[] };
    for (let c = 0; c < CHANGES; c++) {
      const { peerId, seq, at } = await (await someThread()).call('change');
      const arrivals = (await each('watch', { peerId, seq, until: at + 10_000 })).flat();
      const times = arrivals.map((x) => (x === null ? Infinity : x - at));
      shares.p50.push(reached(times, 0.5));
      shares.p99.push(reached(times, 0.99));
      shares.p100.push(reached(times, 1));
      await sleep(500);
    }
    const p = { p50: median(shares.p50), p99: median(shares.p99), p100: median(shares.p100) };
    console.log(
      `  an offer change (${CHANGES} changes, median): 50% of nodes in ${fmtReach(p.p50)}, 99% in ${fmtReach(p.p99)}, 100% in ${fmtReach(p.p100)}; ` +
        `target 99% < 1 s ${p.p99 < 1000 ? 'MET' : 'MISSED'} (99% per change: ${shares.p99.map((x) => (Number.isFinite(x) ? Math.round(x) : '∞')).join(' ')} ms)`,
    );

    // Churn: 10% of the nodes leave and as many new ones join per minute, evenly spread; a
    // joiner starts in the leaver's thread.
    const events = Math.max(1, Math.round((n * 0.1 * WINDOW_S) / 60));
    const churning = (async () => {
      for (let e = 0; e < events; e++) {
        await sleep((WINDOW_S * 1000) / events / 2);
        const thread = await someThread();
        await thread.call('leave');
        await thread.call('join', { count: 1, seedAddrs });
        await sleep((WINDOW_S * 1000) / events / 2);
      }
    })();
    const churn = await measure(churning);
    console.log(`  churn, ${events} left and ${events} joined in ${WINDOW_S} s: ${describe(churn)}`);
    results[`scale_${n}`] = {
      seeds: seedAddrs.length,
      threads: threads.length,
      formedMs: formed === undefined ? null : round(formed),
      connectionsPerNode: round(degree),
      cpuBusy: { rest: round(rest.cpu, 2), churn: round(churn.cpu, 2) },
      eventLoopDelayP99Ms: { rest: round(rest.lagP99), churn: round(churn.lagP99) },
      memoryPerNodeMiB: { rss: round(rssPerNode / 2 ** 20, 2), heap: round(heapPerNode / 2 ** 20, 2) },
      kibPerNodeMinute: { rest: round(rest.bytes / 1024), churn: round(churn.bytes / 1024) },
      changeReachedMs: Object.fromEntries(Object.entries(p).map(([k, v]) => [k, Number.isFinite(v) ? round(v) : null])),
    };
  } finally {
    await Promise.all(threads.map((t) => t.close()));
  }
}

/** One `gridx node` on its own, as an operator starts it: its resident memory 12 s later. */
async function idleMemory(): Promise<void> {
  const cli = path.resolve('dist/src/cli/main.js');
  const args = [...NODE_FLAGS, cli, 'node', '--api-port', '0', '--p2p-port', '0', '--data-dir', path.join(root, `idle${dirs++}`)];
  // Only PATH and HOME of this environment: GRIDX_* settings would change what is measured.
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', GRIDX_LOG_LEVEL: 'error' };
  const child = spawn(process.execPath, args, { stdio: 'ignore', env });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    await sleep(12_000);
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the idle node exited (${child.exitCode ?? child.signalCode})`);
    const status = fs.readFileSync(`/proc/${child.pid}/status`, 'utf8');
    const mib = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) / 1024;
    console.log(`\nidle node, resident 12 s after start: ${mib.toFixed(1)} MiB; target < 120 MiB ${mib < 120 ? 'MET' : 'MISSED'}`);
    results.idle = { rssMiB: round(mib) };
  } finally {
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(killer);
  }
}

async function main(): Promise<void> {
  console.log(`Grid-X mesh benchmark: ${os.cpus().length} cores, all nodes in one process on loopback`);
  if (ONLY.has('inproc')) {
    console.log('\nformation (target: 20 nodes < 2 s) and find from a fresh client (target: < 100 ms):');
    for (const n of SIZES) await formation(n);
  }
  if (ONLY.has('processes') && PROCESS_SIZES.length > 0) {
    console.log('\nformation with one process per node (the time includes each process starting up):');
    for (const n of PROCESS_SIZES) await formationProcesses(n);
  }
  if (ONLY.has('forward')) await forwarding();
  if (ONLY.has('scale')) {
    console.log(`\nscale: nodes in ${THREADS} thread(s) of this process over loopback, joined through ${SEEDS} seed node(s):`);
    for (const n of SCALE_SIZES) {
      // A size this machine cannot hold is reported, and the next size still runs.
      await scale(n).catch((err: unknown) => console.log(`\n  N=${n}: did not complete: ${err instanceof Error ? err.message : String(err)}`));
    }
  }
  if (ONLY.has('idle')) await idleMemory();
  console.log(`\nRESULT ${JSON.stringify(results)}`);
}

main()
  .catch((err: unknown) => {
    console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  })
  .finally(() => fs.rmSync(root, { recursive: true, force: true }));
