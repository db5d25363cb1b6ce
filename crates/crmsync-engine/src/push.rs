//! One push pass over every sync, parents first: ensure the CRM has our key property, capture,
//! plan, queue, deliver until the queue holds nothing due, write CRM ids back if configured.
//! Every CRM call the client reports is appended to the call log after each batch.

use crate::budget::Budget;
use crate::capture::capture;
use crate::clock::{Clock, SystemClock};
use crate::dispatch::{LEASE, Target, deliver, settle};
use crate::error::EngineError;
use crate::order::dependency_order;
use crate::plan::{PlanInput, plan};
use crate::progress::Progress;
use crate::report::{RunReport, SyncReport};
use crmsync_core::config::{Config, SyncConfig};
use crmsync_crm::{CallObserver, CallRecord, Crm, ObjectKind};
use crmsync_store::source::sqlite::SourceRow;
use crmsync_store::state::sqlite::now_ms;
use crmsync_store::{CallRow, Delivered, Job, Link, PullStore, SqliteSource, Store, StoreError};
use futures::future::join_all;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Collects the client's [`CallRecord`]s until the engine writes them to the call log.
#[derive(Debug, Clone, Default)]
pub struct CallBuffer(Arc<Mutex<Vec<CallRecord>>>);

impl CallBuffer {
    /// An observer to hand to the CRM client.
    pub fn observer(&self) -> CallObserver {
        let buf = self.0.clone();
        Arc::new(move |c| {
            if let Ok(mut b) = buf.lock() {
                b.push(c);
            }
        })
    }

    fn drain(&self) -> Vec<CallRecord> {
        self.0
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default()
    }
}

fn to_row(c: CallRecord) -> CallRow {
    let rate_limits = if c.rate_limit_headers.is_empty() {
        None
    } else {
        let m: serde_json::Map<String, serde_json::Value> = c
            .rate_limit_headers
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        Some(serde_json::Value::Object(m).to_string())
    };
    CallRow {
        at_ms: c.started_at_ms,
        method: c.method,
        endpoint: c.endpoint,
        status: c.status,
        attempt: c.attempt,
        latency_ms: c.latency.as_millis() as i64,
        records: c.records,
        rate_limits,
        error: c.error,
    }
}

/// The parts one pass works with.
pub struct Engine<C, S> {
    pub config: Config,
    pub crm: C,
    pub store: S,
    pub source: SqliteSource,
    pub calls: CallBuffer,
    pub clock: Arc<dyn Clock>,
    /// Set to ask a running pass to stop after its current batch (`crmsync run` on SIGTERM).
    pub stop: Arc<AtomicBool>,
    /// Id properties known to exist in the CRM, checked once per process (not every round of
    /// `crmsync run`); forgotten when a pass fails, so a property deleted meanwhile is made again.
    ensured: std::sync::Mutex<HashSet<(ObjectKind, String)>>,
}

impl<C: Crm, S: Store + PullStore> Engine<C, S> {
    /// An engine on the system clock.
    pub fn new(config: Config, crm: C, store: S, source: SqliteSource, calls: CallBuffer) -> Self {
        Engine {
            config,
            crm,
            store,
            source,
            calls,
            clock: Arc::new(SystemClock),
            stop: Arc::new(AtomicBool::new(false)),
            ensured: std::sync::Mutex::new(HashSet::new()),
        }
    }

    fn is_ensured(&self, key: &(ObjectKind, String)) -> bool {
        self.ensured.lock().is_ok_and(|set| set.contains(key))
    }

    fn set_ensured(&self, key: Option<(ObjectKind, String)>) {
        if let Ok(mut set) = self.ensured.lock() {
            match key {
                Some(k) => {
                    set.insert(k);
                }
                None => set.clear(),
            }
        }
    }

    /// Whether a shutdown was asked for.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Writes the buffered call records to the call log; returns how many there were.
    pub(crate) async fn flush_calls(&self) -> Result<i64, EngineError> {
        let rows: Vec<CallRow> = self.calls.drain().into_iter().map(to_row).collect();
        self.store.record_calls(&rows).await?;
        Ok(rows.len() as i64)
    }

