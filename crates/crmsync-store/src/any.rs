//! Choosing a backend at run time from a URL, as sqlx's `Any` does: [`AnyState`] and
//! [`AnySource`] are enums over the backends that implement every trait by handing each call
//! to the backend inside. The engine stays generic; the binary instantiates it once, with
//! these. The delegation is written by two macros so that adding a backend is one line per
//! enum and a trait method cannot be forgotten (the compiler insists on every method).

use crate::backend::{Backend, redact_url};
use crate::error::StoreError;
use crate::memory::MemoryState;
use crate::model::*;
use crate::mysql::MysqlSource;
use crate::postgres::PgState;
use crate::sqlite::{SqliteSource, SqliteState};
use crate::{
    Capture, Coordination, Creates, Inspect, Introspect, Lifecycle, Queue, Records, Source, State,
    Tokens,
};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// What a process opens the state database for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Delivers and captures: on SQLite this takes the one-worker lock.
    Worker,
    /// Reads or settles state beside a running worker (`status`, `deletions --apply`).
    Beside,
}

/// A state database of any backend.
#[derive(Debug, Clone)]
pub enum AnyState {
    Sqlite(SqliteState),
    Memory(MemoryState),
    Postgres(PgState),
}

/// An app database of any backend.
#[derive(Debug, Clone)]
pub enum AnySource {
    Sqlite(SqliteSource),
    Postgres(crate::postgres::PgSource),
    Mysql(MysqlSource),
}

/// Opens the state database at `url` (migrating it) for `role`.
pub async fn open_state(url: &str, role: Role) -> Result<AnyState, StoreError> {
    match Backend::from_url(url)? {
        Backend::Sqlite => Ok(AnyState::Sqlite(SqliteState::open(url, role).await?)),
        // Each open is a new, empty state: `memory:` is for tests, nothing outlives the process.
        Backend::Memory => Ok(AnyState::Memory(MemoryState::new())),
        // Any number of workers share a PostgreSQL state: no role takes a lock.
        Backend::Postgres => Ok(AnyState::Postgres(PgState::open(url).await?)),
        Backend::Mysql => Err(StoreError::Unsupported(format!(
            "{}: the state database can be SQLite (one worker) or PostgreSQL (several workers), not MySQL",
            redact_url(url)
        ))),
    }
}

/// Opens the app database at `url` (never creating one).
pub async fn open_source(url: &str) -> Result<AnySource, StoreError> {
    match Backend::from_url(url)? {
        Backend::Sqlite => Ok(AnySource::Sqlite(SqliteSource::open(url).await?)),
        Backend::Postgres => Ok(AnySource::Postgres(
            crate::postgres::PgSource::open(url).await?,
        )),
        // `mariadb://` is rewritten to the `mysql://` sqlx knows inside `open`.
        Backend::Mysql => Ok(AnySource::Mysql(MysqlSource::open(url).await?)),
        Backend::Memory => Err(StoreError::Unsupported(
            "`memory:` is a state for tests, not an app database".into(),
        )),
    }
}

/// Applies `migrator` to `pool`, refusing a database some newer crmsync migrated further.
pub(crate) async fn migrate<'a, A>(
    migrator: &sqlx::migrate::Migrator,
    pool: A,
) -> Result<(), StoreError>
where
    A: sqlx::Acquire<'a>,
    <A::Connection as std::ops::Deref>::Target: sqlx::migrate::Migrate,
{
    match migrator.run(pool).await {
        Ok(()) => Ok(()),
        Err(sqlx::migrate::MigrateError::VersionMissing(found)) => Err(StoreError::NewerSchema {
            found,
            known: migrator.iter().map(|m| m.version).max().unwrap_or(0),
        }),
        Err(e) => Err(e.into()),
    }
}

/// The reason an app value of these bytes is unreadable, naming a few of them.
pub(crate) fn not_utf8(bytes: &[u8]) -> String {
    let head: String = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!(
        "holds {} bytes that are not valid UTF-8 text (starting with 0x{head})",
        bytes.len()
    )
}

