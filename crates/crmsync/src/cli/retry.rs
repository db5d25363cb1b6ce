//! `crmsync retry`: asks for quarantined records to be looked at again (by default the ones
//! the CRM rejected; `--all` also invalid and held ones) and for CRM records whose row the app
//! database refused to be inserted again, then runs one push pass and tells
//! which of them left the quarantine and which are still there, with the reason.

use super::ConfigArg;
use super::common::{engine, load_config, require_sync};
use super::sync::print_report;
use crate::exit::FAILURE;
use crate::progress::Bars;
use crmsync_core::config::Secrets;
use crmsync_store::{CreateState, Creates, Inspect, QuarantineKind};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct RetryArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Only this sync's entries.
    #[arg(long)]
    pub sync: Option<String>,
    /// Retry invalid and held entries too, not only rejected ones.
    #[arg(long)]
    pub all: bool,
}

pub async fn run(args: RetryArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config.config, Secrets::Required)?;
    if let Some(s) = &args.sync {
        require_sync(&config, s)?;
    }
    let mut engine = engine(config).await?;
    let kinds: &[QuarantineKind] = if args.all {
        &[
            QuarantineKind::Rejected,
            QuarantineKind::Invalid,
            QuarantineKind::Held,
        ]
    } else {
        &[QuarantineKind::Rejected]
    };
    let asked = engine
        .state
        .request_retry(args.sync.as_deref(), kinds)
        .await?;
    println!(
        "{} quarantined record{} marked for retry.",
        asked.len(),
        if asked.len() == 1 { "" } else { "s" }
    );
    // Records created in the CRM whose row the app database refused: inserted again.
    let inserts = engine
        .state
        .request_create_retry(args.sync.as_deref())
        .await?;
    if !inserts.is_empty() {
        println!(
            "{} CRM record{} the app database refused marked for another insert.",
            inserts.len(),
            if inserts.len() == 1 { "" } else { "s" }
        );
    }
    let bars = Arc::new(Bars::new());
    engine.telemetry = bars.clone();
    let report = engine.push_once().await?;
    bars.finish();
    print_report(&report);
    let mut still = Vec::new();
    for (sync, key) in &asked {
        if let Some(e) = engine.state.quarantine_entry(sync, key).await? {
            still.push(e);
        }
    }
    println!(
        "{} of {} left the quarantine.",
        asked.len() - still.len(),
        asked.len()
    );
    let mut refused = Vec::new();
    for (sync, crm_id) in &inserts {
        if let Some(c) = engine
            .state
            .creates_among(sync, std::slice::from_ref(crm_id))
            .await?
            .remove(crm_id)
            .filter(|c| c.state == CreateState::Refused)
        {
            refused.push(c);
        }
    }
    if !inserts.is_empty() {
        println!(
            "{} of {} CRM records became rows.",
            inserts.len() - refused.len(),
            inserts.len()
        );
    }
    for c in &refused {
        println!(
            "  still refused {}/{} (CRM id): {} ({})",
            c.sync, c.crm_id, c.message, c.rule
        );
    }
    for e in &still {
        println!(
            "  still {} {}/{}: {} ({})",
            e.kind.as_str(),
            e.sync,
            e.local_id,
            e.message,
            e.rule
        );
    }
    Ok(
        if still.iter().any(|e| e.kind != QuarantineKind::Held)
            || !refused.is_empty()
            || report.has_record_failures()
        {
            ExitCode::from(FAILURE)
        } else {
            ExitCode::SUCCESS
        },
    )
}
