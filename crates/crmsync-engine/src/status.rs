//! The numbers `crmsync status` shows: per sync, how many app records are synced, pending,
//! failed, quarantined or held, and how many CRM records the app database refused as rows; for the CRM, calls, retries and 429s from the call log.

use crate::budget::Budget;
use crate::error::EngineError;
use crate::estimate::{calls_for, eta};
use crmsync_core::config::{Capture as CaptureMode, Config};
use crmsync_store::{
    Capture, Coordination, CursorDirection, DeletionState, Lifecycle, Source, State,
};
use serde::Serialize;

/// One sync's state.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SyncStatus {
    pub sync: String,
    pub object: String,
    /// Rows in the app table.
    pub total: i64,
    /// Records in the CRM with no pending change.
    pub synced: i64,
    /// Records not in sync yet: queued, waiting for a retry, or never planned.
    pub pending: i64,
    /// Records whose delivery ran out of retries.
    pub failed: i64,
    /// Records refused by a validation rule or by the CRM.
    pub quarantined: i64,
    /// Records waiting for something (a confirmation, a parent record).
    pub held: i64,
    /// Set when the sync is stopped because the CRM refuses its mapping: the CRM's message
    /// and the fix. Cleared by the next start whose preflight passes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Jobs retrying or dead, grouped by their last error (the largest groups first, at most
    /// five): a reason that repeats is usually a problem a person must fix.
    pub stuck: Vec<crmsync_store::JobProblem>,
    /// CRM values pulled fields could not map back into the app (a stage missing from a
    /// `map`), by field: left out of the app until the mapping takes them.
    pub unmapped: Vec<crate::inbound::warnings::Unmapped>,
    /// CRM records created in the CRM whose row the app database refused (`on_crm_create =
    /// "insert"`): not tried again until the record or the config changes, or `crmsync retry`.
    pub insert_refused: i64,
    /// ... grouped by the database's reason, the largest groups first (at most five).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub insert_problems: Vec<InsertProblem>,
}

/// CRM records the app database refused for one reason.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InsertProblem {
    /// The database's message.
    pub reason: String,
    pub records: i64,
    /// One of them (a CRM id, for `crmsync explain <sync> <id> --crm-id`).
    pub example: String,
}

/// The refused entries of `entries`, grouped by reason (see [`SyncStatus::insert_problems`]).
fn insert_problems(entries: &[crmsync_store::CrmCreate]) -> (i64, Vec<InsertProblem>) {
    let mut groups: std::collections::BTreeMap<&str, InsertProblem> = Default::default();
    let mut total = 0;
    for e in entries
        .iter()
        .filter(|e| e.state == crmsync_store::CreateState::Refused)
    {
        total += 1;
        groups
            .entry(e.message.as_str())
            .or_insert_with(|| InsertProblem {
                reason: e.message.clone(),
                records: 0,
                example: e.crm_id.clone(),
            })
            .records += 1;
    }
    let mut out: Vec<InsertProblem> = groups.into_values().collect();
    out.sort_by(|a, b| b.records.cmp(&a.records).then(a.reason.cmp(&b.reason)));
    out.truncate(5);
    (total, out)
}

/// Call-log totals.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CrmStatus {
    pub kind: String,
    pub environment: String,
    pub calls: i64,
    pub retries: i64,
    pub rate_limited: i64,
    pub errors: i64,
    pub calls_today: i64,
    pub retries_today: i64,
    pub rate_limited_today: i64,
    /// Share of today's calls that got no 2xx answer.
    pub error_rate_today: f64,
    /// Calls crmsync may make per day (`daily_limit * daily_budget_share`).
    pub daily_budget: i64,
    /// What is left of it today.
    pub daily_budget_remaining: i64,
    /// When the budget day ends (the account's midnight), RFC 3339.
    pub budget_resets_at: String,
    /// When the queued work will be delivered, if any is queued.
    pub queued_eta: Option<QueuedEta>,
}

/// The ETA of the queue.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QueuedEta {
    /// API calls the queued records need.
    pub calls: u64,
    /// Budget days they span (1: today).
    pub days: u64,
    /// RFC 3339.
    pub finishes_at: String,
}

/// The state of the way back (CRM -> app) and of the kill switch.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct TwoWayStatus {
    /// The kill switch is on: nothing is written on either side.
    pub paused: bool,
    /// Fields parked for review (`crmsync conflicts`).
    pub open_conflicts: u64,
    /// Records deleted in the CRM whose action was done.
    pub deleted_in_crm: u64,
    /// Deletions held by the mass-deletion guard (`crmsync deletions`).
    pub deletions_held: u64,
    /// Links re-pointed by CRM merges.
    pub merges: u64,
    /// ... of which left two app records on one CRM record.
    pub merges_shared: u64,
    /// Webhook events stored and not applied yet.
    pub webhook_events_pending: u64,
}

