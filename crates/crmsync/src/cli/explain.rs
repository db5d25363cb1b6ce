//! `crmsync explain <sync> <key>`: one record's story (source values, mapped payload or
//! problems, link and whether the CRM has the current payload, queue state, quarantine entry,
//! the calls around its last push). Reads only.

use super::ConfigArg;
use super::common::{load_config, open_databases, require_sync};
use crmsync_core::config::Secrets;
use crmsync_engine::explain::{Explanation, Mapped};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The sync's name, e.g. `contacts`.
    pub sync: String,
    /// The record's key in the app table (with `--crm-id`: its CRM id).
    pub key: String,
    /// KEY is a CRM record id: explain the app record linked to it, or why a record created
    /// in the CRM has no row (`on_crm_create = "insert"`: refused by the app database).
    #[arg(long)]
    pub crm_id: bool,
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print JSON for machines.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config.config, Secrets::NotNeeded)?;
    require_sync(&config, &args.sync)?;
    let (store, source) = open_databases(&config).await?;
    let e = if args.crm_id {
        crmsync_engine::explain::explain_crm(&config, &store, &source, &args.sync, &args.key)
            .await?
    } else {
        crmsync_engine::explain::explain(&config, &store, &source, &args.sync, &args.key).await?
    };
    if args.crm_id && e.link.is_none() && e.crm_create.is_none() && !args.json {
        println!(
            "{} CRM record {}: no app record is linked to it, and no insert of it is recorded",
            args.sync, args.key
        );
        return Ok(ExitCode::SUCCESS);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&e)?);
    } else {
        print(&e);
    }
    Ok(ExitCode::SUCCESS)
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

fn print(e: &Explanation) {
    if let Some(c) = &e.crm_create {
        println!(
            "{} CRM record {} ({}): no app row",
            e.sync, c.crm_id, e.object
        );
        match c.state.as_str() {
            "refused" => println!(
                "insert refused by the {} since {} ({} time(s)): {}{}",
                c.rule,
                time(c.first_seen_ms),
                c.attempts,
                c.message,
                if c.retry_requested {
                    "; retry requested"
                } else {
                    "; tried again when the record or the config changes, or on `crmsync retry`"
                }
            ),
            _ => println!(
                "insert under way since {} (an interrupted one is finished by the next round)",
                time(c.first_seen_ms)
            ),
        }
        return;
    }
    println!("{} record {} ({})", e.sync, e.key, e.object);
    match &e.source {
        None => println!("source: no such row (deleted, or another key)"),
        Some(values) => {
            println!("source:");
            for (k, v) in values {
                println!(
                    "  {k} = {}",
                    v.as_deref()
                        .map_or("NULL".to_string(), |v| format!("{v:?}"))
                );
            }
        }
    }
    match &e.mapped {
        None => {}
        Some(Mapped::Ready {
            properties,
            create_only,
            skipped,
            associations,
            hash,
        }) => {
            println!("mapped payload (hash {hash}):");
            for (k, v) in properties {
                println!("  {k} = {v:?}");
            }
            for (k, v) in create_only {
                println!("  {k} = {v:?} (create_only: sent only when the CRM record is created)");
            }
            for (field, rule, message) in skipped {
                println!("  {field} left out: {message} ({rule}; on_invalid = \"skip_field\")");
            }
            for (sync, id) in associations {
                println!("  associated to {sync} record {id}");
            }
        }
        Some(Mapped::Invalid { problems }) => {
            println!("invalid, not sent:");
            for (field, rule, message) in problems {
                println!("  {field}: {message} ({rule})");
            }
        }
        Some(Mapped::Held {
            field,
            rule,
            message,
        }) => println!("held: {field}: {message} ({rule})"),
    }
    match &e.link {
        None => println!("link: not in the CRM yet"),
        Some(l) => println!(
            "link: crm id {}, last push {}{}",
            l.crm_id.as_deref().unwrap_or("-"),
            l.pushed_at_ms.map_or("never".to_string(), time),
            match e.in_sync {
                Some(true) => "; the CRM has the current payload",
                Some(false) => "; the current payload differs from what the CRM accepted",
                None => "",
            }
        ),
    }
    if e.jobs.is_empty() {
        println!("queue: no job");
    }
    for j in &e.jobs {
        println!(
            "queue: {} job {}, {} attempt(s), due {}{}",
            j.direction,
            j.state,
            j.attempts,
            time(j.run_at_ms),
            j.last_error
                .as_deref()
                .map(|m| format!(", last error: {m}"))
                .unwrap_or_default()
        );
    }
    match &e.quarantine {
        None => println!("quarantine: none"),
        Some(q) => println!(
            "quarantine: {} since {} ({} time(s)): {}{} ({}){}",
            q.kind,
            time(q.first_seen_ms),
            q.attempts,
            q.field
                .as_deref()
                .map(|f| format!("{f}: "))
                .unwrap_or_default(),
            q.message,
            q.rule,
            if q.retry_requested {
                "; retry requested"
            } else {
                ""
            }
        ),
    }
    if !e.calls.is_empty() {
        println!("calls that may have carried it (the call log keeps no record ids):");
        for c in &e.calls {
            println!(
                "  {} {} {} -> {} (attempt {}, {} records){}",
                time(c.at_ms),
                c.method,
                c.endpoint,
                c.status.map_or("no answer".to_string(), |s| s.to_string()),
                c.attempt,
                c.records,
                c.error
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            );
        }
    }
}
