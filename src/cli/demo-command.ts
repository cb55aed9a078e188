/**
 * gridx demo: the quick start's "main job". Starts a small real mesh on loopback with the
 * embedded defaults, runs real jobs in the Docker sandbox through one node's API (which
 * forwards to idle peers), shows what each did and which node ran it, and stops. The image is built from local files, so no registry is needed.
 */

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load.js';
import { connectDocker, ensureLocalImage, LOCAL_IMAGE } from '../executor/docker/engine.js';
import { createLogger } from '../logger.js';
import { GridxNode } from '../node/node.js';
import { GridxClient, type JobRequestBody, type JobView } from '../sdk/client.js';
import { clip, table } from './output.js';

export const DEMO_USAGE = 'usage: gridx demo [--nodes N] [--slots N] [--keep]   (--keep leaves the mesh running until Ctrl-C)';

interface DemoJob {
  what: string;
  body: JobRequestBody;
  /** What a correct sandbox makes of it. */
  expect: (job: JobView) => boolean;
}

const image = LOCAL_IMAGE;

const JOBS: DemoJob[] = [
  {
    what: 'hello (the seed example)',
    body: { image, command: 'echo "hello from Grid-X"' },
    expect: (j) => j.status === 'completed' && j.stdout === 'hello from Grid-X\n',
  },
  {
    what: 'compute: sum of 1..200000',
    body: { image, command: ['sh', '-c', 'i=0; s=0; while [ $i -le 200000 ]; do s=$((s+i)); i=$((i+1)); done; echo $s'] },
    expect: (j) => j.status === 'completed' && (j.stdout ?? '').trim() === '20000100000',
  },
  {
    what: 'network: only loopback exists',
    body: { image, command: 'ls /sys/class/net' },
    expect: (j) => j.status === 'completed' && (j.stdout ?? '').trim() === 'lo',
  },
  {
    what: 'root filesystem is read-only',
    body: { image, command: ['sh', '-c', 'touch /etc/x'] },
    expect: (j) => j.status === 'failed' && /Read-only file system/.test(j.stderr ?? ''),
  },
  {
    what: 'runs as nobody, no capabilities',
    body: { image, command: ['sh', '-c', 'id -u; grep CapEff /proc/self/status'] },
    expect: (j) => j.status === 'completed' && /^65534\nCapEff:\s+0+\n$/.test(j.stdout ?? ''),
  },
  {
    what: 'memory bomb in 32m',
    body: { image, command: 'tail /dev/zero', resources: { memory: '32m' } },
    expect: (j) => j.status === 'failed' && j.reason === 'oom',
  },
  {
    what: 'endless loop with a 2s limit',
    body: { image, command: ['sh', '-c', 'while :; do :; done'], timeout: '2s' },
    expect: (j) => j.status === 'timed_out',
  },
];

export async function demoCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      nodes: { type: 'string', default: '3' },
      slots: { type: 'string', default: '1' },
      keep: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(DEMO_USAGE);
    return 0;
  }
  const count = Math.max(1, Math.min(Number(values.nodes) || 3, 20));
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'gridx-demo-'));
  const log = createLogger((env.GRIDX_LOG_LEVEL as 'info' | undefined) ?? 'warn');
  const configFor = (i: number, bootstrap: string[]) =>
    loadConfig({
      env,
      flags: { dataDir: path.join(root, `node-${i}`), apiPort: 0, p2pPort: 0, slots: values.slots, bootstrap },
    });
  const docker = await connectDocker(configFor(0, []).dockerSocket);
  console.log(`preparing image ${image} from local files...`);
  await ensureLocalImage(docker);

  // A small mesh on loopback: node 0 starts it, the others join through it.
  const nodes: GridxNode[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const bootstrap = i === 0 ? [] : [nodes[0]!.peerMesh!.multiaddrs[0]!];
      const node = new GridxNode({ config: configFor(i, bootstrap), log });
      nodes.push(node);
      await node.start();
    }
    const names = new Map(nodes.map((n, i) => [n.id, `node-${i}`]));
    const client = new GridxClient(nodes[0]!.url!);
    const t0 = Date.now();
    while ((await client.status()).peers < count - 1 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50));
    console.log(`a mesh of ${count} nodes on loopback, ${values.slots} slot(s) each, formed in ${Date.now() - t0}ms:`);
    for (const n of nodes) console.log(`  ${names.get(n.id)}  ${n.url}  ${n.id}`);
    console.log('sandbox: no network, read-only root, uid 65534, no capabilities, memory/cpu/pids/time limits\n');

    console.log(`$ gridx run --node ${nodes[0]!.url} ${image} -- sh -c 'for i in 1 2 3; do echo tick $i; sleep 0.3; done'`);
    const first = await client.submit(
      { image, command: ['sh', '-c', 'for i in 1 2 3; do echo tick $i; sleep 0.3; done'] },
      { wait: false },
    );
    await client.follow(first.id, (e) => {
      if ('stream' in e) process.stdout.write(`  ${e.data.replace(/\n(?!$)/g, '\n  ')}`);
    });

    console.log(`\nsubmitting ${JOBS.length} jobs at once to node-0 through POST /job; when it is busy it forwards to idle peers...`);
    const started = Date.now();
    const results = await Promise.all(JOBS.map((j) => client.submit(j.body)));
    const elapsed = Date.now() - started;
    const rows = [['JOB', 'RAN ON', 'STATUS', 'EXIT', 'MS', 'OK', 'OUTPUT / REASON']];
    let ok = 0;
    results.forEach((job, i) => {
      const demo = JOBS[i]!;
      const good = demo.expect(job);
      if (good) ok++;
      const shown = job.reason && job.reason !== 'exit_code' ? (job.message ?? job.reason) : (job.stdout || job.stderr || '').trim();
      rows.push([
        demo.what,
        names.get(job.executedBy ?? '') ?? job.executedBy ?? '-',
        job.status,
        job.exitCode === undefined ? '-' : String(job.exitCode),
        String(job.durationMs ?? '-'),
        good ? 'yes' : 'NO',
        clip(shown.replace(/\s*\n\s*/g, ' | '), 50),
      ]);
    });
    console.log(table(rows));
    const spread = new Set(results.map((j) => j.executedBy)).size;
    console.log(`\n${ok}/${JOBS.length} behaved as the sandbox requires; ${spread} node(s) ran them; all done in ${elapsed}ms`);
    if (values.keep) {
      console.log(`\nmesh still running (node-0 at ${nodes[0]!.url}); Ctrl-C to stop`);
      await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
    }
    return ok === JOBS.length ? 0 : 1;
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
    if (!values.keep) fs.rmSync(root, { recursive: true, force: true });
  }
}
