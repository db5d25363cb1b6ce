//! Deciding, per captured row, what happens to it: sent (a job), skipped (its payload hash
//! equals what the CRM last accepted), quarantined as invalid (a rule failed, or a value could
//! not be read from the app database), or held (waiting for a parent or a confirmation). Pure:
//! the state is read before and written after ([`super::commit`]). A record held for its parent
//! names that parent, so settling the parent releases it. A parent the CRM refers to by a
//! property of the child (a line item's product, [`reference_properties`]) waits and releases
//! the same way, but its CRM id goes into the properties, not into an association.

use crmsync_core::config::SyncConfig;
use crmsync_core::hash::payload_hash;
use crmsync_core::mapping::{FieldProblem, MapOutcome, Mapped, map_row};
use crmsync_crm::ObjectKind;
use crmsync_store::{Link, NewJob, QuarantineEntry, QuarantineKind, SourceRow};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The quarantine rule of a record waiting for its parent to be in the CRM.
pub const PARENT_RULE: &str = "parent";

/// What a job carries: the CRM properties and the CRM ids of the records to associate to,
/// by the name of the sync they belong to. A parent named by a property of the record (a line
/// item's product) is among the properties, never among the associations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    pub properties: BTreeMap<String, String>,
    #[serde(default)]
    pub associations: BTreeMap<String, String>,
    /// No CRM id is linked to the record when it was planned: the write may create it and carry
    /// its links ([`crmsync_crm::Crm::links_on_create`]). Not part of the hash; absent in
    /// payloads queued before it existed, which then go out as upserts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create: bool,
}

/// The decisions of one planning pass.
#[derive(Debug, Default)]
pub struct Plan {
    pub jobs: Vec<NewJob>,
    /// Records planned without an optional association whose parent is not in the CRM: they
    /// are planned again once such a parent syncs.
    pub without_optional: u64,
    /// Records whose payload is what the CRM last accepted: nothing to send, but a queued job
    /// with another payload (an edit undone before it went out) must not go out either.
    pub unchanged_jobs: Vec<NewJob>,
    pub quarantine: Vec<QuarantineEntry>,
    /// Records in sync whose old quarantine entry must go.
    pub clear: Vec<String>,
    pub unchanged: u64,
    pub invalid: u64,
    pub held: u64,
    /// Fields left out of records that were sent anyway (`on_invalid = "skip_field"`), by
    /// record key: reported, never silently dropped.
    pub skipped: Vec<(String, FieldProblem)>,
}

/// Everything planning reads besides the rows.
pub struct PlanInput<'a> {
    pub sync: &'a SyncConfig,
    pub links: &'a HashMap<String, Link>,
    /// Links of each association target sync, by sync name.
    pub parents: &'a HashMap<String, HashMap<String, Link>>,
    /// Association targets whose CRM id is written into a property of the record instead of
    /// an association call: target sync name -> CRM property ([`reference_properties`]).
    pub references: &'a BTreeMap<String, String>,
    /// For optional associations: parent keys quarantined in their sync, by sync name. A
    /// child is sent without such a parent (and associated once the parent syncs).
    pub unsendable_parents: &'a HashMap<String, HashSet<String>>,
    /// Keys that currently have a quarantine entry.
    pub quarantined: &'a HashSet<String>,
    pub priority: i32,
    pub now_ms: i64,
    /// For estimates: treat a parent without a CRM id as one that will have one (it is being
    /// sent in the same backfill) instead of holding the child.
    pub assume_parents: bool,
}

/// The targets of `sync`'s `associate` that the CRM refers to by a property of the record
/// ([`ObjectKind::reference_property`]): target sync name -> CRM property. A line_items sync
/// with `associate = { product_id = "products" }` gets `products -> hs_product_id`.
pub fn reference_properties(syncs: &[SyncConfig], sync: &SyncConfig) -> BTreeMap<String, String> {
    let Some(from) = ObjectKind::parse(&sync.object) else {
        return BTreeMap::new();
    };
    sync.associate
        .values()
        .filter_map(|target| {
            let to = syncs
                .iter()
                .find(|t| &t.name == target)
                .and_then(|t| ObjectKind::parse(&t.object))?;
            Some((target.clone(), from.reference_property(to)?.to_string()))
        })
        .collect()
}

