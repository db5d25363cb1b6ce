//! [`Lifecycle`] on PostgreSQL: conflicts parked for review, CRM deletions and merges, the
//! webhook inbox and the inbound hints it turns into.
//!
//! Writes that could race with the same write from another worker are single upserts (a
//! replaced conflict, a redelivered webhook event, a repeated hint), so two workers doing the
//! same thing at once never fail on a unique index; multi-row ones are one transaction.

use super::decode::{count, get};
use super::{LinkLock, PgState, last_by_key, limit, lock_links};
use crate::Lifecycle;
use crate::error::StoreError;
use crate::ident::sql;
use crate::model::*;
use sqlx::PgExecutor;
use sqlx::postgres::PgRow;
use std::collections::BTreeMap;

const CONFLICT_COLUMNS: &str =
    "id, sync, local_id, crm_id, field, column_name, app_value, crm_value, base_value, created_at";

fn conflict_of(r: &PgRow) -> Result<Conflict, StoreError> {
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

fn deletion_of(r: &PgRow) -> Result<CrmDeletion, StoreError> {
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

/// Adds hints (a pending one is refreshed), one statement.
async fn put_hints<'e>(
    db: impl PgExecutor<'e>,
    hints: &[Hint],
    now_ms: i64,
) -> Result<(), StoreError> {
    if hints.is_empty() {
        return Ok(());
    }
    let hints = last_by_key(hints.iter(), |h| {
        let h: &Hint = h;
        (h.sync.as_str(), h.crm_id.as_str())
    });
    let syncs: Vec<&str> = hints.iter().map(|h| h.sync.as_str()).collect();
    let crm_ids: Vec<&str> = hints.iter().map(|h| h.crm_id.as_str()).collect();
    let reasons: Vec<&str> = hints.iter().map(|h| h.reason.as_str()).collect();
    sqlx::query(
        "INSERT INTO inbound_hints (sync, crm_id, reason, added_at)
         SELECT s, c, r, $4 FROM unnest($1::text[], $2::text[], $3::text[]) AS h (s, c, r)
         ON CONFLICT (sync, crm_id) DO UPDATE SET reason = excluded.reason, added_at = excluded.added_at",
    )
    .bind(&syncs)
    .bind(&crm_ids)
    .bind(&reasons)
    .bind(now_ms)
    .execute(db)
    .await?;
    Ok(())
}

impl Lifecycle for PgState {
    async fn add_conflicts(&self, conflicts: &[Conflict]) -> Result<(), StoreError> {
        if conflicts.is_empty() {
            return Ok(());
        }
        let mut tx = self.tx().await?;
        for c in conflicts {
            // Replacing the open conflict of the field takes a fresh id, as a delete and an
            // insert would, in one statement that cannot collide with a concurrent replacement.
            sqlx::query(
                "INSERT INTO conflicts (sync, local_id, crm_id, field, column_name, app_value, crm_value, base_value, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (sync, local_id, field) WHERE resolved_at IS NULL DO UPDATE SET
                   id = excluded.id, crm_id = excluded.crm_id, column_name = excluded.column_name,
                   app_value = excluded.app_value, crm_value = excluded.crm_value,
                   base_value = excluded.base_value, created_at = excluded.created_at",
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
            "SELECT {CONFLICT_COLUMNS} FROM conflicts
             WHERE resolved_at IS NULL AND ($1::text IS NULL OR sync = $1) ORDER BY id"
        )))
        .bind(sync)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(conflict_of).collect()
    }

    async fn resolve_conflict(&self, id: i64, resolution: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE conflicts SET resolved_at = $1, resolution = $2 WHERE id = $3 AND resolved_at IS NULL",
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
        let deletions = last_by_key(deletions.iter(), |d| {
            let d: &CrmDeletion = d;
            (d.sync.as_str(), d.local_id.as_str())
        });
        let syncs: Vec<&str> = deletions.iter().map(|d| d.sync.as_str()).collect();
        let locals: Vec<&str> = deletions.iter().map(|d| d.local_id.as_str()).collect();
        let crm_ids: Vec<&str> = deletions.iter().map(|d| d.crm_id.as_str()).collect();
        let seen: Vec<i64> = deletions.iter().map(|d| d.seen_at_ms).collect();
        let states: Vec<&str> = deletions.iter().map(|d| d.state.as_str()).collect();
        let actions: Vec<Option<&str>> = deletions.iter().map(|d| d.action.as_deref()).collect();
        sqlx::query(
            "INSERT INTO crm_deletions (sync, local_id, crm_id, seen_at, state, action)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[])
             ON CONFLICT (sync, local_id) DO UPDATE SET crm_id = excluded.crm_id, seen_at = excluded.seen_at,
               state = excluded.state, action = excluded.action",
        )
        .bind(&syncs)
        .bind(&locals)
        .bind(&crm_ids)
        .bind(&seen)
        .bind(&states)
        .bind(&actions)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn deletions(
        &self,
        sync: Option<&str>,
        state: Option<DeletionState>,
    ) -> Result<Vec<CrmDeletion>, StoreError> {
        let rows = sqlx::query(
            "SELECT sync, local_id, crm_id, seen_at, state, action FROM crm_deletions
             WHERE ($1::text IS NULL OR sync = $1) AND ($2::text IS NULL OR state = $2)
             ORDER BY seen_at, local_id",
        )
        .bind(sync)
        .bind(state.map(DeletionState::as_str))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(deletion_of).collect()
    }

    async fn forget_deletions(&self, sync: &str, local_ids: &[String]) -> Result<(), StoreError> {
        if local_ids.is_empty() {
            return Ok(());
        }
        sqlx::query("DELETE FROM crm_deletions WHERE sync = $1 AND local_id = ANY($2)")
            .bind(sync)
            .bind(local_ids)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn deletions_since(&self, sync: &str, since_ms: i64) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM crm_deletions WHERE sync = $1 AND seen_at >= $2",
        )
        .bind(sync)
        .bind(since_ms)
        .fetch_one(self.pool())
        .await?;
        Ok(count(n))
    }

    async fn record_merges(&self, merges: &[CrmMerge]) -> Result<(), StoreError> {
        if merges.is_empty() {
            return Ok(());
        }
        // The links first, in (sync, local id) order (see the module doc of `super`).
        let mut by_sync: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for m in merges {
            by_sync.entry(&m.sync).or_default().push(&m.local_id);
        }
        let mut tx = self.tx().await?;
        for (sync, locals) in &mut by_sync {
            locals.sort_unstable();
            locals.dedup();
            lock_links(&mut tx, sync, locals, LinkLock::Update).await?;
        }
        // One by one: merges are few, and a record merged twice bumps twice, as it should.
        for m in merges {
            sqlx::query(
                "UPDATE links SET crm_id = $1, version = version + 1 WHERE sync = $2 AND local_id = $3",
            )
            .bind(&m.to_crm_id)
            .bind(&m.sync)
            .bind(&m.local_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO crm_merges (sync, local_id, from_crm_id, to_crm_id, shared_with, at_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)",
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
            "SELECT sync, local_id, from_crm_id, to_crm_id, shared_with, at_ms FROM crm_merges
             WHERE ($1::text IS NULL OR sync = $1) ORDER BY id DESC",
        )
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
        let keys: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
        let bodies: Vec<&str> = events.iter().map(|(_, b)| b.as_str()).collect();
        // `DO NOTHING` also skips a key repeated within the batch (the first body is kept),
        // and a redelivery racing another receiver waits for it instead of failing.
        Ok(sqlx::query(
            "INSERT INTO webhook_events (event_id, received_at, body)
             SELECT k, $3, b FROM unnest($1::text[], $2::text[]) AS e (k, b)
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(&keys)
        .bind(&bodies)
        .bind(now_ms)
        .execute(self.pool())
        .await?
        .rows_affected())
    }

    async fn pending_webhook_events(
        &self,
        limit_n: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT event_id, body FROM webhook_events WHERE applied_at IS NULL
             ORDER BY received_at, event_id LIMIT $1",
        )
        .bind(limit(limit_n))
        .fetch_all(self.pool())
        .await?;
        let t = "webhook_events";
        rows.iter()
            .map(|r| Ok((get(r, 0, t)?, get(r, 1, t)?)))
            .collect()
    }

    async fn pending_webhook_count(&self) -> Result<u64, StoreError> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events WHERE applied_at IS NULL")
                .fetch_one(self.pool())
                .await?;
        Ok(count(n))
    }

    async fn prune_webhook_events(&self, before_ms: i64, limit: u64) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "DELETE FROM webhook_events WHERE event_id IN (SELECT event_id FROM webhook_events \
             WHERE applied_at IS NOT NULL AND received_at < $1 LIMIT $2)",
        )
        .bind(before_ms)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .execute(self.pool())
        .await?
        .rows_affected())
    }

    async fn webhook_events_to_hints(
        &self,
        event_keys: &[String],
        hints: &[Hint],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.tx().await?;
        put_hints(&mut *tx, hints, now_ms).await?;
        if !event_keys.is_empty() {
            sqlx::query("UPDATE webhook_events SET applied_at = $1 WHERE event_id = ANY($2)")
                .bind(now_ms)
                .bind(event_keys)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn add_hints(&self, hints: &[Hint], now_ms: i64) -> Result<(), StoreError> {
        put_hints(self.pool(), hints, now_ms).await
    }

    async fn pending_hints(&self, sync: &str, limit_n: usize) -> Result<Vec<Hint>, StoreError> {
        let rows = sqlx::query(
            "SELECT sync, crm_id, reason, added_at FROM inbound_hints WHERE sync = $1
             ORDER BY added_at, crm_id LIMIT $2",
        )
        .bind(sync)
        .bind(limit(limit_n))
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
        sqlx::query(
            "DELETE FROM inbound_hints WHERE sync = $1 AND added_at <= $2 AND crm_id = ANY($3)",
        )
        .bind(sync)
        .bind(added_before_ms)
        .bind(crm_ids)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
