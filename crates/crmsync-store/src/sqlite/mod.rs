//! SQLite: the state database of a single worker, and an app database. WAL mode and a busy
//! timeout; every write transaction starts `IMMEDIATE` (it takes the one write lock up front,
//! so a transaction that reads and then writes never fails on a snapshot another connection
//! moved). SQLite has a single writer, so a claim's `UPDATE ... RETURNING` cannot interleave
//! with another, and change-log order is commit order.
//!
//! One worker: [`SqliteState::open`] with [`crate::Role::Worker`] takes an exclusive lock on
//! `<file>.lock` (released by the OS even on SIGKILL) and then hands jobs a killed predecessor
//! left running back to the queue at once. Several workers need PostgreSQL.
//!
//! A state file crmsync creates is readable by its owner only (0600; SQLite gives its WAL and
//! shared-memory files the same mode): it holds CRM ids, record hashes, webhook bodies and
//! the call log.

mod capture;
mod coordination;
mod creates;
mod decode;
mod inspect;
mod introspect;
mod lifecycle;
mod queue;
mod source;
mod state;
mod tokens;

pub use source::SqliteSource;

use crate::Role;
use crate::backend::Backend;
use crate::error::StoreError;
use crate::ident::{marks, sql};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};
use std::fs::{File, OpenOptions};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Rows per multi-row statement: well under SQLite's 32,766 bound parameters at 9 per row.
pub(crate) const ROWS_PER_STATEMENT: usize = 500;

/// Keys per `IN (...)` list.
pub(crate) const KEYS_PER_STATEMENT: usize = 500;

/// crmsync's state in a SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteState {
    pool: SqlitePool,
    /// Held by the one process allowed to deliver.
    _worker_lock: Option<Arc<File>>,
}

impl SqliteState {
    /// Opens (creating if needed) the state database at `url` and applies migrations. As
    /// [`Role::Worker`] it also takes the one-worker lock and takes back the jobs a killed
    /// predecessor left running.
    pub async fn open(url: &str, role: Role) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            what: "state",
            url: url.to_string(),
            source,
        };
        if let Some(path) = sqlite_file(url) {
            create_private(std::path::Path::new(&path)).map_err(|e| StoreError::Open {
                what: "state",
                url: url.to_string(),
                source: sqlx::Error::Io(e),
            })?;
        }
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(open_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(open_err)?;
        crate::any::migrate(&sqlx::migrate!("./migrations/sqlite"), &pool).await?;
        let mut state = SqliteState {
            pool,
            _worker_lock: None,
        };
        if role == Role::Worker {
            if let Some(path) = sqlite_file(url) {
                let lock_path = format!("{path}.lock");
                let mut options = OpenOptions::new();
                options.create(true).truncate(false).write(true);
                private_mode(&mut options);
                let file = options.open(&lock_path).map_err(|e| {
                    StoreError::Busy(format!("cannot open lock file {lock_path}: {e}"))
                })?;
                file.try_lock().map_err(|_| {
                    StoreError::Busy(format!(
                        "another crmsync process is delivering from {path}; a SQLite state database serves one worker at a time (for several workers, put the state in PostgreSQL: [state] url = \"postgres://...\")"
                    ))
                })?;
                state._worker_lock = Some(Arc::new(file));
            }
            // Under the lock no other worker is alive: whatever is running, and every leader
            // lease, was a dead one's.
            sqlx::query(
                "UPDATE jobs SET state = 'ready', lease_until = NULL, owner = NULL WHERE state = 'running'",
            )
            .execute(&state.pool)
            .await?;
            sqlx::query("DELETE FROM leases")
                .execute(&state.pool)
                .await?;
        }
        Ok(state)
    }

    /// The underlying pool (for tests and diagnostics).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A write transaction holding SQLite's write lock from its first statement.
    pub(crate) async fn write_tx(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

impl crate::State for SqliteState {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }
}

/// The file path of a `sqlite://` URL, unless it is in memory.
/// Creates `path` empty with mode 0600 when it does not exist (SQLite then opens it as a new
/// database). An existing file keeps its mode: it is the operator's; a warning says when
/// others can read it.
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    private_mode(&mut options);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if let Ok(meta) = std::fs::metadata(path)
                    && meta.permissions().mode() & 0o077 != 0
                {
                    tracing::warn!(
                        path = %path.display(),
                        mode = format!("{:o}", meta.permissions().mode() & 0o777),
                        "the state database is readable by other users; `chmod 600` it (and its -wal and -shm files)"
                    );
                }
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Owner-only permissions for files crmsync creates, where the platform has them.
fn private_mode(options: &mut OpenOptions) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = options;
}

pub(crate) fn sqlite_file(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| path.to_string())
}

/// The first value bound to a [`per_key_chunk`] statement.
pub(crate) enum Lead<'a> {
    Int(i64),
    Text(&'a str),
}

/// Runs each of `statements` once per chunk of `keys`, in `tx`: `{keys}` in a statement
/// becomes that many placeholders, bound after `lead`.
pub(crate) async fn per_key_chunk(
    tx: &mut Transaction<'static, Sqlite>,
    statements: &[&str],
    lead: &Lead<'_>,
    keys: &[String],
) -> Result<u64, StoreError> {
    let mut affected = 0;
    for chunk in keys.chunks(KEYS_PER_STATEMENT) {
        let m = marks(chunk.len());
        for statement in statements {
            let mut q = sqlx::query(sql(statement.replace("{keys}", &m)));
            q = match lead {
                Lead::Int(n) => q.bind(*n),
                Lead::Text(t) => q.bind(*t),
            };
            for key in chunk {
                q = q.bind(key);
            }
            affected += q.execute(&mut **tx).await?.rows_affected();
        }
    }
    Ok(affected)
}
