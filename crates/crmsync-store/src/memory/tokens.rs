//! [`Tokens`] in memory: one entry per connection, replaced under the one lock only by a token
//! that expires later or in place of the refused one (the SQLite statement's rule).

use super::MemoryState;
use crate::Tokens;
use crate::error::StoreError;
use crate::model::StoredToken;

impl Tokens for MemoryState {
    async fn token(&self, connection: &str) -> Result<Option<StoredToken>, StoreError> {
        Ok(self.lock().tokens.get(connection).cloned())
    }

    async fn store_token(
        &self,
        connection: &str,
        token: &StoredToken,
        refused: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let replace = inner.tokens.get(connection).is_none_or(|stored| {
            token.expires_at_ms > stored.expires_at_ms || refused == Some(stored.sealed.as_str())
        });
        if replace {
            inner.tokens.insert(connection.to_string(), token.clone());
        }
        Ok(replace)
    }
}
