//! [`Queue`] in memory: jobs with owned leases, with the SQLite backend's rules (the job
//! upsert's latest-state-wins cases, the claim order, done-or-ready on settle). The one lock
//! makes a claim exclusive the way SQLite's single writer does: no job is handed to two owners,
//! and an outcome is applied only to a job still running under the settling owner.

use super::{Inner, JobRow, JobState, MemoryState, key};
use crate::Queue;
use crate::error::StoreError;
use crate::model::*;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// The direction of every job the queue holds today.
const PUSH: &str = "push";

impl Inner {
    /// Queues (or replaces) one job: latest state wins, a running job keeps running. The rules
    /// are those of SQLite's `ON CONFLICT` clause, every one reading the row as it was. As
    /// there, a running job with 0 attempts is one replaced in flight (a claim counts its
    /// delivery at once), which `settle` reads.
    pub(super) fn put_job(&mut self, j: &NewJob, now: i64) {
        let unique = (j.sync.clone(), j.local_id.clone(), PUSH.to_string());
        if let Some(row) = self
            .job_ids
            .get(&unique)
            .and_then(|id| self.jobs.get_mut(id))
        {
            let same = row.hash == j.hash;
            let live_same = same && row.state != JobState::Done;
            row.state = match row.state {
                JobState::Running => JobState::Running,
                JobState::Retrying | JobState::Dead if same => row.state,
                _ => JobState::Ready,
            };
            if !live_same {
                // A new payload (or a done job queued again) starts over, due now.
                row.attempts = 0;
                row.run_at = now;
            }
            if !same {
                row.last_error = None;
            }
            row.payload = j.payload.clone();
            row.hash = j.hash.clone();
            row.priority = row.priority.max(j.priority);
            row.updated_at = now;
            return;
        }
        self.last_job_id += 1;
        let id = self.last_job_id;
        self.job_ids.insert(unique, id);
        self.jobs.insert(
            id,
            JobRow {
                sync: j.sync.clone(),
                local_id: j.local_id.clone(),
                direction: PUSH.to_string(),
                state: JobState::Ready,
                payload: j.payload.clone(),
                hash: j.hash.clone(),
                priority: j.priority,
                attempts: 0,
                run_at: now,
                lease_until: None,
                last_error: None,
                created_at: now,
                updated_at: now,
                owner: None,
            },
        );
    }

    /// Whether job `id` is running under `owner`.
    fn held_by(&self, id: i64, owner: &str) -> bool {
        self.jobs
            .get(&id)
            .is_some_and(|j| j.state == JobState::Running && j.owner.as_deref() == Some(owner))
    }
}

