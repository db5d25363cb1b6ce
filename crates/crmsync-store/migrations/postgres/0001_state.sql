-- crmsync state database, PostgreSQL flavour: the whole schema the SQLite migrations 0001-0006
-- add up to, for any number of `crmsync run` workers sharing it. Times are milliseconds since
-- the Unix epoch (BIGINT). Identifier-like text columns are COLLATE "C": they sort and compare
-- bytewise, as SQLite does, whatever the server's locale (keyset paging by local id, lock
-- order by key, the order `status` lists things in).

-- One row per synced app record: where it lives in the CRM and what was last accepted there.
-- `version` grows with every inbound commit (a capture planned before one is stale);
-- `written_back_id` is the CRM id last written into the app's write_back_column.
CREATE TABLE links (
    sync            TEXT COLLATE "C" NOT NULL,
    local_id        TEXT COLLATE "C" NOT NULL,
    crm_object      TEXT NOT NULL,
    crm_id          TEXT COLLATE "C",
    pushed_hash     TEXT,
    pushed_at       BIGINT,
    pulled_hash     TEXT,
    version         BIGINT NOT NULL DEFAULT 0,
    written_back_id TEXT COLLATE "C",
    PRIMARY KEY (sync, local_id)
);
CREATE INDEX links_crm_id ON links (sync, crm_id);

-- The durable queue: at most one job per record and direction; new changes update it.
-- state: ready | running | retrying | dead | done (a done row is reused by the next change).
-- `owner` is the worker holding a running job; settling needs it.
CREATE TABLE jobs (
    id          BIGSERIAL PRIMARY KEY,
    sync        TEXT COLLATE "C" NOT NULL,
    local_id    TEXT COLLATE "C" NOT NULL,
    direction   TEXT NOT NULL DEFAULT 'push',
    state       TEXT NOT NULL DEFAULT 'ready',
    payload     TEXT NOT NULL,
    hash        TEXT NOT NULL,
    priority    INTEGER NOT NULL DEFAULT 0,      -- higher first
    attempts    BIGINT NOT NULL DEFAULT 0,
    run_at      BIGINT NOT NULL,
    lease_until BIGINT,
    last_error  TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    owner       TEXT COLLATE "C",
    UNIQUE (sync, local_id, direction)
);
-- Claims walk one of these in claim order. Partial, so done and dead rows (one per record
-- ever synced) cost a claim nothing.
CREATE INDEX jobs_due ON jobs (sync, priority DESC, run_at, id) WHERE state IN ('ready', 'retrying');
CREATE INDEX jobs_leased ON jobs (sync, lease_until) WHERE state = 'running';
CREATE INDEX jobs_owner ON jobs (owner) WHERE owner IS NOT NULL;

-- Per (sync, direction, mechanism) position of change capture; advanced only after the
-- changes are queued.
CREATE TABLE cursors (
    sync       TEXT COLLATE "C" NOT NULL,
    direction  TEXT NOT NULL,
    mechanism  TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (sync, direction, mechanism)
);

-- Append-only log of every CRM request, retries included, per CRM connection.
CREATE TABLE calls (
    id          BIGSERIAL PRIMARY KEY,
    connection  TEXT COLLATE "C" NOT NULL DEFAULT 'crm',
    at_ms       BIGINT NOT NULL,
    method      TEXT NOT NULL,
    endpoint    TEXT NOT NULL,
    status      INTEGER,
    attempt     BIGINT NOT NULL,
    latency_ms  BIGINT NOT NULL,
    records     BIGINT NOT NULL,
    rate_limits TEXT,
    error       TEXT
);
CREATE INDEX calls_at ON calls (at_ms);

-- Records that are not sent, with the reason: invalid (a rule failed), rejected (the CRM said
-- no), held (waiting for something, e.g. a confirmation or a parent named by waits_*).
-- Cleared when the record syncs. `retry_requested`: look at it again in the next capture.
CREATE TABLE quarantine (
    sync            TEXT COLLATE "C" NOT NULL,
    local_id        TEXT COLLATE "C" NOT NULL,
    kind            TEXT NOT NULL,
    field           TEXT,
    rule            TEXT NOT NULL,
    message         TEXT NOT NULL,
    first_seen      BIGINT NOT NULL,
    last_seen       BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 1,
    retry_requested BOOLEAN NOT NULL DEFAULT false,
    waits_sync      TEXT COLLATE "C",
    waits_key       TEXT COLLATE "C",
    PRIMARY KEY (sync, local_id)
);
CREATE INDEX quarantine_waits ON quarantine (waits_sync, waits_key) WHERE waits_sync IS NOT NULL;

