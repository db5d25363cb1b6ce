//! Deciding, per captured row, what happens to it: sent (a job), skipped (its payload hash
//! equals what the CRM last accepted), quarantined as invalid, or held (waiting for a parent or
//! a confirmation). Pure: the store is read before and written after.

use crmsync_core::config::SyncConfig;
use crmsync_core::hash::payload_hash;
use crmsync_core::mapping::{MapOutcome, map_row};
use crmsync_store::source::sqlite::SourceRow;
use crmsync_store::{Link, NewJob, QuarantineEntry, QuarantineKind};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// What a job carries: the CRM properties and the CRM ids of the records to associate to,
/// by the name of the sync they belong to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    pub properties: BTreeMap<String, String>,
    #[serde(default)]
    pub associations: BTreeMap<String, String>,
}

/// The decisions of one planning pass.
#[derive(Debug, Default)]
pub struct Plan {
    pub jobs: Vec<NewJob>,
    pub quarantine: Vec<QuarantineEntry>,
    /// Records in sync whose old quarantine entry must go.
    pub clear: Vec<String>,
    pub unchanged: u64,
    pub invalid: u64,
    pub held: u64,
}

/// Everything planning reads besides the rows.
pub struct PlanInput<'a> {
    pub sync: &'a SyncConfig,
    pub links: &'a HashMap<String, Link>,
    /// Links of each association target sync, by sync name.
    pub parents: &'a HashMap<String, HashMap<String, Link>>,
    /// Keys that currently have a quarantine entry.
    pub quarantined: &'a HashSet<String>,
    pub priority: i32,
    pub now_ms: i64,
    /// For estimates: treat a parent without a CRM id as one that will have one (it is being
    /// sent in the same backfill) instead of holding the child.
    pub assume_parents: bool,
}

/// Plans `rows` of one sync.
pub fn plan(input: &PlanInput<'_>, rows: &[SourceRow]) -> Plan {
    let sync = input.sync;
    let mut out = Plan::default();
    let entry =
        |key: &str, kind, field: Option<String>, rule: String, message: String| QuarantineEntry {
            sync: sync.name.clone(),
            local_id: key.to_string(),
            kind,
            field,
            rule,
            message,
            first_seen_ms: input.now_ms,
            last_seen_ms: input.now_ms,
            attempts: 1,
            retry_requested: false,
        };
    for row in rows {
        let properties = match map_row(sync, &row.values) {
            MapOutcome::Ready(p) => p,
            MapOutcome::Invalid(problems) => {
                out.invalid += 1;
                let first = &problems[0];
                let message = problems
                    .iter()
                    .map(|p| format!("{}: {} ({})", p.column, p.message, p.rule))
                    .collect::<Vec<_>>()
                    .join("; ");
                out.quarantine.push(entry(
                    &row.key,
                    QuarantineKind::Invalid,
                    Some(first.column.clone()),
                    first.rule.clone(),
                    message,
                ));
                continue;
            }
            MapOutcome::Held(p) => {
                out.held += 1;
                out.quarantine.push(entry(
                    &row.key,
                    QuarantineKind::Held,
                    Some(p.column),
                    p.rule,
                    p.message,
                ));
                continue;
            }
        };
        let mut associations = BTreeMap::new();
        let mut waiting = None;
        for (column, target) in &sync.associate {
            let Some(parent_key) = row
                .values
                .get(column)
                .cloned()
                .flatten()
                .filter(|v| !v.is_empty())
            else {
                continue;
            };
            match input
                .parents
                .get(target)
                .and_then(|l| l.get(&parent_key))
                .and_then(|l| l.crm_id.clone())
            {
                Some(id) => {
                    associations.insert(target.clone(), id);
                }
                None if input.assume_parents => {
                    associations.insert(target.clone(), String::new());
                }
                None => {
                    waiting = Some((
                        column.clone(),
                        format!(
                            "waits for `{target}` record {parent_key}, which is not in the CRM yet"
                        ),
                    ));
                    break;
                }
            }
        }
        if let Some((column, message)) = waiting {
            out.held += 1;
            out.quarantine.push(entry(
                &row.key,
                QuarantineKind::Held,
                Some(column),
                "parent".into(),
                message,
            ));
            continue;
        }
        let hash = payload_hash(&properties, &associations);
        if input
            .links
            .get(&row.key)
            .and_then(|l| l.pushed_hash.as_deref())
            == Some(hash.as_str())
        {
            out.unchanged += 1;
            if input.quarantined.contains(&row.key) {
                out.clear.push(row.key.clone());
            }
            continue;
        }
        let payload = Payload {
            properties,
            associations,
        };
        let payload = serde_json::to_string(&payload).expect("maps of strings always serialize");
        out.jobs.push(NewJob {
            sync: sync.name.clone(),
            local_id: row.key.clone(),
            payload,
            hash,
            priority: input.priority,
        });
    }
    out
}
