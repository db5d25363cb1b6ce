//! Read back: linked records (and, on a sync that inserts CRM records, unlinked ones) fetched by CRM id — what hints announce and what reconciliation
//! checks. One batch read per `max_batch` answers for each id: **live** (its pulled fields are
//! decided like a poll's), **merged into X** (the survivor lists it among its merged ids) or
//! **gone** (absent: archived or deleted). Reconciliation also compares push fields and queues
//! a push for what the CRM holds differently (drift).

use crate::engine::Engine;
use crate::error::EngineError;
use crate::inbound::decide::{pulled_fields, pulled_properties};
use crate::lifecycle::merge::merges_among;
use crate::outbound::plan::Payload;
use crate::report::PullReport;
use crmsync_core::config::{OnCrmCreate, SyncConfig};
use crmsync_core::mapping::{pulls, pushes};
use crmsync_crm::{ChangedRecord, Crm};
use crmsync_store::{Capture, CaptureCommit, Source, State};
use std::collections::{BTreeSet, HashMap, HashSet};

/// Whether push fields are compared too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Pulled fields, deletions, merges (hints).
    Changes,
    /// Also push fields the CRM holds differently (reconciliation).
    Drift,
}

/// Two values the CRM may spell differently for the same thing (`5` and `5.0`).
pub(crate) fn same_value(ours: &str, theirs: &str) -> bool {
    let (a, b) = (ours.trim(), theirs.trim());
    a == b || matches!((a.parse::<f64>(), b.parse::<f64>()), (Ok(x), Ok(y)) if x == y)
}

impl<A, S, C> Engine<A, S, C>
where
    A: Source + Capture,
    S: State,
    C: Crm,
{
    /// Reads the linked ones among `crm_ids` of `sync` back from the CRM and applies what they
    /// show (the caller leads the sync). Returns false when it stopped early (paused, stopping).
    pub(crate) async fn read_back(
        &self,
        sync: &SyncConfig,
        crm_ids: &[String],
        depth: Depth,
        report: &mut PullReport,
    ) -> Result<bool, EngineError> {
        let object = Self::object_of(sync)?;
        let linked_all = self.state.local_ids_of(&sync.name, crm_ids).await?;
        // A sync that inserts CRM records reads unlinked ones too (they may become rows).
        let inserts = sync.on_crm_create == OnCrmCreate::Insert;
        let ids: Vec<String> = crm_ids
            .iter()
            .filter(|id| inserts || linked_all.contains_key(*id))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let pulled = !pulled_fields(sync).is_empty();
        let properties: Vec<String> = sync
            .fields
            .values()
            .filter(|f| pulls(sync, f) || (depth == Depth::Drift && pushes(sync, f)))
            .map(|f| f.crm.clone())
            .chain(pulled_properties(&self.config.raw.syncs, sync))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for chunk in ids.chunks(self.crm.max_batch().max(1)) {
            if self.halted().await? {
                return Ok(false);
            }
            report.checked += chunk.len() as u64;
            let found = self.crm.read_batch(object, chunk, &properties).await;
            self.flush_calls().await?;
            let found = found?;
            let merges = merges_among(chunk, &found);
            let alive: HashSet<&str> = found
                .iter()
                .map(|r| r.crm_id.as_str())
                .chain(merges.iter().map(|(a, _)| a.as_str()))
                .collect();
            let gone: Vec<(String, String)> = chunk
                .iter()
                .filter(|id| !alive.contains(id.as_str()))
                .filter_map(|id| linked_all.get(id).map(|l| (l.clone(), id.clone())))
                .collect();
            let alive_locals: HashSet<String> = chunk
                .iter()
                .filter(|id| alive.contains(id.as_str()))
                .filter_map(|id| linked_all.get(id).cloned())
                .collect();
            self.record_merges(sync, object, &merges, &linked_all, report)
                .await?;
            self.record_gone(sync, &gone, report).await?;
            if inserts {
                // Gone before they became rows: nothing to insert, nothing to revisit.
                let vanished: Vec<String> = chunk
                    .iter()
                    .filter(|id| !alive.contains(id.as_str()) && !linked_all.contains_key(*id))
                    .cloned()
                    .collect();
                self.state.forget_creates(&sync.name, &vanished).await?;
            }
            self.record_restored(sync, &alive_locals, report).await?;
            // One record per CRM id (a survivor may come back once per id that resolved to it).
            let mut seen = HashSet::new();
            let found: Vec<ChangedRecord> = found
                .into_iter()
                .filter(|r| seen.insert(r.crm_id.clone()))
                .collect();
            if pulled {
                self.apply_changes(sync, &found, report).await?;
            }
            if depth == Depth::Drift {
                self.repush_drifted(sync, &found, report).await?;
            }
        }
        Ok(true)
    }

    /// Queues a push for linked records whose CRM values of push-only fields differ from what
    /// the app maps to (edited in the CRM, or a push that never landed).
    async fn repush_drifted(
        &self,
        sync: &SyncConfig,
        found: &[ChangedRecord],
        report: &mut PullReport,
    ) -> Result<(), EngineError> {
        let push_only: Vec<&str> = sync
            .fields
            .values()
            .filter(|f| pushes(sync, f) && !pulls(sync, f))
            .map(|f| f.crm.as_str())
            .collect();
        if push_only.is_empty() || found.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = found.iter().map(|r| r.crm_id.clone()).collect();
        let local_of = self.state.local_ids_of(&sync.name, &ids).await?;
        let locals: Vec<String> = local_of.values().cloned().collect();
        let held = self.state.quarantined_among(&sync.name, &locals).await?;
        let jobs = self.current_jobs(sync, &locals).await?;
        let crm_of: HashMap<&str, &ChangedRecord> =
            found.iter().map(|r| (r.crm_id.as_str(), r)).collect();
        let mut drifted = Vec::new();
        for (crm_id, local) in &local_of {
            let (Some(job), Some(record)) = (jobs.get(local), crm_of.get(crm_id.as_str())) else {
                continue;
            };
            if held.contains(local) {
                continue;
            }
            let Ok(payload) = serde_json::from_str::<Payload>(&job.payload) else {
                continue;
            };
            let differs = push_only.iter().any(|p| {
                payload.properties.get(*p).is_some_and(|ours| {
                    !same_value(ours, record.properties.get(*p).map_or("", String::as_str))
                })
            });
            if differs {
                drifted.push(job.clone());
            }
        }
        if !drifted.is_empty() {
            report.repushed += drifted.len() as u64;
            self.state
                .commit_capture(&CaptureCommit::jobs(
                    &sync.name,
                    drifted,
                    self.clock.now_ms(),
                ))
                .await?;
            self.wakes.deliver.notify_one();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::same_value;

    #[test]
    fn numbers_spelled_differently_are_the_same_value() {
        assert!(same_value("5", "5.0"));
        assert!(same_value(" a ", "a"));
        assert!(!same_value("5", "6"));
        assert!(!same_value("a", "b"));
    }
}
