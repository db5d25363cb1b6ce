//! [`Tokens`] on SQLite: the `oauth_tokens` table (migration 0009). Storing is one upsert whose
//! `WHERE` keeps the trait's rule (a later expiry, or in place of the refused token), so the
//! decision and the write are one statement under SQLite's single writer.

use super::SqliteState;
use crate::Tokens;
use crate::error::StoreError;
use crate::model::StoredToken;

impl Tokens for SqliteState {
    async fn token(&self, connection: &str) -> Result<Option<StoredToken>, StoreError> {
        let row: Option<(String, i64, i64)> = sqlx::query_as(
            "SELECT sealed, obtained_at_ms, expires_at_ms FROM oauth_tokens WHERE connection = ?",
        )
        .bind(connection)
        .fetch_optional(self.pool())
        .await?;
        Ok(
            row.map(|(sealed, obtained_at_ms, expires_at_ms)| StoredToken {
                sealed,
                obtained_at_ms,
                expires_at_ms,
            }),
        )
    }

    async fn store_token(
        &self,
        connection: &str,
        token: &StoredToken,
        refused: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO oauth_tokens (connection, sealed, obtained_at_ms, expires_at_ms) VALUES (?, ?, ?, ?) \
             ON CONFLICT (connection) DO UPDATE SET sealed = excluded.sealed, \
             obtained_at_ms = excluded.obtained_at_ms, expires_at_ms = excluded.expires_at_ms \
             WHERE excluded.expires_at_ms > oauth_tokens.expires_at_ms OR oauth_tokens.sealed = ?",
        )
        .bind(connection)
        .bind(&token.sealed)
        .bind(token.obtained_at_ms)
        .bind(token.expires_at_ms)
        .bind(refused)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
