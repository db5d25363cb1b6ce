//! The state every handler shares: configuration, the org, issued tokens, the daily limiter,
//! the fault dice and call statistics. Invariant: locks are taken one at a time and never
//! held across an `.await`.

use std::sync::{Arc, Mutex, MutexGuard};

use super::auth::Tokens;
use super::config::SalesforceConfig;
use super::ids;
use super::limits::DailyLimiter;
use super::org::Org;
use super::stats::Stats;
use crate::hubspot::faults::Faults;

struct Shared {
    config: SalesforceConfig,
    org_id: String,
    integration_user: String,
    ui_user: String,
    org: Mutex<Org>,
    tokens: Mutex<Tokens>,
    limiter: Mutex<DailyLimiter>,
    faults: Mutex<Faults>,
    stats: Mutex<Stats>,
    save: Mutex<()>,
}

/// Cheap to clone; all clones share the org.
#[derive(Clone)]
pub(crate) struct SfState(Arc<Shared>);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking handler must not take the whole sandbox down with it.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SfState {
    pub fn new(config: &SalesforceConfig, org: Org) -> Self {
        let org_id = ids::normalize(&config.org_id)
            .filter(|id| id.starts_with("00D"))
            .unwrap_or_else(|| ids::to18("00D000000000001"));
        let integration_user = ids::to18("005000000000001");
        let ui_user = ids::to18("005000000000002");
        Self(Arc::new(Shared {
            org_id,
            tokens: Mutex::new(Tokens::new(&config.refresh_token, &integration_user)),
            integration_user,
            ui_user,
            org: Mutex::new(org),
            limiter: Mutex::new(DailyLimiter::new(config.daily_limit)),
            faults: Mutex::new(Faults::new(config.faults.clone())),
            stats: Mutex::new(Stats::default()),
            save: Mutex::new(()),
            config: config.clone(),
        }))
    }

    pub fn config(&self) -> &SalesforceConfig {
        &self.0.config
    }

    pub fn org_id(&self) -> &str {
        &self.0.org_id
    }

    pub fn integration_user(&self) -> &str {
        &self.0.integration_user
    }

    pub fn ui_user(&self) -> &str {
        &self.0.ui_user
    }

    pub fn users(&self) -> Vec<String> {
        vec![self.0.integration_user.clone(), self.0.ui_user.clone()]
    }

    pub fn org(&self) -> MutexGuard<'_, Org> {
        lock(&self.0.org)
    }

    pub fn tokens(&self) -> MutexGuard<'_, Tokens> {
        lock(&self.0.tokens)
    }

    pub fn limiter(&self) -> MutexGuard<'_, DailyLimiter> {
        lock(&self.0.limiter)
    }

    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        lock(&self.0.faults)
    }

    pub fn stats(&self) -> MutexGuard<'_, Stats> {
        lock(&self.0.stats)
    }

    /// Serialises state-file writes so an older snapshot never overwrites a newer one.
    pub fn save_lock(&self) -> MutexGuard<'_, ()> {
        lock(&self.0.save)
    }
}
