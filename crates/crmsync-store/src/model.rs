//! The rows and requests that cross the store's contracts (see `lib.rs`). Plain data: every
//! backend reads and writes these and nothing backend-specific leaves its folder.

use crmsync_core::mapping::Row;
use std::collections::HashMap;

// ----- the app database -----------------------------------------------------------------------

/// A row as read for a sync: its key and the requested columns as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRow {
    pub key: String,
    /// Column -> value as text (`None` for SQL NULL). A column in `unreadable` is absent here.
    pub values: Row,
    /// Columns whose value could not be read as text, with the reason (e.g. `bytes that are
    /// not UTF-8`). Such a record is quarantined naming the column, not sent.
    pub unreadable: Vec<(String, String)>,
}

impl SourceRow {
    /// A row whose every column was readable.
    pub fn new(key: impl Into<String>, values: Row) -> Self {
        SourceRow {
            key: key.into(),
            values,
            unreadable: Vec::new(),
        }
    }
}

/// Whether a relation is a table or a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Table,
    View,
}

/// What the database says about a table or view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    pub name: String,
    pub kind: TableKind,
    pub columns: Vec<ColumnInfo>,
}

impl TableInfo {
    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The names of `needed` that the table lacks, in the order given.
    pub fn missing<'a>(&self, needed: &[&'a str]) -> Vec<&'a str> {
        needed
            .iter()
            .copied()
            .filter(|n| self.column(n).is_none())
            .collect()
    }
}

/// One column of a [`TableInfo`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    pub name: String,
    /// The declared type as the database spells it (`INTEGER`, `bigint`, `varchar(255)`).
    pub data_type: String,
    pub nullable: bool,
    /// Computed by the database (a generated column): it cannot be written.
    pub generated: bool,
    /// Has a default (or is filled by the database, like an identity column).
    pub has_default: bool,
    pub primary_key: bool,
}

/// One page request of `capture = "updated_at"` (see [`crate::Source::updated_page`]).
#[derive(Debug, Clone, Copy)]
pub struct UpdatedPage<'a> {
    pub table: &'a str,
    pub key: &'a str,
    /// Columns to read; includes `ts_column`.
    pub columns: &'a [&'a str],
    pub ts_column: &'a str,
    /// First page: rows with `ts_column >= since` (all rows when `None`).
    pub since: Option<&'a str>,
    /// Later pages: rows after this `(ts, key)` position.
    pub after: Option<(&'a str, &'a str)>,
    pub limit: usize,
}

/// One row write of [`crate::Source::write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowWrite {
    /// The row's key.
    pub key: String,
    /// Column -> new value (`None` writes NULL).
    pub set: Vec<(String, Option<String>)>,
    /// Column -> the value (as text) the row must still hold for the write to happen.
    pub expect: Vec<(String, Option<String>)>,
}

/// One row for [`crate::Source::insert`]: a record created in the CRM, becoming a row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewRow {
    /// Column -> value as text (`None` inserts NULL), converted by the database to the
    /// column's type as [`crate::Source::write`] does. Columns not named here (and not in
    /// `now`) take their defaults.
    pub values: Vec<(String, Option<String>)>,
    /// Columns that take the database's current time, in the form the column's type holds
    /// (see [`crate::Source::insert`]).
    pub now: Vec<String>,
    /// `(column, value)`: insert only when no row holds `value` in `column` yet (compared in
    /// the column's type); otherwise that row's key is answered ([`Inserted::Exists`]).
    pub unless: Option<(String, String)>,
}

/// What [`crate::Source::insert`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// The row was inserted; the key the database assigned it (or the one given), as text.
    Row(String),
    /// A row already held the `unless` value: nothing was inserted; that row's key.
    Exists(String),
    /// The database refused the row (a NOT NULL, unique, foreign-key or check constraint, a
    /// value the column's type does not take, an app trigger's error): nothing was inserted;
    /// the database's own message.
    Refused(String),
}

/// A page of [`crate::Capture::changes_since`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangePage {
    /// Distinct changed keys, oldest change first.
    pub keys: Vec<String>,
    /// The cursor after these changes (the one given when nothing new is visible).
    pub cursor: String,
    /// Whether more changes may be waiting beyond this page.
    pub more: bool,
}

