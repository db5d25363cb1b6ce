//! `crmsync resync SYNC...`: makes the next capture of each named sync re-plan every row of its
//! table, as a mapping change does by itself. Records already in the CRM cost a call only when
//! their payload differs; quarantined ones are judged again. Works beside a running worker: it
//! only marks the state, and the sync's leader does the re-plan on its next capture.

use super::ConfigArg;
use super::common::{engine_beside_worker, load_config, require_sync};
use crmsync_core::config::Secrets;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ResyncArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The syncs to re-plan (names from the config's `[[sync]]` tables).
    #[arg(required = true)]
    pub syncs: Vec<String>,
}

pub async fn run(args: ResyncArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config.config, Secrets::Required)?;
    for s in &args.syncs {
        require_sync(&config, s)?;
    }
    let engine = engine_beside_worker(config).await?;
    for s in &args.syncs {
        engine.request_resync(s).await?;
        println!("{s}: every record is planned again on the next capture");
    }
    println!(
        "`crmsync plan --config {}` shows what that sends; `crmsync sync --once` or a running `crmsync run` does it.",
        args.config.config.display()
    );
    Ok(ExitCode::SUCCESS)
}
