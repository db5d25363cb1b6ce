//! `crmsync schema export|diff|apply`: the CRM configuration the mappings rely on (custom
//! properties, property groups, pipelines and stages) as code. `export` and `diff` only read
//! the CRM and never open the state database; `apply` writes, so it runs behind the
//! environment guard and the shared API budget like a sync, and changes only what its plan
//! lists (never removes without `--prune`).
//!
//! Exit codes: 0 no differences (or all applied), 1 differences remain (diff: any; apply:
//! those only a person can make), 2 a config, schema file or usage error.

use super::common::{crm_client, engine_beside_worker, load_config};
use crate::exit::{FAILURE, UsageError};
use anyhow::Context;
use crmsync_core::config::{Config, Secrets};
use crmsync_crm::schema_doc::SchemaDoc;
use crmsync_crm::{AnyCrm, Crm};
use crmsync_engine::CallBuffer;
use crmsync_engine::schema::diff::SchemaPlan;
use crmsync_engine::schema::{self, apply, declared_path, load_doc, objects_of, plan_against};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct SchemaArgs {
    #[command(subcommand)]
    pub command: SchemaCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum SchemaCommand {
    /// Write the live CRM's configuration for the synced objects (custom properties, property
    /// groups, pipelines with their stages) as TOML, to stdout or --out FILE.
    Export(ExportArgs),
    /// Print what `apply` would change in the config's CRM (+ create, ~ change, - remove):
    /// against the config's `[crm] schema` file (default; without one, what its mappings need),
    /// a file, or another config's CRM. Exit 0 and "No changes" when they match, 1 when they
    /// differ.
    Diff(DiffArgs),
    /// Make the config's CRM match (create what is missing, change what differs; remove only
    /// with --prune). A second apply makes no write call.
    Apply(ApplyArgs),
}

/// `--config FILE`: the CRM the command reads or changes.
#[derive(Debug, clap::Args)]
pub struct TargetArg {
    /// The crmsync config whose CRM is read or changed.
    #[arg(short, long, default_value = "crmsync.toml", env = "CRMSYNC_CONFIG")]
    pub config: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub target: TargetArg,
    /// Write the TOML to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Where the desired configuration comes from.
#[derive(Debug, clap::Args)]
#[group(multiple = false)]
pub struct Desired {
    /// A schema file (as `schema export` writes it).
    #[arg(long, value_name = "FILE")]
    pub against: Option<PathBuf>,
    /// The live CRM of another config (a test portal, say), for the objects both configs sync.
    #[arg(long, value_name = "CONFIG")]
    pub against_config: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub target: TargetArg,
    #[command(flatten)]
    pub desired: Desired,
    /// Also list what the CRM has and the desired configuration does not, as removals.
    #[arg(long)]
    pub prune: bool,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub target: TargetArg,
    /// A schema file to apply (default: the config's `[crm] schema`).
    #[arg(long, value_name = "FILE", conflicts_with = "from_config")]
    pub from: Option<PathBuf>,
    /// Apply another config's live CRM configuration (a test portal's, say).
    #[arg(long, value_name = "CONFIG")]
    pub from_config: Option<PathBuf>,
    /// Also remove what the CRM has and the desired configuration does not.
    #[arg(long)]
    pub prune: bool,
    /// Print the plan and the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: SchemaArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        SchemaCommand::Export(a) => export(a).await,
        SchemaCommand::Diff(a) => diff(a).await,
        SchemaCommand::Apply(a) => apply_cmd(a).await,
    }
}

/// The CRM account's name for headers (`hubspot:123`), or its API root when it does not say.
async fn account_name(config: &Config, crm: &AnyCrm) -> String {
    match crm.account().await {
        Ok(Some(a)) => a.id,
        _ => format!(
            "{} at {}",
            config.raw.crm.kind.as_str(),
            config.raw.crm.base_url()
        ),
    }
}

async fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.target.config, Secrets::Required)?;
    let crm = crm_client(&config, &CallBuffer::default())?;
    let objects = objects_of(&config)?;
    let doc = schema::export(&crm, &objects).await?;
    let text = schema::to_toml(&doc, &account_name(&config, &crm).await)?;
    match &args.out {
        Some(path) => {
            std::fs::write(path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "wrote the configuration of {} to {}",
                objects
                    .iter()
                    .map(|o| o.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The desired document and a name for it: a file, another config's live CRM, or the config's
/// declared schema (an empty document for its synced objects when it declares none, so the
/// mapping's needs are still checked). `full` is false for that last case: nothing to prune by.
async fn desired(
    config: &Config,
    file: Option<&PathBuf>,
    other: Option<&PathBuf>,
) -> anyhow::Result<(SchemaDoc, String, bool)> {
    if let Some(path) = file {
        let doc = load_doc(path).map_err(|e| UsageError(e.to_string()))?;
        return Ok((doc, path.display().to_string(), true));
    }
    if let Some(path) = other {
        let other = load_config(path, Secrets::Required)?;
        let crm = crm_client(&other, &CallBuffer::default())?;
        let mine = objects_of(config)?;
        let objects: Vec<_> = objects_of(&other)?
            .into_iter()
            .filter(|o| mine.contains(o))
            .collect();
        let doc = schema::export(&crm, &objects).await?;
        let name = format!("{} ({})", account_name(&other, &crm).await, path.display());
        return Ok((doc, name, true));
    }
    if let Some(path) = declared_path(config) {
        let doc = load_doc(&path).map_err(|e| UsageError(e.to_string()))?;
        return Ok((doc, path.display().to_string(), true));
    }
    let mut doc = SchemaDoc::default();
    for object in objects_of(config)? {
        doc.objects
            .insert(object.as_str().to_string(), Default::default());
    }
    Ok((
        doc,
        format!("what {}'s mappings need", config.path.display()),
        false,
    ))
}

async fn diff(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.target.config, Secrets::Required)?;
    let (doc, source, full) = desired(
        &config,
        args.desired.against.as_ref(),
        args.desired.against_config.as_ref(),
    )
    .await?;
    refuse_prune_without_document(args.prune, full)?;
    let crm = crm_client(&config, &CallBuffer::default())?;
    let plan = plan_against(&config, &crm, &doc, args.prune).await?;
    let target = account_name(&config, &crm).await;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&plan_json(&plan, &target, &source, None))?
        );
    } else {
        print_plan(&plan, &target, &source, args.prune || !full);
    }
    Ok(if plan.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FAILURE)
    })
}

