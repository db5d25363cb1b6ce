-- The call log names what each call did in words common to every CRM (upsert, create,
-- associate, ...) and whether the CRM refused it for its rate limit, so counts never depend
-- on one CRM's URLs or status codes. Earlier rows are classified once from their endpoint.
ALTER TABLE calls ADD COLUMN operation TEXT NOT NULL DEFAULT '';
ALTER TABLE calls ADD COLUMN rate_limited INTEGER NOT NULL DEFAULT 0;
UPDATE calls SET operation = 'upsert' WHERE endpoint LIKE '%/batch/upsert';
UPDATE calls SET operation = 'associate' WHERE endpoint LIKE '%/associations/%';
UPDATE calls SET rate_limited = 1 WHERE status = 429;
