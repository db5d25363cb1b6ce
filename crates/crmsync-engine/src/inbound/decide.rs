//! Decide (pure): what one page of CRM records means for the linked app rows. Per record and
//! two-way field, the [`decide`] rule against the base: agree (nothing to write, the base is
//! confirmed), take the CRM's value (mapped back into the app's form: status maps undone,
//! transforms reversed), keep the app's (it is pushed next), or park the field for review. The
//! result names every row write with the values it was decided from, so the commit can refuse
//! to overwrite a row the app changed meanwhile.

use super::conflict::{Decision, decide};
use crate::report::PullReport;
use crmsync_core::config::raw::default_conflict;
use crmsync_core::config::{ConflictPolicy, FieldConfig, OnEmpty, SyncConfig};
use crmsync_core::mapping::{map_one, map_value_back, pulls};
use crmsync_crm::ChangedRecord;
use crmsync_store::{Conflict, SourceRow};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The two-way fields of `sync`: (field key, config).
pub fn pulled_fields(sync: &SyncConfig) -> Vec<(&str, &FieldConfig)> {
    sync.fields
        .iter()
        .filter(|(_, f)| pulls(sync, f))
        .map(|(k, f)| (k.as_str(), f))
        .collect()
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
}

/// The decisions of one page.
#[derive(Debug, Default)]
pub struct Decisions {
    pub records: Vec<Decided>,
    pub conflicts: Vec<Conflict>,
    /// CRM values with no way back: field -> (count, distinct values, a few).
    pub unmappable: BTreeMap<String, (u64, Vec<String>)>,
    /// Counts (fetched, unchanged, kept_app, parked, unlinked, unmappable).
    pub report: PullReport,
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
    pub now_ms: i64,
}

/// Decides `changes` (one page of CRM records) for `input.sync`.
pub fn decide_page(input: &DecideInput<'_>, changes: &[ChangedRecord]) -> Decisions {
    let sync = input.sync;
    let fields = pulled_fields(sync);
    let mut out = Decisions::default();
    out.report.fetched = changes.len() as u64;
    for change in changes {
        let Some(local_id) = input.local_of.get(&change.crm_id) else {
            out.report.unlinked += 1;
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
                decide(&app_value, &crm_value, base_value, policy, crm_newer)
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
                    Err(_) => {
                        out.report.unmappable += 1;
                        let e = out.unmappable.entry(key.to_string()).or_default();
                        e.0 += 1;
                        if e.1.len() < super::warnings::MAX_VALUES && !e.1.contains(&crm_value) {
                            e.1.push(crm_value.clone());
                        }
                    }
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
crm = { kind = "hubspot" }
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
        let input = DecideInput {
            sync: &sync,
            local_of: &local_of,
            rows: &rows,
            bases: &bases,
            parked: &parked,
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
        let input = DecideInput {
            sync: &sync,
            local_of: &local_of,
            rows: &rows,
            bases: &agreed,
            parked: &parked,
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
}
