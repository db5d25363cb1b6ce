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
    for s in &st.syncs {
        if let Some(why) = &s.stopped {
            println!("\nSTOPPED {}: {why}", s.sync);
        }
        for p in &s.stuck {
            let what = if p.state == "dead" {
                "out of retries"
            } else {
                "retrying"
            };
            println!(
                "\n{}: {} job{} {what}: {}",
                s.sync,
                p.jobs,
                if p.jobs == 1 { "" } else { "s" },
                p.error
            );
        }
        for u in &s.unmapped {
            let values: Vec<String> = u.values.iter().map(|v| format!("{v:?}")).collect();
            println!(
                "\n{}: WARNING {} CRM value{} of field {:?} had no way back into the app ({}; last {}): add {} to the field's map",
                s.sync,
                u.count,
                if u.count == 1 { "" } else { "s" },
                u.field,
                values.join(", "),
                crmsync_engine::status::rfc3339(u.last_seen_ms),
                if u.values.len() == 1 { "it" } else { "them" },
            );
        }
        for p in &s.insert_problems {
            println!(
                "\n{}: {} CRM record{} not inserted, the app database refused: {} (e.g. `crmsync explain {} {} --crm-id`; tried again when the record or the config changes, or on `crmsync retry`)",
                s.sync,
                p.records,
                if p.records == 1 { "" } else { "s" },
                p.reason,
                s.sync,
                p.example
            );
        }
    }
    let t = &st.two_way;
    if t.paused {
        println!("\nPAUSED: nothing is written on either side until `crmsync resume`");
    }
    let mut notes = Vec::new();
    for (n, what) in [
        (
            t.open_conflicts,
            "conflicts waiting for review (crmsync conflicts)",
        ),
        (
            t.deletions_held,
            "CRM deletions held by the mass-deletion guard (crmsync deletions)",
        ),
        (t.deleted_in_crm, "records deleted in the CRM"),
        (t.merges, "links re-pointed by CRM merges"),
        (
            t.merges_shared,
            "app records sharing a CRM record after a merge (held)",
        ),
        (t.webhook_events_pending, "webhook events not applied yet"),
    ] {
        if n > 0 {
            notes.push(format!("{n} {what}"));
        }
    }
    if !notes.is_empty() {
        println!("\ntwo-way: {}", notes.join("; "));
    }
    if !st.leaders.is_empty() {
        let mut workers: Vec<&str> = st.leaders.iter().map(|l| l.worker.as_str()).collect();
        workers.sort_unstable();
        workers.dedup();
        println!("\nworkers: {} running", workers.len());
        for l in &st.leaders {
            println!(
                "  {:<20} led by {} (lease until {})",
                l.task, l.worker, l.until
            );
        }
    }
    let c = &st.crm;
    println!(
        "\n{} ({}): {} calls, {} retries, {} rate-limited (429), {} errors",
        c.kind, c.environment, c.calls, c.retries, c.rate_limited, c.errors
    );
    println!(
        "today: {} calls, {} retries, {} rate-limited, {:.1}% errors; {} of {} budgeted calls left until {}",
        c.calls_today,
        c.retries_today,
        c.rate_limited_today,
        c.error_rate_today * 100.0,
        c.daily_budget_remaining,
        c.daily_budget,
        c.budget_resets_at
    );
    if let Some(q) = &c.queued_eta {
        println!(
            "queued work: {} calls, done around {}{}",
            q.calls,
            q.finishes_at,
            if q.days > 1 {
                format!(" ({} budget days)", q.days)
            } else {
                String::new()
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
