//! [`Coordination`] on SQLite: leader leases, the API-call reservation, the kill switch,
//! bindings and the call log. With one worker the leases and the reservation still matter:
//! reservations persist, so a restarted worker does not burst into a window its killed
//! predecessor filled.

use super::decode::get;
use super::{ROWS_PER_STATEMENT, SqliteState};
use crate::Coordination;
use crate::error::StoreError;
use crate::ident::sql;
use crate::model::*;
use std::time::Duration;

/// The `meta` key of the kill switch.
const PAUSED: &str = "paused";

/// A budget day.
pub(crate) const DAY_MS: i64 = 86_400_000;

impl Coordination for SqliteState {
    async fn try_lead(
        &self,
        task: &str,
        owner: &str,
        ttl: Duration,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let until = now_ms.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        let row = sqlx::query(
            "INSERT INTO leases (task, owner, until_ms) VALUES (?, ?, ?)
             ON CONFLICT (task) DO UPDATE SET owner = excluded.owner, until_ms = excluded.until_ms
             WHERE leases.owner = excluded.owner OR leases.until_ms < ?
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
        sqlx::query("DELETE FROM leases WHERE owner = ?")
            .bind(owner)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn leaders(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT task, owner, until_ms FROM leases ORDER BY task")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    get(r, 0, "leases")?,
                    get(r, 1, "leases")?,
                    get(r, 2, "leases")?,
                ))
            })
            .collect()
    }

    async fn reserve_call(&self, req: &Reservation) -> Result<Grant, StoreError> {
        let now = req.now_ms;
        let mut tx = self.write_tx().await?;
        let mut wait: Option<(i64, String)> = None;
        for w in &req.windows {
            let from = now - w.length_ms;
            let count: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM call_slots WHERE connection = ? AND limit_name = ? AND at_ms > ?",
            )
            .bind(&req.connection)
            .bind(&w.name)
            .bind(from)
            .fetch_one(&mut *tx)
            .await?;
            if w.min_gap_ms > 0 {
                let last: Option<i64> = sqlx::query_scalar(
                    "SELECT MAX(at_ms) FROM call_slots WHERE connection = ? AND limit_name = ?",
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
            if count >= i64::from(w.max) {
                // The slot whose expiry makes room: the (count - max + 1)-th oldest.
                let at: Option<i64> = sqlx::query_scalar(
                    "SELECT at_ms FROM call_slots WHERE connection = ? AND limit_name = ? AND at_ms > ?
                     ORDER BY at_ms LIMIT 1 OFFSET ?",
                )
                .bind(&req.connection)
                .bind(&w.name)
                .bind(from)
                .bind(count - i64::from(w.max))
                .fetch_optional(&mut *tx)
                .await?;
                let until = at.unwrap_or(now) + w.length_ms;
                wait_for_latest(&mut wait, until, &w.name);
            }
        }
        if let Some(day) = &req.day {
            let used: Option<i64> = sqlx::query_scalar(
                "SELECT used FROM call_days WHERE connection = ? AND day_start = ?",
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
        for w in &req.windows {
            sqlx::query(
                "DELETE FROM call_slots WHERE connection = ? AND limit_name = ? AND at_ms <= ?",
            )
            .bind(&req.connection)
            .bind(&w.name)
            .bind(now - w.length_ms)
            .execute(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO call_slots (connection, limit_name, at_ms) VALUES (?, ?, ?)")
                .bind(&req.connection)
                .bind(&w.name)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(day) = &req.day {
            sqlx::query(
                "INSERT INTO call_days (connection, day_start, used) VALUES (?, ?, 1)
                 ON CONFLICT (connection, day_start) DO UPDATE SET used = used + 1",
            )
            .bind(&req.connection)
            .bind(day.start_ms)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM call_days WHERE connection = ? AND day_start < ?")
                .bind(&req.connection)
                .bind(day.start_ms - 7 * DAY_MS)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Grant::Granted)
    }

    async fn calls_reserved(&self, connection: &str, day_start_ms: i64) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT used FROM call_days WHERE connection = ? AND day_start = ?",
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
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(PAUSED)
        .bind(if paused { "1" } else { "0" })
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn binding(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(self.pool())
            .await?)
    }

    async fn bind(&self, key: &str, value: &str) -> Result<Option<String>, StoreError> {
        let mut tx = self.write_tx().await?;
        let before: Option<String> = sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
        if before.is_none() {
            sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?)")
                .bind(key)
                .bind(value)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(before)
    }

    async fn prune_calls(&self, before_ms: i64, limit: u64) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query(
            "DELETE FROM calls WHERE rowid IN (SELECT rowid FROM calls WHERE at_ms < ? LIMIT ?)",
        )
        .bind(before_ms)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    async fn record_calls(&self, calls: &[CallRow]) -> Result<(), StoreError> {
        if calls.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        for chunk in calls.chunks(ROWS_PER_STATEMENT) {
            let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let mut q = sqlx::query(sql(format!(
                "INSERT INTO calls (connection, at_ms, method, endpoint, status, attempt, latency_ms, records, rate_limits, error, operation, rate_limited) VALUES {values}"
            )));
            for c in chunk {
                q = q
                    .bind(&c.connection)
                    .bind(c.at_ms)
                    .bind(&c.method)
                    .bind(&c.endpoint)
                    .bind(c.status.map(i64::from))
                    .bind(i64::from(c.attempt))
                    .bind(c.latency_ms)
                    .bind(i64::from(c.records))
                    .bind(&c.rate_limits)
                    .bind(&c.error)
                    .bind(&c.operation)
                    .bind(c.rate_limited);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn call_summary(&self, since_ms: i64) -> Result<CallSummary, StoreError> {
        let r = sqlx::query(
            "SELECT COUNT(*),
                    COALESCE(SUM(attempt > 1), 0),
                    COALESCE(SUM(rate_limited), 0),
                    COALESCE(SUM(status IS NULL OR status < 200 OR (status >= 300 AND NOT (method = 'GET' AND status = 404))), 0),
                    COALESCE(SUM(CASE WHEN status BETWEEN 200 AND 299 AND operation IN ('upsert', 'create') THEN records ELSE 0 END), 0),
                    COALESCE(SUM(status BETWEEN 200 AND 299 AND operation IN ('upsert', 'create')), 0),
                    COALESCE(SUM(status BETWEEN 200 AND 299 AND operation = 'associate'), 0)
             FROM calls WHERE at_ms >= ?",
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
