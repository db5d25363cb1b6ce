//! What one pass did, per sync and in total.

use serde::Serialize;

/// Outcome counts of one sync in one pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    pub sync: String,
    /// Rows read from the app database.
    pub read: u64,
    /// Rows whose payload matched what the CRM already has: no call spent.
    pub unchanged: u64,
    /// Rows queued for delivery.
    pub queued: u64,
    /// Records the CRM created.
    pub created: u64,
    /// Records the CRM updated.
    pub updated: u64,
    /// Rows failing a validation rule (quarantined, not sent).
    pub invalid: u64,
    /// Rows waiting (unconfirmed value, parent not in the CRM yet).
    pub held: u64,
    /// Records the CRM refused (quarantined with its message).
    pub rejected: u64,
    /// Records whose delivery failed for now and will be retried.
    pub failed: u64,
}

/// Outcome of a whole pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunReport {
    pub syncs: Vec<SyncReport>,
    /// CRM requests made in this pass (retries included).
    pub calls: u64,
    /// Successful batch upserts, and the records they carried.
    pub upsert_calls: u64,
    pub upserted_records: u64,
    /// Successful association batch calls.
    pub association_calls: u64,
    pub retries: u64,
    pub rate_limited: u64,
    /// Calls left of today's budget share after the pass.
    pub budget_remaining: u64,
    /// Set when the pass stopped because today's budget share was spent: when it refreshes.
    pub paused_until_ms: Option<i64>,
    pub elapsed_ms: u64,
}

impl RunReport {
    /// Whether some record could not be delivered (invalid, rejected or failed).
    pub fn has_record_failures(&self) -> bool {
        self.syncs
            .iter()
            .any(|s| s.invalid > 0 || s.rejected > 0 || s.failed > 0)
    }
}
