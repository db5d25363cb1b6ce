//! Records deleted (archived) in the CRM. A linked record found gone gets its sync's
//! `on_crm_delete` action: `flag` (default) keeps the link, holds the record (no push would
//! recreate it) and writes the time into `crm_deleted_column` when one is set; `unlink` forgets
//! the link so the next push creates it again. The app row is never deleted.
//!
//! The mass-deletion guard: when the deletions of a sync within [`GUARD_WINDOW_MS`] would pass
//! `[run] max_delete_share` of its linked records (and `delete_guard_min`), they are held, and
//! so is every later one, until a person decides with `crmsync deletions --apply|--reject`.
//! A bulk delete in the CRM arrives as many webhook requests, hence a window, not one batch.

use crate::engine::Engine;
use crate::error::EngineError;
use crate::report::PullReport;
use crmsync_core::config::SyncConfig;
use crmsync_core::config::raw::OnCrmDelete;
use crmsync_crm::Crm;
use crmsync_store::{
    Capture, CaptureCommit, CrmDeletion, DeletionState, QuarantineEntry, QuarantineKind, RowWrite,
    Source, State,
};
use std::collections::HashSet;

/// The window the guard counts deletions in.
pub const GUARD_WINDOW_MS: i64 = 3_600_000;

/// Where each sync keeps the time of its last archived listing.
pub(crate) const ARCHIVE_TASK: &str = "archived";

/// The quarantine rule of records deleted in the CRM.
pub const RULE: &str = "crm_deleted";

/// What a person decided about held deletions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Do the sync's action for them, as if the guard had not tripped.
    Apply,
    /// They were a mistake: forget them and push the records again (recreated in the CRM).
    Reject,
}

fn held_entry(sync: &SyncConfig, d: &CrmDeletion, now: i64, message: String) -> QuarantineEntry {
    QuarantineEntry::new(
        &sync.name,
        &d.local_id,
        QuarantineKind::Held,
        None,
        RULE,
        message,
        now,
    )
}

use crate::status::rfc3339;

