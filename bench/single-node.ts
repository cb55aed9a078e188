/**
 * Single-node benchmark: Grid-X's `POST /job` against the Engine API floor (the same hardened
 * container driven through dockerode directly) and, as a second baseline, the docker CLI.
 * All sides run in one process, alternating, so they see the same machine state.
 *
 *   latency:    one `echo hi` at a time; per round, --runs jobs per side with the order
 *               flipped every job; round ratio = median / median. Target ≤ 1.10× the floor.
 *   throughput: --jobs short jobs per side per round, --slots at a time (Grid-X: all POSTed at
 *               once to a node with --slots slots; floor and CLI: --slots concurrent loops);
 *               the order of the sides flips every round. Target ≥ 1.0× the floor.
 *
 * Container removal is off the clock on every side: each side starts removing a container
 * once its output is read (as Grid-X does), and after each side's turn the bench waits until
 * that side's containers are gone before the next side starts, so no removal spills over.
 *
 * Usage: npm run bench -- [--rounds N] [--runs N] [--jobs N] [--slots N]
 *                         [--only latency|throughput] [--skip-cli]
 */

import '../src/polyfills.js';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import type Docker from 'dockerode';
import { loadConfig } from '../src/config/load.js';
import { parseImageRef } from '../src/domain/image-ref.js';
import { normalizeSpec } from '../src/domain/spec.js';
import { connectDocker, ensureLocalImage, LOCAL_IMAGE } from '../src/executor/docker/engine.js';
import { LABELS, containerOptions } from '../src/executor/docker/sandbox.js';
import { createLogger } from '../src/logger.js';
import { GridxNode } from '../src/node/node.js';
import { GridxClient } from '../src/sdk/client.js';
import { flipped, fmtMs, median, percentile, pool, round, timed, verdict } from './stats.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    runs: { type: 'string', default: '10' },
    jobs: { type: 'string', default: '100' },
    slots: { type: 'string', default: '4' },
    only: { type: 'string' },
    'skip-cli': { type: 'boolean', default: false },
  },
});
const ROUNDS = Number(values.rounds);
const RUNS = Number(values.runs);
const JOBS = Number(values.jobs);
const SLOTS = Number(values.slots);
if (![ROUNDS, RUNS, JOBS, SLOTS].every((n) => Number.isInteger(n) && n > 0)) {
  throw new Error('--rounds, --runs, --jobs and --slots take positive whole numbers');
}
if (values.only !== undefined && values.only !== 'latency' && values.only !== 'throughput') {
  throw new Error('--only takes "latency" or "throughput"');
}

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gridx-bench-'));
const config = loadConfig({ env: process.env, flags: { dataDir, apiPort: 0, slots: SLOTS, meshEnabled: false } });
const sb = config.sandbox;
/** Node ids for the baselines' container labels: not the node's, so it never adopts or reaps them. */
const FLOOR_ID = 'bench-engine-floor';
const CLI_ID = 'bench-docker-cli';

/** The job exactly as the node's executor hands it to the engine (canonical image name included). */
const spec = normalizeSpec({ image: LOCAL_IMAGE, command: 'echo hi' }, { ...sb, maxGpus: 0 });
spec.image = parseImageRef(spec.image)!.canonical;

/** One way of running `echo hi`, and how to wait until its containers are gone. */
interface Side {
  name: string;
  once: () => Promise<void>;
  /** Off the clock: resolves when every container this side created has been removed. */
  settle: () => Promise<void>;
}

