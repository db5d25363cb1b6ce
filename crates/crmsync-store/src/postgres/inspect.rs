//! [`Inspect`] on PostgreSQL: what `explain`, `retry` and `status` read. Each answer is one
//! statement, so it comes from one snapshot even while workers keep writing.

use super::PgState;
use super::decode::get;
use super::state::{QUARANTINE_COLUMNS, quarantine_of};
use crate::Inspect;
use crate::error::StoreError;
use crate::ident::sql;
use crate::model::*;
use sqlx::postgres::PgRow;

impl Inspect for PgState {
    async fn request_retry(
        &self,
        sync: Option<&str>,
        kinds: &[QuarantineKind],
    ) -> Result<Vec<(String, String)>, StoreError> {
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        let rows = sqlx::query(
            "UPDATE quarantine SET retry_requested = true
             WHERE kind = ANY($1) AND ($2::text IS NULL OR sync = $2)
             RETURNING sync, local_id",
        )
        .bind(&kinds)
        .bind(sync)
        .fetch_all(self.pool())
        .await?;
        let mut out = rows
            .iter()
            .map(|r| Ok((get(r, 0, "quarantine")?, get(r, 1, "quarantine")?)))
            .collect::<Result<Vec<(String, String)>, StoreError>>()?;
        out.sort();
        Ok(out)
    }

    async fn quarantine_entry(
        &self,
        sync: &str,
        local_id: &str,
    ) -> Result<Option<QuarantineEntry>, StoreError> {
        let row = sqlx::query(sql(format!(
            "SELECT {QUARANTINE_COLUMNS} FROM quarantine WHERE sync = $1 AND local_id = $2"
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
            "SELECT crm_object, crm_id, pushed_hash, pushed_at FROM links WHERE sync = $1 AND local_id = $2",
        )
        .bind(sync)
        .bind(local_id)
        .fetch_optional(self.pool())
        .await?;
        let t = "links";
        row.map(|r| {
            Ok(LinkDetail {
                crm_object: get(&r, 0, t)?,
                crm_id: get(&r, 1, t)?,
                pushed_hash: get(&r, 2, t)?,
                pushed_at_ms: get(&r, 3, t)?,
            })
        })
        .transpose()
    }

    async fn job_problems(&self, sync: &str, limit: i64) -> Result<Vec<JobProblem>, StoreError> {
        let rows = sqlx::query(
            "SELECT state, last_error, COUNT(*) FROM jobs
             WHERE sync = $1 AND state IN ('retrying', 'dead') AND last_error IS NOT NULL
             GROUP BY state, last_error ORDER BY COUNT(*) DESC, state, last_error LIMIT $2",
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
             FROM jobs WHERE sync = $1 AND local_id = $2 ORDER BY direction",
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
             FROM calls WHERE at_ms BETWEEN $1 AND $2 AND strpos(endpoint, $3) > 0
             ORDER BY at_ms, id LIMIT $4",
        )
        .bind(from_ms)
        .bind(to_ms)
        .bind(endpoint_part)
        // SQLite reads a negative limit as none; `LIMIT NULL` is PostgreSQL's none.
        .bind((limit >= 0).then_some(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(call_row).collect()
    }

    async fn recent_call_errors(&self, limit: i64) -> Result<Vec<CallRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT connection, at_ms, method, endpoint, status, attempt, latency_ms, records, rate_limits, error, operation, rate_limited
             FROM calls WHERE error IS NOT NULL AND NOT (method = 'GET' AND status = 404) ORDER BY at_ms DESC, id DESC LIMIT $1",
        )
        .bind(limit.max(0))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(call_row).collect()
    }
}

/// One `calls` row, selected in the column order of the queries above.
fn call_row(r: &PgRow) -> Result<CallRow, StoreError> {
    let t = "calls";
    Ok(CallRow {
        connection: get(r, 0, t)?,
        at_ms: get(r, 1, t)?,
        method: get(r, 2, t)?,
        endpoint: get(r, 3, t)?,
        status: get::<Option<i32>>(r, 4, t)?.and_then(|s| u16::try_from(s).ok()),
        attempt: u32::try_from(get::<i64>(r, 5, t)?).unwrap_or(0),
        latency_ms: get(r, 6, t)?,
        records: u32::try_from(get::<i64>(r, 7, t)?).unwrap_or(0),
        rate_limits: get(r, 8, t)?,
        error: get(r, 9, t)?,
        operation: get(r, 10, t)?,
        rate_limited: get(r, 11, t)?,
    })
}
