//! The Prometheus metrics of crmsync: every name and label defined here, once. Counters move
//! with the engine's typed events ([`MetricsTelemetry`]) and the webhook receiver; gauges are
//! read from the state database when `/metrics` is scraped ([`refresh`]), so every worker of
//! one state reports the same gauges and its own counters.
//!
//! Labels are low-cardinality only: connection, operation, status, sync, direction, outcome,
//! state, window, reason. Never a record id, a key or a value.

use crmsync_engine::status::Status;
use crmsync_engine::telemetry::{Event, Telemetry};
use crmsync_store::QueueCounts;
use metrics::{counter, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// HTTP attempts to the CRM, by `connection`, `operation` and `status` (`none`: no answer).
pub const CRM_REQUESTS: &str = "crmsync_crm_requests_total";
/// Attempts the CRM answered with a rate limit, by `connection`.
pub const CRM_RATE_LIMITED: &str = "crmsync_crm_rate_limited_total";
/// Records settled, by `sync`, `direction` (`push`, `pull`) and `outcome`.
pub const RECORDS: &str = "crmsync_records_total";
/// Queue jobs now, by `sync` and `state` (`pending`, `dead`).
pub const QUEUE_JOBS: &str = "crmsync_queue_jobs";
/// App records now, by `sync` and `state` (`synced`, `pending`, `failed`, `quarantined`, `held`).
pub const SYNC_RECORDS: &str = "crmsync_sync_records";
/// Seconds since the oldest pending job of `sync` was queued (0 when none is pending).
pub const OLDEST_PENDING: &str = "crmsync_oldest_pending_change_seconds";
/// API calls left, by `connection` and `window` (`daily`: the day's allowance; `interval`:
/// the burst window, by the calls logged in its last length).
pub const BUDGET_REMAINING: &str = "crmsync_api_budget_remaining";
/// The allowance of that window.
pub const BUDGET_LIMIT: &str = "crmsync_api_budget_limit";
/// Conflicts parked for review.
pub const CONFLICTS_OPEN: &str = "crmsync_conflicts_open";
/// Deletions held by the mass-deletion guard.
pub const DELETIONS_HELD: &str = "crmsync_deletions_held";
/// Stored webhook events not applied yet.
pub const WEBHOOK_PENDING: &str = "crmsync_webhook_events_pending";
/// Webhook events, by `outcome`: `stored`, `duplicate` (at the receiver), `applied`,
/// `skipped` (by the engine).
pub const WEBHOOK_EVENTS: &str = "crmsync_webhook_events_total";
/// Webhook requests refused, by `reason` (`signature`, `body`, `store`).
pub const WEBHOOK_REFUSED: &str = "crmsync_webhook_requests_refused_total";
/// 1 while the kill switch is on.
pub const PAUSED: &str = "crmsync_paused";
/// 1 for a sync stopped by a schema error, by `sync`.
pub const SYNC_STOPPED: &str = "crmsync_sync_stopped";
/// Periodic tasks that failed (retried next round), by `task` kind.
pub const TASK_FAILURES: &str = "crmsync_task_failures_total";
/// Alerts raised, by `kind`.
pub const ALERTS: &str = "crmsync_alerts_total";
/// 1, with the `version` label.
pub const BUILD_INFO: &str = "crmsync_build_info";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's recorder (once) and returns its handle; `None` when another
/// recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new().install_recorder().ok()?;
            describe();
            gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            Some(handle)
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge};
    describe_counter!(CRM_REQUESTS, "HTTP attempts to the CRM");
    describe_counter!(CRM_RATE_LIMITED, "CRM answers that were rate limits");
    describe_counter!(RECORDS, "Records settled, by direction and outcome");
    describe_gauge!(QUEUE_JOBS, "Queue jobs, by state");
    describe_gauge!(SYNC_RECORDS, "App records, by sync state");
    describe_gauge!(OLDEST_PENDING, "Age of the oldest pending change");
    describe_gauge!(BUDGET_REMAINING, "API calls left in the window");
    describe_gauge!(BUDGET_LIMIT, "API calls allowed in the window");
    describe_gauge!(CONFLICTS_OPEN, "Conflicts parked for review");
    describe_gauge!(DELETIONS_HELD, "Deletions held by the mass-deletion guard");
    describe_gauge!(WEBHOOK_PENDING, "Stored webhook events not applied yet");
    describe_counter!(WEBHOOK_EVENTS, "Webhook events, by outcome");
    describe_counter!(WEBHOOK_REFUSED, "Webhook requests refused, by reason");
    describe_gauge!(PAUSED, "1 while the kill switch is on");
    describe_gauge!(SYNC_STOPPED, "1 for a sync stopped by a schema error");
    describe_counter!(TASK_FAILURES, "Periodic tasks that failed");
    describe_gauge!(BUILD_INFO, "The crmsync version");
    describe_counter!(ALERTS, "Alerts raised, by kind");
}

/// Counts a webhook delivery the receiver stored (`new` of `events` were not seen before).
pub fn webhook_stored(events: u64, new: u64) {
    counter!(WEBHOOK_EVENTS, "outcome" => "stored").increment(new);
    counter!(WEBHOOK_EVENTS, "outcome" => "duplicate").increment(events.saturating_sub(new));
}

