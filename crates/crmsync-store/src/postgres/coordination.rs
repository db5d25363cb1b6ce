//! [`Coordination`] on PostgreSQL: leader leases, the API-call reservation every worker of a
//! CRM connection shares, the kill switch, bindings and the call log.
//!
//! - **Reservations** of one connection are serialized by a transaction-scoped advisory lock
//!   on the connection's name ([`LockSpace::Reservation`]), taken in a statement of its own
//!   before anything is counted: the count then sees every slot the previous holder granted,
//!   so the granted calls of all workers together never exceed a window's `max` nor the day's
//!   allowance. The algorithm is SQLite's: count each window and the day, answer `Wait` with
//!   the instant a slot frees, or insert the slots and prune old ones. Workers' clocks differ
//!   a little, so slots are kept [`SLOT_KEEP_MS`] beyond their window: a reservation stamped
//!   slightly earlier than one already granted still counts the slots it overlaps. A window
//!   with `min_gap_ms` also waits until its latest slot is that old (pacing).
//! - **Leader leases** are one upsert whose `WHERE` admits the holder or an expired lease; the
//!   upsert locks the row and rechecks it, so two owners never both get it.
//! - **Bindings** insert if absent and otherwise read the value bound first.

use super::decode::get;
use super::{LockSpace, PgState, lock_names};
use crate::Coordination;
use crate::error::StoreError;
use crate::model::*;
use std::time::Duration;

/// The `meta` key of the kill switch.
const PAUSED: &str = "paused";

/// A budget day.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// How long a reserved slot is kept beyond its window (see the module doc).
const SLOT_KEEP_MS: i64 = 60_000;

