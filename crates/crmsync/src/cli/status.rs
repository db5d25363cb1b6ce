//! `crmsync status`: per sync synced/pending/failed/quarantined, and the CRM call totals.

use super::ConfigArg;
use super::common::{load_config, open_databases};
use crmsync_core::config::Secrets;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print JSON for machines.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config.config, Secrets::NotNeeded)?;
    let (store, source) = open_databases(&config).await?;
    let st = crmsync_engine::status::status(&config, &store, &source).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&st)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<12} {:<10} {:>7} {:>7} {:>8} {:>7} {:>12} {:>6}",
        "sync", "object", "total", "synced", "pending", "failed", "quarantined", "held"
    );
    for s in &st.syncs {
        println!(
            "{:<12} {:<10} {:>7} {:>7} {:>8} {:>7} {:>12} {:>6}",
            s.sync, s.object, s.total, s.synced, s.pending, s.failed, s.quarantined, s.held
        );
    }
    let c = &st.crm;
    println!(
        "{} ({}): {} calls, {} retries, {} rate-limited (429), {} errors; today {} calls, {} left of today's budget",
        c.kind,
        c.environment,
        c.calls,
        c.retries,
        c.rate_limited,
        c.errors,
        c.calls_today,
        c.daily_budget_remaining
    );
    Ok(ExitCode::SUCCESS)
}
