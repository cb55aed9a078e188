import type pg from 'pg';

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
  `
  -- Accounts and the double-entry journal (issue 5). Amounts are base units (18 decimals)
  -- as NUMERIC(78, 0). A job has the owner who
  -- pays for it and settled_at once its escrow has been paid out or refunded.
  CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,                         -- user | runner | node | system
    name TEXT NOT NULL,
    key_hash TEXT UNIQUE,                       -- sha256 of the API key, hex
    peer_id TEXT UNIQUE,
    address TEXT UNIQUE,                        -- lowercase 0x address
    balance NUMERIC(78, 0) NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
  );
  CREATE TABLE ledger (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,                    -- idempotency key
    kind TEXT NOT NULL,
    debit TEXT NOT NULL REFERENCES accounts (id),
    credit TEXT NOT NULL REFERENCES accounts (id),
    amount NUMERIC(78, 0) NOT NULL,
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
    amount NUMERIC(78, 0) NOT NULL,
    status TEXT NOT NULL,                       -- requested | signed | confirmed | failed
    tx_hash TEXT,
    nonce BIGINT,
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
    ('world', 'system', 'the outside world (deposits, withdrawals)', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
    ('escrow', 'system', 'rewards held for running tasks', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
    ('fees', 'system', 'operator fees', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
    ('unclaimed', 'system', 'deposits from addresses bound to no account', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'));
  `,
  `
  -- One round trip per posting: the transfers (a JSON array) are journalled and applied in
  -- the calling statement's transaction, so the balance rows they lock (escrow is one row
  -- every task touches) stay locked only until that statement commits, not across client
  -- round trips. A transfer already journalled (same id) is skipped; a debit below zero
  -- (the world account excepted) raises P0402 with the balance and the amount, an unknown account P0404.
  CREATE FUNCTION gridx_post(transfers jsonb, settle_job text, posted_at text)
  RETURNS TABLE (posted_id text, posted_seq bigint) LANGUAGE plpgsql AS $$
  #variable_conflict use_column
  DECLARE
    t jsonb;
    amt numeric;
    new_seq bigint;
    bal numeric;
  BEGIN
    FOR t IN SELECT value FROM jsonb_array_elements(transfers) LOOP
      amt := (t->>'amount')::numeric;
      new_seq := NULL;
      INSERT INTO ledger (id, kind, debit, credit, amount, job_id, execution_id, address, tx_hash, memo, at)
        VALUES (t->>'id', t->>'kind', t->>'from', t->>'to', amt, t->>'jobId', t->>'executionId', t->>'address', t->>'txHash', t->>'memo', posted_at)
        ON CONFLICT (id) DO NOTHING
        RETURNING seq INTO new_seq;
      CONTINUE WHEN new_seq IS NULL;
      UPDATE accounts SET balance = balance - amt WHERE id = t->>'from' AND (balance >= amt OR id = 'world');
      IF NOT FOUND THEN
        SELECT balance INTO bal FROM accounts WHERE id = t->>'from';
        IF NOT FOUND THEN RAISE EXCEPTION USING ERRCODE = 'P0404', MESSAGE = t->>'from'; END IF;
        RAISE EXCEPTION USING ERRCODE = 'P0402', MESSAGE = t->>'from', DETAIL = bal::text, HINT = amt::text;
      END IF;
      UPDATE accounts SET balance = balance + amt WHERE id = t->>'to';
      IF NOT FOUND THEN RAISE EXCEPTION USING ERRCODE = 'P0404', MESSAGE = t->>'to'; END IF;
      posted_id := t->>'id';
      posted_seq := new_seq;
      RETURN NEXT;
    END LOOP;
    IF settle_job IS NOT NULL THEN
      UPDATE jobs SET settled_at = posted_at WHERE id = settle_job AND settled_at IS NULL;
    END IF;
  END
  $$;
  `,
  `
  -- The account each replica of a task was claimed for: one account runs one replica of a
  -- task (again after losing its lease, never another), so k replicas need k accounts. The
  -- primary key makes the rule hold across servers sharing the database.
  CREATE TABLE replica_workers (
    parent TEXT NOT NULL,
    account_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (parent, account_id)
  );
  -- Epoch ms by which a held job's execution must have ended (its timeout plus a grace);
  -- heartbeats renew the lease, never this.
  ALTER TABLE jobs ADD COLUMN deadline_at BIGINT;
  CREATE INDEX jobs_deadline ON jobs (deadline_at) WHERE deadline_at IS NOT NULL;
  `,
  `
  -- The files a job left under /outputs (a JSON manifest: files, root digest, bytes, exceeded),
  -- written in the same transition that ends the job, so no job is ever half-collected.
  ALTER TABLE jobs ADD COLUMN outputs TEXT;
  `,
  `
  -- Time from one clock: leases, backoffs and deadlines are compared in the database's
  -- clock (epoch ms), so a server whose own clock is off neither steals nor keeps leases.
  CREATE FUNCTION gridx_now_ms() RETURNS BIGINT AS
    $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT $$ LANGUAGE sql VOLATILE;

  -- The update stream's cursor, in commit order across every server that writes: an
  -- event's transaction id shifted left 12 bits (plus its index within the transaction).
  -- Readers stop below the oldest transaction still in flight (pg_snapshot_xmin << 12), so
  -- an event that commits late can never fall behind a cursor a client already holds.
  -- Every older event consumed at least one transaction, so its seq is below any new pos.
  ALTER TABLE events ADD COLUMN pos BIGINT;
  UPDATE events SET pos = seq;
  ALTER TABLE events ALTER COLUMN pos SET NOT NULL;
  ALTER TABLE events ALTER COLUMN pos SET DEFAULT (pg_current_xact_id()::text::BIGINT << 12);
  CREATE UNIQUE INDEX events_pos ON events (pos);
  CREATE INDEX events_job_pos ON events (job_id, pos);
  DROP INDEX events_job_seq;

  -- Singleton duties (settlement, the lease sweep, the settlement sweep, retention): one
  -- holder at a time under a lease in the database's clock; the token grows with every
  -- change of holder and fences the writes of a holder that lost its duty.
  CREATE TABLE duties (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    token BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
  );

  -- Small named values: the cursor below which retention has deleted events.
  CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
  `,
  `
  -- No hot row: escrow is kept per task, in the journal, instead of in one balance row
  -- that every paid task of every payer would lock through its commit. What a task holds
  -- in escrow is what its entries moved in minus what they moved out (entries without a
  -- task form one bucket of their own); a transfer out of escrow may not take its task's
  -- below zero, checked under a lock on that task alone. The escrow account's balance is
  -- derived (gridx_escrow_held) and its stored balance stays 0.
  CREATE INDEX ledger_escrow_unassigned ON ledger (seq) WHERE job_id IS NULL AND (debit = 'escrow' OR credit = 'escrow');
  UPDATE accounts SET balance = 0 WHERE id = 'escrow';

  CREATE FUNCTION gridx_escrow_held() RETURNS NUMERIC LANGUAGE sql STABLE AS $$
    SELECT COALESCE(SUM(amount * ((credit = 'escrow')::int - (debit = 'escrow')::int)), 0) FROM ledger
    WHERE credit = 'escrow' OR debit = 'escrow'
  $$;

  CREATE OR REPLACE FUNCTION gridx_post(transfers jsonb, settle_job text, posted_at text)
  RETURNS TABLE (posted_id text, posted_seq bigint) LANGUAGE plpgsql AS $$
  #variable_conflict use_column
  DECLARE
    t jsonb;
    amt numeric;
    new_seq bigint;
    bal numeric;
  BEGIN
    FOR t IN SELECT value FROM jsonb_array_elements(transfers) LOOP
      amt := (t->>'amount')::numeric;
      new_seq := NULL;
      INSERT INTO ledger (id, kind, debit, credit, amount, job_id, execution_id, address, tx_hash, memo, at)
        VALUES (t->>'id', t->>'kind', t->>'from', t->>'to', amt, t->>'jobId', t->>'executionId', t->>'address', t->>'txHash', t->>'memo', posted_at)
        ON CONFLICT (id) DO NOTHING
        RETURNING seq INTO new_seq;
      CONTINUE WHEN new_seq IS NULL;
      IF t->>'from' = 'escrow' THEN
        PERFORM pg_advisory_xact_lock(hashtext('gridx-escrow:' || COALESCE(t->>'jobId', '')));
        IF t->>'jobId' IS NULL THEN
          SELECT COALESCE(SUM(amount * ((credit = 'escrow')::int - (debit = 'escrow')::int)), 0) INTO bal FROM ledger
            WHERE job_id IS NULL AND (credit = 'escrow' OR debit = 'escrow');
        ELSE
          SELECT COALESCE(SUM(amount * ((credit = 'escrow')::int - (debit = 'escrow')::int)), 0) INTO bal FROM ledger
            WHERE job_id = t->>'jobId' AND (credit = 'escrow' OR debit = 'escrow');
        END IF;
        IF bal < 0 THEN
          RAISE EXCEPTION USING ERRCODE = 'P0402', MESSAGE = 'escrow', DETAIL = (bal + amt)::text, HINT = amt::text;
        END IF;
      ELSE
        UPDATE accounts SET balance = balance - amt WHERE id = t->>'from' AND (balance >= amt OR id = 'world');
        IF NOT FOUND THEN
          SELECT balance INTO bal FROM accounts WHERE id = t->>'from';
          IF NOT FOUND THEN RAISE EXCEPTION USING ERRCODE = 'P0404', MESSAGE = t->>'from'; END IF;
          RAISE EXCEPTION USING ERRCODE = 'P0402', MESSAGE = t->>'from', DETAIL = bal::text, HINT = amt::text;
        END IF;
      END IF;
      IF t->>'to' <> 'escrow' THEN
        UPDATE accounts SET balance = balance + amt WHERE id = t->>'to';
        IF NOT FOUND THEN RAISE EXCEPTION USING ERRCODE = 'P0404', MESSAGE = t->>'to'; END IF;
      END IF;
      posted_id := t->>'id';
      posted_seq := new_seq;
      RETURN NEXT;
    END LOOP;
    IF settle_job IS NOT NULL THEN
      UPDATE jobs SET settled_at = posted_at WHERE id = settle_job AND settled_at IS NULL;
    END IF;
  END
  $$;
  `,
  // The hot path checks no foreign keys. Each check read and KEY SHARE-locked the row it
  // points to: every claim locked its job again, and every ledger entry locked both of its
  // accounts, so all paid tasks share-locked the one escrow row (a multixact each time).
  // Executions are written only by the claim that takes their job in the same statement,
  // and gridx_post refuses a transfer to or from an account that does not exist.
  `
  ALTER TABLE executions DROP CONSTRAINT IF EXISTS executions_job_id_fkey;
  ALTER TABLE ledger DROP CONSTRAINT IF EXISTS ledger_debit_fkey;
  ALTER TABLE ledger DROP CONSTRAINT IF EXISTS ledger_credit_fkey;
  `,
];

/** Runs the migrations not yet applied to `schema`, one migrator at a time across processes. */
export async function migrate(pool: pg.Pool, schema: string): Promise<void> {
  const client = await pool.connect();
  try {
    // One migrator at a time across processes sharing the database (concurrent
    // CREATE SCHEMA IF NOT EXISTS can itself fail on a unique violation).
    await client.query('SELECT pg_advisory_lock(hashtext($1))', [`gridx-migrate-${schema}`]);
    try {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      await client.query(`SET search_path TO ${schema}`);
      await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)');
      const done = new Set((await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version));
      for (const [index, sql] of PG_MIGRATIONS.entries()) {
        const version = index + 1;
        if (done.has(version)) continue;
        await client.query('BEGIN');
        await client.query(sql);
        await client.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [version, new Date().toISOString()]);
        await client.query('COMMIT');
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock(hashtext($1))', [`gridx-migrate-${schema}`]);
    }
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}
