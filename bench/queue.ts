/**
 * Queue benchmark: the job store under a no-op workload, against graphile-worker on the
 * same PostgreSQL in the same run, and then the same work through real runners over HTTP.
 *
 *   store:   N jobs submitted while W workers claim (under a lease, through the claim path
 *            production uses: src/scheduler/leases.ts) and complete them; tasks/s from
 *            the first submit to the last completion, and claim latency.
 *            Grid-X on SQLite and on PostgreSQL; graphile-worker (default settings: one job
 *            per fetch, one completion per call) on the same PostgreSQL with concurrency W.
 *            Targets: PostgreSQL ≥ 1.0× graphile-worker; SQLite ≥ 1000 tasks/s.
 *   runners: N tasks POSTed to /api/tasks of a server (slots 0) whose R runners (no-op
 *            executor, each S slots) claim, report start and result over HTTP. Then the
 *            same paid: keys required, each task escrows a reward at submit and pays the
 *            runner's account when it completes (signed results); the ratio paid / free
 *            is what accounts and the ledger cost on this path.
 *   ledger:  the store alone, 16 concurrent callers, one paying account: N inserts without
 *            and with escrow, side by side, and N settlements (payout to the worker).
 *
 *   soak:    (only with --only soak) retention under 20,000 tasks: the events table stops growing.
 *   fleet:   (only with --only fleet) 2 server processes on one PostgreSQL, 8 runner processes.
 *
 * Usage: npm run bench:queue -- [--tasks N] [--workers W] [--rounds K] [--runners R] [--only store|http|ledger|soak|fleet]
 * Needs PostgreSQL: scripts/postgres.sh starts one and prints its URL (or set GRIDX_BENCH_PG).
 */

import '../src/polyfills.js';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Logger as GraphileLogger, makeWorkerUtils, run as runGraphile } from 'graphile-worker';
import pg from 'pg';
import { NODE_FLAGS } from '../src/cli/node-flags.js';
import { loadConfig } from '../src/config/load.js';
import { openTestPostgres } from './test-postgres.js';
import { NoopExecutor } from '../src/executor/noop/noop-executor.js';
import { silentLogger } from '../src/logger.js';
import { Leases } from '../src/scheduler/leases.js';
import { Lifecycle } from '../src/scheduler/lifecycle.js';
import { GridxNode } from '../src/node/node.js';
import { GridxRunner } from '../src/node/runner.js';
import { GridxClient } from '../src/sdk/client.js';
import { PostgresStore } from '../src/store/postgres/postgres-store.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { JobStore } from '../src/store/store.js';
import type { Job, JobSpec } from '../src/domain/job.js';
import { type JobEventMap, TypedEmitter } from '../src/domain/events.js';
import { Accounts } from '../src/ledger/accounts.js';
import { Ledger } from '../src/ledger/ledger.js';
import { EventLog } from '../src/api/event-log.js';
import { flipped, median } from './stats.js';

const SPEC: JobSpec = {
  image: 'bench',
  command: ['true'],
  env: {},
  resources: { cpus: 1, memoryBytes: 64 * 1024 * 1024, gpus: 0 },
  timeoutMs: 10_000,
  network: 'none',
  volumes: [],
};

const { values } = parseArgs({
  options: {
    tasks: { type: 'string', default: '5000' },
    workers: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '3' },
    runners: { type: 'string', default: '4' },
    'runner-slots': { type: 'string', default: '8' },
    'http-tasks': { type: 'string', default: '2000' },
    'soak-tasks': { type: 'string', default: '20000' },
    'fleet-runners': { type: 'string', default: '8' },
    /** The fleet: write each server's and runner's CPU profile (--cpu-prof) into this folder. */
    'cpu-prof': { type: 'string' },
    /** Seconds the soak keeps events. */
    'soak-retention': { type: 'string', default: '10' },
    /** "store", "http", "ledger", or "soak" / "fleet" (run only by name): run only that part. */
    only: { type: 'string' },
  },
});
const N = Number(values.tasks);
const W = Number(values.workers);
const ROUNDS = Number(values.rounds);
const RUNNERS = Number(values.runners);
const RUNNER_SLOTS = Number(values['runner-slots']);
const HTTP_TASKS = Number(values['http-tasks']);
const FLEET_RUNNERS = Number(values['fleet-runners']);

