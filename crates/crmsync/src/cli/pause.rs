//! `crmsync pause` / `crmsync resume`: the kill switch, stored in the state database so a
//! running `crmsync run` (and any `sync --once`) sees it before its next batch in either
//! direction. Paused means no write to the app or the CRM; queued work is kept.

use super::ConfigArg;
use super::common::load_config;
use crmsync_core::config::Secrets;
use crmsync_store::{Coordination, Role, open_state};
use std::process::ExitCode;

/// Sets the kill switch to `paused`.
pub async fn run(args: ConfigArg, paused: bool) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config, Secrets::NotNeeded)?;
    let store = open_state(&config.state_url(), Role::Beside).await?;
    store.set_paused(paused).await?;
    if paused {
        println!(
            "paused: no batch starts in either direction until `crmsync resume`; queued work is kept"
        );
    } else {
        println!("resumed: the next round syncs again");
    }
    Ok(ExitCode::SUCCESS)
}