macro_rules! state_call {
    ($self:ident, $name:ident ($($arg:expr),*)) => {
        match $self {
            AnyState::Sqlite(s) => s.$name($($arg),*).await,
            AnyState::Memory(s) => s.$name($($arg),*).await,
            AnyState::Postgres(s) => s.$name($($arg),*).await,
        }
    };
}

macro_rules! source_call {
    ($self:ident, $name:ident ($($arg:expr),*)) => {
        match $self {
            AnySource::Sqlite(s) => s.$name($($arg),*).await,
            AnySource::Postgres(s) => s.$name($($arg),*).await,
            AnySource::Mysql(s) => s.$name($($arg),*).await,
        }
    };
}

/// Writes each listed method as a call of `$call` (one of the macros above).
macro_rules! delegate {
    ($call:ident; $( fn $name:ident(&self $(, $arg:ident : $ty:ty)* ) -> $ret:ty; )*) => {
        $(
            async fn $name(&self $(, $arg: $ty)*) -> $ret {
                $call!(self, $name($($arg),*))
            }
        )*
    };
}

impl State for AnyState {
    fn backend(&self) -> Backend {
        match self {
            AnyState::Sqlite(_) => Backend::Sqlite,
            AnyState::Memory(_) => Backend::Memory,
            AnyState::Postgres(_) => Backend::Postgres,
        }
    }
}

impl Records for AnyState {
    delegate! { state_call;
        fn links_for(&self, sync: &str, keys: &[String]) -> Result<HashMap<String, Link>, StoreError>;
        fn local_ids_of(&self, sync: &str, crm_ids: &[String]) -> Result<HashMap<String, String>, StoreError>;
        fn links_page(&self, sync: &str, after: Option<&str>, limit: usize) -> Result<Vec<(String, String)>, StoreError>;
        fn link_count(&self, sync: &str) -> Result<u64, StoreError>;
        fn bases(&self, sync: &str, local_ids: &[String]) -> Result<HashMap<String, HashMap<String, String>>, StoreError>;
        fn record_pulls(&self, sync: &str, pulls: &[PullRecord]) -> Result<(), StoreError>;
        fn unlink(&self, sync: &str, local_ids: &[String]) -> Result<(), StoreError>;
        fn pending_write_backs(&self, sync: &str, limit: usize) -> Result<Vec<(String, String)>, StoreError>;
        fn mark_written_back(&self, sync: &str, pairs: &[(String, String)]) -> Result<(), StoreError>;
        fn quarantine(&self, entries: &[QuarantineEntry]) -> Result<(), StoreError>;
        fn clear_quarantine(&self, sync: &str, local_ids: &[String]) -> Result<(), StoreError>;
        fn quarantined(&self, sync: &str) -> Result<Vec<QuarantineEntry>, StoreError>;
        fn quarantined_among(&self, sync: &str, keys: &[String]) -> Result<HashSet<String>, StoreError>;
        fn recheck_keys(&self, sync: &str) -> Result<Vec<String>, StoreError>;
        fn blocked_keys(&self, sync: &str, rules: &[&str]) -> Result<HashSet<String>, StoreError>;
        fn cursor(&self, sync: &str, direction: CursorDirection, mechanism: &str) -> Result<Option<String>, StoreError>;
        fn set_cursor(&self, sync: &str, direction: CursorDirection, mechanism: &str, value: &str) -> Result<(), StoreError>;
        fn counts(&self, sync: &str) -> Result<QueueCounts, StoreError>;
    }
}

impl Queue for AnyState {
    delegate! { state_call;
        fn commit_capture(&self, commit: &CaptureCommit) -> Result<CommitReport, StoreError>;
        fn claim(&self, owner: &str, sync: &str, limit: usize, lease: Duration, now_ms: i64) -> Result<Vec<Job>, StoreError>;
        fn renew_jobs(&self, owner: &str, until_ms: i64) -> Result<u64, StoreError>;
        fn still_current(&self, owner: &str, jobs: &[(i64, String)]) -> Result<HashSet<i64>, StoreError>;
        fn settle(&self, owner: &str, settlement: &Settlement) -> Result<SettleReport, StoreError>;
        fn release_all(&self, owner: &str) -> Result<u64, StoreError>;
    }
}