const testPostgres = process.env.GRIDX_BENCH_PG === undefined ? openTestPostgres() : undefined;
const pgUrl = process.env.GRIDX_BENCH_PG ?? testPostgres!.url;
// A server this bench started stops with it, however it ends.
if (testPostgres) process.once('exit', () => testPostgres.stop());

interface Figures {
  tasksPerSec: number;
  claimMs?: { median: number; p99: number };
  /** CPU milliseconds per task, by process kind (the fleet). */
  cpuMsPerTask?: Record<string, number>;
}

/** CPU seconds (user + system) the process `pid` has used, from /proc (Linux); `reaped`: with its exited children's. */
function cpuSecondsOf(pid: number, { reaped = false } = {}): number {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // utime, stime (and cutime, cstime) in clock ticks (USER_HZ = 100)
    return (Number(fields[11]) + Number(fields[12]) + (reaped ? Number(fields[13]) + Number(fields[14]) : 0)) / 100;
  } catch {
    return 0;
  }
}

/** CPU seconds (user + system) this process has used. */
function ownCpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/**
 * CPU seconds used so far by every PostgreSQL process on this machine, and by the backends
 * that have exited (the postmaster's reaped children: a closed pool's connections).
 */
function postgresCpuSeconds(): number {
  let total = 0;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === 'postgres') total += cpuSecondsOf(Number(entry), { reaped: true });
    } catch {
      // gone meanwhile
    }
  }
  return total;
}


function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))]!;
}

function schemaName(prefix: string): string {
  return `${prefix}_${randomUUID().replace(/-/g, '').slice(0, 10)}`;
}

/** W inserters submit N jobs while W workers claim and complete them. */
async function storeRun(store: JobStore): Promise<Figures> {
  let submitted = 0;
  let completed = 0;
  const claimMs: number[] = [];
  // The runner hub's claim (Leases.claimBatch), one job per call as graphile-worker fetches.
  const lifecycle = new Lifecycle({ store, events: new TypedEmitter<JobEventMap>(), log: silentLogger, maxAttempts: 3, retryBackoffMs: 0 });
  const leases = new Leases({
    store,
    lifecycle,
    log: silentLogger,
    leaseTtlMs: 30_000,
    deadlines: { graceMs: 30_000, startWindowMs: 300_000 },
    liveOutput: () => undefined,
  });
  const claimOne = async (): Promise<{ job: Job; lease: string } | undefined> => {
    const [taken] = await leases.claimBatch({ holder: 'bench' }, 1);
    return taken && { job: taken.job, lease: taken.leaseToken };
  };
  const t0 = performance.now();
  const submit = async () => {
    while (submitted < N) {
      submitted++;
      await store.insert({ id: randomUUID(), spec: SPEC });
    }
  };
  const work = async () => {
    while (completed < N) {
      const c0 = performance.now();
      const claimed = await claimOne();
      if (!claimed) {
        await new Promise((r) => setImmediate(r));
        continue;
      }
      claimMs.push(performance.now() - c0);
      const { job, lease } = claimed;
      await store.transition(
        job.id,
        { status: ['scheduled'], executionId: lease },
        { status: 'completed', exitCode: 0, finishedAt: new Date().toISOString(), executionId: null },
      );
      completed++;
    }
  };
  await Promise.all([...Array.from({ length: W }, submit), ...Array.from({ length: W }, work)]);
  const seconds = (performance.now() - t0) / 1000;
  return { tasksPerSec: N / seconds, claimMs: { median: median(claimMs), p99: percentile(claimMs, 0.99) } };
}