impl<A, S, C> Engine<A, S, C>
where
    A: Source + Capture,
    S: State,
    C: Crm,
{
    /// Handles linked records of `sync` found gone: (local id, CRM id).
    pub(crate) async fn record_gone(
        &self,
        sync: &SyncConfig,
        gone: &[(String, String)],
        report: &mut PullReport,
    ) -> Result<(), EngineError> {
        let verdict =
            judge_gone(&self.config, &self.state, sync, gone, self.clock.now_ms()).await?;
        let Gone {
            deletions,
            hold,
            total,
            linked,
        } = verdict;
        if deletions.is_empty() {
            return Ok(());
        }
        let now = self.clock.now_ms();
        if hold {
            tracing::warn!(
                sync = %sync.name,
                deletions = total,
                linked,
                "mass-deletion guard: deletions held until `crmsync deletions --apply` or `--reject`"
            );
            report.deletions_held += deletions.len() as u64;
            // Held from pushing too: a push would recreate what may really be gone.
            let held: Vec<QuarantineEntry> = deletions
                .iter()
                .map(|d| {
                    held_entry(
                        sync,
                        d,
                        now,
                        format!(
                            "deleted in the CRM (record {}), one of {total} deletions within an hour: held by the mass-deletion guard; `crmsync deletions --apply` or `--reject`",
                            d.crm_id
                        ),
                    )
                })
                .collect();
            self.state.record_deletions(&deletions).await?;
            self.state.quarantine(&held).await?;
            return Ok(());
        }
        self.do_deletions(sync, deletions, report).await
    }

    /// Does the sync's action for `deletions` and records them as applied.
    async fn do_deletions(
        &self,
        sync: &SyncConfig,
        mut deletions: Vec<CrmDeletion>,
        report: &mut PullReport,
    ) -> Result<(), EngineError> {
        let now = self.clock.now_ms();
        let locals: Vec<String> = deletions.iter().map(|d| d.local_id.clone()).collect();
        match sync.on_crm_delete {
            OnCrmDelete::Flag => {
                self.write_deleted_at(sync, &locals, &rfc3339(now)).await?;
                let held: Vec<QuarantineEntry> = deletions
                    .iter()
                    .map(|d| {
                        held_entry(
                            sync,
                            d,
                            now,
                            format!(
                                "deleted in the CRM (record {}): not pushed any more; restore it in the CRM to resume",
                                d.crm_id
                            ),
                        )
                    })
                    .collect();
                self.state.quarantine(&held).await?;
            }
            OnCrmDelete::Unlink => {
                self.state.unlink(&sync.name, &locals).await?;
                // Queued now, not on the row's next change: the app is master.
                self.repush(sync, &locals).await?;
            }
        }
        let action = match sync.on_crm_delete {
            OnCrmDelete::Flag => "flag",
            OnCrmDelete::Unlink => "unlink",
        };
        for d in &mut deletions {
            d.state = DeletionState::Applied;
            d.action = Some(action.into());
        }
        report.deleted += deletions.len() as u64;
        tracing::info!(sync = %sync.name, deleted = deletions.len(), action, "CRM deletions applied");
        self.state.record_deletions(&deletions).await?;
        Ok(())
    }

    /// Records of `sync` found alive again after a deletion (restored in the CRM): the flag is
    /// cleared and the record flows again.
    pub(crate) async fn record_restored(
        &self,
        sync: &SyncConfig,
        alive_locals: &HashSet<String>,
        report: &mut PullReport,
    ) -> Result<(), EngineError> {
        if alive_locals.is_empty() {
            return Ok(());
        }
        let back: Vec<CrmDeletion> = self
            .state
            .deletions(Some(&sync.name), None)
            .await?
            .into_iter()
            .filter(|d| alive_locals.contains(&d.local_id) && d.action.as_deref() != Some("unlink"))
            .collect();
        if back.is_empty() {
            return Ok(());
        }
        let locals: Vec<String> = back.iter().map(|d| d.local_id.clone()).collect();
        self.write_deleted_at(sync, &locals, "").await?;
        self.state.clear_quarantine(&sync.name, &locals).await?;
        self.state.forget_deletions(&sync.name, &locals).await?;
        report.restored += locals.len() as u64;
        Ok(())
    }

    /// Lists the CRM's archived records of `sync`'s object and handles the linked ones (the
    /// way deletions are learnt without webhooks; the caller leads the sync). Stops early when
    /// paused or stopping.
    pub async fn check_archived(
        &self,
        sync: &SyncConfig,
        report: &mut PullReport,
    ) -> Result<(), EngineError> {
        let object = Self::object_of(sync)?;
        let mut after: Option<String> = None;
        loop {
            if self.halted().await? {
                return Ok(());
            }
            let page = self.crm.archived_page(object, after.as_deref()).await;
            self.flush_calls().await?;
            let (ids, next) = page?;
            report.checked += ids.len() as u64;
            let linked = self.state.local_ids_of(&sync.name, &ids).await?;
            let gone: Vec<(String, String)> = linked
                .into_iter()
                .map(|(crm, local)| (local, crm))
                .collect();
            self.record_gone(sync, &gone, report).await?;
            match next {
                Some(n) if !ids.is_empty() => after = Some(n),
                _ => break,
            }
        }
        self.mark_done(sync, ARCHIVE_TASK).await
    }

    /// Lists archived records for every sync (a one-shot command; `run` does it per sync on
    /// each sync's leader when due).
    pub async fn check_archived_once(&self) -> Result<PullReport, EngineError> {
        let mut report = PullReport::default();
        for sync in &self.config.raw.syncs {
            self.check_archived(sync, &mut report).await?;
        }
        Ok(report)
    }

    /// Whether `sync`'s archived listing is due under `[run] archive_check_interval_ms`.
    pub async fn archive_check_due(&self, sync: &SyncConfig) -> Result<bool, EngineError> {
        self.due(
            sync,
            ARCHIVE_TASK,
            self.config.raw.run.archive_check_interval_ms,
        )
        .await
    }

    /// Writes `value` (empty: NULL) into the sync's `crm_deleted_column`, if it has one.
    async fn write_deleted_at(
        &self,
        sync: &SyncConfig,
        local_ids: &[String],
        value: &str,
    ) -> Result<(), EngineError> {
        let Some(column) = &sync.crm_deleted_column else {
            return Ok(());
        };
        let writes: Vec<RowWrite> = local_ids
            .iter()
            .map(|l| RowWrite {
                key: l.clone(),
                set: vec![(
                    column.clone(),
                    (!value.is_empty()).then(|| value.to_string()),
                )],
                expect: vec![],
            })
            .collect();
        self.app.write(&sync.table, &sync.key, &writes).await?;
        Ok(())
    }

    /// Settles the deletions the guard held, of one sync or all; returns how many.
    pub async fn decide_deletions(
        &self,
        sync_name: Option<&str>,
        decision: Decision,
    ) -> Result<u64, EngineError> {
        let mut report = PullReport::default();
        let mut settled = 0;
        for sync in &self.config.raw.syncs {
            if sync_name.is_some_and(|n| n != sync.name) {
                continue;
            }
            let held = self
                .state
                .deletions(Some(&sync.name), Some(DeletionState::Held))
                .await?;
            if held.is_empty() {
                continue;
            }
            settled += held.len() as u64;
            match decision {
                Decision::Apply => self.do_deletions(sync, held, &mut report).await?,
                Decision::Reject => {
                    let locals: Vec<String> = held.iter().map(|d| d.local_id.clone()).collect();
                    self.state.forget_deletions(&sync.name, &locals).await?;
                    self.state.clear_quarantine(&sync.name, &locals).await?;
                    self.repush(sync, &locals).await?;
                }
            }
        }
        Ok(settled)
    }

    /// Queues the current payload of these records whatever was pushed before.
    pub(crate) async fn repush(
        &self,
        sync: &SyncConfig,
        local_ids: &[String],
    ) -> Result<u64, EngineError> {
        let jobs: Vec<_> = self
            .current_jobs(sync, local_ids)
            .await?
            .into_values()
            .collect();
        let n = jobs.len() as u64;
        self.state
            .commit_capture(&CaptureCommit::jobs(&sync.name, jobs, self.clock.now_ms()))
            .await?;
        self.wakes.deliver.notify_one();
        Ok(n)
    }
}

