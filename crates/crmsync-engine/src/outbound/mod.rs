//! Outbound: app changes to the CRM, in stages.
//!
//! ```text
//!  leader of the sync:  capture ──▶ plan (pure) ──▶ commit        (one transaction per page)
//!  any worker:          claim ──▶ recheck ──▶ deliver ──▶ settle   (one transaction per batch)
//!  leader of the sync:  write-back of CRM ids into the app
//! ```
//!
//! [`capture`] reads pages, [`plan`] decides per row, [`Engine::capture_sync`] commits each page
//! with its cursor and the link versions it planned from. [`Engine::deliver_round`] keeps up
//! to `max_in_flight` batches in flight, claiming parents' syncs first, each batch rechecked
//! ([`recheck`]), delivered ([`deliver`]) and settled ([`settle`]). A settle that links parents
//! releases their waiting children; in a one-shot pass those are captured at once.

pub mod capture;
pub mod deliver;
pub mod order;
pub mod plan;
pub mod recheck;
pub mod settle;

use crate::engine::Engine;
use crate::error::EngineError;
use crate::report::{RunReport, SyncReport};
use crate::telemetry::Event;
use capture::capture;
use crmsync_core::config::SyncConfig;
use crmsync_core::mapping::FieldProblem;
use crmsync_crm::{Crm, ObjectKind};
use crmsync_store::{
    Capture, CaptureCommit, CursorDirection, Hint, Link, Records, Retry, RowWrite, Settlement,
    Source, SourceRow, State, StoreError,
};
use deliver::{Outcome, Target};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use order::dependency_order;
use plan::{PlanInput, plan};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

/// How long a job whose record the CRM changed waits before it is claimed again (the leader
/// applies the edit and plans it again meanwhile).
const RECHECK_BACKOFF_MS: i64 = 2_000;

/// Rows per write-back transaction.
const WRITE_BACK_PAGE: usize = 500;

/// Capture rounds of one [`Engine::capture_sync`] at most (see there).
const MAX_CAPTURE_ROUNDS: u32 = 4;

/// What a delivery round did.
#[derive(Debug, Default)]
pub struct DeliverReport {
    /// Per sync that delivered something.
    pub syncs: HashMap<String, SyncReport>,
    /// Syncs whose records were released by a parent linked in this round.
    pub released: BTreeSet<String>,
    /// Syncs that got inbound hints (CRM edits found just before pushing).
    pub hinted: BTreeSet<String>,
    /// Set when the round stopped because today's budget share was spent: when it refreshes.
    pub paused_until_ms: Option<i64>,
    /// Batches settled in this round.
    pub batches: u64,
    /// Records still held after the last capture a released parent started in this round,
    /// by sync (those captures re-plan the held children, so their count is the current one).
    pub held_after: HashMap<String, u64>,
}

/// The push cursor holding the mapping fingerprint the sync's records were last planned with;
/// [`RESYNC`] asks for a re-plan whatever the mapping.
pub(crate) const MAPPING: &str = "mapping";
/// The value `crmsync resync` stores as the fingerprint: matches no mapping.
pub const RESYNC: &str = "resync";

/// The push cursor marking that some records went out without an optional association
/// (`"1"`; empty or absent: none).
const OPTIONAL_PENDING: &str = "optional_pending";

/// The push cursor holding why a sync is stopped (empty: it is not).
const STOPPED: &str = "stopped";

/// One finished piece of a delivery round.
enum Step {
    Batch {
        sync: String,
        result: Result<BatchDone, EngineError>,
    },
    Captured {
        sync: String,
        result: Result<SyncReport, EngineError>,
    },
}

/// What looking for the next batch found.
enum Fill {
    /// A batch of the sync at this index, and the calls it may make at most.
    Claimed(usize, Vec<crmsync_store::Job>, u64),
    /// What is left of today's budget is promised to the batches in flight: look again when
    /// one of them is done (their calls are counted then).
    Busy,
    /// Nothing due in these syncs (all that were looked at).
    Empty(Vec<String>),
    /// Paused, stopping, or the budget is spent (until then).
    Stop(Option<i64>),
}

struct BatchDone {
    report: SyncReport,
    released: u64,
    hinted: bool,
}

type StepFuture<'a> = Pin<Box<dyn Future<Output = Step> + Send + 'a>>;

