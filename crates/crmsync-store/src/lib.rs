//! All SQL of crmsync. The state database (links, job queue, cursors, call log, quarantine)
//! behind the [`Store`] trait, and the app database behind [`source::SqliteSource`].
//! Identifiers from the user's config reach SQL only through [`ident::quote`], the one place
//! allowed to build SQL from strings (`grep AssertSqlSafe` is the audit).

pub mod error;
pub mod ident;
pub mod model;
pub mod source;
pub mod state;

pub use error::StoreError;
pub use model::*;
pub use source::SqliteSource;
pub use state::{LifecycleStore, PullStore, SqliteStore};

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

/// crmsync's own state. Implementations: SQLite now, PostgreSQL later (same contract).
///
/// Invariants every implementation keeps:
/// - at most one live job per `(sync, local_id, direction)`; enqueueing a record that already
///   has one replaces its payload (latest state wins) and makes it ready again;
/// - a job becomes `done` only in [`Store::complete`], in the same transaction that records the
///   CRM id and hash on the link and clears the record's quarantine entry, and only if its
///   payload did not change meanwhile; a done job row is reused by the record's next change.
pub trait Store: Send + Sync {
    /// The links of `keys` in `sync`, by local id (planning reads them a page at a time).
    fn links_for(
        &self,
        sync: &str,
        keys: &[String],
    ) -> impl Future<Output = Result<HashMap<String, Link>, StoreError>> + Send;

    /// The link of one record.
    fn link(
        &self,
        sync: &str,
        local_id: &str,
    ) -> impl Future<Output = Result<Option<Link>, StoreError>> + Send;

    /// Queues (or replaces) push jobs due at `now_ms`, in one transaction.
    fn enqueue(
        &self,
        jobs: &[NewJob],
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Claims up to `limit` jobs of `sync` due at `now_ms` (highest priority first) with a lease; expired
    /// leases of dead workers are claimable again.
    fn claim(
        &self,
        sync: &str,
        limit: usize,
        lease: Duration,
        now_ms: i64,
    ) -> impl Future<Output = Result<Vec<Job>, StoreError>> + Send;

    /// Records delivered jobs: links updated, jobs removed, quarantine cleared; one transaction.
    fn complete(
        &self,
        sync: &str,
        crm_object: &str,
        done: &[Delivered],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Releases jobs after a retryable failure: back to `retrying`, due at `run_at_ms`; or
    /// `dead` when `dead` is true.
    fn fail(
        &self,
        job_ids: &[i64],
        error: &str,
        run_at_ms: i64,
        dead: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Puts records into quarantine (replacing their previous entry) and drops their jobs.
    fn quarantine(
        &self,
        entries: &[QuarantineEntry],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes quarantine entries of records that became valid (or were deleted).
    fn clear_quarantine(
        &self,
        sync: &str,
        local_ids: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Quarantine entries of `sync`.
    fn quarantined(
        &self,
        sync: &str,
    ) -> impl Future<Output = Result<Vec<QuarantineEntry>, StoreError>> + Send;

    /// Which of `keys` have a quarantine entry in `sync`.
    fn quarantined_among(
        &self,
        sync: &str,
        keys: &[String],
    ) -> impl Future<Output = Result<HashSet<String>, StoreError>> + Send;

    /// Keys of `sync` to look at in every pass whether or not their row changed: held records
    /// and those `crmsync retry` asked for.
    fn recheck_keys(
        &self,
        sync: &str,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Number of CRM calls logged since `since_ms` (the shared daily budget is counted here).
    fn calls_since(&self, since_ms: i64) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Appends to the call log.
    fn record_calls(
        &self,
        calls: &[CallRow],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A capture cursor, if set.
    fn cursor(
        &self,
        sync: &str,
        mechanism: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    fn set_cursor(
        &self,
        sync: &str,
        mechanism: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Queue and quarantine counts of `sync`.
    fn counts(&self, sync: &str) -> impl Future<Output = Result<QueueCounts, StoreError>> + Send;

    /// Call-log totals since `since_ms`.
    fn call_summary(
        &self,
        since_ms: i64,
    ) -> impl Future<Output = Result<CallSummary, StoreError>> + Send;
}
