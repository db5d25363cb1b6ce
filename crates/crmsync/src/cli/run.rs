//! `crmsync run`: a worker syncing both ways until stopped (the engine's runtime: each sync's
//! leader applies CRM changes — webhook events, polls, deletions, merges — and captures app
//! changes; every worker delivers). Several `crmsync run` processes on one PostgreSQL state
//! database share the work; a SQLite state serves one. SIGTERM or Ctrl-C lets the current
//! batches finish, gives the worker's jobs and leases back, then exits 0. While `crmsync pause`
//! is on, no batch of either direction starts and queued work is kept. With `[webhooks]
//! listen` (or `--webhook-listen`), a stored webhook event is applied at once. With `[server]
//! listen` (or `--listen`), the operator server (dashboard, API, metrics, health) runs beside.

use super::ConfigArg;
use super::common::{engine, load_config, preflight_or_refuse};
use crate::ops;
use crate::progress::{RunLines, announce};
use crate::webhook;
use crmsync_core::config::Secrets;
use crmsync_engine::runtime::{RunOptions, run as run_worker};
use crmsync_engine::telemetry::Event;
use crmsync_engine::telemetry::Fanout;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Stop once every sync had this many rounds and nothing is due (for scripts and tests);
    /// runs until stopped otherwise.
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
    /// Serve the operator server on this address (`IP:PORT`, or a bare `PORT` for
    /// 127.0.0.1): the dashboard at `/`, the JSON API under `/api/`, `/metrics`, `/healthz`,
    /// `/readyz` (docs/operations.md). Overrides `[server] listen`. Any address but the
    /// loopback needs the operator token (CRMSYNC_SERVER_TOKEN).
    #[arg(long, value_name = "ADDR", value_parser = parse_listen_arg)]
    pub listen: Option<std::net::SocketAddr>,
    /// Start even when a mapped property does not exist in the CRM (or is read-only); without
    /// it, such a mapping is refused before anything is sent.
    #[arg(long)]
    pub force: bool,
}

/// `--listen`: `IP:PORT` or a bare port (the loopback).
fn parse_listen_arg(text: &str) -> Result<std::net::SocketAddr, String> {
    crmsync_core::config::raw::parse_listen(text).ok_or_else(|| {
        format!("`{text}` is not an address: write a port (9187, on 127.0.0.1) or IP:PORT")
    })
}

/// Logs every SIGHUP and otherwise ignores it: the config is read once at start (a reload
/// half-applied to running batches would be worse than a restart), and a closed terminal must
/// not stop a worker. `systemctl restart` applies a changed config.
fn ignore_hangups() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut hup) = signal(SignalKind::hangup()) {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    crate::progress::announce(
                        "SIGHUP: ignored; the config is read at start, so restart crmsync run to apply a change",
                    );
                }
            });
        }
    }
}

/// SIGTERM and Ctrl-C, caught from the first moment of `run`: a signal that arrives while the
/// worker is still starting (opening databases, preflight) is kept and stops it as soon as it
/// runs, instead of killing the process with the default action.
struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn install() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            StopSignals {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    /// Resolves on the first of them.
    async fn recv(mut self) {
        #[cfg(unix)]
        {
            let term = async {
                match &mut self.term {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            let int = async {
                match &mut self.int {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            };
            tokio::select! {
                _ = term => {}
                _ = int => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let signals = StopSignals::install();
    ignore_hangups();
    let config = load_config(&args.config.config, Secrets::Required)?;
    // Validated when the config was loaded.
    let listen = args.listen.or_else(|| config.raw.server.listen_addr());
    // Before anything opens: a server that may not listen is a usage error, not a late surprise.
    let server = match listen {
        Some(addr) => Some((addr, ops::operator_token(&config, addr)?)),
        None => None,
    };
    let mut engine = engine(config).await?;
    preflight_or_refuse(&engine, args.force).await?;
    let health = Arc::new(ops::health::Health::default());
    let metrics = ops::metrics::install();
    let alerts = ops::alerts::Alerts::new(&engine.config)?;
    engine.telemetry = Arc::new(Fanout(vec![
        Arc::new(RunLines),
        Arc::new(ops::metrics::MetricsTelemetry),
        health.clone(),
        alerts.clone(),
    ]));
    let engine = Arc::new(engine);
    alerts.watch(engine.clone());
    if let Some((addr, token)) = server {
        ops::start(addr, token, engine.clone(), metrics, health).await?;
    }
    webhook::start(
        &engine.config,
        webhook::Overrides {
            listen: args.webhook_listen,
            secret_env: args.webhook_secret_env.clone(),
            url: args.webhook_url.clone(),
        },
        engine.state.clone(),
        engine.wakes.webhooks.clone(),
        engine.cancel.clone(),
    )
    .await?;
    let stopper = engine.clone();
    tokio::spawn(async move {
        signals.recv().await;
        stopper.emit(Event::Stopping);
        stopper.cancel.cancel();
    });
    let run = &engine.config.raw.run;
    let poll = if run.poll {
        format!("polling the CRM every {} ms", run.poll_interval_ms)
    } else {
        "polling is off; applying webhook events as they come".to_string()
    };
    announce(&format!(
        "crmsync run: worker {} on a {} state; {poll}; app changes captured every {} ms (Ctrl-C stops)",
        engine.worker,
        crmsync_store::State::backend(&engine.state),
        run.capture_interval_ms
    ));
    run_worker(
        engine.clone(),
        RunOptions {
            rounds: args.rounds,
        },
    )
    .await?;
    announce("crmsync run stopped");
    Ok(ExitCode::SUCCESS)
}
