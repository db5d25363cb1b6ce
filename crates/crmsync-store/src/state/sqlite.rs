//! The SQLite state store: WAL mode, a busy timeout, and every multi-row change in one
//! transaction. SQLite has a single writer, so claiming is an `UPDATE ... RETURNING` that no
//! other writer can interleave with.

use crate::Store;
use crate::error::StoreError;
use crate::ident::sql;
use crate::model::*;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Rows per multi-row statement: well under SQLite's 32,766 bound parameters at 9 per row.
const ROWS_PER_STATEMENT: usize = 500;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// crmsync's state in a SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Held by the one process allowed to deliver (see [`SqliteStore::open_worker`]).
    _worker_lock: Option<Arc<File>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the state database at `url` and applies migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            what: "state",
            url: url.to_string(),
            source,
        };
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(open_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(|source| StoreError::Open {
                what: "state",
                url: url.to_string(),
                source,
            })?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore {
            pool,
            _worker_lock: None,
        })
    }

    /// Opens the state database as *the* delivering process. A SQLite state database serves one
    /// worker at a time (several workers share a PostgreSQL one), so this takes an exclusive lock
    /// on `<file>.lock` (released by the OS even on SIGKILL) and then hands jobs a killed
    /// predecessor left `running` back to the queue at once instead of waiting out their lease.
    pub async fn open_worker(url: &str) -> Result<Self, StoreError> {
        let mut store = Self::open(url).await?;
        if let Some(path) = sqlite_file(url) {
            let lock_path = format!("{path}.lock");
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .map_err(|e| StoreError::Busy(format!("cannot open lock file {lock_path}: {e}")))?;
            file.try_lock().map_err(|_| {
                StoreError::Busy(format!(
                    "another crmsync process is delivering from {path}; a SQLite state database serves one worker at a time (use PostgreSQL for several)"
                ))
            })?;
            store._worker_lock = Some(Arc::new(file));
        }
        sqlx::query("UPDATE jobs SET state = 'ready', lease_until = NULL WHERE state = 'running'")
            .execute(&store.pool)
            .await?;
        Ok(store)
    }

    /// The underlying pool (for tests and diagnostics).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// The file path of a `sqlite://` URL, unless it is in memory.
fn sqlite_file(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| path.to_string())
}

