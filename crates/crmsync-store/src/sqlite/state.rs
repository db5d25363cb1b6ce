//! [`Records`] on SQLite: links, field bases, quarantine, cursors. Multi-row writes are one
//! `IMMEDIATE` transaction each.

use super::decode::get;
use super::{KEYS_PER_STATEMENT, Lead, SqliteState, per_key_chunk};
use crate::Records;
use crate::error::StoreError;
use crate::ident::{marks, sql};
use crate::model::*;
use sqlx::sqlite::SqliteRow;
use std::collections::{HashMap, HashSet};

pub(crate) const QUARANTINE_COLUMNS: &str = "sync, local_id, kind, field, rule, message, first_seen, last_seen, attempts, retry_requested, waits_sync, waits_key";

pub(crate) fn quarantine_of(r: &SqliteRow) -> Result<QuarantineEntry, StoreError> {
    let t = "quarantine";
    let waits_sync: Option<String> = get(r, 10, t)?;
    let waits_key: Option<String> = get(r, 11, t)?;
    Ok(QuarantineEntry {
        sync: get(r, 0, t)?,
        local_id: get(r, 1, t)?,
        kind: QuarantineKind::parse(&get::<String>(r, 2, t)?),
        field: get(r, 3, t)?,
        rule: get(r, 4, t)?,
        message: get(r, 5, t)?,
        first_seen_ms: get(r, 6, t)?,
        last_seen_ms: get(r, 7, t)?,
        attempts: get(r, 8, t)?,
        retry_requested: get::<i64>(r, 9, t)? != 0,
        waits_for: waits_sync.zip(waits_key),
    })
}

