-- CRM records of syncs with on_crm_create = "insert" that have no app row yet: `claimed` while
-- their row is inserted (written before the insert, so a crash leaves a trace to look up),
-- `refused` when the app database said no, with its reason. Removed when the record is linked.
CREATE TABLE crm_creates (
    sync            TEXT NOT NULL,
    crm_id          TEXT NOT NULL,
    state           TEXT NOT NULL,               -- claimed | refused
    rule            TEXT NOT NULL DEFAULT '',    -- who refused: database | crm
    message         TEXT NOT NULL DEFAULT '',
    modified_ms     INTEGER NOT NULL,            -- the CRM record's, when last tried
    fingerprint     TEXT NOT NULL,               -- the sync's mapping, when last tried
    first_seen      INTEGER NOT NULL,
    last_seen       INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,  -- refusals
    retry_requested INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sync, crm_id)
) WITHOUT ROWID;
