//! `crmsync demo`: generate the sample order system, start the sandbox CRM in-process (HubSpot,
//! or Salesforce with `--crm salesforce`; or use `--crm-url`), sync everything with progress
//! bars, and print what happened.

use super::sync::print_report;
use crate::demo::config::DbLine;
use crate::demo::{config, data};
use crate::exit::{FAILURE, UsageError};
use crate::progress::Bars;
use anyhow::Context;
use crmsync_core::config::{Secrets, load_str};
use crmsync_sandbox::{SalesforceConfig, SalesforceSandbox, Sandbox, SandboxConfig};
use crmsync_store::{QuarantineKind, Records};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// The token the demo gives its in-process sandbox (which accepts any token).
const DEMO_TOKEN: &str = "sandbox-demo-token";
/// The Salesforce flavour's default connected-app secret and refresh token (docs/sandbox.md).
const SF_SECRET: &str = "sandbox-secret";
const SF_REFRESH: &str = "sandbox-refresh-token";

/// Which CRM the demo syncs into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoCrm {
    Hubspot,
    Salesforce,
}

/// The in-process CRM of a demo run.
enum DemoSandbox {
    Hubspot(Sandbox),
    Salesforce(SalesforceSandbox),
}

impl DemoSandbox {
    fn base_url(&self) -> String {
        match self {
            DemoSandbox::Hubspot(s) => s.base_url(),
            DemoSandbox::Salesforce(s) => s.base_url(),
        }
    }

    async fn shutdown(self) {
        match self {
            DemoSandbox::Hubspot(s) => s.shutdown().await,
            DemoSandbox::Salesforce(s) => s.shutdown().await,
        }
    }
}

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
    /// The CRM to sync into: the built-in HubSpot sandbox, or the Salesforce one.
    #[arg(long, value_enum, default_value = "hubspot")]
    pub crm: DemoCrm,
    /// Use a sandbox (or a server of the `--crm` kind) already running at this URL.
    #[arg(long)]
    pub crm_url: Option<String>,
    /// Seed of the data generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Write the order system into this app database instead of `DIR/orders.db`: an empty
    /// PostgreSQL (`postgres://...`) or MySQL/MariaDB (`mysql://...`) database, or a SQLite file.
    #[arg(long)]
    pub source: Option<String>,
    /// Keep crmsync's state in this database instead of `DIR/crmsync-state.db`
    /// (`postgres://...` lets several `crmsync run` workers share it).
    #[arg(long)]
    pub state: Option<String>,
    /// Prepare the database, change capture and `crmsync.toml`, but sync nothing (then start
    /// one or more `crmsync run` against a running `crmsync sandbox`).
    #[arg(long)]
    pub no_sync: bool,
}

/// The environment variables the written config names for database URLs with a password.
const SOURCE_URL_ENV: &str = "CRMSYNC_DEMO_SOURCE_URL";
const STATE_URL_ENV: &str = "CRMSYNC_DEMO_STATE_URL";

