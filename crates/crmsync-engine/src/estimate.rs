//! How much work a full sync is, and how long it takes within the API limits: what
//! `crmsync plan` prints and what `status` uses for its ETA. Reads only; changes nothing.

use crate::budget::Budget;
use crate::error::EngineError;
use crate::outbound::capture::{PAGE, columns};
use crate::outbound::order::dependency_order;
use crate::outbound::plan::{PlanInput, plan};
use crmsync_core::config::{Config, SyncConfig};
use crmsync_store::{Records, Source};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

/// What a full pass of one sync would do.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SyncEstimate {
    pub sync: String,
    pub rows: u64,
    /// Records whose payload differs from what the CRM has (new or changed).
    pub to_send: u64,
    pub unchanged: u64,
    pub invalid: u64,
    pub held: u64,
    pub upsert_calls: u64,
    pub association_calls: u64,
    /// The mapping changed since the sync's records were planned (or `crmsync resync` asked):
    /// the next sync re-plans every row, and `to_send` is what that sends.
    pub replan: bool,
}

/// When queued work will be done, given the rate limit and the daily share.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Eta {
    pub calls: u64,
    /// Requests per second crmsync allows itself (the interval limit less the headroom).
    pub requests_per_second: f64,
    /// Time the calls take at that rate, ignoring the daily share.
    pub seconds_at_rate: f64,
    pub daily_allowance: i64,
    pub calls_left_today: i64,
    /// Budget days the work spans (1 when it fits into what is left today).
    pub days: u64,
    /// Expected end, ms since the epoch.
    pub finishes_at_ms: i64,
}

/// A full sync's cost.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Estimate {
    pub syncs: Vec<SyncEstimate>,
    pub eta: Eta,
}

/// The pace crmsync keeps (the CRM kind's, [`crmsync_core::config::CrmConfig::requests_per_second`]).
pub fn requests_per_second(config: &Config) -> f64 {
    config.raw.crm.requests_per_second()
}

/// When `calls` calls starting at `now_ms` are done.
pub fn eta(config: &Config, budget: &Budget, calls: u64, now_ms: i64) -> Eta {
    let rate = requests_per_second(config).max(f64::MIN_POSITIVE);
    let seconds_at_rate = calls as f64 / rate;
    let left = budget.remaining() as u64;
    let allowance = budget.allowance.max(1) as u64;
    let (days, finishes_at_ms) = if calls <= left {
        (1, now_ms + (seconds_at_rate * 1000.0) as i64)
    } else {
        let rest = calls - left;
        let extra_days = rest.div_ceil(allowance);
        let last_day_calls = rest - (extra_days - 1) * allowance;
        let start_of_last = budget.resets_at_ms() + (extra_days as i64 - 1) * 86_400_000;
        (
            1 + extra_days,
            start_of_last + (last_day_calls as f64 / rate * 1000.0) as i64,
        )
    };
    Eta {
        calls,
        requests_per_second: rate,
        seconds_at_rate,
        daily_allowance: budget.allowance,
        calls_left_today: budget.remaining(),
        days,
        finishes_at_ms,
    }
}

/// Calls needed to deliver `records` records of `sync` among `syncs` (one upsert and one
/// association call per target for each full batch; a parent sent as a property of the record,
/// a line item's product, needs no call of its own).
pub fn calls_for(
    kind: &str,
    syncs: &[SyncConfig],
    sync: &SyncConfig,
    records: u64,
    batch: u64,
) -> u64 {
    let references = crate::outbound::plan::reference_properties(syncs, sync);
    let targets = sync
        .associate
        .values()
        .filter(|t| !references.contains_key(*t))
        .filter(|t| !linked_on_write(kind, syncs, sync, t))
        .collect::<HashSet<_>>()
        .len() as u64;
    records.div_ceil(batch.max(1)) * (1 + targets)
}

