//! Errors of the state and source databases.

/// A database operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened (missing file, bad URL, permissions).
    #[error("cannot open {what} database {url}: {source}")]
    Open {
        what: &'static str,
        url: String,
        source: sqlx::Error,
    },
    /// Applying the embedded migrations failed.
    #[error("cannot migrate the state database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A table or column named in the config does not exist in the source database.
    #[error("{0}")]
    Schema(String),
    /// Another process holds the state database.
    #[error("{0}")]
    Busy(String),
    /// Any other SQL error.
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
}