impl<A, S, C> Engine<A, S, C>
where
    A: Source + Capture,
    S: State,
    C: Crm,
{
    /// Captures every change of `sync`, plans it and commits it page by page (the caller leads
    /// the sync). Records parked for a person (conflicts, CRM deletions, shared merges) are
    /// neither planned nor sent.
    pub async fn capture_sync(&self, sync: &SyncConfig) -> Result<SyncReport, EngineError> {
        let (mut report, mut released) = self.capture_round(sync).await?;
        // A parent that settled while this round planned its children found no entry to
        // release; the store released them as they were written. One more round sends them
        // now instead of at the next change of the table (which may never come). Bounded: a
        // round is raced only by the settles in flight while it runs.
        let mut rounds = 1;
        while released > 0 && rounds < MAX_CAPTURE_ROUNDS {
            let (again, r) = self.capture_round(sync).await?;
            report.add_round(&again);
            released = r;
            rounds += 1;
        }
        Ok(report)
    }

    /// One round of [`Self::capture_sync`]; also returns how many held records the store
    /// released as they were written (their parent was linked meanwhile).
    async fn capture_round(&self, sync: &SyncConfig) -> Result<(SyncReport, u64), EngineError> {
        let started = Instant::now();
        let mut report = SyncReport {
            sync: sync.name.clone(),
            ..Default::default()
        };
        // A mapping that changed since the last capture (or `crmsync resync`) re-plans every
        // row: records already in the CRM get the new fields, and quarantined ones are judged
        // by the new rules. The fingerprint is stored once the whole table was planned.
        let fingerprint = crmsync_core::hash::mapping_fingerprint(sync);
        let stored = planned_fingerprint(&self.state, &sync.name).await?;
        let replan = replan_due(stored.as_deref(), sync);
        if replan {
            self.emit(Event::MappingChanged {
                sync: sync.name.clone(),
            });
            // Values the old mapping could not take back may map now.
            crate::inbound::warnings::clear_unmapped(&self.state, &sync.name).await?;
        }
        let mut captured = capture(&self.app, &self.state, sync, replan).await?;
        let mut parked = parked_keys(&self.state, sync).await?;
        let references = plan::reference_properties(&self.config.raw.syncs, sync);
        // Rows inserted for CRM records whose link is not recorded yet (an insert was
        // interrupted): pushed, they would create a second CRM record. The next read back
        // finishes them.
        parked.extend(self.revisit_creates(sync).await?);
        let mut stale = 0u64;
        let mut released = 0u64;
        let mut without_optional = 0u64;
        while let Some(page) = captured.next_page().await? {
            let mut rows = page.rows;
            report.read += rows.len() as u64;
            // A parked record is written to neither side until a person settles it.
            let before = rows.len();
            rows.retain(|r| !parked.contains(&r.key));
            report.held += (before - rows.len()) as u64;
            let keys: Vec<String> = rows.iter().map(|r| r.key.clone()).collect();
            let now = self.clock.now_ms();
            let (links, p) = plan_page(
                &self.state,
                &PageInput {
                    sync,
                    references: &references,
                    // A small change set is someone's edit; let it overtake a backfill.
                    priority: if captured.full { 0 } else { 10 },
                    now_ms: now,
                    assume_parents: false,
                    links: None,
                },
                &rows,
            )
            .await?;
            self.report_skipped(sync, &p.skipped);
            without_optional += p.without_optional;
            report.unchanged += p.unchanged;
            report.invalid += p.invalid;
            report.held += p.held;
            let expect_versions = keys
                .iter()
                .map(|k| (k.clone(), links.get(k).map_or(0, |l| l.version)))
                .collect();
            let done = self
                .state
                .commit_capture(&CaptureCommit {
                    sync: sync.name.clone(),
                    jobs: p.jobs,
                    unchanged: p.unchanged_jobs,
                    quarantine: p.quarantine,
                    clear: p.clear,
                    expect_versions,
                    cursor: page.cursor,
                    now_ms: now,
                })
                .await?;
            report.queued += done.queued;
            stale += done.stale.len() as u64;
            released += done.released;
        }
        if stale > 0 {
            self.emit(Event::StalePlans {
                sync: sync.name.clone(),
                records: stale,
            });
        }
        if !captured.vanished.is_empty() {
            tracing::info!(sync = %sync.name, count = captured.vanished.len(), "rows deleted in the app; their CRM records are kept (deletion sync is not enabled)");
        }
        // Records sent without an optional parent are planned again once such a parent syncs
        // (see `deliver_round`); a full re-plan that sent none without one clears the mark.
        if sync.associate.has_optional() && (without_optional > 0 || captured.full) {
            let mark = if without_optional > 0 { "1" } else { "" };
            self.state
                .set_cursor(&sync.name, CursorDirection::Push, OPTIONAL_PENDING, mark)
                .await?;
        }
        if stored.as_ref() != Some(&fingerprint) {
            self.state
                .set_cursor(&sync.name, CursorDirection::Push, MAPPING, &fingerprint)
                .await?;
        }
        self.prune_change_log(sync).await?;
        if report.queued > 0 {
            self.emit(Event::Planned {
                sync: sync.name.clone(),
                to_send: report.queued,
            });
            self.wakes.deliver.notify_one();
        }
        self.emit(Event::Captured {
            sync: sync.name.clone(),
            report: report.clone(),
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
        Ok((report, released))
    }

    /// Removes change-log entries of `sync`'s table that every trigger-captured sync of the
    /// table has read.
    async fn prune_change_log(&self, sync: &SyncConfig) -> Result<(), EngineError> {
        use crmsync_core::config::Capture as Mode;
        if sync.capture != Mode::Trigger {
            return Ok(());
        }
        let mut cursors = Vec::new();
        for s in self
            .config
            .raw
            .syncs
            .iter()
            .filter(|s| s.table == sync.table && s.capture == Mode::Trigger)
        {
            match self
                .state
                .cursor(&s.name, CursorDirection::Push, "trigger")
                .await?
            {
                Some(c) => cursors.push(c),
                None => return Ok(()), // a sync that never read the log yet
            }
        }
        if let Some(earliest) = self.app.earliest_cursor(&cursors) {
            let changes = self.app.prune_changes(&sync.table, &earliest).await?;
            if changes > 0 {
                self.emit(Event::Pruned {
                    table: sync.table.clone(),
                    changes,
                });
            }
        }
        Ok(())
    }

    /// Writes CRM ids into `sync`'s `write_back_column` where the app does not have them yet
    /// (the caller leads the sync). A failed write is retried on the next round: the pending
    /// set lives in the state, so nothing is dropped.
    pub async fn write_back(&self, sync: &SyncConfig) -> Result<u64, EngineError> {
        let Some(column) = &sync.write_back_column else {
            return Ok(0);
        };
        let mut total = 0;
        loop {
            let pending = self
                .state
                .pending_write_backs(&sync.name, WRITE_BACK_PAGE)
                .await?;
            if pending.is_empty() {
                break;
            }
            let writes: Vec<RowWrite> = pending
                .iter()
                .map(|(local, crm_id)| RowWrite {
                    key: local.clone(),
                    set: vec![(column.clone(), Some(crm_id.clone()))],
                    expect: vec![],
                })
                .collect();
            self.app.write(&sync.table, &sync.key, &writes).await?;
            // Written, or the row is gone: either way nothing is left to write for it.
            self.state.mark_written_back(&sync.name, &pending).await?;
            total += pending.len() as u64;
            if pending.len() < WRITE_BACK_PAGE {
                break;
            }
        }
        if total > 0 {
            self.emit(Event::WrittenBack {
                sync: sync.name.clone(),
                records: total,
            });
        }
        Ok(total)
    }

    /// [`Self::write_back`], a failure reported instead of stopping the pass: the CRM ids stay
    /// pending in the state and are written by a later round.
    async fn write_back_or_report(&self, sync: &SyncConfig) {
        if let Err(e) = self.write_back(sync).await {
            self.emit(Event::TaskFailed {
                task: format!("write-back:{}", sync.name),
                error: e.to_string(),
            });
        }
    }

    /// Delivers due jobs of every sync, parents' syncs first, with up to `max_in_flight`
    /// batches in flight, until nothing is due, today's budget share is spent, or a stop or
    /// pause is asked. With `capture_released`, syncs whose records a settled parent released
    /// are captured within the round (for a one-shot pass that leads every sync).
    ///
    /// Claims are polled together with the batches in flight, never while they wait: a claim
    /// may wait for a database lock that a batch's settle holds (SQLite has one writer).
    pub async fn deliver_round(
        &self,
        capture_released: bool,
    ) -> Result<DeliverReport, EngineError> {
        self.settle_kept().await?;
        let syncs = &self.config.raw.syncs;
        let max_in_flight = self.config.raw.crm.max_in_flight.max(1) as usize;
        let mut out = DeliverReport::default();
        let mut inflight: FuturesUnordered<StepFuture<'_>> = FuturesUnordered::new();
        // Syncs found with nothing due in this round (until a settle releases records), and
        // syncs being captured (their jobs are still being planned).
        let mut idle: HashSet<String> = HashSet::new();
        let mut capturing: HashSet<String> = HashSet::new();
        // Syncs released again while being captured: captured once more afterwards.
        let mut recapture: HashSet<String> = HashSet::new();
        // Syncs whose records wait for their hints to be applied (one-shot rounds).
        let mut deferred: HashSet<String> = HashSet::new();
        let mut fatal: Option<EngineError> = None;
        // Syncs stopped for a schema error (this round or before): nothing of theirs is sent.
        let mut stopped: HashSet<String> = HashSet::new();
        for s in syncs {
            if self.stopped_reason(&s.name).await?.is_some() {
                stopped.insert(s.name.clone());
            }
        }
        // A sync's first batch of the round goes out alone: when the CRM refuses the mapping
        // itself, one call finds it instead of one per batch in flight.
        let mut probing: HashSet<String> = HashSet::new();
        let mut proven: HashSet<String> = HashSet::new();
        let mut filling = true;
        // Steps that finished while a claim was being answered, to handle next.
        let mut finished: std::collections::VecDeque<Step> = std::collections::VecDeque::new();
        // Calls the batches in flight may still make (each at its worst case), by which the
        // budget a claim sees is short: the claims of a round come faster than the calls they
        // lead to are reserved, and a batch claimed beyond the budget would fail its records.
        let mut promised = 0u64;
        let mut costs: HashMap<String, u64> = HashMap::new();
        loop {
            let fill = filling && fatal.is_none() && inflight.len() < max_in_flight;
            let step = if let Some(s) = finished.pop_front() {
                s
            } else if fill {
                let skip: HashSet<String> = idle
                    .iter()
                    .chain(&capturing)
                    .chain(&deferred)
                    .chain(&stopped)
                    .chain(&probing)
                    .cloned()
                    .collect();
                let claim = self.claim_next(skip, promised);
                tokio::pin!(claim);
                // Poll the claim and the batches in flight together until the claim answers.
                let claimed = loop {
                    tokio::select! {
                        c = &mut claim => break c,
                        Some(s) = inflight.next(), if !inflight.is_empty() => finished.push_back(s),
                    }
                };
                // A failed claim stops the round, but only after the batches in flight are
                // settled: dropping them would leave their jobs leased to this worker.
                let claimed = match claimed {
                    Ok(c) => c,
                    Err(e) => {
                        fatal.get_or_insert(e);
                        filling = false;
                        continue;
                    }
                };
                match claimed {
                    Fill::Claimed(i, jobs, cost) => {
                        let sync = &syncs[i];
                        promised += cost;
                        costs.insert(sync.name.clone(), cost);
                        if !proven.contains(&sync.name) {
                            probing.insert(sync.name.clone());
                        }
                        inflight.push(Box::pin(async move {
                            Step::Batch {
                                sync: sync.name.clone(),
                                result: self.deliver_batch(sync, jobs, capture_released).await,
                            }
                        }));
                    }
                    Fill::Busy => filling = false,
                    Fill::Empty(found_idle) => {
                        idle.extend(found_idle);
                        filling = false;
                    }
                    Fill::Stop(paused_until) => {
                        if let Some(until) = paused_until {
                            out.paused_until_ms = Some(until);
                        }
                        filling = false;
                    }
                }
                continue;
            } else {
                match inflight.next().await {
                    Some(s) => s,
                    None => break,
                }
            };
            if let Step::Batch { sync, .. } = &step {
                promised = promised.saturating_sub(costs.get(sync).copied().unwrap_or(0));
            }
            match step {
                Step::Batch { sync, result } => match result {
                    Ok(done) => {
                        if probing.remove(&sync) {
                            proven.insert(sync.clone());
                        }
                        if done.report.created > 0
                            && let Err(e) = beside(
                                self.replan_optional_children(&sync),
                                &mut inflight,
                                &mut finished,
                            )
                            .await
                        {
                            fatal.get_or_insert(e);
                        }
                        out.batches += 1;
                        out.syncs
                            .entry(sync.clone())
                            .or_insert_with(|| SyncReport {
                                sync: sync.clone(),
                                ..Default::default()
                            })
                            .add(&done.report);
                        if done.hinted {
                            out.hinted.insert(sync.clone());
                            self.wakes.wake_sync(&sync);
                            if capture_released {
                                // One-shot: its jobs go out after the caller applied the
                                // hints, not again in this round.
                                deferred.insert(sync.clone());
                            }
                        }
                        if done.released > 0 {
                            for child in children_of(syncs, &sync) {
                                out.released.insert(child.name.clone());
                                idle.remove(&child.name);
                                if capture_released {
                                    if capturing.insert(child.name.clone()) {
                                        inflight.push(self.capture_step(child));
                                    } else {
                                        // The capture running now may have read the released
                                        // keys before this settle: look once more after it.
                                        recapture.insert(child.name.clone());
                                    }
                                } else {
                                    self.wakes.wake_sync(&child.name);
                                }
                            }
                        }
                        // A slot is free: look for more work (also in syncs found idle
                        // before, whose children may have been planned meanwhile).
                        filling = true;
                    }
                    Err(EngineError::Crm(e)) if e.kind == crmsync_crm::ErrorKind::Schema => {
                        // Every record of this sync would fail the same way: stop it (and
                        // say so until a start finds the mapping fits), keep the others going.
                        if let Err(store) = beside(
                            self.stop_sync(&sync, &e.message),
                            &mut inflight,
                            &mut finished,
                        )
                        .await
                        {
                            fatal.get_or_insert(store);
                        }
                        stopped.insert(sync.clone());
                        out.syncs
                            .entry(sync.clone())
                            .or_insert_with(|| SyncReport {
                                sync: sync.clone(),
                                ..Default::default()
                            })
                            .stopped = Some(e.message.clone());
                        filling = true;
                    }
                    Err(e) => {
                        self.emit(Event::TaskFailed {
                            task: format!("deliver:{sync}"),
                            error: e.to_string(),
                        });
                        fatal.get_or_insert(e);
                    }
                },
                Step::Captured { sync, result } => {
                    idle.remove(&sync);
                    filling = true;
                    if let Ok(report) = &result {
                        out.held_after.insert(sync.clone(), report.held);
                    }
                    if let Err(e) = result {
                        capturing.remove(&sync);
                        fatal.get_or_insert(e);
                    } else if recapture.remove(&sync) {
                        if let Some(s) = syncs.iter().find(|s| s.name == sync) {
                            inflight.push(self.capture_step(s));
                        }
                    } else {
                        capturing.remove(&sync);
                    }
                }
            }
        }
        self.flush_calls().await?;
        for (sync, report) in &out.syncs {
            self.emit(Event::Delivered {
                sync: sync.clone(),
                report: report.clone(),
            });
        }
        match fatal {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Stops delivering `sync` until [`Self::clear_stops`]: the reason is kept in the state
    /// (a cursor of its own), so every worker, `status` and a restarted pass know it.
    pub async fn stop_sync(&self, sync: &str, reason: &str) -> Result<(), EngineError> {
        self.state
            .set_cursor(sync, CursorDirection::Push, STOPPED, reason)
            .await?;
        self.emit(Event::SyncStopped {
            sync: sync.to_string(),
            error: reason.to_string(),
        });
        Ok(())
    }

    /// `parent` just created records in the CRM: its children that sent records without an
    /// optional association to it are re-planned at their next capture, so those records get
    /// the association now that their parent may be there.
    async fn replan_optional_children(&self, parent: &str) -> Result<(), EngineError> {
        for child in &self.config.raw.syncs {
            let optional_to_parent = child
                .associate
                .iter()
                .any(|(column, target)| target == parent && !child.associate.is_required(column));
            if !optional_to_parent {
                continue;
            }
            let pending = self
                .state
                .cursor(&child.name, CursorDirection::Push, OPTIONAL_PENDING)
                .await?
                .is_some_and(|m| !m.is_empty());
            if pending {
                self.request_resync(&child.name).await?;
                self.wakes.wake_sync(&child.name);
            }
        }
        Ok(())
    }

    /// Makes the next capture of `sync` re-plan every row (`crmsync resync`). Idempotent.
    pub async fn request_resync(&self, sync: &str) -> Result<(), EngineError> {
        self.state
            .set_cursor(sync, CursorDirection::Push, MAPPING, RESYNC)
            .await?;
        Ok(())
    }

    /// Why `sync` is stopped, if it is.
    pub async fn stopped_reason(&self, sync: &str) -> Result<Option<String>, EngineError> {
        Ok(stopped_reason(&self.state, sync).await?)
    }

    /// Lets every stopped sync deliver again: called when a start found the mapping fits the
    /// CRM (or the user passed `--force`).
    pub async fn clear_stops(&self) -> Result<(), EngineError> {
        for s in &self.config.raw.syncs {
            if self.stopped_reason(&s.name).await?.is_some() {
                self.state
                    .set_cursor(&s.name, CursorDirection::Push, STOPPED, "")
                    .await?;
            }
        }
        Ok(())
    }

    /// One event per field and rule for the fields left out of this page's records.
    fn report_skipped(&self, sync: &SyncConfig, skipped: &[(String, FieldProblem)]) {
        let mut by_field: BTreeMap<(&str, &str), (u64, String)> = BTreeMap::new();
        for (key, p) in skipped {
            let slot = by_field
                .entry((p.column.as_str(), p.rule.as_str()))
                .or_insert_with(|| (0, format!("record {key}: {}", p.message)));
            slot.0 += 1;
        }
        for ((field, rule), (count, example)) in by_field {
            self.emit(Event::FieldsSkipped {
                sync: sync.name.clone(),
                field: field.to_string(),
                rule: rule.to_string(),
                count,
                example,
            });
        }
    }

    /// Keeps a settlement the state database could not store, for [`Self::settle_kept`].
    fn keep_unsettled(&self, settlement: Settlement) {
        if let Ok(mut kept) = self.unsettled.lock() {
            kept.push(settlement);
        }
    }

    /// Stores the settlements kept from earlier rounds; fails (keeping them) while the state
    /// database still refuses.
    pub(crate) async fn settle_kept(&self) -> Result<(), EngineError> {
        let kept: Vec<Settlement> = self
            .unsettled
            .lock()
            .map(|mut k| std::mem::take(&mut *k))
            .unwrap_or_default();
        let mut left = Vec::new();
        let mut failure = None;
        for s in kept {
            if failure.is_some() {
                left.push(s);
                continue;
            }
            if let Err(e) = settle::store_settlement(&self.state, &self.worker, &s).await {
                failure = Some(e);
                left.push(s);
            }
        }
        if !left.is_empty()
            && let Ok(mut k) = self.unsettled.lock()
        {
            k.extend(left);
        }
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// A capture of `sync` as a step of a delivery round.
    fn capture_step<'a>(&'a self, sync: &'a SyncConfig) -> StepFuture<'a> {
        Box::pin(async move {
            Step::Captured {
                sync: sync.name.clone(),
                result: self.capture_sync(sync).await,
            }
        })
    }

    /// Claims the next batch: from the first sync in dependency order (parents first) that has
    /// jobs due, skipping `skip`. Stops on a pause, a stop, or a spent budget; is busy while
    /// the budget left is promised to the `promised` calls of the batches in flight.
    async fn claim_next(&self, skip: HashSet<String>, promised: u64) -> Result<Fill, EngineError> {
        if self.halted().await? {
            return Ok(Fill::Stop(None));
        }
        let syncs = &self.config.raw.syncs;
        let batch = self.crm.max_batch().max(1);
        let mut empty = Vec::new();
        for i in dependency_order(syncs) {
            let sync = &syncs[i];
            if skip.contains(&sync.name) {
                continue;
            }
            // Worst case per batch: one upsert, one association call per target (a parent named
            // by a property rides in the upsert), and the read before writing two-way records.
            let reads = u64::from(!crate::inbound::decide::pulled_fields(sync).is_empty());
            let association_targets =
                sync.associate.len() - plan::reference_properties(syncs, sync).len();
            let per_batch = 1 + association_targets as u64 + reads;
            let budget = self.budget().await?;
            if budget.remaining() < i64::try_from(per_batch).unwrap_or(i64::MAX) {
                self.emit(Event::BudgetPaused {
                    remaining: budget.remaining(),
                    until_ms: budget.resets_at_ms(),
                });
                return Ok(Fill::Stop(Some(budget.resets_at_ms())));
            }
            if budget.remaining() < i64::try_from(per_batch + promised).unwrap_or(i64::MAX) {
                return Ok(Fill::Busy);
            }
            let jobs = self
                .state
                .claim(
                    &self.worker,
                    &sync.name,
                    batch,
                    self.leases.job,
                    self.clock.now_ms(),
                )
                .await?;
            if jobs.is_empty() {
                empty.push(sync.name.clone());
                continue;
            }
            return Ok(Fill::Claimed(i, jobs, per_batch));
        }
        Ok(Fill::Empty(empty))
    }

    /// One claimed batch: recheck (two-way), deliver, settle. A failure of the whole call that
    /// no batch can get past (auth, schema) puts the jobs back untouched and is returned.
    async fn deliver_batch(
        &self,
        sync: &SyncConfig,
        jobs: Vec<crmsync_store::Job>,
        leader_next: bool,
    ) -> Result<BatchDone, EngineError> {
        let object = Self::object_of(sync)?;
        let mut report = SyncReport {
            sync: sync.name.clone(),
            ..Default::default()
        };
        let mut parent_objects = HashMap::new();
        for target in sync.associate.values() {
            if let Some(t) = self.config.sync(target) {
                parent_objects.insert(target.clone(), Self::object_of(t)?);
            }
        }
        let target = Target {
            sync,
            object,
            parent_objects: &parent_objects,
        };
        let all: Vec<i64> = jobs.iter().map(|j| j.id).collect();
        let result = self
            .recheck_deliver_settle(sync, object, &target, jobs, leader_next, &mut report)
            .await;
        // The call log is for people; the budget was reserved already. A failure to append
        // to it must not keep the batch from settling.
        if let Err(e) = self.flush_calls().await {
            tracing::warn!(error = %e, "the call log could not be written");
        }
        match result {
            Ok((released, hinted)) => Ok(BatchDone {
                report,
                released,
                hinted,
            }),
            Err(e) => {
                // Hand the jobs back untouched: the round stops, nothing is lost.
                let now = self.clock.now_ms();
                let back = Settlement {
                    sync: sync.name.clone(),
                    crm_object: object.as_str().to_string(),
                    retry: all
                        .iter()
                        .map(|id| Retry {
                            job_id: *id,
                            error: e.to_string(),
                            run_at_ms: now,
                            dead: false,
                        })
                        .collect(),
                    now_ms: now,
                    ..Default::default()
                };
                if let Err(store) = settle::store_settlement(&self.state, &self.worker, &back).await
                {
                    tracing::warn!(error = %store, "handing jobs back failed; tried again next round");
                    self.keep_unsettled(back);
                }
                Err(e)
            }
        }
    }

    async fn recheck_deliver_settle(
        &self,
        sync: &SyncConfig,
        object: ObjectKind,
        target: &Target<'_>,
        jobs: Vec<crmsync_store::Job>,
        leader_next: bool,
        report: &mut SyncReport,
    ) -> Result<(u64, bool), EngineError> {
        let checked = recheck::recheck(&self.crm, &self.state, sync, object, jobs).await?;
        let now = self.clock.now_ms();
        let mut hinted = false;
        let mut put_back: Vec<Retry> = Vec::new();
        if !checked.moved.is_empty() {
            let hints: Vec<Hint> = checked
                .moved
                .iter()
                .map(|(_, crm_id)| Hint {
                    sync: sync.name.clone(),
                    crm_id: crm_id.clone(),
                    reason: "recheck".into(),
                    added_at_ms: now,
                })
                .collect();
            self.state.add_hints(&hints, now).await?;
            hinted = true;
            // When this worker applies the hints next (a one-shot pass), the jobs are due again
            // right after; otherwise the leader gets a moment before they are claimed again.
            let run_at_ms = if leader_next {
                now
            } else {
                now + RECHECK_BACKOFF_MS
            };
            put_back.extend(checked.moved.iter().map(|(job, _)| Retry {
                job_id: job.id,
                error: "a CRM edit since the last agreed value is applied first".into(),
                run_at_ms,
                dead: false,
            }));
        }
        // A job replaced while it waited (a newer change of the record) is not worth sending:
        // it goes back to ready and carries the new payload next time.
        let keep = checked.keep;
        let current = self
            .state
            .still_current(
                &self.worker,
                &keep
                    .iter()
                    .map(|j| (j.id, j.hash.clone()))
                    .collect::<Vec<_>>(),
            )
            .await?;
        let (send, superseded): (Vec<_>, Vec<_>) =
            keep.into_iter().partition(|j| current.contains(&j.id));
        if !superseded.is_empty() {
            self.emit(Event::Superseded {
                sync: sync.name.clone(),
                jobs: superseded.len() as u64,
            });
            put_back.extend(superseded.iter().map(|j| Retry {
                job_id: j.id,
                error: "replaced by a newer change before it was sent".into(),
                run_at_ms: now,
                dead: false,
            }));
        }
        let outcome = if send.is_empty() {
            Outcome::default()
        } else {
            deliver::deliver(&self.crm, target, &send, now).await?
        };
        let mut settlement = settle::settlement(
            sync,
            object,
            &send,
            &outcome,
            self.clock.now_ms(),
            self.config.raw.crm.max_attempts,
        );
        settlement.retry.extend(put_back);
        let dead = settlement.retry.iter().filter(|r| r.dead).count() as u64;
        let done =
            match settle::settle(&self.state, &self.worker, &settlement, &outcome, report).await {
                Ok(done) => done,
                Err(e) => {
                    // The CRM has the records; only our bookkeeping is missing. Keep the outcome and
                    // store it before the next round instead of delivering the batch again.
                    self.keep_unsettled(settlement);
                    return Err(e);
                }
            };
        if !done.lost.is_empty() {
            self.emit(Event::LeaseLost {
                sync: sync.name.clone(),
                jobs: done.lost.len() as u64,
            });
        }
        self.emit(Event::Settled {
            sync: sync.name.clone(),
            records: done.settled,
            created: report.created,
            updated: report.updated,
            rejected: report.rejected,
            failed: report.failed,
            dead,
        });
        Ok((done.released, hinted))
    }

    /// One pass over every sync, as `crmsync sync --once` runs it: for each sync this worker
    /// can lead (parents first), apply its inbound hints, write CRM ids back and capture; then
    /// deliver until nothing is due, capturing records that settled parents release; repeat
    /// while CRM edits found just before a push wait to be applied.
    pub async fn push_once(&self) -> Result<RunReport, EngineError> {
        // The leases of the claimed jobs are renewed beside the pass (the heartbeat ends only
        // when the token is cancelled; the pass then ends too, and is what is waited for).
        let pass = self.push_pass();
        tokio::pin!(pass);
        let r = tokio::select! {
            r = &mut pass => r,
            () = self.keep_leases() => pass.await,
        };
        if r.is_err() {
            self.forget_ensured();
        }
        // The pass is over: another process may lead these syncs at once.
        self.state.resign(&self.worker).await?;
        r
    }

    async fn push_pass(&self) -> Result<RunReport, EngineError> {
        let started = Instant::now();
        let since = crmsync_store::now_ms();
        crate::check::check_source(&self.config, &self.app).await?;
        self.ensure_id_properties().await?;
        let syncs = &self.config.raw.syncs;
        let mut run = RunReport::default();
        let mut reports: HashMap<String, SyncReport> = HashMap::new();
        loop {
            for i in dependency_order(syncs) {
                let sync = &syncs[i];
                if self.stopping() {
                    break;
                }
                if !self.lead(&crate::engine::sync_task(&sync.name)).await? {
                    continue; // another worker captures it
                }
                // Paused: changes are still captured and queued, but nothing is written to
                // the app (or, below, the CRM).
                if !self.state.paused().await? {
                    self.apply_hints(sync).await?;
                    self.write_back_or_report(sync).await;
                }
                let r = self.capture_sync(sync).await?;
                reports
                    .entry(sync.name.clone())
                    .or_insert_with(|| SyncReport {
                        sync: sync.name.clone(),
                        ..Default::default()
                    })
                    .add_round(&r);
            }
            let d = self.deliver_round(true).await?;
            for (sync, r) in &d.syncs {
                let entry = reports.entry(sync.clone()).or_insert_with(|| SyncReport {
                    sync: sync.clone(),
                    ..Default::default()
                });
                entry.created += r.created;
                entry.updated += r.updated;
                entry.rejected += r.rejected;
                entry.failed += r.failed;
                if r.stopped.is_some() {
                    entry.stopped.clone_from(&r.stopped);
                }
            }
            // Captures a released parent started re-planned the held children: what they
            // left held is what still waits.
            for (sync, held) in &d.held_after {
                if let Some(entry) = reports.get_mut(sync) {
                    entry.held = *held;
                }
            }
            if d.paused_until_ms.is_some() {
                run.paused_until_ms = d.paused_until_ms;
            }
            let again = !d.hinted.is_empty() && d.paused_until_ms.is_none();
            if !again || self.halted().await? {
                break;
            }
        }
        if !self.halted().await? {
            for i in dependency_order(syncs) {
                let sync = &syncs[i];
                if self.lead(&crate::engine::sync_task(&sync.name)).await? {
                    self.write_back_or_report(sync).await;
                }
            }
        }
        for i in dependency_order(syncs) {
            let sync = &syncs[i];
            let mut report = reports.remove(&sync.name).unwrap_or_else(|| SyncReport {
                sync: sync.name.clone(),
                ..Default::default()
            });
            if report.stopped.is_none() {
                // Stopped before this pass (by another worker, or `--force` was not enough).
                report.stopped = self.stopped_reason(&sync.name).await?;
            }
            run.syncs.push(report);
        }
        self.flush_calls().await?;
        let calls = self.state.call_summary(since).await?;
        run.calls = calls.calls as u64;
        run.upsert_calls = calls.upsert_calls as u64;
        run.upserted_records = calls.upserted as u64;
        run.association_calls = calls.association_calls as u64;
        run.retries = calls.retries as u64;
        run.rate_limited = calls.rate_limited as u64;
        run.budget_remaining = self.budget().await?.remaining().max(0) as u64;
        run.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(run)
    }
}

impl<A, S, C> Engine<A, S, C>
where
    A: Source + Capture,
    S: State,
    C: Crm,
{
    /// The jobs the planner makes for `rows` of `sync` whatever was pushed before, by record
    /// (records it would hold or quarantine have none): the payload and hash a row maps to now.
    pub(crate) async fn jobs_for_rows(
        &self,
        sync: &SyncConfig,
        rows: &[SourceRow],
    ) -> Result<HashMap<String, crmsync_store::NewJob>, EngineError> {
        if rows.is_empty() {
            return Ok(HashMap::new());
        }
        // The links decide whether `create_only` values belong in the payload.
        let keys: Vec<String> = rows.iter().map(|r| r.key.clone()).collect();
        let links = self.state.links_for(&sync.name, &keys).await?;
        self.jobs_for_linked_rows(sync, rows, &links).await
    }

    /// [`Self::jobs_for_rows`] with the records' links given (for links about to be made).
    pub(crate) async fn jobs_for_linked_rows(
        &self,
        sync: &SyncConfig,
        rows: &[SourceRow],
        links: &HashMap<String, Link>,
    ) -> Result<HashMap<String, crmsync_store::NewJob>, EngineError> {
        if rows.is_empty() {
            return Ok(HashMap::new());
        }
        let parents = parent_links(&self.state, sync, rows).await?;
        let unsendable = unsendable_parents(&self.state, sync, rows).await?;
        let references = plan::reference_properties(&self.config.raw.syncs, sync);
        let input = PlanInput {
            sync,
            links,
            parents: &parents,
            references: &references,
            unsendable_parents: &unsendable,
            quarantined: &HashSet::new(),
            priority: 0,
            now_ms: self.clock.now_ms(),
            assume_parents: false,
        };
        let p = plan(&input, rows);
        // Sent or not, every mappable record has its job: callers compare hashes.
        Ok(p.jobs
            .into_iter()
            .chain(p.unchanged_jobs)
            .map(|j| (j.local_id.clone(), j))
            .collect())
    }

    /// [`Self::jobs_for_rows`] for these records, read from the app database now.
    pub(crate) async fn current_jobs(
        &self,
        sync: &SyncConfig,
        local_ids: &[String],
    ) -> Result<HashMap<String, crmsync_store::NewJob>, EngineError> {
        let mut columns = crmsync_core::mapping::referenced_columns(sync);
        if let Some(c) = &sync.updated_at_column {
            columns.push(c);
        }
        let rows = self
            .app
            .fetch(&sync.table, &sync.key, &columns, local_ids)
            .await?;
        self.jobs_for_rows(sync, &rows).await
    }
}

/// Awaits `fut` while the batches and captures in flight go on, keeping those that finish in
/// `finished`. A step in flight may be inside a state transaction that holds the database's
/// write lock; left unpolled while `fut` writes, it would never commit, and `fut` would wait
/// for the lock until the busy timeout ("database is locked" after 30 s on SQLite).
async fn beside<'a, T>(
    fut: impl Future<Output = T>,
    inflight: &mut FuturesUnordered<StepFuture<'a>>,
    finished: &mut std::collections::VecDeque<Step>,
) -> T {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            r = &mut fut => return r,
            Some(s) = inflight.next(), if !inflight.is_empty() => finished.push_back(s),
        }
    }
}

/// The syncs whose records associate to `parent`.
fn children_of<'a>(syncs: &'a [SyncConfig], parent: &str) -> Vec<&'a SyncConfig> {
    syncs
        .iter()
        .filter(|s| s.associate.values().any(|t| t == parent) && s.name != parent)
        .collect()
}

