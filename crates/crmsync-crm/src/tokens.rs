//! [`TokenStore`]: where the workers of one CRM connection share its OAuth access token, so
//! that one of them refreshes it and the others use what it stored.
//!
//! The CRM crate does not know the state database (it must not depend on the store crate);
//! the binary hands the client an implementation over its state. Invariant of every
//! implementation: a token crosses this seam only as [`SharedToken::sealed`], text the client
//! encrypted and authenticated with a key of its own, so the store never holds, logs or
//! returns a usable token.

use std::time::Duration;

use crate::CrmError;
use crate::http::BoxFuture;

/// A connection's access token as the workers share it.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedToken {
    /// The token sealed by the client: opaque to the store.
    pub sealed: String,
    /// When it was obtained (ms since the epoch), so every worker refreshes at the same point
    /// of its lifetime.
    pub obtained_at_ms: i64,
    /// When the CRM said it expires (ms since the epoch).
    pub expires_at_ms: i64,
}

impl std::fmt::Debug for SharedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Sealed, but still nothing a log needs.
        f.debug_struct("SharedToken")
            .field("obtained_at_ms", &self.obtained_at_ms)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

/// The shared token and the refresher's lease of one connection.
///
/// Contract:
/// - [`TokenStore::load`] answers the token last stored for `connection`, expired or not.
/// - [`TokenStore::save`] stores `token` unless the stored one expires as late or later; a
///   stored token whose sealed text equals `refused` (the CRM refused it) is always replaced.
///   It answers whether it stored.
/// - [`TokenStore::lead`] takes or renews the lease `task` for `owner` for `ttl`: at most one
///   owner holds a task at any instant, across processes. [`TokenStore::resign`] gives up every
///   lease of `owner` (the client uses an owner of its own, so nothing else is given up).
/// - Errors are [`crate::ErrorKind::Transport`] (the state database is unreachable): the client
///   then refreshes on its own rather than stop calling the CRM.
pub trait TokenStore: Send + Sync {
    fn load<'a>(
        &'a self,
        connection: &'a str,
    ) -> BoxFuture<'a, Result<Option<SharedToken>, CrmError>>;

    fn save<'a>(
        &'a self,
        connection: &'a str,
        token: &'a SharedToken,
        refused: Option<&'a str>,
    ) -> BoxFuture<'a, Result<bool, CrmError>>;

    fn lead<'a>(
        &'a self,
        task: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, CrmError>>;

    fn resign<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<(), CrmError>>;
}

/// The leader task of the refresh of `connection`'s token.
pub fn refresh_task(connection: &str) -> String {
    format!("oauth-refresh:{connection}")
}
