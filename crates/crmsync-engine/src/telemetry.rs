//! Typed telemetry: every countable happening of the engine is an [`Event`], emitted once to a
//! [`Telemetry`] subscriber. Logs, progress bars, the `run` command's status lines (and later
//! metrics and the dashboard) subscribe instead of the engine printing. Events carry only
//! low-cardinality facts (sync names, counts, kinds, durations), never record ids or values.

use crate::report::{PullReport, SyncReport};
use std::sync::Arc;

/// Where inbound work came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundSource {
    /// Webhook events read back (through hints).
    Webhooks,
    /// The CRM's search for changed records.
    Poll,
    /// The CRM's listing of archived (deleted) records.
    Archive,
    /// A reconciliation pass: every linked record read back.
    Reconcile,
    /// CRM edits found just before a push (read before write).
    Recheck,
}

impl InboundSource {
    pub fn as_str(self) -> &'static str {
        match self {
            InboundSource::Webhooks => "webhooks",
            InboundSource::Poll => "poll",
            InboundSource::Archive => "deletions",
            InboundSource::Reconcile => "reconcile",
            InboundSource::Recheck => "recheck",
        }
    }
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// One HTTP attempt to the CRM (reported when the call log is written, after each stage):
    /// its connection, operation (`upsert`, `read`, ...), status (`None`: no answer arrived).
    CrmCall {
        connection: String,
        operation: String,
        status: Option<u16>,
        rate_limited: bool,
        latency_ms: u64,
    },
    /// Stored webhook events turned into hints (`applied`), and ones no sync could use
    /// (`skipped`: another object, a property not pulled, an unparseable body).
    WebhooksApplied { applied: u64, skipped: u64 },
    /// A worker started (its owner token, the state backend).
    WorkerStarted { worker: String, state: String },
    /// A worker took or lost the lead of a periodic task.
    Leader { task: String, held: bool },
    /// Capture of one sync planned `to_send` records (queued now).
    Planned { sync: String, to_send: u64 },
    /// A capture of one sync finished.
    Captured {
        sync: String,
        report: SyncReport,
        elapsed_ms: u64,
    },
    /// Records of a capture skipped because an inbound commit moved them meanwhile (they are
    /// planned again from the new state).
    StalePlans { sync: String, records: u64 },
    /// A batch of `sync` was settled: delivered, rejected or put back.
    Settled {
        sync: String,
        records: u64,
        created: u64,
        updated: u64,
        rejected: u64,
        failed: u64,
        /// Of the failed, the jobs out of retries (dead: they wait for `crmsync retry`).
        dead: u64,
    },
    /// Outcomes dropped because this worker's lease on the jobs ran out and another worker
    /// took them (they are delivered again by it; upserts make that harmless).
    LeaseLost { sync: String, jobs: u64 },
    /// Jobs replaced while in flight were not sent (their new payload goes next).
    Superseded { sync: String, jobs: u64 },
    /// A sync finished delivering for now.
    Delivered { sync: String, report: SyncReport },
    /// Today's API budget share is spent: delivery waits for the reset.
    BudgetPaused { remaining: i64, until_ms: i64 },
    /// Inbound work that changed something (or read something).
    Inbound {
        source: InboundSource,
        sync: String,
        report: PullReport,
    },
    /// CRM values that cannot be mapped back into the app (e.g. a deal stage without a status).
    Unmappable {
        sync: String,
        field: String,
        count: u64,
        example: String,
    },
    /// A sync stopped delivering: the CRM refused it for a reason every record shares (a
    /// missing property, a constant value the portal lacks). Other syncs go on.
    SyncStopped { sync: String, error: String },
    /// A sync's mapping changed since its records were planned (or a resync was asked for):
    /// this capture re-plans every row.
    MappingChanged { sync: String },
    /// App values of a field that failed a rule marked `on_invalid = "skip_field"`: their
    /// records were sent without the field.
    FieldsSkipped {
        sync: String,
        field: String,
        rule: String,
        count: u64,
        /// One record key and why, as an example.
        example: String,
    },
    /// The app database refused the row for a record created in the CRM (`on_crm_create =
    /// "insert"`): it is not tried again until the record or the config changes, or `crmsync
    /// retry` asks.
    InsertRefused {
        sync: String,
        crm_id: String,
        reason: String,
    },
    /// CRM ids written into the app's `write_back_column`.
    WrittenBack { sync: String, records: u64 },
    /// Rows removed from `table`: change-log entries every sync has read, or state rows past
    /// their retention (`webhook_events`, `calls`).
    Pruned { table: String, changes: u64 },
    /// A reconciliation pass finished.
    Reconciled { checked: u64, drift: u64 },
    /// A task failed; it is retried on its next round.
    TaskFailed { task: String, error: String },
    /// The kill switch is on (or off again).
    Paused { paused: bool },
    /// The worker is stopping (Ctrl-C, SIGTERM): current batches finish.
    Stopping,
}

