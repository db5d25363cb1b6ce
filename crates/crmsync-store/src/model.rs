//! Rows the [`crate::Store`] reads and writes.

/// Where one app record lives in the CRM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub crm_object: String,
    /// `None` until the CRM answered.
    pub crm_id: Option<String>,
    /// Hash of the last payload the CRM accepted.
    pub pushed_hash: Option<String>,
}

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

/// A claimed job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: i64,
    pub sync: String,
    pub local_id: String,
    pub payload: String,
    pub hash: String,
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

/// Why a record is in quarantine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// `crmsync retry` asked for this record to be looked at again in the next pass.
    pub retry_requested: bool,
}

/// One logged CRM request.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRow {
    pub at_ms: i64,
    pub method: String,
    pub endpoint: String,
    pub status: Option<u16>,
    pub attempt: u32,
    pub latency_ms: i64,
    pub records: u32,
    /// Rate-limit headers as a JSON object.
    pub rate_limits: Option<String>,
    pub error: Option<String>,
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
    /// Records carried by successful batch upserts.
    pub upserted: i64,
    /// Successful batch upsert calls.
    pub upsert_calls: i64,
    /// Successful association calls.
    pub association_calls: i64,
}

/// The result of applying pulled CRM values to one record, recorded in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRecord {
    pub local_id: String,
    /// The new `links.pushed_hash` when the app row now maps to what the CRM holds (so the
    /// next push sends nothing); `None` leaves it alone.
    pub pushed_hash: Option<String>,
    /// Hash of the mapped payload after applying, kept as `links.pulled_hash`.
    pub pulled_hash: Option<String>,
    /// New base values: (CRM property, value).
    pub bases: Vec<(String, String)>,
}

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
