//! Runs the HubSpot sandbox in the foreground, for the conformance script and manual tries.
//!
//! `cargo run -p crmsync-sandbox --example serve -- [ADDR] [--free-tier] [--token T]`
//! ADDR defaults to 127.0.0.1:4010; limits are off unless `--free-tier` is given.

use crmsync_sandbox::{Sandbox, SandboxConfig};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut addr = "127.0.0.1:4010".to_owned();
    let mut config = SandboxConfig::unlimited();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--free-tier" => {
                config = SandboxConfig {
                    token: config.token,
                    ..SandboxConfig::default()
                }
            }
            "--token" => config.token = args.next(),
            other => addr = other.to_owned(),
        }
    }
    let sandbox = Sandbox::start(&addr, config).await?;
    println!("hubspot sandbox listening on {}", sandbox.base_url());
    tokio::signal::ctrl_c().await?;
    sandbox.shutdown().await;
    Ok(())
}
