/**
 * Hostile user: another account, or nobody, looking at what is not theirs; and inputs
 * sized to make the node echo them back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newSigningKeys } from '../../src/domain/result-digest.js';
import { NoopExecutor } from '../../src/executor/noop/noop-executor.js';
import { fundedAccount, startTestNode, type TestNode } from '../helpers/node.js';

let t: TestNode;
beforeAll(async () => {
  t = await startTestNode({ executor: new NoopExecutor({ output: 'secret output\n' }), env: { GRIDX_AUTH: 'required' } });
});
afterAll(() => t.stop());

describe('strangers see that a job exists and its status, nothing more', () => {
  it('another account and an anonymous caller see id and status only, in both dialects', async () => {
    const owner = await fundedAccount(t, '10', { name: 'owner' });
    const other = await fundedAccount(t, '10', { name: 'other' });
    const job = await owner.client.submit({ image: 'secret/image:1', command: 'echo the-command', env: { TOKEN: 'hunter2' }, title: 'secret title' } as never);
    expect(job.status).toBe('completed');
    const { id } = job;
    for (const headers of [{ authorization: `Bearer ${other.key}` }, {}]) {
      for (const url of [`/jobs/${id}`, `/api/tasks/${id}`]) {
        const res = await t.node.http.inject({ method: 'GET', url, headers });
        expect(res.statusCode, url).toBe(200);
        expect(res.json(), url).toEqual({ id, status: 'completed' });
      }
      const listed = await t.node.http.inject({ method: 'GET', url: '/api/tasks', headers });
      expect(listed.body).not.toContain('secret');
    }
    const mine = await t.node.http.inject({ method: 'GET', url: `/api/tasks/${id}`, headers: { authorization: `Bearer ${owner.key}` } });
    expect(mine.json()).toMatchObject({ title: 'secret title', environment: { config: { image: 'secret/image:1', env: ['TOKEN=hunter2'] } } });
  });

  it('runners show their account to that account only', async () => {
    const owner = await fundedAccount(t, '0', { kind: 'runner', name: 'runner-owner' });
    const keys = newSigningKeys();
    const reg = await t.node.http.inject({
      method: 'POST',
      url: '/api/runners',
      headers: { authorization: `Bearer ${owner.key}` },
      payload: { name: 'r1', slots: 1, public_key: keys.publicKey },
    });
    expect(reg.statusCode).toBe(201);
    expect(reg.json().account_id).toBe(owner.id);
    const anonymous = await t.node.http.inject({ method: 'GET', url: '/api/runners' });
    expect(anonymous.json().runners).toHaveLength(1);
    expect(anonymous.body).not.toContain(owner.id);
    const stranger = await fundedAccount(t, '0', { name: 'stranger' });
    expect((await t.node.http.inject({ method: 'GET', url: '/api/runners', headers: { authorization: `Bearer ${stranger.key}` } })).body).not.toContain(owner.id);
    const self = await t.node.http.inject({ method: 'GET', url: '/api/runners', headers: { authorization: `Bearer ${owner.key}` } });
    expect(self.json().runners[0].account_id).toBe(owner.id);
  });

  it('a user account cannot register a runner (a runner reads the specs of the jobs it claims)', async () => {
    const user = await fundedAccount(t, '0', { name: 'curious' });
    const res = await t.node.http.inject({
      method: 'POST',
      url: '/api/runners',
      headers: { authorization: `Bearer ${user.key}` },
      payload: { name: 'spy', slots: 64, public_key: newSigningKeys().publicKey },
    });
    expect(res.statusCode).toBe(403);
    expect(res.json().error).toContain('--kind runner');
  });
});

describe('errors quote at most 200 characters of what was sent', () => {
  it('a 100 KB path, image, amount or id comes back clipped', async () => {
    const { key } = await fundedAccount(t, '10', { name: 'big' });
    const auth = { authorization: `Bearer ${key}` };
    const big = 'a'.repeat(100_000);
    const answers = [
      await t.node.http.inject({ method: 'GET', url: `/${big}` }),
      await t.node.http.inject({ method: 'POST', url: '/job', headers: auth, payload: { image: `${big}!`, command: 'true' } }),
      await t.node.http.inject({ method: 'POST', url: '/job', headers: auth, payload: { image: 'x', command: 'true', reward: big } }),
      await t.node.http.inject({ method: 'POST', url: '/job', headers: auth, payload: { image: 'x', command: 'true', env: { [`${big}-`]: 'v' } } }),
      await t.node.http.inject({ method: 'POST', url: '/job', headers: auth, payload: { image: 'x', command: 'true', timeout: big } }),
      await t.node.http.inject({ method: 'GET', url: `/jobs/${big}` }),
    ];
    for (const res of answers) {
      expect(res.statusCode).toBeGreaterThanOrEqual(400);
      expect(res.statusCode).toBeLessThan(500);
      expect(res.body.length, res.body.slice(0, 300)).toBeLessThan(600);
    }
  });
});
