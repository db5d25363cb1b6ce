//! [`Lifecycle`] on SQLite: conflicts parked for review, CRM deletions and merges, the
//! webhook inbox and the inbound hints it turns into.

use super::decode::get;
use super::{Lead, SqliteState, per_key_chunk};
use crate::Lifecycle;
use crate::error::StoreError;
use crate::ident::sql;
use crate::model::*;
use sqlx::sqlite::SqliteRow;

const CONFLICT_COLUMNS: &str =
    "id, sync, local_id, crm_id, field, column_name, app_value, crm_value, base_value, created_at";

fn conflict_of(r: &SqliteRow) -> Result<Conflict, StoreError> {
    let t = "conflicts";
    Ok(Conflict {
        id: get(r, 0, t)?,
        sync: get(r, 1, t)?,
        local_id: get(r, 2, t)?,
        crm_id: get(r, 3, t)?,
        field: get(r, 4, t)?,
        column: get(r, 5, t)?,
        app_value: get(r, 6, t)?,
        crm_value: get(r, 7, t)?,
        base_value: get(r, 8, t)?,
        created_at_ms: get(r, 9, t)?,
    })
}

fn deletion_of(r: &SqliteRow) -> Result<CrmDeletion, StoreError> {
    let t = "crm_deletions";
    Ok(CrmDeletion {
        sync: get(r, 0, t)?,
        local_id: get(r, 1, t)?,
        crm_id: get(r, 2, t)?,
        seen_at_ms: get(r, 3, t)?,
        state: DeletionState::parse(&get::<String>(r, 4, t)?),
        action: get(r, 5, t)?,
    })
}

