//! [`Records`] on PostgreSQL: links, field bases, quarantine, cursors. Multi-row writes are one
//! statement over bound arrays (`unnest`) where they can be, one transaction always; writes to
//! links lock them first in key order (see the module doc of [`super`]).
//!
//! Holding a record for its parent (an entry with `waits_for`) releases it at once when the
//! parent is linked already. That check and the settle that links a parent and releases its
//! waiting children would miss each other under READ COMMITTED (each blind to the other's
//! uncommitted row: a write skew), so both take the advisory lock of the parent's sync
//! ([`LockSpace::Parents`]) after writing their own rows and before reading the other's:
//! whichever comes second sees the first's commit. (`a_child_held_while_its_parent_settles_is_
//! always_released` in `tests/pg_state.rs` loses children without it.)

use super::decode::{count, get};
use super::{
    LinkLock, LockSpace, PgState, last_by_key, limit, lock_jobs_of, lock_links, lock_names,
};
use crate::Records;
use crate::error::StoreError;
use crate::ident::sql;
use crate::model::*;
use sqlx::postgres::PgRow;
use sqlx::{PgExecutor, Postgres, Transaction};
use std::collections::{HashMap, HashSet};

pub(crate) const QUARANTINE_COLUMNS: &str = "sync, local_id, kind, field, rule, message, first_seen, last_seen, attempts, retry_requested, waits_sync, waits_key";

pub(crate) fn quarantine_of(r: &PgRow) -> Result<QuarantineEntry, StoreError> {
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
        retry_requested: get(r, 9, t)?,
        waits_for: waits_sync.zip(waits_key),
    })
}

/// The parent syncs `entries` wait for: the advisory locks [`put_quarantine`] needs.
pub(crate) fn parent_syncs(entries: &[QuarantineEntry]) -> Vec<&str> {
    let mut syncs: Vec<&str> = entries
        .iter()
        .filter_map(|e| e.waits_for.as_ref().map(|(s, _)| s.as_str()))
        .collect();
    syncs.sort_unstable();
    syncs.dedup();
    syncs
}

