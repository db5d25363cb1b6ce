//! `crmsync reconcile`: one reconciliation pass now (every linked record read back by id and
//! repaired where it differs), printing the drift it repaired. `crmsync run` does the same
//! every `[run] reconcile_interval_ms`.

use super::ConfigArg;
use super::common::{engine, load_config};
use crmsync_core::config::Secrets;
use crmsync_store::Coordination;
use std::process::ExitCode;

pub async fn run(args: ConfigArg) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config, Secrets::Required)?;
    let engine = engine(config).await?;
    let started = engine.clock.now_ms();
    let r = engine.reconcile_once().await?;
    // What was queued (pushed again) goes out now, as `sync --once` would.
    engine.push_once().await?;
    let calls = engine.state.call_summary(started).await?.calls;
    println!("records read back: {}", r.checked);
    println!(
        "drift repaired:    {} (app rows updated {}, pushed again {}, deletions {}, held by the guard {}, restored {}, merges {}, shared after a merge {})",
        r.drift(),
        r.applied,
        r.repushed,
        r.deleted,
        r.deletions_held,
        r.restored,
        r.merged,
        r.shared
    );
    if r.parked > 0 {
        println!("conflicts parked:  {} (crmsync conflicts)", r.parked);
    }
    println!("API calls:         {calls}");
    Ok(ExitCode::SUCCESS)
}
