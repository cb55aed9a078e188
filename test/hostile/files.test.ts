/**
 * A hostile user of a public node, through files: what a job leaves under /outputs, what it
 * can do there, what it sees of other jobs' files, and uploads meant to exhaust the node.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_IMAGE } from '../../src/executor/docker/engine.js';
import { startTestNode, type TestNode } from '../helpers/node.js';

const image = LOCAL_IMAGE;

describe('hostile jobs and uploads against the data plane (real Docker)', () => {
  let t: TestNode;
  beforeAll(async () => {
    t = await startTestNode({ flags: { slots: 2 }, env: { GRIDX_MAX_BLOB: '1m', GRIDX_OUTPUTS_SIZE: '16m' } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  const sh = (script: string, extra: Record<string, unknown> = {}) => t.client.submit({ image, command: ['sh', '-c', script], ...extra });

  it('cannot run a program it wrote under /outputs (noexec) or make a device there', async () => {
    const job = await sh('cp /bin/busybox /outputs/bb && /outputs/bb echo ran; mknod /outputs/dev c 1 3 && echo made; echo done');
    expect(job.stdout).not.toContain('ran');
    expect(job.stdout).not.toContain('made');
    expect(job.stdout).toContain('done');
  });

  it('never sees another job\'s inputs or outputs', async () => {
    const secret = t.client.submit({
      image,
      command: ['sh', '-c', 'echo secret > /outputs/mine; sleep 3'],
      inputs: [{ path: '/inputs/private', content: Buffer.from('input secret').toString('base64') }],
    });
    await new Promise((r) => setTimeout(r, 1000));
    const snoop = await sh('ls -a /outputs; ls /inputs 2>&1; cat /outputs/mine 2>&1; echo end');
    expect(snoop.stdout).not.toContain('secret');
    expect(snoop.stdout).not.toContain('private');
    expect((await secret).outputs).toMatchObject({ files: 1 });
  });

  it('does not make the node read host files through links it leaves under /outputs', async () => {
    const job = await sh('ln -s /etc/shadow /outputs/shadow; ln -s / /outputs/root; mkdir /outputs/d; ln -s /etc /outputs/d/etc; echo ok > /outputs/ok');
    const manifest = await t.client.outputs(job.id);
    expect(manifest.files.map((f) => f.path)).toEqual(['ok']);
  });

  it('cannot overflow the manifest with tens of thousands of files', async () => {
    const job = await sh('cd /outputs && seq 1 12000 | xargs touch; echo rc=$?', { timeout: 60 });
    const manifest = await t.client.outputs(job.id);
    expect(manifest.files.length).toBeLessThanOrEqual(10_000);
    expect(manifest.exceeded).toBe(true);
    expect(job).toMatchObject({ status: 'failed', reason: 'output_limit' });
  });

  it('gets 413 for an upload past storage.max_blob, and the node keeps nothing of it', async () => {
    const res = await fetch(`${t.url}/blobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: Buffer.alloc(3 * 1024 * 1024, 1),
    });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: string }).error).toContain('storage.max_blob');
    expect(fs.readdirSync(path.join(t.dataDir, 'blobs', 'tmp'))).toEqual([]);
    expect((await t.client.putBlob(Buffer.from('still works'))).size).toBe(11);
  });

  it('cannot name a blob by a path instead of a digest', async () => {
    for (const bad of ['..%2F..%2Fetc%2Fpasswd', 'sha256:..', `sha256:${'A'.repeat(64)}`]) {
      const res = await fetch(`${t.url}/blobs/${bad}`);
      expect(res.status, bad).toBe(400);
    }
  });
});
