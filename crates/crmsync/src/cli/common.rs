//! Opening the parts a command works with, from a config: the state store, the app database,
//! and the CRM client wired to the call log.

use anyhow::Context;
use crmsync_core::config::{self, Config, Secrets};
use crmsync_crm::hubspot::{HubspotClient, HubspotConfig};
use crmsync_engine::{CallBuffer, Engine};
use crmsync_store::{SqliteSource, SqliteStore};
use secrecy::SecretString;
use std::path::Path;
use std::time::Duration;

/// Loads and validates the config file.
pub fn load_config(path: &Path, secrets: Secrets) -> anyhow::Result<Config> {
    Ok(config::load(path, secrets)?)
}

/// Opens the state store and the app database of `config`.
pub async fn open_databases(config: &Config) -> anyhow::Result<(SqliteStore, SqliteSource)> {
    let store = SqliteStore::open(&config.state_url()).await?;
    let source = SqliteSource::open(&config.source_url()).await?;
    Ok((store, source))
}

/// Builds the HubSpot client of `config`, reporting every call into `calls`.
pub fn hubspot_client(config: &Config, calls: &CallBuffer) -> anyhow::Result<HubspotClient> {
    let crm = &config.raw.crm;
    let token: SecretString = config
        .token
        .clone()
        .context("the CRM token was not loaded")?;
    let mut hc = HubspotConfig::new(crm.base_url.clone(), token);
    hc.timeout = Duration::from_millis(crm.timeout_ms);
    hc.requests_per_interval = crm.requests_per_interval;
    hc.interval = Duration::from_millis(crm.interval_ms);
    hc.max_retries = crm.max_retries;
    hc.headroom_percent = crm.headroom_percent;
    Ok(HubspotClient::new(hc, Some(calls.observer()))?)
}

/// The engine for `config` (token required), as the one process delivering from its state.
pub async fn engine(config: Config) -> anyhow::Result<Engine<HubspotClient, SqliteStore>> {
    let store = SqliteStore::open_worker(&config.state_url()).await?;
    let source = SqliteSource::open(&config.source_url()).await?;
    let calls = CallBuffer::default();
    let crm = hubspot_client(&config, &calls)?;
    Ok(Engine::new(config, crm, store, source, calls))
}

/// An engine on the state without taking the delivery lock, for commands that only settle
/// state (e.g. `crmsync deletions --apply`) while `crmsync run` keeps running.
pub async fn engine_beside_worker(
    config: Config,
) -> anyhow::Result<Engine<HubspotClient, SqliteStore>> {
    let (store, source) = open_databases(&config).await?;
    let calls = CallBuffer::default();
    let crm = hubspot_client(&config, &calls)?;
    Ok(Engine::new(config, crm, store, source, calls))
}
