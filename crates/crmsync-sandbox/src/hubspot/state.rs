//! Shared application state handed to every handler.
//!
//! One `Mutex` per concern (data, limiter, stats); no guard is ever held across an `.await`.

use std::sync::{Arc, Mutex, MutexGuard};

use super::limits::{Limiter, Limits};
use super::stats::Stats;
use super::store::Store;
use crate::SandboxConfig;

/// Cheap to clone: everything lives behind one `Arc`.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Shared>);

pub(crate) struct Shared {
    token: Option<String>,
    portal_id: u64,
    store: Mutex<Store>,
    limiter: Mutex<Limiter>,
    stats: Mutex<Stats>,
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
        AppState(Arc::new(Shared {
            token: config.token.clone(),
            portal_id: config.portal_id,
            store: Mutex::new(Store::new()),
            limiter: Mutex::new(Limiter::new(limits)),
            stats: Mutex::new(Stats::default()),
        }))
    }

    /// The configured token, if only one token is accepted.
    pub fn token(&self) -> Option<&str> {
        self.0.token.as_deref()
    }

    /// The emulated portal (hub) id.
    pub fn portal_id(&self) -> u64 {
        self.0.portal_id
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
}
