//! The crmsync engine, in stages (see `shared/DESIGN.md`, "the seams"):
//!
//! - [`outbound`]: capture → plan (pure) → commit on the sync's leader; claim → recheck →
//!   deliver → settle on any worker;
//! - [`inbound`]: hints (webhook events, edits found before a push, the poll) → read back →
//!   decide (pure) → commit, on the sync's leader;
//! - [`lifecycle`]: CRM deletions (with the mass-deletion guard), merges, reconciliation;
//! - [`runtime`]: the tasks of a worker (`crmsync run`), with leader leases, a heartbeat and a
//!   cancellation token; [`telemetry`]: the typed events everything reports through;
//! - [`engine`]: the parts a worker works with and the one-shot passes (`sync --once`,
//!   `reconcile`, ...); [`gate`]: the shared API budget every CRM call is admitted by;
//!   [`tokens`]: the OAuth access token the workers of a connection share.
//!
//! The engine names no database and no CRM: it runs on the store's and the CRM crate's traits.

pub mod budget;
pub mod calls;
pub mod check;
pub mod clock;
pub mod engine;
pub mod environment;
pub mod error;
pub mod estimate;
pub mod explain;
pub mod gate;
pub mod inbound;
pub mod lifecycle;
pub mod outbound;
pub mod planner;
pub mod report;
pub mod runtime;
pub mod schema;
pub mod status;
pub mod telemetry;
pub mod tokens;

pub use calls::CallBuffer;
pub use engine::{Engine, Leases};
pub use error::EngineError;
pub use report::{PullReport, RunReport, SyncReport};
pub use telemetry::{Event, Telemetry};
pub use tokens::StateTokens;

/// Installs change capture on every table synced with `capture = "trigger"`; returns the
/// tables it installed on.
pub async fn install<A: crmsync_store::Source + crmsync_store::Capture>(
    config: &crmsync_core::config::Config,
    source: &A,
) -> Result<Vec<String>, EngineError> {
    use std::collections::{BTreeSet, HashMap};
    check::check_source(config, source).await?;
    let mut watched: HashMap<(&str, &str), BTreeSet<&str>> = HashMap::new();
    for s in &config.raw.syncs {
        if s.capture == crmsync_core::config::Capture::Trigger {
            watched
                .entry((&s.table, &s.key))
                .or_default()
                .extend(outbound::capture::columns(s));
        }
    }
    let mut done = Vec::new();
    for ((table, key), cols) in watched {
        let cols: Vec<&str> = cols.into_iter().collect();
        source.install_capture(table, key, &cols).await?;
        done.push(table.to_string());
    }
    done.sort();
    Ok(done)
}
