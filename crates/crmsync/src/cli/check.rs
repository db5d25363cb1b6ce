//! `crmsync check`: the preflight. Validates the config against the live CRM (properties,
//! types, options, deal stages, the id property) and scans the source for records that would
//! be quarantined, refused or merged, changing nothing anywhere: the CRM only sees GETs, the
//! state database is not opened. Exit 0 when clean, 1 when problems were found, 2 for a config
//! error.

use super::ConfigArg;
use super::common::{crm_client, load_config};
use crate::exit::FAILURE;
use crmsync_core::config::Secrets;
use crmsync_engine::CallBuffer;
use crmsync_engine::check::{CheckReport, Severity};
use crmsync_store::open_source;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Examples shown per problem.
    #[arg(long, default_value_t = 5)]
    pub examples: usize,
}

pub async fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config.config, Secrets::Required)?;
    // `crmsync run` would need the webhook secret: a preflight says so now, not at start-up.
    if config.raw.webhooks.listen.is_some() {
        config.webhook_secret(&|k| std::env::var(k).ok())?;
    }
    let source = open_source(&config.source_url()).await?;
    // The call log lives in the state database, which a preflight does not touch: the
    // client's call records are collected and dropped.
    let crm = crm_client(&config, &CallBuffer::default())?;
    let report = crmsync_engine::check::check(&config, &crm, &source, args.examples).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report);
    }
    Ok(if report.has_problems() {
        ExitCode::from(FAILURE)
    } else {
        ExitCode::SUCCESS
    })
}

fn print(report: &CheckReport) {
    println!(
        "{:<12} {:<10} {:>7} {:>7} {:>8} {:>6}",
        "sync", "object", "rows", "ready", "invalid", "held"
    );
    for s in &report.syncs {
        println!(
            "{:<12} {:<10} {:>7} {:>7} {:>8} {:>6}",
            s.sync, s.object, s.rows, s.ready, s.invalid, s.held
        );
    }
    println!();
    for f in &report.findings {
        let level = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        };
        let at = match &f.field {
            Some(field) => format!("{}.{field}", f.sync),
            None => f.sync.clone(),
        };
        let count = if f.examples.is_empty() && f.count == 1 {
            String::new()
        } else {
            format!(
                " ({} record{})",
                f.count,
                if f.count == 1 { "" } else { "s" }
            )
        };
        println!("{level}: {at}: {}{count}", f.message);
        for e in &f.examples {
            match (&e.key, &e.value) {
                (Some(k), Some(v)) => println!("    {k}: `{v}`: {}", e.detail),
                (Some(k), None) => println!("    {k}: {}", e.detail),
                _ => println!("    {}", e.detail),
            }
        }
    }
    let errors = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .count();
    if errors + warnings == 0 {
        println!("No problems found: everything mapped would be sent.");
    } else {
        println!("{errors} error(s), {warnings} warning(s). Nothing was changed.");
    }
}