-- Facts the state database is bound to (e.g. which CRM account it belongs to), and the kill
-- switch (key `paused`).
CREATE TABLE meta (
    key   TEXT COLLATE "C" PRIMARY KEY,
    value TEXT NOT NULL
);

-- The last value both sides agreed on, per two-way field (CRM property name, CRM form).
CREATE TABLE field_base (
    sync     TEXT COLLATE "C" NOT NULL,
    local_id TEXT COLLATE "C" NOT NULL,
    field    TEXT COLLATE "C" NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (sync, local_id, field)
);

-- Fields changed on both sides since their base, parked until `crmsync resolve`.
CREATE TABLE conflicts (
    id          BIGSERIAL PRIMARY KEY,
    sync        TEXT COLLATE "C" NOT NULL,
    local_id    TEXT COLLATE "C" NOT NULL,
    crm_id      TEXT NOT NULL,
    field       TEXT COLLATE "C" NOT NULL,   -- the CRM property
    column_name TEXT NOT NULL,               -- the app column
    app_value   TEXT NOT NULL,               -- CRM form of the app's value
    crm_value   TEXT NOT NULL,
    base_value  TEXT,
    created_at  BIGINT NOT NULL,
    resolved_at BIGINT,
    resolution  TEXT                         -- app | crm
);
CREATE UNIQUE INDEX conflicts_open ON conflicts (sync, local_id, field) WHERE resolved_at IS NULL;

-- Webhook events as received, one row per dedup key (a redelivery is not stored twice);
-- `applied_at` is set once their records were read and applied (NULL: still to do).
CREATE TABLE webhook_events (
    event_id    TEXT COLLATE "C" PRIMARY KEY,
    received_at BIGINT NOT NULL,
    body        TEXT NOT NULL,
    applied_at  BIGINT
);
CREATE INDEX webhook_events_pending ON webhook_events (received_at, event_id) WHERE applied_at IS NULL;

-- A linked CRM record that is gone (archived or deleted): held for a person, or applied.
CREATE TABLE crm_deletions (
    sync     TEXT COLLATE "C" NOT NULL,
    local_id TEXT COLLATE "C" NOT NULL,
    crm_id   TEXT NOT NULL,
    seen_at  BIGINT NOT NULL,
    state    TEXT NOT NULL,   -- held | applied
    action   TEXT,            -- flag | unlink, once applied
    PRIMARY KEY (sync, local_id)
);
CREATE INDEX crm_deletions_seen ON crm_deletions (sync, seen_at);

-- Links re-pointed because the CRM merged their record into another one.
CREATE TABLE crm_merges (
    id          BIGSERIAL PRIMARY KEY,
    sync        TEXT COLLATE "C" NOT NULL,
    local_id    TEXT COLLATE "C" NOT NULL,
    from_crm_id TEXT NOT NULL,
    to_crm_id   TEXT NOT NULL,
    shared_with TEXT,
    at_ms       BIGINT NOT NULL
);

-- At most one owner per periodic task (capture of a sync, webhook application, ...).
CREATE TABLE leases (
    task     TEXT COLLATE "C" PRIMARY KEY,
    owner    TEXT COLLATE "C" NOT NULL,
    until_ms BIGINT NOT NULL
);

-- Every API call reserved in a rolling window (kept a little longer than the window), and the
-- calls of each budget day: what all workers of a connection together may still spend.
CREATE TABLE call_slots (
    connection TEXT COLLATE "C" NOT NULL,
    limit_name TEXT COLLATE "C" NOT NULL,
    at_ms      BIGINT NOT NULL
);
CREATE INDEX call_slots_at ON call_slots (connection, limit_name, at_ms);
CREATE TABLE call_days (
    connection TEXT COLLATE "C" NOT NULL,
    day_start  BIGINT NOT NULL,
    used       BIGINT NOT NULL,
    PRIMARY KEY (connection, day_start)
);

-- CRM records of a sync to read back and apply (from webhook events, or found edited just
-- before a push); applied by the sync's leader.
CREATE TABLE inbound_hints (
    sync     TEXT COLLATE "C" NOT NULL,
    crm_id   TEXT COLLATE "C" NOT NULL,
    reason   TEXT NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (sync, crm_id)
);
CREATE INDEX inbound_hints_added ON inbound_hints (sync, added_at);