/// The links of the records `rows` associate to, by target sync name and key: what planning
/// needs to put the parents' CRM ids into the children's payloads.
pub(crate) async fn parent_links<S: Records>(
    state: &S,
    sync: &SyncConfig,
    rows: &[SourceRow],
) -> Result<HashMap<String, HashMap<String, Link>>, StoreError> {
    let mut parents: HashMap<String, HashMap<String, Link>> = HashMap::new();
    for (column, target) in &sync.associate {
        let parent_keys = parent_keys(rows, column);
        let found = state.links_for(target, &parent_keys).await?;
        parents.entry(target.clone()).or_default().extend(found);
    }
    Ok(parents)
}

/// Why `sync` is stopped because the CRM refuses its mapping, if it is (what `sync`, `status`
/// and every worker's delivery read).
pub(crate) async fn stopped_reason<S: Records>(
    state: &S,
    sync: &str,
) -> Result<Option<String>, StoreError> {
    Ok(state
        .cursor(sync, CursorDirection::Push, STOPPED)
        .await?
        .filter(|r| !r.is_empty()))
}

/// The records of `sync` parked for a person: an open conflict, deleted in the CRM, or
/// sharing a CRM record after a merge. Capture neither plans nor sends them (a push would
/// overwrite the CRM's value, recreate the record, or overwrite the other app record's values).
pub(crate) async fn parked_keys<S: State>(
    state: &S,
    sync: &SyncConfig,
) -> Result<HashSet<String>, StoreError> {
    let mut parked: HashSet<String> = state
        .open_conflicts(Some(&sync.name))
        .await?
        .into_iter()
        .map(|c| c.local_id)
        .collect();
    parked.extend(
        state
            .blocked_keys(
                &sync.name,
                &[
                    crate::lifecycle::deletion::RULE,
                    crate::lifecycle::merge::RULE,
                ],
            )
            .await?,
    );
    Ok(parked)
}

