/**
 * gridx demo: the quick start's "main job". Starts a real node on loopback with the
 * embedded defaults, runs real jobs in the Docker sandbox through its API, shows what
 * each did, and stops. The image is built from local files, so no registry is needed.
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

export const DEMO_USAGE = 'usage: gridx demo [--slots N] [--keep]   (--keep leaves the node running until Ctrl-C)';

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
    options: { slots: { type: 'string' }, keep: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  if (values.help) {
    console.log(DEMO_USAGE);
    return 0;
  }

  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gridx-demo-'));
  const config = loadConfig({ env, flags: { dataDir, apiPort: 0, slots: values.slots ?? 2 } });
  const log = createLogger((env.GRIDX_LOG_LEVEL as 'info' | undefined) ?? 'warn');
  const docker = await connectDocker(config.dockerSocket);
  console.log(`preparing image ${image} from local files...`);
  await ensureLocalImage(docker);

  const node = new GridxNode({ config, log });
  const url = await node.start();
  console.log(`Grid-X node ${node.id} on ${url} (${config.slots} slots, sandbox: no network, read-only root, uid 65534, no capabilities)\n`);
  const client = new GridxClient(url);
  try {
    console.log(`$ gridx run --node ${url} ${image} -- sh -c 'for i in 1 2 3; do echo tick $i; sleep 0.3; done'`);
    const first = await client.submit(
      { image, command: ['sh', '-c', 'for i in 1 2 3; do echo tick $i; sleep 0.3; done'] },
      { wait: false },
    );
    await client.follow(first.id, (e) => {
      if ('stream' in e) process.stdout.write(`  ${e.data.replace(/\n(?!$)/g, '\n  ')}`);
    });

    console.log(`\nsubmitting ${JOBS.length} jobs at once through POST /job (they queue for ${config.slots} slots)...`);
    const started = Date.now();
    const results = await Promise.all(JOBS.map((j) => client.submit(j.body)));
    const elapsed = Date.now() - started;
    const rows = [['JOB', 'STATUS', 'EXIT', 'MS', 'OK', 'OUTPUT / REASON']];
    let ok = 0;
    results.forEach((job, i) => {
      const demo = JOBS[i]!;
      const good = demo.expect(job);
      if (good) ok++;
      const shown = job.reason && job.reason !== 'exit_code' ? (job.message ?? job.reason) : (job.stdout || job.stderr || '').trim();
      rows.push([
        demo.what,
        job.status,
        job.exitCode === undefined ? '-' : String(job.exitCode),
        String(job.durationMs ?? '-'),
        good ? 'yes' : 'NO',
        clip(shown.replace(/\s*\n\s*/g, ' | '), 60),
      ]);
    });
    console.log(table(rows));
    console.log(`\n${ok}/${JOBS.length} behaved as the sandbox requires; all ran in ${elapsed}ms`);
    const status = await client.status();
    console.log(`node status: ${status.status}, ${status.slots.used}/${status.slots.total} slots used`);
    if (values.keep) {
      console.log(`\nnode still running at ${url}; Ctrl-C to stop`);
      await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
    }
    return ok === JOBS.length ? 0 : 1;
  } finally {
    await node.stop();
    if (!values.keep) fs.rmSync(dataDir, { recursive: true, force: true });
  }
}
