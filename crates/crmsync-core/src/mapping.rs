//! Turning one app row into the CRM payload of a sync: per field, the raw value (a column,
//! `concat`, `template` or `constant`), then transforms, the default, the status map, the
//! confirmation and the validation rules. Pure: the same row and config always give the same
//! outcome, so the payload hash is stable and an unchanged row costs no API call. The way back
//! for pulled values is in `reverse.rs`.

use crate::compose;
use crate::config::{Direction, FieldConfig, OnEmpty, OnInvalid, SyncConfig, WriteMode};
use crate::reverse;
use crate::status_map;
use crate::transform::Transform;
use std::collections::{BTreeMap, BTreeSet};

pub use crate::rule::Rule;

/// One row of an app table: column -> value as text (`None` for SQL NULL).
pub type Row = BTreeMap<String, Option<String>>;

/// Why one field of one record cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// The field (its key in `[sync.fields]`, which is the app column unless the field names
    /// another source).
    pub column: String,
    /// The rule that failed: `required`, `email`, `phone`, `max_length`, `allowed`, `map`,
    /// `confirmed_by`, or the transform that could not convert the value (`e164`, `date`, ...).
    pub rule: String,
    /// A sentence naming the value and the fix.
    pub message: String,
    /// The value that failed, as far as it got through the transforms.
    pub value: Option<String>,
}

/// A record ready to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapped {
    /// CRM property -> value, sent on every write.
    pub properties: BTreeMap<String, String>,
    /// CRM property -> value of `write = "create_only"` fields: sent only when the record is
    /// created, and not part of the payload hash (a later change of them sends nothing).
    pub create_only: BTreeMap<String, String>,
    /// Fields left out because they failed with `on_invalid = "skip_field"`, with the reason.
    pub skipped: Vec<FieldProblem>,
}

/// What to do with one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapOutcome {
    /// Send these CRM properties.
    Ready(Mapped),
    /// A rule failed: quarantine the record with these reasons; nothing is sent.
    Invalid(Vec<FieldProblem>),
    /// Not an error, but not to be sent yet (a required value awaits confirmation).
    Held(FieldProblem),
}

/// Whether `field` flows app -> CRM in `sync`.
pub fn pushes(sync: &SyncConfig, field: &FieldConfig) -> bool {
    field.direction.unwrap_or(sync.direction) != Direction::Pull
}

/// Whether `field` flows CRM -> app in `sync`.
pub fn pulls(sync: &SyncConfig, field: &FieldConfig) -> bool {
    field.direction.unwrap_or(sync.direction) != Direction::Push
}

/// Every app column `sync` reads: field sources, confirmation columns, association columns.
/// Sorted and without duplicates; a `constant` field reads none.
pub fn referenced_columns(sync: &SyncConfig) -> Vec<&str> {
    let mut cols: BTreeSet<&str> = BTreeSet::new();
    for (name, field) in &sync.fields {
        cols.extend(compose::columns(name, field));
        cols.extend(field.confirmed_by.as_deref());
        cols.extend(transform_columns(field));
    }
    cols.extend(sync.associate.keys().map(String::as_str));
    cols.into_iter().collect()
}

/// The app columns a field's transforms read besides its value (`e164`'s `region_column`),
/// borrowed from the config.
fn transform_columns(field: &FieldConfig) -> impl Iterator<Item = &str> {
    field.transform.iter().filter_map(|item| match item {
        crate::config::Item::Table(t) => t
            .get("e164")
            .and_then(|v| v.as_table())
            .and_then(|o| o.get("region_column"))
            .and_then(|c| c.as_str()),
        crate::config::Item::Name(_) => None,
    })
}

/// The app value a CRM value of `field` pulls back as, in the app's own representation (see
/// [`reverse::value_back`]): the status map undone, then the transforms from last to first.
/// `Err` says why there is no way back; the caller logs it and skips the field.
pub fn map_value_back(field: &FieldConfig, crm_value: &str) -> Result<String, String> {
    reverse::value_back(field, crm_value)
}