/// How one page of captured rows is planned ([`plan_page`]).
pub(crate) struct PageInput<'a> {
    pub sync: &'a SyncConfig,
    pub references: &'a BTreeMap<String, String>,
    pub priority: i32,
    pub now_ms: i64,
    pub assume_parents: bool,
    /// Links to plan from instead of the stored ones, by key (`crmsync plan`: the links as the
    /// inbound step before the capture would leave them).
    pub links: Option<&'a HashMap<String, Link>>,
}

/// Plans one page of `sync`'s captured rows the way capture does: reads the rows' links, their
/// parents' links, the parents that cannot be sent and the quarantine, then runs the pure
/// [`plan`]. Writes nothing; returns the links it planned from with the plan.
pub(crate) async fn plan_page<S: Records>(
    state: &S,
    input: &PageInput<'_>,
    rows: &[SourceRow],
) -> Result<(HashMap<String, Link>, plan::Plan), StoreError> {
    let sync = input.sync;
    let keys: Vec<String> = rows.iter().map(|r| r.key.clone()).collect();
    let mut links = state.links_for(&sync.name, &keys).await?;
    if let Some(over) = input.links {
        for k in &keys {
            if let Some(l) = over.get(k) {
                links.insert(k.clone(), l.clone());
            }
        }
    }
    let parents = parent_links(state, sync, rows).await?;
    let unsendable = unsendable_parents(state, sync, rows).await?;
    let quarantined = state.quarantined_among(&sync.name, &keys).await?;
    let p = plan(
        &PlanInput {
            sync,
            links: &links,
            parents: &parents,
            references: input.references,
            unsendable_parents: &unsendable,
            quarantined: &quarantined,
            priority: input.priority,
            now_ms: input.now_ms,
            assume_parents: input.assume_parents,
        },
        rows,
    );
    Ok((links, p))
}

