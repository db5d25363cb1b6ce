//! Reconciliation: every linked record of a sync is read back by id (`max_batch` per call) and
//! compared, to repair what hints and polling both missed: CRM edits of pulled fields (applied),
//! push fields the CRM holds differently (pushed again), deletions and merges. The number of
//! differences repaired is the drift ([`PullReport::drift`]); a healthy setup reports 0. It
//! costs one call per batch of linked records, hence its own, long interval
//! (`[run] reconcile_interval_ms`). Periodic tasks keep the time of their last completed pass
//! in a pull cursor of their sync, so a restarted worker does not start an expensive pass at
//! once, and only the sync's leader runs them.

use crate::engine::Engine;
use crate::error::EngineError;
use crate::inbound::read_back::Depth;
use crate::report::PullReport;
use crate::telemetry::Event;
use crmsync_core::config::SyncConfig;
use crmsync_crm::Crm;
use crmsync_store::{Capture, CursorDirection, Source, State};

/// The pull cursor of a sync's reconciliation pass.
pub(crate) const RECONCILE_TASK: &str = "reconcile";

impl<A, S, C> Engine<A, S, C>
where
    A: Source + Capture,
    S: State,
    C: Crm,
{
    /// Reads every linked record of `sync` back and repairs what differs (the caller leads
    /// the sync). Returns false when it stopped early (paused, stopping).
    pub async fn reconcile_sync(
        &self,
        sync: &SyncConfig,
        report: &mut PullReport,
    ) -> Result<bool, EngineError> {
        let page = self.crm.max_batch().max(1);
        let mut after: Option<String> = None;
        loop {
            let links = self
                .state
                .links_page(&sync.name, after.as_deref(), page)
                .await?;
            let Some((last, _)) = links.last() else { break };
            after = Some(last.clone());
            let ids: Vec<String> = links.into_iter().map(|(_, crm)| crm).collect();
            if !self.read_back(sync, &ids, Depth::Drift, report).await? {
                return Ok(false);
            }
        }
        self.mark_done(sync, RECONCILE_TASK).await?;
        Ok(true)
    }

    /// Reconciles every sync (the `crmsync reconcile` command). Stops early when paused or
    /// asked to stop.
    pub async fn reconcile_once(&self) -> Result<PullReport, EngineError> {
        let mut report = PullReport::default();
        for sync in &self.config.raw.syncs {
            if !self.reconcile_sync(sync, &mut report).await? {
                break;
            }
        }
        self.emit(Event::Reconciled {
            checked: report.checked,
            drift: report.drift(),
        });
        Ok(report)
    }

    /// Whether `sync`'s reconciliation is due under `[run] reconcile_interval_ms`.
    pub async fn reconcile_due(&self, sync: &SyncConfig) -> Result<bool, EngineError> {
        self.due(
            sync,
            RECONCILE_TASK,
            self.config.raw.run.reconcile_interval_ms,
        )
        .await
    }

    /// Whether the periodic task `task` of `sync` is due every `every_ms` (never when 0).
    pub(crate) async fn due(
        &self,
        sync: &SyncConfig,
        task: &str,
        every_ms: u64,
    ) -> Result<bool, EngineError> {
        task_due(&self.state, sync, task, every_ms, self.clock.now_ms()).await
    }

    /// Records that `sync`'s periodic task `task` completed now (not when it stopped early).
    pub(crate) async fn mark_done(&self, sync: &SyncConfig, task: &str) -> Result<(), EngineError> {
        if !self.halted().await? {
            self.state
                .set_cursor(
                    &sync.name,
                    CursorDirection::Pull,
                    task,
                    &self.clock.now_ms().to_string(),
                )
                .await?;
        }
        Ok(())
    }
}

/// Whether `sync`'s periodic task `task` (run every `every_ms`; 0: never) is due at `now_ms`,
/// by the time its last complete run stored. Reads only.
pub(crate) async fn task_due<S: State>(
    state: &S,
    sync: &SyncConfig,
    task: &str,
    every_ms: u64,
    now_ms: i64,
) -> Result<bool, EngineError> {
    if every_ms == 0 {
        return Ok(false);
    }
    let mut last = state
        .cursor(&sync.name, CursorDirection::Pull, task)
        .await?;
    if last.is_none() {
        // Before per-sync leaders, one pass covered every sync under `*`.
        last = state.cursor("*", CursorDirection::Push, task).await?;
    }
    let last = last.and_then(|v| v.parse::<i64>().ok());
    let every = i64::try_from(every_ms).unwrap_or(i64::MAX);
    Ok(last.is_none_or(|l| now_ms.saturating_sub(l) >= every))
}
