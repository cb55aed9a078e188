import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { describe, expect, inject, it, vi } from 'vitest';
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

  it('never lets a cursor pass an event whose transaction commits late, and wakes every store on the database', async () => {
    const name = schema();
    const [a, b] = await Promise.all([PostgresStore.open(url, { schema: name }), PostgresStore.open(url, { schema: name })]);
    const slow = new pg.Client({ connectionString: url, options: `-c search_path=${name}` });
    await slow.connect();
    try {
      let woken = 0;
      b.onEvents(() => woken++);
      await new Promise((r) => setTimeout(r, 200)); // b's LISTEN is up
      // A writer takes its transaction id and event first, and commits last.
      await slow.query('BEGIN');
      await slow.query(`INSERT INTO events (job_id, type, data, at) VALUES ('late', 'output', '{"stream":"stdout","data":"late"}', now()::text)`);
      const early = await a.appendEvent({ jobId: 'early', type: 'output', data: { stream: 'stdout', data: 'early' } });
      // The early event committed, but a reader must not pass the one still in flight below it.
      expect(await b.eventsSince(0)).toEqual([]);
      expect(await b.eventHead()).toBe(0);
      await slow.query('COMMIT');
      const seen = await b.eventsSince(0);
      expect(seen.map((e) => e.jobId)).toEqual(['late', 'early']);
      expect(seen[1]!.seq).toBe(early.seq);
      await expect.poll(() => woken, { timeout: 2000 }).toBeGreaterThan(0);
    } finally {
      await slow.end();
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('compares leases in the database clock: a process whose clock is 5 minutes off neither steals nor keeps them', async () => {
    const name = schema();
    const honest = await PostgresStore.open(url, { schema: name });
    const realNow = Date.now.bind(Date);
    const skew = vi.spyOn(Date, 'now');
    try {
      skew.mockImplementation(() => realNow() + 5 * 60_000);
      const fast = await PostgresStore.open(url, { schema: name });
      // Its clock is 5 minutes fast; the store's clock is the database's.
      expect(Math.abs(fast.now() - realNow())).toBeLessThan(1000);
      await honest.insert({ id: 'live', spec: SPEC });
      await claimNext(honest, 'holder', 'lease-live', 60_000);
      expect(await fast.expiredLeases(10)).toEqual([]); // a fast clock steals nothing
      skew.mockImplementation(() => realNow() - 5 * 60_000);
      await fast.insert({ id: 'dead', spec: SPEC });
      await claimNext(fast, 'slow-holder', 'lease-dead', 100);
      await new Promise((r) => setTimeout(r, 150));
      // A slow clock keeps nothing past its time: neither its own renewal nor anyone's sweep is fooled.
      expect(await fast.renewLeases(['lease-dead'], 60_000)).toEqual([]);
      expect((await honest.expiredLeases(10)).map((j) => j.id)).toEqual(['dead']);
      await fast.close();
    } finally {
      skew.mockRestore();
      await honest.close();
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

describe('the statements the store sends', () => {
  it('survive another server adding a column under a prepared SELECT * (a fleet upgrading one server at a time)', async () => {
    const name = schema();
    const store = await PostgresStore.open(url, { schema: name, poolSize: 1 });
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      await store.insert({ id: 'a', spec: SPEC });
      for (let i = 0; i < 3; i++) expect((await store.get('a'))?.id).toBe('a');
      await admin.query(`ALTER TABLE ${name}.jobs ADD COLUMN added_by_a_newer_server TEXT`);
      expect((await store.get('a'))?.id).toBe('a');
      expect((await store.get('a'))?.id).toBe('a');
    } finally {
      await admin.end();
      await store.close();
    }
  });

  it('are prepared once per connection, named by their text; those without parameters run as they are', async () => {
    const { PreparingClient, statementName } = await import('../../src/store/postgres/prepared-client.js');
    expect(statementName('SELECT $1::int')).toBe(statementName('SELECT $1::int'));
    expect(statementName('SELECT $1::int')).not.toBe(statementName('SELECT $1::bigint'));
    const client: pg.Client = new PreparingClient({ connectionString: url });
    await client.connect();
    try {
      for (let i = 0; i < 3; i++) expect((await client.query<{ n: number }>('SELECT $1::int + 1 AS n', [i])).rows[0]!.n).toBe(i + 1);
      await client.query('SELECT 1');
      const { rows } = await client.query<{ name: string; statement: string }>('SELECT name, statement FROM pg_prepared_statements');
      expect(rows).toEqual([{ name: statementName('SELECT $1::int + 1 AS n'), statement: 'SELECT $1::int + 1 AS n' }]);
    } finally {
      await client.end();
    }
  });
});
