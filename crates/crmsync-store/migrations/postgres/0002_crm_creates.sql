-- CRM records of syncs with on_crm_create = "insert" that have no app row yet: `claimed` while
-- their row is inserted (written before the insert, so a crash leaves a trace to look up),
-- `refused` when the app database said no, with its reason. Removed when the record is linked.
-- As SQLite's migration 0007.
CREATE TABLE crm_creates (
    sync            TEXT COLLATE "C" NOT NULL,
    crm_id          TEXT COLLATE "C" NOT NULL,
    state           TEXT NOT NULL,
    rule            TEXT NOT NULL DEFAULT '',
    message         TEXT NOT NULL DEFAULT '',
    modified_ms     BIGINT NOT NULL,
    fingerprint     TEXT NOT NULL,
    first_seen      BIGINT NOT NULL,
    last_seen       BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    retry_requested BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (sync, crm_id)
);
