//! `crmsync install`: change-capture triggers on the synced tables.

use super::ConfigArg;
use super::common::{load_config, open_databases};
use crmsync_core::config::Secrets;
use std::process::ExitCode;

pub async fn run(args: ConfigArg) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config, Secrets::NotNeeded)?;
    let (_store, source) = open_databases(&config).await?;
    let tables = crmsync_engine::install(&config, &source).await?;
    if tables.is_empty() {
        println!("no sync uses `capture = \"trigger\"`; nothing to install");
    } else {
        println!("change capture installed on: {}", tables.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