/// A periodic task and the worker leading it (its lease not expired).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Leader {
    /// `sync:<name>` (capture and inbound work of a sync) or `webhooks`.
    pub task: String,
    /// The worker's owner token (`host:pid:id`).
    pub worker: String,
    /// When its lease runs out unless renewed, RFC 3339.
    pub until: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Status {
    pub syncs: Vec<SyncStatus>,
    pub crm: CrmStatus,
    pub two_way: TwoWayStatus,
    /// Tasks led by a live worker (none when no `crmsync run` is running).
    pub leaders: Vec<Leader>,
}

/// Reads the two-way figures.
async fn two_way<S: Lifecycle + Coordination>(store: &S) -> Result<TwoWayStatus, EngineError> {
    let deletions = store.deletions(None, None).await?;
    let merges = store.merges(None).await?;
    Ok(TwoWayStatus {
        paused: store.paused().await?,
        open_conflicts: store.open_conflicts(None).await?.len() as u64,
        deleted_in_crm: deletions
            .iter()
            .filter(|d| d.state == DeletionState::Applied)
            .count() as u64,
        deletions_held: deletions
            .iter()
            .filter(|d| d.state == DeletionState::Held)
            .count() as u64,
        merges: merges.len() as u64,
        merges_shared: merges.iter().filter(|m| m.shared_with.is_some()).count() as u64,
        webhook_events_pending: store.pending_webhook_count().await?,
    })
}

/// Reads the status of every sync in `config`.
pub async fn status<S: State, A: Source + Capture>(
    config: &Config,
    store: &S,
    source: &A,
) -> Result<Status, EngineError> {
    let mut syncs = Vec::new();
    for s in &config.raw.syncs {
        let total = source.count(&s.table).await?;
        let c = store.counts(&s.name).await?;
        let quarantined = c.invalid + c.rejected;
        // Changes the triggers logged since the last pass are not synced yet, though their
        // records may be linked.
        let unseen = match store
            .cursor(&s.name, CursorDirection::Push, "trigger")
            .await?
        {
            Some(cursor) if s.capture == CaptureMode::Trigger => {
                i64::try_from(source.changes_pending(&s.table, Some(&cursor)).await?)
                    .unwrap_or(i64::MAX)
            }
            _ => 0,
        };
        let (insert_refused, insert_problems) =
            insert_problems(&store.creates(Some(&s.name)).await?);
        let synced = (c.linked - c.pending - c.dead - unseen).max(0).min(total);
        let pending = (total - synced - c.dead - quarantined - c.held).max(0);
        syncs.push(SyncStatus {
            sync: s.name.clone(),
            object: s.object.clone(),
            total,
            synced,
            pending,
            failed: c.dead,
            quarantined,
            held: c.held,
            stopped: crate::outbound::stopped_reason(store, &s.name).await?,
            stuck: store.job_problems(&s.name, 5).await?,
            unmapped: crate::inbound::warnings::unmapped_warnings(store, &s.name).await?,
            insert_refused,
            insert_problems,
        });
    }
    let now = crmsync_store::now_ms();
    let mut budget = Budget::new(&config.raw.crm, now);
    budget.used = store
        .calls_reserved(&crate::engine::connection_of(config), budget.day_start_ms)
        .await?;
    let all = store.call_summary(0).await?;
    let today = store.call_summary(budget.day_start_ms).await?;
    let mut queued_calls = 0;
    for s in &config.raw.syncs {
        let queued = store.counts(&s.name).await?.pending.max(0) as u64;
        queued_calls += calls_for(
            config.raw.crm.kind.as_str(),
            &config.raw.syncs,
            s,
            queued,
            config.raw.crm.write_batch(),
        );
    }
    let crm = &config.raw.crm;
    let leaders = store
        .leaders()
        .await?
        .into_iter()
        .filter(|(_, _, until)| *until >= now)
        .map(|(task, worker, until)| Leader {
            task,
            worker,
            until: rfc3339(until),
        })
        .collect();
    Ok(Status {
        leaders,
        two_way: two_way(store).await?,
        syncs,
        crm: CrmStatus {
            kind: crate::engine::connection_of(config),
            environment: format!("{:?}", crm.environment).to_lowercase(),
            calls: all.calls,
            retries: all.retries,
            rate_limited: all.rate_limited,
            errors: all.errors,
            calls_today: today.calls,
            retries_today: today.retries,
            rate_limited_today: today.rate_limited,
            error_rate_today: if today.calls > 0 {
                today.errors as f64 / today.calls as f64
            } else {
                0.0
            },
            daily_budget: budget.allowance,
            daily_budget_remaining: budget.remaining(),
            budget_resets_at: rfc3339(budget.resets_at_ms()),
            queued_eta: (queued_calls > 0).then(|| {
                let e = eta(config, &budget, queued_calls, now);
                QueuedEta {
                    calls: e.calls,
                    days: e.days,
                    finishes_at: rfc3339(e.finishes_at_ms),
                }
            }),
        },
    })
}

/// `ms` since the epoch as RFC 3339 in UTC, to the second ("" when out of range).
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}
