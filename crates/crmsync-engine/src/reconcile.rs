//! The reconciliation pass: every linked record of every sync is read back by id (100 per
//! call) and compared, to repair what webhooks and polling both missed: CRM edits of pulled
//! fields (applied), push fields the CRM holds differently (pushed again), deletions and
//! merges. The number of differences repaired is the drift ([`PullReport::drift`]); a
//! healthy setup reports 0. It costs one call per 100 linked records, hence its own, long
//! interval (`[run] reconcile_interval_ms`).

use crate::apply::PullReport;
use crate::error::EngineError;
use crate::push::Engine;
use crate::refresh::Depth;
use crmsync_crm::Crm;
use crmsync_store::{PullStore, Store};

/// Where the time of the last completed pass is kept (a cursor row, so a restart does not
/// start an expensive pass at once).
const CURSOR: (&str, &str) = ("*", "reconcile");

impl<C: Crm, S: Store + PullStore> Engine<C, S> {
    /// Reads every linked record back and repairs what differs. Stops early when paused or
    /// asked to stop.
    pub async fn reconcile_once(&self) -> Result<PullReport, EngineError> {
        let mut report = PullReport::default();
        let page = self.crm.max_batch().max(1);
        'syncs: for sync in &self.config.raw.syncs {
            let mut after: Option<String> = None;
            loop {
                let links = self
                    .store
                    .links_page(&sync.name, after.as_deref(), page)
                    .await?;
                let Some((last, _)) = links.last() else { break };
                after = Some(last.clone());
                let ids: Vec<String> = links.into_iter().map(|(_, crm)| crm).collect();
                if !self
                    .refresh_ids(sync, &ids, Depth::Drift, &mut report)
                    .await?
                {
                    break 'syncs;
                }
            }
        }
        self.mark_done(CURSOR).await?;
        Ok(report)
    }

    /// Whether a pass is due under `[run] reconcile_interval_ms` (never when it is 0).
    pub async fn reconcile_due(&self) -> Result<bool, EngineError> {
        self.due(CURSOR, self.config.raw.run.reconcile_interval_ms)
            .await
    }

    /// Whether the periodic task whose last completion `cursor` keeps is due every `every_ms`
    /// (never when it is 0).
    pub(crate) async fn due(
        &self,
        cursor: (&str, &str),
        every_ms: u64,
    ) -> Result<bool, EngineError> {
        if every_ms == 0 {
            return Ok(false);
        }
        let last = self
            .store
            .cursor(cursor.0, cursor.1)
            .await?
            .and_then(|v| v.parse::<i64>().ok());
        let every = i64::try_from(every_ms).unwrap_or(i64::MAX);
        Ok(last.is_none_or(|l| self.clock.now_ms() - l >= every))
    }

    /// Records that the periodic task of `cursor` completed now (not when it stopped early).
    pub(crate) async fn mark_done(&self, cursor: (&str, &str)) -> Result<(), EngineError> {
        if !self.halted().await? {
            self.store
                .set_cursor(cursor.0, cursor.1, &self.clock.now_ms().to_string())
                .await?;
        }
        Ok(())
    }
}
