//! `crmsync run`: the long-running two-way loop. Each round applies stored webhook events, polls
//! the CRM when `[run] poll_interval_ms` has passed (and `poll` is on), lists archived records
//! and reconciles when those are due, then pushes. Inbound comes first so that a field changed
//! on both sides is seen as a conflict before our push could overwrite the CRM's value. SIGTERM
//! or Ctrl-C lets the current batch finish, then exits 0. While `crmsync pause` is on, no batch
//! of either direction starts and queued work is kept. With `[webhooks] listen` (or
//! `--webhook-listen`), a stored webhook event starts the next round at once.

use super::ConfigArg;
use super::common::{engine, load_config};
use crate::webhook;
use crmsync_core::config::Secrets;
use crmsync_engine::NoProgress;
use crmsync_store::PullStore;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Stop after this many rounds (for scripts and tests); runs until stopped otherwise.
    #[arg(long)]
    pub rounds: Option<u64>,
    /// Also receive HubSpot webhooks on this address (`POST /hubspot/webhooks`); their events
    /// are applied at once. Overrides `[webhooks] listen`.
    #[arg(long)]
    pub webhook_listen: Option<std::net::SocketAddr>,
    /// The environment variable holding the HubSpot app's client secret (signs webhooks).
    /// Overrides `[webhooks] secret_env` / `secret_file` [default: HUBSPOT_CLIENT_SECRET].
    #[arg(long)]
    pub webhook_secret_env: Option<String>,
    /// The webhook URL as configured in HubSpot, when it differs from `http://<Host header>/hubspot/webhooks`
    /// (e.g. behind a TLS proxy). Overrides `[webhooks] url`.
    #[arg(long)]
    pub webhook_url: Option<String>,
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config.config, Secrets::Required)?;
    let interval = Duration::from_millis(config.raw.run.poll_interval_ms.max(1));
    let engine = engine(config).await?;
    let wake = Arc::new(Notify::new());
    webhook::start(
        &engine.config,
        webhook::Overrides {
            listen: args.webhook_listen,
            secret_env: args.webhook_secret_env.clone(),
            url: args.webhook_url.clone(),
        },
        engine.store.clone(),
        wake.clone(),
    )
    .await?;
    let stop = engine.stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown asked: finishing the current batch");
        eprintln!("stopping after the current batch");
        stop.store(true, Ordering::SeqCst);
    });
    if engine.config.raw.run.poll {
        eprintln!(
            "crmsync run: polling the CRM and pushing app changes every {} ms (Ctrl-C stops)",
            interval.as_millis()
        );
    } else {
        eprintln!(
            "crmsync run: polling is off; applying webhook events as they come and pushing app changes every {} ms (Ctrl-C stops)",
            interval.as_millis()
        );
    }
    let poll = engine.config.raw.run.poll;
    let mut round = 0u64;
    let mut was_paused = false;
    let mut next_poll = tokio::time::Instant::now();
    while !engine.stopping() && args.rounds.is_none_or(|n| round < n) {
        round += 1;
        if engine.store.paused().await? {
            if !was_paused {
                eprintln!("paused (crmsync resume continues); queued work is kept");
            }
            was_paused = true;
        } else {
            was_paused = false;
            match engine.apply_webhook_events().await {
                Ok(r) => report_inbound("webhooks", &r),
                Err(e) => eprintln!("applying webhook events failed, retried next round: {e}"),
            }
            if poll && tokio::time::Instant::now() >= next_poll {
                next_poll = tokio::time::Instant::now() + interval;
                match engine.pull_once().await {
                    Ok(r) => report_inbound("poll", &r),
                    Err(e) => eprintln!("poll failed, retried next round: {e}"),
                }
            }
            if poll {
                match engine.archive_check_due().await {
                    Ok(true) => match engine.check_archived_once().await {
                        Ok(r) => report_inbound("deletions", &r),
                        Err(e) => {
                            eprintln!("listing archived records failed, retried next round: {e}")
                        }
                    },
                    Ok(false) => {}
                    Err(e) => eprintln!("archived-records check failed: {e}"),
                }
            }
            match engine.reconcile_due().await {
                Ok(true) => match engine.reconcile_once().await {
                    Ok(r) => eprintln!(
                        "reconciled: {} records read, drift repaired: {}",
                        r.checked,
                        r.drift()
                    ),
                    Err(e) => eprintln!("reconciliation failed, retried next round: {e}"),
                },
                Ok(false) => {}
                Err(e) => eprintln!("reconciliation check failed: {e}"),
            }
            match engine.push_once(&NoProgress).await {
                Ok(r) => {
                    let sent: u64 = r.syncs.iter().map(|s| s.created + s.updated).sum();
                    if sent > 0 {
                        eprintln!("pushed: {sent} records in {} API calls", r.calls);
                    }
                }
                Err(e) => eprintln!("push failed, retried next round: {e}"),
            }
        }
        if engine.stopping() || args.rounds.is_some_and(|n| round >= n) {
            break;
        }
        // Wait for the next poll (or, with polling off, one interval), waking early for a
        // shutdown or a webhook event.
        let deadline = if poll {
            next_poll.max(tokio::time::Instant::now() + Duration::from_millis(1))
        } else {
            tokio::time::Instant::now() + interval
        };
        while tokio::time::Instant::now() < deadline && !engine.stopping() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50).min(interval)) => {}
                _ = wake.notified() => break,
            }
        }
    }
    eprintln!("crmsync run stopped");
    Ok(ExitCode::SUCCESS)
}

/// One line about inbound work that changed something.
fn report_inbound(what: &str, r: &crmsync_engine::PullReport) {
    if r.applied + r.parked + r.deleted + r.deletions_held + r.restored + r.merged + r.shared == 0 {
        return;
    }
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
    ] {
        if n > 0 {
            parts.push(format!("{n} {label}"));
        }
    }
    eprintln!("{what}: {}", parts.join(", "));
}
