//! The numbers `crmsync status` shows: per sync, how many app records are synced, pending,
//! failed, quarantined or held; for the CRM, calls, retries and 429s from the call log.

use crate::error::EngineError;
use crmsync_core::config::Config;
use crmsync_store::{SqliteSource, Store};
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
}

/// Call-log totals.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CrmStatus {
    pub kind: String,
    pub environment: String,
    pub calls: i64,
    pub retries: i64,
    pub rate_limited: i64,
    pub errors: i64,
    pub calls_today: i64,
    /// Today's share of the daily budget that is left (`daily_limit * daily_budget_share - calls_today`).
    pub daily_budget_remaining: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Status {
    pub syncs: Vec<SyncStatus>,
    pub crm: CrmStatus,
}

/// Reads the status of every sync in `config`.
pub async fn status<S: Store>(
    config: &Config,
    store: &S,
    source: &SqliteSource,
) -> Result<Status, EngineError> {
    let mut syncs = Vec::new();
    for s in &config.raw.syncs {
        let total = source.count(&s.table).await?;
        let c = store.counts(&s.name).await?;
        let quarantined = c.invalid + c.rejected;
        let synced = (c.linked - c.pending - c.dead).max(0).min(total);
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
        });
    }
    let all = store.call_summary(0).await?;
    let midnight = chrono::Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or(0);
    let today = store.call_summary(midnight).await?;
    let crm = &config.raw.crm;
    let budget = (f64::from(crm.daily_limit) * crm.daily_budget_share) as i64;
    Ok(Status {
        syncs,
        crm: CrmStatus {
            kind: "hubspot".into(),
            environment: format!("{:?}", crm.environment).to_lowercase(),
            calls: all.calls,
            retries: all.retries,
            rate_limited: all.rate_limited,
            errors: all.errors,
            calls_today: today.calls,
            daily_budget_remaining: (budget - today.calls).max(0),
        },
    })
}