/// A subscriber. `emit` must be cheap and must not block: buffer, count or log.
pub trait Telemetry: Send + Sync {
    fn emit(&self, event: &Event);
}

/// Logs every event through `tracing` (info for work done, warn for trouble, debug for the
/// rest), with its fields structured.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogTelemetry;

impl Telemetry for LogTelemetry {
    fn emit(&self, event: &Event) {
        match event {
            Event::WorkerStarted { worker, state } => {
                tracing::info!(worker, state, "worker started")
            }
            Event::Leader { task, held } => tracing::debug!(task, held, "leader lease"),
            // The call log (and tracing at the transport) has them; one line per call would
            // drown the log.
            Event::CrmCall { .. } => {}
            Event::WebhooksApplied { applied, skipped } => {
                tracing::debug!(applied, skipped, "webhook events turned into read-backs")
            }
            Event::Planned { sync, to_send } => tracing::debug!(sync, to_send, "planned"),
            Event::Captured {
                sync,
                report,
                elapsed_ms,
            } => tracing::debug!(
                sync,
                read = report.read,
                queued = report.queued,
                unchanged = report.unchanged,
                invalid = report.invalid,
                held = report.held,
                ms = elapsed_ms,
                "changes captured and queued"
            ),
            Event::StalePlans { sync, records } => tracing::debug!(
                sync,
                records,
                "plans made stale by an inbound commit were skipped"
            ),
            Event::Settled { .. } => {}
            Event::LeaseLost { sync, jobs } => tracing::warn!(
                sync,
                jobs,
                "the lease on delivered jobs ran out and another worker took them: their outcome was dropped"
            ),
            Event::Superseded { sync, jobs } => {
                tracing::debug!(sync, jobs, "jobs replaced in flight were not sent")
            }
            Event::Delivered { sync, report } => {
                if report.created + report.updated + report.rejected + report.failed > 0 {
                    tracing::info!(
                        sync,
                        created = report.created,
                        updated = report.updated,
                        rejected = report.rejected,
                        failed = report.failed,
                        "delivered"
                    )
                }
            }
            Event::BudgetPaused {
                remaining,
                until_ms,
            } => tracing::warn!(
                remaining,
                until_ms,
                "today's API budget share is spent; delivery resumes after the daily reset"
            ),
            Event::Inbound {
                source,
                sync,
                report,
            } => {
                if report.changed() {
                    tracing::info!(
                        source = source.as_str(),
                        sync,
                        applied = report.applied,
                        inserted = report.inserted,
                        insert_refused = report.insert_refused,
                        parked = report.parked,
                        deleted = report.deleted,
                        held = report.deletions_held,
                        merged = report.merged,
                        "inbound changes applied"
                    )
                }
            }
            Event::Unmappable {
                sync,
                field,
                count,
                example,
            } => tracing::warn!(
                sync,
                field,
                count,
                example,
                "CRM values with no way back into the app were left out"
            ),
            Event::InsertRefused {
                sync,
                crm_id,
                reason,
            } => tracing::warn!(
                sync,
                crm_id,
                reason,
                "the app database refused the row of a record created in the CRM; see `crmsync status` and `crmsync explain`"
            ),
            Event::MappingChanged { sync } => tracing::info!(
                sync,
                "the mapping changed since the last sync (or a re-plan was asked for): every record is planned again"
            ),
            Event::SyncStopped { sync, error } => tracing::error!(
                sync,
                error,
                "sync stopped: the CRM refuses its mapping; the other syncs go on"
            ),
            Event::FieldsSkipped {
                sync,
                field,
                rule,
                count,
                example,
            } => tracing::warn!(
                sync,
                field,
                rule,
                count,
                example,
                "records sent without a field that failed its rule (on_invalid = \"skip_field\")"
            ),
            Event::WrittenBack { sync, records } => {
                tracing::debug!(sync, records, "CRM ids written back")
            }
            Event::Pruned { table, changes } => {
                tracing::debug!(table, rows = changes, "old rows pruned")
            }
            Event::Reconciled { checked, drift } => {
                if *checked > 0 {
                    tracing::info!(checked, drift, "reconciled")
                } else {
                    tracing::debug!(checked, drift, "reconciled")
                }
            }
            Event::TaskFailed { task, error } => {
                tracing::warn!(task, error, "task failed; retried next round")
            }
            Event::Paused { paused } => tracing::info!(paused, "kill switch"),
            Event::Stopping => tracing::info!("stopping after the current batches"),
        }
    }
}

/// Sends every event to several subscribers, in order.
#[derive(Clone, Default)]
pub struct Fanout(pub Vec<Arc<dyn Telemetry>>);

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fanout({} subscribers)", self.0.len())
    }
}

impl Telemetry for Fanout {
    fn emit(&self, event: &Event) {
        for t in &self.0 {
            t.emit(event);
        }
    }
}
