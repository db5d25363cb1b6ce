//! The state a two-way sync adds to the push side: the pull cursor, the last agreed value of
//! each two-way field (its base), conflicts parked for review, and the kill switch. A separate
//! trait so the push-only [`crate::Store`] contract stays as it is.

use crate::error::StoreError;
use crate::ident::sql;
use crate::model::{Conflict, PullRecord};
use crate::state::sqlite::{SqliteStore, now_ms};
use sqlx::Row;
use std::collections::HashMap;
use std::future::Future;

/// The `meta` key of the kill switch.
const PAUSED: &str = "paused";

/// Two-way state. Implemented by [`SqliteStore`].
pub trait PullStore: crate::state::LifecycleStore + Send + Sync {
    /// `local_id` of each CRM id of `sync` that has a link.
    fn local_ids_of(
        &self,
        sync: &str,
        crm_ids: &[String],
    ) -> impl Future<Output = Result<HashMap<String, String>, StoreError>> + Send;

    /// Base values of `local_ids`: local id -> (CRM property -> value).
    fn bases(
        &self,
        sync: &str,
        local_ids: &[String],
    ) -> impl Future<Output = Result<HashMap<String, HashMap<String, String>>, StoreError>> + Send;

    /// Stores new base values `(local_id, property, value)`.
    fn set_bases(
        &self,
        sync: &str,
        bases: &[(String, String, String)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records applied pulls: hashes on the links and new bases, in one transaction.
    fn record_pulls(
        &self,
        sync: &str,
        pulls: &[PullRecord],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The pull cursor of `sync` (`"<ms>:<crm id>"`), if set.
    fn pull_cursor(
        &self,
        sync: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    fn set_pull_cursor(
        &self,
        sync: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Parks conflicts (an open one for the same field is replaced).
    fn add_conflicts(
        &self,
        conflicts: &[Conflict],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Open conflicts, oldest first; of one sync when `sync` is given.
    fn open_conflicts(
        &self,
        sync: Option<&str>,
    ) -> impl Future<Output = Result<Vec<Conflict>, StoreError>> + Send;

    /// Marks conflict `id` resolved with `resolution` (`app` or `crm`); false if not open.
    fn resolve_conflict(
        &self,
        id: i64,
        resolution: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores webhook events `(eventId, JSON)` not seen before; returns how many were new.
    fn record_webhook_events(
        &self,
        events: &[(String, String)],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Whether the kill switch is on.
    fn paused(&self) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn set_paused(&self, paused: bool) -> impl Future<Output = Result<(), StoreError>> + Send;
}

fn conflict_of(r: sqlx::sqlite::SqliteRow) -> Conflict {
    Conflict {
        id: r.get(0),
        sync: r.get(1),
        local_id: r.get(2),
        crm_id: r.get(3),
        field: r.get(4),
        column: r.get(5),
        app_value: r.get(6),
        crm_value: r.get(7),
        base_value: r.get(8),
        created_at_ms: r.get(9),
    }
}

const CONFLICT_COLUMNS: &str =
    "id, sync, local_id, crm_id, field, column_name, app_value, crm_value, base_value, created_at";

impl PullStore for SqliteStore {
    async fn local_ids_of(
        &self,
        sync: &str,
        crm_ids: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        let mut out = HashMap::new();
        for chunk in crm_ids.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let mut q = sqlx::query(sql(format!(
                "SELECT crm_id, local_id FROM links WHERE sync = ? AND crm_id IN ({marks})"
            )))
            .bind(sync);
            for id in chunk {
                q = q.bind(id);
            }
            for r in q.fetch_all(self.pool()).await? {
                out.insert(r.get(0), r.get(1));
            }
        }
        Ok(out)
    }

    async fn bases(
        &self,
        sync: &str,
        local_ids: &[String],
    ) -> Result<HashMap<String, HashMap<String, String>>, StoreError> {
        let mut out: HashMap<String, HashMap<String, String>> = HashMap::new();
        for chunk in local_ids.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let mut q = sqlx::query(sql(format!(
                "SELECT local_id, field, value FROM field_base WHERE sync = ? AND local_id IN ({marks})"
            )))
            .bind(sync);
            for id in chunk {
                q = q.bind(id);
            }
            for r in q.fetch_all(self.pool()).await? {
                out.entry(r.get(0)).or_default().insert(r.get(1), r.get(2));
            }
        }
        Ok(out)
    }

    async fn set_bases(
        &self,
        sync: &str,
        bases: &[(String, String, String)],
    ) -> Result<(), StoreError> {
        if bases.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin().await?;
        for (local_id, field, value) in bases {
            sqlx::query("INSERT OR REPLACE INTO field_base (sync, local_id, field, value) VALUES (?, ?, ?, ?)")
                .bind(sync)
                .bind(local_id)
                .bind(field)
                .bind(value)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn record_pulls(&self, sync: &str, pulls: &[PullRecord]) -> Result<(), StoreError> {
        if pulls.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin().await?;
        for p in pulls {
            if let Some(h) = &p.pushed_hash {
                sqlx::query("UPDATE links SET pushed_hash = ? WHERE sync = ? AND local_id = ?")
                    .bind(h)
                    .bind(sync)
                    .bind(&p.local_id)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(h) = &p.pulled_hash {
                sqlx::query("UPDATE links SET pulled_hash = ? WHERE sync = ? AND local_id = ?")
                    .bind(h)
                    .bind(sync)
                    .bind(&p.local_id)
                    .execute(&mut *tx)
                    .await?;
            }
            for (field, value) in &p.bases {
                sqlx::query("INSERT OR REPLACE INTO field_base (sync, local_id, field, value) VALUES (?, ?, ?, ?)")
                    .bind(sync)
                    .bind(&p.local_id)
                    .bind(field)
                    .bind(value)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn pull_cursor(&self, sync: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT value FROM cursors WHERE sync = ? AND direction = 'pull' AND mechanism = 'poll'",
        )
        .bind(sync)
        .fetch_optional(self.pool())
        .await?)
    }

    async fn set_pull_cursor(&self, sync: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO cursors (sync, direction, mechanism, value, updated_at) VALUES (?, 'pull', 'poll', ?, ?)
             ON CONFLICT (sync, direction, mechanism) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(sync)
        .bind(value)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn add_conflicts(&self, conflicts: &[Conflict]) -> Result<(), StoreError> {
        if conflicts.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin().await?;
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
        Ok(rows.into_iter().map(conflict_of).collect())
    }

    async fn resolve_conflict(&self, id: i64, resolution: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE conflicts SET resolved_at = ?, resolution = ? WHERE id = ? AND resolved_at IS NULL",
        )
        .bind(now_ms())
        .bind(resolution)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_webhook_events(&self, events: &[(String, String)]) -> Result<u64, StoreError> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let mut new = 0;
        for (id, body) in events {
            new += sqlx::query(
                "INSERT OR IGNORE INTO webhook_events (event_id, received_at, body) VALUES (?, ?, ?)",
            )
            .bind(id)
            .bind(now)
            .bind(body)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(new)
    }

    async fn paused(&self) -> Result<bool, StoreError> {
        let v: Option<String> = sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(PAUSED)
            .fetch_optional(self.pool())
            .await?;
        Ok(v.as_deref() == Some("1"))
    }

    async fn set_paused(&self, paused: bool) -> Result<(), StoreError> {
        sqlx::query("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)")
            .bind(PAUSED)
            .bind(if paused { "1" } else { "0" })
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
