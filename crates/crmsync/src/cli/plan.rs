//! `crmsync plan`: what the next sync round would do both ways, per sync and (with
//! `--records`) per record, with its API calls and when it would be done.
//!
//! It runs the sync's own deciding code read-only ([`crmsync_engine::planner`]): the app and
//! state databases are read, never written; a two-way sync's CRM changes are read (searches
//! and listings, counted against the shared budget and logged like every call), never
//! written. A one-way config, or `--offline`, makes no network call at all.

use super::ConfigArg;
use super::common::{crm_client, load_config, open_databases};
use crmsync_core::config::{Config, Secrets};
use crmsync_engine::CallBuffer;
use crmsync_engine::gate::BudgetGate;
use crmsync_engine::inbound::decide::pulled_fields;
use crmsync_engine::planner::{CrmAccess, Direction, Forecast, PlanOptions, plan_both_ways};
use crmsync_store::now_ms;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// List every record the round looks at: direction, app key and CRM id, action and the
    /// fields that change.
    #[arg(long)]
    pub records: bool,
    /// Print JSON for machines (`syncs`, `records`, `guesses`, `paused`, `eta`; see
    /// docs/operations.md).
    #[arg(long)]
    pub json: bool,
    /// Do not read the CRM: the outbound side only, the inbound side of two-way syncs unknown.
    #[arg(long)]
    pub offline: bool,
}

pub async fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let path = &args.config.config;
    let probe = load_config(path, Secrets::NotNeeded)?;
    let two_way =
        probe.raw.run.poll && probe.raw.syncs.iter().any(|s| !pulled_fields(s).is_empty());
    // The CRM is read only for two-way syncs; one-way plans stay offline, token or not.
    let (config, unavailable): (Config, Option<String>) = if !two_way {
        (probe, Some("one-way".into()))
    } else if args.offline {
        (probe, Some("`--offline`: the CRM was not read".into()))
    } else {
        match load_config(path, Secrets::Required) {
            Ok(c) => (c, None),
            Err(e) => (
                probe,
                Some(format!("the CRM credentials could not be loaded: {e}")),
            ),
        }
    };
    let (state, source) = open_databases(&config).await?;
    let options = PlanOptions {
        records: args.records,
        now_ms: now_ms(),
    };
    let calls = CallBuffer::default();
    let forecast = match unavailable {
        Some(why) => {
            let none: CrmAccess<'_, crmsync_crm::AnyCrm> = CrmAccess::Unavailable(why);
            plan_both_ways(&config, &source, &state, none, &options).await?
        }
        None => {
            let crm = crm_client(&config, &calls)?;
            // The plan's reads are reserved in the shared budget like every call.
            crm.set_gate(Arc::new(BudgetGate::new(
                state.clone(),
                crmsync_engine::engine::connection_of(&config),
                config.raw.crm.clone(),
                Arc::new(crmsync_engine::clock::SystemClock),
                tokio_util::sync::CancellationToken::new(),
            )));
            let access = CrmAccess::Reads {
                crm: &crm,
                calls: &calls,
            };
            plan_both_ways(&config, &source, &state, access, &options).await?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&forecast)?);
        return Ok(ExitCode::SUCCESS);
    }
    print(&forecast, args.records);
    Ok(ExitCode::SUCCESS)
}

fn print(f: &Forecast, records: bool) {
    println!(
        "{:<12} {:<4} {:>7} {:>7} {:>7} {:>7} {:>8} {:>6} {:>9} {:>7} {:>6}",
        "sync",
        "way",
        "read",
        "create",
        "update",
        "skip",
        "invalid",
        "held",
        "conflict",
        "delete",
        "calls"
    );
    for s in &f.syncs {
        let o = &s.outbound;
        println!(
            "{:<12} {:<4} {:>7} {:>7} {:>7} {:>7} {:>8} {:>6} {:>9} {:>7} {:>6}",
            s.sync,
            "out",
            o.read,
            o.create,
            o.update,
            o.skip,
            o.invalid,
            o.held,
            "-",
            "-",
            o.upsert_calls + o.association_calls + o.recheck_calls
        );
        if !s.two_way {
            continue;
        }
        match &s.inbound {
            Some(i) => println!(
                "{:<12} {:<4} {:>7} {:>7} {:>7} {:>7} {:>8} {:>6} {:>9} {:>7} {:>6}",
                "",
                "in",
                i.read,
                i.create,
                i.update,
                i.skip,
                "-",
                i.held,
                i.conflict,
                i.delete,
                i.read_calls + i.write_calls
            ),
            None => println!("{:<12} {:<4} unknown", "", "in"),
        }
    }
    for s in f.syncs.iter().filter(|s| s.replan) {
        println!(
            "\n{}: the mapping changed since its records were last planned (or `crmsync resync` asked): the next sync plans all {} rows again and sends the {} whose payload differs.",
            s.sync,
            s.outbound.read,
            s.outbound.create + s.outbound.update
        );
    }
    if records {
        println!();
        if f.records.is_empty() {
            println!("no records to look at");
        }
        for r in &f.records {
            let way = match r.direction {
                Direction::Outbound => "out",
                Direction::Inbound => "in",
            };
            let key = match (&r.local_id, &r.crm_id) {
                (Some(l), Some(c)) => format!("{l} / {c}"),
                (Some(l), None) => format!("{l} / -"),
                (None, Some(c)) => format!("- / {c}"),
                (None, None) => "-".into(),
            };
            let mut text = format!(
                "{:<12} {:<4} {:<24} {:<9} {}",
                r.sync,
                way,
                key,
                r.action.word(),
                r.fields.join(", ")
            );
            if let Some(why) = &r.reason {
                text.push_str(&format!("  ({why})"));
            }
            println!("{}", text.trim_end());
        }
    }
    if !f.guesses.is_empty() {
        println!("\nWhere the plan had to guess:");
        for g in &f.guesses {
            match &g.sync {
                Some(s) => println!("- {s}: {}", g.note),
                None => println!("- {}", g.note),
            }
        }
    }
    let e = &f.eta;
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
}

fn human(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}