// ----- the app database's schema (`crmsync init`) -------------------------------------------

/// A foreign key of an app table (see [`crate::Introspect::foreign_keys`]): `columns` of the
/// table reference `referenced` of `table`, position by position (one column each for the
/// usual `user_id -> users.id`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ForeignKey {
    pub columns: Vec<String>,
    /// The referenced table: unqualified when it is in the connection's default schema (as
    /// [`crate::Introspect::tables`] names it), `schema.table` otherwise.
    pub table: String,
    pub referenced: Vec<String>,
}

/// The distinct values of a column (see [`crate::Introspect::distinct_values`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DistinctValues {
    /// Non-NULL values as text, in byte order, at most the limit asked for.
    pub values: Vec<String>,
    /// Whether the column holds more distinct values than were listed.
    pub more: bool,
}

// ----- links, quarantine, cursors -------------------------------------------------------------

/// Where one app record lives in the CRM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub crm_object: String,
    /// `None` until the CRM answered.
    pub crm_id: Option<String>,
    /// Hash of the last payload the CRM accepted.
    pub pushed_hash: Option<String>,
    /// Grows with every inbound commit for the record (see [`crate::Records`]).
    pub version: i64,
}

/// The result of applying pulled CRM values to one record, recorded in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRecord {
    pub local_id: String,
    /// The new `pushed_hash` when the app row now maps to what the CRM holds (so the next push
    /// sends nothing); `None` leaves it alone.
    pub pushed_hash: Option<String>,
    /// Hash of the mapped payload after applying, kept as the link's `pulled_hash`.
    pub pulled_hash: Option<String>,
    /// New base values: (CRM property, value).
    pub bases: Vec<(String, String)>,
}

/// Which way a cursor reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorDirection {
    /// Reading the app database (capture).
    Push,
    /// Reading the CRM (polling), and periodic tasks' bookkeeping.
    Pull,
}

impl CursorDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            CursorDirection::Push => "push",
            CursorDirection::Pull => "pull",
        }
    }
}

/// Why a record is in quarantine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuarantineKind {
    /// A validation rule failed before any call was spent.
    Invalid,
    /// The CRM refused it.
    Rejected,
    /// Not an error: waiting for something (a confirmation, a parent record).
    Held,
}

impl QuarantineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            QuarantineKind::Invalid => "invalid",
            QuarantineKind::Rejected => "rejected",
            QuarantineKind::Held => "held",
        }
    }

    /// Reads a stored kind; an unknown word reads as `rejected` (never silently sent).
    pub fn parse(s: &str) -> Self {
        match s {
            "invalid" => QuarantineKind::Invalid,
            "held" => QuarantineKind::Held,
            _ => QuarantineKind::Rejected,
        }
    }
}

/// One quarantined record and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineEntry {
    pub sync: String,
    pub local_id: String,
    pub kind: QuarantineKind,
    /// The app column at fault, when known.
    pub field: Option<String>,
    /// The rule (`email`, `required`, `map`, ...) or the CRM's error code.
    pub rule: String,
    pub message: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub attempts: i64,
    /// `crmsync retry` (or a parent that got linked) asked for this record to be looked at
    /// again in the next capture.
    pub retry_requested: bool,
    /// For a record held for its parent: (the parent's sync, the parent's key). Settling the
    /// parent releases it.
    pub waits_for: Option<(String, String)>,
}

impl QuarantineEntry {
    /// An entry first seen `now_ms`, not waiting for a parent.
    pub fn new(
        sync: &str,
        local_id: &str,
        kind: QuarantineKind,
        field: Option<String>,
        rule: impl Into<String>,
        message: impl Into<String>,
        now_ms: i64,
    ) -> Self {
        QuarantineEntry {
            sync: sync.to_string(),
            local_id: local_id.to_string(),
            kind,
            field,
            rule: rule.into(),
            message: message.into(),
            first_seen_ms: now_ms,
            last_seen_ms: now_ms,
            attempts: 1,
            retry_requested: false,
            waits_for: None,
        }
    }
}

