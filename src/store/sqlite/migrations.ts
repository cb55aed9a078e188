/** SQLite schema, one entry per version; never edit an entry once released, add one. */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,      -- queue order
    id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    spec TEXT NOT NULL,                         -- JobSpec as JSON
    title TEXT,
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
    stdout_truncated INTEGER NOT NULL DEFAULT 0,
    stderr_truncated INTEGER NOT NULL DEFAULT 0,
    duration_ms INTEGER,
    executed_by TEXT
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
  `,
  `
  -- Mesh: a pinned job runs only on the node it was sent to; origin is the peer that
  -- forwarded it here (its copy of the job is the one that retries elsewhere).
  ALTER TABLE jobs ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE jobs ADD COLUMN origin TEXT;
  `,
  `
  -- Parity tasks: a description and the reward offered, as a decimal string (exact).
  ALTER TABLE jobs ADD COLUMN description TEXT;
  ALTER TABLE jobs ADD COLUMN reward TEXT;
  `,
  `
  -- The update stream behind /api/events: every status change and output chunk, in
  -- order; a client that reconnects with ?since=SEQ is replayed what it missed.
  CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    at TEXT NOT NULL
  );
  CREATE INDEX events_job_seq ON events (job_id, seq);
  `,
  `
  -- Leases: a claimed job is held until lease_expires_at (epoch ms) unless its holder
  -- renews it; an expired lease puts the job back, not before not_before (retry backoff).
  -- Runners: executors that pull work from this server over HTTP.
  ALTER TABLE jobs ADD COLUMN lease_expires_at INTEGER;
  ALTER TABLE jobs ADD COLUMN not_before INTEGER;
  CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE lease_expires_at IS NOT NULL;
  CREATE INDEX jobs_holder ON jobs (executed_by) WHERE status IN ('scheduled', 'running');
  CREATE TABLE runners (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL,                   -- sha256 of the runner's secret, hex
    slots INTEGER NOT NULL,
    labels TEXT NOT NULL,                       -- JSON object
    limits TEXT NOT NULL,                       -- JSON JobLimits
    version TEXT NOT NULL,
    registered_at TEXT NOT NULL,
    last_heartbeat_at TEXT NOT NULL
  );
  `,
];
