/** The gridx CLI and node as separate processes, as a person runs them. */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_IMAGE } from '../../src/executor/docker/engine.js';
import { GridxClient } from '../../src/sdk/client.js';
import { containersOf, eventually } from '../helpers/docker.js';
import { tempDir } from '../helpers/node.js';
import { CLI, freePort, runCli, spawnNode, type NodeProcess } from '../helpers/process.js';

const image = LOCAL_IMAGE;

describe('gridx CLI against a gridx node process', () => {
  let node: NodeProcess;
  beforeAll(async () => {
    node = await spawnNode(tempDir(), ['--slots', '2']);
  });
  afterAll(async () => {
    node.child.kill('SIGTERM');
    expect(await node.exited).toBe(0);
  });

  it('prints where it listens', () => {
    expect(node.output()).toMatch(/Grid-X node 12D3KooW\w+ listening on http:\/\/127\.0\.0\.1:\d+/);
  });

  it('gridx run IMAGE -- CMD: stdout and stderr to their streams, exit with the job code', async () => {
    const r = await runCli(['run', '--node', node.url, image, '--', 'sh', '-c', 'echo out; echo err >&2; exit 7']);
    expect(r).toEqual({ code: 7, stdout: 'out\n', stderr: 'err\n' });
  });

  it('gridx run IMAGE "cmd string" splits like a shell, runs no shell on the host', async () => {
    const r = await runCli(['run', '--node', node.url, image, 'echo "two words" $HOME']);
    expect(r).toMatchObject({ code: 0, stdout: 'two words $HOME\n' });
  });

  it('reads the node from GRIDX_NODE, passes --env and limits', async () => {
    const r = await runCli(['run', '--env', 'A=1', '--memory', '64m', image, '--', 'sh', '-c', 'echo $A; cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max'], {
      GRIDX_NODE: node.url,
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`1\n${64 * 1024 * 1024}\n`);
  });

  it('gridx run --input/--output, gridx get and gridx blob move files both ways, checked', async () => {
    const dir = tempDir('gridx-cli-files-');
    fs.writeFileSync(path.join(dir, 'words.txt'), 'one\ntwo\nthree\n');
    const out = path.join(dir, 'out');
    const r = await runCli([
      'run', '--node', node.url, '--input', `${path.join(dir, 'words.txt')}:/inputs/w`, '--output', out,
      image, '--', 'sh', '-c', 'wc -l < /inputs/w > /outputs/count; mkdir /outputs/sub; cp /inputs/w /outputs/sub/copy',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readFileSync(path.join(out, 'count'), 'utf8').trim()).toBe('3');
    expect(fs.readFileSync(path.join(out, 'sub', 'copy'), 'utf8')).toBe('one\ntwo\nthree\n');

    // The outputs of a failed job come back too, and again later with gridx get.
    const failed = await runCli(['run', '--node', node.url, '--detach', image, '--', 'sh', '-c', 'echo partial > /outputs/p; exit 3']);
    const id = failed.stdout.trim().split(/\s+/).pop()!;
    await eventually(() => new GridxClient(node.url).get(id), (j) => j.status === 'failed', 20_000);
    const again = path.join(dir, 'again');
    const got = await runCli(['get', '--node', node.url, id, '-o', again]);
    expect(got.code, got.stderr).toBe(0);
    expect(fs.readFileSync(path.join(again, 'p'), 'utf8')).toBe('partial\n');

    const put = await runCli(['blob', 'put', '--node', node.url, path.join(dir, 'words.txt')]);
    expect(put.code, put.stderr).toBe(0);
    const digest = /sha256:[0-9a-f]{64}/.exec(put.stdout)?.[0];
    expect(digest).toBeDefined();
    const back = path.join(dir, 'back.txt');
    const get = await runCli(['blob', 'get', '--node', node.url, digest!, '-o', back]);
    expect(get.code, get.stderr).toBe(0);
    expect(fs.readFileSync(back, 'utf8')).toBe('one\ntwo\nthree\n');
  });

  it('gridx run --server follows a Parity task over its WebSocket stream', async () => {
    const r = await runCli(['run', '--server', node.url, '--env', 'A=1', image, '--', 'sh', '-c', 'echo out $A; echo err >&2; exit 6']);
    expect(r).toEqual({ code: 6, stdout: 'out 1\n', stderr: 'err\n' });
    const tasks = (await (await fetch(`${node.url}/api/tasks?limit=1`)).json()) as { tasks: Array<{ title: string; status: string }> };
    expect(tasks.tasks[0]).toMatchObject({ title: 'sh -c echo out $A; echo err >&2; exit 6', status: 'failed' });
  });

  it('exits 124 on timeout and says why', async () => {
    const r = await runCli(['run', '--node', node.url, '--timeout', '1s', image, '--', 'sleep', '30']);
    expect(r.code).toBe(124);
    expect(r.stderr).toMatch(/timed out: killed at its time limit of 1s/);
  });

  it('bad input and a dead node are one clear line, no stack trace', async () => {
    const bad = await runCli(['run', '--node', node.url, '--memory', '64g', image, '--', 'true']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe(
      'gridx: resources.memory: 64g is more than this node allows per job (512m); ask for at most 512m; no peer in the mesh allows it either\n',
    );

    const dead = await runCli(['run', '--node', `http://127.0.0.1:${await freePort()}`, image, '--', 'true']);
    expect(dead.code).toBe(1);
    expect(dead.stderr).toMatch(/^gridx: cannot reach a Grid-X node at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\); is `gridx node` running there\?\n$/);

    const usage = await runCli(['run', '--node', node.url]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('missing IMAGE');

    const unknown = await runCli(['run', '--bogus']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr.split('\n').filter(Boolean)).toHaveLength(1);
  });

  it('a port in use says which one and which flag changes it, in one line', async () => {
    // A second node: its exit, or a kill after 20 s should it start after all.
    const second = async (args: string[]) => {
      const child = spawn(process.execPath, [CLI, 'node', '--data-dir', tempDir(), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      clearTimeout(timer);
      return { code, lastLine: stderr.trim().split('\n').at(-1) };
    };
    const apiPort = new URL(node.url).port;
    expect(await second(['--api-port', apiPort, '--p2p-port', '0'])).toEqual({
      code: 1,
      lastLine: `gridx: the API port ${apiPort} on 127.0.0.1 is in use (another gridx node?); pick another with --api-port (node.api_port), or 0 for any free port`,
    });
    const held = net.createServer();
    await new Promise<void>((resolve) => held.listen(0, '127.0.0.1', resolve));
    const p2pPort = (held.address() as net.AddressInfo).port;
    try {
      expect(await second(['--api-port', '0', '--p2p-port', String(p2pPort)])).toEqual({
        code: 1,
        lastLine: `gridx: the p2p port ${p2pPort} on 127.0.0.1 is in use (another gridx node?); pick another with --p2p-port (mesh.p2p_port), or 0 for any free port`,
      });
    } finally {
      held.close();
    }
  });

  it('--log-format json logs one JSON object per line; a bad log level or format is one clear line', async () => {
    const dir = tempDir();
    const child = spawn(process.execPath, [CLI, 'node', '--data-dir', dir, '--no-mesh', '--api-port', '0', '--log-format', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      // The banner is for the person at the terminal (stdout); the log (stderr) is all JSON.
      await eventually(async () => stdout, (out) => out.includes('listening on'), 20_000);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    const entries = stderr.trim().split('\n').map((line) => JSON.parse(line) as { level: number; time: string; msg: string; component: string });
    expect(entries.length).toBeGreaterThan(2);
    for (const e of entries) expect(e).toMatchObject({ level: expect.any(Number), time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), msg: expect.any(String), component: expect.stringMatching(/^gridx/) });
    expect(entries.some((e) => e.component === 'gridx:duties' && e.level === 30)).toBe(true);
    const level = await runCli(['node', '--data-dir', dir, '--log-level', 'verbose']);
    expect(level).toMatchObject({ code: 1, stderr: 'gridx: --log-level: must be one of debug, info, warn, error, silent; got "verbose"\n' });
    const format = await runCli(['runner', '--server', 'http://127.0.0.1:1', '--log-format', 'xml']);
    expect(format).toMatchObject({ code: 1, stderr: expect.stringMatching(/^gridx: --log-format: must be "text" \(lines for people\) or "json" \(for machines\); got "xml"\n$/) });
  });

  it('gridx doctor checks the engine, a real sandboxed container, ports, data dir and peers, with the fix for what fails', async () => {
    const dir = tempDir();
    const ready = await runCli(['doctor', '--data-dir', dir, '--api-port', '0', '--p2p-port', '0']);
    expect(ready.code).toBe(0);
    expect(ready.stdout).toMatch(/^ {2}OK {4}Docker engine {4}Docker \S+ \(API [\d.]+\)/m);
    expect(ready.stdout).toMatch(/^ {2}OK {4}sandbox {10}a container ran under the node's hardening .* in \d+ ms$/m);
    expect(ready.stdout).toMatch(/^ {2}OK {4}data dir/m);
    expect(ready.stdout).toMatch(/^ {2}SKIP {2}PostgreSQL/m);
    expect(ready.stdout).toMatch(/everything checked is ready\n$/);

    const apiPort = new URL(node.url).port;
    const closed = await freePort();
    const broken = await runCli(['doctor', '--data-dir', dir, '--api-port', apiPort, '--p2p-port', '0', '--bootstrap', `/ip4/127.0.0.1/tcp/${closed}`]);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toContain(`  FAIL  API port         ${apiPort} on 127.0.0.1 is in use (another gridx node?)\n`);
    expect(broken.stdout).toContain('fix: pick another with --api-port (node.api_port), or 0 for any free port; or stop what holds it\n');
    expect(broken.stdout).toMatch(new RegExp(`FAIL {2}bootstrap peers {2}1 of 1 unreachable: /ip4/127\\.0\\.0\\.1/tcp/${closed} \\(ECONNREFUSED\\)`));
    expect(broken.stdout).toMatch(/2 checks failed\n$/);
    expect(broken.stderr).toBe('');
  });

  it('gridx server is the same program in the coordinator role', async () => {
    const help = await runCli(['server', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('API on 8080 by');
  });

  it('gridx status and gridx jobs', async () => {
    const status = await runCli(['status', '--node', node.url]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/status\s+idle/);
    expect(status.stdout).toMatch(/slots\s+0\/2 used/);
    const jobs = await runCli(['jobs', '--node', node.url]);
    expect(jobs.code).toBe(0);
    expect(jobs.stdout).toMatch(/^ID\s+STATUS\s+EXIT/);
    expect(jobs.stdout).toContain('timed_out');
  });
});

describe('node process faults', () => {
  it('SIGKILL while collecting outputs: after restart the job runs again and keeps one whole set of files', async () => {
    const dataDir = tempDir();
    const first = await spawnNode(dataDir, ['--slots', '1']);
    const client = new GridxClient(first.url);
    const nodeId = (await client.status()).nodeId;
    // Enough files that collecting them takes a while even on a fast run: the kill must land inside it.
    const script = 'head -c 150000000 /dev/zero > /outputs/big; for i in $(seq 1 2000); do echo $i > /outputs/f$i; done';
    const job = await client.submit({ image, command: ['sh', '-c', script] }, { wait: false });
    await eventually(() => client.get(job.id), (j) => j.status === 'running', 20_000);
    try {
      // The container is removed before its /outputs is collected: gone while the job still runs.
      await eventually(
        async () => ((await containersOf(nodeId)).length === 0 ? (await client.get(job.id)).status : 'container'),
        (s) => s !== 'container',
        60_000,
      ).then((status) => expect(status, 'the kill must land during collection').toBe('running'));
    } finally {
      // Killed even when the check fails: a failed run must not leave the node running.
      first.child.kill('SIGKILL');
      await first.exited;
    }

    const second = await spawnNode(dataDir, ['--slots', '1']);
    const again = new GridxClient(second.url);
    try {
      const done = await eventually(() => again.get(job.id), (j) => j.finishedAt !== undefined, 60_000);
      expect(done).toMatchObject({ status: 'completed', outputs: { files: 2001, exceeded: false } });
      expect(done.executions!.map((e) => e.status)).toEqual(['interrupted', 'completed']);
      const dest = tempDir('gridx-collect-kill-');
      const manifest = await again.downloadOutputs(job.id, dest);
      expect(manifest.bytes).toBe(150_000_000 + manifest.files.filter((f) => f.path !== 'big').reduce((n, f) => n + f.size, 0));
      expect(fs.statSync(path.join(dest, 'big')).size).toBe(150_000_000);
      // Nothing half-made is left: no volume of the killed run, no partial blob.
      expect(fs.readdirSync(path.join(dataDir, 'outputs')).filter((n) => !n.startsWith('.'))).toEqual([]);
      expect(fs.readdirSync(path.join(dataDir, 'blobs', 'tmp'))).toEqual([]);
    } finally {
      second.child.kill('SIGTERM');
      expect(await second.exited).toBe(0);
    }
  });

  it('SIGKILL mid-job: after restart every queued, running and finished job is accounted for', async () => {
    const dataDir = tempDir();
    const first = await spawnNode(dataDir, ['--slots', '1']);
    const client = new GridxClient(first.url);
    const finished = await client.submit({ image, command: 'echo before' });
    const running = await client.submit({ image, command: ['sh', '-c', 'sleep 1; echo survived'] }, { wait: false });
    const queued = await Promise.all([1, 2].map((i) => client.submit({ image, command: `echo q${i}` }, { wait: false })));
    await eventually(() => client.get(running.id), (j) => j.status === 'running');
    const nodeId = (await client.status()).nodeId;

    first.child.kill('SIGKILL');
    await first.exited;
    expect(await containersOf(nodeId)).toHaveLength(1); // the killed node's container is left running

    const second = await spawnNode(dataDir, ['--slots', '1']);
    const again = new GridxClient(second.url);
    try {
      const ids = [running.id, ...queued.map((q) => q.id)];
      const jobs = await Promise.all(ids.map((id) => eventually(() => again.get(id), (j) => j.finishedAt !== undefined, 20_000)));
      expect(jobs.map((j) => [j.status, j.stdout])).toEqual([
        ['completed', 'survived\n'],
        ['completed', 'q1\n'],
        ['completed', 'q2\n'],
      ]);
      expect(jobs[0]!.executions!.map((e) => e.status)).toEqual(['interrupted', 'completed']);
      expect(await again.get(finished.id)).toMatchObject({ status: 'completed', stdout: 'before\n' });
    } finally {
      second.child.kill('SIGTERM');
      expect(await second.exited).toBe(0);
    }
    expect(await containersOf(nodeId)).toEqual([]);
  });

  it('a node whose jobs keep dying with it fails them as node_restarted after max attempts', async () => {
    const dataDir = tempDir();
    let proc = await spawnNode(dataDir, ['--slots', '1']);
    const job = await new GridxClient(proc.url).submit({ image, command: ['sleep', '30'] }, { wait: false });
    for (let attempt = 1; attempt <= 3; attempt++) {
      const client = new GridxClient(proc.url);
      await eventually(() => client.get(job.id), (j) => j.status === 'running' && j.attempts === attempt);
      proc.child.kill('SIGKILL');
      await proc.exited;
      proc = await spawnNode(dataDir, ['--slots', '1']);
    }
    const client = new GridxClient(proc.url);
    const ended = await eventually(() => client.get(job.id), (j) => j.finishedAt !== undefined);
    expect(ended).toMatchObject({ status: 'failed', reason: 'node_restarted', attempts: 3 });
    expect(ended.message).toContain('used all 3 attempts');
    proc.child.kill('SIGTERM');
    await proc.exited;
  });

  it('SIGTERM stops the running job, records it, and exits cleanly', async () => {
    const dataDir = tempDir();
    const proc = await spawnNode(dataDir, ['--slots', '1']);
    const client = new GridxClient(proc.url);
    const job = await client.submit({ image, command: ['sleep', '30'] }, { wait: false });
    await eventually(() => client.get(job.id), (j) => j.status === 'running');
    const nodeId = (await client.status()).nodeId;
    const waiting = client.submit({ image, command: 'echo waited' }).catch((err: Error) => err);
    const t0 = Date.now();
    proc.child.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(await containersOf(nodeId)).toEqual([]);
    const answer = await waiting;
    expect(answer).toBeInstanceOf(Error);
    expect((answer as Error).message).toMatch(/shutting down/);
    expect(proc.output()).toContain('SIGTERM: stopping');
  });
});