/// Queue and quarantine counts of one sync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Jobs waiting or being worked on (ready, running, retrying).
    pub pending: i64,
    /// Jobs that ran out of retries.
    pub dead: i64,
    pub invalid: i64,
    pub rejected: i64,
    pub held: i64,
    /// Links with a CRM id.
    pub linked: i64,
    /// When the oldest pending job was queued (ms since the epoch): how far behind the CRM is.
    pub oldest_pending_at_ms: Option<i64>,
}

// ----- the queue -------------------------------------------------------------------------------

/// A push to queue: the record's mapped payload (JSON) and its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub sync: String,
    pub local_id: String,
    pub payload: String,
    pub hash: String,
    /// Higher runs first: interactive edits over backfill.
    pub priority: i32,
}

/// One page of a capture, committed in one transaction ([`crate::Queue::commit_capture`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureCommit {
    pub sync: String,
    /// Records to send. A job of a record named in `expect_versions` whose hash the link's
    /// `pushed_hash` already holds is not queued (the CRM has it: a settle landed after the
    /// planner read the link); jobs of records not named there (inbound re-queues, repairs of
    /// drift) are queued whatever the link holds.
    pub jobs: Vec<NewJob>,
    /// Records the planner found unchanged (their hash is the link's `pushed_hash`): a live job
    /// of the record with another hash is superseded — done when waiting, given this payload
    /// when in flight (so its settle queues it again) — because the CRM must end with this.
    pub unchanged: Vec<NewJob>,
    pub quarantine: Vec<QuarantineEntry>,
    /// Records now in sync whose quarantine entry goes.
    pub clear: Vec<String>,
    /// The link versions the planner read (0: no link), by local id. A job, entry or clear of
    /// a record whose version moved since is stale and skipped. Records absent here are
    /// written unconditionally.
    pub expect_versions: HashMap<String, i64>,
    /// `(mechanism, value)`: the capture cursor to store with this page.
    pub cursor: Option<(String, String)>,
    pub now_ms: i64,
}

impl CaptureCommit {
    /// A commit of `jobs` alone, written unconditionally (inbound re-queues).
    pub fn jobs(sync: &str, jobs: Vec<NewJob>, now_ms: i64) -> Self {
        CaptureCommit {
            sync: sync.to_string(),
            jobs,
            now_ms,
            ..Default::default()
        }
    }
}

/// What [`crate::Queue::commit_capture`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitReport {
    pub queued: u64,
    /// Jobs not queued because the CRM already holds their payload.
    pub already: u64,
    /// Waiting jobs superseded by an unchanged record (the row went back to what the CRM has).
    pub superseded: u64,
    /// Local ids skipped because an inbound commit moved their link meanwhile.
    pub stale: Vec<String>,
    /// Records held for a parent that was linked while they were planned (its settle found no
    /// entry to release): marked for a retry, so the caller's next capture sends them.
    pub released: u64,
}

/// A claimed job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: i64,
    pub sync: String,
    pub local_id: String,
    pub payload: String,
    pub hash: String,
    /// Deliveries started, this one included.
    pub attempts: i64,
}

/// A job the CRM accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub job_id: i64,
    pub local_id: String,
    pub crm_id: String,
    pub hash: String,
}

/// A job to try again later (or never: `dead`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    pub job_id: i64,
    pub error: String,
    pub run_at_ms: i64,
    pub dead: bool,
}

/// The outcome of delivering claimed jobs of one sync ([`crate::Queue::settle`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settlement {
    pub sync: String,
    pub crm_object: String,
    pub delivered: Vec<Delivered>,
    /// Jobs the CRM refused for good: (job id, the record's quarantine entry).
    pub rejected: Vec<(i64, QuarantineEntry)>,
    pub retry: Vec<Retry>,
    /// New bases of delivered records: (local id, CRM property, value).
    pub bases: Vec<(String, String, String)>,
    pub now_ms: i64,
}

/// What [`crate::Queue::settle`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettleReport {
    /// Jobs whose outcome was applied.
    pub settled: u64,
    /// Jobs no longer running under the caller's lease: their outcome was dropped.
    pub lost: Vec<i64>,
    /// Records of other syncs waiting for a parent this settlement linked, now released.
    pub released: u64,
}

