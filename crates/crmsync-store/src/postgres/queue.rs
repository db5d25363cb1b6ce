//! [`Queue`] on PostgreSQL: jobs with owned leases, shared by any number of workers.
//!
//! - **Claims** lock the jobs they take with `FOR UPDATE SKIP LOCKED` in one statement: a
//!   worker never waits on another's claim, and a row another worker took meanwhile fails the
//!   lock's recheck of its latest version, so no job is handed to two owners. Expired leases
//!   of other owners are claimable the same way.
//! - **Settles** lock their jobs `FOR UPDATE` where `owner` and `running` still hold; the
//!   others are lost and their outcome dropped, all in one transaction.
//! - **Commits of a capture** lock the existing jobs of every record they touch, then the links
//!   whose versions they check (`FOR SHARE`, so an inbound commit that would move a version
//!   waits for this commit, or this commit sees its new version), then write.
//!
//! Lock order, the parent-release advisory locks and why they exist: the module docs of
//! [`super`] and [`super::state`].

use super::decode::get;
use super::state::{drop_jobs_of, parent_syncs, put_bases, put_cursor, put_quarantine};
use super::{
    LinkLock, LockSpace, PgState, last_by_key, limit, lock_jobs_of, lock_links, lock_names,
};
use crate::Queue;
use crate::error::StoreError;
use crate::model::*;
use sqlx::{Postgres, Transaction};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Queues (or replaces) `jobs` in `tx`: latest state wins, a running job keeps running. The
/// caller holds the locks of the records' existing jobs. One statement for the whole batch.
pub(crate) async fn put_jobs(
    tx: &mut Transaction<'static, Postgres>,
    jobs: &[&NewJob],
    now: i64,
) -> Result<(), StoreError> {
    if jobs.is_empty() {
        return Ok(());
    }
    // A repeated record keeps its last payload and its highest priority, as rows upserted one
    // by one would (a multi-row upsert may not touch one row twice).
    let mut priority: HashMap<(&str, &str), i32> = HashMap::new();
    for j in jobs {
        let p = priority.entry((&j.sync, &j.local_id)).or_insert(j.priority);
        *p = (*p).max(j.priority);
    }
    // The last job of each record, in the order records first appear: new rows get their ids
    // in queue order, which breaks claim ties as on every backend. (The records' existing job
    // rows are locked in key order by the caller, so this order takes no new row lock.)
    let mut last: HashMap<(&str, &str), &NewJob> = HashMap::new();
    let mut order: Vec<(&str, &str)> = Vec::new();
    for j in jobs {
        let k = (j.sync.as_str(), j.local_id.as_str());
        if last.insert(k, j).is_none() {
            order.push(k);
        }
    }
    let jobs: Vec<&NewJob> = order.iter().filter_map(|k| last.get(k).copied()).collect();
    let syncs: Vec<&str> = jobs.iter().map(|j| j.sync.as_str()).collect();
    let locals: Vec<&str> = jobs.iter().map(|j| j.local_id.as_str()).collect();
    let payloads: Vec<&str> = jobs.iter().map(|j| j.payload.as_str()).collect();
    let hashes: Vec<&str> = jobs.iter().map(|j| j.hash.as_str()).collect();
    let priorities: Vec<i32> = jobs
        .iter()
        .map(|j| {
            priority
                .get(&(j.sync.as_str(), j.local_id.as_str()))
                .copied()
                .unwrap_or(j.priority)
        })
        .collect();
    sqlx::query(
        "INSERT INTO jobs (sync, local_id, direction, state, payload, hash, priority, attempts, run_at, created_at, updated_at)
         SELECT s, l, 'push', 'ready', p, h, pr, 0, $6, $6, $6
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int4[]) AS j (s, l, p, h, pr)
         ON CONFLICT (sync, local_id, direction) DO UPDATE SET
           payload = excluded.payload, hash = excluded.hash,
           priority = GREATEST(jobs.priority, excluded.priority),
           state = CASE WHEN jobs.state = 'running' THEN 'running'
                        WHEN jobs.state IN ('retrying', 'dead') AND jobs.hash = excluded.hash THEN jobs.state
                        ELSE 'ready' END,
           attempts = CASE WHEN jobs.hash = excluded.hash AND jobs.state <> 'done' THEN jobs.attempts ELSE 0 END,
           run_at = CASE WHEN jobs.hash = excluded.hash AND jobs.state <> 'done' THEN jobs.run_at ELSE excluded.run_at END,
           last_error = CASE WHEN jobs.hash = excluded.hash THEN jobs.last_error ELSE NULL END,
           updated_at = excluded.updated_at",
    )
    .bind(&syncs)
    .bind(&locals)
    .bind(&payloads)
    .bind(&hashes)
    .bind(&priorities)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Queue for PgState {
    async fn commit_capture(&self, c: &CaptureCommit) -> Result<CommitReport, StoreError> {
        let mut tx = self.tx().await?;

        // 1. The existing jobs of every record whose job this commit writes or drops.
        let mut touched: Vec<(&str, &str)> = c
            .jobs
            .iter()
            .chain(&c.unchanged)
            .map(|j| (j.sync.as_str(), j.local_id.as_str()))
            .chain(
                c.quarantine
                    .iter()
                    .map(|e| (e.sync.as_str(), e.local_id.as_str())),
            )
            .collect();
        touched.sort_unstable();
        touched.dedup();
        let (t_syncs, t_locals): (Vec<&str>, Vec<&str>) = touched.into_iter().unzip();
        lock_jobs_of(&mut tx, &t_syncs, &t_locals).await?;

        // 2. The links whose versions the planner read and whose pushed hashes decide what is
        //    a repeat, held until commit: an inbound commit moving one either committed before
        //    (and is seen here) or waits for this commit.
        let mut keys: Vec<&str> = c
            .expect_versions
            .keys()
            .map(String::as_str)
            .chain(c.unchanged.iter().map(|j| j.local_id.as_str()))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let current = lock_links(&mut tx, &c.sync, &keys, LinkLock::Share).await?;
        let mut stale: HashSet<&str> = HashSet::new();
        for (k, expected) in &c.expect_versions {
            if current.get(k).map_or(0, |(v, _)| *v) != *expected {
                stale.insert(k.as_str());
            }
        }
        let pushed = |k: &str| current.get(k).and_then(|(_, h)| h.as_deref());

        let mut already = 0u64;
        let mut jobs: Vec<&NewJob> = Vec::new();
        for j in c
            .jobs
            .iter()
            .filter(|j| !stale.contains(j.local_id.as_str()))
        {
            // Planned by a capture while the CRM already holds it: a repeat. Jobs queued
            // without a version (inbound, repairs) always go out.
            if c.expect_versions.contains_key(&j.local_id)
                && pushed(&j.local_id) == Some(j.hash.as_str())
            {
                already += 1;
            } else {
                jobs.push(j);
            }
        }
        // Unchanged records: a live job with another hash must not go out after all.
        let unchanged: Vec<&NewJob> = c
            .unchanged
            .iter()
            .filter(|j| !stale.contains(j.local_id.as_str()))
            .collect();
        let mut superseded = 0u64;
        if !unchanged.is_empty() {
            let locals: Vec<&str> = unchanged.iter().map(|j| j.local_id.as_str()).collect();
            let rows = sqlx::query(
                "SELECT local_id, state, hash FROM jobs
                 WHERE sync = $1 AND direction = 'push' AND state <> 'done' AND local_id = ANY($2)",
            )
            .bind(&c.sync)
            .bind(&locals)
            .fetch_all(&mut *tx)
            .await?;
            let mut live: HashMap<String, (String, String)> = HashMap::new();
            for r in &rows {
                live.insert(get(r, 0, "jobs")?, (get(r, 1, "jobs")?, get(r, 2, "jobs")?));
            }
            let mut done_locals: Vec<&str> = Vec::new();
            let mut done_payloads: Vec<&str> = Vec::new();
            let mut done_hashes: Vec<&str> = Vec::new();
            for j in unchanged {
                if pushed(&j.local_id) != Some(j.hash.as_str()) {
                    jobs.push(j);
                    continue;
                }
                if let Some((state, hash)) = live.get(&j.local_id)
                    && hash != &j.hash
                {
                    superseded += 1;
                    if state == "running" {
                        // In flight: its settle sees the new hash and queues this payload.
                        jobs.push(j);
                    } else {
                        done_locals.push(&j.local_id);
                        done_payloads.push(&j.payload);
                        done_hashes.push(&j.hash);
                    }
                }
            }
            if !done_locals.is_empty() {
                sqlx::query(
                    "UPDATE jobs SET state = 'done', payload = u.p, hash = u.h, attempts = 0,
                       last_error = NULL, lease_until = NULL, owner = NULL, updated_at = $5
                     FROM unnest($2::text[], $3::text[], $4::text[]) AS u (l, p, h)
                     WHERE jobs.sync = $1 AND jobs.direction = 'push' AND jobs.local_id = u.l",
                )
                .bind(&c.sync)
                .bind(&done_locals)
                .bind(&done_payloads)
                .bind(&done_hashes)
                .bind(c.now_ms)
                .execute(&mut *tx)
                .await?;
            }
        }
        put_jobs(&mut tx, &jobs, c.now_ms).await?;
        let entries: Vec<QuarantineEntry> = c
            .quarantine
            .iter()
            .filter(|e| !stale.contains(e.local_id.as_str()))
            .cloned()
            .collect();
        drop_jobs_of(&mut tx, &entries).await?;

        // 3. Quarantine rows and the cursor, after the advisory locks of the parents the
        //    entries wait for: from here on nothing waits on a job or a link.
        lock_names(&mut tx, LockSpace::Parents, &parent_syncs(&entries)).await?;
        let released = put_quarantine(&mut tx, &entries).await?;

        let clear: Vec<&str> = c
            .clear
            .iter()
            .map(String::as_str)
            .filter(|k| !stale.contains(k))
            .collect();
        if !clear.is_empty() {
            sqlx::query("DELETE FROM quarantine WHERE sync = $1 AND local_id = ANY($2)")
                .bind(&c.sync)
                .bind(&clear)
                .execute(&mut *tx)
                .await?;
        }
        if let Some((mechanism, value)) = &c.cursor {
            put_cursor(&mut *tx, &c.sync, CursorDirection::Push, mechanism, value).await?;
        }
        tx.commit().await?;
        let mut stale: Vec<String> = stale.into_iter().map(str::to_string).collect();
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
        limit_n: usize,
        lease: Duration,
        now: i64,
    ) -> Result<Vec<Job>, StoreError> {
        if limit_n == 0 {
            return Ok(Vec::new());
        }
        let lease_until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        // Each candidate set walks its own index in claim order, skipping rows other claims
        // hold, and stops at the limit; the best of both are taken. Rows locked but not taken
        // are free again when the statement ends.
        let rows = sqlx::query(
            "WITH due AS MATERIALIZED (
               SELECT id, priority, run_at FROM jobs
               WHERE sync = $1 AND state IN ('ready', 'retrying') AND run_at <= $2
               ORDER BY priority DESC, run_at, id LIMIT $3
               FOR UPDATE SKIP LOCKED),
             expired AS MATERIALIZED (
               SELECT id, priority, run_at FROM jobs
               WHERE sync = $1 AND state = 'running' AND lease_until < $2
               ORDER BY priority DESC, run_at, id LIMIT $3
               FOR UPDATE SKIP LOCKED),
             picked AS (
               SELECT id FROM (SELECT * FROM due UNION ALL SELECT * FROM expired) AS c
               ORDER BY priority DESC, run_at, id LIMIT $3)
             UPDATE jobs SET state = 'running', owner = $4, lease_until = $5,
               attempts = jobs.attempts + 1, updated_at = $2
             FROM picked WHERE jobs.id = picked.id
             RETURNING jobs.id, jobs.sync, jobs.local_id, jobs.payload, jobs.hash, jobs.attempts",
        )
        .bind(sync)
        .bind(now)
        .bind(limit(limit_n))
        .bind(owner)
        .bind(lease_until)
        .fetch_all(self.pool())
        .await?;
        let t = "jobs";
        let mut jobs = rows
            .iter()
            .map(|r| {
                Ok(Job {
                    id: get(r, 0, t)?,
                    sync: get(r, 1, t)?,
                    local_id: get(r, 2, t)?,
                    payload: get(r, 3, t)?,
                    hash: get(r, 4, t)?,
                    attempts: get(r, 5, t)?,
                })
            })
            .collect::<Result<Vec<Job>, StoreError>>()?;
        jobs.sort_by_key(|j| j.id);
        Ok(jobs)
    }

    async fn renew_jobs(&self, owner: &str, until_ms: i64) -> Result<u64, StoreError> {
        // Locked in id order, as settles lock them: a renewal beside a settle of the same
        // owner waits instead of deadlocking. Every lease the owner holds counts; a lease
        // already running longer is not cut short.
        Ok(sqlx::query(
            "WITH mine AS MATERIALIZED (
               SELECT id FROM jobs WHERE owner = $1 AND state = 'running'
               ORDER BY id FOR UPDATE)
             UPDATE jobs SET lease_until = GREATEST(COALESCE(jobs.lease_until, $2), $2)
             FROM mine WHERE jobs.id = mine.id",
        )
        .bind(owner)
        .bind(until_ms)
        .execute(self.pool())
        .await?
        .rows_affected())
    }

    async fn still_current(
        &self,
        owner: &str,
        jobs: &[(i64, String)],
    ) -> Result<HashSet<i64>, StoreError> {
        if jobs.is_empty() {
            return Ok(HashSet::new());
        }
        let wanted: HashMap<i64, &str> = jobs.iter().map(|(i, h)| (*i, h.as_str())).collect();
        let ids: Vec<i64> = wanted.keys().copied().collect();
        let rows = sqlx::query(
            "SELECT id, hash FROM jobs WHERE owner = $1 AND state = 'running' AND id = ANY($2)",
        )
        .bind(owner)
        .bind(&ids)
        .fetch_all(self.pool())
        .await?;
        let mut out = HashSet::new();
        for r in &rows {
            let id: i64 = get(r, 0, "jobs")?;
            let hash: String = get(r, 1, "jobs")?;
            if wanted.get(&id) == Some(&hash.as_str()) {
                out.insert(id);
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
        let now = s.now_ms;
        let mut tx = self.tx().await?;

        // 1. The jobs still ours, locked: a lock's recheck sees a re-claim that committed
        //    while this waited, and a later claim cannot take them until this commits.
        let mut ids = all.clone();
        ids.sort_unstable();
        ids.dedup();
        let mine: Vec<(i64, i64)> = sqlx::query_as::<_, (i64, i64)>(
            "SELECT id, attempts FROM jobs WHERE id = ANY($1) AND owner = $2 AND state = 'running'
             ORDER BY id FOR UPDATE",
        )
        .bind(&ids)
        .bind(owner)
        .fetch_all(&mut *tx)
        .await?;
        let ours: HashSet<i64> = mine.iter().map(|(id, _)| *id).collect();
        // Replaced in flight: a new payload resets attempts to 0 and a claim counts its
        // delivery at once, so a running job with 0 attempts carries a payload never sent. A
        // failure of the old one must not take the new one with it.
        let replaced: HashSet<i64> = mine
            .iter()
            .filter(|(_, attempts)| *attempts == 0)
            .map(|(id, _)| *id)
            .collect();

        // 2. Delivered: the link records the CRM id and hash; the job is done, or ready again
        //    when its payload changed in flight (to carry the new state).
        let delivered: Vec<&Delivered> = s
            .delivered
            .iter()
            .filter(|d| ours.contains(&d.job_id))
            .collect();
        let linked = last_by_key(delivered.iter().copied(), |d| {
            let d: &Delivered = d;
            d.local_id.as_str()
        });
        let locals: Vec<&str> = linked.iter().map(|d| d.local_id.as_str()).collect();
        if !linked.is_empty() {
            lock_links(&mut tx, &s.sync, &locals, LinkLock::Update).await?;
            let crm_ids: Vec<&str> = linked.iter().map(|d| d.crm_id.as_str()).collect();
            let hashes: Vec<&str> = linked.iter().map(|d| d.hash.as_str()).collect();
            sqlx::query(
                "INSERT INTO links (sync, local_id, crm_object, crm_id, pushed_hash, pushed_at)
                 SELECT $1, l, $2, c, h, $3 FROM unnest($4::text[], $5::text[], $6::text[]) AS d (l, c, h)
                 ON CONFLICT (sync, local_id) DO UPDATE SET
                   crm_object = excluded.crm_object, crm_id = excluded.crm_id,
                   pushed_hash = excluded.pushed_hash, pushed_at = excluded.pushed_at",
            )
            .bind(&s.sync)
            .bind(&s.crm_object)
            .bind(now)
            .bind(&locals)
            .bind(&crm_ids)
            .bind(&hashes)
            .execute(&mut *tx)
            .await?;

            let done = last_by_key(delivered.iter().copied(), |d| d.job_id);
            let job_ids: Vec<i64> = done.iter().map(|d| d.job_id).collect();
            let job_hashes: Vec<&str> = done.iter().map(|d| d.hash.as_str()).collect();
            sqlx::query(
                "UPDATE jobs SET
                   state = CASE WHEN jobs.hash = d.hash THEN 'done' ELSE 'ready' END,
                   attempts = CASE WHEN jobs.hash = d.hash THEN jobs.attempts ELSE 0 END,
                   lease_until = NULL, owner = NULL, last_error = NULL, updated_at = $3
                 FROM unnest($1::bigint[], $2::text[]) AS d (id, hash) WHERE jobs.id = d.id",
            )
            .bind(&job_ids)
            .bind(&job_hashes)
            .bind(now)
            .execute(&mut *tx)
            .await?;

            let settled: HashSet<&str> = locals.iter().copied().collect();
            let bases: Vec<(&str, &str, &str)> = s
                .bases
                .iter()
                .filter(|(l, _, _)| settled.contains(l.as_str()))
                .map(|(l, f, v)| (l.as_str(), f.as_str(), v.as_str()))
                .collect();
            put_bases(&mut tx, &s.sync, &bases).await?;
        }

        // 3. Retries (or dead ends).
        let retries: Vec<&Retry> = s
            .retry
            .iter()
            .filter(|r| ours.contains(&r.job_id))
            .collect();
        if !retries.is_empty() {
            let last = last_by_key(retries.iter().copied(), |r| r.job_id);
            let r_ids: Vec<i64> = last.iter().map(|r| r.job_id).collect();
            let r_dead: Vec<bool> = last
                .iter()
                .map(|r| r.dead && !replaced.contains(&r.job_id))
                .collect();
            let r_run_at: Vec<i64> = last.iter().map(|r| r.run_at_ms).collect();
            let r_errors: Vec<&str> = last.iter().map(|r| r.error.as_str()).collect();
            sqlx::query(
                "UPDATE jobs SET state = CASE WHEN r.dead THEN 'dead' ELSE 'retrying' END,
                   run_at = r.run_at, lease_until = NULL, owner = NULL, last_error = r.error, updated_at = $5
                 FROM unnest($1::bigint[], $2::bool[], $3::bigint[], $4::text[]) AS r (id, dead, run_at, error)
                 WHERE jobs.id = r.id",
            )
            .bind(&r_ids)
            .bind(&r_dead)
            .bind(&r_run_at)
            .bind(&r_errors)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }

        let rejected: Vec<QuarantineEntry> = s
            .rejected
            .iter()
            .filter(|(id, _)| ours.contains(id))
            .map(|(_, e)| e.clone())
            .collect();
        drop_jobs_of(&mut tx, &rejected).await?;

        // 4. Quarantine rows, after the advisory locks of the parents involved (the records
        //    linked now, whose children are released; those rejected entries wait for): from
        //    here on nothing waits on a job or a link, and the lock is held shortest.
        let mut parents = parent_syncs(&rejected);
        if !linked.is_empty() {
            parents.push(&s.sync);
            parents.sort_unstable();
            parents.dedup();
        }
        lock_names(&mut tx, LockSpace::Parents, &parents).await?;
        let mut released = 0;
        if !linked.is_empty() {
            // Delivered records are in sync: their entries go.
            sqlx::query("DELETE FROM quarantine WHERE sync = $1 AND local_id = ANY($2)")
                .bind(&s.sync)
                .bind(&locals)
                .execute(&mut *tx)
                .await?;
            // Children of other syncs waiting for them are released.
            released = sqlx::query(
                "UPDATE quarantine SET retry_requested = true WHERE waits_sync = $1 AND waits_key = ANY($2)",
            )
            .bind(&s.sync)
            .bind(&locals)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        put_quarantine(&mut tx, &rejected).await?;
        // The CRM refused a payload the record no longer has: its reason stays visible, and
        // the next capture looks at the record again.
        let again: Vec<&str> = s
            .rejected
            .iter()
            .filter(|(id, _)| ours.contains(id) && replaced.contains(id))
            .map(|(_, e)| e.local_id.as_str())
            .collect();
        if !again.is_empty() {
            sqlx::query(
                "UPDATE quarantine SET retry_requested = true WHERE sync = $1 AND local_id = ANY($2)",
            )
            .bind(&s.sync)
            .bind(&again)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;

        let mut lost: Vec<i64> = ids.into_iter().filter(|id| !ours.contains(id)).collect();
        lost.sort_unstable();
        Ok(SettleReport {
            settled: (delivered.len() + rejected.len() + retries.len()) as u64,
            lost,
            released,
        })
    }

    async fn release_all(&self, owner: &str) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "WITH mine AS MATERIALIZED (
               SELECT id FROM jobs WHERE owner = $1 AND state = 'running' ORDER BY id FOR UPDATE)
             UPDATE jobs SET state = 'ready', lease_until = NULL, owner = NULL,
               attempts = GREATEST(jobs.attempts - 1, 0)
             FROM mine WHERE jobs.id = mine.id",
        )
        .bind(owner)
        .execute(self.pool())
        .await?
        .rows_affected())
    }
}
