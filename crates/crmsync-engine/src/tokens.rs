//! [`StateTokens`]: the CRM client's [`TokenStore`] over the state database, so that every
//! worker of a connection shares one OAuth access token: the refresher's lease is a leader
//! lease of [`Coordination`], the token a row of [`Tokens`].
//!
//! Invariant: nothing here reads or changes a token; sealed text passes through as it is, and
//! a state failure is a retryable [`ErrorKind::Transport`] (the client then refreshes alone).

use std::time::Duration;

use crmsync_crm::http::BoxFuture;
use crmsync_crm::{CrmError, ErrorKind, SharedToken, TokenStore};
use crmsync_store::{Coordination, StoreError, StoredToken, Tokens};

/// The shared token store of a state database.
#[derive(Debug, Clone)]
pub struct StateTokens<S> {
    state: S,
}

impl<S> StateTokens<S> {
    pub fn new(state: S) -> Self {
        StateTokens { state }
    }
}

fn state_error(e: StoreError) -> CrmError {
    CrmError::new(
        ErrorKind::Transport,
        format!("the state database failed while sharing the oauth token: {e}"),
    )
}

impl<S: Tokens + Coordination + 'static> TokenStore for StateTokens<S> {
    fn load<'a>(
        &'a self,
        connection: &'a str,
    ) -> BoxFuture<'a, Result<Option<SharedToken>, CrmError>> {
        Box::pin(async move {
            let stored = self.state.token(connection).await.map_err(state_error)?;
            Ok(stored.map(|t| SharedToken {
                sealed: t.sealed,
                obtained_at_ms: t.obtained_at_ms,
                expires_at_ms: t.expires_at_ms,
            }))
        })
    }

    fn save<'a>(
        &'a self,
        connection: &'a str,
        token: &'a SharedToken,
        refused: Option<&'a str>,
    ) -> BoxFuture<'a, Result<bool, CrmError>> {
        Box::pin(async move {
            let stored = StoredToken {
                sealed: token.sealed.clone(),
                obtained_at_ms: token.obtained_at_ms,
                expires_at_ms: token.expires_at_ms,
            };
            self.state
                .store_token(connection, &stored, refused)
                .await
                .map_err(state_error)
        })
    }

    fn lead<'a>(
        &'a self,
        task: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, CrmError>> {
        Box::pin(async move {
            self.state
                .try_lead(task, owner, ttl, crmsync_store::now_ms())
                .await
                .map_err(state_error)
        })
    }

    fn resign<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<(), CrmError>> {
        Box::pin(async move { self.state.resign(owner).await.map_err(state_error) })
    }
}
