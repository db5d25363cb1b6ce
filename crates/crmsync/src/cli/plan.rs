//! `crmsync plan`: what a full sync would send, in API calls and time within the limits.
//! Reads the app and state databases; calls nothing and changes nothing.

use super::ConfigArg;
use super::common::{load_config, open_databases};
use crmsync_core::config::Secrets;
use crmsync_engine::budget::Budget;
use crmsync_engine::estimate::estimate;
use crmsync_store::{Coordination, now_ms};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print JSON for machines.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config.config, Secrets::NotNeeded)?;
    let (store, source) = open_databases(&config).await?;
    let now = now_ms();
    let mut budget = Budget::new(&config.raw.crm, now);
    budget.used = store
        .calls_reserved(
            &crmsync_engine::engine::connection_of(&config),
            budget.day_start_ms,
        )
        .await?;
    let est = estimate(
        &config,
        &store,
        &source,
        &budget,
        config.raw.crm.write_batch(),
        now,
    )
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&est)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<12} {:>9} {:>9} {:>10} {:>8} {:>6} {:>8} {:>12}",
        "sync", "rows", "to send", "unchanged", "invalid", "held", "upserts", "associations"
    );
    for s in &est.syncs {
        println!(
            "{:<12} {:>9} {:>9} {:>10} {:>8} {:>6} {:>8} {:>12}",
            s.sync,
            s.rows,
            s.to_send,
            s.unchanged,
            s.invalid,
            s.held,
            s.upsert_calls,
            s.association_calls
        );
    }
    for s in est.syncs.iter().filter(|s| s.replan) {
        println!(
            "\n{}: the mapping changed since its records were last planned (or `crmsync resync` asked): the next sync plans all {} rows again and sends the {} whose payload differs.",
            s.sync, s.rows, s.to_send
        );
    }
    let e = &est.eta;
    let finish = chrono::DateTime::from_timestamp_millis(e.finishes_at_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    println!(
        "\n{} API calls at {:.1} requests/s: {} of sending.",
        e.calls,
        e.requests_per_second,
        human(e.seconds_at_rate)
    );
    if e.days > 1 {
        println!(
            "That is more than today's budget ({} of {} calls left today): the backfill spans {} budget days, pausing when each day's share is spent; done around {finish}.",
            e.calls_left_today, e.daily_allowance, e.days
        );
    } else {
        println!(
            "It fits into today's budget ({} of {} calls left); done around {finish}.",
            e.calls_left_today, e.daily_allowance
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn human(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}
