//! Opening the parts a command works with, from a config: the state database and the app
//! database (any backend, by URL), and the CRM client wired to the call log, to the shared
//! API budget and (a HubSpot public app) to the OAuth token the workers share in the state.

use anyhow::Context;
use crmsync_core::config::{self, Config, CrmKind, HubspotAuth, SalesforceAuth, Secrets};
use crmsync_crm::hubspot::{HubspotClient, HubspotConfig, HubspotOAuth};
use crmsync_crm::salesforce::{OAuthFlow, SalesforceClient, SalesforceConfig};
use crmsync_crm::{AnyCrm, TokenStore};
use crmsync_engine::{CallBuffer, Engine, StateTokens};
use crmsync_store::{AnySource, AnyState, Role, open_source, open_state};
use secrecy::SecretString;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The engine every command runs: any app database, any state database, the CRM the config names.
pub type Worker = Engine<AnySource, AnyState, AnyCrm>;

/// Loads and validates the config file.
pub fn load_config(path: &Path, secrets: Secrets) -> anyhow::Result<Config> {
    Ok(config::load(path, secrets)?)
}

/// Opens the state database of `config` beside any running worker, and the app database.
pub async fn open_databases(config: &Config) -> anyhow::Result<(AnyState, AnySource)> {
    let state = open_state(&config.state_url(), Role::Beside).await?;
    let source = open_source(&config.source_url()).await?;
    Ok((state, source))
}

/// Builds the CRM client `[crm] kind` names, reporting every call into `calls`, for a command
/// that does not open the state database (its OAuth token, if any, is its own).
pub fn crm_client(config: &Config, calls: &CallBuffer) -> anyhow::Result<AnyCrm> {
    crm_client_sharing(config, calls, None)
}

/// Builds the CRM client `[crm] kind` names, reporting every call into `calls`; a HubSpot
/// public app shares its access token with the other workers through `tokens`.
pub fn crm_client_sharing(
    config: &Config,
    calls: &CallBuffer,
    tokens: Option<Arc<dyn TokenStore>>,
) -> anyhow::Result<AnyCrm> {
    Ok(match config.raw.crm.kind {
        CrmKind::Hubspot => hubspot_client(config, calls, tokens)?.into(),
        CrmKind::Salesforce => salesforce_client(config, calls)?.into(),
    })
}

/// Builds the Salesforce client of `config`: the OAuth flow `auth` names, with the secrets the
/// loader read (validation already said which the flow needs).
fn salesforce_client(config: &Config, calls: &CallBuffer) -> anyhow::Result<SalesforceClient> {
    let crm = &config.raw.crm;
    let secrets = config
        .salesforce
        .clone()
        .context("the Salesforce secrets were not loaded")?;
    let flow = match crm.salesforce_auth() {
        SalesforceAuth::RefreshToken => OAuthFlow::RefreshToken {
            client_secret: secrets.client_secret,
            refresh_token: secrets.refresh_token.context(
                "auth = \"refresh_token\" needs refresh_token_env or refresh_token_file",
            )?,
        },
        SalesforceAuth::ClientCredentials => OAuthFlow::ClientCredentials {
            client_secret: secrets.client_secret.context(
                "auth = \"client_credentials\" needs client_secret_env or client_secret_file",
            )?,
        },
        SalesforceAuth::JwtBearer => OAuthFlow::JwtBearer {
            username: crm
                .username
                .clone()
                .context("auth = \"jwt_bearer\" needs username")?,
            private_key_pem: secrets
                .private_key
                .context("auth = \"jwt_bearer\" needs private_key_file")?,
        },
    };
    let client_id = crm
        .client_id
        .clone()
        .context("[crm] client_id is missing")?;
    let mut sc = SalesforceConfig::new(crm.login_url(), client_id, flow);
    sc.api_version = crm.api_version().to_string();
    sc.connection = crmsync_engine::engine::connection_of(config);
    sc.timeout = Duration::from_millis(crm.timeout_ms);
    sc.retry = retry_policy(crm);
    Ok(SalesforceClient::new(sc, Some(calls.observer()))?)
}

