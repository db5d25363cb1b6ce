//! Errors of the state and app databases. Messages are lowercase sentences that name the
//! database, the table or the row, and the fix; a URL in a message never carries a password.

/// A database operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened (missing file, bad URL, unreachable server,
    /// permissions). `url` is redacted.
    #[error("cannot open {what} database {url}: {source}")]
    Open {
        what: &'static str,
        url: String,
        source: sqlx::Error,
    },
    /// Applying the embedded migrations failed.
    #[error("cannot migrate the state database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The state database was migrated by a newer crmsync than this one.
    #[error(
        "the state database has schema version {found}, newer than this crmsync knows ({known}): upgrade crmsync on every worker before starting this one"
    )]
    NewerSchema { found: i64, known: i64 },
    /// A table or column named in the config does not exist, or does not fit, in the app
    /// database.
    #[error("{0}")]
    Schema(String),
    /// Another process holds the state database (SQLite serves one worker).
    #[error("{0}")]
    Busy(String),
    /// A stored value cannot be read back (damaged row, written by something else).
    #[error("damaged row in the state database: {0}")]
    Corrupt(String),
    /// The URL names a database this build or this role does not support.
    #[error("{0}")]
    Unsupported(String),
    /// Any other SQL error.
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
}

impl StoreError {
    /// Whether trying again later may succeed (a lost connection, a lock timeout, a
    /// serialization failure), as opposed to a problem a person must fix.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Sql(e) => match e {
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => true,
                // MySQL's `code()` is the SQLSTATE, and a lock wait timeout (1205) has the
                // generic `HY000`: its error number says it.
                sqlx::Error::Database(db)
                    if db
                        .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                        .is_some_and(|m| matches!(m.number(), 1205 | 1213)) =>
                {
                    true
                }
                sqlx::Error::Database(db) => {
                    let code = db.code().map(|c| c.to_string()).unwrap_or_default();
                    // PostgreSQL: serialization failure, deadlock, admin shutdown, lock
                    // timeout; MySQL: lock wait timeout, deadlock; SQLite: busy, locked.
                    matches!(
                        code.as_str(),
                        "40001" | "40P01" | "57P01" | "55P03" | "1205" | "1213" | "5" | "6"
                    )
                }
                _ => false,
            },
            StoreError::Busy(_) => false,
            _ => false,
        }
    }
}