/// What the linked records of a sync found gone come to ([`judge_gone`]).
#[derive(Debug, Default)]
pub struct Gone {
    /// The deletions not known yet (by record *and* CRM id: a record unlinked, recreated and
    /// deleted again is new), stamped held.
    pub deletions: Vec<CrmDeletion>,
    /// The mass-deletion guard holds them (it tripped before, or they pass the limit).
    pub hold: bool,
    /// Deletions within the guard's window, these included.
    pub total: u64,
    /// The sync's linked records.
    pub linked: u64,
}

/// Judges `gone` (local id, CRM id) of `sync` at `now_ms` against the deletions known and the
/// mass-deletion guard, writing nothing: [`Engine::record_gone`] then applies or holds them,
/// `crmsync plan` reports them.
pub async fn judge_gone<S: State>(
    config: &crmsync_core::config::Config,
    state: &S,
    sync: &SyncConfig,
    gone: &[(String, String)],
    now_ms: i64,
) -> Result<Gone, EngineError> {
    if gone.is_empty() {
        return Ok(Gone::default());
    }
    let known = state.deletions(Some(&sync.name), None).await?;
    let tripped = known.iter().any(|d| d.state == DeletionState::Held);
    let known: HashSet<(&str, &str)> = known
        .iter()
        .map(|d| (d.local_id.as_str(), d.crm_id.as_str()))
        .collect();
    let new: Vec<&(String, String)> = gone
        .iter()
        .filter(|(local, crm)| !known.contains(&(local.as_str(), crm.as_str())))
        .collect();
    if new.is_empty() {
        return Ok(Gone::default());
    }
    let recent = state
        .deletions_since(&sync.name, now_ms - GUARD_WINDOW_MS)
        .await?;
    let linked = state.link_count(&sync.name).await?;
    let run = &config.raw.run;
    let share_limit = (run.max_delete_share * linked as f64).ceil() as u64;
    let limit = share_limit.max(run.delete_guard_min);
    let total = recent + new.len() as u64;
    Ok(Gone {
        deletions: new
            .iter()
            .map(|(local, crm)| CrmDeletion {
                sync: sync.name.clone(),
                local_id: local.clone(),
                crm_id: crm.clone(),
                seen_at_ms: now_ms,
                state: DeletionState::Held,
                action: None,
            })
            .collect(),
        hold: tripped || total > limit,
        total,
        linked,
    })
}