/// Builds the HubSpot client of `config`, reporting every call into `calls`: a private app's
/// token, or a public app's OAuth credentials sharing their token through `tokens`.
fn hubspot_client(
    config: &Config,
    calls: &CallBuffer,
    tokens: Option<Arc<dyn TokenStore>>,
) -> anyhow::Result<HubspotClient> {
    let crm = &config.raw.crm;
    let mut hc = match crm.hubspot_auth() {
        HubspotAuth::PrivateApp => {
            let token: SecretString = config
                .token
                .clone()
                .context("the CRM token was not loaded")?;
            HubspotConfig::new(crm.base_url().to_string(), token)
        }
        HubspotAuth::Oauth => {
            let secrets = config
                .oauth
                .clone()
                .context("the HubSpot OAuth secrets were not loaded")?;
            let client_id = crm
                .client_id
                .clone()
                .context("[crm] client_id is missing")?;
            let oauth = HubspotOAuth {
                token_path: crm.token_path().to_string(),
                store: tokens,
                ..HubspotOAuth::new(client_id, secrets.client_secret, secrets.refresh_token)
            };
            HubspotConfig::with_oauth(crm.base_url().to_string(), oauth)
        }
    };
    hc.connection = crmsync_engine::engine::connection_of(config);
    hc.timeout = Duration::from_millis(crm.timeout_ms);
    hc.requests_per_interval = crm.requests_per_interval();
    hc.interval = Duration::from_millis(crm.interval_ms());
    hc.max_retries = crm.max_retries;
    hc.retry = retry_policy(crm);
    hc.headroom_percent = crm.headroom_percent();
    Ok(HubspotClient::new(hc, Some(calls.observer()))?)
}

/// The retry policy `[crm]` sets.
pub fn retry_policy(crm: &crmsync_core::config::CrmConfig) -> crmsync_crm::RetryPolicy {
    crmsync_crm::RetryPolicy {
        max_retries: crm.max_retries,
        base: Duration::from_millis(crm.retry_base_ms),
        cap: Duration::from_millis(crm.retry_cap_ms),
    }
}

/// The engine for `config` (token required) opened as `role`, its CRM calls admitted by the
/// shared budget in the state database, once the environment guard let it
/// ([`crmsync_engine::environment::guard`]: refused with exit 2 before any write).
pub async fn engine_as(config: Config, role: Role) -> anyhow::Result<Worker> {
    let state = open_state(&config.state_url(), role).await?;
    let source = open_source(&config.source_url()).await?;
    let calls = CallBuffer::default();
    // Every worker on this state shares one OAuth token (a HubSpot public app): one refreshes.
    let tokens: Arc<dyn TokenStore> = Arc::new(StateTokens::new(state.clone()));
    let crm = crm_client_sharing(&config, &calls, Some(tokens))?;
    let mut engine = Engine::new(config, source, state, crm, calls);
    let run = &engine.config.raw.run;
    engine.leases = crmsync_engine::Leases {
        job: Duration::from_millis(run.job_lease_ms),
        leader: Duration::from_millis(run.leader_lease_ms),
    };
    let gate = engine.budget_gate();
    engine.crm.set_gate(Arc::new(gate));
    // Before anything can write: the config's environment against the CRM account, and the
    // state's binding to one app database and one account (binding it on first use). After
    // the gate: the account read counts against the shared budget like every call.
    crmsync_engine::environment::guard(&engine.config, &engine.crm, &engine.state).await?;
    Ok(engine)
}

/// The engine for `config` as a delivering worker.
pub async fn engine(config: Config) -> anyhow::Result<Worker> {
    engine_as(config, Role::Worker).await
}

/// An engine on the state without taking the one-worker lock, for commands that only settle
/// state (e.g. `crmsync deletions --apply`) while `crmsync run` keeps running.
pub async fn engine_beside_worker(config: Config) -> anyhow::Result<Worker> {
    engine_as(config, Role::Beside).await
}

/// The start of `sync` and `run`: the mapping against the CRM's schema. A mapped property the
/// CRM lacks (or will not let us write) would fail every record of its sync, so the command is
/// refused before a single record is sent, unless `force`. When the mapping fits (or with
/// `force`), syncs stopped earlier for such an error may deliver again.
pub async fn preflight_or_refuse(engine: &Worker, force: bool) -> anyhow::Result<()> {
    let problems = crmsync_engine::check::preflight(&engine.config, &engine.crm).await?;
    if !problems.is_empty() && !force {
        let lines: Vec<String> = problems
            .iter()
            .map(|f| format!("  sync `{}`: {}", f.sync, f.message))
            .collect();
        return Err(crate::exit::UsageError(format!(
            "the CRM does not fit the mapping, so every record of these syncs would be refused:\n{}\nfix the CRM or the config (`crmsync check` shows all), or pass --force to start anyway",
            lines.join("\n")
        ))
        .into());
    }
    for f in &problems {
        crate::progress::warn_line(&format!("(--force): sync `{}`: {}", f.sync, f.message));
    }
    engine.clear_stops().await?;
    Ok(())
}

/// Refuses a sync name the config does not have, listing the ones it has (a usage error).
pub fn require_sync(config: &Config, name: &str) -> anyhow::Result<()> {
    if config.sync(name).is_some() {
        return Ok(());
    }
    let names: Vec<&str> = config.raw.syncs.iter().map(|s| s.name.as_str()).collect();
    Err(crate::exit::UsageError(format!(
        "no sync named `{name}`; syncs: {}",
        names.join(", ")
    ))
    .into())
}
