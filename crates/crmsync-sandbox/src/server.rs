//! The public face of the crate: [`SandboxConfig`], [`router`] and the running [`Sandbox`].
//!
//! Everything else is private so that the HTTP surface, not Rust types, is the contract.
//! Background work (webhook delivery, state persistence) runs only under [`Sandbox`];
//! [`router`] alone is the in-memory API.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::hubspot::{self, AppState, FaultConfig, OAuthConfig, WebhookConfig};

/// How the emulated portal behaves. `Default` is HubSpot's Free tier (FACTS 2.10) with no
/// faults, no webhooks and no persistence.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// The only accepted bearer token besides the OAuth access tokens the sandbox issued;
    /// `None` accepts any non-empty bearer token (an expired issued one never passes).
    pub token: Option<String>,
    /// The public app whose refresh token `POST /oauth/v1/token` accepts, and the lifetime
    /// of the access tokens it issues.
    pub oauth: OAuthConfig,
    /// Tokens of other HubSpot users (token → user id). Writes made with one of them are
    /// reported as UI edits: webhook `changeSource: "CRM_UI"`, `sourceId: "userId:N"`.
    /// Writes with any other accepted token are the integration's own (`INTEGRATION`).
    pub other_tokens: BTreeMap<String, u64>,
    /// Requests allowed per rolling interval; `None` = unlimited. Free tier: 100.
    pub interval_limit: Option<u32>,
    /// Length of the rolling interval in milliseconds. HubSpot: 10,000.
    pub interval_ms: u64,
    /// Requests allowed per UTC day; `None` = unlimited. Free tier: 250,000.
    pub daily_limit: Option<u32>,
    /// Search requests allowed per second; `None` = unlimited. HubSpot: 5.
    pub search_per_second: Option<u32>,
    /// Portal (hub) id reported by the sandbox.
    pub portal_id: u64,
    /// `accountType` of `GET /account-info/v3/details`: `SANDBOX` (default),
    /// `DEVELOPER_TEST`, `APP_DEVELOPER`, or `STANDARD` to pose as a production account.
    pub account_type: String,
    /// Id of the app the integration's token belongs to (webhook `appId`, `sourceId`).
    pub app_id: u64,
    /// Search: most filter groups per request (FACTS 2.5; strictest published: 5).
    pub search_max_filter_groups: usize,
    /// Search: most filters in one group (strictest: 6).
    pub search_max_filters_per_group: usize,
    /// Search: most filters across all groups (strictest: 18).
    pub search_max_filters: usize,
    /// Search index lag: a record appears in `/search` only this long after its last
    /// write (GET sees it at once), as on HubSpot (FACTS 2.3). 0 = no lag.
    pub search_lag_ms: u64,
    /// Injected failure modes; `Default` = none.
    pub faults: FaultConfig,
    /// Change notifications; `None` = off (can be turned on with `PUT /_sandbox/webhooks`).
    pub webhooks: Option<WebhookConfig>,
    /// Load the portal from this JSON file at start (if it exists) and save it after
    /// changes and on shutdown.
    pub state_file: Option<PathBuf>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            token: None,
            oauth: OAuthConfig::default(),
            other_tokens: BTreeMap::new(),
            interval_limit: Some(100),
            interval_ms: 10_000,
            daily_limit: Some(250_000),
            search_per_second: Some(5),
            portal_id: 62515,
            account_type: "SANDBOX".to_owned(),
            app_id: 54321,
            search_max_filter_groups: 5,
            search_max_filters_per_group: 6,
            search_max_filters: 18,
            search_lag_ms: 0,
            faults: FaultConfig::default(),
            webhooks: None,
            state_file: None,
        }
    }
}

impl SandboxConfig {
    /// A configuration without any rate limit, for load tests and demos.
    pub fn unlimited() -> Self {
        Self {
            interval_limit: None,
            daily_limit: None,
            search_per_second: None,
            ..Self::default()
        }
    }
}

/// The whole application: the HubSpot API plus the `/_sandbox` admin surface, in memory
/// (webhooks are recorded but only [`Sandbox`] delivers them; no persistence).
pub fn router(config: SandboxConfig) -> axum::Router {
    hubspot::app(AppState::new(&config))
}

/// A sandbox server running on a tokio task.
pub struct Sandbox {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
    state: AppState,
    state_file: Option<PathBuf>,
    background: Vec<JoinHandle<()>>,
}

impl Sandbox {
    /// Binds `addr` (e.g. `"127.0.0.1:0"` for a free port), loads the state file if one is
    /// configured and exists, and starts serving.
    pub async fn start(addr: &str, config: SandboxConfig) -> std::io::Result<Sandbox> {
        let state = AppState::new(&config);
        let mut saved = None;
        if let Some(path) = &config.state_file
            && let Some(mut store) = hubspot::persist::load(path)?
        {
            let mut current = state.store();
            store.outbox.enabled = current.outbox.enabled;
            saved = Some(store.generation());
            *current = store;
        }
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = hubspot::app(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    // A dropped sender also means "stop": the owner is gone.
                    let _ = stopped.await;
                })
                .await
        });
        let mut background = vec![tokio::spawn(hubspot::webhooks::dispatch(state.clone()))];
        if let Some(path) = &config.state_file {
            background.push(tokio::spawn(hubspot::persist::run(
                state.clone(),
                path.clone(),
                saved,
            )));
        }
        tracing::info!(%addr, "hubspot sandbox listening");
        Ok(Sandbox {
            addr,
            stop,
            task,
            state,
            state_file: config.state_file,
            background,
        })
    }

    /// Base URL to hand to a HubSpot client, e.g. `http://127.0.0.1:4010`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound socket address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections, waits for in-flight requests to finish, stops webhook
    /// delivery and saves the state file one last time.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "hubspot sandbox stopped with an error"),
            Err(error) => tracing::warn!(%error, "hubspot sandbox task failed"),
        }
        for task in &self.background {
            task.abort();
        }
        if let Some(path) = &self.state_file
            && let Err(error) = hubspot::persist::save_if_changed(&self.state, path, None).await
        {
            tracing::warn!(%error, "sandbox state not saved on shutdown");
        }
    }
}
