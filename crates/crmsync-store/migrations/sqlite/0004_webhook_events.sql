-- HubSpot webhook events as received (signature checked), one row per eventId: a redelivered
-- event is recognised and not stored twice. The poll applies the changes they announce.
CREATE TABLE webhook_events (
    event_id    TEXT PRIMARY KEY,
    received_at INTEGER NOT NULL,
    body        TEXT NOT NULL
) WITHOUT ROWID;
