//! `crmsync conflicts` lists the fields parked for review (changed on both sides, `conflict =
//! "review"`); `crmsync resolve <id> --take app|crm` settles one. Taking the CRM's value writes
//! it into the app row; taking the app's makes it the agreed base, and the next push pass sends
//! it. Either way the record flows again once none of its conflicts is open.

use super::ConfigArg;
use super::common::load_config;
use crate::exit::UsageError;
use crmsync_core::config::Secrets;
use crmsync_core::mapping::map_value_back;
use crmsync_engine::inbound::decide::column_of;
use crmsync_store::{
    Lifecycle, PullRecord, Records, Role, RowWrite, Source, open_source, open_state,
};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ConflictsArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Only this sync's conflicts.
    #[arg(long)]
    pub sync: Option<String>,
}

/// Which side's value settles a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Side {
    App,
    Crm,
}

#[derive(Debug, clap::Args)]
pub struct ResolveArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The conflict's id, as `crmsync conflicts` lists it.
    pub id: i64,
    /// Keep the app's value (it is pushed) or the CRM's (it is written into the app).
    #[arg(long, value_enum)]
    pub take: Side,
}

pub async fn list(args: ConflictsArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config.config, Secrets::NotNeeded)?;
    let store = open_state(&config.state_url(), Role::Beside).await?;
    let open = store.open_conflicts(args.sync.as_deref()).await?;
    if open.is_empty() {
        println!("no open conflicts");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>5}  {:<12} {:<10} {:<16} {:<24} {:<24} {:<24}",
        "id", "sync", "record", "field", "app", "crm", "base"
    );
    for c in &open {
        println!(
            "{:>5}  {:<12} {:<10} {:<16} {:<24} {:<24} {:<24}",
            c.id,
            c.sync,
            c.local_id,
            c.column,
            c.app_value,
            c.crm_value,
            c.base_value.as_deref().unwrap_or("-")
        );
    }
    println!("settle one with `crmsync resolve <id> --take app|crm`");
    Ok(ExitCode::SUCCESS)
}

pub async fn resolve(args: ResolveArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config.config, Secrets::NotNeeded)?;
    let store = open_state(&config.state_url(), Role::Beside).await?;
    let Some(c) = store
        .open_conflicts(None)
        .await?
        .into_iter()
        .find(|c| c.id == args.id)
    else {
        return Err(UsageError(format!(
            "no open conflict {}; `crmsync conflicts` lists them",
            args.id
        ))
        .into());
    };
    let sync = config.sync(&c.sync).ok_or_else(|| {
        UsageError(format!(
            "conflict {} belongs to sync `{}`, which the config no longer has",
            c.id, c.sync
        ))
    })?;
    let base = match args.take {
        // The CRM's value becomes the base: it has been seen, and the app's value is the newer
        // change, which the next push sends (and the read before writing lets through).
        Side::App => c.crm_value.clone(),
        Side::Crm => {
            let (key, field) = sync
                .fields
                .iter()
                .find(|(_, f)| f.crm == c.field)
                .ok_or_else(|| {
                    UsageError(format!(
                        "sync `{}` no longer maps the CRM property `{}`",
                        c.sync, c.field
                    ))
                })?;
            let app = map_value_back(field, &c.crm_value).map_err(UsageError)?;
            let source = open_source(&config.source_url()).await?;
            source
                .write(
                    &sync.table,
                    &sync.key,
                    &[RowWrite {
                        key: c.local_id.clone(),
                        set: vec![(
                            column_of(key, field).to_string(),
                            (!app.is_empty()).then_some(app),
                        )],
                        expect: vec![],
                    }],
                )
                .await?;
            c.crm_value.clone()
        }
    };
    store
        .record_pulls(
            &c.sync,
            &[PullRecord {
                local_id: c.local_id.clone(),
                pushed_hash: None,
                pulled_hash: None,
                bases: vec![(c.field.clone(), base)],
            }],
        )
        .await?;
    store
        .resolve_conflict(
            c.id,
            match args.take {
                Side::App => "app",
                Side::Crm => "crm",
            },
        )
        .await?;
    println!(
        "conflict {} settled with the {} value; the next round syncs record {}",
        c.id,
        match args.take {
            Side::App => "app's",
            Side::Crm => "CRM's",
        },
        c.local_id
    );
    Ok(ExitCode::SUCCESS)
}
