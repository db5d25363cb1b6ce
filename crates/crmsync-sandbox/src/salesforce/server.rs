//! The public face of the Salesforce flavour: [`salesforce_router`] (the in-memory API) and
//! the running [`SalesforceSandbox`]. Invariant: both serve exactly the same application; the
//! server only adds a socket, the state file and a graceful stop.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::app;
use super::config::SalesforceConfig;
use super::org::Org;
use super::persist;
use super::state::SfState;

/// The Salesforce REST API plus the `/_sandbox` admin surface, in memory.
pub fn salesforce_router(config: SalesforceConfig) -> axum::Router {
    app::app(SfState::new(&config, Org::new()))
}

/// A Salesforce sandbox server running on a tokio task.
pub struct SalesforceSandbox {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
    state: SfState,
}

impl SalesforceSandbox {
    /// Binds `addr` (e.g. `"127.0.0.1:0"` for a free port), loads the state file if one is
    /// configured and exists, and starts serving.
    pub async fn start(addr: &str, config: SalesforceConfig) -> std::io::Result<SalesforceSandbox> {
        let org = match &config.state_file {
            Some(path) => persist::load(path)?.unwrap_or_else(Org::new),
            None => Org::new(),
        };
        let state = SfState::new(&config, org);
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = app::app(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        tracing::info!(%addr, "salesforce sandbox listening");
        Ok(SalesforceSandbox {
            addr,
            stop,
            task,
            state,
        })
    }

    /// Base URL (and `instance_url`), e.g. `http://127.0.0.1:4011`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound socket address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections, waits for in-flight requests and saves the state file.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "salesforce sandbox stopped with an error"),
            Err(error) => tracing::warn!(%error, "salesforce sandbox task failed"),
        }
        persist::save_if_configured(&self.state);
    }
}