async function sqliteRun(): Promise<Figures> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gridx-bench-queue-'));
  const store = new SqliteStore(path.join(dir, 'gridx.db'));
  try {
    return await storeRun(store);
  } finally {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function postgresRun(): Promise<Figures> {
  const schema = schemaName('bench_gridx');
  const store = await PostgresStore.open(pgUrl, { schema, poolSize: 2 * W + 2 });
  try {
    return await storeRun(store);
  } finally {
    await store.close();
    await dropSchema(schema);
  }
}

/** graphile-worker doing the same: W adders, concurrency W, a no-op task. */
async function graphileRun(): Promise<Figures> {
  const schema = schemaName('bench_graphile');
  const utils = await makeWorkerUtils({ connectionString: pgUrl, schema });
  await utils.migrate();
  let completed = 0;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  const runner = await runGraphile({
    connectionString: pgUrl,
    schema,
    concurrency: W,
    maxPoolSize: 2 * W + 2,
    noHandleSignals: true,
    pollInterval: 1000,
    logger: quietGraphileLogger(),
    taskList: { noop: async () => {} },
  });
  runner.events.on('job:success', () => {
    if (++completed === N) resolveDone();
  });
  try {
    let added = 0;
    const t0 = performance.now();
    const add = async () => {
      while (added < N) {
        added++;
        await utils.addJob('noop', {});
      }
    };
    await Promise.all(Array.from({ length: W }, add));
    await done;
    return { tasksPerSec: N / ((performance.now() - t0) / 1000) };
  } finally {
    await runner.stop();
    await utils.release();
    await dropSchema(schema);
  }
}

/** graphile-worker logs every job at info; keep its warnings and errors. */
function quietGraphileLogger(): GraphileLogger {
  return new GraphileLogger(() => (level, message) => {
    if (level === 'error' || level === 'warning') console.error(`graphile-worker: ${message}`);
  });
}

async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: pgUrl });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await client.end();
}

/**
 * N tasks through a server's HTTP API and R runners, all no-op, on the given store;
 * `paid`: with account keys, a reward per task, escrow and payouts.
 */
