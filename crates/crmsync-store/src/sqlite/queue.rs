//! [`Queue`] on SQLite: jobs with owned leases. SQLite's single writer makes the claim's
//! `UPDATE ... RETURNING` exclusive; every other change is one `IMMEDIATE` transaction.

use super::decode::get;
use super::state::{put_cursor, put_quarantine, set_base};
use super::{KEYS_PER_STATEMENT, Lead, ROWS_PER_STATEMENT, SqliteState, per_key_chunk};
use crate::Queue;
use crate::error::StoreError;
use crate::ident::{marks, sql};
use crate::model::*;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Queues (or replaces) `jobs` in `tx`: latest state wins, a running job keeps running.
///
/// A new hash resets `attempts` to 0 in every state, and a claim counts its delivery at once,
/// so a `running` job with 0 attempts is one whose payload was replaced in flight: `settle`
/// reads that to keep the new payload when the old one fails.
pub(crate) async fn put_jobs(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    jobs: &[&NewJob],
    now: i64,
) -> Result<(), StoreError> {
    // One multi-row statement per chunk: the round trip per statement costs more than a row.
    for chunk in jobs.chunks(ROWS_PER_STATEMENT) {
        let values = vec!["(?, ?, 'push', 'ready', ?, ?, ?, 0, ?, ?, ?)"; chunk.len()].join(", ");
        let q = format!(
            "INSERT INTO jobs (sync, local_id, direction, state, payload, hash, priority, attempts, run_at, created_at, updated_at)
             VALUES {values}
             ON CONFLICT (sync, local_id, direction) DO UPDATE SET
               payload = excluded.payload, hash = excluded.hash,
               priority = max(jobs.priority, excluded.priority),
               state = CASE WHEN jobs.state = 'running' THEN 'running'
                            WHEN jobs.state IN ('retrying', 'dead') AND jobs.hash = excluded.hash THEN jobs.state
                            ELSE 'ready' END,
               attempts = CASE WHEN jobs.hash = excluded.hash AND jobs.state != 'done' THEN jobs.attempts ELSE 0 END,
               run_at = CASE WHEN jobs.hash = excluded.hash AND jobs.state != 'done' THEN jobs.run_at ELSE excluded.run_at END,
               last_error = CASE WHEN jobs.hash = excluded.hash THEN jobs.last_error ELSE NULL END,
               updated_at = excluded.updated_at"
        );
        let mut query = sqlx::query(sql(q));
        for j in chunk {
            query = query
                .bind(&j.sync)
                .bind(&j.local_id)
                .bind(&j.payload)
                .bind(&j.hash)
                .bind(j.priority)
                .bind(now)
                .bind(now)
                .bind(now);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

impl Queue for SqliteState {
    async fn commit_capture(&self, c: &CaptureCommit) -> Result<CommitReport, StoreError> {
        let mut tx = self.write_tx().await?;
        // The links of every record named: versions (stale plans) and pushed hashes (what the
        // CRM holds now).
        let named: HashSet<&String> = c
            .expect_versions
            .keys()
            .chain(c.jobs.iter().map(|j| &j.local_id))
            .chain(c.unchanged.iter().map(|j| &j.local_id))
            .collect();
        let named: Vec<&String> = named.into_iter().collect();
        let mut current: HashMap<String, (i64, Option<String>)> = HashMap::new();
        for chunk in named.chunks(KEYS_PER_STATEMENT) {
            let mut q = sqlx::query(sql(format!(
                "SELECT local_id, version, pushed_hash FROM links WHERE sync = ? AND local_id IN ({})",
                marks(chunk.len())
            )))
            .bind(&c.sync);
            for k in chunk {
                q = q.bind(*k);
            }
            for r in q.fetch_all(&mut *tx).await? {
                current.insert(
                    get(&r, 0, "links")?,
                    (get(&r, 1, "links")?, get(&r, 2, "links")?),
                );
            }
        }
        let mut stale: HashSet<String> = HashSet::new();
        for (k, expected) in &c.expect_versions {
            if current.get(k).map_or(0, |(v, _)| *v) != *expected {
                stale.insert(k.clone());
            }
        }
        let pushed = |k: &str| current.get(k).and_then(|(_, h)| h.as_deref());
        let mut already = 0u64;
        let mut jobs: Vec<&NewJob> = Vec::new();
        for j in c.jobs.iter().filter(|j| !stale.contains(&j.local_id)) {
            // Planned by a capture (named with its version) while the CRM already holds it:
            // a repeat. Jobs queued without a version (inbound, repairs) always go out.
            if c.expect_versions.contains_key(&j.local_id)
                && pushed(&j.local_id) == Some(j.hash.as_str())
            {
                already += 1;
            } else {
                jobs.push(j);
            }
        }
        // Unchanged records: the CRM holds their payload; a live job with another hash must
        // not go out after all. An unchanged record whose link moved meanwhile is a job again.
        let unchanged: Vec<&NewJob> = c
            .unchanged
            .iter()
            .filter(|j| !stale.contains(&j.local_id))
            .collect();
        let mut live: HashMap<String, (String, String)> = HashMap::new();
        for chunk in unchanged.chunks(KEYS_PER_STATEMENT) {
            let mut q = sqlx::query(sql(format!(
                "SELECT local_id, state, hash FROM jobs WHERE sync = ? AND direction = 'push' AND state != 'done' AND local_id IN ({})",
                marks(chunk.len())
            )))
            .bind(&c.sync);
            for j in chunk {
                q = q.bind(&j.local_id);
            }
            for r in q.fetch_all(&mut *tx).await? {
                live.insert(
                    get(&r, 0, "jobs")?,
                    (get(&r, 1, "jobs")?, get(&r, 2, "jobs")?),
                );
            }
        }
        let mut superseded = 0u64;
        for j in unchanged {
            if pushed(&j.local_id) != Some(j.hash.as_str()) {
                jobs.push(j);
                continue;
            }
            match live.get(&j.local_id) {
                Some((state, hash)) if hash != &j.hash => {
                    superseded += 1;
                    if state == "running" {
                        // In flight: its settle sees the new hash and queues this payload.
                        jobs.push(j);
                    } else {
                        sqlx::query(
                            "UPDATE jobs SET state = 'done', payload = ?, hash = ?, attempts = 0, last_error = NULL,
                               lease_until = NULL, owner = NULL, updated_at = ?
                             WHERE sync = ? AND local_id = ? AND direction = 'push'",
                        )
                        .bind(&j.payload)
                        .bind(&j.hash)
                        .bind(c.now_ms)
                        .bind(&c.sync)
                        .bind(&j.local_id)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                _ => {}
            }
        }
        put_jobs(&mut tx, &jobs, c.now_ms).await?;
        let entries: Vec<QuarantineEntry> = c
            .quarantine
            .iter()
            .filter(|e| !stale.contains(&e.local_id))
            .cloned()
            .collect();
        let released = put_quarantine(&mut tx, &entries).await?;
        let clear: Vec<String> = c
            .clear
            .iter()
            .filter(|k| !stale.contains(*k))
            .cloned()
            .collect();
        per_key_chunk(
            &mut tx,
            &["DELETE FROM quarantine WHERE sync = ? AND local_id IN ({keys})"],
            &Lead::Text(&c.sync),
            &clear,
        )
        .await?;
        if let Some((mechanism, value)) = &c.cursor {
            put_cursor(&mut tx, &c.sync, CursorDirection::Push, mechanism, value).await?;
        }
        tx.commit().await?;
        let mut stale: Vec<String> = stale.into_iter().collect();
        stale.sort();
        Ok(CommitReport {
            queued: jobs.len() as u64,
            already,
            superseded,
            stale,
            released,
        })
    }

    async fn claim(
        &self,
        owner: &str,
        sync: &str,
        limit: usize,
        lease: Duration,
        now: i64,
    ) -> Result<Vec<Job>, StoreError> {
        let lease_until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        // One index range per state, each walked in claim order and cut at the limit: an `OR`
        // across states would scan every queued job on each claim. The (at most 3 x limit)
        // candidates are then put in claim order again, so a limit never passes over a more
        // urgent job because of the state it is in.
        let rows = sqlx::query(
            "UPDATE jobs SET state = 'running', owner = ?5, lease_until = ?4, attempts = attempts + 1, updated_at = ?2
             WHERE id IN (
               SELECT id FROM (
                 SELECT * FROM (SELECT id, priority, run_at FROM jobs WHERE sync = ?1 AND state = 'ready' AND run_at <= ?2
                                ORDER BY priority DESC, run_at, id LIMIT ?3)
                 UNION ALL
                 SELECT * FROM (SELECT id, priority, run_at FROM jobs WHERE sync = ?1 AND state = 'retrying' AND run_at <= ?2
                                ORDER BY priority DESC, run_at, id LIMIT ?3)
                 UNION ALL
                 SELECT * FROM (SELECT id, priority, run_at FROM jobs WHERE sync = ?1 AND state = 'running' AND lease_until < ?2
                                ORDER BY priority DESC, run_at, id LIMIT ?3))
               ORDER BY priority DESC, run_at, id LIMIT ?3)
             RETURNING id, sync, local_id, payload, hash, attempts",
        )
        .bind(sync)
        .bind(now)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(lease_until)
        .bind(owner)
        .fetch_all(self.pool())
        .await?;
        let mut jobs = rows
            .iter()
            .map(|r| {
                Ok(Job {
                    id: get(r, 0, "jobs")?,
                    sync: get(r, 1, "jobs")?,
                    local_id: get(r, 2, "jobs")?,
                    payload: get(r, 3, "jobs")?,
                    hash: get(r, 4, "jobs")?,
                    attempts: get(r, 5, "jobs")?,
                })
            })
            .collect::<Result<Vec<Job>, StoreError>>()?;
        jobs.sort_by_key(|j| j.id);
        Ok(jobs)
    }

    async fn renew_jobs(&self, owner: &str, until_ms: i64) -> Result<u64, StoreError> {
        // Every lease the owner holds counts (a repeated renewal is not "nothing held"); a
        // lease already running longer is not cut short.
        Ok(sqlx::query(
            "UPDATE jobs SET lease_until = MAX(COALESCE(lease_until, ?1), ?1) WHERE owner = ?2 AND state = 'running'",
        )
        .bind(until_ms)
        .bind(owner)
        .execute(self.pool())
        .await?
        .rows_affected())
    }

    async fn still_current(
        &self,
        owner: &str,
        jobs: &[(i64, String)],
    ) -> Result<HashSet<i64>, StoreError> {
        let mut out = HashSet::new();
        let wanted: HashMap<i64, &str> = jobs.iter().map(|(i, h)| (*i, h.as_str())).collect();
        let ids: Vec<i64> = wanted.keys().copied().collect();
        for chunk in ids.chunks(KEYS_PER_STATEMENT) {
            let mut q = sqlx::query(sql(format!(
                "SELECT id, hash FROM jobs WHERE owner = ? AND state = 'running' AND id IN ({})",
                marks(chunk.len())
            )))
            .bind(owner);
            for id in chunk {
                q = q.bind(id);
            }
            for r in q.fetch_all(self.pool()).await? {
                let id: i64 = get(&r, 0, "jobs")?;
                let hash: String = get(&r, 1, "jobs")?;
                if wanted.get(&id) == Some(&hash.as_str()) {
                    out.insert(id);
                }
            }
        }
        Ok(out)
    }

    async fn settle(&self, owner: &str, s: &Settlement) -> Result<SettleReport, StoreError> {
        let all: Vec<i64> = s
            .delivered
            .iter()
            .map(|d| d.job_id)
            .chain(s.rejected.iter().map(|(id, _)| *id))
            .chain(s.retry.iter().map(|r| r.job_id))
            .collect();
        if all.is_empty() {
            return Ok(SettleReport::default());
        }
        let mut tx = self.write_tx().await?;
        let mut ours: HashSet<i64> = HashSet::new();
        // Ours and replaced in flight (see `put_jobs`): a failure of the old payload must not
        // take the new one with it.
        let mut replaced: HashSet<i64> = HashSet::new();
        for chunk in all.chunks(KEYS_PER_STATEMENT) {
            let mut q = sqlx::query_as::<_, (i64, i64)>(sql(format!(
                "SELECT id, attempts FROM jobs WHERE owner = ? AND state = 'running' AND id IN ({})",
                marks(chunk.len())
            )))
            .bind(owner);
            for id in chunk {
                q = q.bind(id);
            }
            for (id, attempts) in q.fetch_all(&mut *tx).await? {
                ours.insert(id);
                if attempts == 0 {
                    replaced.insert(id);
                }
            }
        }
        let now = s.now_ms;
        let delivered: Vec<&Delivered> = s
            .delivered
            .iter()
            .filter(|d| ours.contains(&d.job_id))
            .collect();
        for chunk in delivered.chunks(ROWS_PER_STATEMENT) {
            let values = vec!["(?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let mut links = sqlx::query(sql(format!(
                "INSERT INTO links (sync, local_id, crm_object, crm_id, pushed_hash, pushed_at) VALUES {values}
                 ON CONFLICT (sync, local_id) DO UPDATE SET
                   crm_object = excluded.crm_object, crm_id = excluded.crm_id,
                   pushed_hash = excluded.pushed_hash, pushed_at = excluded.pushed_at"
            )));
            for d in chunk {
                links = links
                    .bind(&s.sync)
                    .bind(&d.local_id)
                    .bind(&s.crm_object)
                    .bind(&d.crm_id)
                    .bind(&d.hash)
                    .bind(now);
            }
            links.execute(&mut *tx).await?;

            // A job whose payload changed while it was in flight goes back to ready, to carry
            // the new state; otherwise it is done (and its row is reused by the next change).
            let values = vec!["(?, ?)"; chunk.len()].join(", ");
            let mut jobs = sqlx::query(sql(format!(
                "WITH delivered (id, hash) AS (VALUES {values})
                 UPDATE jobs SET
                   state = CASE WHEN hash = (SELECT d.hash FROM delivered d WHERE d.id = jobs.id) THEN 'done' ELSE 'ready' END,
                   attempts = CASE WHEN hash = (SELECT d.hash FROM delivered d WHERE d.id = jobs.id) THEN attempts ELSE 0 END,
                   lease_until = NULL, owner = NULL, last_error = NULL, updated_at = ?
                 WHERE id IN (SELECT id FROM delivered)"
            )));
            for d in chunk {
                jobs = jobs.bind(d.job_id).bind(&d.hash);
            }
            jobs.bind(now).execute(&mut *tx).await?;
        }
        let locals: Vec<String> = delivered.iter().map(|d| d.local_id.clone()).collect();
        per_key_chunk(
            &mut tx,
            &["DELETE FROM quarantine WHERE sync = ? AND local_id IN ({keys})"],
            &Lead::Text(&s.sync),
            &locals,
        )
        .await?;
        // Children of other syncs waiting for these records are released.
        let released = per_key_chunk(
            &mut tx,
            &["UPDATE quarantine SET retry_requested = 1 WHERE waits_sync = ? AND waits_key IN ({keys})"],
            &Lead::Text(&s.sync),
            &locals,
        )
        .await?;
        let settled_locals: HashSet<&str> = locals.iter().map(String::as_str).collect();
        for (local, field, value) in &s.bases {
            if settled_locals.contains(local.as_str()) {
                set_base(&mut tx, &s.sync, local, field, value).await?;
            }
        }
        let rejected: Vec<QuarantineEntry> = s
            .rejected
            .iter()
            .filter(|(id, _)| ours.contains(id))
            .map(|(_, e)| e.clone())
            .collect();
        put_quarantine(&mut tx, &rejected).await?;
        // The CRM refused a payload the record no longer has: its reason stays visible, and
        // the next capture looks at the record again (its newer row was captured already).
        for (_, e) in s
            .rejected
            .iter()
            .filter(|(id, _)| ours.contains(id) && replaced.contains(id))
        {
            sqlx::query(
                "UPDATE quarantine SET retry_requested = 1 WHERE sync = ? AND local_id = ?",
            )
            .bind(&e.sync)
            .bind(&e.local_id)
            .execute(&mut *tx)
            .await?;
        }
        let mut retried = 0;
        for r in s.retry.iter().filter(|r| ours.contains(&r.job_id)) {
            sqlx::query(
                "UPDATE jobs SET state = ?, run_at = ?, lease_until = NULL, owner = NULL, last_error = ?, updated_at = ? WHERE id = ?",
            )
            // Out of retries is about the payload that was tried, not a newer one.
            .bind(if r.dead && !replaced.contains(&r.job_id) {
                "dead"
            } else {
                "retrying"
            })
            .bind(r.run_at_ms)
            .bind(&r.error)
            .bind(now)
            .bind(r.job_id)
            .execute(&mut *tx)
            .await?;
            retried += 1;
        }
        tx.commit().await?;
        let mut lost: Vec<i64> = all.into_iter().filter(|id| !ours.contains(id)).collect();
        lost.sort_unstable();
        lost.dedup();
        Ok(SettleReport {
            settled: (delivered.len() + rejected.len()) as u64 + retried,
            lost,
            released,
        })
    }

    async fn release_all(&self, owner: &str) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE jobs SET state = 'ready', lease_until = NULL, owner = NULL, attempts = MAX(attempts - 1, 0)
             WHERE owner = ? AND state = 'running'",
        )
        .bind(owner)
        .execute(self.pool())
        .await?
        .rows_affected())
    }
}