async fn put_hints(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    hints: &[Hint],
    now_ms: i64,
) -> Result<(), StoreError> {
    for h in hints {
        sqlx::query(
            "INSERT INTO inbound_hints (sync, crm_id, reason, added_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (sync, crm_id) DO UPDATE SET reason = excluded.reason, added_at = excluded.added_at",
        )
        .bind(&h.sync)
        .bind(&h.crm_id)
        .bind(&h.reason)
        .bind(now_ms)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl Lifecycle for SqliteState {
    async fn add_conflicts(&self, conflicts: &[Conflict]) -> Result<(), StoreError> {
        if conflicts.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        for c in conflicts {
            sqlx::query(
                "DELETE FROM conflicts WHERE sync = ? AND local_id = ? AND field = ? AND resolved_at IS NULL",
            )
            .bind(&c.sync)
            .bind(&c.local_id)
            .bind(&c.field)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO conflicts (sync, local_id, crm_id, field, column_name, app_value, crm_value, base_value, created_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&c.sync)
            .bind(&c.local_id)
            .bind(&c.crm_id)
            .bind(&c.field)
            .bind(&c.column)
            .bind(&c.app_value)
            .bind(&c.crm_value)
            .bind(&c.base_value)
            .bind(c.created_at_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn open_conflicts(&self, sync: Option<&str>) -> Result<Vec<Conflict>, StoreError> {
        let rows = sqlx::query(sql(format!(
            "SELECT {CONFLICT_COLUMNS} FROM conflicts WHERE resolved_at IS NULL AND (? IS NULL OR sync = ?) ORDER BY id"
        )))
        .bind(sync)
        .bind(sync)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(conflict_of).collect()
    }

    async fn resolve_conflict(&self, id: i64, resolution: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE conflicts SET resolved_at = ?, resolution = ? WHERE id = ? AND resolved_at IS NULL",
        )
        .bind(crate::now_ms())
        .bind(resolution)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_deletions(&self, deletions: &[CrmDeletion]) -> Result<(), StoreError> {
        if deletions.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        for d in deletions {
            sqlx::query(
                "INSERT INTO crm_deletions (sync, local_id, crm_id, seen_at, state, action) VALUES (?, ?, ?, ?, ?, ?)
                 ON CONFLICT (sync, local_id) DO UPDATE SET crm_id = excluded.crm_id, seen_at = excluded.seen_at,
                   state = excluded.state, action = excluded.action",
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
        rows.iter().map(deletion_of).collect()
    }

    async fn forget_deletions(&self, sync: &str, local_ids: &[String]) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        per_key_chunk(
            &mut tx,
            &["DELETE FROM crm_deletions WHERE sync = ? AND local_id IN ({keys})"],
            &Lead::Text(sync),
            local_ids,
        )
        .await?;
        tx.commit().await?;
        Ok(())
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

    async fn record_merges(&self, merges: &[CrmMerge]) -> Result<(), StoreError> {
        if merges.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        for m in merges {
            sqlx::query(
                "UPDATE links SET crm_id = ?, version = version + 1 WHERE sync = ? AND local_id = ?",
            )
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
        let t = "crm_merges";
        rows.iter()
            .map(|r| {
                Ok(CrmMerge {
                    sync: get(r, 0, t)?,
                    local_id: get(r, 1, t)?,
                    from_crm_id: get(r, 2, t)?,
                    to_crm_id: get(r, 3, t)?,
                    shared_with: get(r, 4, t)?,
                    at_ms: get(r, 5, t)?,
                })
            })
            .collect()
    }

    async fn record_webhook_events(
        &self,
        events: &[(String, String)],
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        if events.is_empty() {
            return Ok(0);
        }
        let mut tx = self.write_tx().await?;
        let mut new = 0;
        for (key, body) in events {
            new += sqlx::query(
                "INSERT INTO webhook_events (event_id, received_at, body) VALUES (?, ?, ?)
                 ON CONFLICT (event_id) DO NOTHING",
            )
            .bind(key)
            .bind(now_ms)
            .bind(body)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(new)
    }

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
        rows.iter()
            .map(|r| Ok((get(r, 0, "webhook_events")?, get(r, 1, "webhook_events")?)))
            .collect()
    }

    async fn pending_webhook_count(&self) -> Result<u64, StoreError> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events WHERE applied_at IS NULL")
                .fetch_one(self.pool())
                .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn prune_webhook_events(&self, before_ms: i64, limit: u64) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query(
            "DELETE FROM webhook_events WHERE event_id IN (SELECT event_id FROM webhook_events \
             WHERE applied_at IS NOT NULL AND received_at < ? LIMIT ?)",
        )
        .bind(before_ms)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    async fn webhook_events_to_hints(
        &self,
        event_keys: &[String],
        hints: &[Hint],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        put_hints(&mut tx, hints, now_ms).await?;
        per_key_chunk(
            &mut tx,
            &["UPDATE webhook_events SET applied_at = ? WHERE event_id IN ({keys})"],
            &Lead::Int(now_ms),
            event_keys,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn add_hints(&self, hints: &[Hint], now_ms: i64) -> Result<(), StoreError> {
        if hints.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        put_hints(&mut tx, hints, now_ms).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn pending_hints(&self, sync: &str, limit: usize) -> Result<Vec<Hint>, StoreError> {
        let rows = sqlx::query(
            "SELECT sync, crm_id, reason, added_at FROM inbound_hints WHERE sync = ? \
             ORDER BY added_at, crm_id LIMIT ?",
        )
        .bind(sync)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await?;
        let t = "inbound_hints";
        rows.iter()
            .map(|r| {
                Ok(Hint {
                    sync: get(r, 0, t)?,
                    crm_id: get(r, 1, t)?,
                    reason: get(r, 2, t)?,
                    added_at_ms: get(r, 3, t)?,
                })
            })
            .collect()
    }

    async fn clear_hints(
        &self,
        sync: &str,
        crm_ids: &[String],
        added_before_ms: i64,
    ) -> Result<(), StoreError> {
        if crm_ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        for chunk in crm_ids.chunks(super::KEYS_PER_STATEMENT) {
            let mut q = sqlx::query(sql(format!(
                "DELETE FROM inbound_hints WHERE sync = ? AND added_at <= ? AND crm_id IN ({})",
                crate::ident::marks(chunk.len())
            )))
            .bind(sync)
            .bind(added_before_ms);
            for id in chunk {
                q = q.bind(id);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