impl Coordination for PgState {
    async fn try_lead(
        &self,
        task: &str,
        owner: &str,
        ttl: Duration,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let until = now_ms.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        let row = sqlx::query(
            "INSERT INTO leases (task, owner, until_ms) VALUES ($1, $2, $3)
             ON CONFLICT (task) DO UPDATE SET owner = excluded.owner, until_ms = excluded.until_ms
             WHERE leases.owner = excluded.owner OR leases.until_ms < $4
             RETURNING owner",
        )
        .bind(task)
        .bind(owner)
        .bind(until)
        .bind(now_ms)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.is_some())
    }

    async fn resign(&self, owner: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE owner = $1")
            .bind(owner)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn leaders(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT task, owner, until_ms FROM leases ORDER BY task")
            .fetch_all(self.pool())
            .await?;
        let t = "leases";
        rows.iter()
            .map(|r| Ok((get(r, 0, t)?, get(r, 1, t)?, get(r, 2, t)?)))
            .collect()
    }

    async fn reserve_call(&self, req: &Reservation) -> Result<Grant, StoreError> {
        let now = req.now_ms;
        let names: Vec<&str> = req.windows.iter().map(|w| w.name.as_str()).collect();
        let lengths: Vec<i64> = req.windows.iter().map(|w| w.length_ms).collect();
        let mut tx = self.tx().await?;
        lock_names(&mut tx, LockSpace::Reservation, &[req.connection.as_str()]).await?;

        let mut wait: Option<(i64, String)> = None;
        if !req.windows.is_empty() {
            let counts: Vec<i64> = sqlx::query_scalar(
                "SELECT (SELECT COUNT(*) FROM call_slots s
                         WHERE s.connection = $1 AND s.limit_name = w.name AND s.at_ms > $2 - w.len)
                 FROM unnest($3::text[], $4::bigint[]) WITH ORDINALITY AS w (name, len, ord)
                 ORDER BY w.ord",
            )
            .bind(&req.connection)
            .bind(now)
            .bind(&names)
            .bind(&lengths)
            .fetch_all(&mut *tx)
            .await?;
            for (w, n) in req.windows.iter().zip(counts) {
                if w.min_gap_ms > 0 {
                    let last: Option<i64> = sqlx::query_scalar(
                        "SELECT MAX(at_ms) FROM call_slots WHERE connection = $1 AND limit_name = $2",
                    )
                    .bind(&req.connection)
                    .bind(&w.name)
                    .fetch_one(&mut *tx)
                    .await?;
                    if let Some(until) = last.map(|l| l.saturating_add(w.min_gap_ms))
                        && until > now
                    {
                        wait_for_latest(&mut wait, until, &w.name);
                    }
                }
                if n < i64::from(w.max) {
                    continue;
                }
                // The slot whose expiry makes room: the (count - max + 1)-th oldest.
                let at: Option<i64> = sqlx::query_scalar(
                    "SELECT at_ms FROM call_slots WHERE connection = $1 AND limit_name = $2 AND at_ms > $3
                     ORDER BY at_ms LIMIT 1 OFFSET $4",
                )
                .bind(&req.connection)
                .bind(&w.name)
                .bind(now - w.length_ms)
                .bind(n - i64::from(w.max))
                .fetch_optional(&mut *tx)
                .await?;
                let until = at.unwrap_or(now) + w.length_ms;
                wait_for_latest(&mut wait, until, &w.name);
            }
        }
        if let Some(day) = &req.day {
            let used: Option<i64> = sqlx::query_scalar(
                "SELECT used FROM call_days WHERE connection = $1 AND day_start = $2",
            )
            .bind(&req.connection)
            .bind(day.start_ms)
            .fetch_optional(&mut *tx)
            .await?;
            if used.unwrap_or(0) >= day.allowance {
                let until = day.start_ms + DAY_MS;
                wait_for_latest(&mut wait, until, "day");
            }
        }
        if let Some((until_ms, limit)) = wait {
            tx.commit().await?;
            return Ok(Grant::Wait { until_ms, limit });
        }

        if !req.windows.is_empty() {
            sqlx::query(
                "WITH pruned AS (
                   DELETE FROM call_slots s USING unnest($2::text[], $3::bigint[]) AS w (name, len)
                   WHERE s.connection = $1 AND s.limit_name = w.name AND s.at_ms <= $4 - w.len - $5)
                 INSERT INTO call_slots (connection, limit_name, at_ms)
                 SELECT $1, name, $4 FROM unnest($2::text[]) AS name",
            )
            .bind(&req.connection)
            .bind(&names)
            .bind(&lengths)
            .bind(now)
            .bind(SLOT_KEEP_MS)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(day) = &req.day {
            sqlx::query(
                "WITH counted AS (
                   INSERT INTO call_days (connection, day_start, used) VALUES ($1, $2, 1)
                   ON CONFLICT (connection, day_start) DO UPDATE SET used = call_days.used + 1)
                 DELETE FROM call_days WHERE connection = $1 AND day_start < $3",
            )
            .bind(&req.connection)
            .bind(day.start_ms)
            .bind(day.start_ms - 7 * DAY_MS)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Grant::Granted)
    }

    async fn calls_reserved(&self, connection: &str, day_start_ms: i64) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT used FROM call_days WHERE connection = $1 AND day_start = $2",
        )
        .bind(connection)
        .bind(day_start_ms)
        .fetch_optional(self.pool())
        .await?
        .unwrap_or(0))
    }

    async fn paused(&self) -> Result<bool, StoreError> {
        Ok(self.binding(PAUSED).await?.as_deref() == Some("1"))
    }

    async fn set_paused(&self, paused: bool) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(PAUSED)
        .bind(if paused { "1" } else { "0" })
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn binding(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(self.pool())
            .await?)
    }

    async fn bind(&self, key: &str, value: &str) -> Result<Option<String>, StoreError> {
        // Two statements, not one: when the insert had to wait for a concurrent binder, only a
        // later statement's snapshot sees the value that one committed.
        let inserted = sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING RETURNING key",
        )
        .bind(key)
        .bind(value)
        .fetch_optional(self.pool())
        .await?;
        if inserted.is_some() {
            return Ok(None);
        }
        Ok(Some(
            sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
                .bind(key)
                .fetch_one(self.pool())
                .await?,
        ))
    }

    async fn prune_calls(&self, before_ms: i64, limit: u64) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "DELETE FROM calls WHERE id IN (SELECT id FROM calls WHERE at_ms < $1 LIMIT $2)",
        )
        .bind(before_ms)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .execute(self.pool())
        .await?
        .rows_affected())
    }

    async fn record_calls(&self, calls: &[CallRow]) -> Result<(), StoreError> {
        if calls.is_empty() {
            return Ok(());
        }
        let connections: Vec<&str> = calls.iter().map(|c| c.connection.as_str()).collect();
        let at: Vec<i64> = calls.iter().map(|c| c.at_ms).collect();
        let methods: Vec<&str> = calls.iter().map(|c| c.method.as_str()).collect();
        let endpoints: Vec<&str> = calls.iter().map(|c| c.endpoint.as_str()).collect();
        let statuses: Vec<Option<i32>> = calls.iter().map(|c| c.status.map(i32::from)).collect();
        let attempts: Vec<i64> = calls.iter().map(|c| i64::from(c.attempt)).collect();
        let latencies: Vec<i64> = calls.iter().map(|c| c.latency_ms).collect();
        let records: Vec<i64> = calls.iter().map(|c| i64::from(c.records)).collect();
        let rate_limits: Vec<Option<&str>> =
            calls.iter().map(|c| c.rate_limits.as_deref()).collect();
        let errors: Vec<Option<&str>> = calls.iter().map(|c| c.error.as_deref()).collect();
        let operations: Vec<&str> = calls.iter().map(|c| c.operation.as_str()).collect();
        let rate_limited: Vec<bool> = calls.iter().map(|c| c.rate_limited).collect();
        // One statement for the whole batch: atomic, and one round trip.
        sqlx::query(
            "INSERT INTO calls (connection, at_ms, method, endpoint, status, attempt, latency_ms, records, rate_limits, error, operation, rate_limited)
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::int4[],
                                  $6::bigint[], $7::bigint[], $8::bigint[], $9::text[], $10::text[],
                                  $11::text[], $12::bool[])",
        )
        .bind(&connections)
        .bind(&at)
        .bind(&methods)
        .bind(&endpoints)
        .bind(&statuses)
        .bind(&attempts)
        .bind(&latencies)
        .bind(&records)
        .bind(&rate_limits)
        .bind(&errors)
        .bind(&operations)
        .bind(&rate_limited)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn call_summary(&self, since_ms: i64) -> Result<CallSummary, StoreError> {
        let r = sqlx::query(
            "SELECT COUNT(*),
                    COUNT(*) FILTER (WHERE attempt > 1),
                    COUNT(*) FILTER (WHERE rate_limited),
                    COUNT(*) FILTER (WHERE status IS NULL OR status < 200
                                     OR (status >= 300 AND NOT (method = 'GET' AND status = 404))),
                    COALESCE(SUM(records) FILTER (WHERE status BETWEEN 200 AND 299 AND operation IN ('upsert', 'create')), 0)::bigint,
                    COUNT(*) FILTER (WHERE status BETWEEN 200 AND 299 AND operation IN ('upsert', 'create')),
                    COUNT(*) FILTER (WHERE status BETWEEN 200 AND 299 AND operation = 'associate')
             FROM calls WHERE at_ms >= $1",
        )
        .bind(since_ms)
        .fetch_one(self.pool())
        .await?;
        let t = "calls";
        Ok(CallSummary {
            calls: get(&r, 0, t)?,
            retries: get(&r, 1, t)?,
            rate_limited: get(&r, 2, t)?,
            errors: get(&r, 3, t)?,
            upserted: get(&r, 4, t)?,
            upsert_calls: get(&r, 5, t)?,
            association_calls: get(&r, 6, t)?,
        })
    }
}
