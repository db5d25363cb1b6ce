//! Decide (pure): what one page of CRM records means for the linked app rows. Per record and
//! two-way field, the [`decide`] rule against the base: agree (nothing to write, the base is
//! confirmed), take the CRM's value (mapped back into the app's form: status maps undone,
//! transforms reversed), keep the app's (it is pushed next), or park the field for review. The
//! result names every row write with the values it was decided from, so the commit can refuse
//! to overwrite a row the app changed meanwhile.

use super::conflict::{Decision, decide};
use crate::report::PullReport;
use crmsync_core::config::raw::default_conflict;
use crmsync_core::config::{ConflictPolicy, FieldConfig, OnCrmCreate, OnEmpty, SyncConfig};
use crmsync_core::mapping::{map_one, map_value_back, pulls};
use crmsync_crm::ChangedRecord;
use crmsync_store::{Conflict, CreateState, CrmCreate, SourceRow};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The two-way fields of `sync`: (field key, config).
pub fn pulled_fields(sync: &SyncConfig) -> Vec<(&str, &FieldConfig)> {
    sync.fields
        .iter()
        .filter(|(_, f)| pulls(sync, f))
        .map(|(k, f)| (k.as_str(), f))
        .collect()
}

/// The id properties that mark a record of `sync`'s object as crmsync's own: those of every
/// sync in `syncs` writing the same object (a contact another sync created is not "created in
/// the CRM" for this one).
pub fn id_properties<'a>(syncs: &'a [SyncConfig], sync: &SyncConfig) -> Vec<&'a str> {
    let mut out: Vec<&str> = syncs
        .iter()
        .filter(|s| s.object == sync.object)
        .map(|s| s.id_property.as_str())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The CRM properties to read for `sync`'s changed records: its pulled fields, and, when it
/// inserts CRM records as rows, the [`id_properties`] (a value there means crmsync made the
/// record).
pub fn pulled_properties(syncs: &[SyncConfig], sync: &SyncConfig) -> Vec<String> {
    let mut out: Vec<String> = pulled_fields(sync)
        .iter()
        .map(|(_, f)| f.crm.clone())
        .collect();
    if sync.on_crm_create == OnCrmCreate::Insert {
        for p in id_properties(syncs, sync) {
            if !out.iter().any(|o| o == p) {
                out.push(p.to_string());
            }
        }
    }
    out
}

/// The app column a pulled field writes.
pub fn column_of<'a>(key: &'a str, field: &'a FieldConfig) -> &'a str {
    field.column.as_deref().unwrap_or(key)
}

/// A timestamp column value as ms: epoch ms, RFC 3339, or `YYYY-MM-DD HH:MM:SS[.f]` (UTC).
fn parse_ms(v: &str) -> Option<i64> {
    let v = v.trim();
    if let Ok(n) = v.parse::<i64>() {
        return Some(n);
    }
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(v) {
        return Some(d.timestamp_millis());
    }
    chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|d| d.and_utc().timestamp_millis())
}

/// What to do with one linked record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub local_id: String,
    pub crm_id: String,
    /// The row as read, the decision's premise.
    pub row: SourceRow,
    /// App column -> value to write (`""` writes NULL).
    pub writes: Vec<(String, String)>,
    /// New bases: (CRM property, value).
    pub bases: Vec<(String, String)>,
    /// Fields both sides changed since they last agreed (or with no base known), decided by
    /// the field's conflict policy: (CRM property, the policy's outcome). A parked one is
    /// also among [`Decisions::conflicts`].
    pub contested: Vec<(String, Decision)>,
}

/// A CRM record created in the CRM that becomes a row (`on_crm_create = "insert"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    pub crm_id: String,
    pub modified_ms: i64,
    /// App column -> value, the CRM's values of the pulled fields mapped back into the app's
    /// form; fields the CRM leaves empty (or whose value has no way back) are left out, so the
    /// column takes its default.
    pub values: Vec<(String, String)>,
    /// The CRM's values of the pulled fields: (CRM property, value).
    pub crm: BTreeMap<String, String>,
}

