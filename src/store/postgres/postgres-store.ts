/**
 * The JobStore on PostgreSQL, for servers at scale. Same contract and shared test suite
 * as SQLite; claims take the row with FOR UPDATE SKIP LOCKED, so several processes on
 * one database never hand out the same job twice. Leases, backoffs and deadlines are
 * compared in the database's clock (gridx_now_ms()). Each change of status writes its
 * event in the same statement; events are read in commit order up to the oldest
 * transaction still in flight (see the migration that adds events.pos), and every
 * server is woken to read them by a NOTIFY that carries nothing it depends on (only the
 * sender's name, so that a store skips its own: it woke its readers when it wrote).
 */

import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { PreparingClient } from './prepared-client.js';
import { type Job, type JobStatus, JOB_STATUSES, isTerminal } from '../../domain/job.js';
import { invalid } from '../../errors.js';
import {
  CLAIM_SPAN,
  MAX_BATCH_CLAIM,
  type ClaimTerms,
  type ExecutionRecord,
  type Expectation,
  type JobPage,
  type JobPatch,
  type JobStore,
  type ListOptions,
  type NextClaim,
  type NextClaimed,
  type NewJob,
  type OwnerLoad,
  type PendingFilter,
  type RunnerRecord,
  type RunnerSummary,
  type StoredEvent,
} from '../store.js';
import {
  type EventRow,
  type ExecutionRow,
  type JobRow,
  LIST_RUNNERS_SQL,
  patchColumns,
  type RunnerRow,
  SUMMARY_COLUMNS,
  settledAt,
  toEvent,
  toExecution,
  toJob,
  toRunner,
} from '../rows.js';
import { migrate } from './migrations.js';
import { PostgresLedger, transferWire } from './postgres-ledger.js';
import type { Transfer } from '../ledger-store.js';

const MAX_PAGE = 500;
const DEFAULT_PAGE = 50;
/** How often the offset between this process's clock and the database's is measured again. */
const CLOCK_EVERY_MS = 30_000;
/** NOTIFYs from one process are coalesced over this window: a commit burst wakes readers once. */
const NOTIFY_COALESCE_MS = 5;
/** Wait before a lost LISTEN connection is opened again. */
const LISTEN_RETRY_MS = 500;
/** The oldest cursor no reader may pass yet: below every transaction still in flight. */
const HORIZON = '(SELECT pg_snapshot_xmin(pg_current_snapshot())::text::BIGINT << 12)';
/** A status event's data: the job row `alias` names in the statement, less its output. */
const eventRow = (alias: string) => `jsonb_build_object('job', to_jsonb(${alias}) - 'stdout' - 'stderr')`;

export interface PostgresStoreOptions {
  /** Schema to keep the tables in (created if absent); default "public". */
  schema?: string;
  poolSize?: number;
}

export class PostgresStore implements JobStore {
  readonly ledger: PostgresLedger;
  /** The database's clock minus this process's, in ms. */
  private clockOffsetMs = 0;
  private clockTimer?: NodeJS.Timeout;
  private readonly listeners = new Set<() => void>();
  private listener?: pg.Client;
  private notifyTimer?: NodeJS.Timeout;
  private closed = false;
  /** Names this store in its NOTIFYs: it has woken its own readers already and skips its own. */
  private readonly instance = randomUUID();

  private constructor(
    private readonly pool: pg.Pool,
    private readonly schema: string,
    private readonly url: string,
  ) {
    this.ledger = new PostgresLedger(pool);
  }

  private get channel(): string {
    return `gridx_events_${this.schema}`;
  }

  /** Connects, creates the schema if needed and runs the migrations. */
  static async open(url: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const schema = options.schema ?? 'public';
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw invalid('schema', 'must be a lowercase SQL identifier');
    const pool = new pg.Pool({ Client: PreparingClient, connectionString: url, max: options.poolSize ?? 10, options: `-c search_path=${schema}` });
    // An idle connection the server dropped (a restart): the pool discards it and opens
    // another on the next query; the queries in flight failed, and their callers retry.
    pool.on('error', () => {});
    const store = new PostgresStore(pool, schema, url);
    await migrate(pool, schema);
    await store.measureClock();
    store.clockTimer = setInterval(() => void store.measureClock().catch(() => {}), CLOCK_EVERY_MS);
    store.clockTimer.unref();
    return store;
  }

