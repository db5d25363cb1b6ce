//! The public face of the crate: [`SandboxConfig`], [`router`] and the running [`Sandbox`].
//!
//! Everything else is private so that the HTTP surface, not Rust types, is the contract.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How the emulated portal behaves. `Default` is HubSpot's Free tier (FACTS 2.10).
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// The only accepted bearer token; `None` accepts any non-empty bearer token.
    pub token: Option<String>,
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
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            token: None,
            interval_limit: Some(100),
            interval_ms: 10_000,
            daily_limit: Some(250_000),
            search_per_second: Some(5),
            portal_id: 62515,
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

/// The whole application: the HubSpot API plus the `/_sandbox` admin surface.
pub fn router(config: SandboxConfig) -> axum::Router {
    crate::hubspot::app(config)
}

/// A sandbox server running on a tokio task.
pub struct Sandbox {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Sandbox {
    /// Binds `addr` (e.g. `"127.0.0.1:0"` for a free port) and starts serving.
    pub async fn start(addr: &str, config: SandboxConfig) -> std::io::Result<Sandbox> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(config);
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    // A dropped sender also means "stop": the owner is gone.
                    let _ = stopped.await;
                })
                .await
        });
        tracing::info!(%addr, "hubspot sandbox listening");
        Ok(Sandbox { addr, stop, task })
    }

    /// Base URL to hand to a HubSpot client, e.g. `http://127.0.0.1:4010`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound socket address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections and waits for in-flight requests to finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "hubspot sandbox stopped with an error"),
            Err(error) => tracing::warn!(%error, "hubspot sandbox task failed"),
        }
    }
}
