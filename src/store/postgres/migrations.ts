/** PostgreSQL schema, one entry per version; never edit an entry once released, add one. */
export const PG_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE jobs (
    seq BIGSERIAL PRIMARY KEY,                  -- queue order
    id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    spec JSONB NOT NULL,
    title TEXT,
    description TEXT,
    reward TEXT,                                -- decimal string, exact
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    execution_id TEXT,                          -- lease token of the current execution
    exit_code INTEGER,
    reason TEXT,
    message TEXT,
    stdout TEXT NOT NULL DEFAULT '',
    stderr TEXT NOT NULL DEFAULT '',
    stdout_truncated BOOLEAN NOT NULL DEFAULT FALSE,
    stderr_truncated BOOLEAN NOT NULL DEFAULT FALSE,
    duration_ms INTEGER,
    executed_by TEXT,
    pinned BOOLEAN NOT NULL DEFAULT FALSE,
    origin TEXT
  );
  CREATE INDEX jobs_status_seq ON jobs (status, seq);

  CREATE TABLE executions (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs (id),
    attempt INTEGER NOT NULL,
    node_id TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    exit_code INTEGER,
    message TEXT
  );
  CREATE INDEX executions_job ON executions (job_id, attempt);

  CREATE TABLE events (
    seq BIGSERIAL PRIMARY KEY,
    job_id TEXT NOT NULL,
    type TEXT NOT NULL,
    data JSONB NOT NULL,
    at TEXT NOT NULL
  );
  CREATE INDEX events_job_seq ON events (job_id, seq);
  `,
  `
  ALTER TABLE jobs ADD COLUMN lease_expires_at BIGINT;
  ALTER TABLE jobs ADD COLUMN not_before BIGINT;
  CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE lease_expires_at IS NOT NULL;
  CREATE INDEX jobs_holder ON jobs (executed_by) WHERE status IN ('scheduled', 'running');
  CREATE TABLE runners (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    slots INTEGER NOT NULL,
    labels JSONB NOT NULL,
    limits JSONB NOT NULL,
    version TEXT NOT NULL,
    registered_at TEXT NOT NULL,
    last_heartbeat_at TEXT NOT NULL
  );
  `,
  `
  -- The claim scans only pending rows, oldest first.
  CREATE INDEX jobs_pending ON jobs (seq) WHERE status = 'pending';
  `,
];