  now(): number {
    return Date.now() + this.clockOffsetMs;
  }

  /** The database's clock against ours, taken at the midpoint of a round trip. */
  private async measureClock(): Promise<void> {
    const before = Date.now();
    const { rows } = await this.pool.query<{ ms: string }>('SELECT gridx_now_ms() AS ms');
    const after = Date.now();
    this.clockOffsetMs = Math.round(Number(rows[0]!.ms) - (before + after) / 2);
  }


  async insert(job: NewJob, escrow?: Transfer): Promise<Job> {
    const at = now();
    if (!job.replicas) {
      // The common case in one statement: the job, its event and its escrow (gridx_post
      // raises when the payer cannot pay, and then nothing is written).
      const { rows } = await this.ledger.errorsOf(() =>
        this.pool.query<JobRow>(
          `WITH added AS (
             INSERT INTO jobs (id, status, spec, title, created_at, updated_at, attempts, pinned, origin, description, reward, owner, parent, settled_at)
             VALUES ($1, 'pending', $2, $3, $4, $4, 0, $5, $6, $7, $8, $9, $10, $11) RETURNING *),
           event AS (INSERT INTO events (job_id, type, data, at, owner) SELECT id, 'status', ${eventRow('added')}, $4, owner FROM added)
           ${escrow ? ', escrow AS (SELECT COUNT(*) AS n FROM gridx_post($12::jsonb, NULL, $4)) SELECT added.* FROM added, escrow' : 'SELECT * FROM added'}`,
          [job.id, JSON.stringify(job.spec), job.title ?? null, at, job.pinned ?? false, job.origin ?? null, job.description ?? null,
            job.reward ?? null, job.owner ?? null, job.parent ?? null, settledAt(job, escrow, at), ...(escrow ? [JSON.stringify([transferWire(escrow)])] : [])],
        ),
      );
      this.appended();
      return toJob(rows[0]!);
    }
    const client = await this.pool.connect();
    const add = (j: NewJob, status: 'pending' | 'running', parent: string | null) =>
      client.query<JobRow>(
        `INSERT INTO jobs (id, status, spec, title, created_at, updated_at, started_at, attempts, pinned, origin, description, reward,
           owner, parent, replicas, settled_at)
         VALUES ($1, $2, $3, $4, $5, $5, $6, 0, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING *`,
        [j.id, status, JSON.stringify(j.spec), j.title ?? null, at, status === 'running' ? at : null, j.pinned ?? false, j.origin ?? null,
          j.description ?? null, j.reward ?? null, j.owner ?? null, parent, j.replicas?.length ?? null, settledAt(j, escrow, at)],
      );
    try {
      await client.query('BEGIN');
      const { rows } = await add(job, job.replicas ? 'running' : 'pending', job.parent ?? null);
      for (const child of job.replicas ?? []) await add(child, 'pending', job.id);
      await client.query(`INSERT INTO events (job_id, type, data, at, owner) SELECT id, 'status', ${eventRow('jobs')}, $2, owner FROM jobs WHERE id = $1`, [job.id, at]);
      // The reward leaves the owner's balance in the same transaction: no task without its
      // escrow. Last, so the balance rows it locks are held only until the commit.
      if (escrow) await this.ledger.postWith(client, [escrow]);
      await client.query('COMMIT');
      this.appended();
      return toJob(rows[0]!);
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  async get(id: string): Promise<Job | undefined> {
    const { rows } = await this.pool.query<JobRow>('SELECT * FROM jobs WHERE id = $1', [id]);
    return rows[0] && toJob(rows[0]);
  }

  async list(options: ListOptions = {}): Promise<JobPage> {
    const limit = Math.min(Math.max(options.limit ?? DEFAULT_PAGE, 1), MAX_PAGE);
    const where: string[] = [];
    const params: unknown[] = [];
    if (options.status) {
      params.push(options.status);
      where.push(`status = $${params.length}`);
    }
    if (options.viewer === null) where.push('owner IS NULL');
    else if (options.viewer !== undefined) {
      params.push(options.viewer);
      where.push(`(owner IS NULL OR owner = $${params.length})`);
    }
    if (options.cursor !== undefined) {
      if (!/^\d+$/.test(options.cursor)) throw invalid('cursor', 'is not a cursor this node handed out');
      params.push(options.cursor);
      where.push(`seq < $${params.length}`);
    }
    params.push(limit + 1);
    const { rows } = await this.pool.query<JobRow>(
      `SELECT ${SUMMARY_COLUMNS} FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT $${params.length}`,
      params,
    );
    const page = rows.slice(0, limit);
    return { jobs: page.map(toJob), ...(rows.length > limit ? { nextCursor: String(page.at(-1)!.seq) } : {}) };
  }

  async withStatus(statuses: readonly JobStatus[], limit?: number): Promise<Job[]> {
    if (statuses.length === 0) return [];
    const { rows } = await this.pool.query<JobRow>(
      `SELECT * FROM jobs WHERE status = ANY($1) ORDER BY seq ASC ${limit === undefined ? '' : 'LIMIT $2'}`,
      limit === undefined ? [statuses] : [statuses, limit],
    );
    return rows.map(toJob);
  }

  async countByStatus(): Promise<Record<JobStatus, number>> {
    const counts = Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as Record<JobStatus, number>;
    const { rows } = await this.pool.query<{ status: JobStatus; n: string }>('SELECT status, COUNT(*) AS n FROM jobs GROUP BY status');
    for (const row of rows) counts[row.status] = Number(row.n);
    return counts;
  }

  async pendingByOwner(): Promise<Map<string | null, number>> {
    const { rows } = await this.pool.query<{ owner: string | null; n: string }>(`SELECT owner, COUNT(*) AS n FROM jobs WHERE status = 'pending' GROUP BY owner`);
    return new Map(rows.map((r) => [r.owner, Number(r.n)]));
  }

  async pendingReady(limit: number, skip: PendingFilter = {}): Promise<Job[]> {
    const { rows } = await this.pool.query<JobRow>(
      `SELECT * FROM jobs WHERE status = 'pending' AND (not_before IS NULL OR not_before <= gridx_now_ms())
       AND (owner IS NOT NULL OR NOT $2) AND (owner IS NULL OR owner <> ALL($3::text[]))
       ORDER BY seq ASC LIMIT $1`,
      [limit, skip.skipAnonymous ?? false, [...(skip.skipOwners ?? [])]],
    );
    return rows.map(toJob);
  }

  async heldByOwner(): Promise<OwnerLoad[]> {
    const { rows } = await this.pool.query<{ owner: string | null; held: string }>(
      `SELECT owner, COUNT(*) AS held FROM jobs WHERE status IN ('scheduled', 'running') AND execution_id IS NOT NULL
       GROUP BY owner`,
    );
    return rows.map((r) => (r.owner === null ? { held: Number(r.held) } : { owner: r.owner, held: Number(r.held) }));
  }

  /**
   * One statement, so one round trip: lock, lease and record the execution atomically. A
   * replica also reserves its account in replica_workers: the insert either takes the
   * (task, account) key or finds it held for this same replica; a key held for another
   * replica (even by a claim on another server not yet committed, which it waits for)
   * leaves the job unclaimed.
   */
  async claim(id: string, nodeId: string, executionId: string, leaseTtlMs?: number, terms: ClaimTerms = {}): Promise<Job | undefined> {
    const at = now();
    const params = [executionId, nodeId, at, leaseTtlMs ?? null, id, terms.accountId ?? null, terms.deadlineAt ?? null];
    const { rows } = await this.pool.query<JobRow>(
      `WITH next AS (
         SELECT id, parent FROM jobs WHERE status = 'pending' AND id = $5
         AND (parent IS NULL OR ($6::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM replica_workers w
           WHERE w.parent = jobs.parent AND w.account_id = $6 AND w.job_id <> jobs.id)))
         FOR UPDATE SKIP LOCKED),
       reserved AS (
         INSERT INTO replica_workers (parent, account_id, job_id)
         SELECT parent, $6, id FROM next WHERE parent IS NOT NULL
         ON CONFLICT (parent, account_id) DO UPDATE SET job_id = EXCLUDED.job_id
           WHERE replica_workers.job_id = EXCLUDED.job_id
         RETURNING job_id),
       claimed AS (
         UPDATE jobs SET status = 'scheduled', execution_id = $1, attempts = jobs.attempts + 1, executed_by = $2,
           updated_at = $3, lease_expires_at = gridx_now_ms() + $4::BIGINT, not_before = NULL, deadline_at = $7
         FROM next WHERE jobs.id = next.id AND (next.parent IS NULL OR EXISTS (SELECT 1 FROM reserved))
         RETURNING jobs.*),
       execution AS (
         INSERT INTO executions (id, job_id, attempt, node_id, status, started_at)
         SELECT $1, id, attempts, $2, 'running', $3 FROM claimed),
       event AS (
         INSERT INTO events (job_id, type, data, at, owner) SELECT id, 'status', ${eventRow('claimed')}, $3, owner FROM claimed)
       SELECT * FROM claimed`,
      params,
    );
    if (rows[0]) this.appended();
    return rows[0] && toJob(rows[0]);
  }

  /**
   * One statement, so one round trip: locks the window of the queue (the jobs that fit,
   * passing over what other claims hold), keeps what the owners' room allows (next-claim.ts
   * says the same for SQLite), leases the first `max`, and records their executions and
   * events; it also returns the fitting replicas and how many jobs were eligible. The
   * window is locked where it is read, on the pending index in queue order: a plan that
   * joins candidates back to the table is at the mercy of statistics that lag a queue
   * growing from empty (a generic plan made then walked every pending job per claim).
   */
  async claimNext(query: NextClaim): Promise<NextClaimed> {
    if (query.max > MAX_BATCH_CLAIM) throw new Error(`bug: a batch claim takes at most ${MAX_BATCH_CLAIM} jobs`);
    const { limits, room } = query;
    const unbounded = 2 ** 31 - 1;
    const { rows } = await this.pool.query<JobRow & { replica: boolean | null; eligible: string }>(
      `WITH head AS (SELECT seq FROM jobs WHERE status = 'pending' ORDER BY seq LIMIT 1),
       win AS (
         SELECT id, seq, owner, parent, (spec->>'timeoutMs')::BIGINT AS timeout_ms FROM jobs
         WHERE status = 'pending' AND seq < (SELECT seq FROM head) + $21::BIGINT
           AND (not_before IS NULL OR not_before <= gridx_now_ms())
           AND (owner IS NOT NULL OR NOT $2) AND (owner IS NULL OR owner <> ALL($3::text[]))
           AND (parent IS NULL OR $14) AND (NOT $9 OR (NOT pinned AND jsonb_array_length(spec->'volumes') = 0))
           AND ($4::float8 IS NULL OR ((spec->'resources'->>'cpus')::float8 <= $4::float8
             AND (spec->'resources'->>'memoryBytes')::float8 <= $5::float8 AND (spec->'resources'->>'gpus')::float8 <= $6::float8
             AND (spec->>'timeoutMs')::float8 <= $7::float8 AND spec->>'network' = ANY($8::text[])))
         ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED),
       eligible AS (
         SELECT counted.* FROM (SELECT win.*, ROW_NUMBER() OVER (PARTITION BY owner ORDER BY seq) AS n FROM win) AS counted
         LEFT JOIN unnest($10::text[], $11::int[]) AS room (owner, n) ON room.owner = counted.owner
         WHERE counted.n <= COALESCE(room.n, CASE WHEN counted.owner IS NULL THEN $13::int ELSE $12::int END)),
       next AS (SELECT id, timeout_ms FROM eligible WHERE parent IS NULL ORDER BY seq LIMIT $15),
       claimed AS (
         UPDATE jobs SET status = 'scheduled', execution_id = gen_random_uuid()::text, attempts = jobs.attempts + 1,
           executed_by = $16, updated_at = $17, lease_expires_at = gridx_now_ms() + $18::BIGINT, not_before = NULL,
           deadline_at = gridx_now_ms() + $19::BIGINT + next.timeout_ms + $20::BIGINT
         FROM next WHERE jobs.id = next.id RETURNING jobs.*),
       execution AS (
         INSERT INTO executions (id, job_id, attempt, node_id, status, started_at)
         SELECT execution_id, id, attempts, $16, 'running', $17 FROM claimed),
       event AS (
         INSERT INTO events (pos, job_id, type, data, at, owner)
         SELECT (pg_current_xact_id()::text::BIGINT << 12) + ROW_NUMBER() OVER () - 1, id, 'status', ${eventRow('claimed')}, $17, owner
         FROM claimed)
       SELECT taken.*, (SELECT COUNT(*) FROM eligible WHERE parent IS NULL) AS eligible
       FROM (SELECT 1) AS one LEFT JOIN (
         SELECT claimed.*, FALSE AS replica FROM claimed
         UNION ALL SELECT jobs.*, TRUE FROM jobs JOIN eligible ON eligible.id = jobs.id WHERE eligible.parent IS NOT NULL
       ) AS taken ON TRUE
       ORDER BY taken.seq`,
      [
        query.window,
        query.skip?.skipAnonymous ?? false,
        [...(query.skip?.skipOwners ?? [])],
        limits?.cpus ?? null,
        limits?.memoryBytes ?? null,
        limits?.gpus ?? null,
        limits?.timeoutMs ?? null,
        limits?.networks ?? null,
        query.portableOnly ?? false,
        room ? [...room.owners.keys()] : [],
        room ? [...room.owners.values()] : [],
        Math.min(room?.others ?? unbounded, unbounded),
        Math.min(room?.anonymous ?? unbounded, unbounded),
        query.replicas ?? false,
        query.max,
        query.nodeId,
        now(),
        query.leaseTtlMs,
        query.deadlines.startWindowMs,
        query.deadlines.graceMs,
        CLAIM_SPAN,
      ],
    );
    const jobs = rows.filter((r) => r.id !== null);
    const claimed = jobs.filter((r) => !r.replica).map(toJob);
    if (claimed.length > 0) this.appended();
    return { claimed, replicas: jobs.filter((r) => r.replica).map(toJob), eligible: Number(rows[0]?.eligible ?? 0) };
  }

  async renewLeases(executionIds: readonly string[], ttlMs: number, holder?: string): Promise<string[]> {
    if (executionIds.length === 0) return [];
    const { rows } = await this.pool.query<{ execution_id: string }>(
      `UPDATE jobs SET lease_expires_at = gridx_now_ms() + $1::BIGINT WHERE execution_id = ANY($2)
       AND status IN ('scheduled', 'running') AND lease_expires_at > gridx_now_ms()
       ${holder === undefined ? '' : 'AND executed_by = $3'} RETURNING execution_id`,
      holder === undefined ? [ttlMs, [...executionIds]] : [ttlMs, [...executionIds], holder],
    );
    return rows.map((r) => r.execution_id);
  }

  async expiredLeases(limit: number): Promise<Job[]> {
    const { rows } = await this.pool.query<JobRow>(
      `SELECT * FROM jobs WHERE lease_expires_at <= gridx_now_ms() AND status IN ('scheduled', 'running')
       ORDER BY lease_expires_at ASC LIMIT $1`,
      [limit],
    );
    return rows.map(toJob);
  }

  async overdue(limit: number): Promise<Job[]> {
    const { rows } = await this.pool.query<JobRow>(
      `SELECT * FROM jobs WHERE deadline_at <= gridx_now_ms() AND status IN ('scheduled', 'running') ORDER BY deadline_at ASC LIMIT $1`,
      [limit],
    );
    return rows.map(toJob);
  }

  async execution(id: string): Promise<ExecutionRecord | undefined> {
    const { rows } = await this.pool.query<ExecutionRow>('SELECT * FROM executions WHERE id = $1', [id]);
    return rows[0] && toExecution(rows[0]);
  }

  /** One statement: the conditional update and, when the attempt ends, its execution record. */
  async transition(id: string, expect: Expectation, patch: JobPatch): Promise<Job | undefined> {
    const params: unknown[] = [patch.status, now()];
    const sets = ['status = $1', 'updated_at = $2'];
    const set = (column: string, value: unknown) => {
      if (value === undefined) return;
      params.push(value);
      sets.push(`${column} = $${params.length}`);
    };
    for (const [column, value] of patchColumns(patch)) set(column, value);
    // Leaving scheduled/running ends the lease and its deadline.
    if (patch.status !== 'scheduled' && patch.status !== 'running') sets.push('lease_expires_at = NULL', 'deadline_at = NULL');
    params.push(id, [...expect.status]);
    let where = `id = $${params.length - 1} AND status = ANY($${params.length})`;
    let lease = 0;
    if (expect.executionId !== undefined) {
      params.push(expect.executionId);
      lease = params.length;
      where += ` AND execution_id = $${lease}`;
    }
    if (expect.leaseExpired) where += ' AND lease_expires_at <= gridx_now_ms()';
    if (expect.deadlinePassed) where += ' AND deadline_at <= gridx_now_ms()';
    // The change and its event, in one statement.
    params.push(isTerminal(patch.status) ? 'result' : 'status');
    const ctes = [
      `changed AS (UPDATE jobs SET ${sets.join(', ')} WHERE ${where} RETURNING *)`,
      `event AS (INSERT INTO events (job_id, type, data, at, owner) SELECT id, $${params.length}, ${eventRow('changed')}, updated_at, owner FROM changed)`,
    ];
    if (expect.executionId !== undefined && patch.status !== 'running' && patch.status !== 'scheduled') {
      // The attempt ends when the job leaves scheduled/running under its lease.
      const at = params.length;
      params.push(isTerminal(patch.status) ? patch.status : 'interrupted', now(), patch.exitCode ?? null, patch.message ?? null);
      ctes.push(`ended AS (UPDATE executions SET status = $${at + 1}, finished_at = $${at + 2}, exit_code = $${at + 3},
          message = $${at + 4} WHERE id = $${lease} AND status = 'running' AND EXISTS (SELECT 1 FROM changed))`);
    }
    const { rows } = await this.pool.query<JobRow>(`WITH ${ctes.join(', ')} SELECT * FROM changed`, params);
    if (rows[0]) this.appended();
    return rows[0] && toJob(rows[0]);
  }

  async executions(jobId: string): Promise<ExecutionRecord[]> {
    const { rows } = await this.pool.query<ExecutionRow>('SELECT * FROM executions WHERE job_id = $1 ORDER BY attempt ASC', [jobId]);
    return rows.map(toExecution);
  }

  async children(parentId: string): Promise<Job[]> {
    const { rows } = await this.pool.query<JobRow>('SELECT * FROM jobs WHERE parent = $1 ORDER BY seq', [parentId]);
    return rows.map(toJob);
  }

  async appendEvent(event: Omit<StoredEvent, 'seq' | 'at'>): Promise<StoredEvent> {
    const at = now();
    const { rows } = await this.pool.query<{ pos: string }>(
      'INSERT INTO events (job_id, type, data, at, owner) VALUES ($1, $2, $3, $4, $5) RETURNING pos',
      [event.jobId, event.type, JSON.stringify(event.data), at, event.owner ?? null],
    );
    this.appended();
    return { ...event, seq: Number(rows[0]!.pos), at };
  }

  async eventHead(): Promise<number> {
    const { rows } = await this.pool.query<{ pos: string | null }>(`SELECT MAX(pos) AS pos FROM events WHERE pos < ${HORIZON}`);
    return Number(rows[0]!.pos ?? 0);
  }

  onEvents(listener: () => void): () => void {
    this.listeners.add(listener);
    if (!this.listener) void this.listen();
    return () => void this.listeners.delete(listener);
  }

  /** Keeps one connection LISTENing; a lost one is opened again, and readers catch up by cursor. */
  private async listen(): Promise<void> {
    if (this.closed) return;
    const client = (this.listener = new pg.Client({ connectionString: this.url }));
    const retry = () => {
      if (this.listener !== client) return;
      this.listener = undefined;
      client.end().catch(() => {});
      if (this.closed) return;
      setTimeout(() => void this.listen(), LISTEN_RETRY_MS).unref();
    };
    client.on('error', retry);
    client.on('end', retry);
    client.on('notification', (message) => {
      if (message.payload !== this.instance) this.wake();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${this.channel}`);
      this.wake(); // what was appended while nobody listened
    } catch {
      retry();
    }
  }

  private wake(): void {
    for (const listener of this.listeners) listener();
  }

  /** Wakes this process's readers now and every other server's after a coalescing window. */
  private appended(): void {
    this.wake();
    if (this.notifyTimer || this.closed) return;
    this.notifyTimer = setTimeout(() => {
      this.notifyTimer = undefined;
      this.pool.query('SELECT pg_notify($1, $2)', [this.channel, this.instance]).catch(() => {});
    }, NOTIFY_COALESCE_MS);
  }

  async pruneEvents(before: string, limit: number): Promise<number> {
    const { rows } = await this.pool.query<{ pos: string }>(
      `WITH old AS (SELECT pos FROM events WHERE pos < ${HORIZON} ORDER BY pos LIMIT $2),
         gone AS (DELETE FROM events e USING old WHERE e.pos = old.pos AND e.at < $1 RETURNING e.pos),
         floor AS (INSERT INTO meta (name, value) SELECT 'events_floor', MAX(pos)::text FROM gone HAVING COUNT(*) > 0
           ON CONFLICT (name) DO UPDATE SET value = GREATEST(meta.value::BIGINT, EXCLUDED.value::BIGINT)::text)
       SELECT pos FROM gone`,
      [before, limit],
    );
    return rows.length;
  }

  async eventFloor(): Promise<number> {
    const { rows } = await this.pool.query<{ value: string }>(`SELECT value FROM meta WHERE name = 'events_floor'`);
    return Number(rows[0]?.value ?? 0);
  }

  async holdDuty(name: string, holder: string, ttlMs: number): Promise<number | undefined> {
    const { rows } = await this.pool.query<{ token: string }>(
      `INSERT INTO duties (name, holder, token, expires_at) VALUES ($1, $2, 1, gridx_now_ms() + $3::BIGINT)
       ON CONFLICT (name) DO UPDATE SET holder = $2, expires_at = gridx_now_ms() + $3::BIGINT,
         token = CASE WHEN duties.holder = $2 THEN duties.token ELSE duties.token + 1 END
       WHERE duties.holder = $2 OR duties.expires_at <= gridx_now_ms()
       RETURNING token`,
      [name, holder, ttlMs],
    );
    return rows[0] && Number(rows[0].token);
  }

  async releaseDuty(name: string, holder: string): Promise<void> {
    await this.pool.query('UPDATE duties SET expires_at = 0 WHERE name = $1 AND holder = $2', [name, holder]);
  }

  async forgetOutput(jobId: string): Promise<void> {
    await this.pool.query(`DELETE FROM events WHERE job_id = $1 AND type = 'output'`, [jobId]);
  }

  async compactOutput(jobId: string): Promise<void> {
    await this.pool.query(
      `UPDATE events e SET data = jsonb_build_object('stream', x.stream, 'offset', x.off, 'length', x.len)
       FROM (SELECT pos, data->>'stream' AS stream, length(data->>'data') AS len,
                    SUM(length(data->>'data')) OVER (PARTITION BY data->>'stream' ORDER BY pos) - length(data->>'data') AS off
             FROM events WHERE job_id = $1 AND type = 'output' AND data ? 'data') x
       WHERE e.pos = x.pos`,
      [jobId],
    );
  }

  async eventsSince(since: number, options: { jobId?: string; limit?: number } = {}): Promise<StoredEvent[]> {
    const limit = Math.min(Math.max(options.limit ?? 1000, 1), 10_000);
    const { rows } = await this.pool.query<EventRow>(
      `SELECT pos AS seq, job_id, type, data, at, owner FROM events WHERE pos > $1 AND pos < ${HORIZON}
       ${options.jobId === undefined ? '' : 'AND job_id = $3'} ORDER BY pos LIMIT $2`,
      options.jobId === undefined ? [since, limit] : [since, limit, options.jobId],
    );
    return rows.map(toEvent);
  }

  async addRunner(r: RunnerRecord): Promise<void> {
    await this.pool.query(
      `INSERT INTO runners (id, name, token_hash, slots, labels, limits, version, registered_at, last_heartbeat_at, account_id, public_key)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
      [r.id, r.name, r.tokenHash, r.slots, JSON.stringify(r.labels), JSON.stringify(r.limits), r.version, r.registeredAt,
        r.lastHeartbeatAt, r.accountId ?? null, r.publicKey ?? null],
    );
  }

  async getRunner(id: string): Promise<RunnerRecord | undefined> {
    const { rows } = await this.pool.query<RunnerRow>('SELECT * FROM runners WHERE id = $1', [id]);
    if (!rows[0]) return undefined;
    const { running: _, ...runner } = toRunner(rows[0]);
    return runner;
  }

  async touchRunner(id: string): Promise<boolean> {
    const { rowCount } = await this.pool.query('UPDATE runners SET last_heartbeat_at = $1 WHERE id = $2', [now(), id]);
    return (rowCount ?? 0) > 0;
  }

  async listRunners(): Promise<RunnerSummary[]> {
    return (await this.pool.query<RunnerRow>(LIST_RUNNERS_SQL)).rows.map(toRunner);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.clockTimer);
    clearTimeout(this.notifyTimer);
    const listener = this.listener;
    this.listener = undefined;
    await listener?.end().catch(() => {});
    await this.pool.end();
  }
}

function now(): string {
  return new Date().toISOString();
}