async function httpRun(db: string | undefined, paid = false): Promise<Figures> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gridx-bench-http-'));
  const config = loadConfig({
    // One client submits everything as fast as it can: the per-caller limits a public server
    // keeps (rate, waiting jobs) are lifted, as an operator would for a trusted bulk submitter.
    flags: {
      dataDir,
      apiPort: 0,
      slots: 0,
      meshEnabled: false,
      rateLimit: 0,
      accountQueued: HTTP_TASKS,
      anonymousQueued: HTTP_TASKS,
      ...(db ? { db } : {}),
      ...(paid ? { auth: 'required' } : {}),
    },
  });
  const server = new GridxNode({ config, log: silentLogger, executor: new NoopExecutor(), detectGpus: false });
  const url = await server.start();
  const payer = paid ? await server.accounts!.create('user', 'bench-payer') : undefined;
  const worker = paid ? await server.accounts!.create('runner', 'bench-worker') : undefined;
  if (payer) await server.ledger!.credit(payer.account.id, BigInt(HTTP_TASKS) * 10n ** 18n, 'bench');
  const runners = await Promise.all(
    Array.from({ length: RUNNERS }, async (_, i) => {
      const runner = new GridxRunner({
        config: loadConfig({ flags: { slots: RUNNER_SLOTS, dataDir: path.join(dataDir, `runner-${i}`) } }),
        serverUrl: url,
        name: `bench-${i}`,
        ...(worker ? { accountKey: worker.key } : {}),
        log: silentLogger,
        executor: () => new NoopExecutor(),
      });
      await runner.start();
      return runner;
    }),
  );
  const client = new GridxClient(url, payer ? { token: payer.key } : {});
  const task = { title: 'noop', config: { command: ['true'] }, environment: { config: { image: 'bench' } }, ...(paid ? { reward: '1' } : {}) };
  let completed = 0;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  server.events.on('job:status', ({ job }) => {
    if (job.status === 'completed' && ++completed === HTTP_TASKS) resolveDone();
  });
  try {
    const t0 = performance.now();
    let sent = 0;
    const post = async () => {
      while (sent < HTTP_TASKS) {
        sent++;
        await client.submitTask(task);
      }
    };
    await Promise.all(Array.from({ length: 16 }, post));
    await done;
    const tasksPerSec = HTTP_TASKS / ((performance.now() - t0) / 1000);
    if (worker) {
      // Every task paid exactly once, or the figure means nothing.
      // (The last payouts settle just after the last completion: give them a moment.)
      const expected = BigInt(HTTP_TASKS) * 10n ** 18n;
      let earned = 0n;
      for (let i = 0; i < 50 && earned !== expected; i++) {
        earned = await server.ledger!.balanceOf(worker.account.id);
        if (earned !== expected) await new Promise((r) => setTimeout(r, 100));
      }
      if (earned !== expected) throw new Error(`the runners earned ${earned}, expected ${expected}`);
    }
    return { tasksPerSec };
  } finally {
    await Promise.all(runners.map((r) => r.stop()));
    await server.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

const fmt = (f: Figures) =>
  `${f.tasksPerSec.toFixed(0).padStart(6)} tasks/s${f.claimMs ? `   claim median ${f.claimMs.median.toFixed(3)} ms, p99 ${f.claimMs.p99.toFixed(3)} ms` : ''}` +
  (f.cpuMsPerTask ? `   CPU per task: ${Object.entries(f.cpuMsPerTask).map(([k, ms]) => `${k} ${ms.toFixed(2)} ms`).join(', ')}` : '');

/**
 * `run` with the CPU this process and PostgreSQL spent per task over it: what the machine
 * pays for a task, and so the most tasks/s its cores could give (2 cores: 2,000 ms a second).
 */
async function withCpu(run: () => Promise<Figures>): Promise<Figures> {
  const [node0, pg0] = [ownCpuSeconds(), postgresCpuSeconds()];
  const figures = await run();
  const perTask = (seconds: number) => (seconds * 1000) / N;
  return { ...figures, cpuMsPerTask: { node: perTask(ownCpuSeconds() - node0), postgres: perTask(postgresCpuSeconds() - pg0) } };
}

if (values.only === undefined || values.only === 'store') {
  console.log(`queue benchmark: ${N} no-op tasks, ${W} workers (and ${W} submitters), ${ROUNDS} rounds, ${os.availableParallelism()} cores`);
  console.log(`PostgreSQL at ${pgUrl.replace(/\/\/[^@]*@/, '//')}`);
  const sqlite: Figures[] = [];
  const postgres: Figures[] = [];
  const graphile: Figures[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    // The order flips each round, so no side always inherits the state another leaves.
    const got: Record<string, Figures> = {};
    for (const [name, run] of flipped([['s', sqliteRun], ['p', postgresRun], ['g', graphileRun]] as const, round - 1)) got[name] = await withCpu(run);
    const [s, p, g] = [got.s!, got.p!, got.g!];
    sqlite.push(s);
    postgres.push(p);
    graphile.push(g);
    console.log(`round ${round}`);
    console.log(`  Grid-X store, SQLite      ${fmt(s)}`);
    console.log(`  Grid-X store, PostgreSQL  ${fmt(p)}`);
    console.log(`  graphile-worker, same PG  ${fmt(g)}`);
    console.log(`  PostgreSQL / graphile-worker: ${(p.tasksPerSec / g.tasksPerSec).toFixed(2)}×`);
  }
  const med = (xs: Figures[]) => median(xs.map((f) => f.tasksPerSec));
  console.log('medians');
  console.log(`  Grid-X SQLite      ${med(sqlite).toFixed(0)} tasks/s (target ≥ 1000), claim median ${median(sqlite.map((f) => f.claimMs!.median)).toFixed(3)} ms`);
  console.log(`  Grid-X PostgreSQL  ${med(postgres).toFixed(0)} tasks/s, claim median ${median(postgres.map((f) => f.claimMs!.median)).toFixed(3)} ms`);
  const cpu = (xs: Figures[]) => median(xs.map((f) => f.cpuMsPerTask!.node! + f.cpuMsPerTask!.postgres!));
  console.log(`  graphile-worker    ${med(graphile).toFixed(0)} tasks/s`);
  console.log(
    `  CPU per task (this process and PostgreSQL): SQLite ${cpu(sqlite).toFixed(2)} ms, PostgreSQL ${cpu(postgres).toFixed(2)} ms, graphile-worker ${cpu(graphile).toFixed(2)} ms` +
      ` (${os.availableParallelism()} cores: at most ${((os.availableParallelism() * 1000) / cpu(graphile)).toFixed(0)} graphile-worker tasks/s)`,
  );
  // The rule of BENCHMARKS.md: the median of the round ratios (sides of one round share the machine's state).
  const ratios = postgres.map((p, i) => p.tasksPerSec / graphile[i]!.tasksPerSec);
  console.log(`  ratio PostgreSQL / graphile-worker, median of the rounds (${ratios.map((r) => r.toFixed(2)).join(' ')}): ${median(ratios).toFixed(2)}× (target ≥ 1.0)`);
}

if (values.only === undefined || values.only === 'http') {
  console.log(`through runners over HTTP: ${HTTP_TASKS} tasks, ${RUNNERS} runners × ${RUNNER_SLOTS} slots, 16 submitters; free, then paid`);
  const pgRun = async (paid: boolean) => {
    const schema = schemaName('bench_http');
    try {
      return await httpRun(`${pgUrl}?schema=${schema}`, paid);
    } finally {
      await dropSchema(schema);
    }
  };
  const paidRatios: Record<string, number[]> = { SQLite: [], PostgreSQL: [] };
  for (let round = 1; round <= ROUNDS; round++) {
    const free: Record<string, Figures> = {};
    const paid: Record<string, Figures> = {};
    // Free and paid side by side on each store, the order flipped each round.
    for (const [store, run] of flipped([['SQLite', (p: boolean) => httpRun(undefined, p)], ['PostgreSQL', pgRun]] as const, round - 1)) {
      for (const isPaid of flipped([false, true], round - 1)) (isPaid ? paid : free)[store] = await run(isPaid);
    }
    console.log(`round ${round}`);
    for (const store of ['SQLite', 'PostgreSQL'] as const) {
      const ratio = paid[store]!.tasksPerSec / free[store]!.tasksPerSec;
      paidRatios[store]!.push(ratio);
      console.log(`  server on ${store.padEnd(10)} free ${fmt(free[store]!)}   paid ${fmt(paid[store]!)}   paid / free ${ratio.toFixed(2)}×`);
    }
  }
  for (const store of ['SQLite', 'PostgreSQL']) console.log(`  median paid / free on ${store}: ${median(paidRatios[store]!).toFixed(2)}×`);
}

/** Inserts without and with escrow (one payer, then one payer per caller), then settlements, on one store: operations per second. */
async function ledgerRun(store: JobStore): Promise<{ free: number; paid: number; paidMany: number; settle: number }> {
  const accounts = new Accounts(store.ledger);
  const ledger = new Ledger({ store, accounts, log: silentLogger, feeBasisPoints: 0 });
  const { account } = await accounts.create('user', 'bench-payer');
  await ledger.credit(account.id, BigInt(N) * 10n ** 18n, 'bench');
  const payers = await Promise.all(Array.from({ length: 16 }, async (_, i) => (await accounts.create('user', `bench-payer-${i}`)).account.id));
  for (const payer of payers) await ledger.credit(payer, BigInt(N) * 10n ** 18n, 'bench');
  const rate = async (fn: (i: number, caller: number) => Promise<unknown>) => {
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: 16 }, async (_, caller) => {
        while (next < N) await fn(next++, caller);
      }),
    );
    return N / ((performance.now() - t0) / 1000);
  };
  const free = await rate((i) => store.insert({ id: `free-${i}`, spec: SPEC }));
  const paid = await rate((i) => store.insert({ id: `paid-${i}`, spec: SPEC, owner: account.id, reward: '1' }, ledger.escrowOf(`paid-${i}`, account.id, '1')));
  const paidMany = await rate((i, caller) =>
    store.insert({ id: `many-${i}`, spec: SPEC, owner: payers[caller]!, reward: '1' }, ledger.escrowOf(`many-${i}`, payers[caller]!, '1')),
  );
  for (let i = 0; i < N; i++) {
    await store.claim(`paid-${i}`, 'bench-node', `exec-${i}`);
    await store.transition(`paid-${i}`, { status: ['scheduled'], executionId: `exec-${i}` }, { status: 'completed', exitCode: 0, executionId: null });
  }
  const ended = await Promise.all(Array.from({ length: N }, (_, i) => store.get(`paid-${i}`)));
  const settle = await rate((i) => ledger.settle(ended[i]!));
  const earned = await ledger.balanceOf('node-bench-node');
  if (earned !== BigInt(N) * 10n ** 18n) throw new Error(`settlement paid ${earned}, expected ${N} credits`);
  return { free, paid, paidMany, settle };
}

