//! `crmsync sandbox`: the HubSpot emulator as a standalone server.

use crmsync_sandbox::{Sandbox, SandboxConfig};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 4010)]
    pub port: u16,
    /// Accept only this bearer token (default: any non-empty token).
    #[arg(long, env = "CRMSYNC_SANDBOX_TOKEN")]
    pub token: Option<String>,
    /// Requests allowed per interval (HubSpot Free: 100 per 10 s).
    #[arg(long, default_value_t = 100)]
    pub interval_limit: u32,
    /// Length of the rate-limit interval in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub interval_ms: u64,
    /// Requests allowed per day (HubSpot Free: 250,000).
    #[arg(long, default_value_t = 250_000)]
    pub daily_limit: u32,
    /// Search requests allowed per second (HubSpot: 5).
    #[arg(long, default_value_t = 5)]
    pub search_per_second: u32,
    /// Turn every rate limit off.
    #[arg(long)]
    pub no_limits: bool,
}

impl SandboxArgs {
    fn config(&self) -> SandboxConfig {
        if self.no_limits {
            return SandboxConfig {
                token: self.token.clone(),
                ..SandboxConfig::unlimited()
            };
        }
        SandboxConfig {
            token: self.token.clone(),
            interval_limit: Some(self.interval_limit),
            interval_ms: self.interval_ms,
            daily_limit: Some(self.daily_limit),
            search_per_second: Some(self.search_per_second),
            ..SandboxConfig::default()
        }
    }
}

pub async fn run(args: SandboxArgs) -> anyhow::Result<ExitCode> {
    let addr = format!("{}:{}", args.host, args.port);
    let sandbox = Sandbox::start(&addr, args.config())
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    println!("HubSpot sandbox listening on {}", sandbox.base_url());
    println!(
        "admin: {}/_sandbox/stats · reset: POST {}/_sandbox/reset · stop with Ctrl-C",
        sandbox.base_url(),
        sandbox.base_url()
    );
    tokio::signal::ctrl_c().await?;
    sandbox.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
