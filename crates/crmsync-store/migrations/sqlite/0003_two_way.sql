-- Two-way sync: what was last pulled, the last agreed value of each field, conflicts parked for
-- review, and the kill switch (meta key `paused`).

-- Hash of the mapped payload right after a pulled change was applied to the app row.
ALTER TABLE links ADD COLUMN pulled_hash TEXT;

-- The last value both sides agreed on, per two-way field (CRM property name, CRM form): the
-- base that tells "the app changed", "the CRM changed" and "both changed" apart.
CREATE TABLE field_base (
    sync     TEXT NOT NULL,
    local_id TEXT NOT NULL,
    field    TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (sync, local_id, field)
) WITHOUT ROWID;

-- Fields changed on both sides since their base, with `conflict = "review"`: parked until
-- `crmsync resolve`. While a record has an open conflict, neither side is written for it.
CREATE TABLE conflicts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    sync        TEXT NOT NULL,
    local_id    TEXT NOT NULL,
    crm_id      TEXT NOT NULL,
    field       TEXT NOT NULL,   -- the CRM property
    column_name TEXT NOT NULL,   -- the app column
    app_value   TEXT NOT NULL,   -- CRM form of the app's value
    crm_value   TEXT NOT NULL,
    base_value  TEXT,
    created_at  INTEGER NOT NULL,
    resolved_at INTEGER,
    resolution  TEXT             -- app | crm
);
CREATE UNIQUE INDEX conflicts_open ON conflicts (sync, local_id, field) WHERE resolved_at IS NULL;
