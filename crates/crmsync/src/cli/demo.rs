//! `crmsync demo`: generate the sample order system, start the sandbox CRM in-process (or use
//! `--crm-url`), sync everything with progress bars, and print what happened.

use super::sync::print_report;
use crate::demo::{config, data};
use crate::exit::{FAILURE, UsageError};
use crate::progress::Bars;
use anyhow::Context;
use crmsync_core::config::{Secrets, load_str};
use crmsync_engine::{CallBuffer, Engine};
use crmsync_sandbox::{Sandbox, SandboxConfig};
use crmsync_store::{QuarantineKind, SqliteSource, SqliteStore, Store};
use std::path::PathBuf;
use std::process::ExitCode;

/// The token the demo gives its in-process sandbox (which accepts any token).
const DEMO_TOKEN: &str = "sandbox-demo-token";

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Keep the generated files (orders.db, crmsync.toml, crmsync-state.db) in this folder.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Number of customers to generate.
    #[arg(long, default_value_t = 2000)]
    pub customers: u64,
    /// Number of orders to generate.
    #[arg(long, default_value_t = 6000)]
    pub orders: u64,
    /// Use a sandbox (or HubSpot-compatible server) already running at this URL.
    #[arg(long)]
    pub crm_url: Option<String>,
    /// Seed of the data generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let (dir, _temp) = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            (d.clone(), None)
        }
        None => {
            let t = tempfile::tempdir().context("cannot create a temporary folder")?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let db = dir.join("orders.db");
    if db.exists() || dir.join("crmsync-state.db").exists() {
        return Err(UsageError(format!(
            "{} already holds a demo; choose another --dir or remove it (to sync it again, run `crmsync sync --once --config {}`)",
            dir.display(),
            dir.join("crmsync.toml").display()
        ))
        .into());
    }

    println!(
        "Generating a robot order system: {} customers, {} orders ...",
        args.customers, args.orders
    );
    let generated = data::generate(&db, args.customers, args.orders, args.seed)
        .await
        .context("cannot generate the demo database")?;

    let sandbox = match &args.crm_url {
        Some(_) => None,
        None => Some(
            Sandbox::start("127.0.0.1:0", SandboxConfig::default())
                .await
                .context("cannot start the sandbox")?,
        ),
    };
    let base_url = match (&args.crm_url, &sandbox) {
        (Some(u), _) => u.trim_end_matches('/').to_string(),
        (None, Some(s)) => s.base_url(),
        (None, None) => unreachable!("a sandbox is started when no --crm-url is given"),
    };
    let config_path = dir.join("crmsync.toml");
    // The written config points at the standard sandbox port, where `crmsync sandbox` listens;
    // this run uses the in-process sandbox's own address.
    let written_url = args
        .crm_url
        .clone()
        .unwrap_or_else(|| "http://127.0.0.1:4010".to_string());
    let text = config::render(&written_url);
    std::fs::write(&config_path, &text)
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let env = |name: &str| {
        std::env::var(name)
            .ok()
            .or_else(|| (name == "HUBSPOT_ACCESS_TOKEN").then(|| DEMO_TOKEN.to_string()))
    };
    let mut cfg = load_str(&text, &config_path, Secrets::Required, &env)?;
    cfg.raw.crm.base_url = base_url.clone();
    println!(
        "Generated {} customers ({} with a broken e-mail address, {} unconfirmed) and {} orders in {}",
        generated.customers,
        generated.invalid_emails,
        generated.unconfirmed_emails,
        generated.orders,
        db.display()
    );
    println!("CRM: HubSpot sandbox at {base_url} (Free tier limits: 100 requests per 10 s)");

    let store = SqliteStore::open_worker(&cfg.state_url()).await?;
    let source = SqliteSource::open(&cfg.source_url()).await?;
    crmsync_engine::install(&cfg, &source).await?;
    let calls = CallBuffer::default();
    let crm = super::common::hubspot_client(&cfg, &calls)?;
    let engine = Engine::new(cfg, crm, store, source, calls);
    let report = engine.push_once(&Bars::new()).await?;

    println!();
    print_report(&report);
    println!();
    let invalid = engine.store.quarantined("contacts").await?;
    let (bad, held): (Vec<_>, Vec<_>) =
        invalid.iter().partition(|q| q.kind != QuarantineKind::Held);
    println!(
        "{} contacts quarantined as invalid (of {} generated with a broken address), {} waiting for e-mail confirmation; not sent:",
        bad.len(),
        generated.invalid_emails,
        held.len()
    );
    for q in bad.iter().take(4) {
        println!("  customers/{}: {}", q.local_id, q.message);
    }
    if let Some(counts) = crm_counts(&base_url).await {
        println!("The sandbox CRM now holds {counts}.");
    }
    match &args.dir {
        Some(d) => println!(
            "\nFiles kept in {}. Inspect with `crmsync status --config {}`.",
            d.display(),
            config_path.display()
        ),
        None => println!("\nUse --dir DIR to keep the generated files."),
    }
    if let Some(s) = sandbox {
        s.shutdown().await;
    }
    let failed: u64 = report.syncs.iter().map(|s| s.rejected + s.failed).sum();
    Ok(if failed > 0 {
        ExitCode::from(FAILURE)
    } else {
        ExitCode::SUCCESS
    })
}

/// "N companies, N contacts, N deals" from the sandbox's admin endpoint, when it has one.
async fn crm_counts(base_url: &str) -> Option<String> {
    let v: serde_json::Value = reqwest::get(format!("{base_url}/_sandbox/stats"))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let o = v.get("objects")?;
    Some(format!(
        "{} companies, {} contacts, {} deals",
        o.get("companies")?.as_u64()?,
        o.get("contacts")?.as_u64()?,
        o.get("deals")?.as_u64()?
    ))
}