/// The decisions of one page.
#[derive(Debug, Default)]
pub struct Decisions {
    pub records: Vec<Decided>,
    /// Unlinked CRM records to insert as rows (a sync with `on_crm_create = "insert"`).
    pub creates: Vec<NewRecord>,
    pub conflicts: Vec<Conflict>,
    /// CRM values with no way back: field -> (count, distinct values, a few).
    pub unmappable: BTreeMap<String, (u64, Vec<String>)>,
    /// Counts (fetched, unchanged, kept_app, parked, unlinked, unmappable).
    pub report: PullReport,
}

impl Decisions {
    /// Counts a CRM value of field `key` with no way back into the app, keeping a few distinct
    /// values for `status`.
    fn note_unmappable(&mut self, key: &str, value: &str) {
        self.report.unmappable += 1;
        let e = self.unmappable.entry(key.to_string()).or_default();
        e.0 += 1;
        if e.1.len() < super::warnings::MAX_VALUES && !e.1.iter().any(|v| v == value) {
            e.1.push(value.to_string());
        }
    }
}

/// Everything deciding reads besides the CRM records.
pub struct DecideInput<'a> {
    pub sync: &'a SyncConfig,
    /// Local id of each linked CRM id.
    pub local_of: &'a HashMap<String, String>,
    /// The linked rows, by local id (a row deleted in the app is absent).
    pub rows: &'a HashMap<String, SourceRow>,
    /// Base values by local id, then CRM property.
    pub bases: &'a HashMap<String, HashMap<String, String>>,
    /// Records with an open conflict: written to neither side until a person settles it.
    pub parked: &'a HashSet<String>,
    /// Entries of unlinked CRM records on their way into the app (claimed or refused), by
    /// CRM id; only read for a sync that inserts.
    pub creates: &'a HashMap<String, CrmCreate>,
    /// The sync's mapping fingerprint now (a refusal under another one is tried again).
    pub fingerprint: &'a str,
    /// The id properties of every sync on this object ([`id_properties`]): a record holding a
    /// key in one of them was made by crmsync.
    pub id_properties: &'a [&'a str],
    pub now_ms: i64,
}

/// Whether a refused insert is worth another try: the CRM record changed since, the sync's
/// config did, or `crmsync retry` asked.
pub fn refusal_due(entry: &CrmCreate, fingerprint: &str, modified_ms: i64) -> bool {
    entry.retry_requested || entry.fingerprint != fingerprint || modified_ms > entry.modified_ms
}

/// What an unlinked CRM record of `sync` becomes: `None` when it is not inserted (the sync
/// ignores CRM creations, crmsync created it itself, or its refusal is not due), with the
/// count in `out.report`.
fn unlinked(input: &DecideInput<'_>, change: &ChangedRecord, out: &mut Decisions) {
    let sync = input.sync;
    if sync.on_crm_create != OnCrmCreate::Insert {
        out.report.unlinked += 1;
        return;
    }
    let entry = input.creates.get(&change.crm_id);
    // Our key in the id property: crmsync created it (its settle links it), unless an insert
    // of ours was interrupted after writing the key (then it has an entry, and the insert's
    // guard finds the row).
    let ours = input.id_properties.iter().any(|p| {
        change
            .properties
            .get(*p)
            .is_some_and(|v| !v.trim().is_empty())
    });
    if ours && entry.is_none() {
        out.report.ours += 1;
        return;
    }
    if let Some(e) = entry
        && e.state == CreateState::Refused
        && !refusal_due(e, input.fingerprint, change.modified_ms)
    {
        out.report.insert_waiting += 1;
        return;
    }
    let mut values: Vec<(String, String)> = Vec::new();
    let mut crm = BTreeMap::new();
    for (key, field) in pulled_fields(sync) {
        let crm_value = change
            .properties
            .get(&field.crm)
            .cloned()
            .unwrap_or_default();
        crm.insert(field.crm.clone(), crm_value.clone());
        let column = column_of(key, field);
        if crm_value.is_empty() || values.iter().any(|(c, _)| c == column) {
            continue;
        }
        match map_value_back(field, &crm_value) {
            Ok(app) => values.push((column.to_string(), app)),
            Err(_) => out.note_unmappable(key, &crm_value),
        }
    }
    out.creates.push(NewRecord {
        crm_id: change.crm_id.clone(),
        modified_ms: change.modified_ms,
        values,
        crm,
    });
}

