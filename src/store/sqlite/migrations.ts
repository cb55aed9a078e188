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
  `
  -- Accounts and the double-entry journal (issue 5). Amounts are base units (18 decimals)
  -- as decimal integer text: they outgrow SQLite's 64-bit integers. A job has the owner who
  -- pays for it and settled_at once its escrow has been paid out or refunded.
  CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,                         -- user | runner | node | system
    name TEXT NOT NULL,
    key_hash TEXT UNIQUE,                       -- sha256 of the API key, hex
    peer_id TEXT UNIQUE,
    address TEXT UNIQUE,                        -- lowercase 0x address
    balance TEXT NOT NULL DEFAULT '0',
    created_at TEXT NOT NULL
  );
  CREATE TABLE ledger (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,                    -- idempotency key
    kind TEXT NOT NULL,
    debit TEXT NOT NULL REFERENCES accounts (id),
    credit TEXT NOT NULL REFERENCES accounts (id),
    amount TEXT NOT NULL,
    job_id TEXT,
    execution_id TEXT,
    address TEXT,
    tx_hash TEXT,
    memo TEXT,
    at TEXT NOT NULL
  );
  CREATE INDEX ledger_debit ON ledger (debit, seq);
  CREATE INDEX ledger_credit ON ledger (credit, seq);
  CREATE INDEX ledger_job ON ledger (job_id) WHERE job_id IS NOT NULL;
  CREATE TABLE withdrawals (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    address TEXT NOT NULL,
    amount TEXT NOT NULL,
    status TEXT NOT NULL,                       -- requested | signed | confirmed | failed
    tx_hash TEXT,
    nonce INTEGER,
    raw_tx TEXT,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
  );
  CREATE INDEX withdrawals_account ON withdrawals (account_id, created_at);
  CREATE TABLE chain_cursors (name TEXT PRIMARY KEY, value TEXT NOT NULL);
  ALTER TABLE jobs ADD COLUMN owner TEXT;
  ALTER TABLE events ADD COLUMN owner TEXT;                -- only its owner is streamed an owned job's events
  ALTER TABLE jobs ADD COLUMN settled_at TEXT;
  -- Redundant execution: a task run by several workers is a parent that never queues
  -- itself, and one child job per replica (parent = its id); the majority result wins.
  ALTER TABLE jobs ADD COLUMN parent TEXT;
  ALTER TABLE jobs ADD COLUMN replicas INTEGER;
  CREATE INDEX jobs_parent ON jobs (parent) WHERE parent IS NOT NULL;
  CREATE INDEX jobs_unsettled ON jobs (seq) WHERE owner IS NOT NULL AND settled_at IS NULL;
  ALTER TABLE runners ADD COLUMN account_id TEXT;
  ALTER TABLE runners ADD COLUMN public_key TEXT;
  INSERT INTO accounts (id, kind, name, created_at) VALUES
    ('world', 'system', 'the outside world (deposits, withdrawals)', strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    ('escrow', 'system', 'rewards held for running tasks', strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    ('fees', 'system', 'operator fees', strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    ('unclaimed', 'system', 'deposits from addresses bound to no account', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
  `,
  `
  -- The account each replica of a task was claimed for: one account runs one replica of a
  -- task (again after losing its lease, never another), so k replicas need k accounts.
  CREATE TABLE replica_workers (
    parent TEXT NOT NULL,
    account_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (parent, account_id)
  );
  -- Epoch ms by which a held job's execution must have ended (its timeout plus a grace);
  -- heartbeats renew the lease, never this.
  ALTER TABLE jobs ADD COLUMN deadline_at INTEGER;
  CREATE INDEX jobs_deadline ON jobs (deadline_at) WHERE deadline_at IS NOT NULL;
  `,
  `
  -- The files a job left under /outputs (a JSON manifest: files, root digest, bytes, exceeded),
  -- written in the same transition that ends the job, so no job is ever half-collected.
  ALTER TABLE jobs ADD COLUMN outputs TEXT;
  `,
  `
  -- Singleton duties: one holder at a time under a lease; the token grows with every change
  -- of holder and fences the writes of a holder that lost its duty (see the PostgreSQL schema).
  CREATE TABLE duties (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    token INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  );
  -- Small named values: the cursor below which retention has deleted events.
  CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
  `,
];
