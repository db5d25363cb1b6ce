//! Read before write, for syncs with two-way fields. An upsert carries the app's value of every
//! pushed field, including the two-way ones, so a CRM edit made since the last poll or webhook
//! would be overwritten without ever being seen as a conflict. Before a claimed batch is sent,
//! its linked records are read back (one `batch/read` per 100); a record whose CRM value of a
//! two-way field moved away from the base is applied first, by the field's conflict policy, and
//! its job re-planned: dropped when the row now matches what the CRM holds, replaced when the
//! payload changed, parked for review. Records whose payload stays as it was go out with the
//! batch.

use crate::apply::{PullReport, pulled_fields};
use crate::error::EngineError;
use crate::push::Engine;
use crmsync_core::config::SyncConfig;
use crmsync_crm::{ChangedRecord, Crm, ObjectKind};
use crmsync_store::{Delivered, Job, PullStore, Store};
use std::collections::{HashMap, HashSet};

impl<C: Crm, S: Store + PullStore> Engine<C, S> {
    /// Returns the jobs of `jobs` still to be sent after the CRM's current values were checked.
    pub(crate) async fn recheck_before_push(
        &self,
        sync: &SyncConfig,
        object: ObjectKind,
        jobs: Vec<Job>,
    ) -> Result<Vec<Job>, EngineError> {
        let fields = pulled_fields(sync);
        if fields.is_empty() {
            return Ok(jobs);
        }
        let locals: Vec<String> = jobs.iter().map(|j| j.local_id.clone()).collect();
        let links = self.store.links_for(&sync.name, &locals).await?;
        let bases = self.store.bases(&sync.name, &locals).await?;
        // Only records with a base can be checked against it (others were never agreed on).
        let crm_of: HashMap<String, String> = links
            .iter()
            .filter(|(local, _)| bases.contains_key(*local))
            .filter_map(|(local, l)| l.crm_id.clone().map(|c| (c, local.clone())))
            .collect();
        if crm_of.is_empty() {
            return Ok(jobs);
        }
        let properties: Vec<String> = fields.iter().map(|(_, f)| f.crm.clone()).collect();
        let ids: Vec<String> = crm_of.keys().cloned().collect();
        let mut moved: Vec<ChangedRecord> = Vec::new();
        for chunk in ids.chunks(self.crm.max_batch().max(1)) {
            let found = self.crm.read_batch(object, chunk, &properties).await;
            self.flush_calls().await?;
            for record in found? {
                let Some(base) = crm_of.get(&record.crm_id).and_then(|l| bases.get(l)) else {
                    continue;
                };
                let differs = properties.iter().any(|p| {
                    let crm = record.properties.get(p).map_or("", String::as_str);
                    base.get(p).map_or(!crm.is_empty(), |b| b != crm)
                });
                if differs {
                    moved.push(record);
                }
            }
        }
        if moved.is_empty() {
            return Ok(jobs);
        }
        let mut report = PullReport::default();
        self.apply_changes(sync, &moved, &mut report).await?;
        tracing::info!(sync = %sync.name, records = moved.len(), applied = report.applied, parked = report.parked, "CRM edits found just before a push were applied first");

        // Re-plan the records that moved.
        let moved_locals: Vec<String> = moved
            .iter()
            .filter_map(|r| crm_of.get(&r.crm_id).cloned())
            .collect();
        let planned = self.current_jobs(sync, &moved_locals).await?;
        let fresh = self.store.links_for(&sync.name, &moved_locals).await?;
        let parked = self
            .store
            .quarantined_among(&sync.name, &moved_locals)
            .await?;
        let moved_set: HashSet<&String> = moved_locals.iter().collect();
        let mut keep = Vec::new();
        let mut obsolete = Vec::new();
        let mut replaced = Vec::new();
        let mut replacements = Vec::new();
        for job in jobs {
            if !moved_set.contains(&job.local_id) {
                keep.push(job);
                continue;
            }
            if parked.contains(&job.local_id) {
                continue; // its job was dropped with the quarantine entry
            }
            let new = planned.get(&job.local_id);
            let link = fresh.get(&job.local_id);
            match new {
                Some(n) if n.hash == job.hash => keep.push(job),
                Some(n) if link.and_then(|l| l.pushed_hash.as_ref()) == Some(&n.hash) => {
                    obsolete.push(Delivered {
                        job_id: job.id,
                        local_id: job.local_id.clone(),
                        crm_id: link.and_then(|l| l.crm_id.clone()).unwrap_or_default(),
                        hash: n.hash.clone(),
                    });
                }
                Some(n) => {
                    replaced.push(job.id);
                    replacements.push(n.clone());
                }
                None => keep.push(job),
            }
        }
        self.store
            .complete(&sync.name, object.as_str(), &obsolete)
            .await?;
        let now = self.clock.now_ms();
        self.store.enqueue(&replacements, now).await?;
        self.store
            .fail(&replaced, "re-planned after a CRM edit", now, false)
            .await?;
        Ok(keep)
    }
}