async fn apply_cmd(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.target.config, Secrets::Required)?;
    let (doc, source, full) =
        desired(&config, args.from.as_ref(), args.from_config.as_ref()).await?;
    refuse_prune_without_document(args.prune, full)?;
    // Writes: behind the environment guard (exit 2 before any write) and the shared budget.
    let engine = engine_beside_worker(config).await?;
    let plan = plan_against(&engine.config, &engine.crm, &doc, args.prune).await?;
    let target = account_name(&engine.config, &engine.crm).await;
    if !args.json {
        print_plan(&plan, &target, &source, args.prune || !full);
    }
    let applied = apply(&engine.crm, &plan).await;
    // The calls made so far reach the call log whatever happened.
    engine.flush_calls().await?;
    let applied = applied?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&plan_json(&plan, &target, &source, Some(applied.done)))?
        );
    } else if !plan.changes.is_empty() {
        println!("Applied {} change(s) to {target}.", applied.done);
    }
    Ok(if plan.manual.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FAILURE)
    })
}

fn refuse_prune_without_document(prune: bool, full: bool) -> anyhow::Result<()> {
    if prune && !full {
        return Err(UsageError(
            "--prune needs a desired configuration to prune by: a schema file (--against/--from or [crm] schema) or another config's CRM"
                .to_string(),
        )
        .into());
    }
    Ok(())
}

fn plan_json(
    plan: &SchemaPlan,
    target: &str,
    source: &str,
    applied: Option<usize>,
) -> serde_json::Value {
    let (create, change, remove) = counts(plan);
    serde_json::json!({
        "target": target,
        "desired": source,
        "changes": plan.changes,
        "manual": plan.manual,
        "extra": plan.extra.iter().map(|(o, item)| serde_json::json!({"object": o, "item": item})).collect::<Vec<_>>(),
        "summary": {"create": create, "change": change, "remove": remove, "manual": plan.manual.len()},
        "applied": applied,
    })
}

fn counts(plan: &SchemaPlan) -> (usize, usize, usize) {
    let of = |sign: char| {
        plan.changes
            .iter()
            .filter(|c| c.change.sign() == sign)
            .count()
    };
    (of('+'), of('~'), of('-'))
}

/// The Terraform-like plan: one line per change, the changed fields beneath. `quiet_extra`
/// leaves out the count of what the CRM has beyond the document (pruned, or nothing to prune by).
fn print_plan(plan: &SchemaPlan, target: &str, source: &str, quiet_extra: bool) {
    println!("CRM {target}, compared with {source}:");
    if plan.is_empty() {
        println!("\nNo changes: the CRM matches.");
    } else {
        println!();
        for c in &plan.changes {
            println!(
                "  {} {} {}{}",
                c.change.sign(),
                c.change.object(),
                c.change.item(),
                summary(&c.change)
            );
            for f in &c.fields {
                println!("      {}: {:?} -> {:?}", f.field, f.from, f.to);
            }
        }
        for m in &plan.manual {
            println!("  ! {} {}: {}", m.object, m.item, m.why);
        }
        let (create, change, remove) = counts(plan);
        println!(
            "\nPlan: {create} to create, {change} to change, {remove} to remove; {} for a person (!).",
            plan.manual.len()
        );
    }
    if !plan.extra.is_empty() && !quiet_extra {
        println!(
            "({} item(s) in the CRM are not in {source}: kept; --prune lists them as removals)",
            plan.extra.len()
        );
    }
}

/// A short description of what a created item is.
fn summary(change: &crmsync_crm::SchemaChange) -> String {
    use crmsync_crm::SchemaChange as C;
    match change {
        C::CreateProperty { def, .. } => {
            let mut parts = vec![if def.field_type.is_empty() {
                def.kind.clone()
            } else {
                format!("{}/{}", def.kind, def.field_type)
            }];
            if let Some(g) = &def.group {
                parts.push(format!("group {g}"));
            }
            if def.unique {
                parts.push("unique".into());
            }
            if !def.options.is_empty() {
                parts.push(format!("{} options", def.options.len()));
            }
            format!(" ({})", parts.join(", "))
        }
        C::CreateGroup { def, .. } => format!(" ({:?})", def.label),
        C::CreatePipeline { def, .. } => format!(" ({} stages)", def.stages.len()),
        C::CreateStage { display_order, .. } => format!(" (position {display_order})"),
        _ => String::new(),
    }
}
