//! What a person sees of the engine's telemetry on a terminal: progress bars for a one-shot
//! pass ([`Bars`]), and the status lines of `crmsync run` ([`RunLines`]). Both subscribe to the
//! engine's typed events; nothing here changes what the engine does.
//!
//! With `--log-format json` stderr is one JSON object per line and nothing else: bars are not
//! drawn, and the lines meant for a person become info-level log events ([`announce`]).

use crmsync_engine::telemetry::{Event, InboundSource, LogTelemetry, Telemetry};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Whether logs are JSON lines (set once, with the process's log subscriber, which is global
/// too).
static JSON_LOGS: OnceLock<bool> = OnceLock::new();

/// Records the log format chosen on the command line.
pub fn set_json_logs(on: bool) {
    let _ = JSON_LOGS.set(on);
}

fn json_logs() -> bool {
    JSON_LOGS.get().copied().unwrap_or(false)
}

/// A line for the person watching stderr; an info-level log event when logs are JSON.
pub fn announce(message: &str) {
    if json_logs() {
        tracing::info!("{message}");
    } else {
        eprintln!("{message}");
    }
}

/// `warning: …` on stderr; a warn-level log event when logs are JSON.
pub fn warn_line(message: &str) {
    if json_logs() {
        tracing::warn!("{message}");
    } else {
        eprintln!("warning: {message}");
    }
}

/// `error: …` on stderr; an error-level log event when logs are JSON.
pub fn error_line(message: &str) {
    if json_logs() {
        tracing::error!("{message}");
    } else {
        eprintln!("error: {message}");
    }
}

/// indicatif bars fed by the engine's events: one per sync, drawn on stderr when it is a
/// terminal.
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    pub fn new() -> Self {
        let multi = if json_logs() {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        } else {
            MultiProgress::new()
        };
        Bars {
            multi,
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn style() -> ProgressStyle {
        ProgressStyle::with_template(
            "{prefix:>10} [{bar:40.cyan/blue}] {pos:>6}/{len:<6} {per_sec:>10} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
    }

    fn bar(&self, sync: &str) -> ProgressBar {
        let Ok(mut bars) = self.bars.lock() else {
            return ProgressBar::hidden();
        };
        bars.entry(sync.to_string())
            .or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new(0));
                bar.set_style(Self::style());
                bar.set_prefix(sync.to_string());
                bar
            })
            .clone()
    }
}

impl Telemetry for Bars {
    fn emit(&self, event: &Event) {
        match event {
            // Records held for a parent are planned again once it is in: the bar grows.
            Event::Planned { sync, to_send } => self.bar(sync).inc_length(*to_send),
            Event::Settled {
                sync,
                created,
                updated,
                rejected,
                failed,
                ..
            } => self.bar(sync).inc(created + updated + rejected + failed),
            Event::Delivered { sync, report } => {
                self.bar(sync).set_message(format!(
                    "{} created, {} updated",
                    report.created, report.updated
                ));
            }
            _ => {}
        }
        LogTelemetry.emit(event);
    }
}

impl Bars {
    /// Ends every bar (after the pass).
    pub fn finish(&self) {
        if let Ok(bars) = self.bars.lock() {
            for b in bars.values() {
                b.finish();
            }
        }
    }
}

/// The lines `crmsync run` prints on stderr: what changed, what failed, pauses. Idle rounds
/// print nothing. With JSON logs, only the log events.
#[derive(Debug, Default)]
pub struct RunLines;

impl Telemetry for RunLines {
    fn emit(&self, event: &Event) {
        // JSON logs carry the same events, structured, through `LogTelemetry`.
        if json_logs() {
            LogTelemetry.emit(event);
            return;
        }
        match event {
            Event::Delivered { sync, report } if report.created + report.updated > 0 => {
                eprintln!(
                    "pushed: {} {} records ({} created, {} updated)",
                    report.created + report.updated,
                    sync,
                    report.created,
                    report.updated
                );
            }
            Event::Inbound {
                source,
                sync,
                report: r,
            } if r.changed() => {
                let mut parts = Vec::new();
                if r.fetched + r.applied > 0 {
                    parts.push(format!(
                        "{} CRM changes read, {} app rows updated",
                        r.fetched, r.applied
                    ));
                }
                for (n, label) in [
                    (r.parked, "conflicts parked"),
                    (r.kept_app, "kept the app's value"),
                    (r.deleted, "deleted in the CRM"),
                    (
                        r.deletions_held,
                        "deletions held by the mass-deletion guard (crmsync deletions)",
                    ),
                    (r.restored, "restored"),
                    (r.merged, "merged"),
                    (r.shared, "merged into a record another app record maps to"),
                    (r.repushed, "pushed again"),
                ] {
                    if n > 0 {
                        parts.push(format!("{n} {label}"));
                    }
                }
                let what = match source {
                    InboundSource::Reconcile => "reconciled",
                    other => other.as_str(),
                };
                eprintln!("{what} ({sync}): {}", parts.join(", "));
            }
            Event::Reconciled { checked, drift } if *checked > 0 => {
                eprintln!("reconciled: {checked} records read, drift repaired: {drift}");
            }
            Event::TaskFailed { task, error } => {
                eprintln!("{task} failed, retried next round: {error}");
            }
            Event::BudgetPaused { .. } => {
                eprintln!(
                    "today's API budget share is spent; delivery resumes after the daily reset"
                );
            }
            Event::Paused { paused: true } => {
                eprintln!("paused (crmsync resume continues); queued work is kept");
            }
            Event::Paused { paused: false } => eprintln!("resumed"),
            Event::LeaseLost { sync, jobs } => {
                eprintln!(
                    "{jobs} {sync} jobs were taken over by another worker after this one's lease ran out"
                );
            }
            Event::Stopping => eprintln!("stopping after the current batch"),
            _ => {}
        }
        LogTelemetry.emit(event);
    }
}
