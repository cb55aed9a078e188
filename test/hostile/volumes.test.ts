/**
 * Volume roots that cannot be escaped: a job plants a symlink for the next job, the host
 * has links under a read-only root, and ".." is written every way. Real containers on a
 * real engine; each attack reads a host file outside the roots if it gets through.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SPEC, errorOf } from '../helpers/fixtures.js';
import { containersOf, directExecutor } from '../helpers/docker.js';
import { startTestNode, tempDir, type TestNode } from '../helpers/node.js';

const SECRET = 'HOST-SECRET-9d2e7b';

async function submitRaw(t: TestNode, body: unknown): Promise<{ status: number; text: string; job: Record<string, unknown> }> {
  const res = await fetch(`${t.url}/job`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, text, job: JSON.parse(text) as Record<string, unknown> };
}

describe('volumes (real Docker)', () => {
  /** Outside every root: what the attacks try to read. */
  let hostDir: string;
  /** A root jobs may write to. */
  let writableRoot: string;
  /** A read-only root under which the host placed links. */
  let readOnlyRoot: string;
  let writable: TestNode;
  let readOnly: TestNode;
  const job = (t: TestNode, volumes: string[], script: string) =>
    submitRaw(t, { image: SPEC.image, command: ['sh', '-c', script], volumes, timeout: '20s' });

  beforeAll(async () => {
    hostDir = tempDir('gridx-host-');
    fs.writeFileSync(path.join(hostDir, 'secret'), SECRET, { mode: 0o644 });
    fs.chmodSync(hostDir, 0o755);
    writableRoot = tempDir('gridx-rw-root-');
    fs.chmodSync(writableRoot, 0o777); // jobs run as 65534
    readOnlyRoot = tempDir('gridx-ro-root-');
    fs.chmodSync(readOnlyRoot, 0o755);
    fs.mkdirSync(path.join(readOnlyRoot, 'data'), { mode: 0o755 });
    fs.writeFileSync(path.join(readOnlyRoot, 'data', 'ok'), 'inside\n', { mode: 0o644 });
    fs.symlinkSync(hostDir, path.join(readOnlyRoot, 'outside')); // absolute, out of the root
    fs.symlinkSync('..', path.join(readOnlyRoot, 'up')); // relative, out of the root
    fs.symlinkSync('data', path.join(readOnlyRoot, 'inside')); // stays in the root
    [writable, readOnly] = await Promise.all([
      startTestNode({ flags: { slots: 1, allowedVolumes: [writableRoot], writableVolumes: true } }),
      startTestNode({ flags: { slots: 1, allowedVolumes: [readOnlyRoot] } }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([writable?.stop(), readOnly?.stop()]);
    // Remove the planted link itself first: nothing below may ever follow it.
    fs.rmSync(path.join(writableRoot, 'escape'), { force: true });
    for (const dir of [writableRoot, readOnlyRoot, hostDir]) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('two jobs: a link planted under a writable root does not lead the next job out', async () => {
    const plant = await job(writable, [`${writableRoot}:/work:rw`], 'ln -s / /work/escape && echo planted');
    expect(plant.job).toMatchObject({ status: 'completed', stdout: 'planted\n' });
    expect(fs.readlinkSync(path.join(writableRoot, 'escape'))).toBe('/');

    // Below a root jobs write to, nothing may be mounted: refused at submit.
    const follow = await job(writable, [`${writableRoot}/escape:/in`], `cat /in${hostDir}/secret`);
    expect(follow.status).toBe(400);
    expect(follow.text).toContain('which jobs can write to');
    expect(follow.text).not.toContain(SECRET);

    // The root itself is mountable: inside the container the link points at the container's "/".
    const whole = await job(writable, [`${writableRoot}/:/in`], `cat /in/escape${hostDir}/secret; echo end`);
    expect(whole.job).toMatchObject({ status: 'completed', stdout: 'end\n' });
    expect(whole.text).not.toContain(SECRET);
  });

  it('the executor refuses the planted link at creation too, and creates no container', async () => {
    fs.rmSync(path.join(writableRoot, 'escape'), { force: true });
    fs.symlinkSync('/', path.join(writableRoot, 'escape'));
    const nodeId = 'test-volumes-creation';
    const executor = directExecutor({ nodeId, volumes: { allowedVolumes: [writableRoot], writableVolumes: true } });
    for (const [i, hostPath] of [`${writableRoot}/escape`, `${writableRoot}/escape/..`, `${writableRoot}/x/../escape`].entries()) {
      const err = await errorOf(
        executor.start({
          executionId: `vol-${i}`,
          jobId: 'j',
          spec: { ...SPEC, command: ['cat', `/in${hostDir}/secret`], volumes: [{ hostPath, containerPath: '/in', readOnly: true }] },
        }),
      );
      expect(err.code).toBe('LIMIT_EXCEEDED');
      expect(err.message).toContain('the job was not started');
    }
    expect(await containersOf(nodeId)).toEqual([]);
    await executor.stop();
  });

  it('links the host placed under a read-only root are followed and must stay inside it', async () => {
    for (const link of ['outside', 'up']) {
      const escaped = await job(readOnly, [`${readOnlyRoot}/${link}:/in`], `cat /in/secret /in/*/secret; echo end`);
      // It passes the textual check at submit; the real path fails it at creation.
      expect(escaped.job).toMatchObject({ status: 'failed', reason: 'executor_error', stdout: '' });
      expect(escaped.job.message).toContain(`${readOnlyRoot}/${link} leads outside ${readOnlyRoot} through a symbolic link`);
      expect(escaped.text).not.toContain(SECRET);
      expect(escaped.text).not.toContain(hostDir);
    }
    const inside = await job(readOnly, [`${readOnlyRoot}/inside:/in`], 'cat /in/ok');
    expect(inside.job).toMatchObject({ status: 'completed', stdout: 'inside\n' });
  });

  it('".." in every form is refused at submit; slashes are normalized', async () => {
    const forms = (root: string) => [
      `${root}/..`,
      `${root}/../etc`,
      `${root}/a/../../etc`,
      `${root}/./..`,
      `${root}//..//`,
      `${root}/data/..`,
      `${root}/escape/..`,
      `${root}/../${path.basename(root)}`,
    ];
    for (const [t, root] of [
      [writable, writableRoot],
      [readOnly, readOnlyRoot],
    ] as const) {
      const answers = [];
      for (const hostPath of forms(root)) answers.push({ hostPath, ...(await job(t, [`${hostPath}:/in`], 'ls /in')) });
      expect(answers.map(({ hostPath, status }) => ({ hostPath, status }))).toEqual(forms(root).map((hostPath) => ({ hostPath, status: 400 })));
      for (const { text } of answers) expect(text).toContain('must not contain \\"..\\"');
    }
    const slashes = await job(writable, [`/${writableRoot}//:/in`], 'test -d /in && echo mounted');
    expect(slashes.job).toMatchObject({ status: 'completed', stdout: 'mounted\n' });
    const dotted = await job(readOnly, [`${readOnlyRoot}/./data//ok:/in/ok`], 'cat /in/ok');
    expect(dotted.job).toMatchObject({ status: 'completed', stdout: 'inside\n' });
  });
});
