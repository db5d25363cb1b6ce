//! `crmsync explain`: one record's story (asked by app key, or by CRM id: then also why a
//! record created in the CRM has no row), read from the source, the mapping and the state
//! database without changing anything. Source values, the mapped payload (or the problems),
//! its hash against the hash the CRM last accepted, the link, the job row, the quarantine entry,
//! and the logged calls that may have carried it. The call log holds no record ids (its labels
//! stay low-cardinality), so calls are found by time: around the record's last push, its job's
//! last failure and its last rejection, on the record's object's endpoints.

use crate::error::EngineError;
use crmsync_core::config::Config;
use crmsync_core::hash::payload_hash;
use crmsync_core::mapping::{MapOutcome, map_row, referenced_columns};
use crmsync_store::{
    CallRow, Creates, Inspect, JobDetail, LinkDetail, QuarantineEntry, Records, Source,
};
use serde::Serialize;
use std::collections::BTreeMap;

/// How far before an event the calls that led to it are looked for: a batch call starts
/// before the state records its outcome, retries included.
const WINDOW_BEFORE_MS: i64 = 120_000;
/// Calls listed per event at most.
const CALLS_PER_EVENT: i64 = 10;

/// What mapping the current row gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Mapped {
    /// Would be sent with these properties and associations (CRM ids by sync).
    Ready {
        properties: BTreeMap<String, String>,
        /// `write = "create_only"` values: sent only while the CRM has no record of ours.
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        create_only: BTreeMap<String, String>,
        /// Fields left out by `on_invalid = "skip_field"`: `(field, rule, message)`.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        skipped: Vec<(String, String, String)>,
        associations: BTreeMap<String, String>,
        hash: String,
    },
    /// A rule failed; `problems` are `(field, rule, message)`.
    Invalid {
        problems: Vec<(String, String, String)>,
    },
    /// Waiting for a confirmation or a parent.
    Held {
        field: String,
        rule: String,
        message: String,
    },
}

/// One record's story.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub sync: String,
    pub key: String,
    pub object: String,
    /// The row's columns, `None` when the row does not exist (deleted or wrong key).
    pub source: Option<BTreeMap<String, Option<String>>>,
    pub mapped: Option<Mapped>,
    pub link: Option<LinkView>,
    /// Whether the current payload's hash equals the one the CRM last accepted.
    pub in_sync: Option<bool>,
    pub jobs: Vec<JobView>,
    pub quarantine: Option<QuarantineView>,
    pub calls: Vec<CallView>,
    /// Asked by CRM id (`--crm-id`) for a record without a row: where its insert stands
    /// (`on_crm_create = "insert"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crm_create: Option<CreateView>,
}

/// A CRM record on its way into the app ([`crmsync_store::CrmCreate`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreateView {
    pub crm_id: String,
    /// `claimed` (its insert is under way or was interrupted) or `refused`.
    pub state: String,
    /// Who refused it (`database`).
    pub rule: String,
    pub message: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub attempts: i64,
    pub retry_requested: bool,
}

impl From<crmsync_store::CrmCreate> for CreateView {
    fn from(c: crmsync_store::CrmCreate) -> Self {
        CreateView {
            crm_id: c.crm_id,
            state: c.state.as_str().to_string(),
            rule: c.rule,
            message: c.message,
            first_seen_ms: c.first_seen_ms,
            last_seen_ms: c.last_seen_ms,
            attempts: c.attempts,
            retry_requested: c.retry_requested,
        }
    }
}