// ----- lifecycle -------------------------------------------------------------------------------

/// A field changed on both sides, parked for review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub id: i64,
    pub sync: String,
    pub local_id: String,
    pub crm_id: String,
    /// The CRM property.
    pub field: String,
    /// The app column.
    pub column: String,
    /// The app's value in CRM form.
    pub app_value: String,
    pub crm_value: String,
    pub base_value: Option<String>,
    pub created_at_ms: i64,
}

/// Where a CRM deletion stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionState {
    /// Held by the mass-deletion guard until a person decides (`crmsync deletions`).
    Held,
    /// The sync's `on_crm_delete` action was done.
    Applied,
}

impl DeletionState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Applied => "applied",
        }
    }

    /// Reads a stored state; anything but `applied` reads as held (a person decides).
    pub fn parse(s: &str) -> Self {
        if s == "applied" {
            Self::Applied
        } else {
            Self::Held
        }
    }
}

/// A linked record that is gone from the CRM (archived or deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmDeletion {
    pub sync: String,
    pub local_id: String,
    pub crm_id: String,
    pub seen_at_ms: i64,
    pub state: DeletionState,
    /// `flag` or `unlink`, once applied.
    pub action: Option<String>,
}

/// A link re-pointed because the CRM merged its record into `to_crm_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmMerge {
    pub sync: String,
    pub local_id: String,
    pub from_crm_id: String,
    pub to_crm_id: String,
    /// Another app record of the sync that maps to `to_crm_id` too.
    pub shared_with: Option<String>,
    pub at_ms: i64,
}

/// A CRM record of a sync to read back and apply (from a webhook event, or a CRM edit found
/// just before a push).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    pub sync: String,
    pub crm_id: String,
    /// Why: `webhook`, `recheck`, ...
    pub reason: String,
    pub added_at_ms: i64,
}

// ----- coordination ----------------------------------------------------------------------------

/// One API call to reserve on a CRM connection ([`crate::Coordination::reserve_call`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The CRM connection (one account's budget).
    pub connection: String,
    /// Rolling windows the call counts against, e.g. 98 per 10 s.
    pub windows: Vec<WindowLimit>,
    /// The calendar day the call counts against, if the connection has a daily limit.
    pub day: Option<DayLimit>,
    pub now_ms: i64,
}

/// At most `max` calls within any `length_ms`, counted under `name`; and, when `min_gap_ms`
/// is above 0, no call granted sooner than `min_gap_ms` after the window's previous grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowLimit {
    pub name: String,
    pub max: u32,
    pub length_ms: i64,
    /// Pacing across all workers: a full window is then spread evenly instead of granted as a
    /// burst the moment the oldest slot leaves it (calls reach the CRM a few ms after their
    /// reservation, so two bursts at a window's edge land in one window of the CRM's).
    pub min_gap_ms: i64,
}

/// At most `allowance` calls in the budget day starting at `start_ms` (it lasts 24 h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayLimit {
    pub start_ms: i64,
    pub allowance: i64,
}

/// The answer to a [`Reservation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// The call may start now; it is counted.
    Granted,
    /// Nothing was reserved: `limit` (a window name, or `day`) is full until `until_ms`.
    Wait { until_ms: i64, limit: String },
}

/// Keeps the latest instant a reservation must wait for (and the limit that makes it wait),
/// as each window and the day are counted: a call may start only when every limit has room.
pub(crate) fn wait_for_latest(wait: &mut Option<(i64, String)>, until_ms: i64, limit: &str) {
    if wait.as_ref().is_none_or(|(u, _)| until_ms > *u) {
        *wait = Some((until_ms, limit.to_string()));
    }
}

/// One logged CRM request.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRow {
    /// The CRM connection it went to.
    pub connection: String,
    pub at_ms: i64,
    pub method: String,
    pub endpoint: String,
    pub status: Option<u16>,
    pub attempt: u32,
    pub latency_ms: i64,
    pub records: u32,
    /// What the call did, in words common to every CRM (`upsert`, `associate`, ...).
    pub operation: String,
    /// The CRM refused it for its rate limit.
    pub rate_limited: bool,
    /// Rate-limit headers as a JSON object.
    pub rate_limits: Option<String>,
    pub error: Option<String>,
}