/// Counts a webhook request the receiver refused.
pub fn webhook_refused(reason: &'static str) {
    counter!(WEBHOOK_REFUSED, "reason" => reason).increment(1);
}

/// Moves the counters with the engine's events.
#[derive(Debug, Default, Clone, Copy)]
pub struct MetricsTelemetry;

impl Telemetry for MetricsTelemetry {
    fn emit(&self, event: &Event) {
        match event {
            Event::CrmCall {
                connection,
                operation,
                status,
                rate_limited,
                ..
            } => {
                let status = status.map_or_else(|| "none".to_string(), |s| s.to_string());
                counter!(CRM_REQUESTS, "connection" => connection.clone(), "operation" => operation.clone(), "status" => status)
                    .increment(1);
                if *rate_limited {
                    counter!(CRM_RATE_LIMITED, "connection" => connection.clone()).increment(1);
                }
            }
            Event::Settled {
                sync,
                created,
                updated,
                rejected,
                failed,
                ..
            } => {
                for (outcome, n) in [
                    ("created", created),
                    ("updated", updated),
                    ("rejected", rejected),
                    ("failed", failed),
                ] {
                    if *n > 0 {
                        counter!(RECORDS, "sync" => sync.clone(), "direction" => "push", "outcome" => outcome)
                            .increment(*n);
                    }
                }
            }
            Event::Captured { sync, report, .. } if report.invalid > 0 => {
                counter!(RECORDS, "sync" => sync.clone(), "direction" => "push", "outcome" => "invalid")
                    .increment(report.invalid);
            }
            Event::Inbound { sync, report, .. } => {
                for (outcome, n) in [
                    ("applied", report.applied),
                    ("inserted", report.inserted),
                    ("parked", report.parked),
                    ("deleted", report.deleted),
                    ("held", report.deletions_held),
                    ("merged", report.merged),
                ] {
                    if n > 0 {
                        counter!(RECORDS, "sync" => sync.clone(), "direction" => "pull", "outcome" => outcome)
                            .increment(n);
                    }
                }
            }
            Event::WebhooksApplied { applied, skipped } => {
                counter!(WEBHOOK_EVENTS, "outcome" => "applied").increment(*applied);
                counter!(WEBHOOK_EVENTS, "outcome" => "skipped").increment(*skipped);
            }
            Event::TaskFailed { task, .. } => {
                // `capture:orders` -> `capture`: the kind, not the sync, keeps labels few.
                let kind = task.split(':').next().unwrap_or(task).to_string();
                counter!(TASK_FAILURES, "task" => kind).increment(1);
            }
            _ => {}
        }
    }
}

/// The interval window of a connection: its limit and the calls logged within it.
#[derive(Debug, Clone, Copy)]
pub struct Interval {
    pub limit: u32,
    pub used: i64,
}

/// Sets the gauges from a fresh status of the state database.
pub fn refresh(status: &Status, queues: &[(String, QueueCounts)], interval: Interval, now_ms: i64) {
    for s in &status.syncs {
        let sync = s.sync.clone();
        for (state, n) in [
            ("synced", s.synced),
            ("pending", s.pending),
            ("failed", s.failed),
            ("quarantined", s.quarantined),
            ("held", s.held),
        ] {
            gauge!(SYNC_RECORDS, "sync" => sync.clone(), "state" => state).set(n as f64);
        }
        gauge!(SYNC_STOPPED, "sync" => sync.clone()).set(f64::from(u8::from(s.stopped.is_some())));
    }
    for (sync, q) in queues {
        gauge!(QUEUE_JOBS, "sync" => sync.clone(), "state" => "pending").set(q.pending as f64);
        gauge!(QUEUE_JOBS, "sync" => sync.clone(), "state" => "dead").set(q.dead as f64);
        let lag = q
            .oldest_pending_at_ms
            .map_or(0.0, |at| (now_ms - at).max(0) as f64 / 1000.0);
        gauge!(OLDEST_PENDING, "sync" => sync.clone()).set(lag);
    }
    let connection = status.crm.kind.clone();
    gauge!(BUDGET_REMAINING, "connection" => connection.clone(), "window" => "daily")
        .set(status.crm.daily_budget_remaining as f64);
    gauge!(BUDGET_LIMIT, "connection" => connection.clone(), "window" => "daily")
        .set(status.crm.daily_budget as f64);
    gauge!(BUDGET_REMAINING, "connection" => connection.clone(), "window" => "interval")
        .set((i64::from(interval.limit) - interval.used).max(0) as f64);
    gauge!(BUDGET_LIMIT, "connection" => connection, "window" => "interval")
        .set(f64::from(interval.limit));
    gauge!(CONFLICTS_OPEN).set(status.two_way.open_conflicts as f64);
    gauge!(DELETIONS_HELD).set(status.two_way.deletions_held as f64);
    gauge!(WEBHOOK_PENDING).set(status.two_way.webhook_events_pending as f64);
    gauge!(PAUSED).set(f64::from(u8::from(status.two_way.paused)));
}
