-- What the CRM says about its records' lives: webhook events waiting to be applied, records
-- deleted (archived) in the CRM, and merges that re-pointed our links.

-- Set once the event's records were read and applied; NULL = still to do (survives a crash).
ALTER TABLE webhook_events ADD COLUMN applied_at INTEGER;
CREATE INDEX webhook_events_pending ON webhook_events (applied_at, received_at);

-- A linked CRM record that is gone (archived or deleted). `held` rows wait for a person (the
-- mass-deletion guard tripped: `crmsync deletions`); `applied` rows had the sync's
-- `on_crm_delete` action done. Removed when the record comes back (restored in the CRM) or a
-- person rejects the deletion.
CREATE TABLE crm_deletions (
    sync     TEXT NOT NULL,
    local_id TEXT NOT NULL,
    crm_id   TEXT NOT NULL,
    seen_at  INTEGER NOT NULL,
    state    TEXT NOT NULL,   -- held | applied
    action   TEXT,            -- flag | unlink, once applied
    PRIMARY KEY (sync, local_id)
) WITHOUT ROWID;
CREATE INDEX crm_deletions_seen ON crm_deletions (sync, seen_at);

-- Links re-pointed because the CRM merged their record into another one. `shared_with` names
-- the other app record that maps to the survivor too (two app records, one CRM record).
CREATE TABLE crm_merges (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    sync        TEXT NOT NULL,
    local_id    TEXT NOT NULL,
    from_crm_id TEXT NOT NULL,
    to_crm_id   TEXT NOT NULL,
    shared_with TEXT,
    at_ms       INTEGER NOT NULL
);
