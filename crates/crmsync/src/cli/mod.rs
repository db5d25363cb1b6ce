//! The command line: one file per subcommand, all parsed by clap here.

mod check;
pub mod common;
mod conflicts;
mod deletions;
mod demo;
mod env;
mod explain;
mod init;
mod install;
mod pause;
mod plan;
mod reconcile;
mod resync;
mod retry;
mod run;
mod sandbox;
mod schema;
mod status;
mod sync;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Keeps your application database (PostgreSQL, MySQL, SQLite) in sync with your CRM (HubSpot or Salesforce).
#[derive(Debug, Parser)]
#[command(name = "crmsync", version, about, long_about = None)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log format on stderr: `text` (colours only on a terminal) or `json` (one object per
    /// line with timestamp, level, message and fields; info level unless -v or RUST_LOG say
    /// otherwise; no progress bars or status lines in between).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "CRMSYNC_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a sample robot order system and sync it into a local sandbox CRM.
    Demo(demo::DemoArgs),
    /// Run the local sandbox CRM: an emulator of HubSpot's (default) or Salesforce's REST API.
    Sandbox(Box<sandbox::SandboxArgs>),
    /// Read the app database's schema and propose a commented config (stdout, or --out FILE).
    Init(init::InitArgs),
    /// Install change-capture triggers on the app tables synced with `capture = "trigger"`.
    Install(ConfigArg),
    /// Show what the next sync would do both ways (create, update, skip, conflict, delete,
    /// held; per record with --records), its API calls and how long, changing nothing.
    Plan(plan::PlanArgs),
    /// Push app changes to the CRM.
    Sync(sync::SyncArgs),
    /// Show what is synced, pending, failed and quarantined, and the API calls made.
    Status(status::StatusArgs),
    /// Show the config's environment, the app database and CRM account it reaches, what the
    /// state database is bound to, and whether a sync may write (exit 2 when it may not).
    Env(env::EnvArgs),
    /// Check the config against the CRM and scan the source for problems, changing nothing.
    Check(check::CheckArgs),
    /// The CRM configuration the mappings rely on, as code: export it as TOML, diff it against
    /// a file or another CRM, apply it.
    Schema(schema::SchemaArgs),
    /// Look at quarantined records again (rejected ones; --all: invalid and held too), insert
    /// refused CRM records again, and push.
    Retry(retry::RetryArgs),
    /// Show one record's story: source values, payload, link, queue, quarantine, calls (by CRM
    /// id with --crm-id, also why a CRM record has no row).
    Explain(explain::ExplainArgs),
    /// Sync both ways until stopped: CRM changes (webhooks, polling) into the app, app changes out.
    Run(run::RunArgs),
    /// Kill switch: no batch starts in either direction until `crmsync resume`.
    Pause(ConfigArg),
    /// Turn the kill switch off again.
    Resume(ConfigArg),
    /// List two-way fields changed on both sides and parked for review.
    Conflicts(conflicts::ConflictsArgs),
    /// Settle a parked conflict with the app's or the CRM's value.
    Resolve(conflicts::ResolveArgs),
    /// Read every linked record back from the CRM and repair what differs (prints the drift).
    Reconcile(ConfigArg),
    /// Re-plan every record of these syncs on the next capture (as a mapping change does).
    Resync(resync::ResyncArgs),
    /// List records deleted in the CRM; settle deletions held by the mass-deletion guard.
    Deletions(deletions::DeletionsArgs),
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `--config FILE`, shared by the commands that work on a configured project.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArg {
    /// The crmsync config file.
    #[arg(short, long, default_value = "crmsync.toml", env = "CRMSYNC_CONFIG")]
    pub config: PathBuf,
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo(a) => demo::run(a).await,
        Command::Sandbox(a) => sandbox::run(*a).await,
        Command::Init(a) => init::run(a).await,
        Command::Install(a) => install::run(a).await,
        Command::Plan(a) => plan::run(a).await,
        Command::Sync(a) => sync::run(a).await,
        Command::Status(a) => status::run(a).await,
        Command::Env(a) => env::run(a).await,
        Command::Check(a) => check::run(a).await,
        Command::Schema(a) => schema::run(a).await,
        Command::Retry(a) => retry::run(a).await,
        Command::Explain(a) => explain::run(a).await,
        Command::Run(a) => run::run(a).await,
        Command::Pause(a) => pause::run(a, true).await,
        Command::Resume(a) => pause::run(a, false).await,
        Command::Conflicts(a) => conflicts::list(a).await,
        Command::Resolve(a) => conflicts::resolve(a).await,
        Command::Reconcile(a) => reconcile::run(a).await,
        Command::Resync(a) => resync::run(a).await,
        Command::Deletions(a) => deletions::run(a).await,
    }
}
