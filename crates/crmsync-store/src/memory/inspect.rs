//! [`Inspect`] in memory: what `explain`, `retry` and `status` read, in the SQLite backend's
//! orders. `request_retry` is the one write: it flags every matching entry in one locked step.

use super::{MemoryState, key};
use crate::Inspect;
use crate::error::StoreError;
use crate::model::*;

impl Inspect for MemoryState {
    async fn request_retry(
        &self,
        sync: Option<&str>,
        kinds: &[QuarantineKind],
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut inner = self.lock();
        let mut out = Vec::new();
        // One pass per kind, as SQLite runs one statement per kind (a kind named twice lists
        // its entries twice).
        for kind in kinds {
            for ((s, local), e) in inner.quarantine.iter_mut() {
                if e.kind == *kind && sync.is_none_or(|want| s == want) {
                    e.retry_requested = true;
                    out.push((s.clone(), local.clone()));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    async fn quarantine_entry(
        &self,
        sync: &str,
        local_id: &str,
    ) -> Result<Option<QuarantineEntry>, StoreError> {
        Ok(self.lock().quarantine.get(&key(sync, local_id)).cloned())
    }

    async fn link_detail(
        &self,
        sync: &str,
        local_id: &str,
    ) -> Result<Option<LinkDetail>, StoreError> {
        Ok(self
            .lock()
            .links
            .get(&key(sync, local_id))
            .map(|l| LinkDetail {
                crm_object: l.crm_object.clone(),
                crm_id: l.crm_id.clone(),
                pushed_hash: l.pushed_hash.clone(),
                pushed_at_ms: l.pushed_at,
            }))
    }

    async fn job_problems(&self, sync: &str, limit: i64) -> Result<Vec<JobProblem>, StoreError> {
        let inner = self.lock();
        let mut groups: std::collections::BTreeMap<(String, String), i64> =
            std::collections::BTreeMap::new();
        for j in inner.jobs.values() {
            let state = j.state.as_str();
            if j.sync != sync || !matches!(state, "retrying" | "dead") {
                continue;
            }
            if let Some(e) = &j.last_error {
                *groups.entry((state.to_string(), e.clone())).or_insert(0) += 1;
            }
        }
        let mut out: Vec<JobProblem> = groups
            .into_iter()
            .map(|((state, error), jobs)| JobProblem { state, error, jobs })
            .collect();
        out.sort_by(|a, b| {
            b.jobs
                .cmp(&a.jobs)
                .then_with(|| (&a.state, &a.error).cmp(&(&b.state, &b.error)))
        });
        out.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(out)
    }

    async fn jobs_of(&self, sync: &str, local_id: &str) -> Result<Vec<JobDetail>, StoreError> {
        let inner = self.lock();
        let mut out: Vec<JobDetail> = inner
            .jobs
            .iter()
            .filter(|(_, j)| j.sync == sync && j.local_id == local_id)
            .map(|(id, j)| JobDetail {
                id: *id,
                direction: j.direction.clone(),
                state: j.state.as_str().to_string(),
                hash: j.hash.clone(),
                payload: j.payload.clone(),
                attempts: j.attempts,
                run_at_ms: j.run_at,
                last_error: j.last_error.clone(),
                created_at_ms: j.created_at,
                updated_at_ms: j.updated_at,
                owner: j.owner.clone(),
            })
            .collect();
        out.sort_by(|a, b| a.direction.cmp(&b.direction));
        Ok(out)
    }

    async fn recent_call_errors(&self, limit: i64) -> Result<Vec<CallRow>, StoreError> {
        let inner = self.lock();
        let mut out: Vec<CallRow> = inner
            .calls
            .iter()
            .filter(|c| c.error.is_some() && !(c.method == "GET" && c.status == Some(404)))
            .cloned()
            .collect();
        // Newest first; among equal times the later-logged first.
        out.reverse();
        out.sort_by_key(|c| std::cmp::Reverse(c.at_ms));
        out.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(out)
    }

    async fn calls_between(
        &self,
        from_ms: i64,
        to_ms: i64,
        endpoint_part: &str,
        limit: i64,
    ) -> Result<Vec<CallRow>, StoreError> {
        let inner = self.lock();
        let mut out: Vec<CallRow> = inner
            .calls
            .iter()
            .filter(|c| (from_ms..=to_ms).contains(&c.at_ms) && c.endpoint.contains(endpoint_part))
            .cloned()
            .collect();
        // By (at_ms, id): the log is in id order, the stable sort keeps it among equal times.
        out.sort_by_key(|c| c.at_ms);
        // A negative limit means none, as in SQLite.
        if let Ok(limit) = usize::try_from(limit) {
            out.truncate(limit);
        }
        Ok(out)
    }
}
