//! [`Inspect`] on SQLite: what `explain`, `retry` and `status` read.

use super::SqliteState;
use super::decode::get;
use super::state::{QUARANTINE_COLUMNS, quarantine_of};
use crate::Inspect;
use crate::error::StoreError;
use crate::ident::sql;
use crate::model::*;
use sqlx::sqlite::SqliteRow;

impl Inspect for SqliteState {
    async fn request_retry(
        &self,
        sync: Option<&str>,
        kinds: &[QuarantineKind],
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut out = Vec::new();
        let mut tx = self.write_tx().await?;
        for kind in kinds {
            let rows = sqlx::query(
                "UPDATE quarantine SET retry_requested = 1
                 WHERE kind = ? AND (? IS NULL OR sync = ?)
                 RETURNING sync, local_id",
            )
            .bind(kind.as_str())
            .bind(sync)
            .bind(sync)
            .fetch_all(&mut *tx)
            .await?;
            for r in &rows {
                out.push((get(r, 0, "quarantine")?, get(r, 1, "quarantine")?));
            }
        }
        tx.commit().await?;
        out.sort();
        Ok(out)
    }

    async fn quarantine_entry(
        &self,
        sync: &str,
        local_id: &str,
    ) -> Result<Option<QuarantineEntry>, StoreError> {
        let row = sqlx::query(sql(format!(
            "SELECT {QUARANTINE_COLUMNS} FROM quarantine WHERE sync = ? AND local_id = ?"
        )))
        .bind(sync)
        .bind(local_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(quarantine_of).transpose()
    }

    async fn link_detail(
        &self,
        sync: &str,
        local_id: &str,
    ) -> Result<Option<LinkDetail>, StoreError> {
        let row = sqlx::query(
            "SELECT crm_object, crm_id, pushed_hash, pushed_at FROM links WHERE sync = ? AND local_id = ?",
        )
        .bind(sync)
        .bind(local_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(LinkDetail {
                crm_object: get(&r, 0, "links")?,
                crm_id: get(&r, 1, "links")?,
                pushed_hash: get(&r, 2, "links")?,
                pushed_at_ms: get(&r, 3, "links")?,
            })
        })
        .transpose()
    }

    async fn job_problems(&self, sync: &str, limit: i64) -> Result<Vec<JobProblem>, StoreError> {
        let rows = sqlx::query(
            "SELECT state, last_error, COUNT(*) FROM jobs
             WHERE sync = ? AND state IN ('retrying', 'dead') AND last_error IS NOT NULL
             GROUP BY state, last_error ORDER BY COUNT(*) DESC, state, last_error LIMIT ?",
        )
        .bind(sync)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let t = "jobs";
        rows.iter()
            .map(|r| {
                Ok(JobProblem {
                    state: get(r, 0, t)?,
                    error: get(r, 1, t)?,
                    jobs: get(r, 2, t)?,
                })
            })
            .collect()
    }

    async fn jobs_of(&self, sync: &str, local_id: &str) -> Result<Vec<JobDetail>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, direction, state, hash, payload, attempts, run_at, last_error, created_at, updated_at, owner
             FROM jobs WHERE sync = ? AND local_id = ? ORDER BY direction",
        )
        .bind(sync)
        .bind(local_id)
        .fetch_all(self.pool())
        .await?;
        let t = "jobs";
        rows.iter()
            .map(|r| {
                Ok(JobDetail {
                    id: get(r, 0, t)?,
                    direction: get(r, 1, t)?,
                    state: get(r, 2, t)?,
                    hash: get(r, 3, t)?,
                    payload: get(r, 4, t)?,
                    attempts: get(r, 5, t)?,
                    run_at_ms: get(r, 6, t)?,
                    last_error: get(r, 7, t)?,
                    created_at_ms: get(r, 8, t)?,
                    updated_at_ms: get(r, 9, t)?,
                    owner: get(r, 10, t)?,
                })
            })
            .collect()
    }

    async fn calls_between(
        &self,
        from_ms: i64,
        to_ms: i64,
        endpoint_part: &str,
        limit: i64,
    ) -> Result<Vec<CallRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT connection, at_ms, method, endpoint, status, attempt, latency_ms, records, rate_limits, error, operation, rate_limited
             FROM calls WHERE at_ms BETWEEN ? AND ? AND instr(endpoint, ?) > 0
             ORDER BY at_ms, id LIMIT ?",
        )
        .bind(from_ms)
        .bind(to_ms)
        .bind(endpoint_part)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(call_row).collect()
    }

    async fn recent_call_errors(&self, limit: i64) -> Result<Vec<CallRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT connection, at_ms, method, endpoint, status, attempt, latency_ms, records, rate_limits, error, operation, rate_limited
             FROM calls WHERE error IS NOT NULL AND NOT (method = 'GET' AND status = 404) ORDER BY at_ms DESC, id DESC LIMIT ?",
        )
        .bind(limit.max(0))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(call_row).collect()
    }
}

/// One `calls` row, selected in the column order of the queries above.
fn call_row(r: &SqliteRow) -> Result<CallRow, StoreError> {
    let t = "calls";
    Ok(CallRow {
        connection: get(r, 0, t)?,
        at_ms: get(r, 1, t)?,
        method: get(r, 2, t)?,
        endpoint: get(r, 3, t)?,
        status: get::<Option<i64>>(r, 4, t)?.and_then(|s| u16::try_from(s).ok()),
        attempt: u32::try_from(get::<i64>(r, 5, t)?).unwrap_or(0),
        latency_ms: get(r, 6, t)?,
        records: u32::try_from(get::<i64>(r, 7, t)?).unwrap_or(0),
        rate_limits: get(r, 8, t)?,
        error: get(r, 9, t)?,
        operation: get(r, 10, t)?,
        rate_limited: get(r, 11, t)?,
    })
}