/// Moves the parents named by a property (`references`) from `associations` into
/// `properties`, so the upsert carries them and no association call is made for them.
pub fn move_references(
    associations: &mut BTreeMap<String, String>,
    properties: &mut BTreeMap<String, String>,
    references: &BTreeMap<String, String>,
) {
    for (target, property) in references {
        if let Some(id) = associations.remove(target) {
            properties.insert(property.clone(), id);
        }
    }
}

/// Plans `rows` of one sync.
pub fn plan(input: &PlanInput<'_>, rows: &[SourceRow]) -> Plan {
    let sync = input.sync;
    let mut out = Plan::default();
    let entry = |key: &str, kind, field: Option<String>, rule: String, message: String| {
        QuarantineEntry::new(&sync.name, key, kind, field, rule, message, input.now_ms)
    };
    for row in rows {
        // A value the app database could not give as text: nothing of the record is sent,
        // and the entry names the column and why.
        if let Some((column, _)) = row.unreadable.first() {
            out.invalid += 1;
            let message = row
                .unreadable
                .iter()
                .map(|(c, why)| format!("{c}: {why} (unreadable)"))
                .collect::<Vec<_>>()
                .join("; ");
            out.quarantine.push(entry(
                &row.key,
                QuarantineKind::Invalid,
                Some(column.clone()),
                "unreadable".into(),
                message,
            ));
            continue;
        }
        let Mapped {
            mut properties,
            create_only,
            skipped,
        } = match map_row(sync, &row.values) {
            MapOutcome::Ready(m) => m,
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
                None if !sync.associate.is_required(column)
                    && input
                        .unsendable_parents
                        .get(target)
                        .is_some_and(|keys| keys.contains(&parent_key)) =>
                {
                    // Optional, and the parent cannot be sent now: the child goes without it.
                    out.without_optional += 1;
                }
                None => {
                    waiting = Some((column.clone(), target.clone(), parent_key));
                    break;
                }
            }
        }
        if let Some((column, target, parent_key)) = waiting {
            out.held += 1;
            let mut e = entry(
                &row.key,
                QuarantineKind::Held,
                Some(column),
                PARENT_RULE.into(),
                format!("waits for `{target}` record {parent_key}, which is not in the CRM yet"),
            );
            e.waits_for = Some((target, parent_key));
            out.quarantine.push(e);
            continue;
        }
        move_references(&mut associations, &mut properties, input.references);
        out.skipped
            .extend(skipped.into_iter().map(|p| (row.key.clone(), p)));
        // `create_only` values are not part of the hash: changing one later sends nothing.
        let hash = payload_hash(&properties, &associations);
        // They ride along while the CRM has no record of ours yet. Upserts go by our own
        // unique id property, so a record found there already is one we created (a run cut
        // short before it settled): the value sent again is the one it got then.
        let linked = input
            .links
            .get(&row.key)
            .is_some_and(|l| l.crm_id.is_some());
        if !linked {
            for (property, value) in create_only {
                properties.entry(property).or_insert(value);
            }
        }
        let unchanged = input
            .links
            .get(&row.key)
            .and_then(|l| l.pushed_hash.as_deref())
            == Some(hash.as_str());
        if unchanged {
            out.unchanged += 1;
            if input.quarantined.contains(&row.key) {
                out.clear.push(row.key.clone());
            }
        }
        let payload = Payload {
            properties,
            associations,
            create: !linked,
        };
        let Ok(payload) = serde_json::to_string(&payload) else {
            // Maps of strings always serialize; if that ever changed, the record says so
            // instead of a panic.
            out.invalid += 1;
            out.quarantine.push(entry(
                &row.key,
                QuarantineKind::Invalid,
                None,
                "payload".into(),
                "the mapped payload cannot be written as JSON".into(),
            ));
            continue;
        };
        let job = NewJob {
            sync: sync.name.clone(),
            local_id: row.key.clone(),
            payload,
            hash,
            priority: input.priority,
        };
        if unchanged {
            out.unchanged_jobs.push(job);
        } else {
            out.jobs.push(job);
        }
    }
    out
}