if (values.only === undefined || values.only === 'ledger') {
  console.log(`ledger at the store: ${N} inserts free, then paid (escrow in the same transaction) from one payer and from 16, then ${N} settlements; 16 callers`);
  for (let round = 1; round <= ROUNDS; round++) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gridx-bench-ledger-'));
    const sqliteStore = new SqliteStore(path.join(dir, 'gridx.db'));
    const schema = schemaName('bench_ledger');
    const pgStore = await PostgresStore.open(pgUrl, { schema });
    try {
      for (const [name, store] of flipped([['SQLite', sqliteStore], ['PostgreSQL', pgStore]] as const, round - 1)) {
        const r = await ledgerRun(store);
        console.log(
          `  round ${round} ${name.padEnd(10)} insert free ${r.free.toFixed(0).padStart(5)}/s  paid, one payer ${r.paid.toFixed(0).padStart(5)}/s (${(r.paid / r.free).toFixed(2)}×)` +
            `  paid, 16 payers ${r.paidMany.toFixed(0).padStart(5)}/s (${(r.paidMany / r.free).toFixed(2)}×)  settle ${r.settle.toFixed(0).padStart(5)}/s`,
        );
      }
    } finally {
      await sqliteStore.close();
      await pgStore.close();
      await dropSchema(schema);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
}

/**
 * Retention under a soak: --soak-tasks short tasks through the PostgreSQL store (insert,
 * claim, one output chunk, completion: four events each) while the retention duty's prune
 * (EventLog.prune, a retention of --soak-retention seconds) runs every 1,000 tasks; the
 * events table's size (and the database's) is printed as it goes. The events table must
 * stop growing once retention applies; job rows are kept (they are the jobs' history).
 */
if (values.only === 'soak') {
  const tasks = Number(values['soak-tasks']);
  const retentionMs = Number(values['soak-retention']) * 1000;
  const schema = schemaName('bench_soak');
  const store = await PostgresStore.open(pgUrl, { schema, poolSize: 10 });
  const events = new TypedEmitter<JobEventMap>();
  const eventLog = new EventLog(store, events, silentLogger, { ms: retentionMs });
  const lifecycle = new Lifecycle({ store, events, log: silentLogger, maxAttempts: 3, retryBackoffMs: 0 });
  const leases = new Leases({ store, lifecycle, log: silentLogger, leaseTtlMs: 30_000, deadlines: { graceMs: 30_000, startWindowMs: 300_000 }, liveOutput: () => undefined });
  const pool = new pg.Pool({ connectionString: pgUrl, max: 1 });
  const sizes = async () => {
    const { rows } = await pool.query<{ events: string; db: string; n: string }>(
      `SELECT pg_total_relation_size('${schema}.events') AS events, pg_database_size(current_database()) AS db, (SELECT COUNT(*) FROM ${schema}.events) AS n`,
    );
    return { events: Number(rows[0]!.events), db: Number(rows[0]!.db), rows: Number(rows[0]!.n) };
  };
  console.log(`retention soak: ${tasks} tasks on PostgreSQL, events kept ${retentionMs / 1000} s, pruned every 1,000 tasks`);
  const t0 = performance.now();
  try {
    for (let done = 0; done < tasks; ) {
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          for (let k = 0; k < 125; k++) {
            await store.insert({ id: randomUUID(), spec: SPEC });
            // The oldest pending task, this worker's or another's: each worker claims as many as it inserts.
            const [claimed] = await leases.claimBatch({ holder: 'soak' }, 1);
            if (!claimed) continue;
            const id = claimed.job.id;
            await store.appendEvent({ jobId: id, type: 'output', data: { stream: 'stdout', data: 'ok\n' } });
            await store.transition(id, { status: ['scheduled'], executionId: claimed.leaseToken }, { status: 'completed', exitCode: 0, stdout: 'ok\n', executionId: null });
          }
        }),
      );
      done += 1000;
      const pruned = await eventLog.prune();
      const s = await sizes();
      const mib = (b: number) => (b / 2 ** 20).toFixed(1);
      console.log(
        `  ${String(done).padStart(6)} tasks  ${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s  pruned ${String(pruned).padStart(5)}  events ${String(s.rows).padStart(6)} rows ${mib(s.events).padStart(6)} MiB  database ${mib(s.db).padStart(7)} MiB`,
      );
    }
  } finally {
    await pool.end();
    await store.close();
    await dropSchema(schema);
  }
}

