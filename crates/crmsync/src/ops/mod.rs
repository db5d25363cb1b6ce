//! The operator server of `crmsync run` (`--listen ADDR` or `[server] listen`): the dashboard
//! at `/`, the JSON API under `/api/` (OpenAPI at `/api/openapi.json`), Prometheus text at
//! `/metrics`, `/healthz` (alive) and `/readyz` (state database and CRM reachable). Served
//! through [`crate::serve`], so it keeps the same read timeouts and connection cap as the
//! webhook receiver.
//!
//! Access: reading from the loopback needs nothing; reading from any other address, and every
//! action (resolve, deletions, pause), needs the bearer token (`[server] token_env`, default
//! `CRMSYNC_SERVER_TOKEN`), sent as `Authorization: Bearer` or, for the dashboard's forms, as
//! the `crmsync_token` cookie `/login` sets. Without a token the server refuses to listen
//! anywhere but the loopback and offers no actions. `/healthz` and `/readyz` are open (they
//! say nothing but ready or not, for supervisors whose probes send no headers). The token is
//! never logged.

pub mod alerts;
pub mod api;
pub mod auth;
pub mod dashboard;
pub mod health;
pub mod metrics;

use crate::cli::common::Worker;
use crate::exit::UsageError;
use axum::Router;
use axum::routing::{get, post};
use health::Health;
use secrecy::SecretString;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// What the handlers share.
pub struct Ops {
    pub engine: Arc<Worker>,
    /// The operator token; `None`: loopback reads only, no actions.
    pub token: Option<SecretString>,
    /// Renders `/metrics`; `None` when the recorder could not be installed.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    pub health: Arc<Health>,
}

/// The largest request body the operator server reads (forms and JSON actions are tiny).
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The operator token for a server on `addr`; a usage error when `addr` is beyond the
/// loopback and no token is configured.
pub fn operator_token(
    config: &crmsync_core::config::Config,
    addr: SocketAddr,
) -> anyhow::Result<Option<SecretString>> {
    let token = config.server_token(&|name| std::env::var(name).ok())?;
    if token.is_none() && !addr.ip().is_loopback() {
        return Err(UsageError(format!(
            "the operator server would listen on {addr}, beyond this machine, without a token: export CRMSYNC_SERVER_TOKEN (or set [server] token_env / token_file), or listen on 127.0.0.1"
        ))
        .into());
    }
    Ok(token)
}

/// Binds `addr` and serves in the background until the engine stops. Returns the bound
/// address.
pub async fn start(
    addr: SocketAddr,
    token: Option<SecretString>,
    engine: Arc<Worker>,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    health: Arc<Health>,
) -> anyhow::Result<SocketAddr> {
    let config = &engine.config;
    let limits = crate::serve::Limits {
        max_connections: config.raw.server.max_connections,
        read_timeout: Duration::from_millis(config.raw.server.read_timeout_ms),
        max_body_bytes: MAX_BODY_BYTES,
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let stop = engine.cancel.clone();
    let actions = if token.is_some() {
        "actions need the token"
    } else {
        "read-only: no token, so no actions"
    };
    let ops = Arc::new(Ops {
        engine,
        token,
        metrics,
        health,
    });
    crate::progress::announce(&format!(
        "operator server on http://{bound}/ (dashboard, /api, /metrics, /healthz, /readyz; {actions})"
    ));
    crate::serve::spawn(listener, router(ops), limits, "operator", stop);
    Ok(bound)
}

/// Every route, behind the access check.
pub fn router(ops: Arc<Ops>) -> Router {
    Router::new()
        .route("/", get(dashboard::page))
        .route("/records", get(dashboard::record))
        .route("/login", get(dashboard::login_form).post(dashboard::login))
        .route("/actions/resolve", post(dashboard::resolve))
        .route("/actions/deletions", post(dashboard::deletions))
        .route("/actions/pause", post(dashboard::pause))
        .route("/api/openapi.json", get(api::openapi))
        .route("/api/status", get(api::status))
        .route("/api/conflicts", get(api::conflicts))
        .route("/api/conflicts/{id}/resolve", post(api::resolve))
        .route("/api/deletions", get(api::deletions))
        .route("/api/deletions/{decision}", post(api::decide_deletions))
        .route("/api/records/{sync}/{key}", get(api::record))
        .route("/api/pause", post(api::pause))
        .route("/api/resume", post(api::resume))
        .route("/metrics", get(api::metrics))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .layer(axum::middleware::from_fn_with_state(
            ops.clone(),
            auth::check,
        ))
        .with_state(ops)
}