/// The CRM value field `column` of `row` maps to, whatever its direction; `None` when it is
/// not sent (unconfirmed) or fails a rule. Two-way sync compares it with the CRM's value.
pub fn map_one(column: &str, field: &FieldConfig, row: &Row) -> Option<String> {
    map_field(column, field, row).ok().flatten()
}

/// Maps `row` through the fields of `sync` that flow app -> CRM.
pub fn map_row(sync: &SyncConfig, row: &Row) -> MapOutcome {
    let mut mapped = Mapped::default();
    let mut problems = Vec::new();
    let mut held = None;
    for (column, field) in &sync.fields {
        if !pushes(sync, field) {
            continue;
        }
        match map_field(column, field, row) {
            Ok(Some(v)) => {
                let into = match field.write {
                    WriteMode::Always => &mut mapped.properties,
                    WriteMode::CreateOnly => &mut mapped.create_only,
                };
                into.insert(field.crm.clone(), v);
            }
            Ok(None) => {}
            Err(FieldError::Invalid(p)) if field.on_invalid == OnInvalid::SkipField => {
                mapped.skipped.push(p)
            }
            Err(FieldError::Invalid(p)) => problems.push(p),
            Err(FieldError::Held(p)) => held = held.or(Some(p)),
        }
    }
    if !problems.is_empty() {
        MapOutcome::Invalid(problems)
    } else if let Some(h) = held {
        MapOutcome::Held(h)
    } else {
        MapOutcome::Ready(mapped)
    }
}

enum FieldError {
    Invalid(FieldProblem),
    Held(FieldProblem),
}

