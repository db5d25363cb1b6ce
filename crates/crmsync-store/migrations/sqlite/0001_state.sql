-- crmsync state database, SQLite flavour. Times are milliseconds since the Unix epoch.

-- One row per synced app record: where it lives in the CRM and what was last accepted there.
CREATE TABLE links (
    sync        TEXT NOT NULL,
    local_id    TEXT NOT NULL,
    crm_object  TEXT NOT NULL,
    crm_id      TEXT,
    pushed_hash TEXT,
    pushed_at   INTEGER,
    PRIMARY KEY (sync, local_id)
) WITHOUT ROWID;

-- The durable queue: at most one live job per record and direction; new changes update it.
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    sync        TEXT NOT NULL,
    local_id    TEXT NOT NULL,
    direction   TEXT NOT NULL DEFAULT 'push',
    state       TEXT NOT NULL DEFAULT 'ready',   -- ready | running | retrying | dead
    payload     TEXT NOT NULL,
    hash        TEXT NOT NULL,
    priority    INTEGER NOT NULL DEFAULT 0,      -- higher first
    attempts    INTEGER NOT NULL DEFAULT 0,
    run_at      INTEGER NOT NULL,
    lease_until INTEGER,
    last_error  TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (sync, local_id, direction)
);
CREATE INDEX jobs_claim ON jobs (sync, state, priority DESC, run_at, id);

-- Per (sync, mechanism) position of change capture; advanced only after the changes are queued.
CREATE TABLE cursors (
    sync       TEXT NOT NULL,
    direction  TEXT NOT NULL,
    mechanism  TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (sync, direction, mechanism)
) WITHOUT ROWID;

-- Append-only log of every CRM request, retries included.
CREATE TABLE calls (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms       INTEGER NOT NULL,
    method      TEXT NOT NULL,
    endpoint    TEXT NOT NULL,
    status      INTEGER,
    attempt     INTEGER NOT NULL,
    latency_ms  INTEGER NOT NULL,
    records     INTEGER NOT NULL,
    rate_limits TEXT,
    error       TEXT
);
CREATE INDEX calls_at ON calls (at_ms);

-- Records that are not sent, with the reason: invalid (a rule failed), rejected (the CRM said
-- no), held (waiting for something, e.g. a confirmation). Cleared when the record syncs.
CREATE TABLE quarantine (
    sync       TEXT NOT NULL,
    local_id   TEXT NOT NULL,
    kind       TEXT NOT NULL,
    field      TEXT,
    rule       TEXT NOT NULL,
    message    TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (sync, local_id)
) WITHOUT ROWID;

-- Facts the state database is bound to (e.g. which CRM account it belongs to).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
