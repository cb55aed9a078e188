/**
 * A hostile runner, through files: it holds a lease on its accomplice's job and tries to
 * turn that into someone else's blob, or into unbounded storage on the server.
 */

import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf, manifestOf } from '../../src/domain/data.js';
import type { ExecutionResult } from '../../src/domain/job.js';
import { newSigningKeys } from '../../src/domain/result-digest.js';
import { NoopExecutor } from '../../src/executor/noop/noop-executor.js';
import { RunnerClient } from '../../src/sdk/runner-client.js';
import { errorOf, okResult } from '../helpers/fixtures.js';
import { type TestNode, startTestNode, tempDir } from '../helpers/node.js';

const TASK = {
  title: 'accomplice',
  type: 'docker' as const,
  config: { command: ['true'] },
  environment: { type: 'docker' as const, config: { image: 'gridx/busybox:local' } },
};

describe('a hostile runner and its accomplice (in-process server)', () => {
  let s: TestNode;
  let runner: RunnerClient;
  beforeAll(async () => {
    s = await startTestNode({ flags: { slots: 0 }, env: { GRIDX_OUTPUTS_SIZE: '1m' }, executor: new NoopExecutor() });
    const keys = newSigningKeys();
    const reg = await new RunnerClient(s.url).register({ name: 'hostile', slots: 4, public_key: keys.publicKey });
    runner = new RunnerClient(s.url, reg.id, reg.token, keys.privateKeyPem);
  });
  afterAll(async () => {
    await s?.stop();
  });

  it("cannot name another user's blob in a result to hand it to its accomplice", async () => {
    // On an open node a blob uploaded without a key is anyone's; what matters here is that
    // the runner never uploaded it under its lease.
    const secret = Buffer.from('the victim keeps this');
    const victim = await s.client.putBlob(secret);
    const task = await s.client.submitTask(TASK);
    const [claimed] = await runner.claim(1, 0);
    const result: ExecutionResult = { ...okResult(''), outputs: manifestOf([{ path: 'loot', size: secret.length, sha256: victim.digest }], false) };
    expect(await errorOf(runner.result(claimed!.lease_token, task.id, result))).toMatchObject({ code: 'CONFLICT' });
    expect((await s.client.get(task.id)).status).not.toBe('completed');
    await runner.release(claimed!.lease_token, 'done probing');
  });

  it("cannot store more under a lease than the server's runner.docker.outputs_size", async () => {
    const task = await s.client.submitTask(TASK);
    const [claimed] = await runner.claim(1, 0);
    expect(claimed?.job_id).toBe(task.id);
    const dir = tempDir('gridx-hostile-runner-');
    const upload = (i: number) => {
      const file = path.join(dir, `chunk${i}`);
      const bytes = Buffer.alloc(400 * 1024, i);
      fs.writeFileSync(file, bytes);
      return runner.putOutput(claimed!.lease_token, file, digestOf(bytes));
    };
    await upload(1);
    await upload(2);
    expect(await errorOf(upload(3))).toMatchObject({ code: 'BODY_TOO_LARGE' });
    // Refused whole: the store keeps nothing of the third file.
    const third = digestOf(Buffer.alloc(400 * 1024, 3));
    expect((await fetch(`${s.url}/blobs/${third}`)).status).toBe(404);
    await runner.release(claimed!.lease_token, 'done probing');
  });
});
