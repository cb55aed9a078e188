/**
 * Mesh benchmark, with baselines in the same run:
 *
 *   formation   N nodes (5, 20, 50) join through one bootstrap; time until every node
 *               holds every other's signed offer. Target: 20 nodes < 2 s.
 *   find        an idle provider that fits a job, once formed: the node's offer book
 *               (what placement uses) against a Kademlia findProviders query on the same
 *               mesh (the peer library's own way), and a fresh client joining to ask
 *               (gridx run --mesh). Target: < 100 ms median.
 *   forward     `echo hi` sent to a busy node and forwarded to an idle peer, against the
 *               same job run on that peer directly, alternating. Target ≤ 1.15×.
 *
 * Usage: npm run bench:mesh -- [--sizes 5,20,50] [--runs N]
 */

import '../src/polyfills.js';
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config/load.js';
import { connectDocker, ensureLocalImage, LOCAL_IMAGE } from '../src/executor/docker/engine.js';
import { NoopExecutor } from '../src/executor/noop/noop-executor.js';
import { createLogger } from '../src/logger.js';
import { offersKey } from '../src/mesh/mesh.js';
import { GridxNode } from '../src/node/node.js';
import { GridxClient } from '../src/sdk/client.js';
import { findNodes, needsOf } from '../src/sdk/mesh-client.js';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '5,20,50' },
    'process-sizes': { type: 'string', default: '5,20' },
    runs: { type: 'string', default: '30' },
  },
});
const SIZES = values.sizes.split(',').map(Number);
const RUNS = Number(values.runs);
const PROCESS_SIZES = values['process-sizes'].split(',').filter(Boolean).map(Number);
const log = createLogger('error');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'gridx-bench-mesh-'));
let dirs = 0;

function config(bootstrap: string[], slots = 1) {
  return loadConfig({
    env: {},
    flags: { dataDir: path.join(root, `n${dirs++}`), apiPort: 0, p2pPort: 0, slots, bootstrap, meshEnabled: true },
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const fmt = (ms: number) => (ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(1)} ms`);

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
      await new Promise((r) => setTimeout(r, 5));
    }
    const formed = performance.now() - t0;
    console.log(`  N=${String(n).padStart(2)}: formed in ${fmt(formed)} (all ${n - 1} joiners started within ${fmt(started)}; every node holds ${n - 1} offers)`);

    // Finding an idle provider that fits, once formed.
    const spec = needsOf({ image: LOCAL_IMAGE, command: 'echo hi', resources: { memory: '64m' } });
    const asker = nodes[n - 1]!.peerMesh!;
    const book: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t = performance.now();
      if (asker.book.candidates(spec).length === 0) throw new Error('no candidate');
      book.push(performance.now() - t);
    }
    const dht: number[] = [];
    const key = await offersKey();
    for (let i = 0; i < 10; i++) {
      const t = performance.now();
      let found = 0;
      for await (const _ of asker.libp2p.contentRouting.findProviders(key, { signal: AbortSignal.timeout(5000) })) {
        if (++found >= 1) break;
      }
      dht.push(performance.now() - t);
    }
    const fresh: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      await findNodes({ image: LOCAL_IMAGE, command: 'echo hi' }, { bootstrap });
      fresh.push(performance.now() - t);
    }
    console.log(
      `        find idle fitting provider: offer book ${fmt(median(book))} | DHT findProviders (first provider) ${fmt(median(dht))} | fresh client joining ${fmt(median(fresh))}  (medians; book/DHT ratio ${(median(book) / median(dht)).toFixed(4)})`,
    );
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
      const args = [cli, 'node', '--api-port', '0', '--p2p-port', '0', '--slots', '1', '--data-dir', path.join(root, `p${dirs++}`)];
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
    console.log(`  N=${String(n).padStart(2)} processes: formed in ${fmt(formed)} (all ${n - 1} joiners listening within ${fmt(started)}; formed ${fmt(formed - started)} after the last one listened)`);
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
    while ((await ca.status()).peers < 1) await new Promise((r) => setTimeout(r, 20));
    // Keep A's only slot busy, so everything sent to A is forwarded to B.
    const blocker = await ca.submit({ image: LOCAL_IMAGE, command: ['sleep', '600'], pin: true }, { wait: false });
    while ((await ca.get(blocker.id)).status !== 'running') await new Promise((r) => setTimeout(r, 20));
    const run = async (client: GridxClient, pin: boolean, expectOn: string) => {
      const t = performance.now();
      const job = await client.submit({ image: LOCAL_IMAGE, command: 'echo hi', pin });
      const ms = performance.now() - t;
      if (job.status !== 'completed' || job.stdout !== 'hi\n' || job.executedBy !== expectOn) {
        throw new Error(`job ${job.id}: ${job.status} on ${job.executedBy}`);
      }
      return ms;
    };
    for (let i = 0; i < 3; i++) {
      await run(ca, false, b.id);
      await run(cb, true, b.id);
    }
    const forwarded: number[] = [];
    const local: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      if (i % 2 === 0) {
        forwarded.push(await run(ca, false, b.id));
        local.push(await run(cb, true, b.id));
      } else {
        local.push(await run(cb, true, b.id));
        forwarded.push(await run(ca, false, b.id));
      }
    }
    const ratio = median(forwarded) / median(local);
    console.log(`\nforward, \`echo hi\` in the sandbox, ${RUNS} runs each, alternating:`);
    console.log(`  sent to busy node A, forwarded to B   median ${fmt(median(forwarded))}`);
    console.log(`  sent to B directly, run there         median ${fmt(median(local))}`);
    console.log(`  ratio (forwarded / local): ${ratio.toFixed(3)}   target ≤ 1.15  ${ratio <= 1.15 ? 'MET' : 'MISSED'}`);
    await ca.cancel(blocker.id);
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
}

async function main(): Promise<void> {
  console.log(`Grid-X mesh benchmark: ${os.cpus().length} cores, all nodes in one process on loopback`);
  console.log('\nformation (target: 20 nodes < 2 s) and find (target: < 100 ms):');
  for (const n of SIZES) await formation(n);
  if (PROCESS_SIZES.length > 0) console.log('\nformation with one process per node (the time includes each process starting up):');
  for (const n of PROCESS_SIZES) await formationProcesses(n);
  await forwarding();
}

main()
  .catch((err: unknown) => {
    console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  })
  .finally(() => fs.rmSync(root, { recursive: true, force: true }));
