//! Shared application state handed to every handler.
//!
//! One `Mutex` per concern (data, limiter, stats, faults, OAuth tokens, webhooks); no guard is ever held
//! across an `.await`, and no two are held at once except store-then-nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use super::faults::Faults;
use super::limits::{Limiter, Limits};
use super::oauth::OAuthTokens;
use super::stats::Stats;
use super::store::Store;
use super::webhooks::Webhooks;
use crate::SandboxConfig;

/// Search limits and index lag (FACTS 2.5).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SearchRules {
    pub max_groups: usize,
    pub max_filters_per_group: usize,
    pub max_filters: usize,
    pub lag: Duration,
}

/// Cheap to clone: everything lives behind one `Arc`.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Shared>);

pub(crate) struct Shared {
    token: Option<String>,
    other_tokens: BTreeMap<String, u64>,
    portal_id: u64,
    account_type: String,
    app_id: u64,
    search: SearchRules,
    store: Mutex<Store>,
    limiter: Mutex<Limiter>,
    stats: Mutex<Stats>,
    faults: Mutex<Faults>,
    oauth: Mutex<OAuthTokens>,
    webhooks: Mutex<Webhooks>,
    webhook_wake: Notify,
    persist_wake: Notify,
}

/// A poisoned lock only means another request panicked; the data is still consistent
/// because every mutation completes before the guard drops.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl AppState {
    pub fn new(config: &SandboxConfig) -> Self {
        let limits = Limits {
            interval_limit: config.interval_limit,
            interval_ms: config.interval_ms,
            daily_limit: config.daily_limit,
            search_per_second: config.search_per_second,
        };
        let mut store = Store::new();
        store.outbox.enabled = config.webhooks.is_some();
        AppState(Arc::new(Shared {
            token: config.token.clone(),
            other_tokens: config.other_tokens.clone(),
            portal_id: config.portal_id,
            account_type: config.account_type.clone(),
            app_id: config.app_id,
            search: SearchRules {
                max_groups: config.search_max_filter_groups,
                max_filters_per_group: config.search_max_filters_per_group,
                max_filters: config.search_max_filters,
                lag: Duration::from_millis(config.search_lag_ms),
            },
            store: Mutex::new(store),
            limiter: Mutex::new(Limiter::new(limits)),
            stats: Mutex::new(Stats::default()),
            faults: Mutex::new(Faults::new(config.faults.clone())),
            oauth: Mutex::new(OAuthTokens::new(config.oauth.clone())),
            webhooks: Mutex::new(Webhooks::new(config.webhooks.clone())),
            webhook_wake: Notify::new(),
            persist_wake: Notify::new(),
        }))
    }

    /// The configured token, if only one token is accepted.
    pub fn token(&self) -> Option<&str> {
        self.0.token.as_deref()
    }

    /// Tokens of "other users" (token → user id).
    pub fn other_tokens(&self) -> &BTreeMap<String, u64> {
        &self.0.other_tokens
    }

    /// The emulated portal (hub) id.
    pub fn portal_id(&self) -> u64 {
        self.0.portal_id
    }

    /// Calls counted against today's limit, and that limit (`None`: off).
    pub fn daily_usage(&self) -> (u64, Option<u32>) {
        self.limiter().usage(std::time::Instant::now()).daily_used()
    }

    /// The emulated account type (`SANDBOX`, `STANDARD`, …).
    pub fn account_type(&self) -> &str {
        &self.0.account_type
    }

    /// The id of the app the integration token belongs to.
    pub fn app_id(&self) -> u64 {
        self.0.app_id
    }

    pub fn search_rules(&self) -> SearchRules {
        self.0.search
    }

    pub fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.0.store)
    }

    pub fn limiter(&self) -> MutexGuard<'_, Limiter> {
        lock(&self.0.limiter)
    }

    pub fn stats(&self) -> MutexGuard<'_, Stats> {
        lock(&self.0.stats)
    }

    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        lock(&self.0.faults)
    }

    pub fn oauth(&self) -> MutexGuard<'_, OAuthTokens> {
        lock(&self.0.oauth)
    }

    pub fn webhooks(&self) -> MutexGuard<'_, Webhooks> {
        lock(&self.0.webhooks)
    }

    pub fn webhook_wake(&self) -> &Notify {
        &self.0.webhook_wake
    }

    pub fn persist_wake(&self) -> &Notify {
        &self.0.persist_wake
    }

    /// Tells the background tasks that the store may have changed.
    pub fn changed(&self) {
        self.0.webhook_wake.notify_one();
        self.0.persist_wake.notify_one();
    }
}
