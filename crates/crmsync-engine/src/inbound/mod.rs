//! Inbound: CRM changes into the app, in stages.
//!
//! ```text
//!  hints:  webhook events (events.rs) · edits found before a push (outbound::recheck)
//!          · the poll (poll.rs) · the archived listing and reconciliation (lifecycle)
//!    ──▶ read back (read_back.rs: live / merged / gone)
//!    ──▶ decide (decide.rs, pure: per field, against the base)
//!    ──▶ commit (commit.rs: compare-and-set app writes, bases, hashes, conflicts)
//!    ──▶ create (create.rs: unlinked CRM records become rows, `on_crm_create = "insert"`)
//! ```
//!
//! Everything from "read back" on runs on the sync's leader, so inbound commits and captures of
//! one sync never interleave. [`Engine::apply_changes`] is the shared "decide and commit a page".

pub mod commit;
pub mod conflict;
pub mod create;
pub mod decide;
pub mod events;
pub mod poll;
pub mod read_back;
pub mod warnings;

use crate::engine::Engine;
use crate::error::EngineError;
use crate::report::PullReport;
use crate::telemetry::{Event, InboundSource};
use crmsync_core::config::{OnCrmCreate, SyncConfig};
use crmsync_crm::{ChangedRecord, Crm};
use crmsync_store::{Capture, Source, SourceRow, State};
use decide::{DecideInput, decide_page};
use read_back::Depth;
use std::collections::{HashMap, HashSet};

/// Hints read back per round trip.
const HINTS_PER_PASS: usize = 500;

impl<A, S, C> Engine<A, S, C>
where
    A: Source + Capture,
    S: State,
    C: Crm,
{
    /// Decides and commits `changes` (one page of CRM records) of `sync`. Returns when
    /// everything is durable, so the caller may move its cursor.
    pub(crate) async fn apply_changes(
        &self,
        sync: &SyncConfig,
        changes: &[ChangedRecord],
        report: &mut PullReport,
    ) -> Result<(), EngineError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut decisions = decide_changes(
            &self.config,
            &self.app,
            &self.state,
            sync,
            changes,
            self.clock.now_ms(),
        )
        .await?;
        let new_rows = std::mem::take(&mut decisions.creates);
        self.commit_inbound(sync, decisions, report).await?;
        self.create_rows(sync, new_rows, report).await
    }

    /// Reads back and applies every pending hint of `sync` (the caller leads the sync).
    pub async fn apply_hints(&self, sync: &SyncConfig) -> Result<PullReport, EngineError> {
        let mut report = PullReport::default();
        // Unfinished inserts of CRM records, and refusals due again, are read back too.
        self.revisit_creates(sync).await?;
        loop {
            if self.halted().await? {
                break;
            }
            let read_at = self.clock.now_ms();
            let hints = self.state.pending_hints(&sync.name, HINTS_PER_PASS).await?;
            if hints.is_empty() {
                break;
            }
            let ids: Vec<String> = hints.iter().map(|h| h.crm_id.clone()).collect();
            if !self
                .read_back(sync, &ids, Depth::Changes, &mut report)
                .await?
            {
                break;
            }
            // A hint added again while we read stays for the next pass.
            let added_before = hints
                .iter()
                .map(|h| h.added_at_ms)
                .max()
                .unwrap_or(read_at)
                .max(read_at);
            self.state
                .clear_hints(&sync.name, &ids, added_before)
                .await?;
            if hints.len() < HINTS_PER_PASS {
                break;
            }
        }
        if report.checked > 0 {
            self.emit(Event::Inbound {
                source: InboundSource::Webhooks,
                sync: sync.name.clone(),
                report: report.clone(),
            });
        }
        Ok(report)
    }

    /// Polls every sync that pulls fields (for one-shot commands and tests; `run` polls each
    /// sync on its leader). Stops early when paused or asked to stop.
    pub async fn pull_once(&self) -> Result<PullReport, EngineError> {
        let mut report = PullReport::default();
        for sync in &self.config.raw.syncs {
            if self.halted().await? {
                break;
            }
            let mut r = PullReport::default();
            let result = self.poll_sync(sync, &mut r).await;
            self.flush_calls().await?;
            result?;
            self.emit(Event::Inbound {
                source: InboundSource::Poll,
                sync: sync.name.clone(),
                report: r.clone(),
            });
            report.add(&r);
        }
        Ok(report)
    }

    /// Applies every stored webhook event: events to hints, then each sync's hints read back
    /// and applied (for one-shot commands and tests; `run` splits this between the webhook
    /// leader and each sync's leader).
    pub async fn apply_webhook_events(&self) -> Result<PullReport, EngineError> {
        let (mut report, hinted) = self.webhooks_to_hints().await?;
        for sync in &self.config.raw.syncs {
            if hinted.contains(&sync.name)
                || self.state.pending_hints(&sync.name, 1).await?.len() == 1
            {
                let r = self.apply_hints(sync).await?;
                report.add(&r);
            }
        }
        Ok(report)
    }
}

/// Decides `changes` (one page of CRM records) of `sync` without writing anything: reads the
/// links, the app rows, the bases, the insert entries and the open conflicts, then runs the
/// pure [`decide_page`]. The poll and the read back commit what this returns; `crmsync plan`
/// only reports it.
pub async fn decide_changes<A: Source, S: State>(
    config: &crmsync_core::config::Config,
    app: &A,
    state: &S,
    sync: &SyncConfig,
    changes: &[ChangedRecord],
    now_ms: i64,
) -> Result<decide::Decisions, EngineError> {
    if changes.is_empty() {
        return Ok(decide::Decisions::default());
    }
    let crm_ids: Vec<String> = changes.iter().map(|c| c.crm_id.clone()).collect();
    let local_of = state.local_ids_of(&sync.name, &crm_ids).await?;
    let local_ids: Vec<String> = local_of.values().cloned().collect();
    let mut columns = crmsync_core::mapping::referenced_columns(sync);
    if let Some(c) = &sync.updated_at_column {
        columns.push(c);
    }
    let rows: HashMap<String, SourceRow> = app
        .fetch(&sync.table, &sync.key, &columns, &local_ids)
        .await?
        .into_iter()
        .map(|r| (r.key.clone(), r))
        .collect();
    let bases = state.bases(&sync.name, &local_ids).await?;
    let creates = if sync.on_crm_create == OnCrmCreate::Insert {
        let unlinked: Vec<String> = crm_ids
            .iter()
            .filter(|id| !local_of.contains_key(*id))
            .cloned()
            .collect();
        state.creates_among(&sync.name, &unlinked).await?
    } else {
        HashMap::new()
    };
    let fingerprint = crmsync_core::hash::mapping_fingerprint(sync);
    let parked: HashSet<String> = state
        .open_conflicts(Some(&sync.name))
        .await?
        .into_iter()
        .map(|c| c.local_id)
        .collect();
    Ok(decide_page(
        &DecideInput {
            sync,
            local_of: &local_of,
            rows: &rows,
            bases: &bases,
            parked: &parked,
            creates: &creates,
            fingerprint: &fingerprint,
            id_properties: &decide::id_properties(&config.raw.syncs, sync),
            now_ms,
        },
        changes,
    ))
}