async function gone(docker: Docker, nodeId: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const left = await docker.listContainers({ all: true, filters: { label: [`${LABELS.node}=${nodeId}`] } });
    if (left.length === 0) return;
    if (Date.now() > deadline) throw new Error(`${left.length} container(s) labelled ${nodeId} still there after 60 s`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Removals started after each job's output is read; awaited only by settle(). */
function removals(docker: Docker, nodeId: string) {
  const pending = new Set<Promise<unknown>>();
  return {
    start(container: Docker.Container): void {
      // A failure here is caught by gone(), which sees the container still there.
      const p = container
        .remove({ force: true, v: true })
        .catch(() => {})
        .finally(() => pending.delete(p));
      pending.add(p);
    },
    async settle(): Promise<void> {
      await Promise.all(pending);
      await gone(docker, nodeId);
    },
  };
}

function gridxSide(docker: Docker, node: GridxNode, client: GridxClient): Side {
  return {
    name: 'grid-x',
    async once() {
      const job = await client.submit({ image: LOCAL_IMAGE, command: 'echo hi' });
      if (job.status !== 'completed' || job.stdout !== 'hi\n') throw new Error(`job ${job.id} ended ${job.status}: ${job.message}`);
    },
    // The node removes its containers after recording the result; wait for that here.
    settle: () => gone(docker, node.id),
  };
}

/** The floor: what any program driving the engine for this container must do. */
function floorSide(docker: Docker): Side {
  const cleanup = removals(docker, FLOOR_ID);
  return {
    name: 'engine-api',
    async once() {
      const id = `bench-${randomUUID()}`;
      const container = await docker.createContainer(containerOptions({ executionId: id, jobId: id, spec }, sb, FLOOR_ID));
      const stream = await container.attach({ stream: true, stdout: true, stderr: true });
      let out = '';
      const sink = (keep: boolean) =>
        new Writable({
          write(chunk: Buffer, _enc, done) {
            if (keep) out += chunk.toString();
            done();
          },
        });
      docker.modem.demuxStream(stream, sink(true), sink(false));
      const drained = new Promise<void>((resolve) => {
        stream.once('end', resolve);
        stream.once('close', resolve);
      });
      await container.start();
      const { StatusCode } = (await container.wait({ condition: 'not-running' })) as { StatusCode: number };
      await drained;
      cleanup.start(container);
      if (StatusCode !== 0 || out !== 'hi\n') throw new Error(`engine-api run exited ${StatusCode}: ${JSON.stringify(out)}`);
    },
    settle: () => cleanup.settle(),
  };
}

/** The same hardening as docker CLI flags; no --rm, so its removal is off the clock too. */
function cliArgs(name: string): string[] {
  return [
    'run', '--name', name, '--label', `${LABELS.node}=${CLI_ID}`, '--network', 'none', '--read-only',
    '--tmpfs', `/tmp:rw,nosuid,nodev,size=${sb.tmpfsBytes},mode=1777`,
    '--user', sb.user, '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges:true',
    '--memory', String(spec.resources.memoryBytes), '--memory-swap', String(spec.resources.memoryBytes),
    '--cpus', String(spec.resources.cpus), '--pids-limit', String(sb.pidsLimit), '--ipc', 'private',
    '--log-driver', 'none', '--ulimit', 'nofile=4096:4096',
    spec.image, ...spec.command,
  ];
}

function cliSide(docker: Docker): Side {
  const cleanup = removals(docker, CLI_ID);
  return {
    name: 'docker-cli',
    once: () =>
      new Promise<void>((resolve, reject) => {
        const name = `bench-cli-${randomUUID()}`;
        const child = spawn('docker', cliArgs(name), { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.once('error', reject);
        child.once('exit', (code) => {
          cleanup.start(docker.getContainer(name));
          if (code === 0 && out === 'hi\n') resolve();
          else reject(new Error(`docker run exited ${code}: ${JSON.stringify(out)}`));
        });
      }),
    settle: () => cleanup.settle(),
  };
}

const ratioLine = (rs: readonly number[]) => rs.map((r) => r.toFixed(3)).join(' ');

async function latency(sides: Side[]): Promise<Record<string, unknown>> {
  const [ours, floor, ...others] = sides as [Side, Side, ...Side[]];
  const all = new Map(sides.map((s) => [s.name, [] as number[]]));
  const vsFloor: number[] = [];
  const vsOthers = new Map(others.map((s) => [s.name, [] as number[]]));
  console.log(`\nlatency: one \`echo hi\` at a time, ${ROUNDS} rounds × ${RUNS} jobs per side, order flipped every job`);
  for (let r = 0; r < ROUNDS; r++) {
    const mine = new Map(sides.map((s) => [s.name, [] as number[]]));
    for (let i = 0; i < RUNS; i++) {
      for (const side of flipped(sides, r * RUNS + i)) {
        mine.get(side.name)!.push(await timed(side.once));
        await side.settle();
      }
    }
    for (const [name, xs] of mine) all.get(name)!.push(...xs);
    const m = (s: Side) => median(mine.get(s.name)!);
    vsFloor.push(m(ours) / m(floor));
    for (const o of others) vsOthers.get(o.name)!.push(m(ours) / m(o));
    const parts = sides.map((s) => `${s.name} ${fmtMs(m(s))}`).join(', ');
    const extra = others.map((o) => `, grid-x/${o.name} ${(m(ours) / m(o)).toFixed(3)}`).join('');
    console.log(`  round ${r + 1}: medians ${parts}; grid-x/engine-api ${vsFloor.at(-1)!.toFixed(3)}${extra}`);
  }
  for (const s of sides) {
    const xs = all.get(s.name)!;
    console.log(`  ${s.name.padEnd(11)} all ${xs.length} jobs: median ${fmtMs(median(xs))}, p90 ${fmtMs(percentile(xs, 90))}`);
  }
  const ratio = median(vsFloor);
  console.log(`  grid-x / engine-api per round: ${ratioLine(vsFloor)}`);
  console.log(`  median ratio grid-x / engine-api: ${ratio.toFixed(3)}   ${verdict(ratio, 1.1, 'at-most')}`);
  for (const [name, rs] of vsOthers) console.log(`  median ratio grid-x / ${name}: ${median(rs).toFixed(3)}   (second baseline)`);
  return {
    medianMs: Object.fromEntries(sides.map((s) => [s.name, round(median(all.get(s.name)!))])),
    roundRatios: vsFloor.map((x) => round(x, 3)),
    ratio: round(ratio, 3),
    ...Object.fromEntries([...vsOthers].map(([name, rs]) => [`ratioVs_${name}`, round(median(rs), 3)])),
  };
}

async function throughput(sides: Side[], batch: Map<string, () => Promise<void>>): Promise<Record<string, unknown>> {
  const [ours, floor, ...others] = sides as [Side, Side, ...Side[]];
  const rates = new Map(sides.map((s) => [s.name, [] as number[]]));
  const vsFloor: number[] = [];
  const vsOthers = new Map(others.map((s) => [s.name, [] as number[]]));
  console.log(`\nthroughput: ${JOBS} \`echo hi\` jobs per side, ${SLOTS} at a time, ${ROUNDS} rounds, order flipped every round`);
  for (let r = 0; r < ROUNDS; r++) {
    const order = flipped(sides, r);
    for (const side of order) {
      const ms = await timed(batch.get(side.name)!);
      rates.get(side.name)!.push((JOBS / ms) * 1000);
      await side.settle();
    }
    const at = (s: Side) => rates.get(s.name)![r]!;
    vsFloor.push(at(ours) / at(floor));
    for (const o of others) vsOthers.get(o.name)!.push(at(ours) / at(o));
    const parts = sides.map((s) => `${s.name} ${at(s).toFixed(1)} jobs/s`).join(', ');
    const extra = others.map((o) => `, grid-x/${o.name} ${(at(ours) / at(o)).toFixed(3)}`).join('');
    console.log(`  round ${r + 1} (${order.map((s) => s.name).join(' → ')}): ${parts}; grid-x/engine-api ${vsFloor.at(-1)!.toFixed(3)}${extra}`);
  }
  const ratio = median(vsFloor);
  console.log(`  grid-x / engine-api per round: ${ratioLine(vsFloor)}`);
  console.log(`  median ratio grid-x / engine-api: ${ratio.toFixed(3)}   ${verdict(ratio, 1.0, 'at-least')}`);
  for (const [name, rs] of vsOthers) console.log(`  median ratio grid-x / ${name}: ${median(rs).toFixed(3)}   (second baseline)`);
  return {
    medianJobsPerSec: Object.fromEntries(sides.map((s) => [s.name, round(median(rates.get(s.name)!))])),
    roundRatios: vsFloor.map((x) => round(x, 3)),
    ratio: round(ratio, 3),
    ...Object.fromEntries([...vsOthers].map(([name, rs]) => [`ratioVs_${name}`, round(median(rs), 3)])),
  };
}

async function main(): Promise<void> {
  const docker = await connectDocker(config.dockerSocket);
  await ensureLocalImage(docker);
  const node = new GridxNode({ config, log: createLogger('warn'), detectGpus: false });
  const client = new GridxClient(await node.start());
  const dockerVersion = (await docker.version()).Version;
  console.log(`Grid-X single-node benchmark: ${os.cpus().length} cores, Docker ${dockerVersion}, image ${LOCAL_IMAGE}`);
  console.log('baselines: engine-api = dockerode create/attach/start/wait with containerOptions (main); docker-cli = `docker run` (second)');

  const gridx = gridxSide(docker, node, client);
  const floor = floorSide(docker);
  const sides = [gridx, floor, ...(values['skip-cli'] ? [] : [cliSide(docker)])];
  const result: Record<string, unknown> = {};
  try {
    // Warm every path (image cache, Node JIT, SQLite pages, the engine's connection pool).
    for (let i = 0; i < 3; i++) {
      for (const side of sides) {
        await side.once();
        await side.settle();
      }
    }
    if (values.only !== 'throughput') result.latency = await latency(sides);
    if (values.only !== 'latency') {
      const batch = new Map<string, () => Promise<void>>([
        // Grid-X as a user drives it: every job POSTed at once, the node's slots bound the work.
        [gridx.name, () => Promise.all(Array.from({ length: JOBS }, () => gridx.once())).then(() => {})],
        ...sides.slice(1).map((s) => [s.name, () => pool(JOBS, SLOTS, s.once)] as [string, () => Promise<void>]),
      ]);
      result.throughput = await throughput(sides, batch);
    }
    console.log(`\nRESULT ${JSON.stringify(result)}`);
  } finally {
    await node.stop();
    // Anything a failed run left behind, off the clock and best effort.
    for (const id of [FLOOR_ID, CLI_ID]) {
      const left = await docker.listContainers({ all: true, filters: { label: [`${LABELS.node}=${id}`] } });
      await Promise.allSettled(left.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true })));
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
