-- `crmsync retry` asks for a quarantined record to be looked at again in the next pass, even if
-- its row did not change.
ALTER TABLE quarantine ADD COLUMN retry_requested INTEGER NOT NULL DEFAULT 0;
