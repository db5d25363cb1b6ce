//! One push pass over every sync, parents first: ensure the CRM has our key property, capture,
//! plan, queue, deliver until the queue holds nothing due, write CRM ids back if configured.
//! Every CRM call the client reports is appended to the call log after each batch.

use crate::capture::capture;
use crate::dispatch::{LEASE, Target, deliver, settle};
use crate::error::EngineError;
use crate::order::dependency_order;
use crate::plan::{PlanInput, plan};
use crate::progress::Progress;
use crate::report::{RunReport, SyncReport};
use crmsync_core::config::{Config, SyncConfig};
use crmsync_crm::{CallObserver, CallRecord, Crm, ObjectKind};
use crmsync_store::state::sqlite::now_ms;
use crmsync_store::{CallRow, SqliteSource, Store};
use std::collections::{BTreeSet, HashMap, HashSet};
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
}

impl<C: Crm, S: Store> Engine<C, S> {
    async fn flush_calls(&self) -> Result<(), EngineError> {
        let rows: Vec<CallRow> = self.calls.drain().into_iter().map(to_row).collect();
        self.store.record_calls(&rows).await?;
        Ok(())
    }

    fn object_of(sync: &SyncConfig) -> Result<ObjectKind, EngineError> {
        ObjectKind::parse(&sync.object).ok_or_else(|| {
            EngineError::Config(format!(
                "sync `{}`: unknown CRM object `{}`",
                sync.name, sync.object
            ))
        })
    }

    /// One pass over all syncs.
    pub async fn push_once(&self, progress: &dyn Progress) -> Result<RunReport, EngineError> {
        let started = Instant::now();
        let since = now_ms();
        check_source(&self.config, &self.source).await?;
        let syncs = &self.config.raw.syncs;
        let mut ensured = HashSet::new();
        for s in syncs {
            let object = Self::object_of(s)?;
            if ensured.insert((object, s.id_property.clone())) {
                let r = self.crm.ensure_id_property(object, &s.id_property).await;
                self.flush_calls().await?;
                r?;
            }
        }
        let mut report = RunReport::default();
        for i in dependency_order(syncs) {
            let r = self.push_sync(&syncs[i], progress).await;
            self.flush_calls().await?;
            report.syncs.push(r?);
        }
        let calls = self.store.call_summary(since).await?;
        report.calls = calls.calls as u64;
        report.upsert_calls = calls.upsert_calls as u64;
        report.upserted_records = calls.upserted as u64;
        report.association_calls = calls.association_calls as u64;
        report.retries = calls.retries as u64;
        report.rate_limited = calls.rate_limited as u64;
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    async fn push_sync(
        &self,
        sync: &SyncConfig,
        progress: &dyn Progress,
    ) -> Result<SyncReport, EngineError> {
        let object = Self::object_of(sync)?;
        let mut report = SyncReport {
            sync: sync.name.clone(),
            ..Default::default()
        };
        let captured = capture(&self.source, &self.store, sync).await?;
        report.read = captured.rows.len() as u64;
        if !captured.vanished.is_empty() {
            tracing::info!(sync = %sync.name, count = captured.vanished.len(), "rows deleted in the app; CRM records are kept (deletion sync is not enabled)");
        }
        let links = self.store.links(&sync.name).await?;
        let mut parents = HashMap::new();
        let mut parent_objects = HashMap::new();
        for target in sync.associate.values() {
            if let Some(t) = self.config.sync(target) {
                parents.insert(target.clone(), self.store.links(target).await?);
                parent_objects.insert(target.clone(), Self::object_of(t)?);
            }
        }
        let quarantined: HashSet<String> = self
            .store
            .quarantined(&sync.name)
            .await?
            .into_iter()
            .map(|q| q.local_id)
            .collect();
        let now = now_ms();
        let input = PlanInput {
            sync,
            links: &links,
            parents: &parents,
            quarantined: &quarantined,
            // A small change set is someone's edit; let it overtake a backfill.
            priority: if captured.full { 0 } else { 10 },
            now_ms: now,
        };
        let p = plan(&input, &captured.rows);
        report.unchanged = p.unchanged;
        report.invalid = p.invalid;
        report.held = p.held;
        report.queued = p.jobs.len() as u64;
        self.store.enqueue(&p.jobs).await?;
        self.store.quarantine(&p.quarantine).await?;
        self.store.clear_quarantine(&sync.name, &p.clear).await?;
        // The changes up to the cursor are durably queued (or quarantined): now it may move.
        if let Some((mechanism, value)) = &captured.cursor {
            self.store.set_cursor(&sync.name, mechanism, value).await?;
        }
        let pending = self.store.counts(&sync.name).await?.pending;
        progress.planned(&sync.name, pending.max(0) as u64);

        let target = Target {
            sync,
            object,
            parent_objects: &parent_objects,
        };
        loop {
            let jobs = self
                .store
                .claim(&sync.name, self.crm.max_batch(), LEASE)
                .await?;
            if jobs.is_empty() {
                break;
            }
            let now = now_ms();
            let outcome = deliver(&self.crm, &target, &jobs, now).await;
            self.flush_calls().await?;
            let outcome = match outcome {
                Ok(o) => o,
                Err(e) => {
                    // Hand the claimed jobs back untouched: the run stops, nothing is lost.
                    let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
                    self.store.fail(&ids, &e.to_string(), now, false).await?;
                    return Err(e);
                }
            };
            settle(&self.store, sync, object, &jobs, &outcome, now, &mut report).await?;
            if let Some(col) = &sync.write_back_column {
                let pairs: Vec<(String, String)> = outcome
                    .delivered
                    .iter()
                    .map(|d| (d.local_id.clone(), d.crm_id.clone()))
                    .collect();
                self.source
                    .write_back(&sync.table, &sync.key, col, &pairs)
                    .await?;
            }
            progress.advanced(&sync.name, jobs.len() as u64);
        }
        progress.finished(&sync.name, &report);
        Ok(report)
    }
}

/// Runs one pass with `engine` (convenience for callers holding the parts).
pub async fn push_once<C: Crm, S: Store>(
    engine: &Engine<C, S>,
    progress: &dyn Progress,
) -> Result<RunReport, EngineError> {
    engine.push_once(progress).await
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