impl Queue for MemoryState {
    async fn commit_capture(&self, c: &CaptureCommit) -> Result<CommitReport, StoreError> {
        let mut inner = self.lock();
        let stale: HashSet<&String> = c
            .expect_versions
            .iter()
            .filter(|(k, expected)| {
                inner.links.get(&key(&c.sync, k)).map_or(0, |l| l.version) != **expected
            })
            .map(|(k, _)| k)
            .collect();
        let pushed = |inner: &super::Inner, k: &str| {
            inner
                .links
                .get(&key(&c.sync, k))
                .and_then(|l| l.pushed_hash.clone())
        };
        let mut already = 0u64;
        let mut jobs: Vec<&NewJob> = Vec::new();
        for j in c.jobs.iter().filter(|j| !stale.contains(&j.local_id)) {
            // Planned by a capture while the CRM already holds it: a repeat. Jobs queued
            // without a version (inbound, repairs) always go out.
            if c.expect_versions.contains_key(&j.local_id)
                && pushed(&inner, &j.local_id).as_deref() == Some(j.hash.as_str())
            {
                already += 1;
            } else {
                jobs.push(j);
            }
        }
        let mut superseded = 0u64;
        for j in c.unchanged.iter().filter(|j| !stale.contains(&j.local_id)) {
            if pushed(&inner, &j.local_id).as_deref() != Some(j.hash.as_str()) {
                jobs.push(j);
                continue;
            }
            let unique = (j.sync.clone(), j.local_id.clone(), PUSH.to_string());
            let Some(id) = inner.job_ids.get(&unique).copied() else {
                continue;
            };
            let Some(row) = inner.jobs.get_mut(&id) else {
                continue;
            };
            if row.state == JobState::Done || row.hash == j.hash {
                continue;
            }
            superseded += 1;
            if row.state == JobState::Running {
                jobs.push(j);
            } else {
                row.state = JobState::Done;
                row.payload = j.payload.clone();
                row.hash = j.hash.clone();
                row.attempts = 0;
                row.last_error = None;
                row.lease_until = None;
                row.owner = None;
                row.updated_at = c.now_ms;
            }
        }
        for j in &jobs {
            inner.put_job(j, c.now_ms);
        }
        let entries: Vec<QuarantineEntry> = c
            .quarantine
            .iter()
            .filter(|e| !stale.contains(&e.local_id))
            .cloned()
            .collect();
        let released = inner.put_quarantine(&entries);
        let clear: Vec<String> = c
            .clear
            .iter()
            .filter(|k| !stale.contains(k))
            .cloned()
            .collect();
        inner.clear_quarantine(&c.sync, &clear);
        if let Some((mechanism, value)) = &c.cursor {
            inner.put_cursor(&c.sync, CursorDirection::Push, mechanism, value);
        }
        let mut stale: Vec<String> = stale.into_iter().cloned().collect();
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
        let mut inner = self.lock();
        // Due jobs, whatever their state (ready, retrying, or running with a lease run out),
        // in one claim order.
        let mut due: Vec<(std::cmp::Reverse<i32>, i64, i64)> = inner
            .jobs
            .iter()
            .filter(|(_, j)| j.sync == sync)
            .filter(|(_, j)| match j.state {
                JobState::Ready | JobState::Retrying => j.run_at <= now,
                JobState::Running => j.lease_until.is_some_and(|l| l < now),
                JobState::Dead | JobState::Done => false,
            })
            .map(|(id, j)| (std::cmp::Reverse(j.priority), j.run_at, *id))
            .collect();
        due.sort_unstable();
        let mut picked: Vec<i64> = due.into_iter().map(|(_, _, id)| id).collect();
        picked.truncate(limit);
        picked.sort_unstable();
        let mut out = Vec::with_capacity(picked.len());
        for id in picked {
            if let Some(j) = inner.jobs.get_mut(&id) {
                j.state = JobState::Running;
                j.owner = Some(owner.to_string());
                j.lease_until = Some(lease_until);
                j.attempts += 1;
                j.updated_at = now;
                out.push(Job {
                    id,
                    sync: j.sync.clone(),
                    local_id: j.local_id.clone(),
                    payload: j.payload.clone(),
                    hash: j.hash.clone(),
                    attempts: j.attempts,
                });
            }
        }
        Ok(out)
    }

