//! All SQL of crmsync, behind the contracts the engine runs on. Two databases take part:
//!
//! - the **app database** (the user's order system), read and written through [`Source`] and
//!   watched through [`Capture`], its schema read through [`Introspect`] (for `crmsync
//!   init`): SQLite, PostgreSQL, MySQL/MariaDB;
//! - the **state database** (crmsync's own), split by concept: [`Records`] (links, field
//!   bases, quarantine, cursors), [`Queue`] (jobs with owned leases), [`Lifecycle`] (conflicts,
//!   CRM deletions and merges, the webhook inbox, inbound hints), [`Coordination`] (leader
//!   leases, the shared API-call reservation, the kill switch, bindings, the call log) and
//!   [`Inspect`] (what `explain`, `retry` and `status` read), [`Creates`] (CRM records
//!   becoming app rows), [`Tokens`] (OAuth access tokens the workers share). [`State`] is all
//!   of them.
//!   Backends: SQLite (one worker), PostgreSQL (any number of workers), memory (tests).
//!
//! Every backend lives in its own folder with the same file names (`sqlite/`, `postgres/`,
//! `mysql/`, `memory/`); [`any`] picks one from a URL at run time, as sqlx's `Any` does.
//! Identifiers from the user's config reach SQL only through [`ident`], the one place allowed
//! to build SQL from strings (`grep AssertSqlSafe` is the audit).
//!
//! Shared promises of every trait here, unless a method says otherwise:
//! - a method that writes several rows does so in **one transaction**: all or nothing;
//! - every method is safe to call concurrently from several tasks and, on a backend that
//!   allows several workers (PostgreSQL), from several processes;
//! - **repeating** a write with the same input is harmless (the engine retries after a crash);
//! - a value that cannot be decoded (not UTF-8, a type nobody promised) is never a panic: on the
//!   app side it is reported with its row ([`SourceRow::unreadable`]), on the state side it is
//!   a [`StoreError::Corrupt`] naming the table and the row.

pub mod any;
pub mod backend;
pub mod error;
pub mod ident;
pub mod memory;
pub mod model;
pub mod mysql;
pub mod postgres;
pub mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

pub use any::{AnySource, AnyState, Role, open_source, open_state};
pub use backend::Backend;
pub use error::StoreError;
pub use model::*;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

/// Name of the change-log table `crmsync install` adds to the app database.
pub const CHANGE_LOG: &str = "_crmsync_changes";

/// Milliseconds since the Unix epoch, by the system clock (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// The app database
// ---------------------------------------------------------------------------------------------

/// The user's own database, as crmsync reads and writes it.
///
/// - Values are read **as text** (`None` for SQL NULL), the form the mapping works on. A value
///   that cannot be read as text goes into [`SourceRow::unreadable`] with the reason; the other
///   columns of the row are still read, and other rows are not affected.
/// - Table names may be schema-qualified (`shop.orders`); every name is quoted, so any name
///   is taken literally.
/// - Keys cross the seam as text and are compared in the key column's own type (an integer
///   key pages 9 before 10).
/// - [`Source::write`] updates: pulled CRM values and CRM-id write-backs, all rows in one
///   transaction, each guarded by what the caller expects the row to hold.
///   [`Source::insert`] adds one row for a record created in the CRM.
pub trait Source: Send + Sync {
    /// Which kind of database this is.
    fn backend(&self) -> Backend;

    /// The columns of `table` (a table or a view), with what the database says about them.
    /// A [`StoreError::Schema`] naming the table when it does not exist.
    fn describe(&self, table: &str) -> impl Future<Output = Result<TableInfo, StoreError>> + Send;

