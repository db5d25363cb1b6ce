//! What the CRM tells us about its records' lives, kept in the state database: webhook events
//! still to be applied (a crash between storing and applying loses nothing), records deleted in
//! the CRM (applied, or held by the mass-deletion guard), and links re-pointed by a merge.

use crate::error::StoreError;
use crate::ident::sql;
use crate::model::{CrmDeletion, CrmMerge, DeletionState};
use crate::state::sqlite::SqliteStore;
use sqlx::Row;
use std::collections::HashSet;
use std::future::Future;

/// Lifecycle state of linked CRM records. Implemented by [`SqliteStore`].
pub trait LifecycleStore: Send + Sync {
    /// Up to `limit` stored webhook events not applied yet, oldest first: (event id, body).
    fn pending_webhook_events(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(String, String)>, StoreError>> + Send;

    /// Stored webhook events not applied yet.
    fn pending_webhook_count(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Marks events as applied.
    fn mark_webhook_events_applied(
        &self,
        event_ids: &[String],
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The links of `sync` after `after` (by local id), `limit` of them: (local id, CRM id).
    fn links_page(
        &self,
        sync: &str,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(String, String)>, StoreError>> + Send;

    /// Records of `sync` with a CRM id.
    fn link_count(&self, sync: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Records of `sync` that must not be pushed: held with one of `rules` (deleted in the
    /// CRM, sharing a CRM record after a merge, a parked conflict).
    fn blocked_keys(
        &self,
        sync: &str,
        rules: &[&str],
    ) -> impl Future<Output = Result<HashSet<String>, StoreError>> + Send;

    /// Inserts or replaces deletions.
    fn record_deletions(
        &self,
        deletions: &[CrmDeletion],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Known deletions, of one sync or all, optionally only in one state.
    fn deletions(
        &self,
        sync: Option<&str>,
        state: Option<DeletionState>,
    ) -> impl Future<Output = Result<Vec<CrmDeletion>, StoreError>> + Send;

    /// Forgets the deletions of these records (restored in the CRM, or rejected by a person).
    fn forget_deletions(
        &self,
        sync: &str,
        local_ids: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletions of `sync` seen at or after `since_ms`, whatever their state.
    fn deletions_since(
        &self,
        sync: &str,
        since_ms: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Drops the links (and field bases) of these records: the next push creates them anew.
    fn unlink(
        &self,
        sync: &str,
        local_ids: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Points each merged record's link at its survivor and logs the merge, in one transaction.
    fn record_merges(
        &self,
        merges: &[CrmMerge],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Logged merges, newest first.
    fn merges(
        &self,
        sync: Option<&str>,
    ) -> impl Future<Output = Result<Vec<CrmMerge>, StoreError>> + Send;
}

/// The first value bound to a [`per_key_chunk`] statement.
enum Lead<'a> {
    Int(i64),
    Text(&'a str),
}

/// Runs each of `statements` once per chunk of 500 `keys`, in one transaction: `{keys}` in a
/// statement becomes that many placeholders, bound after `lead`.
async fn per_key_chunk(
    store: &SqliteStore,
    statements: &[&str],
    lead: Lead<'_>,
    keys: &[String],
) -> Result<(), StoreError> {
    let mut tx = store.pool().begin().await?;
    for chunk in keys.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(", ");
        for statement in statements {
            let mut q = sqlx::query(sql(statement.replace("{keys}", &marks)));
            q = match lead {
                Lead::Int(n) => q.bind(n),
                Lead::Text(t) => q.bind(t),
            };
            for key in chunk {
                q = q.bind(key);
            }
            q.execute(&mut *tx).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

fn deletion_of(r: &sqlx::sqlite::SqliteRow) -> CrmDeletion {
    let state: String = r.get(4);
    CrmDeletion {
        sync: r.get(0),
        local_id: r.get(1),
        crm_id: r.get(2),
        seen_at_ms: r.get(3),
        state: if state == "held" {
            DeletionState::Held
        } else {
            DeletionState::Applied
        },
        action: r.get(5),
    }
}

impl LifecycleStore for SqliteStore {
    async fn pending_webhook_events(
        &self,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT event_id, body FROM webhook_events WHERE applied_at IS NULL \
             ORDER BY received_at, event_id LIMIT ?",
        )
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn pending_webhook_count(&self) -> Result<u64, StoreError> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events WHERE applied_at IS NULL")
                .fetch_one(self.pool())
                .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn mark_webhook_events_applied(
        &self,
        event_ids: &[String],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        per_key_chunk(
            self,
            &["UPDATE webhook_events SET applied_at = ? WHERE event_id IN ({keys})"],
            Lead::Int(now_ms),
            event_ids,
        )
        .await
    }

    async fn links_page(
        &self,
        sync: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT local_id, crm_id FROM links \
             WHERE sync = ? AND crm_id IS NOT NULL AND local_id > ? ORDER BY local_id LIMIT ?",
        )
        .bind(sync)
        .bind(after.unwrap_or(""))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn link_count(&self, sync: &str) -> Result<u64, StoreError> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM links WHERE sync = ? AND crm_id IS NOT NULL")
                .bind(sync)
                .fetch_one(self.pool())
                .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn blocked_keys(
        &self,
        sync: &str,
        rules: &[&str],
    ) -> Result<HashSet<String>, StoreError> {
        if rules.is_empty() {
            return Ok(HashSet::new());
        }
        let marks = vec!["?"; rules.len()].join(", ");
        let mut q = sqlx::query_scalar::<_, String>(sql(format!(
            "SELECT local_id FROM quarantine WHERE sync = ? AND rule IN ({marks})"
        )))
        .bind(sync);
        for r in rules {
            q = q.bind(*r);
        }
        Ok(q.fetch_all(self.pool()).await?.into_iter().collect())
    }

    async fn record_deletions(&self, deletions: &[CrmDeletion]) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        for d in deletions {
            sqlx::query(
                "INSERT OR REPLACE INTO crm_deletions (sync, local_id, crm_id, seen_at, state, action) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(&d.sync)
            .bind(&d.local_id)
            .bind(&d.crm_id)
            .bind(d.seen_at_ms)
            .bind(d.state.as_str())
            .bind(&d.action)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn deletions(
        &self,
        sync: Option<&str>,
        state: Option<DeletionState>,
    ) -> Result<Vec<CrmDeletion>, StoreError> {
        let rows = sqlx::query(
            "SELECT sync, local_id, crm_id, seen_at, state, action FROM crm_deletions \
             WHERE (? IS NULL OR sync = ?) AND (? IS NULL OR state = ?) ORDER BY seen_at, local_id",
        )
        .bind(sync)
        .bind(sync)
        .bind(state.map(DeletionState::as_str))
        .bind(state.map(DeletionState::as_str))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(deletion_of).collect())
    }

    async fn forget_deletions(&self, sync: &str, local_ids: &[String]) -> Result<(), StoreError> {
        per_key_chunk(
            self,
            &["DELETE FROM crm_deletions WHERE sync = ? AND local_id IN ({keys})"],
            Lead::Text(sync),
            local_ids,
        )
        .await
    }

    async fn deletions_since(&self, sync: &str, since_ms: i64) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM crm_deletions WHERE sync = ? AND seen_at >= ?",
        )
        .bind(sync)
        .bind(since_ms)
        .fetch_one(self.pool())
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn unlink(&self, sync: &str, local_ids: &[String]) -> Result<(), StoreError> {
        per_key_chunk(
            self,
            &[
                "DELETE FROM links WHERE sync = ? AND local_id IN ({keys})",
                "DELETE FROM field_base WHERE sync = ? AND local_id IN ({keys})",
            ],
            Lead::Text(sync),
            local_ids,
        )
        .await
    }

    async fn record_merges(&self, merges: &[CrmMerge]) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        for m in merges {
            sqlx::query("UPDATE links SET crm_id = ? WHERE sync = ? AND local_id = ?")
                .bind(&m.to_crm_id)
                .bind(&m.sync)
                .bind(&m.local_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO crm_merges (sync, local_id, from_crm_id, to_crm_id, shared_with, at_ms) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(&m.sync)
            .bind(&m.local_id)
            .bind(&m.from_crm_id)
            .bind(&m.to_crm_id)
            .bind(&m.shared_with)
            .bind(m.at_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn merges(&self, sync: Option<&str>) -> Result<Vec<CrmMerge>, StoreError> {
        let rows = sqlx::query(
            "SELECT sync, local_id, from_crm_id, to_crm_id, shared_with, at_ms FROM crm_merges \
             WHERE (? IS NULL OR sync = ?) ORDER BY id DESC",
        )
        .bind(sync)
        .bind(sync)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| CrmMerge {
                sync: r.get(0),
                local_id: r.get(1),
                from_crm_id: r.get(2),
                to_crm_id: r.get(3),
                shared_with: r.get(4),
                at_ms: r.get(5),
            })
            .collect())
    }
}
