-- Several workers and the seams they need: owned job leases, link versions (a capture planned
-- before an inbound commit is stale), durable write-backs, children released by their parent,
-- the call log per connection, leader leases, the shared API-call reservation, inbound hints.

-- Grows with every inbound commit for the record; the capture's optimistic check.
ALTER TABLE links ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
-- The CRM id last written into the app's write_back_column (NULL: not written yet).
ALTER TABLE links ADD COLUMN written_back_id TEXT;
CREATE INDEX links_crm_id ON links (sync, crm_id);

-- The worker holding a running job; settling needs it.
ALTER TABLE jobs ADD COLUMN owner TEXT;
CREATE INDEX jobs_owner ON jobs (owner) WHERE owner IS NOT NULL;

-- A record held for its parent names it; settling the parent releases the record.
ALTER TABLE quarantine ADD COLUMN waits_sync TEXT;
ALTER TABLE quarantine ADD COLUMN waits_key TEXT;
CREATE INDEX quarantine_waits ON quarantine (waits_sync, waits_key) WHERE waits_sync IS NOT NULL;

-- The CRM connection a call went to (budgets are per connection).
ALTER TABLE calls ADD COLUMN connection TEXT NOT NULL DEFAULT 'crm';

-- At most one owner per periodic task (capture of a sync, webhook application, ...).
CREATE TABLE leases (
    task     TEXT PRIMARY KEY,
    owner    TEXT NOT NULL,
    until_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- Every API call reserved in a rolling window (kept for the longest window), and the calls of
-- each budget day: what all workers of a connection together may still spend.
CREATE TABLE call_slots (
    connection TEXT NOT NULL,
    limit_name TEXT NOT NULL,
    at_ms      INTEGER NOT NULL
);
CREATE INDEX call_slots_at ON call_slots (connection, limit_name, at_ms);
CREATE TABLE call_days (
    connection TEXT NOT NULL,
    day_start  INTEGER NOT NULL,
    used       INTEGER NOT NULL,
    PRIMARY KEY (connection, day_start)
) WITHOUT ROWID;

-- CRM records of a sync to read back and apply (from webhook events, or found edited just
-- before a push); applied by the sync's leader.
CREATE TABLE inbound_hints (
    sync     TEXT NOT NULL,
    crm_id   TEXT NOT NULL,
    reason   TEXT NOT NULL,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (sync, crm_id)
) WITHOUT ROWID;
CREATE INDEX inbound_hints_added ON inbound_hints (sync, added_at);
