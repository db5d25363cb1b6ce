//! Memory: the whole state database in the process, for tests of the engine's pure stages and
//! of the contracts themselves. It has exactly the semantics of the SQLite backend (same CASE
//! rules, same orders, same counts), written as plain Rust over ordered maps.
//!
//! Invariant: every method takes the one lock once and holds it for its whole effect, so each
//! call is atomic (its "transaction") and calls from several tasks serialise like SQLite's
//! single writer. No method awaits while holding the lock (there is nothing to await). Nothing
//! under the lock can panic (no user code runs there, nothing is unwrapped); should the lock be
//! poisoned anyway, it is taken over as it is rather than turning one failure into a panic in
//! every later caller.

mod coordination;
mod creates;
mod inspect;
mod lifecycle;
mod queue;
mod state;
mod tokens;

use crate::backend::Backend;
use crate::model::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// crmsync's state in the process. Clones share the same tables.
#[derive(Debug, Clone, Default)]
pub struct MemoryState {
    inner: Arc<Mutex<Inner>>,
}

impl MemoryState {
    /// An empty state, as a freshly migrated database.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tables, locked for one whole operation.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl crate::State for MemoryState {
    fn backend(&self) -> Backend {
        Backend::Memory
    }
}

/// `(sync, local_id)`: the key of links, quarantine and deletions.
type RecordKey = (String, String);

fn key(sync: &str, local_id: &str) -> RecordKey {
    (sync.to_string(), local_id.to_string())
}

/// The tables, one field each, keyed as the SQLite primary keys are.
#[derive(Debug, Default)]
struct Inner {
    links: BTreeMap<RecordKey, LinkRow>,
    /// `(sync, local_id)` -> (field -> value).
    bases: BTreeMap<RecordKey, BTreeMap<String, String>>,
    /// By id; ids grow and are never reused (SQLite's `AUTOINCREMENT`).
    jobs: BTreeMap<i64, JobRow>,
    /// `(sync, local_id, direction)` -> job id: the unique key of the queue.
    job_ids: HashMap<(String, String, String), i64>,
    last_job_id: i64,
    /// `(sync, direction, mechanism)` -> value.
    cursors: BTreeMap<(String, &'static str, String), String>,
    /// The call log in insertion (id) order.
    calls: Vec<CallRow>,
    quarantine: BTreeMap<RecordKey, QuarantineEntry>,
    meta: BTreeMap<String, String>,
    /// By id (insertion order).
    conflicts: BTreeMap<i64, ConflictRow>,
    last_conflict_id: i64,
    webhook_events: BTreeMap<String, WebhookRow>,
    deletions: BTreeMap<RecordKey, CrmDeletion>,
    /// The merge log in insertion (id) order.
    merges: Vec<CrmMerge>,
    /// task -> (owner, until ms).
    leases: BTreeMap<String, (String, i64)>,
    /// `(connection, limit name)` -> start times of the calls reserved in that window.
    call_slots: HashMap<(String, String), Vec<i64>>,
    /// `(connection, day start)` -> calls reserved that day.
    call_days: BTreeMap<(String, i64), i64>,
    /// `(sync, crm_id)` -> (reason, added at).
    hints: BTreeMap<(String, String), (String, i64)>,
    /// `(sync, crm_id)` -> the CRM record on its way into the app.
    creates: BTreeMap<(String, String), CrmCreate>,
    /// connection -> its shared OAuth access token (sealed).
    tokens: BTreeMap<String, StoredToken>,
}

/// One row of `links`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LinkRow {
    crm_object: String,
    crm_id: Option<String>,
    pushed_hash: Option<String>,
    pushed_at: Option<i64>,
    pulled_hash: Option<String>,
    version: i64,
    written_back_id: Option<String>,
}

/// Where a job stands (`jobs.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobState {
    Ready,
    Running,
    Retrying,
    Dead,
    Done,
}

impl JobState {
    fn as_str(self) -> &'static str {
        match self {
            JobState::Ready => "ready",
            JobState::Running => "running",
            JobState::Retrying => "retrying",
            JobState::Dead => "dead",
            JobState::Done => "done",
        }
    }
}

/// One row of `jobs`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct JobRow {
    sync: String,
    local_id: String,
    direction: String,
    state: JobState,
    payload: String,
    hash: String,
    priority: i32,
    attempts: i64,
    run_at: i64,
    lease_until: Option<i64>,
    last_error: Option<String>,
    created_at: i64,
    updated_at: i64,
    owner: Option<String>,
}

/// One row of `conflicts`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ConflictRow {
    conflict: Conflict,
    resolved_at: Option<i64>,
    resolution: Option<String>,
}

/// One row of `webhook_events`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WebhookRow {
    received_at: i64,
    body: String,
    applied_at: Option<i64>,
}
