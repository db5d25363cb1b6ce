//! Commit: the [`Decisions`] of one page made durable. CRM values that won are written into the
//! app rows in one transaction, each row only if it still holds what the decision read
//! (compare-and-set: an app edit made meanwhile is never overwritten; that record is decided
//! again later, with the app's new value). Then the state records the new bases and, when the
//! row held nothing unpushed before, the hash of its new payload as `pushed_hash`, so the next
//! capture sends nothing (no echo) however the write was captured; a row that also holds app
//! changes not pushed yet is queued again with its new payload. Conflicts are parked with the
//! record held from pushing.

use super::decide::{Decided, Decisions};
use crate::engine::Engine;
use crate::error::EngineError;
use crate::report::PullReport;
use crate::telemetry::Event;
use crmsync_core::config::SyncConfig;
use crmsync_crm::Crm;
use crmsync_store::{
    Capture, CaptureCommit, PullRecord, QuarantineEntry, QuarantineKind, RowWrite, Source, State,
};
use std::collections::{HashMap, HashSet};

impl<A, S, C> Engine<A, S, C>
where
    A: Source + Capture,
    S: State,
    C: Crm,
{
    /// Makes `decisions` of `sync` durable (the caller leads the sync) and counts into `report`.
    pub(crate) async fn commit_inbound(
        &self,
        sync: &SyncConfig,
        decisions: Decisions,
        report: &mut PullReport,
    ) -> Result<(), EngineError> {
        report.add(&decisions.report);
        for (field, (count, values)) in &decisions.unmappable {
            self.emit(Event::Unmappable {
                sync: sync.name.clone(),
                field: field.clone(),
                count: *count,
                example: values.first().cloned().unwrap_or_default(),
            });
        }
        let now = self.clock.now_ms();
        // Kept for `status`: a log line alone is missed (it scrolls away every round).
        super::warnings::record_unmapped(&self.state, &sync.name, &decisions.unmappable, now)
            .await?;
        let writes: Vec<RowWrite> = decisions
            .records
            .iter()
            .filter(|d| !d.writes.is_empty())
            .map(|d| RowWrite {
                key: d.local_id.clone(),
                set: d
                    .writes
                    .iter()
                    .map(|(c, v)| (c.clone(), (!v.is_empty()).then(|| v.clone())))
                    .collect(),
                expect: d
                    .writes
                    .iter()
                    .map(|(c, _)| (c.clone(), d.row.values.get(c).cloned().flatten()))
                    .collect(),
            })
            .collect();
        let written: HashSet<String> = if writes.is_empty() {
            HashSet::new()
        } else {
            self.app
                .write(&sync.table, &sync.key, &writes)
                .await?
                .into_iter()
                .collect()
        };
        // Hashes before and after: a row that held nothing unpushed now maps to exactly what
        // the CRM holds, so its new hash becomes the pushed hash.
        let mut old_rows = Vec::new();
        let mut new_rows = Vec::new();
        let mut pulls = Vec::new();
        for d in &decisions.records {
            if d.writes.is_empty() {
                pulls.push(PullRecord {
                    local_id: d.local_id.clone(),
                    pushed_hash: None,
                    pulled_hash: None,
                    bases: d.bases.clone(),
                });
                continue;
            }
            if !written.contains(&d.local_id) {
                report.raced += 1; // the app changed the row meanwhile: decided again later
                continue;
            }
            report.applied += 1;
            old_rows.push(d.row.clone());
            new_rows.push(written_row(d));
        }
        let locals: Vec<String> = new_rows.iter().map(|r| r.key.clone()).collect();
        let links = self.state.links_for(&sync.name, &locals).await?;
        let before = self.jobs_for_rows(sync, &old_rows).await?;
        let after = self.jobs_for_rows(sync, &new_rows).await?;
        let by_local: HashMap<&str, &super::decide::Decided> = decisions
            .records
            .iter()
            .map(|d| (d.local_id.as_str(), d))
            .collect();
        let mut requeue = Vec::new();
        for row in &new_rows {
            let clean = before.get(&row.key).is_some_and(|j| {
                links.get(&row.key).and_then(|l| l.pushed_hash.as_ref()) == Some(&j.hash)
            });
            let job = after.get(&row.key);
            let pulled_hash = job.map(|j| j.hash.clone());
            let pushed_hash = if clean { pulled_hash.clone() } else { None };
            if !clean && let Some(job) = job {
                // The row also holds app changes not pushed yet: a queued job may carry the
                // field's old value, so it is replaced by the row's new payload.
                requeue.push(job.clone());
            }
            pulls.push(PullRecord {
                local_id: row.key.clone(),
                pushed_hash,
                pulled_hash,
                bases: by_local
                    .get(row.key.as_str())
                    .map(|d| d.bases.clone())
                    .unwrap_or_default(),
            });
        }
        self.state.record_pulls(&sync.name, &pulls).await?;
        if !requeue.is_empty() {
            self.state
                .commit_capture(&CaptureCommit::jobs(&sync.name, requeue, now))
                .await?;
            self.wakes.deliver.notify_one();
        }
        if !decisions.conflicts.is_empty() {
            // Held while parked: its pending push (if any) is dropped so it cannot overwrite
            // the CRM's value, and every pass looks at it again once it is resolved.
            let held: Vec<QuarantineEntry> = decisions
                .conflicts
                .iter()
                .map(|c| {
                    QuarantineEntry::new(
                        &c.sync,
                        &c.local_id,
                        QuarantineKind::Held,
                        Some(c.column.clone()),
                        "conflict",
                        format!(
                            "`{}` changed on both sides (app `{}`, CRM `{}`); see `crmsync conflicts`",
                            c.column, c.app_value, c.crm_value
                        ),
                        now,
                    )
                })
                .collect();
            self.state.add_conflicts(&decisions.conflicts).await?;
            self.state.quarantine(&held).await?;
        }
        Ok(())
    }
}

/// The row `d` leaves once its writes are in (`""` writes NULL): what the commit hashes the
/// record's new payload from, and what `crmsync plan` plans the push of.
pub(crate) fn written_row(d: &Decided) -> crmsync_store::SourceRow {
    let mut row = d.row.clone();
    for (column, value) in &d.writes {
        row.values
            .insert(column.clone(), (!value.is_empty()).then(|| value.clone()));
    }
    row
}