/**
 * The fleet (only with --only fleet): 2 `gridx server` processes on one PostgreSQL and
 * --fleet-runners `gridx runner` processes (the no-op executor, GRIDX_BENCH_EXECUTOR=noop,
 * --runner-slots each), half on each server; 16 clients of this process POST --http-tasks
 * tasks to both servers in turn. Free tasks, then paid ones (each escrows 1 and pays the
 * runners' account), each on a fresh schema; tasks/s from the first submit until the store
 * counts them all completed (and, paid, all settled). Target: ≥ 1,000 tasks/s, paid ≥ 0.9× free.
 */
async function fleetRun(paid: boolean): Promise<Figures> {
  const schema = schemaName('bench_fleet');
  const db = `${pgUrl}?schema=${schema}`;
  const store = await PostgresStore.open(pgUrl, { schema });
  const accounts = new Accounts(store.ledger);
  const ledger = new Ledger({ store, accounts, log: silentLogger, feeBasisPoints: 0 });
  const payer = await accounts.create('user', 'bench-payer');
  const worker = await accounts.create('runner', 'bench-worker');
  if (paid) await ledger.credit(payer.account.id, BigInt(HTTP_TASKS) * 10n ** 18n, 'bench');
  const cli = path.resolve('dist/src/cli/main.js');
  const node = [...NODE_FLAGS, ...(values['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(values['cpu-prof'])}`] : [])];
  const env = { ...process.env, GRIDX_RATE_LIMIT: '0', GRIDX_ACCOUNT_QUEUED: String(HTTP_TASKS), GRIDX_MAX_QUEUED: String(HTTP_TASKS), GRIDX_ACCOUNT_RUNNING: '100000', GRIDX_LOG_LEVEL: 'warn' };
  const children: ChildProcess[] = [];
  const started = (child: ChildProcess, ready: RegExp) =>
    new Promise<string>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`did not start:\n${out}`)), 30_000);
      const read = (d: Buffer) => {
        out += d.toString();
        const m = ready.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1] ?? '');
        }
      };
      child.stdout!.on('data', read);
      child.stderr!.on('data', read);
      child.once('exit', () => reject(new Error(`exited:\n${out}`)));
    });
  try {
    const urls: string[] = [];
    for (let i = 0; i < 2; i++) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gridx-bench-fleet-'));
      const child = spawn(process.execPath, [...node, cli, 'server', '--no-mesh', '--slots', '0', '--api-port', '0', '--db', db, '--data-dir', dir], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      urls.push(await started(child, /listening on (http:\/\/\S+)/));
    }
    await Promise.all(
      Array.from({ length: FLEET_RUNNERS }, (_, i) => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gridx-bench-fleet-runner-'));
        const args = [...node, cli, 'runner', '--server', urls[i % 2]!, '--key', worker.key, '--slots', String(RUNNER_SLOTS), '--data-dir', dir, '--name', `r${i}`];
        const child = spawn(process.execPath, args, { env: { ...env, GRIDX_BENCH_EXECUTOR: 'noop' }, stdio: ['ignore', 'pipe', 'pipe'] });
        children.push(child);
        return started(child, /working for/);
      }),
    );
    const clients = urls.map((url) => new GridxClient(url, { token: payer.key }));
    const task = { title: 'noop', config: { command: ['true'] }, environment: { config: { image: 'bench' } }, ...(paid ? { reward: '1' } : {}) };
    const cpu = () => ({
      servers: children.slice(0, 2).reduce((a, c) => a + cpuSecondsOf(c.pid!), 0),
      runners: children.slice(2).reduce((a, c) => a + cpuSecondsOf(c.pid!), 0),
      postgres: postgresCpuSeconds(),
      bench: ownCpuSeconds(),
    });
    const before = cpu();
    const t0 = performance.now();
    let sent = 0;
    await Promise.all(
      Array.from({ length: 16 }, async (_, c) => {
        while (sent < HTTP_TASKS) {
          sent++;
          await clients[c % 2]!.submitTask(task);
        }
      }),
    );
    for (;;) {
      const counts = await store.countByStatus();
      if (counts.completed === HTTP_TASKS && (!paid || (await ledger.balanceOf(worker.account.id)) === BigInt(HTTP_TASKS) * 10n ** 18n)) break;
      if (performance.now() - t0 > 600_000) throw new Error(`fleet: not done after 10 minutes: ${JSON.stringify(counts)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const tasksPerSec = HTTP_TASKS / ((performance.now() - t0) / 1000);
    const after = cpu();
    const cpuMsPerTask = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, ((v - before[k as keyof typeof before]) * 1000) / HTTP_TASKS]));
    return { tasksPerSec, cpuMsPerTask };
  } finally {
    // A profiled process writes its profile when it exits: it gets to stop.
    for (const child of children) child.kill(values['cpu-prof'] ? 'SIGTERM' : 'SIGKILL');
    await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : undefined)));
    await store.close();
    await dropSchema(schema);
  }
}

if (values.only === 'fleet') {
  console.log(`fleet: 2 gridx server processes on one PostgreSQL, ${FLEET_RUNNERS} gridx runner processes × ${RUNNER_SLOTS} slots (no-op executor), ${HTTP_TASKS} tasks from 16 clients; free and paid, ${ROUNDS} rounds`);
  const free: number[] = [];
  const paid: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const got: Record<string, number> = {};
    for (const isPaid of flipped([false, true], round - 1)) {
      const figures = await fleetRun(isPaid);
      got[isPaid ? 'paid' : 'free'] = figures.tasksPerSec;
      const spent = Object.entries(figures.cpuMsPerTask!).map(([k, ms]) => `${k} ${ms.toFixed(2)}`);
      console.log(`    ${isPaid ? 'paid' : 'free'}: CPU ms per task: ${spent.join(', ')}`);
    }
    free.push(got.free!);
    paid.push(got.paid!);
    console.log(`  round ${round}  free ${got.free!.toFixed(0).padStart(5)} tasks/s  paid ${got.paid!.toFixed(0).padStart(5)} tasks/s  paid / free ${(got.paid! / got.free!).toFixed(2)}×`);
  }
  console.log(`  median free ${median(free).toFixed(0)} tasks/s (target ≥ 1000), paid ${median(paid).toFixed(0)} tasks/s, paid / free ${median(paid.map((p, i) => p / free[i]!)).toFixed(2)}× (target ≥ 0.9)`);
}
