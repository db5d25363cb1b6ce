//! `crmsync conflicts` lists the fields parked for review (changed on both sides, `conflict =
//! "review"`); `crmsync resolve <id> --take app|crm` settles one
//! ([`crmsync_engine::lifecycle::conflict`], which the dashboard uses too).

use super::ConfigArg;
use super::common::load_config;
use crate::exit::UsageError;
use crmsync_core::config::Secrets;
use crmsync_engine::EngineError;
use crmsync_engine::lifecycle::conflict::{Take, resolve_conflict};
use crmsync_store::{Lifecycle, Role, open_source, open_state};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ConflictsArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Only this sync's conflicts.
    #[arg(long)]
    pub sync: Option<String>,
}

/// Which side's value settles a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Side {
    App,
    Crm,
}

#[derive(Debug, clap::Args)]
pub struct ResolveArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The conflict's id, as `crmsync conflicts` lists it.
    pub id: i64,
    /// Keep the app's value (it is pushed) or the CRM's (it is written into the app).
    #[arg(long, value_enum)]
    pub take: Side,
}

pub async fn list(args: ConflictsArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config.config, Secrets::NotNeeded)?;
    let store = open_state(&config.state_url(), Role::Beside).await?;
    let open = store.open_conflicts(args.sync.as_deref()).await?;
    if open.is_empty() {
        println!("no open conflicts");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>5}  {:<12} {:<10} {:<16} {:<24} {:<24} {:<24}",
        "id", "sync", "record", "field", "app", "crm", "base"
    );
    for c in &open {
        println!(
            "{:>5}  {:<12} {:<10} {:<16} {:<24} {:<24} {:<24}",
            c.id,
            c.sync,
            c.local_id,
            c.column,
            c.app_value,
            c.crm_value,
            c.base_value.as_deref().unwrap_or("-")
        );
    }
    println!("settle one with `crmsync resolve <id> --take app|crm`");
    Ok(ExitCode::SUCCESS)
}

pub async fn resolve(args: ResolveArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config.config, Secrets::NotNeeded)?;
    let store = open_state(&config.state_url(), Role::Beside).await?;
    let source = open_source(&config.source_url()).await?;
    let take = match args.take {
        Side::App => Take::App,
        Side::Crm => Take::Crm,
    };
    let c = match resolve_conflict(&config, &store, &source, args.id, take).await {
        Ok(c) => c,
        Err(EngineError::Refused(why)) => return Err(UsageError(why).into()),
        Err(e) => return Err(e.into()),
    };
    println!(
        "conflict {} settled with the {} value; the next round syncs record {}",
        c.id,
        match take {
            Take::App => "app's",
            Take::Crm => "CRM's",
        },
        c.local_id
    );
    Ok(ExitCode::SUCCESS)
}