    async fn renew_jobs(&self, owner: &str, until_ms: i64) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let mut renewed = 0;
        for j in inner.jobs.values_mut() {
            if j.state == JobState::Running && j.owner.as_deref() == Some(owner) {
                // Every held lease counts; one already running longer is not cut short.
                j.lease_until = Some(j.lease_until.map_or(until_ms, |l| l.max(until_ms)));
                renewed += 1;
            }
        }
        Ok(renewed)
    }

    async fn still_current(
        &self,
        owner: &str,
        jobs: &[(i64, String)],
    ) -> Result<HashSet<i64>, StoreError> {
        let inner = self.lock();
        let wanted: HashMap<i64, &str> = jobs.iter().map(|(i, h)| (*i, h.as_str())).collect();
        Ok(wanted
            .into_iter()
            .filter(|(id, hash)| {
                inner.held_by(*id, owner) && inner.jobs.get(id).is_some_and(|j| j.hash == *hash)
            })
            .map(|(id, _)| id)
            .collect())
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
        let mut inner = self.lock();
        // Whose lease is ours is decided once, before any outcome is applied (as SQLite reads
        // it at the start of its transaction).
        let ours: HashSet<i64> = all
            .iter()
            .copied()
            .filter(|id| inner.held_by(*id, owner))
            .collect();
        // Ours and replaced in flight: a failure of the old payload must not take the new one.
        let replaced: HashSet<i64> = ours
            .iter()
            .copied()
            .filter(|id| inner.jobs.get(id).is_some_and(|j| j.attempts == 0))
            .collect();
        let now = s.now_ms;
        let delivered: Vec<&Delivered> = s
            .delivered
            .iter()
            .filter(|d| ours.contains(&d.job_id))
            .collect();
        for d in &delivered {
            let link = inner
                .links
                .entry(key(&s.sync, &d.local_id))
                .or_insert_with(|| super::LinkRow {
                    crm_object: s.crm_object.clone(),
                    crm_id: None,
                    pushed_hash: None,
                    pushed_at: None,
                    pulled_hash: None,
                    version: 0,
                    written_back_id: None,
                });
            link.crm_object = s.crm_object.clone();
            link.crm_id = Some(d.crm_id.clone());
            link.pushed_hash = Some(d.hash.clone());
            link.pushed_at = Some(now);
            if let Some(j) = inner.jobs.get_mut(&d.job_id) {
                // A job whose payload changed while it was in flight goes back to ready, to
                // carry the new state; otherwise it is done (and its row is reused later).
                if j.hash == d.hash {
                    j.state = JobState::Done;
                } else {
                    j.state = JobState::Ready;
                    j.attempts = 0;
                }
                j.lease_until = None;
                j.owner = None;
                j.last_error = None;
                j.updated_at = now;
            }
        }
        let locals: Vec<String> = delivered.iter().map(|d| d.local_id.clone()).collect();
        inner.clear_quarantine(&s.sync, &locals);
        // Children (of any sync) waiting for these records are released.
        let parents: HashSet<&str> = locals.iter().map(String::as_str).collect();
        let mut released = 0;
        for e in inner.quarantine.values_mut() {
            if let Some((ps, pk)) = &e.waits_for
                && *ps == s.sync
                && parents.contains(pk.as_str())
            {
                e.retry_requested = true;
                released += 1;
            }
        }
        for (local, field, value) in &s.bases {
            if parents.contains(local.as_str()) {
                inner.set_base(&s.sync, local, field, value);
            }
        }
        let rejected: Vec<QuarantineEntry> = s
            .rejected
            .iter()
            .filter(|(id, _)| ours.contains(id))
            .map(|(_, e)| e.clone())
            .collect();
        inner.put_quarantine(&rejected);
        // The CRM refused a payload the record no longer has: its reason stays visible, and
        // the next capture looks at the record again (its newer row was captured already).
        for (_, e) in s
            .rejected
            .iter()
            .filter(|(id, _)| ours.contains(id) && replaced.contains(id))
        {
            if let Some(q) = inner.quarantine.get_mut(&key(&e.sync, &e.local_id)) {
                q.retry_requested = true;
            }
        }
        let mut retried = 0;
        for r in s.retry.iter().filter(|r| ours.contains(&r.job_id)) {
            if let Some(j) = inner.jobs.get_mut(&r.job_id) {
                // Out of retries is about the payload that was tried, not a newer one.
                j.state = if r.dead && !replaced.contains(&r.job_id) {
                    JobState::Dead
                } else {
                    JobState::Retrying
                };
                j.run_at = r.run_at_ms;
                j.lease_until = None;
                j.owner = None;
                j.last_error = Some(r.error.clone());
                j.updated_at = now;
            }
            retried += 1;
        }
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
        let mut inner = self.lock();
        let mut released = 0;
        for j in inner.jobs.values_mut() {
            if j.state == JobState::Running && j.owner.as_deref() == Some(owner) {
                j.state = JobState::Ready;
                j.lease_until = None;
                j.owner = None;
                // The delivery never happened: it does not count as an attempt.
                j.attempts = (j.attempts - 1).max(0);
                released += 1;
            }
        }
        Ok(released)
    }
}
