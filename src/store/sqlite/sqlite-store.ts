import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
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
  type ExecutionRow,
  eventData,
  type EventRow,
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
import { fitsWorker, nextClaimDeadline, roomCounter } from '../next-claim.js';
import { MIGRATIONS } from './migrations.js';
import { SqliteLedger } from './sqlite-ledger.js';
import type { Transfer } from '../ledger-store.js';

const MAX_PAGE = 500;
/** Pending jobs past their backoff, less the owners a PendingFilter names; readyParams(skip) fills its three parameters. */
const READY_PENDING = `status = 'pending' AND (not_before IS NULL OR not_before <= ?)
  AND (owner IS NOT NULL OR NOT ?) AND (owner IS NULL OR owner NOT IN (SELECT value FROM json_each(?)))`;
const readyParams = (skip: PendingFilter) => [Date.now(), skip.skipAnonymous ? 1 : 0, JSON.stringify(skip.skipOwners ?? [])];
const DEFAULT_PAGE = 50;

/**
 * The embedded store: one SQLite file in the data dir, WAL mode, migrations at open. One
 * process writes it, so an event's rowid is already in commit order and is its cursor.
 */
export class SqliteStore implements JobStore {
  private readonly db: Database.Database;
  private readonly listeners = new Set<() => void>();
  /** Prepared statements by SQL text: preparing costs more than running most of them. */
  private readonly statements = new Map<string, Database.Statement>();
  readonly ledger: SqliteLedger;

  constructor(file: string) {
    if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    // In WAL mode NORMAL survives any process crash; only an OS crash can lose the last commits.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('foreign_keys = ON');
    this.migrate();
    this.ledger = new SqliteLedger(this.db, (sql) => this.stmt(sql));
  }