/// Explains the record of `sync_name` whose CRM id is `crm_id`: the app record linked to it,
/// or, when none is, why it has no row (a refused or unfinished insert).
pub async fn explain_crm<S: Records + Inspect + Creates, A: Source>(
    config: &Config,
    store: &S,
    source: &A,
    sync_name: &str,
    crm_id: &str,
) -> Result<Explanation, EngineError> {
    let ids = [crm_id.to_string()];
    if let Some(local) = store.local_ids_of(sync_name, &ids).await?.remove(crm_id) {
        return explain(config, store, source, sync_name, &local).await;
    }
    let sync = sync_of(config, sync_name)?;
    Ok(Explanation {
        sync: sync_name.to_string(),
        key: crm_id.to_string(),
        object: sync.object.clone(),
        source: None,
        mapped: None,
        link: None,
        in_sync: None,
        jobs: Vec::new(),
        quarantine: None,
        calls: Vec::new(),
        crm_create: store
            .creates_among(sync_name, &ids)
            .await?
            .remove(crm_id)
            .map(CreateView::from),
    })
}

fn sync_of<'a>(
    config: &'a Config,
    sync_name: &str,
) -> Result<&'a crmsync_core::config::SyncConfig, EngineError> {
    config.sync(sync_name).ok_or_else(|| {
        let names: Vec<&str> = config.raw.syncs.iter().map(|s| s.name.as_str()).collect();
        EngineError::Config(format!(
            "no sync named `{sync_name}`; syncs: {}",
            names.join(", ")
        ))
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkView {
    pub crm_id: Option<String>,
    pub pushed_hash: Option<String>,
    pub pushed_at_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobView {
    pub direction: String,
    pub state: String,
    pub attempts: i64,
    pub hash: String,
    pub run_at_ms: i64,
    pub last_error: Option<String>,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuarantineView {
    pub kind: String,
    pub field: Option<String>,
    pub rule: String,
    pub message: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub attempts: i64,
    pub retry_requested: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallView {
    pub at_ms: i64,
    pub method: String,
    pub endpoint: String,
    pub status: Option<u16>,
    pub attempt: u32,
    pub records: u32,
    pub error: Option<String>,
    /// Which event of the record the call is near: `pushed`, `job`, `rejected`.
    pub near: String,
}

impl From<LinkDetail> for LinkView {
    fn from(l: LinkDetail) -> Self {
        LinkView {
            crm_id: l.crm_id,
            pushed_hash: l.pushed_hash,
            pushed_at_ms: l.pushed_at_ms,
        }
    }
}

impl From<&JobDetail> for JobView {
    fn from(j: &JobDetail) -> Self {
        JobView {
            direction: j.direction.clone(),
            state: j.state.clone(),
            attempts: j.attempts,
            hash: j.hash.clone(),
            run_at_ms: j.run_at_ms,
            last_error: j.last_error.clone(),
            updated_at_ms: j.updated_at_ms,
        }
    }
}

impl From<QuarantineEntry> for QuarantineView {
    fn from(q: QuarantineEntry) -> Self {
        QuarantineView {
            kind: q.kind.as_str().to_string(),
            field: q.field,
            rule: q.rule,
            message: q.message,
            first_seen_ms: q.first_seen_ms,
            last_seen_ms: q.last_seen_ms,
            attempts: q.attempts,
            retry_requested: q.retry_requested,
        }
    }
}

/// Explains record `key` of sync `sync_name`.
pub async fn explain<S: Records + Inspect, A: Source>(
    config: &Config,
    store: &S,
    source: &A,
    sync_name: &str,
    key: &str,
) -> Result<Explanation, EngineError> {
    let sync = sync_of(config, sync_name)?;
    let cols = referenced_columns(sync);
    let row = source
        .fetch(&sync.table, &sync.key, &cols, &[key.to_string()])
        .await?
        .into_iter()
        .next();
    let mut mapped = None;
    if let Some(row) = &row {
        mapped = Some(match map_row(sync, &row.values) {
            MapOutcome::Invalid(p) => Mapped::Invalid {
                problems: p
                    .into_iter()
                    .map(|p| (p.column, p.rule, p.message))
                    .collect(),
            },
            MapOutcome::Held(p) => Mapped::Held {
                field: p.column,
                rule: p.rule,
                message: p.message,
            },
            MapOutcome::Ready(ready) => {
                let mut properties = ready.properties;
                let mut associations = BTreeMap::new();
                let mut waiting = None;
                for (column, target) in &sync.associate {
                    let Some(parent) = row.values.get(column).cloned().flatten() else {
                        continue;
                    };
                    let link = store
                        .links_for(target, std::slice::from_ref(&parent))
                        .await?;
                    match link.get(&parent).and_then(|l| l.crm_id.clone()) {
                        Some(id) => {
                            associations.insert(target.clone(), id);
                        }
                        None => {
                            waiting = Some((column.clone(), target.clone(), parent));
                            break;
                        }
                    }
                }
                match waiting {
                    Some((column, target, parent)) => Mapped::Held {
                        field: column,
                        rule: "parent".into(),
                        message: format!(
                            "waits for `{target}` record {parent}, which is not in the CRM yet"
                        ),
                    },
                    None => {
                        // As planning does: a line item's product is its `hs_product_id`.
                        crate::outbound::plan::move_references(
                            &mut associations,
                            &mut properties,
                            &crate::outbound::plan::reference_properties(&config.raw.syncs, sync),
                        );
                        Mapped::Ready {
                            hash: payload_hash(&properties, &associations),
                            properties,
                            create_only: ready.create_only,
                            skipped: ready
                                .skipped
                                .into_iter()
                                .map(|p| (p.column, p.rule, p.message))
                                .collect(),
                            associations,
                        }
                    }
                }
            }
        });
    }
    let link = store.link_detail(sync_name, key).await?;
    let in_sync = match (&mapped, &link) {
        (Some(Mapped::Ready { hash, .. }), Some(l)) => {
            Some(l.pushed_hash.as_deref() == Some(hash.as_str()))
        }
        (Some(Mapped::Ready { .. }), None) => Some(false),
        _ => None,
    };
    let jobs = store.jobs_of(sync_name, key).await?;
    let quarantine = store.quarantine_entry(sync_name, key).await?;

    let endpoint = format!("/{}/", sync.object);
    let mut events: Vec<(&str, i64)> = Vec::new();
    if let Some(at) = link.as_ref().and_then(|l| l.pushed_at_ms) {
        events.push(("pushed", at));
    }
    for j in &jobs {
        if j.last_error.is_some() {
            events.push(("job", j.updated_at_ms));
        }
    }
    if let Some(q) = quarantine
        .as_ref()
        .filter(|q| q.kind == crmsync_store::QuarantineKind::Rejected)
    {
        events.push(("rejected", q.last_seen_ms));
    }
    let mut calls: Vec<CallView> = Vec::new();
    for (near, at) in events {
        let found: Vec<CallRow> = store
            .calls_between(at - WINDOW_BEFORE_MS, at + 1_000, &endpoint, 1_000)
            .await?;
        // The calls closest before the event are the ones that carried it.
        let start = found.len().saturating_sub(CALLS_PER_EVENT as usize);
        for c in &found[start..] {
            if !calls
                .iter()
                .any(|v| v.at_ms == c.at_ms && v.endpoint == c.endpoint)
            {
                calls.push(CallView {
                    at_ms: c.at_ms,
                    method: c.method.clone(),
                    endpoint: c.endpoint.clone(),
                    status: c.status,
                    attempt: c.attempt,
                    records: c.records,
                    error: c.error.clone(),
                    near: near.to_string(),
                });
            }
        }
    }
    calls.sort_by_key(|c| c.at_ms);
    Ok(Explanation {
        sync: sync_name.to_string(),
        key: key.to_string(),
        object: sync.object.clone(),
        source: row.map(|r| r.values),
        mapped,
        link: link.map(LinkView::from),
        in_sync,
        jobs: jobs.iter().map(JobView::from).collect(),
        quarantine: quarantine.map(QuarantineView::from),
        calls,
        crm_create: None,
    })
}
