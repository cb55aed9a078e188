import { randomUUID } from 'node:crypto';
import { describe, expect, inject, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { LOCAL_IMAGE } from '../../src/executor/docker/engine.js';
import { startTestNode } from '../helpers/node.js';
import { SPEC, claimNext, jobStoreSuite } from '../helpers/store-suite.js';
import { ledgerStoreSuite } from '../helpers/ledger-suite.js';

const url = inject('pgUrl');
const schema = () => `t_${randomUUID().replace(/-/g, '').slice(0, 16)}`;

jobStoreSuite('postgres', () => PostgresStore.open(url, { schema: schema() }));
ledgerStoreSuite('postgres', () => PostgresStore.open(url, { schema: schema() }));

describe('PostgresStore', () => {
  it('two stores on one database never claim the same job twice', async () => {
    const name = schema();
    const [a, b] = await Promise.all([PostgresStore.open(url, { schema: name }), PostgresStore.open(url, { schema: name })]);
    try {
      const ids = Array.from({ length: 200 }, (_, i) => `job-${i}`);
      for (const id of ids) await a.insert({ id, spec: SPEC });
      const claimed: string[] = [];
      const worker = async (store: PostgresStore, node: string) => {
        for (;;) {
          const job = await claimNext(store, node, randomUUID());
          if (!job) return;
          claimed.push(job.id);
        }
      };
      await Promise.all([worker(a, 'a'), worker(b, 'b'), worker(a, 'a2'), worker(b, 'b2')]);
      expect(claimed).toHaveLength(200);
      expect(new Set(claimed).size).toBe(200);
      expect((await a.countByStatus()).scheduled).toBe(200);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('two stores on one database give one account one replica of a task, however their claims race', async () => {
    const name = schema();
    const [a, b] = await Promise.all([PostgresStore.open(url, { schema: name }), PostgresStore.open(url, { schema: name })]);
    try {
      for (let round = 0; round < 5; round++) {
        const ids = Array.from({ length: 9 }, (_, i) => `t${round}-r${i}`);
        await a.insert({ id: `t${round}`, spec: SPEC, replicas: ids.map((id) => ({ id, spec: SPEC, parent: `t${round}` })) });
        const claims = await Promise.all(
          ids.map((id, i) => (i % 2 ? a : b).claim(id, `runner-${i}`, randomUUID(), 10_000, { accountId: 'acct-sybil' })),
        );
        expect(claims.filter(Boolean)).toHaveLength(1);
      }
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('a node keeps its queue and results in PostgreSQL across a restart (--db)', async () => {
    const db = `${url}?schema=${schema()}`;
    const first = await startTestNode({ flags: { db } });
    const done = await first.client.submit({ image: LOCAL_IMAGE, command: 'echo on postgres' });
    expect(done).toMatchObject({ status: 'completed', stdout: 'on postgres\n' });
    await first.stop();
    const second = await startTestNode({ flags: { db } });
    try {
      expect(await second.client.get(done.id)).toMatchObject({ status: 'completed', stdout: 'on postgres\n' });
      expect((await second.client.list()).jobs.map((j) => j.id)).toEqual([done.id]);
    } finally {
      await second.stop();
    }
  });
});