  private migrate(): void {
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)');
    const done = new Set(
      this.db.prepare('SELECT version FROM schema_migrations').all().map((r) => (r as { version: number }).version),
    );
    for (const [index, sql] of MIGRATIONS.entries()) {
      const version = index + 1;
      if (done.has(version)) continue;
      this.db.transaction(() => {
        this.db.exec(sql);
        this.db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(version, now());
      })();
    }
  }

  async insert(job: NewJob, escrow?: Transfer): Promise<Job> {
    const at = now();
    const add = (j: NewJob, status: 'pending' | 'running', parent: string | null) =>
      this.stmt(
          `INSERT INTO jobs (id, status, spec, title, created_at, updated_at, started_at, attempts, stdout, stderr,
             stdout_truncated, stderr_truncated, pinned, origin, description, reward, owner, parent, replicas, settled_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, 0, '', '', 0, 0, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          j.id,
          status,
          JSON.stringify(j.spec),
          j.title ?? null,
          at,
          at,
          status === 'running' ? at : null,
          j.pinned ? 1 : 0,
          j.origin ?? null,
          j.description ?? null,
          j.reward ?? null,
          j.owner ?? null,
          parent,
          j.replicas?.length ?? null,
          settledAt(j, escrow, at),
        );
    const row = this.db.transaction(() => {
      // The reward leaves the owner's balance in the same transaction: no task without its escrow.
      if (escrow) this.ledger.postInTransaction([escrow]);
      add(job, job.replicas ? 'running' : 'pending', job.parent ?? null);
      for (const child of job.replicas ?? []) add(child, 'pending', job.id);
      const inserted = this.stmt('SELECT * FROM jobs WHERE id = ?').get(job.id) as JobRow;
      this.addEvent('status', inserted);
      return inserted;
    }).immediate();
    this.appended();
    return toJob(row);
  }

  /** Writes the event of a change, inside the change's transaction. */
  private addEvent(type: 'status' | 'result', row: JobRow): void {
    this.stmt('INSERT INTO events (job_id, type, data, at, owner) VALUES (?, ?, ?, ?, ?)').run(row.id, type, eventData(row), row.updated_at, row.owner);
  }

  private appended(): void {
    for (const listener of this.listeners) listener();
  }

  async get(id: string): Promise<Job | undefined> {
    const row = this.stmt('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
    return row && toJob(row);
  }

  async list(options: ListOptions = {}): Promise<JobPage> {
    const limit = Math.min(Math.max(options.limit ?? DEFAULT_PAGE, 1), MAX_PAGE);
    const where: string[] = [];
    const params: unknown[] = [];
    if (options.status) {
      where.push('status = ?');
      params.push(options.status);
    }
    if (options.viewer !== undefined) {
      where.push(options.viewer === null ? 'owner IS NULL' : '(owner IS NULL OR owner = ?)');
      if (options.viewer !== null) params.push(options.viewer);
    }
    if (options.cursor !== undefined) {
      const before = Number(options.cursor);
      if (!Number.isSafeInteger(before)) throw invalid('cursor', 'is not a cursor this node handed out');
      where.push('seq < ?');
      params.push(before);
    }
    const rows = this.stmt(
        `SELECT ${SUMMARY_COLUMNS} FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
         ORDER BY seq DESC LIMIT ?`,
      )
      .all(...params, limit + 1) as JobRow[];
    const page = rows.slice(0, limit);
    return {
      jobs: page.map(toJob),
      ...(rows.length > limit ? { nextCursor: String(page.at(-1)!.seq) } : {}),
    };
  }

  async withStatus(statuses: readonly JobStatus[], limit = -1): Promise<Job[]> {
    if (statuses.length === 0) return [];
    const rows = this.stmt(`SELECT * FROM jobs WHERE status IN (${statuses.map(() => '?').join(',')}) ORDER BY seq ASC LIMIT ?`)
      .all(...statuses, limit) as JobRow[];
    return rows.map(toJob);
  }

  async countByStatus(): Promise<Record<JobStatus, number>> {
    const counts = Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as Record<JobStatus, number>;
    const rows = this.stmt('SELECT status, COUNT(*) AS n FROM jobs GROUP BY status').all() as Array<{
      status: JobStatus;
      n: number;
    }>;
    for (const row of rows) counts[row.status] = row.n;
    return counts;
  }

  async pendingByOwner(): Promise<Map<string | null, number>> {
    const rows = this.stmt(`SELECT owner, COUNT(*) AS n FROM jobs WHERE status = 'pending' GROUP BY owner`).all() as Array<{ owner: string | null; n: number }>;
    return new Map(rows.map((r) => [r.owner, r.n]));
  }

  async pendingReady(limit: number, skip: PendingFilter = {}): Promise<Job[]> {
    const rows = this.stmt(`SELECT * FROM jobs WHERE ${READY_PENDING} ORDER BY seq ASC LIMIT ?`).all(...readyParams(skip), limit) as JobRow[];
    return rows.map(toJob);
  }

  async heldByOwner(): Promise<OwnerLoad[]> {
    const rows = this.stmt(
        `SELECT owner, COUNT(*) AS held FROM jobs WHERE status IN ('scheduled', 'running') AND execution_id IS NOT NULL
         GROUP BY owner`,
      )
      .all() as Array<{ owner: string | null; held: number }>;
    return rows.map((r) => (r.owner === null ? { held: r.held } : { owner: r.owner, held: r.held }));
  }

  /** Takes pending job `id` under a new lease, with its execution record, if `terms` allow it; the job's row as claimed. */
  private readonly claimTx = (id: string, nodeId: string, executionId: string, leaseTtlMs: number | undefined, terms: ClaimTerms): JobRow | undefined => {
    // A replica only with an account that holds (or held) no other replica of its task.
    const allowed = `(parent IS NULL OR (? IS NOT NULL AND NOT EXISTS (SELECT 1 FROM replica_workers w
      WHERE w.parent = jobs.parent AND w.account_id = ? AND w.job_id <> jobs.id)))`;
    const account = terms.accountId ?? null;
    return this.db.transaction(() => {
      const row = this.stmt(`SELECT id, attempts, parent FROM jobs WHERE id = ? AND status = 'pending' AND ${allowed}`).get(id, account, account) as
        | { id: string; attempts: number; parent: string | null }
        | undefined;
      if (!row) return undefined;
      if (row.parent !== null) {
        this.stmt('INSERT OR IGNORE INTO replica_workers (parent, account_id, job_id) VALUES (?, ?, ?)').run(row.parent, account, row.id);
      }
      const at = now();
      const claimed = this.stmt(
          `UPDATE jobs SET status = 'scheduled', execution_id = ?, attempts = attempts + 1, executed_by = ?,
             updated_at = ?, lease_expires_at = ?, not_before = NULL, deadline_at = ? WHERE id = ? AND status = 'pending' RETURNING *`,
        )
        .get(executionId, nodeId, at, leaseTtlMs === undefined ? null : Date.now() + leaseTtlMs, terms.deadlineAt ?? null, row.id) as JobRow;
      this.addEvent('status', claimed);
      this.stmt(
          `INSERT INTO executions (id, job_id, attempt, node_id, status, started_at) VALUES (?, ?, ?, ?, 'running', ?)`,
        )
        .run(executionId, row.id, row.attempts + 1, nodeId, at);
      return claimed;
    }).immediate();
  };

  async claim(id: string, nodeId: string, executionId: string, leaseTtlMs?: number, terms: ClaimTerms = {}): Promise<Job | undefined> {
    const claimed = this.claimTx(id, nodeId, executionId, leaseTtlMs, terms);
    if (!claimed) return undefined;
    this.appended();
    return toJob(claimed);
  }

  async claimNext(query: NextClaim): Promise<NextClaimed> {
    if (query.max > MAX_BATCH_CLAIM) throw new Error(`bug: a batch claim takes at most ${MAX_BATCH_CLAIM} jobs`);
    const result = this.db.transaction(() => {
      const hasRoom = roomCounter(query.room);
      const window: Job[] = [];
      // Read (and closed) before any write: better-sqlite3 runs nothing else while a read is open.
      for (const row of this.pendingIterator(query.skip ?? {})) {
        const job = toJob(row);
        if (fitsWorker(job, query)) window.push(job);
        if (window.length >= query.window) break;
      }
      const claimed: JobRow[] = [];
      const replicas: Job[] = [];
      let eligible = 0;
      const at = Date.now();
      for (const job of window) {
        if (!hasRoom(job)) continue;
        if (job.parent) {
          replicas.push(job);
          continue;
        }
        eligible++;
        if (claimed.length >= query.max) continue;
        const taken = this.claimTx(job.id, query.nodeId, randomUUID(), query.leaseTtlMs, { deadlineAt: nextClaimDeadline(job, query, at) });
        if (taken) claimed.push(taken);
      }
      return { claimed, replicas, eligible };
    }).immediate();
    if (result.claimed.length > 0) this.appended();
    return { ...result, claimed: result.claimed.map(toJob) };
  }

  /** The ready pending jobs in queue order, no further than CLAIM_SPAN past the head of the queue. */
  private pendingIterator(skip: PendingFilter): IterableIterator<JobRow> {
    const head = this.stmt(`SELECT seq FROM jobs WHERE status = 'pending' ORDER BY seq LIMIT 1`).get() as { seq: number } | undefined;
    if (!head) return [][Symbol.iterator]();
    return this.stmt(`SELECT * FROM jobs WHERE ${READY_PENDING} AND seq < ? ORDER BY seq ASC`)
      .iterate(...readyParams(skip), head.seq + CLAIM_SPAN) as IterableIterator<JobRow>;
  }

  async renewLeases(executionIds: readonly string[], ttlMs: number, holder?: string): Promise<string[]> {
    if (executionIds.length === 0) return [];
    const at = Date.now();
    const rows = this.stmt(
        `UPDATE jobs SET lease_expires_at = ? WHERE execution_id IN (${executionIds.map(() => '?').join(',')})
         AND status IN ('scheduled', 'running') AND lease_expires_at > ?
         ${holder === undefined ? '' : 'AND executed_by = ?'} RETURNING execution_id`,
      )
      .all(at + ttlMs, ...executionIds, at, ...(holder === undefined ? [] : [holder])) as Array<{ execution_id: string }>;
    return rows.map((r) => r.execution_id);
  }

  async expiredLeases(limit: number): Promise<Job[]> {
    const rows = this.stmt(
        `SELECT * FROM jobs WHERE lease_expires_at <= ? AND status IN ('scheduled', 'running')
         ORDER BY lease_expires_at ASC LIMIT ?`,
      )
      .all(Date.now(), limit) as JobRow[];
    return rows.map(toJob);
  }

  async overdue(limit: number): Promise<Job[]> {
    const rows = this.stmt(
        `SELECT * FROM jobs WHERE deadline_at <= ? AND status IN ('scheduled', 'running') ORDER BY deadline_at ASC LIMIT ?`,
      )
      .all(Date.now(), limit) as JobRow[];
    return rows.map(toJob);
  }

  async execution(id: string): Promise<ExecutionRecord | undefined> {
    const row = this.stmt('SELECT * FROM executions WHERE id = ?').get(id) as ExecutionRow | undefined;
    return row && toExecution(row);
  }

  async transition(id: string, expect: Expectation, patch: JobPatch): Promise<Job | undefined> {
    const changed = this.db.transaction(() => {
      const sets = ['status = ?', 'updated_at = ?'];
      const params: unknown[] = [patch.status, now()];
      const set = (column: string, value: unknown) => {
        if (value === undefined) return;
        sets.push(`${column} = ?`);
        params.push(typeof value === 'boolean' ? Number(value) : value);
      };
      for (const [column, value] of patchColumns(patch)) set(column, value);
      // Leaving scheduled/running ends the lease and its deadline.
      if (patch.status !== 'scheduled' && patch.status !== 'running') sets.push('lease_expires_at = NULL', 'deadline_at = NULL');

      let where = `id = ? AND status IN (${expect.status.map(() => '?').join(',')})`;
      params.push(id, ...expect.status);
      if (expect.executionId !== undefined) {
        where += ' AND execution_id = ?';
        params.push(expect.executionId);
      }
      if (expect.leaseExpired) {
        where += ' AND lease_expires_at <= ?';
        params.push(Date.now());
      }
      if (expect.deadlinePassed) {
        where += ' AND deadline_at <= ?';
        params.push(Date.now());
      }
      const changed = this.stmt(`UPDATE jobs SET ${sets.join(', ')} WHERE ${where} RETURNING *`).get(...params) as JobRow | undefined;
      if (!changed) return undefined;
      this.addEvent(isTerminal(patch.status) ? 'result' : 'status', changed);

      // The attempt ends when the job leaves scheduled/running under its lease.
      if (expect.executionId !== undefined && patch.status !== 'running' && patch.status !== 'scheduled') {
        this.stmt(
            `UPDATE executions SET status = ?, finished_at = ?, exit_code = ?, message = ?
             WHERE id = ? AND status = 'running'`,
          )
          .run(
            isTerminal(patch.status) ? patch.status : 'interrupted',
            now(),
            patch.exitCode ?? null,
            patch.message ?? null,
            expect.executionId,
          );
      }
      return changed;
    }).immediate();
    if (!changed) return undefined;
    this.appended();
    return toJob(changed);
  }

  async executions(jobId: string): Promise<ExecutionRecord[]> {
    const rows = this.stmt('SELECT * FROM executions WHERE job_id = ? ORDER BY attempt ASC')
      .all(jobId) as ExecutionRow[];
    return rows.map(toExecution);
  }

  async children(parentId: string): Promise<Job[]> {
    return (this.stmt('SELECT * FROM jobs WHERE parent = ? ORDER BY seq').all(parentId) as JobRow[]).map(toJob);
  }

  async appendEvent(event: Omit<StoredEvent, 'seq' | 'at'>): Promise<StoredEvent> {
    const at = now();
    const result = this.stmt('INSERT INTO events (job_id, type, data, at, owner) VALUES (?, ?, ?, ?, ?)')
      .run(event.jobId, event.type, JSON.stringify(event.data), at, event.owner ?? null);
    this.appended();
    return { ...event, seq: Number(result.lastInsertRowid), at };
  }

  now(): number {
    return Date.now();
  }

  async eventHead(): Promise<number> {
    return (this.stmt('SELECT MAX(seq) AS seq FROM events').get() as { seq: number | null }).seq ?? 0;
  }

  onEvents(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  async pruneEvents(before: string, limit: number): Promise<number> {
    return this.db.transaction(() => {
      const gone = this.stmt(
        'DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY seq LIMIT ?) AND at < ? RETURNING seq',
      ).all(limit, before) as Array<{ seq: number }>;
      if (gone.length === 0) return 0;
      this.stmt(
        `INSERT INTO meta (name, value) VALUES ('events_floor', ?)
         ON CONFLICT (name) DO UPDATE SET value = MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))`,
      ).run(String(Math.max(...gone.map((g) => g.seq))));
      return gone.length;
    }).immediate();
  }

  async eventFloor(): Promise<number> {
    return Number((this.stmt(`SELECT value FROM meta WHERE name = 'events_floor'`).get() as { value: string } | undefined)?.value ?? 0);
  }

  async holdDuty(name: string, holder: string, ttlMs: number): Promise<number | undefined> {
    const at = Date.now();
    const row = this.stmt(
      `INSERT INTO duties (name, holder, token, expires_at) VALUES (?, ?, 1, ?)
       ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at,
         token = CASE WHEN duties.holder = excluded.holder THEN duties.token ELSE duties.token + 1 END
       WHERE duties.holder = excluded.holder OR duties.expires_at <= ?
       RETURNING token`,
    ).get(name, holder, at + ttlMs, at) as { token: number } | undefined;
    return row?.token;
  }

  async releaseDuty(name: string, holder: string): Promise<void> {
    this.stmt('UPDATE duties SET expires_at = 0 WHERE name = ? AND holder = ?').run(name, holder);
  }

  async forgetOutput(jobId: string): Promise<void> {
    this.stmt(`DELETE FROM events WHERE job_id = ? AND type = 'output'`).run(jobId);
  }

  async compactOutput(jobId: string): Promise<void> {
    this.stmt(
      `UPDATE events SET data = json_object('stream', x.stream, 'offset', x.off, 'length', x.len)
       FROM (SELECT seq, json_extract(data, '$.stream') AS stream, length(json_extract(data, '$.data')) AS len,
                    SUM(length(json_extract(data, '$.data'))) OVER (PARTITION BY json_extract(data, '$.stream') ORDER BY seq)
                      - length(json_extract(data, '$.data')) AS off
             FROM events WHERE job_id = ? AND type = 'output' AND json_extract(data, '$.data') IS NOT NULL) AS x
       WHERE events.seq = x.seq`,
    ).run(jobId);
  }

  async eventsSince(since: number, options: { jobId?: string; limit?: number } = {}): Promise<StoredEvent[]> {
    const limit = Math.min(Math.max(options.limit ?? 1000, 1), 10_000);
    const rows = (
      options.jobId === undefined
        ? this.stmt('SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?').all(since, limit)
        : this.stmt('SELECT * FROM events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?').all(options.jobId, since, limit)
    ) as EventRow[];
    return rows.map(toEvent);
  }

  async addRunner(r: RunnerRecord): Promise<void> {
    this.stmt(
        `INSERT INTO runners (id, name, token_hash, slots, labels, limits, version, registered_at, last_heartbeat_at, account_id, public_key)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        r.id, r.name, r.tokenHash, r.slots, JSON.stringify(r.labels), JSON.stringify(r.limits), r.version, r.registeredAt,
        r.lastHeartbeatAt, r.accountId ?? null, r.publicKey ?? null,
      );
  }

  async getRunner(id: string): Promise<RunnerRecord | undefined> {
    const row = this.stmt('SELECT * FROM runners WHERE id = ?').get(id) as RunnerRow | undefined;
    if (!row) return undefined;
    const { running: _, ...runner } = toRunner(row);
    return runner;
  }

  async touchRunner(id: string): Promise<boolean> {
    return this.stmt('UPDATE runners SET last_heartbeat_at = ? WHERE id = ?').run(now(), id).changes > 0;
  }

  async listRunners(): Promise<RunnerSummary[]> {
    return (this.stmt(LIST_RUNNERS_SQL).all() as RunnerRow[]).map(toRunner);
  }

  private stmt(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (!statement) this.statements.set(sql, (statement = this.db.prepare(sql)));
    return statement;
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}

function now(): string {
  return new Date().toISOString();
}

