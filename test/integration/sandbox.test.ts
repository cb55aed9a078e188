/**
 * Every sandbox control, proven by a real container that tries and fails, through a
 * real node's API on a real Docker engine.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_IMAGE } from '../../src/executor/docker/engine.js';
import type { JobRequestBody } from '../../src/sdk/client.js';
import { eventually } from '../helpers/docker.js';
import { GridxClient } from '../../src/sdk/client.js';
import { fundedAccount, startTestNode, type TestNode } from '../helpers/node.js';

const image = LOCAL_IMAGE;

describe('sandbox (real Docker)', () => {
  let t: TestNode;
  beforeAll(async () => {
    t = await startTestNode({ flags: { slots: 2 } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  const run = (body: Omit<JobRequestBody, 'image'>) => t.client.submit({ image, ...body });
  const sh = (script: string, extra: Omit<JobRequestBody, 'image' | 'command'> = {}) =>
    run({ command: ['sh', '-c', script], ...extra });

  it('runs the seed example: a command string, answered when the job ends', async () => {
    const job = await run({ command: 'echo "Hello from Grid-X"' });
    expect(job).toMatchObject({ status: 'completed', exitCode: 0, stdout: 'Hello from Grid-X\n', stderr: '' });
  });

  it('runs a Parity task body in the same sandbox, visible under /jobs', async () => {
    const { key } = await fundedAccount(t, '100');
    const res = await fetch(`${t.url}/api/tasks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({
        title: 'whoami',
        type: 'docker',
        config: { command: ['sh', '-c', 'echo $KEY; id -u; pwd'], resources: { memory: '64m', cpu: 0.5, timeout: 30 } },
        environment: { type: 'docker', config: { image, workdir: '/tmp', env: ['KEY=value'] } },
        reward: 100,
      }),
    });
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: string };
    const job = await t.node.http.inject({ method: 'GET', url: `/jobs/${id}`, headers: { authorization: `Bearer ${key}` } });
    expect(job.statusCode).toBe(200);
    const owner = new GridxClient(t.url, { token: key });
    const finished = await eventually(() => owner.get(id), (j) => j.finishedAt !== undefined);
    expect(finished).toMatchObject({ status: 'completed', stdout: 'value\n65534\n/tmp\n', reward: '100', title: 'whoami' });
  });

  it('runs a computation and keeps stdout and stderr apart, with the exit code', async () => {
    const job = await sh('echo $((6 * 7)); echo warn >&2; exit 3');
    expect(job).toMatchObject({ status: 'failed', reason: 'exit_code', exitCode: 3, stdout: '42\n', stderr: 'warn\n' });
  });

  it('passes env and workdir', async () => {
    const job = await sh('echo "$GREETING from $(pwd)"', { env: { GREETING: 'hi' }, workdir: '/tmp' });
    expect(job.stdout).toBe('hi from /tmp\n');
  });

  it('network: no interface but loopback, and the host is unreachable', async () => {
    const port = new URL(t.url).port;
    // The node listens on the host's 127.0.0.1; inside the job, 127.0.0.1 is the job's own loopback.
    const job = await sh(`ls /sys/class/net; cat /proc/net/route | wc -l; echo | nc -w 2 127.0.0.1 ${port} && echo REACHED`);
    expect(job.stdout).toBe('lo\n1\n'); // route table: header line only
    expect(job.stdout).not.toContain('REACHED');
    expect(job.stderr).toMatch(/Connection refused/);
  });

  it('root filesystem is read-only; /tmp is the only writable place', async () => {
    const job = await sh('touch /bin/evil; echo ok > /tmp/ok && cat /tmp/ok');
    expect(job.stderr).toContain('Read-only file system');
    expect(job.stdout).toBe('ok\n');
  });

  it('runs as uid and gid 65534 (real, effective, saved, fs), in no other group, and owns what it writes', async () => {
    // As the kernel sees the process and the files it makes, not as a permission error
    // (the image has no root-only file whose refusal could tell root from nobody).
    const job = await sh('grep -E "^(Uid|Gid|Groups):" /proc/self/status; touch /tmp/mine; stat -c "%u:%g" /tmp/mine');
    expect(job.status).toBe('completed');
    const lines = job.stdout!.trim().split('\n').map((l) => l.trim().split(/\s+/).join(' '));
    expect(lines).toEqual(['Uid: 65534 65534 65534 65534', 'Gid: 65534 65534 65534 65534', 'Groups: 65534', '65534:65534']);
  });

  it('has no capabilities, no-new-privileges and seccomp filtering', async () => {
    const job = await sh('grep -E "^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):" /proc/self/status');
    const fields = Object.fromEntries(job.stdout!.trim().split('\n').map((l) => l.split(/:\s+/)));
    expect(fields).toEqual({
      CapInh: '0000000000000000',
      CapPrm: '0000000000000000',
      CapEff: '0000000000000000',
      CapBnd: '0000000000000000',
      CapAmb: '0000000000000000',
      NoNewPrivs: '1',
      Seccomp: '2', // filter mode: Docker's default profile
    });
  });

  it('privileged operations actually fail', async () => {
    const job = await sh('mount -t tmpfs none /mnt 2>&1; chown 0 /tmp 2>&1; unshare -r true 2>&1; mknod /tmp/d c 1 3 2>&1; echo done');
    expect(job.stdout).toMatch(/mount: .*(denied|not permitted)/i);
    expect(job.stdout).toMatch(/chown: .*not permitted/i);
    expect(job.stdout).toMatch(/unshare: .*(not permitted|denied)/i);
    expect(job.stdout).toMatch(/mknod: .*not permitted/i);
  });

  it('the Docker socket is absent', async () => {
    const job = await sh('ls /var/run/docker.sock /run/docker.sock 2>&1; echo end');
    expect(job.stdout).toMatch(/docker\.sock: No such file/);
    expect(job.stdout).not.toMatch(/^srw/m);
  });

  it('sees neither host processes nor other jobs', async () => {
    const [other, self] = await Promise.all([
      sh('sleep 3'),
      (async () => {
        await new Promise((r) => setTimeout(r, 500));
        return sh('ps -o pid,comm | tail -n +2');
      })(),
    ]);
    expect(other.status).toBe('completed');
    expect(self.stdout).not.toContain('sleep');
    expect(self.stdout).not.toMatch(/dockerd|node/);
  });

  it('a fork bomb is contained by the pids limit while the node keeps answering', async () => {
    // The limit is read first: once the bomb holds every pid, the shell cannot fork a cat.
    const bomb = sh('cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null; bomb() { bomb | bomb & }; bomb; sleep 2', {
      timeout: '6s',
    });
    await new Promise((r) => setTimeout(r, 1000));
    const started = Date.now();
    const status = await t.client.status();
    expect(status.nodeId).toBe(t.node.id);
    expect(Date.now() - started).toBeLessThan(3000);
    const job = await bomb;
    expect(job.stderr).toMatch(/can't fork|Resource temporarily unavailable/);
    expect(job.stdout).toContain('256');
  });

  it('a memory bomb is killed at its limit and reported as out of memory', async () => {
    // After a second: on cgroup v1, containerd's shim watches a container for OOM kills only
    // once its process has started, and an OOM in the first instant went unrecorded (the
    // engine's OOMKilled stayed false; seen once in a loaded CI run: reason exit_code).
    const job = await run({ command: ['sh', '-c', 'sleep 1; exec tail /dev/zero'], resources: { memory: '32m' } });
    expect(job).toMatchObject({ status: 'failed', reason: 'oom', exitCode: 137 });
    expect(job.message).toContain('out of memory: killed at its memory limit of 32m');
  });

  it('no swap beyond the memory limit', async () => {
    const job = await sh('cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory.swap.max 2>/dev/null', {
      resources: { memory: '48m' },
    });
    const values = job.stdout!.trim().split('\n');
    const limit = String(48 * 1024 * 1024);
    // cgroup v1: memory limit and memory+swap limit are equal; v2: memory.max and swap.max 0.
    expect(values[0]).toBe(limit);
    expect(['0', limit]).toContain(values[1]);
  });

  it('an endless loop is killed at its timeout as timed_out', async () => {
    const job = await sh('while :; do :; done', { timeout: '1s' });
    expect(job).toMatchObject({ status: 'timed_out', reason: 'timeout' });
    expect(job.durationMs).toBeGreaterThanOrEqual(1000);
    expect(job.durationMs).toBeLessThan(5000);
  });

  it('a CPU hog is held to its share', async () => {
    // Two spinning processes for 2 s under a 0.5-core quota: at most about 1 core-second.
    const script = [
      'spin() { timeout 2 sh -c "while :; do :; done"; }',
      'spin & spin; wait',
      'if [ -f /sys/fs/cgroup/cpuacct/cpuacct.usage ]; then cat /sys/fs/cgroup/cpuacct/cpuacct.usage;',
      'else awk \'/usage_usec/ {print $2 * 1000}\' /sys/fs/cgroup/cpu.stat; fi',
    ].join('\n');
    const job = await sh(script, { resources: { cpus: 0.5 } });
    const usedSeconds = Number(job.stdout!.trim()) / 1e9;
    expect(usedSeconds).toBeGreaterThan(0.3); // it did spin (other tests may share the cores)
    expect(usedSeconds).toBeLessThan(1.3);
  });

  it('filling /tmp stops at its size cap', async () => {
    const job = await sh('dd if=/dev/zero of=/tmp/fill bs=1M count=200 2>&1; du -m /tmp/fill | cut -f1');
    expect(job.stdout).toContain('No space left on device');
    expect(Number(job.stdout!.trim().split('\n').at(-1))).toBeLessThanOrEqual(64);
  });

  it('an output flood is capped and flagged as truncated, and the job still ends', async () => {
    const job = await sh('yes flood | head -c 5000000; echo done >&2');
    expect(job.status).toBe('completed');
    expect(job.stdout!.length).toBe(1024 * 1024);
    expect(job.stdoutTruncated).toBe(true);
    expect(job.stderr).toBe('done\n');
    expect(job.stderrTruncated).toBe(false);
  });

  it('a missing image fails the job with a clear reason', async () => {
    const job = await t.client.submit({ image: 'gridx/no-such-image:1', command: 'true' });
    expect(job).toMatchObject({ status: 'failed', reason: 'image_not_found' });
    expect(job.message).toContain('image "gridx/no-such-image:1" is not on this node and could not be pulled');
  });
});