/// How the config refers to `url`: inline, or through `env` when it carries a password.
fn db_line(url: &str, env: &'static str) -> DbLine {
    if crmsync_core::config::validate::has_password(url) {
        DbLine::Env(env)
    } else {
        DbLine::Url(url.to_string())
    }
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
    let source_url = args
        .source
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", db.display()));
    let state_url = args.state.clone();
    if (args.source.is_none() && db.exists())
        || (state_url.is_none() && dir.join("crmsync-state.db").exists())
    {
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
    let generated = match data::generate(&source_url, args.customers, args.orders, args.seed).await
    {
        Ok(g) => g,
        Err(data::DemoDataError::Exists(why)) => return Err(UsageError(why).into()),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "cannot write the demo's order system into {}",
                crmsync_store::backend::redact_url(&source_url)
            )));
        }
    };

    let sandbox = match &args.crm_url {
        _ if args.no_sync => None,
        Some(_) => None,
        None => Some(match args.crm {
            DemoCrm::Hubspot => DemoSandbox::Hubspot(
                Sandbox::start("127.0.0.1:0", SandboxConfig::default())
                    .await
                    .context("cannot start the sandbox")?,
            ),
            DemoCrm::Salesforce => DemoSandbox::Salesforce(
                SalesforceSandbox::start("127.0.0.1:0", SalesforceConfig::default())
                    .await
                    .context("cannot start the Salesforce sandbox")?,
            ),
        }),
    };
    let base_url = match (&args.crm_url, &sandbox) {
        (Some(u), _) => u.trim_end_matches('/').to_string(),
        (None, Some(s)) => s.base_url(),
        (None, None) => "http://127.0.0.1:4010".to_string(),
    };
    let config_path = dir.join("crmsync.toml");
    // The written config points at the standard sandbox port, where `crmsync sandbox` listens;
    // this run uses the in-process sandbox's own address.
    let written_url = args
        .crm_url
        .clone()
        .unwrap_or_else(|| "http://127.0.0.1:4010".to_string());
    let source_line = match &args.source {
        // The default file sits beside the config: a relative path keeps the folder movable.
        None => DbLine::Url("sqlite://orders.db".into()),
        Some(u) => db_line(u, SOURCE_URL_ENV),
    };
    let state_line = match &state_url {
        None => DbLine::Url("sqlite://crmsync-state.db".into()),
        Some(u) => db_line(u, STATE_URL_ENV),
    };
    let text = match args.crm {
        DemoCrm::Hubspot => config::render(&written_url, &source_line, &state_line),
        DemoCrm::Salesforce => config::render_salesforce(&written_url, &source_line, &state_line),
    };
    std::fs::write(&config_path, &text)
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let env = |name: &str| match name {
        SOURCE_URL_ENV => Some(source_url.clone()),
        STATE_URL_ENV => state_url.clone(),
        _ => std::env::var(name).ok().or_else(|| match name {
            "HUBSPOT_ACCESS_TOKEN" => Some(DEMO_TOKEN.to_string()),
            "SALESFORCE_CLIENT_SECRET" => Some(SF_SECRET.to_string()),
            "SALESFORCE_REFRESH_TOKEN" => Some(SF_REFRESH.to_string()),
            _ => None,
        }),
    };
    let mut cfg = load_str(&text, &config_path, Secrets::Required, &env)?;
    match args.crm {
        DemoCrm::Hubspot => cfg.raw.crm.base_url = Some(base_url.clone()),
        DemoCrm::Salesforce => cfg.raw.crm.login_url = Some(base_url.clone()),
    }
    println!(
        "Generated {} customers ({} with a broken e-mail address, {} unconfirmed) and {} orders in {}",
        generated.customers,
        generated.invalid_emails,
        generated.unconfirmed_emails,
        generated.orders,
        crmsync_store::backend::redact_url(&source_url)
    );

    if args.no_sync {
        let source = crmsync_store::open_source(&cfg.source_url()).await?;
        let tables = crmsync_engine::install(&cfg, &source).await?;
        // Migrates the state database, so the workers start on a ready one.
        crmsync_store::open_state(&cfg.state_url(), crmsync_store::Role::Beside).await?;
        println!(
            "Change capture installed on {}; nothing synced (--no-sync).",
            tables.join(", ")
        );
        let mut exports = Vec::new();
        if matches!(source_line, DbLine::Env(_)) {
            exports.push(format!("export {SOURCE_URL_ENV}='<the --source URL>'"));
        }
        if matches!(state_line, DbLine::Env(_)) {
            exports.push(format!("export {STATE_URL_ENV}='<the --state URL>'"));
        }
        println!(
            "\nNext: start the CRM and one or more workers (each takes its share of the backfill):"
        );
        match written_url
            .strip_prefix("http://127.0.0.1:")
            .and_then(|p| p.parse::<u16>().ok())
        {
            Some(port) if args.crm == DemoCrm::Salesforce => {
                println!("  crmsync sandbox --flavour salesforce --port {port} &")
            }
            Some(port) => println!("  crmsync sandbox --port {port} &"),
            None => println!("  # the CRM at {written_url} must be reachable"),
        }
        for e in exports {
            println!("  {e}");
        }
        match args.crm {
            DemoCrm::Hubspot => println!("  export HUBSPOT_ACCESS_TOKEN=any-token"),
            DemoCrm::Salesforce => println!(
                "  export SALESFORCE_CLIENT_SECRET={SF_SECRET} SALESFORCE_REFRESH_TOKEN={SF_REFRESH}"
            ),
        }
        println!(
            "  crmsync run --config {} &   # as many as you like with a PostgreSQL state",
            config_path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    match args.crm {
        DemoCrm::Hubspot => {
            println!("CRM: HubSpot sandbox at {base_url} (Free tier limits: 100 requests per 10 s)")
        }
        DemoCrm::Salesforce => println!(
            "CRM: Salesforce sandbox at {base_url} (100,000 requests per rolling 24 hours)"
        ),
    }
    let mut engine = super::common::engine(cfg).await?;
    crmsync_engine::install(&engine.config, &engine.app).await?;
    let bars = Arc::new(Bars::new());
    engine.telemetry = bars.clone();
    let report = engine.push_once().await?;
    bars.finish();

    println!();
    print_report(&report);
    println!();
    let invalid = engine.state.quarantined("contacts").await?;
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
    if let Some(counts) = crm_counts(&base_url, args.crm).await {
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
async fn crm_counts(base_url: &str, crm: DemoCrm) -> Option<String> {
    let v: serde_json::Value = reqwest::get(format!("{base_url}/_sandbox/stats"))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    if crm == DemoCrm::Salesforce {
        let r = v.get("records")?;
        let live = |t: &str| r.get(t)?.get("live")?.as_u64();
        return Some(format!(
            "{} Accounts, {} Contacts, {} Opportunities",
            live("Account")?,
            live("Contact")?,
            live("Opportunity")?
        ));
    }
    let o = v.get("objects")?;
    Some(format!(
        "{} companies, {} contacts, {} deals",
        o.get("companies")?.as_u64()?,
        o.get("contacts")?.as_u64()?,
        o.get("deals")?.as_u64()?
    ))
}