/// Totals over the call log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallSummary {
    pub calls: i64,
    /// Calls with attempt > 1.
    pub retries: i64,
    pub rate_limited: i64,
    /// Calls without a 2xx answer, except a lookup's 404 (how "does it exist?" is answered).
    pub errors: i64,
    /// Records carried by successful write calls (upserts, creates).
    pub upserted: i64,
    /// Successful write calls (upserts, creates).
    pub upsert_calls: i64,
    /// Successful association calls.
    pub association_calls: i64,
}

// ----- records created in the CRM --------------------------------------------------------------

/// Where a CRM record on its way into the app stands ([`crate::Creates`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CreateState {
    /// Its row is being inserted (or was, and the link is not recorded yet).
    Claimed,
    /// The app database refused the row; not tried again until the CRM record, the sync's
    /// config or `crmsync retry` says so.
    Refused,
}

impl CreateState {
    pub fn as_str(self) -> &'static str {
        match self {
            CreateState::Claimed => "claimed",
            CreateState::Refused => "refused",
        }
    }

    /// Reads a stored state; anything but `refused` reads as claimed (looked up again, never
    /// inserted blindly).
    pub fn parse(s: &str) -> Self {
        if s == "refused" {
            CreateState::Refused
        } else {
            CreateState::Claimed
        }
    }
}

/// A CRM record of a sync with `on_crm_create = "insert"` that has no row yet: claimed while
/// its row is inserted, or refused by the app database with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmCreate {
    pub sync: String,
    pub crm_id: String,
    pub state: CreateState,
    /// Who refused it (`database`, `crm`); empty while only claimed.
    pub rule: String,
    /// The refusal's reason, as the database (or the CRM) said it; empty while only claimed.
    pub message: String,
    /// The CRM record's modification time when it was last tried: a later edit tries again.
    pub modified_ms: i64,
    /// The sync's mapping fingerprint when it was last tried: a changed config tries again.
    pub fingerprint: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// Refusals so far.
    pub attempts: i64,
    /// `crmsync retry` asked for it to be tried again.
    pub retry_requested: bool,
}

/// A row inserted for a CRM record, to link ([`crate::Creates::record_creates`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedLink {
    pub local_id: String,
    pub crm_id: String,
    /// The link's `pushed_hash`: the row's payload when the CRM holds exactly that (nothing
    /// to push); `None` when there is something to send.
    pub pushed_hash: Option<String>,
    pub pulled_hash: Option<String>,
    /// Base values of the pulled fields: (CRM property, value).
    pub bases: Vec<(String, String)>,
    /// The row holds the CRM id in the sync's `write_back_column` already.
    pub written_back: bool,
}

// ----- inspection ------------------------------------------------------------------------------

/// A record's link with the time of its last accepted push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkDetail {
    pub crm_object: String,
    pub crm_id: Option<String>,
    pub pushed_hash: Option<String>,
    pub pushed_at_ms: Option<i64>,
}

/// Jobs of a sync that keep failing the same way: retrying or dead, by their last error.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobProblem {
    /// `retrying` (will be tried again) or `dead` (out of attempts).
    pub state: String,
    /// The last error, as stored.
    pub error: String,
    pub jobs: i64,
}

/// A record's job row, whatever its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDetail {
    pub id: i64,
    pub direction: String,
    /// `ready`, `running`, `retrying`, `dead` or `done`.
    pub state: String,
    pub hash: String,
    pub payload: String,
    pub attempts: i64,
    pub run_at_ms: i64,
    pub last_error: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// The worker holding it while running.
    pub owner: Option<String>,
}

// ----- shared credentials ----------------------------------------------------------------------

/// A CRM connection's OAuth access token as the workers share it ([`crate::Tokens`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    /// The token as the CRM client sealed it: opaque text, never the token in clear.
    pub sealed: String,
    /// When the token was obtained (ms since the epoch), for the client's refresh margin.
    pub obtained_at_ms: i64,
    /// When the CRM said it expires (ms since the epoch).
    pub expires_at_ms: i64,
}
