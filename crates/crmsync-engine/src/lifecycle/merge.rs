//! CRM merges. When the CRM merges record A into X, requests for A resolve to X and X's merged
//! ids list A (the connector reads them: [`ChangedRecord::merged_ids`]). The app record linked to A is re-pointed to X.
//! If no other app record maps to X, our key is written into X's id property, so upserts find X
//! from now on (X kept its own value, often none). If another app record already maps to X, two
//! app records now share one CRM record: the re-pointed one is held and the merge reported; a
//! person merges them in the app too.

use crate::engine::Engine;
use crate::error::EngineError;
use crate::report::PullReport;
use crmsync_core::config::SyncConfig;
use crmsync_crm::{ChangedRecord, Crm, ObjectKind, UpdateInput};
use crmsync_store::{Capture, CrmMerge, QuarantineEntry, QuarantineKind, RowWrite, Source, State};
use std::collections::{BTreeMap, HashMap};

/// The quarantine rule of app records sharing a CRM record after a merge.
pub const RULE: &str = "crm_merged";

impl<A, S, C> Engine<A, S, C>
where
    A: Source + Capture,
    S: State,
    C: Crm,
{
    /// Re-points the links of merged records: `merges` are (absorbed CRM id, survivor CRM id),
    /// `linked` maps CRM ids to app records.
    pub(crate) async fn record_merges(
        &self,
        sync: &SyncConfig,
        object: ObjectKind,
        merges: &[(String, String)],
        linked: &HashMap<String, String>,
        report: &mut PullReport,
    ) -> Result<(), EngineError> {
        if merges.is_empty() {
            return Ok(());
        }
        let now = self.clock.now_ms();
        let survivors: Vec<String> = merges.iter().map(|(_, x)| x.clone()).collect();
        let owners = self.state.local_ids_of(&sync.name, &survivors).await?;
        let mut logged = Vec::new();
        let mut keys = Vec::new();
        let mut held = Vec::new();
        for (absorbed, survivor) in merges {
            let Some(local) = linked.get(absorbed) else {
                continue;
            };
            let shared_with = owners.get(survivor).filter(|o| *o != local).cloned();
            match &shared_with {
                Some(other) => {
                    report.shared += 1;
                    tracing::warn!(sync = %sync.name, record = %local, other = %other, crm_id = %survivor, "two app records now map to one CRM record");
                    held.push(QuarantineEntry::new(
                        &sync.name,
                        local,
                        QuarantineKind::Held,
                        None,
                        RULE,
                        format!(
                            "the CRM merged record {absorbed} into {survivor}, which app record {other} maps to as well: merge the two in the app, then `crmsync retry {local}`"
                        ),
                        now,
                    ));
                }
                None => {
                    report.merged += 1;
                    keys.push(UpdateInput {
                        crm_id: survivor.clone(),
                        properties: BTreeMap::from([(sync.id_property.clone(), local.clone())]),
                    });
                }
            }
            logged.push(CrmMerge {
                sync: sync.name.clone(),
                local_id: local.clone(),
                from_crm_id: absorbed.clone(),
                to_crm_id: survivor.clone(),
                shared_with,
                at_ms: now,
            });
        }
        // The CRM first: a crash after it finds the same merge again next time (A still
        // linked, resolving to X) and redoes it.
        for chunk in keys.chunks(self.crm.max_batch().max(1)) {
            let r = self.crm.update_batch(object, chunk).await;
            self.flush_calls().await?;
            r?;
        }
        self.state.record_merges(&logged).await?;
        // The app's copy of the CRM id follows the link at once (not at the next push).
        if let Some(column) = &sync.write_back_column {
            let pairs: Vec<(String, String)> = logged
                .iter()
                .filter(|m| m.shared_with.is_none())
                .map(|m| (m.local_id.clone(), m.to_crm_id.clone()))
                .collect();
            let writes: Vec<RowWrite> = pairs
                .iter()
                .map(|(local, crm)| RowWrite {
                    key: local.clone(),
                    set: vec![(column.clone(), Some(crm.clone()))],
                    expect: vec![],
                })
                .collect();
            self.app.write(&sync.table, &sync.key, &writes).await?;
            self.state.mark_written_back(&sync.name, &pairs).await?;
        }
        self.state.quarantine(&held).await?;
        Ok(())
    }
}

/// The (absorbed, survivor) pairs among `asked` ids that `found` records reveal.
pub fn merges_among(asked: &[String], found: &[ChangedRecord]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for record in found {
        for absorbed in &record.merged_ids {
            if *absorbed != record.crm_id
                && asked.iter().any(|a| a == absorbed)
                && !out.iter().any(|(a, _)| a == absorbed)
            {
                out.push((absorbed.clone(), record.crm_id.clone()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, merged: &[&str]) -> ChangedRecord {
        ChangedRecord {
            crm_id: id.into(),
            properties: BTreeMap::new(),
            modified_ms: 0,
            merged_ids: merged.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn survivors_name_the_absorbed_ids_that_were_asked_for() {
        let asked = vec!["1".to_string(), "2".to_string(), "3".to_string()];
        let found = vec![rec("9", &["1", "7"]), rec("3", &["2"]), rec("3", &["2"])];
        assert_eq!(
            merges_among(&asked, &found),
            vec![("1".into(), "9".into()), ("2".into(), "3".into())]
        );
        assert!(merges_among(&asked, &[rec("5", &[])]).is_empty());
    }
}