/// Drops the jobs of the records `entries` put into quarantine (they are not sent while
/// quarantined). The caller locked them first ([`lock_jobs_of`]): this runs before the
/// advisory locks of [`put_quarantine`], never after (see the module doc of [`super`]).
pub(crate) async fn drop_jobs_of(
    tx: &mut Transaction<'static, Postgres>,
    entries: &[QuarantineEntry],
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let syncs: Vec<&str> = entries.iter().map(|e| e.sync.as_str()).collect();
    let locals: Vec<&str> = entries.iter().map(|e| e.local_id.as_str()).collect();
    sqlx::query(
        "DELETE FROM jobs j USING unnest($1::text[], $2::text[]) AS k (sync, local_id)
         WHERE j.sync = k.sync AND j.local_id = k.local_id",
    )
    .bind(&syncs)
    .bind(&locals)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes quarantine entries in `tx` (replacing previous ones) and releases at once those
/// waiting for a parent that is linked already (returns how many).
///
/// The caller dropped the records' jobs ([`drop_jobs_of`]) and then took the advisory locks of
/// [`parent_syncs`]; from here on the transaction only touches quarantine rows.
pub(crate) async fn put_quarantine(
    tx: &mut Transaction<'static, Postgres>,
    entries: &[QuarantineEntry],
) -> Result<u64, StoreError> {
    if entries.is_empty() {
        return Ok(0);
    }
    let entries = last_by_key(entries.iter(), |e| {
        let e: &QuarantineEntry = e;
        (e.sync.as_str(), e.local_id.as_str())
    });
    let syncs: Vec<&str> = entries.iter().map(|e| e.sync.as_str()).collect();
    let locals: Vec<&str> = entries.iter().map(|e| e.local_id.as_str()).collect();
    let kinds: Vec<&str> = entries.iter().map(|e| e.kind.as_str()).collect();
    let fields: Vec<Option<&str>> = entries.iter().map(|e| e.field.as_deref()).collect();
    let rules: Vec<&str> = entries.iter().map(|e| e.rule.as_str()).collect();
    let messages: Vec<&str> = entries.iter().map(|e| e.message.as_str()).collect();
    let first: Vec<i64> = entries.iter().map(|e| e.first_seen_ms).collect();
    let last: Vec<i64> = entries.iter().map(|e| e.last_seen_ms).collect();
    let waits_sync: Vec<Option<&str>> = entries
        .iter()
        .map(|e| e.waits_for.as_ref().map(|(s, _)| s.as_str()))
        .collect();
    let waits_key: Vec<Option<&str>> = entries
        .iter()
        .map(|e| e.waits_for.as_ref().map(|(_, k)| k.as_str()))
        .collect();
    sqlx::query(
        "INSERT INTO quarantine (sync, local_id, kind, field, rule, message, first_seen, last_seen, attempts, waits_sync, waits_key)
         SELECT s, l, k, f, r, m, fs, ls, 1, ws, wk
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::bigint[], $8::bigint[], $9::text[], $10::text[])
              AS e (s, l, k, f, r, m, fs, ls, ws, wk)
         ON CONFLICT (sync, local_id) DO UPDATE SET
           kind = excluded.kind, field = excluded.field, rule = excluded.rule,
           message = excluded.message, last_seen = excluded.last_seen,
           attempts = quarantine.attempts + 1, retry_requested = false,
           waits_sync = excluded.waits_sync, waits_key = excluded.waits_key",
    )
    .bind(&syncs)
    .bind(&locals)
    .bind(&kinds)
    .bind(&fields)
    .bind(&rules)
    .bind(&messages)
    .bind(&first)
    .bind(&last)
    .bind(&waits_sync)
    .bind(&waits_key)
    .execute(&mut **tx)
    .await?;
    // A parent linked meanwhile releases the record at once (its settle found no entry). A
    // statement of its own, after the caller's advisory locks: it sees every settle that
    // committed before this transaction got them.
    let waiting: Vec<&QuarantineEntry> = entries
        .iter()
        .filter(|e| e.waits_for.is_some())
        .copied()
        .collect();
    if waiting.is_empty() {
        return Ok(0);
    }
    let w_syncs: Vec<&str> = waiting.iter().map(|e| e.sync.as_str()).collect();
    let w_locals: Vec<&str> = waiting.iter().map(|e| e.local_id.as_str()).collect();
    let p_syncs: Vec<&str> = waiting
        .iter()
        .filter_map(|e| e.waits_for.as_ref().map(|(s, _)| s.as_str()))
        .collect();
    let p_keys: Vec<&str> = waiting
        .iter()
        .filter_map(|e| e.waits_for.as_ref().map(|(_, k)| k.as_str()))
        .collect();
    let released = sqlx::query(
        "UPDATE quarantine q SET retry_requested = true
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS w (sync, local_id, parent_sync, parent_key)
         WHERE q.sync = w.sync AND q.local_id = w.local_id
           AND EXISTS (SELECT 1 FROM links l WHERE l.sync = w.parent_sync
                       AND l.local_id = w.parent_key AND l.crm_id IS NOT NULL)",
    )
    .bind(&w_syncs)
    .bind(&w_locals)
    .bind(&p_syncs)
    .bind(&p_keys)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(released)
}