/// Writes quarantine entries in `tx` and drops the records' jobs; returns how many held records
/// it released at once (their parent is linked already).
pub(crate) async fn put_quarantine(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    entries: &[QuarantineEntry],
) -> Result<u64, StoreError> {
    let mut released = 0;
    for e in entries {
        let (waits_sync, waits_key) = match &e.waits_for {
            Some((s, k)) => (Some(s.as_str()), Some(k.as_str())),
            None => (None, None),
        };
        sqlx::query(
            "INSERT INTO quarantine (sync, local_id, kind, field, rule, message, first_seen, last_seen, attempts, waits_sync, waits_key)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)
             ON CONFLICT (sync, local_id) DO UPDATE SET
               kind = excluded.kind, field = excluded.field, rule = excluded.rule,
               message = excluded.message, last_seen = excluded.last_seen,
               attempts = quarantine.attempts + 1, retry_requested = 0,
               waits_sync = excluded.waits_sync, waits_key = excluded.waits_key",
        )
        .bind(&e.sync)
        .bind(&e.local_id)
        .bind(e.kind.as_str())
        .bind(&e.field)
        .bind(&e.rule)
        .bind(&e.message)
        .bind(e.first_seen_ms)
        .bind(e.last_seen_ms)
        .bind(waits_sync)
        .bind(waits_key)
        .execute(&mut **tx)
        .await?;
        // A parent linked meanwhile releases the record at once (its settle found no entry).
        if let Some((s, k)) = &e.waits_for {
            released += sqlx::query(
                "UPDATE quarantine SET retry_requested = 1 WHERE sync = ? AND local_id = ?
                 AND EXISTS (SELECT 1 FROM links WHERE sync = ? AND local_id = ? AND crm_id IS NOT NULL)",
            )
            .bind(&e.sync)
            .bind(&e.local_id)
            .bind(s)
            .bind(k)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        }
        sqlx::query("DELETE FROM jobs WHERE sync = ? AND local_id = ?")
            .bind(&e.sync)
            .bind(&e.local_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(released)
}

impl Records for SqliteState {
    async fn links_for(
        &self,
        sync: &str,
        keys: &[String],
    ) -> Result<HashMap<String, Link>, StoreError> {
        let mut out = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(KEYS_PER_STATEMENT) {
            let q = format!(
                "SELECT local_id, crm_object, crm_id, pushed_hash, version FROM links WHERE sync = ? AND local_id IN ({})",
                marks(chunk.len())
            );
            let mut query = sqlx::query(sql(q)).bind(sync);
            for k in chunk {
                query = query.bind(k);
            }
            for r in query.fetch_all(self.pool()).await? {
                out.insert(
                    get(&r, 0, "links")?,
                    Link {
                        crm_object: get(&r, 1, "links")?,
                        crm_id: get(&r, 2, "links")?,
                        pushed_hash: get(&r, 3, "links")?,
                        version: get(&r, 4, "links")?,
                    },
                );
            }
        }
        Ok(out)
    }

    async fn local_ids_of(
        &self,
        sync: &str,
        crm_ids: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        let mut out = HashMap::new();
        for chunk in crm_ids.chunks(KEYS_PER_STATEMENT) {
            let mut q = sqlx::query(sql(format!(
                "SELECT crm_id, local_id FROM links WHERE sync = ? AND crm_id IN ({})",
                marks(chunk.len())
            )))
            .bind(sync);
            for id in chunk {
                q = q.bind(id);
            }
            for r in q.fetch_all(self.pool()).await? {
                out.insert(get(&r, 0, "links")?, get(&r, 1, "links")?);
            }
        }
        Ok(out)
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
        rows.iter()
            .map(|r| Ok((get(r, 0, "links")?, get(r, 1, "links")?)))
            .collect()
    }

    async fn link_count(&self, sync: &str) -> Result<u64, StoreError> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM links WHERE sync = ? AND crm_id IS NOT NULL")
                .bind(sync)
                .fetch_one(self.pool())
                .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn bases(
        &self,
        sync: &str,
        local_ids: &[String],
    ) -> Result<HashMap<String, HashMap<String, String>>, StoreError> {
        let mut out: HashMap<String, HashMap<String, String>> = HashMap::new();
        for chunk in local_ids.chunks(KEYS_PER_STATEMENT) {
            let mut q = sqlx::query(sql(format!(
                "SELECT local_id, field, value FROM field_base WHERE sync = ? AND local_id IN ({})",
                marks(chunk.len())
            )))
            .bind(sync);
            for id in chunk {
                q = q.bind(id);
            }
            for r in q.fetch_all(self.pool()).await? {
                out.entry(get(&r, 0, "field_base")?)
                    .or_default()
                    .insert(get(&r, 1, "field_base")?, get(&r, 2, "field_base")?);
            }
        }
        Ok(out)
    }

    async fn record_pulls(&self, sync: &str, pulls: &[PullRecord]) -> Result<(), StoreError> {
        if pulls.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        for p in pulls {
            sqlx::query(
                "UPDATE links SET version = version + 1,
                   pushed_hash = COALESCE(?, pushed_hash), pulled_hash = COALESCE(?, pulled_hash)
                 WHERE sync = ? AND local_id = ?",
            )
            .bind(&p.pushed_hash)
            .bind(&p.pulled_hash)
            .bind(sync)
            .bind(&p.local_id)
            .execute(&mut *tx)
            .await?;
            for (field, value) in &p.bases {
                set_base(&mut tx, sync, &p.local_id, field, value).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn unlink(&self, sync: &str, local_ids: &[String]) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        per_key_chunk(
            &mut tx,
            &[
                "DELETE FROM links WHERE sync = ? AND local_id IN ({keys})",
                "DELETE FROM field_base WHERE sync = ? AND local_id IN ({keys})",
            ],
            &Lead::Text(sync),
            local_ids,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn pending_write_backs(
        &self,
        sync: &str,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT local_id, crm_id FROM links WHERE sync = ? AND crm_id IS NOT NULL
             AND (written_back_id IS NULL OR written_back_id != crm_id) ORDER BY local_id LIMIT ?",
        )
        .bind(sync)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((get(r, 0, "links")?, get(r, 1, "links")?)))
            .collect()
    }

    async fn mark_written_back(
        &self,
        sync: &str,
        pairs: &[(String, String)],
    ) -> Result<(), StoreError> {
        if pairs.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        for (local, crm) in pairs {
            sqlx::query(
                "UPDATE links SET written_back_id = ? WHERE sync = ? AND local_id = ? AND crm_id = ?",
            )
            .bind(crm)
            .bind(sync)
            .bind(local)
            .bind(crm)
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
        let mut tx = self.write_tx().await?;
        put_quarantine(&mut tx, entries).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn clear_quarantine(&self, sync: &str, local_ids: &[String]) -> Result<(), StoreError> {
        if local_ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        per_key_chunk(
            &mut tx,
            &["DELETE FROM quarantine WHERE sync = ? AND local_id IN ({keys})"],
            &Lead::Text(sync),
            local_ids,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn quarantined(&self, sync: &str) -> Result<Vec<QuarantineEntry>, StoreError> {
        let rows = sqlx::query(sql(format!(
            "SELECT {QUARANTINE_COLUMNS} FROM quarantine WHERE sync = ? ORDER BY local_id"
        )))
        .bind(sync)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(quarantine_of).collect()
    }

    async fn quarantined_among(
        &self,
        sync: &str,
        keys: &[String],
    ) -> Result<HashSet<String>, StoreError> {
        let mut out = HashSet::new();
        for chunk in keys.chunks(KEYS_PER_STATEMENT) {
            let q = format!(
                "SELECT local_id FROM quarantine WHERE sync = ? AND local_id IN ({})",
                marks(chunk.len())
            );
            let mut query = sqlx::query_scalar::<_, String>(sql(q)).bind(sync);
            for k in chunk {
                query = query.bind(k);
            }
            out.extend(query.fetch_all(self.pool()).await?);
        }
        Ok(out)
    }

    async fn recheck_keys(&self, sync: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT local_id FROM quarantine WHERE sync = ?
             AND ((kind = 'held' AND waits_sync IS NULL) OR retry_requested != 0) ORDER BY local_id",
        )
        .bind(sync)
        .fetch_all(self.pool())
        .await?)
    }

    async fn blocked_keys(
        &self,
        sync: &str,
        rules: &[&str],
    ) -> Result<HashSet<String>, StoreError> {
        if rules.is_empty() {
            return Ok(HashSet::new());
        }
        let mut q = sqlx::query_scalar::<_, String>(sql(format!(
            "SELECT local_id FROM quarantine WHERE sync = ? AND rule IN ({})",
            marks(rules.len())
        )))
        .bind(sync);
        for r in rules {
            q = q.bind(*r);
        }
        Ok(q.fetch_all(self.pool()).await?.into_iter().collect())
    }

    async fn cursor(
        &self,
        sync: &str,
        direction: CursorDirection,
        mechanism: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT value FROM cursors WHERE sync = ? AND direction = ? AND mechanism = ?",
        )
        .bind(sync)
        .bind(direction.as_str())
        .bind(mechanism)
        .fetch_optional(self.pool())
        .await?)
    }

    async fn set_cursor(
        &self,
        sync: &str,
        direction: CursorDirection,
        mechanism: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        put_cursor(&mut tx, sync, direction, mechanism, value).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn counts(&self, sync: &str) -> Result<QueueCounts, StoreError> {
        let jobs = sqlx::query(
            "SELECT COALESCE(SUM(state IN ('ready', 'running', 'retrying')), 0), COALESCE(SUM(state = 'dead'), 0),
                    MIN(CASE WHEN state IN ('ready', 'running', 'retrying') THEN created_at END)
             FROM jobs WHERE sync = ?",
        )
        .bind(sync)
        .fetch_one(self.pool())
        .await?;
        let q = sqlx::query(
            "SELECT COALESCE(SUM(kind = 'invalid'), 0), COALESCE(SUM(kind = 'rejected'), 0), COALESCE(SUM(kind = 'held'), 0)
             FROM quarantine WHERE sync = ?",
        )
        .bind(sync)
        .fetch_one(self.pool())
        .await?;
        let linked: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM links WHERE sync = ? AND crm_id IS NOT NULL")
                .bind(sync)
                .fetch_one(self.pool())
                .await?;
        Ok(QueueCounts {
            pending: get(&jobs, 0, "jobs")?,
            dead: get(&jobs, 1, "jobs")?,
            invalid: get(&q, 0, "quarantine")?,
            rejected: get(&q, 1, "quarantine")?,
            held: get(&q, 2, "quarantine")?,
            linked,
            oldest_pending_at_ms: get(&jobs, 2, "jobs")?,
        })
    }
}

/// Stores one base value in `tx`.
pub(crate) async fn set_base(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    sync: &str,
    local_id: &str,
    field: &str,
    value: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO field_base (sync, local_id, field, value) VALUES (?, ?, ?, ?)
         ON CONFLICT (sync, local_id, field) DO UPDATE SET value = excluded.value",
    )
    .bind(sync)
    .bind(local_id)
    .bind(field)
    .bind(value)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Stores a cursor in `tx`.
pub(crate) async fn put_cursor(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    sync: &str,
    direction: CursorDirection,
    mechanism: &str,
    value: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO cursors (sync, direction, mechanism, value, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (sync, direction, mechanism) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(sync)
    .bind(direction.as_str())
    .bind(mechanism)
    .bind(value)
    .bind(crate::now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