    pub(crate) fn object_of(sync: &SyncConfig) -> Result<ObjectKind, EngineError> {
        ObjectKind::parse(&sync.object).ok_or_else(|| {
            EngineError::Config(format!(
                "sync `{}`: unknown CRM object `{}`",
                sync.name, sync.object
            ))
        })
    }

    /// Today's daily budget, with the calls already logged today counted.
    pub async fn budget(&self) -> Result<Budget, EngineError> {
        let mut b = Budget::new(&self.config.raw.crm, self.clock.now_ms());
        b.used = self.store.calls_since(b.day_start_ms).await?;
        Ok(b)
    }

    /// One pass over all syncs: capture and queue every change, then deliver until the queue
    /// holds nothing due or today's budget share is spent.
    pub async fn push_once(&self, progress: &dyn Progress) -> Result<RunReport, EngineError> {
        let r = self.push_pass(progress).await;
        if r.is_err() {
            self.set_ensured(None);
        }
        r
    }

    async fn push_pass(&self, progress: &dyn Progress) -> Result<RunReport, EngineError> {
        let started = Instant::now();
        let since = now_ms();
        check_source(&self.config, &self.source).await?;
        let syncs = &self.config.raw.syncs;
        let mut budget = self.budget().await?;
        for s in syncs {
            let key = (Self::object_of(s)?, s.id_property.clone());
            if !self.is_ensured(&key) {
                let r = self.crm.ensure_id_property(key.0, &s.id_property).await;
                budget.used += self.flush_calls().await?;
                r?;
                self.set_ensured(Some(key));
            }
        }
        let mut report = RunReport::default();
        for i in dependency_order(syncs) {
            let r = self
                .push_sync(&syncs[i], &mut budget, &mut report, progress)
                .await;
            budget.used += self.flush_calls().await?;
            report.syncs.push(r?);
        }
        let calls = self.store.call_summary(since).await?;
        report.calls = calls.calls as u64;
        report.upsert_calls = calls.upsert_calls as u64;
        report.upserted_records = calls.upserted as u64;
        report.association_calls = calls.association_calls as u64;
        report.retries = calls.retries as u64;
        report.rate_limited = calls.rate_limited as u64;
        report.budget_remaining = budget.remaining() as u64;
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// Reads `sync`'s captured pages and queues what must be sent. Returns whether the capture
    /// read the whole table.
    async fn queue_changes(
        &self,
        sync: &SyncConfig,
        report: &mut SyncReport,
    ) -> Result<bool, EngineError> {
        let mut captured = capture(&self.source, &self.store, sync).await?;
        let mut parked: HashSet<String> = self
            .store
            .open_conflicts(Some(&sync.name))
            .await?
            .into_iter()
            .map(|c| c.local_id)
            .collect();
        // Deleted in the CRM, or sharing a CRM record after a merge: a push would recreate
        // the record or overwrite the other app record's values.
        parked.extend(
            self.store
                .blocked_keys(&sync.name, &[crate::deletion::RULE, crate::merge::RULE])
                .await?,
        );
        while let Some(mut rows) = captured.next_page().await? {
            report.read += rows.len() as u64;
            // A parked record is written to neither side until a person settles it.
            let before = rows.len();
            rows.retain(|r| !parked.contains(&r.key));
            report.held += (before - rows.len()) as u64;
            let keys: Vec<String> = rows.iter().map(|r| r.key.clone()).collect();
            let links = self.store.links_for(&sync.name, &keys).await?;
            let parents = parent_links(&self.store, sync, &rows).await?;
            let quarantined = self.store.quarantined_among(&sync.name, &keys).await?;
            let input = PlanInput {
                sync,
                links: &links,
                parents: &parents,
                quarantined: &quarantined,
                // A small change set is someone's edit; let it overtake a backfill.
                priority: if captured.full { 0 } else { 10 },
                now_ms: self.clock.now_ms(),
                assume_parents: false,
            };
            let p = plan(&input, &rows);
            report.unchanged += p.unchanged;
            report.invalid += p.invalid;
            report.held += p.held;
            report.queued += p.jobs.len() as u64;
            self.store.enqueue(&p.jobs, self.clock.now_ms()).await?;
            self.store.quarantine(&p.quarantine).await?;
            self.store.clear_quarantine(&sync.name, &p.clear).await?;
        }
        if !captured.vanished.is_empty() {
            tracing::info!(sync = %sync.name, count = captured.vanished.len(), "rows deleted in the app; their CRM records are kept (deletion sync is not enabled)");
        }
        // Every change up to the cursor is durably queued (or quarantined): now it may move.
        if let Some((mechanism, value)) = &captured.cursor {
            self.store.set_cursor(&sync.name, mechanism, value).await?;
        }
        Ok(captured.full)
    }

    async fn push_sync(
        &self,
        sync: &SyncConfig,
        budget: &mut Budget,
        run: &mut RunReport,
        progress: &dyn Progress,
    ) -> Result<SyncReport, EngineError> {
        let object = Self::object_of(sync)?;
        let mut report = SyncReport {
            sync: sync.name.clone(),
            ..Default::default()
        };
        let t = Instant::now();
        self.queue_changes(sync, &mut report).await?;
        tracing::info!(sync = %sync.name, read = report.read, queued = report.queued, unchanged = report.unchanged, ms = t.elapsed().as_millis() as u64, "changes captured and queued");
        let t = Instant::now();
        let pending = self.store.counts(&sync.name).await?.pending;
        progress.planned(&sync.name, pending.max(0) as u64);

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
        let batch = self.crm.max_batch().max(1);
        let in_flight = self.config.raw.crm.max_in_flight.max(1) as usize;
        // Worst case per batch: one upsert plus one association call per target, and the
        // read before writing two-way records (crate::recheck).
        let reads = i64::from(!crate::apply::pulled_fields(sync).is_empty());
        let per_batch = 1 + parent_objects.len() as i64 + reads;
        loop {
            if self.halted().await? {
                tracing::info!(sync = %sync.name, "paused or stopping: no new batch; queued work is kept");
                break;
            }
            let affordable = (budget.remaining() / per_batch) as usize;
            if affordable == 0 {
                run.paused_until_ms = Some(budget.resets_at_ms());
                tracing::warn!(sync = %sync.name, remaining = budget.remaining(), "today's API budget share is spent; delivery resumes after the daily reset");
                break;
            }
            let jobs = self
                .store
                .claim(
                    &sync.name,
                    batch * in_flight.min(affordable),
                    LEASE,
                    self.clock.now_ms(),
                )
                .await?;
            if jobs.is_empty() {
                break;
            }
            let jobs = self.recheck_before_push(sync, object, jobs).await?;
            if jobs.is_empty() {
                continue;
            }
            let now = self.clock.now_ms();
            let batches: Vec<&[Job]> = jobs.chunks(batch).collect();
            let outcomes =
                join_all(batches.iter().map(|b| deliver(&self.crm, &target, b, now))).await;
            budget.used += self.flush_calls().await?;
            let mut fatal = None;
            for (b, outcome) in batches.iter().zip(outcomes) {
                match outcome {
                    Ok(o) => {
                        settle(
                            &self.store,
                            sync,
                            object,
                            b,
                            &o,
                            now,
                            self.config.raw.crm.max_attempts,
                            &mut report,
                        )
                        .await?;
                        self.record_pushed_bases(sync, b, &o.delivered).await?;
                        if let Some(col) = &sync.write_back_column {
                            let pairs: Vec<(String, String)> = o
                                .delivered
                                .iter()
                                .map(|d| (d.local_id.clone(), d.crm_id.clone()))
                                .collect();
                            self.source
                                .write_back(&sync.table, &sync.key, col, &pairs)
                                .await?;
                        }
                    }
                    Err(e) => {
                        // Hand the jobs back untouched: the pass stops, nothing is lost.
                        let ids: Vec<i64> = b.iter().map(|j| j.id).collect();
                        self.store.fail(&ids, &e.to_string(), now, false).await?;
                        fatal = Some(e);
                    }
                }
                progress.advanced(&sync.name, b.len() as u64);
            }
            if let Some(e) = fatal {
                return Err(e);
            }
        }
        tracing::info!(sync = %sync.name, created = report.created, updated = report.updated, ms = t.elapsed().as_millis() as u64, "delivered");
        progress.finished(&sync.name, &report);
        Ok(report)
    }
}

impl<C: Crm, S: Store + PullStore> Engine<C, S> {
    /// After a delivery, the values of two-way fields the CRM accepted are the new bases.
    async fn record_pushed_bases(
        &self,
        sync: &SyncConfig,
        jobs: &[Job],
        delivered: &[Delivered],
    ) -> Result<(), EngineError> {
        let pulled: Vec<&str> = crate::apply::pulled_fields(sync)
            .into_iter()
            .map(|(_, f)| f.crm.as_str())
            .collect();
        if pulled.is_empty() {
            return Ok(());
        }
        let by_id: HashMap<i64, &Job> = jobs.iter().map(|j| (j.id, j)).collect();
        let mut bases = Vec::new();
        for d in delivered {
            let Some(job) = by_id.get(&d.job_id) else {
                continue;
            };
            let Ok(payload) = serde_json::from_str::<crate::plan::Payload>(&job.payload) else {
                continue;
            };
            for p in &pulled {
                let value = payload.properties.get(*p).cloned().unwrap_or_default();
                bases.push((d.local_id.clone(), p.to_string(), value));
            }
        }
        self.store.set_bases(&sync.name, &bases).await?;
        Ok(())
    }
}

/// Checks the source tables and columns every sync reads, naming what is missing.
pub async fn check_source(config: &Config, source: &SqliteSource) -> Result<(), EngineError> {
    for s in &config.raw.syncs {
        let mut cols = crate::capture::columns(s);
        cols.push(&s.key);
        if let Some(c) = &s.updated_at_column {
            cols.push(c);
        }
        if let Some(c) = &s.write_back_column {
            cols.push(c);
        }
        if let Some(c) = &s.crm_deleted_column {
            cols.push(c);
        }
        source
            .check_columns(&s.table, &cols)
            .await
            .map_err(|e| EngineError::Config(format!("sync `{}`: {e}", s.name)))?;
    }
    Ok(())
}

/// Installs change-capture triggers on every table synced with `capture = "trigger"`;
/// returns the tables it installed on.
pub async fn install(config: &Config, source: &SqliteSource) -> Result<Vec<String>, EngineError> {
    check_source(config, source).await?;
    let mut watched: HashMap<(&str, &str), BTreeSet<&str>> = HashMap::new();
    for s in &config.raw.syncs {
        if s.capture == crmsync_core::config::Capture::Trigger {
            watched
                .entry((&s.table, &s.key))
                .or_default()
                .extend(crate::capture::columns(s));
        }
    }
    let mut done = Vec::new();
    for ((table, key), cols) in watched {
        let cols: Vec<&str> = cols.into_iter().collect();
        source.install_triggers(table, key, &cols).await?;
        done.push(table.to_string());
    }
    done.sort();
    Ok(done)
}

/// The links of the records `rows` associate to, by target sync name and key: what planning
/// needs to put the parents' CRM ids into the children's payloads.
pub(crate) async fn parent_links<S: Store>(
    store: &S,
    sync: &SyncConfig,
    rows: &[SourceRow],
) -> Result<HashMap<String, HashMap<String, Link>>, StoreError> {
    let mut parents: HashMap<String, HashMap<String, Link>> = HashMap::new();
    for (column, target) in &sync.associate {
        let parent_keys: Vec<String> = rows
            .iter()
            .filter_map(|r| r.values.get(column).cloned().flatten())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let found = store.links_for(target, &parent_keys).await?;
        parents.entry(target.clone()).or_default().extend(found);
    }
    Ok(parents)
}
