//! `crmsync sync --once`: one pass that pushes every app change to the CRM.

use super::ConfigArg;
use super::common::{engine, load_config, preflight_or_refuse};
use crate::exit::{FAILURE, UsageError};
use crate::progress::Bars;
use crmsync_core::config::Secrets;
use crmsync_engine::RunReport;
use crmsync_store::Coordination;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Run one pass and exit (`crmsync run` keeps syncing both ways until stopped).
    #[arg(long)]
    pub once: bool,
    /// Print the pass's report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Start even when a mapped property does not exist in the CRM (or is read-only); without
    /// it, such a mapping is refused before anything is sent.
    #[arg(long)]
    pub force: bool,
}

pub async fn run(args: SyncArgs) -> anyhow::Result<ExitCode> {
    if !args.once {
        return Err(UsageError(
            "`crmsync sync` needs `--once` (to keep syncing until stopped, use `crmsync run`)"
                .into(),
        )
        .into());
    }
    let config = load_config(&args.config.config, Secrets::Required)?;
    let mut engine = engine(config).await?;
    if engine.state.paused().await? {
        crate::progress::announce(
            "PAUSED: nothing was sent; `crmsync resume` turns the kill switch off",
        );
        return Ok(ExitCode::SUCCESS);
    }
    preflight_or_refuse(&engine, args.force).await?;
    let bars = Arc::new(Bars::new());
    engine.telemetry = bars.clone();
    let report = engine.push_once().await?;
    bars.finish();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(if report.has_record_failures() {
        ExitCode::from(FAILURE)
    } else {
        ExitCode::SUCCESS
    })
}

/// A readable table of a pass.
pub fn print_report(report: &RunReport) {
    println!(
        "{:<12} {:>7} {:>8} {:>8} {:>10} {:>8} {:>6} {:>9} {:>7}",
        "sync", "read", "created", "updated", "unchanged", "invalid", "held", "rejected", "failed"
    );
    for s in &report.syncs {
        println!(
            "{:<12} {:>7} {:>8} {:>8} {:>10} {:>8} {:>6} {:>9} {:>7}",
            s.sync,
            s.read,
            s.created,
            s.updated,
            s.unchanged,
            s.invalid,
            s.held,
            s.rejected,
            s.failed
        );
    }
    for s in &report.syncs {
        if let Some(why) = &s.stopped {
            println!("STOPPED {}: {why}", s.sync);
        }
    }
    let per_call = if report.upsert_calls > 0 {
        report.upserted_records as f64 / report.upsert_calls as f64
    } else {
        0.0
    };
    println!(
        "{} API calls in {:.1} s: {} batch upserts carrying {} records ({:.1} per call), {} association batches; {} retries, {} rate-limited",
        report.calls,
        report.elapsed_ms as f64 / 1000.0,
        report.upsert_calls,
        report.upserted_records,
        per_call,
        report.association_calls,
        report.retries,
        report.rate_limited
    );
}
