//! Read-mostly queries for the commands people use to look into the state and act on the
//! quarantine: `crmsync explain` (one record's link, job, quarantine entry and the calls around
//! its last push) and `crmsync retry` (flag quarantine entries to be looked at again). Inherent
//! methods of [`SqliteStore`], kept apart from the [`crate::Store`] contract the engine runs on.

use super::sqlite::SqliteStore;
use crate::error::StoreError;
use crate::model::{CallRow, QuarantineEntry, QuarantineKind};
use sqlx::Row;

/// A record's link with the time of its last accepted push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkDetail {
    pub crm_object: String,
    pub crm_id: Option<String>,
    pub pushed_hash: Option<String>,
    pub pushed_at_ms: Option<i64>,
}

/// A record's job row, whatever its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDetail {
    pub id: i64,
    pub direction: String,
    /// `ready`, `running`, `retrying`, `dead` or `done`.
    pub state: String,
    pub hash: String,
    pub payload: String,
    pub attempts: i64,
    pub run_at_ms: i64,
    pub last_error: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl SqliteStore {
    /// Flags quarantine entries of `kinds` (of `sync`, or of every sync) with
    /// `retry_requested`, so the next pass looks at them again; returns `(sync, local_id)` of
    /// the flagged entries.
    pub async fn request_retry(
        &self,
        sync: Option<&str>,
        kinds: &[QuarantineKind],
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut out = Vec::new();
        let mut tx = self.pool().begin().await?;
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
            out.extend(rows.into_iter().map(|r| (r.get(0), r.get(1))));
        }
        tx.commit().await?;
        out.sort();
        Ok(out)
    }

    /// The quarantine entry of one record.
    pub async fn quarantine_entry(
        &self,
        sync: &str,
        local_id: &str,
    ) -> Result<Option<QuarantineEntry>, StoreError> {
        let row = sqlx::query(
            "SELECT sync, local_id, kind, field, rule, message, first_seen, last_seen, attempts, retry_requested
             FROM quarantine WHERE sync = ? AND local_id = ?",
        )
        .bind(sync)
        .bind(local_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| QuarantineEntry {
            sync: r.get(0),
            local_id: r.get(1),
            kind: QuarantineKind::parse(r.get::<String, _>(2).as_str()),
            field: r.get(3),
            rule: r.get(4),
            message: r.get(5),
            first_seen_ms: r.get(6),
            last_seen_ms: r.get(7),
            attempts: r.get(8),
            retry_requested: r.get::<i64, _>(9) != 0,
        }))
    }

    /// The link of one record with its push time.
    pub async fn link_detail(
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
        Ok(row.map(|r| LinkDetail {
            crm_object: r.get(0),
            crm_id: r.get(1),
            pushed_hash: r.get(2),
            pushed_at_ms: r.get(3),
        }))
    }

    /// The job rows of one record (one per direction).
    pub async fn jobs_of(&self, sync: &str, local_id: &str) -> Result<Vec<JobDetail>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, direction, state, hash, payload, attempts, run_at, last_error, created_at, updated_at
             FROM jobs WHERE sync = ? AND local_id = ? ORDER BY direction",
        )
        .bind(sync)
        .bind(local_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| JobDetail {
                id: r.get(0),
                direction: r.get(1),
                state: r.get(2),
                hash: r.get(3),
                payload: r.get(4),
                attempts: r.get(5),
                run_at_ms: r.get(6),
                last_error: r.get(7),
                created_at_ms: r.get(8),
                updated_at_ms: r.get(9),
            })
            .collect())
    }

    /// Calls started in `[from_ms, to_ms]` whose endpoint contains `endpoint_part`, oldest
    /// first, at most `limit`. The call log holds no record ids (low cardinality by design), so
    /// this is how `explain` finds the calls that may have carried a record.
    pub async fn calls_between(
        &self,
        from_ms: i64,
        to_ms: i64,
        endpoint_part: &str,
        limit: i64,
    ) -> Result<Vec<CallRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT at_ms, method, endpoint, status, attempt, latency_ms, records, rate_limits, error
             FROM calls WHERE at_ms BETWEEN ? AND ? AND instr(endpoint, ?) > 0
             ORDER BY at_ms, id LIMIT ?",
        )
        .bind(from_ms)
        .bind(to_ms)
        .bind(endpoint_part)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| CallRow {
                at_ms: r.get(0),
                method: r.get(1),
                endpoint: r.get(2),
                status: r
                    .get::<Option<i64>, _>(3)
                    .and_then(|s| u16::try_from(s).ok()),
                attempt: u32::try_from(r.get::<i64, _>(4)).unwrap_or(0),
                latency_ms: r.get(5),
                records: u32::try_from(r.get::<i64, _>(6)).unwrap_or(0),
                rate_limits: r.get(7),
                error: r.get(8),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use crate::model::NewJob;

    fn entry(sync: &str, id: &str, kind: QuarantineKind) -> QuarantineEntry {
        QuarantineEntry {
            sync: sync.into(),
            local_id: id.into(),
            kind,
            field: Some("email".into()),
            rule: "email".into(),
            message: "bad".into(),
            first_seen_ms: 1,
            last_seen_ms: 1,
            attempts: 1,
            retry_requested: false,
        }
    }

    #[tokio::test]
    async fn retry_flags_the_chosen_kinds_and_explain_reads_a_record() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("state.db").display());
        let store = SqliteStore::open(&url).await.expect("open");
        store
            .quarantine(&[
                entry("contacts", "1", QuarantineKind::Rejected),
                entry("contacts", "2", QuarantineKind::Invalid),
                entry("contacts", "3", QuarantineKind::Held),
                entry("deals", "9", QuarantineKind::Rejected),
            ])
            .await
            .expect("quarantine");

        let flagged = store
            .request_retry(Some("contacts"), &[QuarantineKind::Rejected])
            .await
            .expect("retry");
        assert_eq!(flagged, vec![("contacts".to_string(), "1".to_string())]);
        let all = store
            .request_retry(
                None,
                &[
                    QuarantineKind::Rejected,
                    QuarantineKind::Invalid,
                    QuarantineKind::Held,
                ],
            )
            .await
            .expect("retry all");
        assert_eq!(all.len(), 4);
        let e = store
            .quarantine_entry("contacts", "2")
            .await
            .expect("read")
            .expect("entry");
        assert!(e.retry_requested);
        assert_eq!(e.kind, QuarantineKind::Invalid);
        assert!(
            store
                .quarantine_entry("contacts", "7")
                .await
                .expect("read")
                .is_none()
        );

        store
            .enqueue(
                &[NewJob {
                    sync: "deals".into(),
                    local_id: "5".into(),
                    payload: "{}".into(),
                    hash: "h".into(),
                    priority: 0,
                }],
                1,
            )
            .await
            .expect("enqueue");
        let jobs = store.jobs_of("deals", "5").await.expect("jobs");
        assert_eq!(jobs.len(), 1);
        assert_eq!(
            (jobs[0].state.as_str(), jobs[0].hash.as_str()),
            ("ready", "h")
        );
        assert!(
            store
                .link_detail("deals", "5")
                .await
                .expect("link")
                .is_none()
        );

        store
            .record_calls(&[CallRow {
                at_ms: 1000,
                method: "POST".into(),
                endpoint: "/crm/v3/objects/deals/batch/upsert".into(),
                status: Some(200),
                attempt: 1,
                latency_ms: 5,
                records: 3,
                rate_limits: None,
                error: None,
            }])
            .await
            .expect("calls");
        assert_eq!(
            store
                .calls_between(0, 2000, "/deals/", 10)
                .await
                .expect("calls")
                .len(),
            1
        );
        assert!(
            store
                .calls_between(0, 2000, "/contacts/", 10)
                .await
                .expect("calls")
                .is_empty()
        );
        assert!(
            store
                .calls_between(1001, 2000, "/deals/", 10)
                .await
                .expect("calls")
                .is_empty()
        );
    }
}
