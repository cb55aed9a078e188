/**
 * Files through runners: a runner reads a job's inputs from its server under the job's
 * lease and uploads what the job left under /outputs before its signed result, which
 * covers the manifest's root. First the lease routes against an in-process server, then a
 * real GridxRunner running a real container.
 */

import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { digestOf, manifestOf } from '../../src/domain/data.js';
import type { ExecutionResult } from '../../src/domain/job.js';
import { newSigningKeys, signResult, signingKeyOf } from '../../src/domain/result-digest.js';
import { LOCAL_IMAGE } from '../../src/executor/docker/engine.js';
import { NoopExecutor } from '../../src/executor/noop/noop-executor.js';
import { silentLogger } from '../../src/logger.js';
import { GridxRunner } from '../../src/node/runner.js';
import { RunnerClient } from '../../src/sdk/runner-client.js';
import type { InputBody } from '../../src/wire/gridx.js';
import { resultBody } from '../../src/wire/runners.js';
import { eventually } from '../helpers/docker.js';
import { errorOf, okResult } from '../helpers/fixtures.js';
import { type TestNode, startTestNode, tempDir } from '../helpers/node.js';

async function registered(server: TestNode, name = 'r') {
  const keys = newSigningKeys();
  const reg = await new RunnerClient(server.url).register({ name, slots: 2, public_key: keys.publicKey });
  return { client: new RunnerClient(server.url, reg.id, reg.token, keys.privateKeyPem), keys, token: reg.token };
}

function task(command: string, inputs: InputBody[] = []) {
  return {
    title: 'files',
    type: 'docker' as const,
    config: { command: ['sh', '-c', command], inputs },
    environment: { type: 'docker' as const, config: { image: LOCAL_IMAGE } },
  };
}

describe('runner lease routes for files (in-process server)', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function server(): Promise<TestNode> {
    const node = await startTestNode({ flags: { slots: 0 }, env: { GRIDX_RETRY_BACKOFF: '0' }, executor: new NoopExecutor() });
    cleanup.push(() => node.stop());
    return node;
  }

  it("serves a job's inputs under its lease, and nothing else of the store", async () => {
    const s = await server();
    const { client: runner } = await registered(s);
    const { client: other } = await registered(s, 'other');
    const input = await s.client.putBlob(Buffer.from('the input'));
    const unrelated = await s.client.putBlob(Buffer.from('someone else'));
    const t = await s.client.submitTask(task('cat /inputs/x', [{ path: '/inputs/x', digest: input.digest }]));
    const [claimed] = await runner.claim(1, 0);
    expect(claimed?.job_id).toBe(t.id);

    const chunks: Buffer[] = [];
    for await (const chunk of await runner.input(claimed!.lease_token, input.digest)) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('the input');

    // A lease is no key to the rest of the store, and one runner cannot use another's lease.
    expect(await errorOf(runner.input(claimed!.lease_token, unrelated.digest))).toMatchObject({ code: 'NOT_FOUND' });
    expect(await errorOf(other.input(claimed!.lease_token, input.digest))).toMatchObject({ code: 'FORBIDDEN' });
    const res = await fetch(`${s.url}/api/runners/${runner.runnerId}/leases/${claimed!.lease_token}/blobs/..%2F..%2Fetc%2Fpasswd`);
    expect(res.status).toBe(400);
  });

  it('keeps an output only when it hashes to its digest, and a result only when the server holds every file it names', async () => {
    const s = await server();
    const { client: runner, keys, token: secret } = await registered(s);
    const t = await s.client.submitTask(task('true'));
    const [claimed] = await runner.claim(1, 0);
    const token = claimed!.lease_token;
    const dir = tempDir('gridx-runner-files-');
    const file = path.join(dir, 'out');
    fs.writeFileSync(file, 'result bytes');
    const digest = digestOf('result bytes');

    // Bytes that do not hash to the digest named: refused, nothing kept.
    const wrong = await fetch(`${s.url}/api/runners/${runner.runnerId}/leases/${token}/blobs?sha256=${digest}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${secret}` },
      body: 'other bytes',
    });
    expect(wrong.status).toBe(400);

    const result: ExecutionResult = { ...okResult(''), outputs: manifestOf([{ path: 'out', size: 12, sha256: digest }], false) };
    // Not uploaded yet: the result cannot name it.
    expect(await errorOf(runner.result(token, t.id, result))).toMatchObject({ code: 'CONFLICT' });
    expect(await runner.putOutput(token, file, digest)).toEqual({ digest, size: 12 });

    // Signed over one manifest, sent with another: not the runner's report.
    const forged = resultBody({ ...result, outputs: manifestOf([{ path: 'renamed', size: 12, sha256: digest }], false) }, signResult(signingKeyOf(keys.privateKeyPem), t.id, token, result));
    const post = (body: unknown) =>
      fetch(`${s.url}/api/runners/${runner.runnerId}/leases/${token}/result`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` },
        body: JSON.stringify(body),
      });
    expect((await post(forged)).status).toBe(403);
    const escaping = resultBody({ ...result, outputs: manifestOf([{ path: '../x', size: 12, sha256: digest }], false) }, 'sig');
    expect((await post(escaping)).status).toBe(400);

    expect(await runner.result(token, t.id, result)).toMatchObject({ status: 'completed' });
    const manifest = await s.client.outputs(t.id, { dialect: 'parity' });
    expect(manifest).toMatchObject({ root: result.outputs!.root, files: [{ path: 'out', size: 12, sha256: digest }] });
    const back = await fetch(`${s.url}/api/tasks/${t.id}/outputs/out`);
    expect(await back.text()).toBe('result bytes');

    // The lease ended with the result: no more uploads under it.
    expect(await errorOf(runner.putOutput(token, file, digest))).toMatchObject({ code: 'CONFLICT' });
  });
});

describe('gridx runner moves files (real Docker)', () => {
  it("places the server's input blobs and returns the job's outputs to the server", async () => {
    const server = await startTestNode({ flags: { slots: 0 }, executor: new NoopExecutor() });
    const runner = new GridxRunner({
      config: loadConfig({ flags: { slots: 1, dataDir: tempDir('gridx-runner-') } }),
      serverUrl: server.url,
      log: silentLogger,
    });
    await runner.start();
    try {
      const input = await server.client.putBlob(Buffer.from('abc\n'));
      const t = await server.client.submitTask(
        task('tr a-z A-Z < /inputs/in.txt > /outputs/upper.txt && mkdir /outputs/d && echo deep > /outputs/d/f', [{ path: '/inputs/in.txt', digest: input.digest }]),
      );
      const job = await eventually(() => server.client.get(t.id), (j) => !['pending', 'scheduled', 'running'].includes(j.status), 60_000);
      expect(job).toMatchObject({ status: 'completed', executedBy: runner.id, outputs: { files: 2 } });
      const dest = tempDir('gridx-runner-out-');
      const manifest = await server.client.downloadOutputs(t.id, dest);
      expect(manifest.files.map((f) => f.path)).toEqual(['d/f', 'upper.txt']);
      expect(fs.readFileSync(path.join(dest, 'upper.txt'), 'utf8')).toBe('ABC\n');
    } finally {
      await runner.stop();
      await server.stop();
    }
  });
});