/// Whether the CRM `kind` carries the link from a record of `sync` that is not in the CRM yet
/// to `target`'s records in its create (HubSpot batch create), so it costs no association call.
pub(crate) fn linked_on_create(
    kind: &str,
    syncs: &[SyncConfig],
    sync: &SyncConfig,
    target: &str,
) -> bool {
    let object = |s: &SyncConfig| crmsync_crm::ObjectKind::parse(&s.object);
    let to = syncs.iter().find(|s| s.name == target).and_then(object);
    match (object(sync), to) {
        (Some(from), Some(to)) => crmsync_crm::any::links_on_create(kind, from, to),
        _ => false,
    }
}

/// Whether the CRM `kind` carries the link from `sync` to `target`'s records in the write
/// itself (Salesforce lookups), so it costs no association call.
pub(crate) fn linked_on_write(
    kind: &str,
    syncs: &[SyncConfig],
    sync: &SyncConfig,
    target: &str,
) -> bool {
    let object = |s: &SyncConfig| crmsync_crm::ObjectKind::parse(&s.object);
    let to = syncs.iter().find(|s| s.name == target).and_then(object);
    match (object(sync), to) {
        (Some(from), Some(to)) => crmsync_crm::any::links_on_write(kind, from, to),
        _ => false,
    }
}

/// Reads every sync's table and counts what a full pass would send.
pub async fn estimate<S: Records, A: Source>(
    config: &Config,
    store: &S,
    source: &A,
    budget: &Budget,
    batch: u64,
    now_ms: i64,
) -> Result<Estimate, EngineError> {
    crate::check::check_source(config, source).await?;
    let mut syncs = Vec::new();
    let mut calls = 0;
    for i in dependency_order(&config.raw.syncs) {
        let sync = &config.raw.syncs[i];
        let stored = crate::outbound::planned_fingerprint(store, &sync.name).await?;
        let mut e = SyncEstimate {
            sync: sync.name.clone(),
            replan: crate::outbound::replan_due(stored.as_deref(), sync),
            ..Default::default()
        };
        let mut with_assoc: BTreeMap<String, u64> = BTreeMap::new();
        // A line item's product rides in its upsert: no association call to count for it.
        let references = crate::outbound::plan::reference_properties(&config.raw.syncs, sync);
        let cols = columns(sync);
        let mut after: Option<String> = None;
        loop {
            let rows = source
                .scan_page(&sync.table, &sync.key, &cols, after.as_deref(), PAGE)
                .await?;
            let Some(last) = rows.last() else { break };
            after = Some(last.key.clone());
            e.rows += rows.len() as u64;
            let keys: Vec<String> = rows.iter().map(|r| r.key.clone()).collect();
            let links = store.links_for(&sync.name, &keys).await?;
            let parents = crate::outbound::parent_links(store, sync, &rows).await?;
            let none = HashSet::new();
            let input = PlanInput {
                sync,
                links: &links,
                parents: &parents,
                references: &references,
                unsendable_parents: &HashMap::new(),
                quarantined: &none,
                priority: 0,
                now_ms,
                assume_parents: true,
            };
            let p = plan(&input, &rows);
            e.unchanged += p.unchanged;
            e.invalid += p.invalid;
            e.held += p.held;
            e.to_send += p.jobs.len() as u64;
            for j in &p.jobs {
                if let Ok(payload) =
                    serde_json::from_str::<crate::outbound::plan::Payload>(&j.payload)
                {
                    let kind = config.raw.crm.kind.as_str();
                    for t in payload.associations.keys() {
                        let inline = linked_on_write(kind, &config.raw.syncs, sync, t)
                            || (payload.create
                                && linked_on_create(kind, &config.raw.syncs, sync, t));
                        if !inline {
                            *with_assoc.entry(t.clone()).or_default() += 1;
                        }
                    }
                }
            }
            if rows.len() < PAGE {
                break;
            }
        }
        e.upsert_calls = e.to_send.div_ceil(batch.max(1));
        e.association_calls = with_assoc.values().map(|n| n.div_ceil(batch.max(1))).sum();
        calls += e.upsert_calls + e.association_calls;
        syncs.push(e);
    }
    Ok(Estimate {
        syncs,
        eta: eta(config, budget, calls, now_ms),
    })
}