impl Lifecycle for AnyState {
    delegate! { state_call;
        fn add_conflicts(&self, conflicts: &[Conflict]) -> Result<(), StoreError>;
        fn open_conflicts(&self, sync: Option<&str>) -> Result<Vec<Conflict>, StoreError>;
        fn resolve_conflict(&self, id: i64, resolution: &str) -> Result<bool, StoreError>;
        fn record_deletions(&self, deletions: &[CrmDeletion]) -> Result<(), StoreError>;
        fn deletions(&self, sync: Option<&str>, state: Option<DeletionState>) -> Result<Vec<CrmDeletion>, StoreError>;
        fn forget_deletions(&self, sync: &str, local_ids: &[String]) -> Result<(), StoreError>;
        fn deletions_since(&self, sync: &str, since_ms: i64) -> Result<u64, StoreError>;
        fn record_merges(&self, merges: &[CrmMerge]) -> Result<(), StoreError>;
        fn merges(&self, sync: Option<&str>) -> Result<Vec<CrmMerge>, StoreError>;
        fn record_webhook_events(&self, events: &[(String, String)], now_ms: i64) -> Result<u64, StoreError>;
        fn pending_webhook_events(&self, limit: usize) -> Result<Vec<(String, String)>, StoreError>;
        fn pending_webhook_count(&self) -> Result<u64, StoreError>;
        fn prune_webhook_events(&self, before_ms: i64, limit: u64) -> Result<u64, StoreError>;
        fn webhook_events_to_hints(&self, event_keys: &[String], hints: &[Hint], now_ms: i64) -> Result<(), StoreError>;
        fn add_hints(&self, hints: &[Hint], now_ms: i64) -> Result<(), StoreError>;
        fn pending_hints(&self, sync: &str, limit: usize) -> Result<Vec<Hint>, StoreError>;
        fn clear_hints(&self, sync: &str, crm_ids: &[String], added_before_ms: i64) -> Result<(), StoreError>;
    }
}

impl Coordination for AnyState {
    delegate! { state_call;
        fn try_lead(&self, task: &str, owner: &str, ttl: Duration, now_ms: i64) -> Result<bool, StoreError>;
        fn resign(&self, owner: &str) -> Result<(), StoreError>;
        fn leaders(&self) -> Result<Vec<(String, String, i64)>, StoreError>;
        fn reserve_call(&self, request: &Reservation) -> Result<Grant, StoreError>;
        fn calls_reserved(&self, connection: &str, day_start_ms: i64) -> Result<i64, StoreError>;
        fn paused(&self) -> Result<bool, StoreError>;
        fn set_paused(&self, paused: bool) -> Result<(), StoreError>;
        fn binding(&self, key: &str) -> Result<Option<String>, StoreError>;
        fn bind(&self, key: &str, value: &str) -> Result<Option<String>, StoreError>;
        fn record_calls(&self, calls: &[CallRow]) -> Result<(), StoreError>;
        fn prune_calls(&self, before_ms: i64, limit: u64) -> Result<u64, StoreError>;
        fn call_summary(&self, since_ms: i64) -> Result<CallSummary, StoreError>;
    }
}

impl Inspect for AnyState {
    delegate! { state_call;
        fn request_retry(&self, sync: Option<&str>, kinds: &[QuarantineKind]) -> Result<Vec<(String, String)>, StoreError>;
        fn quarantine_entry(&self, sync: &str, local_id: &str) -> Result<Option<QuarantineEntry>, StoreError>;
        fn link_detail(&self, sync: &str, local_id: &str) -> Result<Option<LinkDetail>, StoreError>;
        fn jobs_of(&self, sync: &str, local_id: &str) -> Result<Vec<JobDetail>, StoreError>;
        fn job_problems(&self, sync: &str, limit: i64) -> Result<Vec<JobProblem>, StoreError>;
        fn calls_between(&self, from_ms: i64, to_ms: i64, endpoint_part: &str, limit: i64) -> Result<Vec<CallRow>, StoreError>;
        fn recent_call_errors(&self, limit: i64) -> Result<Vec<CallRow>, StoreError>;
    }
}

