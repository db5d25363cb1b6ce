//! `crmsync env`: which environment a config names, which app database and CRM account it
//! reaches, what its state database is bound to, and whether a sync would be allowed. Reads
//! only (one account call): it binds nothing, so it is safe before the first run.

use super::ConfigArg;
use super::common::{crm_client, load_config};
use crmsync_core::config::Secrets;
use crmsync_engine::CallBuffer;
use crmsync_engine::environment::{inspect, verdict};
use crmsync_store::{Role, open_state};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct EnvArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Prints the binding; exit 0 when a sync may write, 2 when the guard would refuse.
pub async fn run(args: EnvArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config.config, Secrets::Required)?;
    let state = open_state(&config.state_url(), Role::Beside).await?;
    let crm = crm_client(&config, &CallBuffer::default())?;
    let binding = inspect(&config, &crm, &state).await?;
    let refusal = verdict(&config, &binding).err().map(|e| e.to_string());
    if args.json {
        let out = serde_json::json!({
            "environment": binding.environment.as_str(),
            "app_database": binding.app_database,
            "crm_account": binding.account.as_ref().map(|a| serde_json::json!({
                "id": a.id, "kind": a.kind, "production": a.production,
            })),
            "allow_production_account": config.raw.crm.allow_production_account,
            "bound": {
                "app_database": binding.bound_app_database,
                "crm_account": binding.bound_account,
            },
            "allowed": refusal.is_none(),
            "refusal": refusal,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let account = binding
            .account
            .as_ref()
            .map_or_else(|| "(the CRM does not say)".to_string(), |a| a.to_string());
        let bound = |v: &Option<String>| {
            v.clone()
                .unwrap_or_else(|| "(not bound yet: the first sync binds it)".into())
        };
        println!("environment   {}", binding.environment.as_str());
        println!("app database  {}", binding.app_database);
        println!("CRM account   {account}");
        println!("state bound to");
        println!("  app database  {}", bound(&binding.bound_app_database));
        println!("  CRM account   {}", bound(&binding.bound_account));
        match &refusal {
            None => println!("writes        allowed"),
            Some(why) => println!("writes        REFUSED: {why}"),
        }
    }
    Ok(if refusal.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::exit::USAGE)
    })
}