/// Decides `changes` (one page of CRM records) for `input.sync`.
pub fn decide_page(input: &DecideInput<'_>, changes: &[ChangedRecord]) -> Decisions {
    let sync = input.sync;
    let fields = pulled_fields(sync);
    let mut out = Decisions::default();
    out.report.fetched = changes.len() as u64;
    for change in changes {
        let Some(local_id) = input.local_of.get(&change.crm_id) else {
            unlinked(input, change, &mut out);
            continue;
        };
        let Some(row) = input.rows.get(local_id) else {
            continue; // deleted in the app meanwhile
        };
        if input.parked.contains(local_id) || !row.unreadable.is_empty() {
            continue;
        }
        let base = input.bases.get(local_id);
        let app_ms = sync
            .updated_at_column
            .as_ref()
            .and_then(|c| row.values.get(c).cloned().flatten())
            .and_then(|v| parse_ms(&v));
        let crm_newer = app_ms.is_none_or(|a| change.modified_ms >= a);
        let mut writes = Vec::new();
        let mut new_bases = Vec::new();
        let mut kept = false;
        let mut contested = Vec::new();
        for (key, field) in &fields {
            let crm_value = change
                .properties
                .get(&field.crm)
                .cloned()
                .unwrap_or_default();
            let app_value = map_one(key, field, &row.values).unwrap_or_default();
            let policy: ConflictPolicy = field.conflict.unwrap_or_else(default_conflict);
            let base_value = base.and_then(|b| b.get(&field.crm)).map(String::as_str);
            // Blank, not unmappable: a value the mapping refuses is still the app's opinion.
            let blank = app_value.is_empty()
                && crmsync_core::compose::raw_value(key, field, &row.values)
                    .trim()
                    .is_empty();
            let decision = if blank && !crm_value.is_empty() && field.on_empty == OnEmpty::Skip {
                // The app's blank is never sent (`on_empty = "skip"`), so it has nothing to
                // say against the CRM's value: a value the CRM changed fills it, and one both
                // sides last agreed on is left where it is, the app's blank untouched.
                if base_value == Some(crm_value.as_str()) {
                    Decision::Agree
                } else {
                    Decision::TakeCrm
                }
            } else {
                let d = decide(&app_value, &crm_value, base_value, policy, crm_newer);
                if d != Decision::Agree
                    && base_value != Some(app_value.as_str())
                    && base_value != Some(crm_value.as_str())
                {
                    contested.push((field.crm.clone(), d));
                }
                d
            };
            match decision {
                Decision::Agree => new_bases.push((field.crm.clone(), crm_value)),
                Decision::KeepApp => {
                    // The CRM's value has been seen and lost to the app's: it is the base now,
                    // so the app's value is the newer change the next push sends (and the read
                    // before writing lets through).
                    out.report.kept_app += 1;
                    kept = true;
                    new_bases.push((field.crm.clone(), crm_value));
                }
                Decision::TakeCrm => match map_value_back(field, &crm_value) {
                    Ok(app) => {
                        writes.push((column_of(key, field).to_string(), app));
                        new_bases.push((field.crm.clone(), crm_value));
                    }
                    Err(_) => out.note_unmappable(key, &crm_value),
                },
                Decision::Park => {
                    out.report.parked += 1;
                    out.conflicts.push(Conflict {
                        id: 0,
                        sync: sync.name.clone(),
                        local_id: local_id.clone(),
                        crm_id: change.crm_id.clone(),
                        field: field.crm.clone(),
                        column: column_of(key, field).to_string(),
                        app_value,
                        crm_value,
                        base_value: base_value.map(str::to_string),
                        created_at_ms: input.now_ms,
                    });
                }
            }
        }
        if writes.is_empty() && !kept {
            out.report.unchanged += u64::from(new_bases.len() == fields.len());
        }
        out.records.push(Decided {
            local_id: local_id.clone(),
            crm_id: change.crm_id.clone(),
            row: row.clone(),
            writes,
            bases: new_bases,
            contested,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sync() -> SyncConfig {
        let raw: crmsync_core::config::raw::RawConfig = toml::from_str(
            r#"
source = { url = "sqlite://a" }
crm = { environment = "sandbox", kind = "hubspot" }
[[sync]]
name = "companies"
table = "customers"
object = "companies"
direction = "both"
[sync.fields]
company = { crm = "name" }
stage = { crm = "lifecyclestage", map = { lead = "lead" }, conflict = "review" }
"#,
        )
        .expect("parses");
        raw.syncs.into_iter().next().expect("one sync")
    }

    fn record(id: &str, name: &str, stage: &str) -> ChangedRecord {
        ChangedRecord {
            crm_id: id.into(),
            properties: BTreeMap::from([
                ("name".to_string(), name.to_string()),
                ("lifecyclestage".to_string(), stage.to_string()),
            ]),
            modified_ms: 10,
            merged_ids: vec![],
        }
    }

    fn row(key: &str, company: &str, stage: &str) -> SourceRow {
        SourceRow::new(
            key,
            BTreeMap::from([
                ("company".to_string(), Some(company.to_string())),
                ("stage".to_string(), Some(stage.to_string())),
            ]),
        )
    }

    #[test]
    fn a_crm_edit_is_taken_a_double_edit_parked_and_an_unlinked_record_counted() {
        let sync = sync();
        let local_of = HashMap::from([("c1".to_string(), "1".to_string())]);
        let rows = HashMap::from([("1".to_string(), row("1", "Acme", "lead"))]);
        // The base: both sides agreed on "Acme" and "lead" before.
        let bases = HashMap::from([(
            "1".to_string(),
            HashMap::from([
                ("name".to_string(), "Acme".to_string()),
                ("lifecyclestage".to_string(), "lead".to_string()),
            ]),
        )]);
        let parked = HashSet::new();
        let creates = HashMap::new();
        let input = DecideInput {
            sync: &sync,
            local_of: &local_of,
            rows: &rows,
            bases: &bases,
            parked: &parked,
            creates: &creates,
            fingerprint: "f",
            id_properties: &["crmsync_id"],
            now_ms: 5,
        };
        let d = decide_page(
            &input,
            &[record("c1", "Acme Inc", "lead"), record("c9", "X", "lead")],
        );
        assert_eq!(d.report.unlinked, 1);
        assert_eq!(d.records.len(), 1);
        assert_eq!(
            d.records[0].writes,
            vec![("company".to_string(), "Acme Inc".to_string())]
        );
        assert_eq!(d.records[0].row.key, "1");

        // The stage moved on both sides: parked for review, not written.
        let rows = HashMap::from([("1".to_string(), row("1", "Acme", "customer"))]);
        let input = DecideInput {
            rows: &rows,
            ..input
        };
        let d = decide_page(&input, &[record("c1", "Acme", "opportunity")]);
        assert_eq!(d.report.parked, 1);
        assert!(d.records[0].writes.is_empty());
        assert_eq!(d.conflicts[0].field, "lifecyclestage");
    }

    #[test]
    fn an_app_blank_that_is_never_sent_neither_erases_nor_wins() {
        let sync = sync();
        let local_of = HashMap::from([("c1".to_string(), "1".to_string())]);
        // The app cleared the company name; the CRM still has the name both agreed on.
        let rows = HashMap::from([("1".to_string(), row("1", "", "lead"))]);
        let agreed = HashMap::from([(
            "1".to_string(),
            HashMap::from([
                ("name".to_string(), "Acme".to_string()),
                ("lifecyclestage".to_string(), "lead".to_string()),
            ]),
        )]);
        let parked = HashSet::new();
        let creates = HashMap::new();
        let input = DecideInput {
            sync: &sync,
            local_of: &local_of,
            rows: &rows,
            bases: &agreed,
            parked: &parked,
            creates: &creates,
            fingerprint: "f",
            id_properties: &["crmsync_id"],
            now_ms: 5,
        };
        let d = decide_page(&input, &[record("c1", "Acme", "lead")]);
        assert!(
            d.records[0].writes.is_empty(),
            "the app's blank is left alone"
        );
        assert_eq!(d.report.kept_app, 0, "and nothing is pushed for it");

        // A new CRM value fills the blank, even without a base.
        let none = HashMap::new();
        let input = DecideInput {
            bases: &none,
            ..input
        };
        let d = decide_page(&input, &[record("c1", "Acme Robotics", "lead")]);
        assert_eq!(
            d.records[0].writes,
            vec![("company".to_string(), "Acme Robotics".to_string())]
        );
    }

    #[test]
    fn unlinked_records_of_an_inserting_sync_become_rows_unless_ours_or_refused_and_unchanged() {
        let raw: crmsync_core::config::raw::RawConfig = toml::from_str(
            r#"
source = { url = "sqlite://a" }
crm = { environment = "sandbox", kind = "hubspot" }
[[sync]]
name = "companies"
table = "customers"
object = "companies"
direction = "both"
on_crm_create = "insert"
write_back_column = "hubspot_id"
[sync.fields]
company = { crm = "name" }
stage = { crm = "lifecyclestage", map = { prospect = "lead" } }
"#,
        )
        .expect("parses");
        let sync = raw.syncs.into_iter().next().expect("one sync");
        let entry = |id: &str, state, fingerprint: &str, modified_ms| CrmCreate {
            sync: "companies".into(),
            crm_id: id.into(),
            state,
            rule: "database".into(),
            message: "no".into(),
            modified_ms,
            fingerprint: fingerprint.into(),
            first_seen_ms: 1,
            last_seen_ms: 1,
            attempts: 1,
            retry_requested: false,
        };
        let creates = HashMap::from([
            ("r1".to_string(), entry("r1", CreateState::Refused, "f", 10)),
            (
                "r2".to_string(),
                entry("r2", CreateState::Refused, "old", 10),
            ),
            ("c1".to_string(), entry("c1", CreateState::Claimed, "f", 10)),
        ]);
        let (none, rows, bases, parked) = (
            HashMap::new(),
            HashMap::new(),
            HashMap::new(),
            HashSet::new(),
        );
        let input = DecideInput {
            sync: &sync,
            local_of: &none,
            rows: &rows,
            bases: &bases,
            parked: &parked,
            creates: &creates,
            fingerprint: "f",
            id_properties: &["crmsync_id", "other_sync_id"],
            now_ms: 5,
        };
        let mut ours = record("o1", "Ours", "lead");
        ours.properties.insert("crmsync_id".into(), "17".into());
        // Made by another sync into the same object: not created in the CRM either.
        let mut theirs = record("o2", "Theirs", "lead");
        theirs.properties.insert("other_sync_id".into(), "4".into());
        let mut interrupted = record("c1", "Half", "lead");
        interrupted
            .properties
            .insert("crmsync_id".into(), "18".into());
        let d = decide_page(
            &input,
            &[
                record("n1", "New Co", "lead"),
                ours,
                theirs,
                record("r1", "Refused", "lead"),
                record("r2", "Config changed", "lead"),
                interrupted,
                record("n2", "", ""),
            ],
        );
        assert_eq!(
            (d.report.ours, d.report.insert_waiting),
            (2, 1),
            "{:?}",
            d.report
        );
        let ids: Vec<&str> = d.creates.iter().map(|c| c.crm_id.as_str()).collect();
        assert_eq!(ids, ["n1", "r2", "c1", "n2"]);
        assert_eq!(
            d.creates[0].values,
            vec![
                ("company".to_string(), "New Co".to_string()),
                ("stage".to_string(), "prospect".to_string()),
            ],
            "values mapped back into the app's form"
        );
        assert!(
            d.creates[3].values.is_empty(),
            "empty CRM values leave columns to their defaults"
        );
        assert_eq!(d.report.unlinked, 0);
    }
}