fn map_field(column: &str, field: &FieldConfig, row: &Row) -> Result<Option<String>, FieldError> {
    let problem = |rule: &str, message: String, value: &str| FieldProblem {
        column: column.to_string(),
        rule: rule.to_string(),
        message,
        value: Some(value.to_string()),
    };
    let mut value = compose::raw_value(column, field, row);
    // Items were checked by the config validation; one that still fails to read is skipped
    // rather than failing every record.
    for t in field
        .transform
        .iter()
        .filter_map(|t| Transform::from_item(t).ok())
    {
        value = t.apply_in(&value, row).map_err(|why| {
            FieldError::Invalid(problem(
                t.name(),
                format!("`{value}` {why} (transform `{}`)", t.name()),
                &value,
            ))
        })?;
    }
    if value.is_empty()
        && let Some(d) = &field.default
    {
        value = d.clone();
    }
    if !value.is_empty()
        && let Some(mapped) = status_map::forward(field, &value)
            .map_err(|m| FieldError::Invalid(problem("map", m, &value)))?
    {
        value = mapped.to_string();
    }
    let rules: Vec<Rule> = field
        .validate
        .items()
        .into_iter()
        .filter_map(|r| Rule::from_item(r).ok())
        .collect();
    if let Some(confirm_col) = &field.confirmed_by {
        let confirmed = row
            .get(confirm_col)
            .cloned()
            .flatten()
            .is_some_and(|v| !v.trim().is_empty());
        if !confirmed && !value.is_empty() {
            if rules.contains(&Rule::Required) {
                return Err(FieldError::Held(problem(
                    "confirmed_by",
                    format!("`{column}` is not confirmed yet (`{confirm_col}` is empty)"),
                    &value,
                )));
            }
            // Only confirmed values are sent; an optional field is simply left out.
            return Ok(None);
        }
    }
    for rule in &rules {
        rule.check(column, &value)
            .map_err(|m| FieldError::Invalid(problem(rule.name(), m, &value)))?;
    }
    // An empty value erases the CRM's only when the field says so.
    if value.is_empty() && field.on_empty == OnEmpty::Skip {
        return Ok(None);
    }
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw::RawConfig;

    fn sync() -> SyncConfig {
        let raw: RawConfig = toml::from_str(
            r#"
            source = { url = "sqlite://a.db" }
            crm = { environment = "sandbox", kind = "hubspot", token_env = "T" }
            [[sync]]
            name = "contacts"
            table = "customers"
            object = "contacts"
            [sync.fields]
            email = { crm = "email", transform = ["trim", "lowercase"], validate = ["required", "email"], confirmed_by = "confirmed_at" }
            name = { crm = "firstname", transform = ["collapse_whitespace"] }
            status = { crm = "lifecyclestage", map = { new = "lead", paid = "customer" } }
            note = { crm = "notes", direction = "pull" }
            "#,
        )
        .expect("test config parses");
        raw.syncs.into_iter().next().expect("one sync")
    }

    fn row(pairs: &[(&str, Option<&str>)]) -> Row {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect()
    }

    #[test]
    fn ready_row_is_transformed_and_mapped() {
        let out = map_row(
            &sync(),
            &row(&[
                ("email", Some(" Ada@X.COM ")),
                ("confirmed_at", Some("2024")),
                ("name", Some(" Ada   L ")),
                ("status", Some("paid")),
                ("note", Some("x")),
            ]),
        );
        let MapOutcome::Ready(m) = out else {
            panic!("expected ready, got {out:?}")
        };
        let p = m.properties;
        assert_eq!(p["email"], "ada@x.com");
        assert_eq!(p["firstname"], "Ada L");
        assert_eq!(p["lifecyclestage"], "customer");
        assert!(!p.contains_key("notes"), "pull-only fields are not pushed");
    }

    #[test]
    fn invalid_email_names_field_and_rule() {
        let out = map_row(
            &sync(),
            &row(&[("email", Some("not-an-email")), ("confirmed_at", Some("x"))]),
        );
        let MapOutcome::Invalid(p) = out else {
            panic!("expected invalid, got {out:?}")
        };
        assert_eq!(
            (p[0].column.as_str(), p[0].rule.as_str()),
            ("email", "email")
        );
    }

    #[test]
    fn unconfirmed_required_email_is_held_not_invalid() {
        let out = map_row(
            &sync(),
            &row(&[("email", Some("ada@x.com")), ("confirmed_at", None)]),
        );
        assert!(
            matches!(out, MapOutcome::Held(ref p) if p.rule == "confirmed_by"),
            "{out:?}"
        );
    }

    #[test]
    fn unmapped_status_is_a_record_error() {
        let out = map_row(
            &sync(),
            &row(&[
                ("email", Some("a@x.com")),
                ("confirmed_at", Some("1")),
                ("status", Some("lost")),
            ]),
        );
        let MapOutcome::Invalid(p) = out else {
            panic!("expected invalid, got {out:?}")
        };
        assert_eq!(p[0].rule, "map");
        assert!(p[0].message.contains("lost"));
    }
}

#[cfg(test)]
mod policy_tests {
    //! `on_empty`, `write`, `on_invalid` and a phone region read from the row.
    use super::*;
    use crate::config::raw::RawConfig;

    fn sync() -> SyncConfig {
        let raw: RawConfig = toml::from_str(
            r#"
            source = { url = "sqlite://a.db" }
            crm = { environment = "sandbox", kind = "hubspot", token_env = "T" }
            [[sync]]
            name = "companies"
            table = "accounts"
            object = "companies"
            [sync.fields]
            domain = { crm = "domain" }
            notes = { crm = "description", on_empty = "clear" }
            lead_source = { crm = "hs_analytics_source", write = "create_only" }
            phone = { crm = "phone", transform = [{ e164 = { region_column = "country", default = "US" } }], on_invalid = "skip_field" }
            "#,
        )
        .expect("parses");
        assert!(
            crate::config::validate::validate(&raw).is_empty(),
            "{:?}",
            crate::config::validate::validate(&raw)
        );
        raw.syncs.into_iter().next().expect("one sync")
    }

    fn row(pairs: &[(&str, Option<&str>)]) -> Row {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect()
    }