    /// Number of rows in `table`.
    fn count(&self, table: &str) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Up to `limit` rows of `table` with a key above `after` (from the start when `None`), in
    /// key order, with `key` and `columns` read. Keyset paging: no transaction stays open
    /// between pages, and memory is bounded by one page however large the table.
    fn scan_page(
        &self,
        table: &str,
        key: &str,
        columns: &[&str],
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<SourceRow>, StoreError>> + Send;

    /// The rows of `table` whose key is among `keys`; a key without a row is simply absent
    /// (the row was deleted). Any number of keys (chunked inside).
    fn fetch(
        &self,
        table: &str,
        key: &str,
        columns: &[&str],
        keys: &[String],
    ) -> impl Future<Output = Result<Vec<SourceRow>, StoreError>> + Send;

    /// One page of rows ordered by (`ts_column`, key), for `capture = "updated_at"`: rows at or
    /// after `page.since` on the first page (`after` = `None`), then rows after the `(ts, key)`
    /// position `after`. `columns` includes `ts_column`.
    fn updated_page(
        &self,
        page: &UpdatedPage<'_>,
    ) -> impl Future<Output = Result<Vec<SourceRow>, StoreError>> + Send;

    /// The `updated_at` cursor a pass may store after reading everything up to now: the
    /// largest value of `ts_column`, but never later than the start of the oldest transaction
    /// still writing (whose rows may commit with an older timestamp than rows already
    /// visible). `None` for an empty table.
    fn updated_frontier(
        &self,
        table: &str,
        ts_column: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// The keys of the rows of `table` that hold one of `values` in `column` (compared in
    /// the column's type), by value; a value no row holds is absent, and of several rows
    /// holding one value any one is answered. Any number of values (chunked inside).
    fn keys_by(
        &self,
        table: &str,
        key: &str,
        column: &str,
        values: &[String],
    ) -> impl Future<Output = Result<HashMap<String, String>, StoreError>> + Send;

    /// Applies `writes` to `table` in one transaction. A row is written only when each of its
    /// `expect` columns still holds the expected value, compared as text (compare-and-set: a
    /// concurrent app edit is never overwritten), and at least one `set` value differs from
    /// what it holds (no empty writes that fire triggers and look like changes). Returns the
    /// keys whose row holds the `set` values afterwards under the expectation (written now, or
    /// holding them already); a key whose row is gone or changed is not among them.
    fn write(
        &self,
        table: &str,
        key: &str,
        writes: &[RowWrite],
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Inserts one row into `table` in a transaction of its own and answers its key (the
    /// key the database assigned: `INTEGER PRIMARY KEY`/`AUTOINCREMENT`, `serial`/identity,
    /// `AUTO_INCREMENT`; or the one given in `row.values`).
    ///
    /// - **Guarded**: with `row.unless = (column, value)`, nothing is inserted when a row holds
    ///   `value` in `column` already, and that row's key is answered ([`Inserted::Exists`]).
    ///   The look and the insert are one step for every caller of this method (SQLite: the
    ///   write lock; PostgreSQL: a transaction-scoped advisory lock on the value; MySQL: a
    ///   locking read), so repeating an insert, from a retry or another worker, adds no
    ///   second row.
    /// - **Refusals are answers**: a row the database refuses for its content (a constraint,
    ///   NOT NULL, a value the column's type does not take, an app trigger raising an error)
    ///   is [`Inserted::Refused`] with the database's message, and nothing is written. A
    ///   failure of the database itself (connection, a missing table or column) is an `Err`.
    /// - `row.now` columns take the database's current time in the form of the column's type:
    ///   date/time types their own value (UTC); integer columns Unix seconds; other numbers
    ///   Unix seconds with a fraction; text `YYYY-MM-DD HH:MM:SS.fff` (UTC, fraction as
    ///   precise as the database gives). SQLite goes by the declared type's affinity (`INT` in
    ///   it: integer; `DATE`: the date).
    /// - The change capture's insert trigger (if installed) fires like for any app insert.
    fn insert(
        &self,
        table: &str,
        key: &str,
        row: &NewRow,
    ) -> impl Future<Output = Result<Inserted, StoreError>> + Send;

    /// A stable identity of this database (server and database name, or the file), for the
    /// environment binding: a state database refuses to serve another app database.
    fn identity(&self) -> impl Future<Output = Result<String, StoreError>> + Send;
}

/// Change capture in the app database: triggers log every change of a watched table into a
/// change log of ours; the engine reads it behind an opaque cursor.
///
/// - **Committed-only and gap-free**: [`Capture::changes_since`] never returns a change while
///   an earlier-committing one is still invisible, so a cursor moved past a change never skips
///   one that commits later (on PostgreSQL a sequence is not commit order: the log records the
///   writing transaction and is read below the oldest one still running).
/// - Cursors are opaque text owned by the backend; the engine stores and hands them back.
/// - Installing is idempotent and never alters the user's tables beyond adding triggers.
pub trait Capture: Send + Sync {
    /// Whether capture is installed on `table`.
    fn capture_installed(
        &self,
        table: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Creates the change log and the insert/update/delete triggers on `table` (idempotent).
    /// Updates are logged only when one of `watched` columns changes value, so writing a CRM id
    /// back into an unwatched column is not a change.
    fn install_capture(
        &self,
        table: &str,
        key: &str,
        watched: &[&str],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A cursor covering every change committed so far: where reading starts after a full
    /// scan that begins now (changes committed during the scan are read again, never missed).
    fn change_position(&self) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// Distinct keys of `table` changed after `cursor` (`None`: from the beginning), oldest
    /// first, at most `limit` of them, and the cursor after them. Committed changes only, in
    /// commit-safe order (see the trait doc). `more` says whether another page may follow.
    fn changes_since(
        &self,
        table: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<ChangePage, StoreError>> + Send;

    /// Records of `table` with changes logged after `cursor`, not read yet (for `status`).
    fn changes_pending(
        &self,
        table: &str,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The earliest of `cursors` (the position every sync reading a table has passed), or
    /// `None` when they cannot be ordered (then nothing is pruned).
    fn earliest_cursor(&self, cursors: &[String]) -> Option<String> {
        let _ = cursors;
        None
    }

    /// Removes the changes of `table` at or before `cursor` (every sync reading the table has
    /// passed it); returns how many.
    fn prune_changes(
        &self,
        table: &str,
        cursor: &str,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// A stream of table names as their changes commit, when the database can notify
    /// (PostgreSQL `LISTEN`); `None` when it cannot, and the engine polls instead. Dropping the
    /// receiver stops listening.
    fn subscribe(
        &self,
    ) -> impl Future<Output = Result<Option<tokio::sync::mpsc::Receiver<String>>, StoreError>> + Send;
}

/// Reading the app database's schema, so that `crmsync init` can propose a config. It only
/// reads: nothing here creates, alters or locks anything.
///
/// - **Scope**: the relations of the connection's default schema (SQLite `main`, PostgreSQL
///   the schema unqualified names resolve to, MySQL the URL's database), named unqualified, so
///   every name [`Introspect::tables`] returns is one [`Source::describe`] and the other
///   methods here accept. crmsync's own tables (`_crmsync_*`), the database's internal ones
///   (`sqlite_*`), partitions of a partitioned table and names holding a `.` (which would read
///   as `schema.table`) are left out.
/// - **Deterministic**: lists come sorted (names and values in byte order), so the same
///   database always gives the same proposal.
/// - **Bounded**: [`Introspect::distinct_values`] returns at most `limit` values however many
///   the column holds, and says whether there were more.
/// - A table that does not exist is a [`StoreError::Schema`] naming it, as for `describe`.
pub trait Introspect: Source {
    /// The tables and views, by name.
    fn tables(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// The foreign keys `table` declares, sorted by their columns. A key referencing the
    /// other table's primary key implicitly (SQLite's `REFERENCES users`) names those
    /// columns. Views have none.
    fn foreign_keys(
        &self,
        table: &str,
    ) -> impl Future<Output = Result<Vec<ForeignKey>, StoreError>> + Send;

    /// Column -> the values its type allows, in their declared order, for columns of an
    /// enumerated type (a PostgreSQL `ENUM` type, a MySQL/MariaDB `ENUM(...)`). SQLite has no
    /// such types: always empty there.
    fn declared_values(
        &self,
        table: &str,
    ) -> impl Future<Output = Result<std::collections::BTreeMap<String, Vec<String>>, StoreError>> + Send;

    /// Up to `limit` distinct non-NULL values of `column` as text (the form the mapping
    /// reads), in byte order, and whether more exist (then which ones are listed follows the
    /// database's order). A value that cannot be read as text is left out. Reads the whole
    /// column once: meant for a one-off look, not for a sync pass.
    fn distinct_values(
        &self,
        table: &str,
        column: &str,
        limit: usize,
    ) -> impl Future<Output = Result<DistinctValues, StoreError>> + Send;
}

/// Shared by the backends: `values` (read in the database's order, `limit + 1` at most) as
/// [`DistinctValues`] of `limit`, in byte order.
pub(crate) fn bounded_values(mut values: Vec<String>, limit: usize) -> DistinctValues {
    let more = values.len() > limit;
    values.truncate(limit);
    values.sort();
    values.dedup();
    DistinctValues { values, more }
}

/// Whether [`Introspect::tables`] leaves `name` out (see its scope).
pub(crate) fn hidden_relation(name: &str) -> bool {
    name.starts_with("_crmsync_") || name.starts_with("sqlite_") || name.contains('.')
}

// ---------------------------------------------------------------------------------------------
// The state database
// ---------------------------------------------------------------------------------------------

/// What crmsync knows about each app record: its link to the CRM record, the last agreed
/// values of two-way fields (bases), its quarantine entry, and the capture cursors.
///
/// - A link's `version` grows with every inbound commit ([`Records::record_pulls`],
///   [`Lifecycle::record_merges`]; [`Records::unlink`] removes it): a capture planned before one
///   is recognised as stale by [`Queue::commit_capture`].
/// - A quarantine entry is one per `(sync, local_id)`; writing one replaces the previous one and
///   drops the record's job (it is not sent while quarantined).
pub trait Records: Send + Sync {
    /// The links of `keys` in `sync`, by local id.
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
    ) -> impl Future<Output = Result<Option<Link>, StoreError>> + Send {
        async move {
            Ok(self
                .links_for(sync, &[local_id.to_string()])
                .await?
                .remove(local_id))
        }
    }

    /// The local id of each of `crm_ids` that a link of `sync` points at.
    fn local_ids_of(
        &self,
        sync: &str,
        crm_ids: &[String],
    ) -> impl Future<Output = Result<HashMap<String, String>, StoreError>> + Send;

    /// Links of `sync` with a CRM id, after local id `after` in local-id order, `limit` of
    /// them: (local id, CRM id).
    fn links_page(
        &self,
        sync: &str,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(String, String)>, StoreError>> + Send;

    /// Links of `sync` with a CRM id.
    fn link_count(&self, sync: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Base values of `local_ids`: local id -> (CRM property -> value).
    fn bases(
        &self,
        sync: &str,
        local_ids: &[String],
    ) -> impl Future<Output = Result<HashMap<String, HashMap<String, String>>, StoreError>> + Send;

    /// Records applied inbound changes (pulled hash, pushed hash when the row now matches the
    /// CRM, new bases) and bumps each link's version; one transaction.
    fn record_pulls(
        &self,
        sync: &str,
        pulls: &[PullRecord],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets the links (and bases) of these records: their next push creates them anew.
    fn unlink(
        &self,
        sync: &str,
        local_ids: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `limit` links of `sync` whose CRM id is not yet written into the app's
    /// `write_back_column`: (local id, CRM id).
    fn pending_write_backs(
        &self,
        sync: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(String, String)>, StoreError>> + Send;

    /// Records that these (local id, CRM id) pairs were written into the app. A pair whose link
    /// points elsewhere by now stays pending.
    fn mark_written_back(
        &self,
        sync: &str,
        pairs: &[(String, String)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Puts records into quarantine (replacing their previous entry) and drops their jobs.
    fn quarantine(
        &self,
        entries: &[QuarantineEntry],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes the quarantine entries of these records.
    fn clear_quarantine(
        &self,
        sync: &str,
        local_ids: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Quarantine entries of `sync`, by local id.
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

    /// Keys of `sync` to look at in the next capture whether or not their row changed: held
    /// records (except those waiting for a parent that is not linked yet) and those `crmsync
    /// retry` or a released parent asked for.
    fn recheck_keys(
        &self,
        sync: &str,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Records of `sync` held with one of `rules` (not to be pushed).
    fn blocked_keys(
        &self,
        sync: &str,
        rules: &[&str],
    ) -> impl Future<Output = Result<HashSet<String>, StoreError>> + Send;

    /// A cursor of `sync` (`direction` push or pull, `mechanism` such as `trigger`).
    fn cursor(
        &self,
        sync: &str,
        direction: CursorDirection,
        mechanism: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    fn set_cursor(
        &self,
        sync: &str,
        direction: CursorDirection,
        mechanism: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Queue and quarantine counts of `sync`.
    fn counts(&self, sync: &str) -> impl Future<Output = Result<QueueCounts, StoreError>> + Send;
}

/// The durable queue: at most one job per `(sync, local_id, direction)`, claimed with an owner
/// token and a lease, settled only by its owner.
///
/// - **Latest state wins**: committing a job for a record that has one replaces its payload and
///   makes it ready again (a running job keeps running and is re-queued when it settles).
/// - **Claims are exclusive**: a job is handed to one owner at a time; jobs whose lease ran out
///   are claimable again (on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so workers never wait
///   on each other's claims).
/// - **Settling needs the lease**: [`Queue::settle`] applies an outcome only to jobs still
///   `running` under the caller's token; the others are reported as lost and their outcome is
///   dropped (the job's new owner delivers it again, harmlessly: writes are upserts).
/// - A job is done only in [`Queue::settle`], in the transaction that records the CRM id and
///   hash on the link, clears the record's quarantine entry and stores the new bases, and only
///   if its payload did not change in flight.
/// - A failure outcome is about the payload that was sent: for a job whose payload changed in
///   flight, `dead` is a retry of the new payload, and a rejection (record quarantined, job
///   dropped) flags the entry `retry_requested`, so the next capture looks at the record again.
pub trait Queue: Send + Sync {
    /// Commits one page of a capture in one transaction: jobs (each only if its link's version
    /// still equals `expect_versions`' entry, when given, and the link does not already hold
    /// its hash), unchanged records (superseding a live job with another hash), quarantine
    /// entries, cleared entries, and the capture cursor when given (the cursor moves only with
    /// the work it covers). The cursor
    /// moves even when some records are stale: the caller plans those again.
    fn commit_capture(
        &self,
        commit: &CaptureCommit,
    ) -> impl Future<Output = Result<CommitReport, StoreError>> + Send;

    /// Claims up to `limit` jobs of `sync` due at `now_ms` (highest priority first, then oldest)
    /// for `owner`, leased until `now_ms + lease`. Due: ready or retrying with `run_at <= now_ms`,
    /// or running with a lease that ended before `now_ms`, all in that one order.
    fn claim(
        &self,
        owner: &str,
        sync: &str,
        limit: usize,
        lease: Duration,
        now_ms: i64,
    ) -> impl Future<Output = Result<Vec<Job>, StoreError>> + Send;

    /// Extends every lease `owner` holds on running jobs to `until_ms` (a lease already running
    /// longer is kept); returns how many leases `owner` holds.
    fn renew_jobs(
        &self,
        owner: &str,
        until_ms: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Which of `jobs` (id, hash) are still running under `owner` with that payload hash (a
    /// job replaced in flight is not worth sending any more).
    fn still_current(
        &self,
        owner: &str,
        jobs: &[(i64, String)],
    ) -> impl Future<Output = Result<HashSet<i64>, StoreError>> + Send;

    /// Applies the outcome of delivered jobs in one transaction (see the trait doc).
    fn settle(
        &self,
        owner: &str,
        settlement: &Settlement,
    ) -> impl Future<Output = Result<SettleReport, StoreError>> + Send;

    /// Gives every job `owner` still holds back to the queue, due now (a worker stopping).
    fn release_all(&self, owner: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// What the CRM tells us about its records' lives, and what waits for a person.
///
/// - Webhook events are stored once per content (a redelivery is recognised) before the
///   receiver answers, and stay until marked applied.
/// - Inbound hints are CRM ids of a sync to read back, one per CRM id: adding one that is
///   pending adds no second one but refreshes its reason and time (which is how
///   [`Lifecycle::clear_hints`] knows it was added again).
pub trait Lifecycle: Send + Sync {
    /// Parks conflicts (an open one for the same field is replaced).
    fn add_conflicts(
        &self,
        conflicts: &[Conflict],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Open conflicts, oldest first; of one sync when `sync` is given.
    fn open_conflicts(
        &self,
        sync: Option<&str>,
    ) -> impl Future<Output = Result<Vec<Conflict>, StoreError>> + Send;

    /// Marks conflict `id` resolved with `resolution` (`app` or `crm`); false if not open.
    fn resolve_conflict(
        &self,
        id: i64,
        resolution: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Inserts or replaces deletions.
    fn record_deletions(
        &self,
        deletions: &[CrmDeletion],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Known deletions, of one sync or all, optionally only in one state.
    fn deletions(
        &self,
        sync: Option<&str>,
        state: Option<DeletionState>,
    ) -> impl Future<Output = Result<Vec<CrmDeletion>, StoreError>> + Send;

    /// Forgets the deletions of these records (restored in the CRM, or rejected by a person).
    fn forget_deletions(
        &self,
        sync: &str,
        local_ids: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletions of `sync` seen at or after `since_ms`, whatever their state.
    fn deletions_since(
        &self,
        sync: &str,
        since_ms: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Points each merged record's link at its survivor (bumping its version) and logs the
    /// merge, in one transaction.
    fn record_merges(
        &self,
        merges: &[CrmMerge],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Logged merges, newest first.
    fn merges(
        &self,
        sync: Option<&str>,
    ) -> impl Future<Output = Result<Vec<CrmMerge>, StoreError>> + Send;

    /// Stores webhook events `(dedup key, JSON body)` not seen before; returns how many were
    /// new. The dedup key is the receiver's (a digest of the event's content).
    fn record_webhook_events(
        &self,
        events: &[(String, String)],
        now_ms: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Up to `limit` stored webhook events not applied yet, oldest first: (dedup key, body).
    fn pending_webhook_events(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(String, String)>, StoreError>> + Send;

    /// Stored webhook events not applied yet.
    fn pending_webhook_count(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Removes up to `limit` applied webhook events received before `before_ms` (retention);
    /// returns how many. An event not applied yet is never removed, whatever its age.
    fn prune_webhook_events(
        &self,
        before_ms: i64,
        limit: u64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Turns applied webhook events into inbound hints, in one transaction: the hints are
    /// added and the events marked applied together, so a crash loses neither.
    fn webhook_events_to_hints(
        &self,
        event_keys: &[String],
        hints: &[Hint],
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Adds hints (CRM ids of a sync to read back and apply).
    fn add_hints(
        &self,
        hints: &[Hint],
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `limit` pending hints of `sync`, oldest first.
    fn pending_hints(
        &self,
        sync: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Hint>, StoreError>> + Send;

    /// Removes these hints of `sync` (applied), unless one was added again after `added_before_ms`.
    fn clear_hints(
        &self,
        sync: &str,
        crm_ids: &[String],
        added_before_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What several workers share beyond the queue.
///
/// - **Leader leases**: at most one owner per task name at any instant; a lease is taken when
///   free or expired, kept by renewing it before it runs out, and lost when it runs out.
/// - **API-call reservation**: [`Coordination::reserve_call`] is atomic per connection: the
///   granted calls of all workers together never exceed any window's `max` within the
///   window, nor the day's allowance, and no two grants of a window with a `min_gap_ms` are
///   closer than that (all workers together are paced). Reservations persist, so a restarted worker sees the
///   calls its killed predecessor made.
/// - The kill switch and bindings are plain shared values.
pub trait Coordination: Send + Sync {
    /// Takes or renews the lease of `task` for `owner` until `now_ms + ttl`; true when `owner`
    /// holds it afterwards.
    fn try_lead(
        &self,
        task: &str,
        owner: &str,
        ttl: Duration,
        now_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Gives up every leader lease `owner` holds (a clean stop, so another worker takes over
    /// at once).
    fn resign(&self, owner: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The current holders of leader leases: (task, owner, until ms).
    fn leaders(
        &self,
    ) -> impl Future<Output = Result<Vec<(String, String, i64)>, StoreError>> + Send;

    /// Reserves one API call (see the trait doc).
    fn reserve_call(
        &self,
        request: &Reservation,
    ) -> impl Future<Output = Result<Grant, StoreError>> + Send;

    /// Calls reserved on `connection` since the start of the budget day `day_start_ms`.
    fn calls_reserved(
        &self,
        connection: &str,
        day_start_ms: i64,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Whether the kill switch is on.
    fn paused(&self) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn set_paused(&self, paused: bool) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A bound value (e.g. which CRM account this state belongs to).
    fn binding(&self, key: &str)
    -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Binds `key` to `value` unless it is bound already; returns the value bound before (so
    /// the caller can refuse a mismatch), `None` when this call bound it.
    fn bind(
        &self,
        key: &str,
        value: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Appends to the call log.
    fn record_calls(
        &self,
        calls: &[CallRow],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes up to `limit` call-log rows made before `before_ms` (retention); returns how
    /// many. The budget's reservations are separate and not touched.
    fn prune_calls(
        &self,
        before_ms: i64,
        limit: u64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Call-log totals since `since_ms`.
    fn call_summary(
        &self,
        since_ms: i64,
    ) -> impl Future<Output = Result<CallSummary, StoreError>> + Send;
}

/// Read-mostly queries for the commands people use to look into the state: `explain`,
/// `retry`, `status`.
pub trait Inspect: Send + Sync {
    /// Flags quarantine entries of `kinds` (of `sync`, or of every sync) with
    /// `retry_requested`; returns `(sync, local_id)` of the flagged entries, sorted.
    fn request_retry(
        &self,
        sync: Option<&str>,
        kinds: &[QuarantineKind],
    ) -> impl Future<Output = Result<Vec<(String, String)>, StoreError>> + Send;

    /// The quarantine entry of one record.
    fn quarantine_entry(
        &self,
        sync: &str,
        local_id: &str,
    ) -> impl Future<Output = Result<Option<QuarantineEntry>, StoreError>> + Send;

    /// The link of one record with its push time.
    fn link_detail(
        &self,
        sync: &str,
        local_id: &str,
    ) -> impl Future<Output = Result<Option<LinkDetail>, StoreError>> + Send;

    /// The job rows of one record (one per direction).
    fn jobs_of(
        &self,
        sync: &str,
        local_id: &str,
    ) -> impl Future<Output = Result<Vec<JobDetail>, StoreError>> + Send;

    /// The jobs of `sync` that are retrying or dead, grouped by state and last error, the
    /// largest groups first, at most `limit` groups: what `status` shows as stuck.
    fn job_problems(
        &self,
        sync: &str,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<JobProblem>, StoreError>> + Send;

    /// The latest `limit` calls that failed (an error was logged: the CRM's own message, or
    /// why no answer came), newest first. A lookup's 404 (a GET of something that does not
    /// exist yet) is an answer, not a failure, as in [`Coordination::call_summary`].
    fn recent_call_errors(
        &self,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<CallRow>, StoreError>> + Send;

    /// Calls started in `[from_ms, to_ms]` whose endpoint contains `endpoint_part`, oldest
    /// first, at most `limit`.
    fn calls_between(
        &self,
        from_ms: i64,
        to_ms: i64,
        endpoint_part: &str,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<CallRow>, StoreError>> + Send;
}

/// CRM records of syncs with `on_crm_create = "insert"` that have no row yet: claimed while
/// their rows are inserted, refused (with the app database's reason) when the database said
/// no. One entry per `(sync, crm_id)`; an entry disappears when the record is linked
/// ([`Creates::record_creates`]) or forgotten.
///
/// - A claim is written **before** the app insert, so after a crash the engine knows which
///   CRM records may have a row without a link (and looks them up instead of inserting).
/// - Claiming an entry keeps its history (first seen, refusals so far, the last reason);
///   refusing one counts an attempt and clears `retry_requested`.
/// - [`Creates::record_creates`] is one transaction: links, bases and the removal of the
///   entries together, so a record is either claimed or linked, never both or neither.
pub trait Creates: Send + Sync {
    /// Claims `(crm_id, modified_ms)` records of `sync` (see the trait doc).
    fn claim_creates(
        &self,
        sync: &str,
        claims: &[(String, i64)],
        fingerprint: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records refusals: each entry becomes `refused` with its rule, message, modification
    /// time and fingerprint, `last_seen_ms`, one more attempt, and no retry asked.
    fn refuse_creates(
        &self,
        refusals: &[CrmCreate],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Links rows inserted for CRM records of `sync` (one transaction): each link is created
    /// (or replaced) with its CRM id and hashes, pushed at `now_ms`, its version bumped, its
    /// CRM id marked written back when the row holds it; the bases are stored; the records'
    /// entries are removed.
    fn record_creates(
        &self,
        sync: &str,
        crm_object: &str,
        created: &[CreatedLink],
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes the entries of these CRM records of `sync`.
    fn forget_creates(
        &self,
        sync: &str,
        crm_ids: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Entries of `sync` (every sync's when `None`), ordered by sync and CRM id.
    fn creates(
        &self,
        sync: Option<&str>,
    ) -> impl Future<Output = Result<Vec<CrmCreate>, StoreError>> + Send;

    /// The entries of `sync` among `crm_ids`, by CRM id.
    fn creates_among(
        &self,
        sync: &str,
        crm_ids: &[String],
    ) -> impl Future<Output = Result<HashMap<String, CrmCreate>, StoreError>> + Send;

    /// Flags refused entries (of `sync`, or of every sync) with `retry_requested`; returns
    /// `(sync, crm_id)` of the flagged entries, sorted.
    fn request_create_retry(
        &self,
        sync: Option<&str>,
    ) -> impl Future<Output = Result<Vec<(String, String)>, StoreError>> + Send;
}

/// OAuth access tokens the workers of one CRM connection share, so that one of them refreshes
/// a token (holding the leader lease `oauth-refresh:<connection>` of
/// [`Coordination::try_lead`]) and the others use what it stored instead of refreshing too.
///
/// - The token is opaque text the CRM client sealed (encrypted and authenticated with a key
///   derived from the app's client secret, which the state database never holds): the store
///   never sees a token in clear, and a leaked state database leaks no usable token.
/// - **Monotonic**: [`Tokens::store_token`] replaces the stored token only with one that
///   expires later, or when the stored one is the token the caller says the CRM refused. A
///   refresher whose lease ran out mid-call therefore cannot put an older token back, while a
///   refused token can always be replaced.
/// - One row per connection; each method is one statement, atomic on its own.
pub trait Tokens: Send + Sync {
    /// The token stored for `connection`, if any (expired or not: the caller decides).
    fn token(
        &self,
        connection: &str,
    ) -> impl Future<Output = Result<Option<StoredToken>, StoreError>> + Send;

    /// Stores `token` for `connection` when none is stored, when the stored one expires
    /// earlier, or when the stored one's sealed text equals `refused`; true when stored.
    fn store_token(
        &self,
        connection: &str,
        token: &StoredToken,
        refused: Option<&str>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// The whole state database: what the engine is generic over. Cheap to clone (clones share
/// the connection pool).
pub trait State:
    Records
    + Queue
    + Lifecycle
    + Coordination
    + Inspect
    + Creates
    + Tokens
    + Clone
    + Send
    + Sync
    + 'static
{
    /// Which kind of database this is.
    fn backend(&self) -> Backend;
}
