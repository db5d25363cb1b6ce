//! `crmsync deletions`: records deleted in the CRM, and the ones the mass-deletion guard holds.
//! `--apply` does the sync's `on_crm_delete` action for the held ones; `--reject` forgets them
//! and pushes the records again (they are recreated in the CRM). Works beside a running
//! `crmsync run`.

use super::ConfigArg;
use super::common::{engine_beside_worker, load_config};
use crmsync_core::config::Secrets;
use crmsync_engine::lifecycle::deletion::Decision;
use crmsync_store::{DeletionState, Lifecycle, Role, open_state};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct DeletionsArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Only this sync's deletions.
    #[arg(long)]
    pub sync: Option<String>,
    /// Do the configured action for the held deletions.
    #[arg(long, conflicts_with = "reject")]
    pub apply: bool,
    /// The held deletions were a mistake: forget them and push the records again.
    #[arg(long)]
    pub reject: bool,
}

pub async fn run(args: DeletionsArgs) -> anyhow::Result<ExitCode> {
    if args.apply || args.reject {
        let config = load_config(&args.config.config, Secrets::Required)?;
        let engine = engine_beside_worker(config).await?;
        let decision = if args.apply {
            Decision::Apply
        } else {
            Decision::Reject
        };
        let n = engine
            .decide_deletions(args.sync.as_deref(), decision)
            .await?;
        match decision {
            Decision::Apply => println!("{n} held deletions applied"),
            Decision::Reject => {
                println!("{n} held deletions rejected; the records are pushed again")
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let config = load_config(&args.config.config, Secrets::NotNeeded)?;
    let store = open_state(&config.state_url(), Role::Beside).await?;
    let all = store.deletions(args.sync.as_deref(), None).await?;
    if all.is_empty() {
        println!("no records deleted in the CRM");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<12} {:<12} {:<14} {:<8} {:<8}",
        "sync", "record", "crm id", "state", "action"
    );
    for d in &all {
        println!(
            "{:<12} {:<12} {:<14} {:<8} {:<8}",
            d.sync,
            d.local_id,
            d.crm_id,
            d.state.as_str(),
            d.action.as_deref().unwrap_or("-")
        );
    }
    let held = all
        .iter()
        .filter(|d| d.state == DeletionState::Held)
        .count();
    if held > 0 {
        println!(
            "{held} deletions held by the mass-deletion guard: `crmsync deletions --apply` to carry them out, `--reject` to push the records again"
        );
    }
    Ok(ExitCode::SUCCESS)
}