    fn ready(out: MapOutcome) -> Mapped {
        match out {
            MapOutcome::Ready(m) => m,
            other => panic!("expected ready, got {other:?}"),
        }
    }

    #[test]
    fn an_empty_value_is_left_out_unless_the_field_clears() {
        let m = ready(map_row(
            &sync(),
            &row(&[
                ("domain", None),
                ("notes", Some("")),
                ("lead_source", Some("")),
            ]),
        ));
        assert!(
            !m.properties.contains_key("domain"),
            "NULL never erases the CRM's domain"
        );
        assert_eq!(
            m.properties.get("description").map(String::as_str),
            Some("")
        );
        assert!(m.create_only.is_empty());
    }

    #[test]
    fn create_only_values_are_kept_apart() {
        let m = ready(map_row(
            &sync(),
            &row(&[
                ("domain", Some("acme.com")),
                ("lead_source", Some("webinar")),
            ]),
        ));
        assert_eq!(
            m.create_only.get("hs_analytics_source").map(String::as_str),
            Some("webinar")
        );
        assert!(!m.properties.contains_key("hs_analytics_source"));
    }

    #[test]
    fn the_phone_region_comes_from_the_row() {
        let uk = ready(map_row(
            &sync(),
            &row(&[
                ("phone", Some("020 7946 0958")),
                ("country", Some("United Kingdom")),
            ]),
        ));
        assert_eq!(uk.properties["phone"], "+442079460958");
        let us = ready(map_row(
            &sync(),
            &row(&[("phone", Some("(415) 555-2671")), ("country", None)]),
        ));
        assert_eq!(us.properties["phone"], "+14155552671", "the default region");
        let de = ready(map_row(
            &sync(),
            &row(&[("phone", Some("030 1234567")), ("country", Some("de"))]),
        ));
        assert_eq!(de.properties["phone"], "+49301234567");
    }

    #[test]
    fn a_skipped_field_leaves_the_record_flowing_and_says_why() {
        let m = ready(map_row(
            &sync(),
            &row(&[
                ("domain", Some("acme.com")),
                ("phone", Some("call me")),
                ("country", Some("GB")),
            ]),
        ));
        assert_eq!(m.properties["domain"], "acme.com");
        assert!(!m.properties.contains_key("phone"));
        assert_eq!(m.skipped.len(), 1);
        assert_eq!(
            (m.skipped[0].column.as_str(), m.skipped[0].rule.as_str()),
            ("phone", "e164")
        );
    }

    #[test]
    fn the_region_column_is_read() {
        assert!(referenced_columns(&sync()).contains(&"country"));
    }
}

#[cfg(test)]
mod shape_tests {
    //! The new field shapes end to end, with the payload pinned by an `insta` snapshot.
    use super::*;
    use crate::config::raw::RawConfig;

    const CONFIG: &str = r#"
        source = { url = "sqlite://a.db" }
        crm = { environment = "sandbox", kind = "hubspot", token_env = "T" }
        [[sync]]
        name = "contacts"
        table = "customers"
        object = "contacts"
        associate = { company_id = "companies" }
        [sync.fields]
        email = { crm = "email", transform = ["normalize_email"], validate = ["required", "email", { max_length = 254 }], confirmed_by = "confirmed_at" }
        full_name = { crm = "name", concat = ["first", "middle", "last"], transform = ["collapse_whitespace", "title_case"] }
        label = { crm = "description", template = "{first} from {{{city}}}", transform = [{ truncate = 20 }] }
        phone = { crm = "phone", transform = ["trim", { e164 = "DE" }], validate = "phone" }
        mobile = { crm = "mobilephone", column = "phone", transform = [{ e164 = "DE" }] }
        since = { crm = "createdate", column = "created", transform = [{ datetime = "%d.%m.%Y %H:%M", utc_offset = "+01:00" }] }
        birthday = { crm = "birthday", transform = [{ date = ["%d.%m.%Y", "iso"] }] }
        revenue = { crm = "annualrevenue", transform = [{ number = { decimal = ",", decimals = 2 } }] }
        source = { crm = "hs_lead_source", constant = "app" }
        tier = { crm = "tier", transform = ["lowercase"], validate = { allowed = ["gold", "silver"] }, default = "silver" }
        [[sync]]
        name = "companies"
        table = "companies"
        object = "companies"
        fields = { name = { crm = "name" } }
    "#;