/// Stores base values `(local id, CRM property, value)` of `sync` in `tx` (the last of a
/// repeated pair wins). The caller holds the records' links.
pub(crate) async fn put_bases(
    tx: &mut Transaction<'static, Postgres>,
    sync: &str,
    bases: &[(&str, &str, &str)],
) -> Result<(), StoreError> {
    if bases.is_empty() {
        return Ok(());
    }
    let bases = last_by_key(bases.iter().copied(), |(l, f, _)| (*l, *f));
    let locals: Vec<&str> = bases.iter().map(|b| b.0).collect();
    let fields: Vec<&str> = bases.iter().map(|b| b.1).collect();
    let values: Vec<&str> = bases.iter().map(|b| b.2).collect();
    sqlx::query(
        "INSERT INTO field_base (sync, local_id, field, value)
         SELECT $1, l, f, v FROM unnest($2::text[], $3::text[], $4::text[]) AS b (l, f, v)
         ON CONFLICT (sync, local_id, field) DO UPDATE SET value = excluded.value",
    )
    .bind(sync)
    .bind(&locals)
    .bind(&fields)
    .bind(&values)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Stores a cursor (one statement: atomic on its own).
pub(crate) async fn put_cursor<'e>(
    db: impl PgExecutor<'e>,
    sync: &str,
    direction: CursorDirection,
    mechanism: &str,
    value: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO cursors (sync, direction, mechanism, value, updated_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (sync, direction, mechanism) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(sync)
    .bind(direction.as_str())
    .bind(mechanism)
    .bind(value)
    .bind(crate::now_ms())
    .execute(db)
    .await?;
    Ok(())
}

/// One record's pulls folded together: (pushed hash, pulled hash, version bumps).
type Folded<'a> = (Option<&'a str>, Option<&'a str>, i64);

fn pairs_of(rows: &[PgRow], table: &str) -> Result<Vec<(String, String)>, StoreError> {
    rows.iter()
        .map(|r| Ok((get(r, 0, table)?, get(r, 1, table)?)))
        .collect()
}

impl Records for PgState {
    async fn links_for(
        &self,
        sync: &str,
        keys: &[String],
    ) -> Result<HashMap<String, Link>, StoreError> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = sqlx::query(
            "SELECT local_id, crm_object, crm_id, pushed_hash, version FROM links
             WHERE sync = $1 AND local_id = ANY($2)",
        )
        .bind(sync)
        .bind(keys)
        .fetch_all(self.pool())
        .await?;
        let t = "links";
        rows.iter()
            .map(|r| {
                Ok((
                    get(r, 0, t)?,
                    Link {
                        crm_object: get(r, 1, t)?,
                        crm_id: get(r, 2, t)?,
                        pushed_hash: get(r, 3, t)?,
                        version: get(r, 4, t)?,
                    },
                ))
            })
            .collect()
    }

    async fn local_ids_of(
        &self,
        sync: &str,
        crm_ids: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        if crm_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows =
            sqlx::query("SELECT crm_id, local_id FROM links WHERE sync = $1 AND crm_id = ANY($2)")
                .bind(sync)
                .bind(crm_ids)
                .fetch_all(self.pool())
                .await?;
        Ok(pairs_of(&rows, "links")?.into_iter().collect())
    }

    async fn links_page(
        &self,
        sync: &str,
        after: Option<&str>,
        limit_n: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT local_id, crm_id FROM links
             WHERE sync = $1 AND crm_id IS NOT NULL AND local_id > $2 ORDER BY local_id LIMIT $3",
        )
        .bind(sync)
        .bind(after.unwrap_or(""))
        .bind(limit(limit_n))
        .fetch_all(self.pool())
        .await?;
        pairs_of(&rows, "links")
    }

    async fn link_count(&self, sync: &str) -> Result<u64, StoreError> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM links WHERE sync = $1 AND crm_id IS NOT NULL")
                .bind(sync)
                .fetch_one(self.pool())
                .await?;
        Ok(count(n))
    }

    async fn bases(
        &self,
        sync: &str,
        local_ids: &[String],
    ) -> Result<HashMap<String, HashMap<String, String>>, StoreError> {
        let mut out: HashMap<String, HashMap<String, String>> = HashMap::new();
        if local_ids.is_empty() {
            return Ok(out);
        }
        let rows = sqlx::query(
            "SELECT local_id, field, value FROM field_base WHERE sync = $1 AND local_id = ANY($2)",
        )
        .bind(sync)
        .bind(local_ids)
        .fetch_all(self.pool())
        .await?;
        let t = "field_base";
        for r in &rows {
            out.entry(get(r, 0, t)?)
                .or_default()
                .insert(get(r, 1, t)?, get(r, 2, t)?);
        }
        Ok(out)
    }

    async fn record_pulls(&self, sync: &str, pulls: &[PullRecord]) -> Result<(), StoreError> {
        if pulls.is_empty() {
            return Ok(());
        }
        // Fold repeated records the way one-by-one updates would leave them: a later hash
        // replaces an earlier one, an absent one keeps it, and every pull bumps the version.
        let mut folded: HashMap<&str, Folded<'_>> = HashMap::new();
        for p in pulls {
            let f = folded.entry(p.local_id.as_str()).or_insert((None, None, 0));
            f.0 = p.pushed_hash.as_deref().or(f.0);
            f.1 = p.pulled_hash.as_deref().or(f.1);
            f.2 += 1;
        }
        let mut folded: Vec<(&str, Folded<'_>)> = folded.into_iter().collect();
        folded.sort_unstable_by_key(|(l, _)| *l);
        let locals: Vec<&str> = folded.iter().map(|(l, _)| *l).collect();
        let pushed: Vec<Option<&str>> = folded.iter().map(|(_, f)| f.0).collect();
        let pulled: Vec<Option<&str>> = folded.iter().map(|(_, f)| f.1).collect();
        let bumps: Vec<i64> = folded.iter().map(|(_, f)| f.2).collect();
        let bases: Vec<(&str, &str, &str)> = pulls
            .iter()
            .flat_map(|p| {
                p.bases
                    .iter()
                    .map(|(f, v)| (p.local_id.as_str(), f.as_str(), v.as_str()))
            })
            .collect();

        let mut tx = self.tx().await?;
        lock_links(&mut tx, sync, &locals, LinkLock::Update).await?;
        sqlx::query(
            "UPDATE links l SET version = l.version + u.bumps,
               pushed_hash = COALESCE(u.pushed, l.pushed_hash), pulled_hash = COALESCE(u.pulled, l.pulled_hash)
             FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[]) AS u (local_id, pushed, pulled, bumps)
             WHERE l.sync = $1 AND l.local_id = u.local_id",
        )
        .bind(sync)
        .bind(&locals)
        .bind(&pushed)
        .bind(&pulled)
        .bind(&bumps)
        .execute(&mut *tx)
        .await?;
        put_bases(&mut tx, sync, &bases).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn unlink(&self, sync: &str, local_ids: &[String]) -> Result<(), StoreError> {
        if local_ids.is_empty() {
            return Ok(());
        }
        let locals: Vec<&str> = local_ids.iter().map(String::as_str).collect();
        let mut tx = self.tx().await?;
        lock_links(&mut tx, sync, &locals, LinkLock::Update).await?;
        sqlx::query("DELETE FROM links WHERE sync = $1 AND local_id = ANY($2)")
            .bind(sync)
            .bind(&locals)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM field_base WHERE sync = $1 AND local_id = ANY($2)")
            .bind(sync)
            .bind(&locals)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn pending_write_backs(
        &self,
        sync: &str,
        limit_n: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT local_id, crm_id FROM links WHERE sync = $1 AND crm_id IS NOT NULL
             AND written_back_id IS DISTINCT FROM crm_id ORDER BY local_id LIMIT $2",
        )
        .bind(sync)
        .bind(limit(limit_n))
        .fetch_all(self.pool())
        .await?;
        pairs_of(&rows, "links")
    }

    async fn mark_written_back(
        &self,
        sync: &str,
        pairs: &[(String, String)],
    ) -> Result<(), StoreError> {
        if pairs.is_empty() {
            return Ok(());
        }
        let pairs = last_by_key(pairs.iter(), |(l, _)| l.as_str());
        let locals: Vec<&str> = pairs.iter().map(|(l, _)| l.as_str()).collect();
        let crm_ids: Vec<&str> = pairs.iter().map(|(_, c)| c.as_str()).collect();
        let mut tx = self.tx().await?;
        lock_links(&mut tx, sync, &locals, LinkLock::Update).await?;
        sqlx::query(
            "UPDATE links l SET written_back_id = u.crm_id
             FROM unnest($2::text[], $3::text[]) AS u (local_id, crm_id)
             WHERE l.sync = $1 AND l.local_id = u.local_id AND l.crm_id = u.crm_id",
        )
        .bind(sync)
        .bind(&locals)
        .bind(&crm_ids)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn quarantine(&self, entries: &[QuarantineEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let syncs: Vec<&str> = entries.iter().map(|e| e.sync.as_str()).collect();
        let locals: Vec<&str> = entries.iter().map(|e| e.local_id.as_str()).collect();
        let mut tx = self.tx().await?;
        lock_jobs_of(&mut tx, &syncs, &locals).await?;
        drop_jobs_of(&mut tx, entries).await?;
        lock_names(&mut tx, LockSpace::Parents, &parent_syncs(entries)).await?;
        put_quarantine(&mut tx, entries).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn clear_quarantine(&self, sync: &str, local_ids: &[String]) -> Result<(), StoreError> {
        if local_ids.is_empty() {
            return Ok(());
        }
        sqlx::query("DELETE FROM quarantine WHERE sync = $1 AND local_id = ANY($2)")
            .bind(sync)
            .bind(local_ids)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn quarantined(&self, sync: &str) -> Result<Vec<QuarantineEntry>, StoreError> {
        let rows = sqlx::query(sql(format!(
            "SELECT {QUARANTINE_COLUMNS} FROM quarantine WHERE sync = $1 ORDER BY local_id"
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
        if keys.is_empty() {
            return Ok(HashSet::new());
        }
        Ok(sqlx::query_scalar::<_, String>(
            "SELECT local_id FROM quarantine WHERE sync = $1 AND local_id = ANY($2)",
        )
        .bind(sync)
        .bind(keys)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .collect())
    }

    async fn recheck_keys(&self, sync: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT local_id FROM quarantine WHERE sync = $1
             AND ((kind = 'held' AND waits_sync IS NULL) OR retry_requested) ORDER BY local_id",
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
        Ok(sqlx::query_scalar::<_, String>(
            "SELECT local_id FROM quarantine WHERE sync = $1 AND rule = ANY($2)",
        )
        .bind(sync)
        .bind(rules)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .collect())
    }

    async fn cursor(
        &self,
        sync: &str,
        direction: CursorDirection,
        mechanism: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT value FROM cursors WHERE sync = $1 AND direction = $2 AND mechanism = $3",
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
        put_cursor(self.pool(), sync, direction, mechanism, value).await
    }

    async fn counts(&self, sync: &str) -> Result<QueueCounts, StoreError> {
        // One statement: the figures come from one snapshot.
        let r = sqlx::query(
            "SELECT j.pending, j.dead, q.invalid, q.rejected, q.held, l.linked, j.oldest FROM
               (SELECT COUNT(*) FILTER (WHERE state IN ('ready', 'running', 'retrying')) AS pending,
                       COUNT(*) FILTER (WHERE state = 'dead') AS dead,
                       MIN(created_at) FILTER (WHERE state IN ('ready', 'running', 'retrying')) AS oldest
                FROM jobs WHERE sync = $1) AS j,
               (SELECT COUNT(*) FILTER (WHERE kind = 'invalid') AS invalid,
                       COUNT(*) FILTER (WHERE kind = 'rejected') AS rejected,
                       COUNT(*) FILTER (WHERE kind = 'held') AS held
                FROM quarantine WHERE sync = $1) AS q,
               (SELECT COUNT(*) AS linked FROM links WHERE sync = $1 AND crm_id IS NOT NULL) AS l",
        )
        .bind(sync)
        .fetch_one(self.pool())
        .await?;
        Ok(QueueCounts {
            pending: get(&r, 0, "jobs")?,
            dead: get(&r, 1, "jobs")?,
            invalid: get(&r, 2, "quarantine")?,
            rejected: get(&r, 3, "quarantine")?,
            held: get(&r, 4, "quarantine")?,
            linked: get(&r, 5, "links")?,
            oldest_pending_at_ms: get(&r, 6, "jobs")?,
        })
    }
}