impl Creates for AnyState {
    delegate! { state_call;
        fn claim_creates(&self, sync: &str, claims: &[(String, i64)], fingerprint: &str, now_ms: i64) -> Result<(), StoreError>;
        fn refuse_creates(&self, refusals: &[CrmCreate]) -> Result<(), StoreError>;
        fn record_creates(&self, sync: &str, crm_object: &str, created: &[CreatedLink], now_ms: i64) -> Result<(), StoreError>;
        fn forget_creates(&self, sync: &str, crm_ids: &[String]) -> Result<(), StoreError>;
        fn creates(&self, sync: Option<&str>) -> Result<Vec<CrmCreate>, StoreError>;
        fn creates_among(&self, sync: &str, crm_ids: &[String]) -> Result<HashMap<String, CrmCreate>, StoreError>;
        fn request_create_retry(&self, sync: Option<&str>) -> Result<Vec<(String, String)>, StoreError>;
    }
}

impl Tokens for AnyState {
    delegate! { state_call;
        fn token(&self, connection: &str) -> Result<Option<StoredToken>, StoreError>;
        fn store_token(&self, connection: &str, token: &StoredToken, refused: Option<&str>) -> Result<bool, StoreError>;
    }
}

impl Source for AnySource {
    fn backend(&self) -> Backend {
        match self {
            AnySource::Sqlite(_) => Backend::Sqlite,
            AnySource::Postgres(_) => Backend::Postgres,
            AnySource::Mysql(_) => Backend::Mysql,
        }
    }

    delegate! { source_call;
        fn describe(&self, table: &str) -> Result<TableInfo, StoreError>;
        fn count(&self, table: &str) -> Result<i64, StoreError>;
        fn scan_page(&self, table: &str, key: &str, columns: &[&str], after: Option<&str>, limit: usize) -> Result<Vec<SourceRow>, StoreError>;
        fn fetch(&self, table: &str, key: &str, columns: &[&str], keys: &[String]) -> Result<Vec<SourceRow>, StoreError>;
        fn updated_page(&self, page: &UpdatedPage<'_>) -> Result<Vec<SourceRow>, StoreError>;
        fn updated_frontier(&self, table: &str, ts_column: &str) -> Result<Option<String>, StoreError>;
        fn write(&self, table: &str, key: &str, writes: &[RowWrite]) -> Result<Vec<String>, StoreError>;
        fn insert(&self, table: &str, key: &str, row: &NewRow) -> Result<Inserted, StoreError>;
        fn keys_by(&self, table: &str, key: &str, column: &str, values: &[String]) -> Result<HashMap<String, String>, StoreError>;
        fn identity(&self) -> Result<String, StoreError>;
    }
}

impl Introspect for AnySource {
    delegate! { source_call;
        fn tables(&self) -> Result<Vec<String>, StoreError>;
        fn foreign_keys(&self, table: &str) -> Result<Vec<ForeignKey>, StoreError>;
        fn declared_values(&self, table: &str) -> Result<std::collections::BTreeMap<String, Vec<String>>, StoreError>;
        fn distinct_values(&self, table: &str, column: &str, limit: usize) -> Result<DistinctValues, StoreError>;
    }
}

impl Capture for AnySource {
    fn earliest_cursor(&self, cursors: &[String]) -> Option<String> {
        match self {
            AnySource::Sqlite(s) => s.earliest_cursor(cursors),
            AnySource::Postgres(s) => s.earliest_cursor(cursors),
            AnySource::Mysql(s) => s.earliest_cursor(cursors),
        }
    }

    delegate! { source_call;
        fn capture_installed(&self, table: &str) -> Result<bool, StoreError>;
        fn install_capture(&self, table: &str, key: &str, watched: &[&str]) -> Result<(), StoreError>;
        fn change_position(&self) -> Result<String, StoreError>;
        fn changes_since(&self, table: &str, cursor: Option<&str>, limit: usize) -> Result<ChangePage, StoreError>;
        fn changes_pending(&self, table: &str, cursor: Option<&str>) -> Result<u64, StoreError>;
        fn prune_changes(&self, table: &str, cursor: &str) -> Result<u64, StoreError>;
        fn subscribe(&self) -> Result<Option<tokio::sync::mpsc::Receiver<String>>, StoreError>;
    }
}