    fn sync() -> SyncConfig {
        let raw: RawConfig = toml::from_str(CONFIG).expect("test config parses");
        assert!(
            crate::config::validate::validate(&raw).is_empty(),
            "{:?}",
            crate::config::validate::validate(&raw)
        );
        raw.syncs.into_iter().next().expect("one sync")
    }

    fn good_row() -> Row {
        [
            ("email", Some(" Ada.L@Example.COM ")),
            ("confirmed_at", Some("2026-01-01")),
            ("first", Some("ada")),
            ("middle", None),
            ("last", Some("LOVELACE")),
            ("city", Some("London")),
            ("phone", Some("030 1234567")),
            ("created", Some("04.03.2026 10:20")),
            ("birthday", Some("10.12.1815")),
            ("revenue", Some("1.234,5")),
            ("tier", Some("GOLD")),
            ("company_id", Some("7")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
        .collect()
    }

    #[test]
    fn payload_of_every_field_shape() {
        let MapOutcome::Ready(m) = map_row(&sync(), &good_row()) else {
            panic!("expected ready")
        };
        assert!(m.create_only.is_empty() && m.skipped.is_empty());
        insta::assert_debug_snapshot!(m.properties);
    }

    #[test]
    fn referenced_columns_cover_every_source() {
        assert_eq!(
            referenced_columns(&sync()),
            vec![
                "birthday",
                "city",
                "company_id",
                "confirmed_at",
                "created",
                "email",
                "first",
                "last",
                "middle",
                "phone",
                "revenue",
                "tier"
            ]
        );
    }

    #[test]
    fn every_failing_field_is_reported_with_rule_and_value() {
        let mut row = good_row();
        for (k, v) in [
            ("phone", "not a phone"),
            ("created", "yesterday"),
            ("revenue", "lots"),
            ("tier", "bronze"),
            ("email", "ada@@x.com"),
        ] {
            row.insert(k.into(), Some(v.into()));
        }
        let MapOutcome::Invalid(p) = map_row(&sync(), &row) else {
            panic!("expected invalid")
        };
        let got: Vec<(&str, &str, Option<&str>)> = p
            .iter()
            .map(|p| (p.column.as_str(), p.rule.as_str(), p.value.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("email", "email", Some("ada@@x.com")),
                ("mobile", "e164", Some("not a phone")),
                ("phone", "e164", Some("not a phone")),
                ("revenue", "number", Some("lots")),
                ("since", "datetime", Some("yesterday")),
                ("tier", "allowed", Some("bronze")),
            ]
        );
        insta::assert_debug_snapshot!(p.iter().map(|p| &p.message).collect::<Vec<_>>());
    }

    #[test]
    fn over_long_values_fail_max_length() {
        let mut row = good_row();
        row.insert(
            "email".into(),
            Some(format!("{}@example.com", "a".repeat(60))),
        );
        assert!(matches!(map_row(&sync(), &row), MapOutcome::Ready(_)));
        let mut cfg = sync();
        if let Some(f) = cfg.fields.get_mut("email") {
            f.validate = crate::config::OneOrMany::Many(vec![
                "email".into(),
                crate::config::Item::Table(
                    [("max_length".to_string(), toml::Value::Integer(20))].into(),
                ),
            ]);
        }
        let MapOutcome::Invalid(p) = map_row(&cfg, &row) else {
            panic!("expected invalid")
        };
        assert_eq!(p[0].rule, "max_length");
        assert!(
            p[0].message.contains("more than the 20 allowed"),
            "{}",
            p[0].message
        );
    }
}
