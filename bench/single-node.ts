/**
 * Single-node benchmark: Grid-X against raw `docker run --rm` with the same image and the
 * same sandbox flags, alternating in one run so both see the same machine state.
 *
 *   latency:    one trivial job (`echo hi`) at a time; median wall time per job; target ≤ 1.10×
 *   throughput: 100 short jobs, 4 at a time (4 slots vs a pool of 4 docker runs); target ≥ 1.0×
 *
 * Usage: npm run bench -- [--runs N] [--jobs N] [--rounds N]
 */

import '../src/polyfills.js';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config/load.js';
import { connectDocker, ensureLocalImage, LOCAL_IMAGE } from '../src/executor/docker/engine.js';
import { createLogger } from '../src/logger.js';
import { GridxNode } from '../src/node/node.js';
import { GridxClient } from '../src/sdk/client.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '40' },
    jobs: { type: 'string', default: '100' },
    rounds: { type: 'string', default: '3' },
    slots: { type: 'string', default: '4' },
  },
});
const RUNS = Number(values.runs);
const JOBS = Number(values.jobs);
const ROUNDS = Number(values.rounds);
const SLOTS = Number(values.slots);
const image = LOCAL_IMAGE;

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gridx-bench-'));
const config = loadConfig({ env: process.env, flags: { dataDir, apiPort: 0, slots: SLOTS, meshEnabled: false } });
const sb = config.sandbox;

/** The same hardening the node applies, as docker CLI flags. */
const DOCKER_ARGS = [
  'run', '--rm', '--network', 'none', '--read-only',
  '--tmpfs', `/tmp:rw,nosuid,nodev,size=${sb.tmpfsBytes},mode=1777`,
  '--user', sb.user, '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges:true',
  '--memory', String(sb.memoryBytes), '--memory-swap', String(sb.memoryBytes),
  '--cpus', String(sb.cpus), '--pids-limit', String(sb.pidsLimit), '--ipc', 'private',
  '--log-driver', 'none', '--ulimit', 'nofile=4096:4096',
  image, 'echo', 'hi',
];

function dockerRun(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('docker', DOCKER_ARGS, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 && out === 'hi\n' ? resolve() : reject(new Error(`docker run exited ${code}: ${out}`))));
  });
}

async function gridxRun(client: GridxClient): Promise<void> {
  const job = await client.submit({ image, command: 'echo hi' });
  if (job.status !== 'completed' || job.stdout !== 'hi\n') throw new Error(`job ${job.id} ended ${job.status}: ${job.message}`);
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

async function pool(n: number, width: number, fn: () => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) {
        next++;
        await fn();
      }
    }),
  );
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

async function main(): Promise<void> {
  const docker = await connectDocker(config.dockerSocket);
  await ensureLocalImage(docker);
  const node = new GridxNode({ config, log: createLogger('warn'), detectGpus: false });
  const client = new GridxClient(await node.start());
  const dockerVersion = (await docker.version()).Version;
  console.log(`Grid-X single-node benchmark: ${os.cpus().length} cores, Docker ${dockerVersion}, image ${image}`);

  try {
    // Warm both paths (image cache, Node JIT, sqlite pages).
    for (let i = 0; i < 3; i++) {
      await gridxRun(client);
      await dockerRun();
    }

    const ours: number[] = [];
    const theirs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      // Alternate which goes first so neither always follows the other.
      if (i % 2 === 0) {
        ours.push(await timed(() => gridxRun(client)));
        theirs.push(await timed(dockerRun));
      } else {
        theirs.push(await timed(dockerRun));
        ours.push(await timed(() => gridxRun(client)));
      }
    }
    const latencyRatio = median(ours) / median(theirs);
    console.log(`\nlatency, one \`echo hi\` at a time, ${RUNS} runs each, alternating:`);
    console.log(`  POST /job (wait)   median ${median(ours).toFixed(1)} ms   p90 ${percentile(ours, 90).toFixed(1)} ms`);
    console.log(`  docker run --rm    median ${median(theirs).toFixed(1)} ms   p90 ${percentile(theirs, 90).toFixed(1)} ms`);
    console.log(`  ratio (grid-x / docker run): ${latencyRatio.toFixed(3)}   target ≤ 1.10  ${latencyRatio <= 1.1 ? 'MET' : 'MISSED'}`);

    const ourRates: number[] = [];
    const theirRates: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const a = await timed(() => Promise.all(Array.from({ length: JOBS }, () => gridxRun(client))).then(() => {}));
      const b = await timed(() => pool(JOBS, SLOTS, dockerRun));
      ourRates.push((JOBS / a) * 1000);
      theirRates.push((JOBS / b) * 1000);
      console.log(`  round ${r + 1}: grid-x ${ourRates.at(-1)!.toFixed(1)} jobs/s, docker run x${SLOTS} ${theirRates.at(-1)!.toFixed(1)} jobs/s`);
    }
    const throughputRatio = median(ourRates) / median(theirRates);
    console.log(`\nthroughput, ${JOBS} short jobs, ${SLOTS} at a time, ${ROUNDS} rounds (median):`);
    console.log(`  grid-x (${SLOTS} slots, all submitted at once)   ${median(ourRates).toFixed(1)} jobs/s`);
    console.log(`  docker run --rm, ${SLOTS} at a time            ${median(theirRates).toFixed(1)} jobs/s`);
    console.log(`  ratio (grid-x / docker run): ${throughputRatio.toFixed(3)}   target ≥ 1.0  ${throughputRatio >= 1 ? 'MET' : 'MISSED'}`);
    console.log(
      `\nRESULT ${JSON.stringify({
        latencyMedianMs: { gridx: round(median(ours)), docker: round(median(theirs)), ratio: round(latencyRatio, 3) },
        throughputJobsPerSec: { gridx: round(median(ourRates)), docker: round(median(theirRates)), ratio: round(throughputRatio, 3) },
      })}`,
    );
  } finally {
    await node.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

function round(x: number, digits = 1): number {
  return Number(x.toFixed(digits));
}

main().catch((err: unknown) => {
  console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
