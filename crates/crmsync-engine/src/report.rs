//! What one pass did: per sync and in total for the push side ([`SyncReport`], [`RunReport`]),
//! and for the way back ([`PullReport`]).

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
    /// Set when the sync stopped delivering because the CRM refuses its mapping (every record
    /// would fail the same way): the CRM's message and the fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
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
    /// Whether some record could not be delivered (invalid, rejected, failed, or its sync stopped).
    pub fn has_record_failures(&self) -> bool {
        self.syncs
            .iter()
            .any(|s| s.invalid > 0 || s.rejected > 0 || s.failed > 0 || s.stopped.is_some())
    }
}

/// Counts of inbound work (a poll, webhook events, reconciliation).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PullReport {
    /// Changed CRM records read.
    pub fetched: u64,
    /// App rows written.
    pub applied: u64,
    /// Records whose two-way fields already agreed (e.g. our own pushes coming back).
    pub unchanged: u64,
    /// Fields where the app's value was kept (it is pushed next).
    pub kept_app: u64,
    /// Fields parked for review.
    pub parked: u64,
    /// CRM records with no link (created in the CRM; the sync does not insert them).
    pub unlinked: u64,
    /// CRM records created in the CRM that became app rows (`on_crm_create = "insert"`).
    pub inserted: u64,
    /// CRM records whose row the app database refused (reported once, with the reason).
    pub insert_refused: u64,
    /// Records whose insert was refused before and nothing changed since: not tried again.
    pub insert_waiting: u64,
    /// CRM records crmsync created itself (their id property holds a key) not linked yet:
    /// never inserted.
    pub ours: u64,
    /// CRM values that cannot be mapped back (e.g. a deal stage with no app status).
    pub unmappable: u64,
    /// App rows that changed while the CRM's value was being applied: left alone, decided
    /// again with the app's new value.
    pub raced: u64,
    /// Linked records read back by id (webhook events, reconciliation).
    pub checked: u64,
    /// Webhook events read (stored ones, applied now).
    pub events: u64,
    /// Webhook events that needed no read: our own writes coming back, fields we don't pull.
    pub events_skipped: u64,
    /// Linked CRM records found deleted (archived), with the sync's action done.
    pub deleted: u64,
    /// Deletions held by the mass-deletion guard.
    pub deletions_held: u64,
    /// Deleted records that came back (restored in the CRM).
    pub restored: u64,
    /// Links re-pointed to the survivor of a CRM merge.
    pub merged: u64,
    /// Merges after which two app records map to one CRM record (held, reported).
    pub shared: u64,
    /// Records pushed again because the CRM's value of a push field differed (reconcile).
    pub repushed: u64,
}

impl PullReport {
    /// What a reconciliation repaired: every difference it found and fixed.
    pub fn drift(&self) -> u64 {
        self.applied
            + self.repushed
            + self.deleted
            + self.deletions_held
            + self.restored
            + self.merged
            + self.shared
    }

    /// Whether anything changed on either side (worth a line in a log).
    pub fn changed(&self) -> bool {
        self.applied
            + self.inserted
            + self.insert_refused
            + self.parked
            + self.deleted
            + self.deletions_held
            + self.restored
            + self.merged
            + self.shared
            + self.repushed
            > 0
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &PullReport) {
        self.fetched += other.fetched;
        self.applied += other.applied;
        self.unchanged += other.unchanged;
        self.kept_app += other.kept_app;
        self.parked += other.parked;
        self.unlinked += other.unlinked;
        self.inserted += other.inserted;
        self.insert_refused += other.insert_refused;
        self.insert_waiting += other.insert_waiting;
        self.ours += other.ours;
        self.unmappable += other.unmappable;
        self.raced += other.raced;
        self.checked += other.checked;
        self.events += other.events;
        self.events_skipped += other.events_skipped;
        self.deleted += other.deleted;
        self.deletions_held += other.deletions_held;
        self.restored += other.restored;
        self.merged += other.merged;
        self.shared += other.shared;
        self.repushed += other.repushed;
    }
}

impl SyncReport {
    /// Adds the counts of a later capture round of the same pass. Held records are looked at
    /// again in every round, so `held` is the later round's count (what still waits), not a
    /// sum that grows with the rounds.
    pub fn add_round(&mut self, other: &SyncReport) {
        let held = other.held;
        self.add(other);
        self.held = held;
    }

    /// Adds `other`'s counts to these (same sync).
    pub fn add(&mut self, other: &SyncReport) {
        self.read += other.read;
        self.unchanged += other.unchanged;
        self.queued += other.queued;
        self.created += other.created;
        self.updated += other.updated;
        self.invalid += other.invalid;
        self.held += other.held;
        self.rejected += other.rejected;
        self.failed += other.failed;
        if other.stopped.is_some() {
            self.stopped.clone_from(&other.stopped);
        }
    }
}