/// Whether the next capture of `sync` re-plans every row: its records were planned with
/// another mapping (`stored` fingerprint), or a resync was asked for. No fingerprint yet (a
/// first capture, or a state from before fingerprints) is not a change.
pub(crate) fn replan_due(stored: Option<&str>, sync: &SyncConfig) -> bool {
    stored.is_some_and(|f| f != crmsync_core::hash::mapping_fingerprint(sync))
}

/// The fingerprint `sync`'s records were last planned with, if any.
pub(crate) async fn planned_fingerprint<S: Records>(
    state: &S,
    sync: &str,
) -> Result<Option<String>, StoreError> {
    state.cursor(sync, CursorDirection::Push, MAPPING).await
}

/// The distinct parent keys `rows` name in `column`, in order.
fn parent_keys(rows: &[SourceRow], column: &str) -> Vec<String> {
    rows.iter()
        .filter_map(|r| r.values.get(column).cloned().flatten())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// For the optional associations of `sync`: the parent keys `rows` name that are quarantined
/// in the parent's sync (invalid, rejected, held for a confirmation — not merely waiting for
/// a parent of their own), i.e. will not reach the CRM by themselves.
/// A child is sent without such a parent instead of waiting for it.
pub(crate) async fn unsendable_parents<S: Records>(
    state: &S,
    sync: &SyncConfig,
    rows: &[SourceRow],
) -> Result<HashMap<String, HashSet<String>>, StoreError> {
    let mut out: HashMap<String, HashSet<String>> = HashMap::new();
    for (column, target) in &sync.associate {
        if sync.associate.is_required(column) {
            continue;
        }
        let parent_keys = parent_keys(rows, column);
        let mut found = state.quarantined_among(target, &parent_keys).await?;
        if !found.is_empty() {
            // Waiting for its own parent is not "cannot be sent": that resolves by itself.
            let waiting = state.blocked_keys(target, &[plan::PARENT_RULE]).await?;
            found.retain(|k| !waiting.contains(k));
        }
        out.entry(target.clone()).or_default().extend(found);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_are_the_syncs_that_associate_to_a_parent() {
        let raw: crmsync_core::config::raw::RawConfig = toml::from_str(
            r#"
source = { url = "sqlite://a" }
crm = { environment = "sandbox", kind = "hubspot" }
[[sync]]
name = "companies"
table = "c"
object = "companies"
[[sync]]
name = "contacts"
table = "c"
object = "contacts"
associate = { id = "companies" }
[[sync]]
name = "deals"
table = "o"
object = "deals"
associate = { customer_id = "companies" }
"#,
        )
        .expect("parses");
        let names: Vec<&str> = children_of(&raw.syncs, "companies")
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, vec!["contacts", "deals"]);
        assert!(children_of(&raw.syncs, "deals").is_empty());
    }
}