impl Store for SqliteStore {
    async fn links_for(
        &self,
        sync: &str,
        keys: &[String],
    ) -> Result<HashMap<String, Link>, StoreError> {
        let mut out = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let q = format!(
                "SELECT local_id, crm_object, crm_id, pushed_hash FROM links WHERE sync = ? AND local_id IN ({marks})"
            );
            let mut query = sqlx::query(sql(q)).bind(sync);
            for k in chunk {
                query = query.bind(k);
            }
            for r in query.fetch_all(&self.pool).await? {
                out.insert(
                    r.get::<String, _>(0),
                    Link {
                        crm_object: r.get(1),
                        crm_id: r.get(2),
                        pushed_hash: r.get(3),
                    },
                );
            }
        }
        Ok(out)
    }

    async fn link(&self, sync: &str, local_id: &str) -> Result<Option<Link>, StoreError> {
        let row = sqlx::query(
            "SELECT crm_object, crm_id, pushed_hash FROM links WHERE sync = ? AND local_id = ?",
        )
        .bind(sync)
        .bind(local_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| Link {
            crm_object: r.get(0),
            crm_id: r.get(1),
            pushed_hash: r.get(2),
        }))
    }

    async fn enqueue(&self, jobs: &[NewJob], now: i64) -> Result<(), StoreError> {
        if jobs.is_empty() {
            return Ok(());
        }
        // One multi-row statement per chunk: with SQLite behind a worker thread, the round
        // trip per statement costs more than the row itself.
        let mut tx = self.pool.begin().await?;
        for chunk in jobs.chunks(ROWS_PER_STATEMENT) {
            let values =
                vec!["(?, ?, 'push', 'ready', ?, ?, ?, 0, ?, ?, ?)"; chunk.len()].join(", ");
            let q = format!(
                "INSERT INTO jobs (sync, local_id, direction, state, payload, hash, priority, attempts, run_at, created_at, updated_at)
                 VALUES {values}
                 ON CONFLICT (sync, local_id, direction) DO UPDATE SET
                   payload = excluded.payload, hash = excluded.hash,
                   priority = max(jobs.priority, excluded.priority),
                   state = CASE WHEN jobs.state = 'running' THEN 'running'
                                WHEN jobs.state IN ('retrying', 'dead') AND jobs.hash = excluded.hash THEN jobs.state
                                ELSE 'ready' END,
                   attempts = CASE WHEN jobs.hash = excluded.hash AND jobs.state != 'done' THEN jobs.attempts ELSE 0 END,
                   run_at = CASE WHEN jobs.hash = excluded.hash AND jobs.state != 'done' THEN jobs.run_at ELSE excluded.run_at END,
                   last_error = CASE WHEN jobs.hash = excluded.hash THEN jobs.last_error ELSE NULL END,
                   updated_at = excluded.updated_at"
            );
            let mut query = sqlx::query(sql(q));
            for j in chunk {
                query = query
                    .bind(&j.sync)
                    .bind(&j.local_id)
                    .bind(&j.payload)
                    .bind(&j.hash)
                    .bind(j.priority)
                    .bind(now)
                    .bind(now)
                    .bind(now);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn claim(
        &self,
        sync: &str,
        limit: usize,
        lease: Duration,
        now: i64,
    ) -> Result<Vec<Job>, StoreError> {
        let lease_until = now + lease.as_millis() as i64;
        // One index range per state, each walked in claim order and cut at the limit: an `OR`
        // across states would scan every queued job on each claim.
        let rows = sqlx::query(
            "UPDATE jobs SET state = 'running', lease_until = ?4, attempts = attempts + 1, updated_at = ?2
             WHERE id IN (
               SELECT id FROM (
                 SELECT id FROM (SELECT id FROM jobs WHERE sync = ?1 AND state = 'ready' AND run_at <= ?2
                                 ORDER BY priority DESC, run_at, id LIMIT ?3)
                 UNION ALL
                 SELECT id FROM (SELECT id FROM jobs WHERE sync = ?1 AND state = 'retrying' AND run_at <= ?2
                                 ORDER BY priority DESC, run_at, id LIMIT ?3)
                 UNION ALL
                 SELECT id FROM (SELECT id FROM jobs WHERE sync = ?1 AND state = 'running' AND lease_until < ?2
                                 ORDER BY priority DESC, run_at, id LIMIT ?3))
               LIMIT ?3)
             RETURNING id, sync, local_id, payload, hash, attempts",
        )
        .bind(sync)
        .bind(now)
        .bind(limit as i64)
        .bind(lease_until)
        .fetch_all(&self.pool)
        .await?;
        let mut jobs: Vec<Job> = rows
            .into_iter()
            .map(|r| Job {
                id: r.get(0),
                sync: r.get(1),
                local_id: r.get(2),
                payload: r.get(3),
                hash: r.get(4),
                attempts: r.get(5),
            })
            .collect();
        jobs.sort_by_key(|j| j.id);
        Ok(jobs)
    }

    async fn complete(
        &self,
        sync: &str,
        crm_object: &str,
        done: &[Delivered],
    ) -> Result<(), StoreError> {
        if done.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        for chunk in done.chunks(ROWS_PER_STATEMENT) {
            let values = vec!["(?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let mut links = sqlx::query(sql(format!(
                "INSERT INTO links (sync, local_id, crm_object, crm_id, pushed_hash, pushed_at) VALUES {values}
                 ON CONFLICT (sync, local_id) DO UPDATE SET
                   crm_object = excluded.crm_object, crm_id = excluded.crm_id,
                   pushed_hash = excluded.pushed_hash, pushed_at = excluded.pushed_at"
            )));
            for d in chunk {
                links = links
                    .bind(sync)
                    .bind(&d.local_id)
                    .bind(crm_object)
                    .bind(&d.crm_id)
                    .bind(&d.hash)
                    .bind(now);
            }
            links.execute(&mut *tx).await?;

            // A job whose payload changed while it was in flight goes back to ready, to carry
            // the new state; otherwise it is done (and its row is reused by the next change).
            let values = vec!["(?, ?)"; chunk.len()].join(", ");
            let mut jobs = sqlx::query(sql(format!(
                "WITH delivered (id, hash) AS (VALUES {values})
                 UPDATE jobs SET
                   state = CASE WHEN hash = (SELECT d.hash FROM delivered d WHERE d.id = jobs.id) THEN 'done' ELSE 'ready' END,
                   attempts = CASE WHEN hash = (SELECT d.hash FROM delivered d WHERE d.id = jobs.id) THEN attempts ELSE 0 END,
                   lease_until = NULL, last_error = NULL, updated_at = ?
                 WHERE id IN (SELECT id FROM delivered)"
            )));
            for d in chunk {
                jobs = jobs.bind(d.job_id).bind(&d.hash);
            }
            jobs.bind(now).execute(&mut *tx).await?;

            let marks = vec!["?"; chunk.len()].join(", ");
            let mut q = sqlx::query(sql(format!(
                "DELETE FROM quarantine WHERE sync = ? AND local_id IN ({marks})"
            )))
            .bind(sync);
            for d in chunk {
                q = q.bind(&d.local_id);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn fail(
        &self,
        job_ids: &[i64],
        error: &str,
        run_at_ms: i64,
        dead: bool,
    ) -> Result<(), StoreError> {
        if job_ids.is_empty() {
            return Ok(());
        }
        let state = if dead { "dead" } else { "retrying" };
        let mut tx = self.pool.begin().await?;
        for id in job_ids {
            sqlx::query(
                "UPDATE jobs SET state = ?, run_at = ?, lease_until = NULL, last_error = ?, updated_at = ? WHERE id = ?",
            )
            .bind(state)
            .bind(run_at_ms)
            .bind(error)
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn quarantine(&self, entries: &[QuarantineEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for e in entries {
            sqlx::query(
                "INSERT INTO quarantine (sync, local_id, kind, field, rule, message, first_seen, last_seen, attempts)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)
                 ON CONFLICT (sync, local_id) DO UPDATE SET
                   kind = excluded.kind, field = excluded.field, rule = excluded.rule,
                   message = excluded.message, last_seen = excluded.last_seen,
                   attempts = quarantine.attempts + 1, retry_requested = 0",
            )
            .bind(&e.sync)
            .bind(&e.local_id)
            .bind(e.kind.as_str())
            .bind(&e.field)
            .bind(&e.rule)
            .bind(&e.message)
            .bind(e.first_seen_ms)
            .bind(e.last_seen_ms)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM jobs WHERE sync = ? AND local_id = ?")
                .bind(&e.sync)
                .bind(&e.local_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn clear_quarantine(&self, sync: &str, local_ids: &[String]) -> Result<(), StoreError> {
        if local_ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for id in local_ids {
            sqlx::query("DELETE FROM quarantine WHERE sync = ? AND local_id = ?")
                .bind(sync)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn quarantined(&self, sync: &str) -> Result<Vec<QuarantineEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT sync, local_id, kind, field, rule, message, first_seen, last_seen, attempts, retry_requested
             FROM quarantine WHERE sync = ? ORDER BY local_id",
        )
        .bind(sync)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| QuarantineEntry {
                sync: r.get(0),
                local_id: r.get(1),
                kind: QuarantineKind::parse(r.get::<&str, _>(2)),
                field: r.get(3),
                rule: r.get(4),
                message: r.get(5),
                first_seen_ms: r.get(6),
                last_seen_ms: r.get(7),
                attempts: r.get(8),
                retry_requested: r.get::<i64, _>(9) != 0,
            })
            .collect())
    }

    async fn quarantined_among(
        &self,
        sync: &str,
        keys: &[String],
    ) -> Result<HashSet<String>, StoreError> {
        let mut out = HashSet::new();
        for chunk in keys.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let q =
                format!("SELECT local_id FROM quarantine WHERE sync = ? AND local_id IN ({marks})");
            let mut query = sqlx::query_scalar::<_, String>(sql(q)).bind(sync);
            for k in chunk {
                query = query.bind(k);
            }
            out.extend(query.fetch_all(&self.pool).await?);
        }
        Ok(out)
    }

    async fn recheck_keys(&self, sync: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT local_id FROM quarantine WHERE sync = ? AND (kind = 'held' OR retry_requested != 0) ORDER BY local_id",
        )
        .bind(sync)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn calls_since(&self, since_ms: i64) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM calls WHERE at_ms >= ?")
                .bind(since_ms)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn record_calls(&self, calls: &[CallRow]) -> Result<(), StoreError> {
        if calls.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for chunk in calls.chunks(ROWS_PER_STATEMENT) {
            let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let mut q = sqlx::query(sql(format!(
                "INSERT INTO calls (at_ms, method, endpoint, status, attempt, latency_ms, records, rate_limits, error) VALUES {values}"
            )));
            for c in chunk {
                q = q
                    .bind(c.at_ms)
                    .bind(&c.method)
                    .bind(&c.endpoint)
                    .bind(c.status.map(i64::from))
                    .bind(i64::from(c.attempt))
                    .bind(c.latency_ms)
                    .bind(i64::from(c.records))
                    .bind(&c.rate_limits)
                    .bind(&c.error);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn cursor(&self, sync: &str, mechanism: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT value FROM cursors WHERE sync = ? AND direction = 'push' AND mechanism = ?",
        )
        .bind(sync)
        .bind(mechanism)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn set_cursor(&self, sync: &str, mechanism: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO cursors (sync, direction, mechanism, value, updated_at) VALUES (?, 'push', ?, ?, ?)
             ON CONFLICT (sync, direction, mechanism) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(sync)
        .bind(mechanism)
        .bind(value)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn counts(&self, sync: &str) -> Result<QueueCounts, StoreError> {
        let jobs = sqlx::query(
            "SELECT COALESCE(SUM(state IN ('ready', 'running', 'retrying')), 0), COALESCE(SUM(state = 'dead'), 0)
             FROM jobs WHERE sync = ?",
        )
        .bind(sync)
        .fetch_one(&self.pool)
        .await?;
        let q = sqlx::query(
            "SELECT COALESCE(SUM(kind = 'invalid'), 0), COALESCE(SUM(kind = 'rejected'), 0), COALESCE(SUM(kind = 'held'), 0)
             FROM quarantine WHERE sync = ?",
        )
        .bind(sync)
        .fetch_one(&self.pool)
        .await?;
        let linked: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM links WHERE sync = ? AND crm_id IS NOT NULL")
                .bind(sync)
                .fetch_one(&self.pool)
                .await?;
        Ok(QueueCounts {
            pending: jobs.get(0),
            dead: jobs.get(1),
            invalid: q.get(0),
            rejected: q.get(1),
            held: q.get(2),
            linked,
        })
    }

    async fn call_summary(&self, since_ms: i64) -> Result<CallSummary, StoreError> {
        let r = sqlx::query(
            "SELECT COUNT(*),
                    COALESCE(SUM(attempt > 1), 0),
                    COALESCE(SUM(status = 429), 0),
                    COALESCE(SUM(status IS NULL OR status < 200 OR (status >= 300 AND NOT (method = 'GET' AND status = 404))), 0),
                    COALESCE(SUM(CASE WHEN status BETWEEN 200 AND 299 AND endpoint LIKE '%/batch/upsert' THEN records ELSE 0 END), 0),
                    COALESCE(SUM(status BETWEEN 200 AND 299 AND endpoint LIKE '%/batch/upsert'), 0),
                    COALESCE(SUM(status BETWEEN 200 AND 299 AND endpoint LIKE '%/associations/%'), 0)
             FROM calls WHERE at_ms >= ?",
        )
        .bind(since_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(CallSummary {
            calls: r.get(0),
            retries: r.get(1),
            rate_limited: r.get(2),
            errors: r.get(3),
            upserted: r.get(4),
            upsert_calls: r.get(5),
            association_calls: r.get(6),
        })
    }
}
