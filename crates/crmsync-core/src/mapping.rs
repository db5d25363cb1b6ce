//! Turning one app row into the CRM payload of a sync: per field, transforms, then the status
//! map, then validation. Pure: the same row and config always give the same outcome, so the
//! payload hash is stable and an unchanged row costs no API call.

use crate::config::{Direction, FieldConfig, SyncConfig};
use crate::email;
use crate::transform::Transform;
use std::collections::BTreeMap;

/// One row of an app table: column -> value as text (`None` for SQL NULL).
pub type Row = BTreeMap<String, Option<String>>;

/// A validation rule from the config's `validate = ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The value must be non-empty.
    Required,
    /// The value, when present, must be an e-mail address CRMs accept ([`crate::email`]).
    Email,
}

impl Rule {
    pub const NAMES: [&'static str; 2] = ["required", "email"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "required" => Some(Rule::Required),
            "email" => Some(Rule::Email),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Rule::Required => "required",
            Rule::Email => "email",
        }
    }
}

/// Why one field of one record cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// The app column.
    pub column: String,
    /// The rule that failed: `required`, `email`, `map`, `confirmed_by`.
    pub rule: String,
    /// A sentence naming the value and the fix.
    pub message: String,
}

/// What to do with one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapOutcome {
    /// Send these CRM properties.
    Ready(BTreeMap<String, String>),
    /// A rule failed: quarantine the record with these reasons; nothing is sent.
    Invalid(Vec<FieldProblem>),
    /// Not an error, but not to be sent yet (a required value awaits confirmation).
    Held(FieldProblem),
}

/// Maps `row` through the fields of `sync` that flow app -> CRM.
pub fn map_row(sync: &SyncConfig, row: &Row) -> MapOutcome {
    let mut props = BTreeMap::new();
    let mut problems = Vec::new();
    let mut held = None;
    for (column, field) in &sync.fields {
        if field.direction.unwrap_or(sync.direction) == Direction::Pull {
            continue;
        }
        match map_field(column, field, row) {
            Ok(Some(v)) => {
                props.insert(field.crm.clone(), v);
            }
            Ok(None) => {}
            Err(FieldError::Invalid(p)) => problems.push(p),
            Err(FieldError::Held(p)) => held = held.or(Some(p)),
        }
    }
    if !problems.is_empty() {
        MapOutcome::Invalid(problems)
    } else if let Some(h) = held {
        MapOutcome::Held(h)
    } else {
        MapOutcome::Ready(props)
    }
}

enum FieldError {
    Invalid(FieldProblem),
    Held(FieldProblem),
}

fn map_field(column: &str, field: &FieldConfig, row: &Row) -> Result<Option<String>, FieldError> {
    let problem = |rule: &str, message: String| FieldProblem {
        column: column.to_string(),
        rule: rule.to_string(),
        message,
    };
    let mut value = row.get(column).cloned().flatten().unwrap_or_default();
    for t in field.transform.iter().filter_map(|t| Transform::parse(t)) {
        value = t.apply(&value);
    }
    if value.is_empty() {
        if let Some(d) = &field.default {
            value = d.clone();
        }
    }
    if let Some(map) = &field.map {
        if !value.is_empty() {
            match map.get(&value) {
                Some(v) => value = v.clone(),
                None => {
                    let known: Vec<&str> = map.keys().map(String::as_str).collect();
                    return Err(FieldError::Invalid(problem(
                        "map",
                        format!(
                            "value `{value}` has no mapping to `{}`; mapped values: {}",
                            field.crm,
                            known.join(", ")
                        ),
                    )));
                }
            }
        }
    }
    let rules: Vec<Rule> = field
        .validate
        .items()
        .into_iter()
        .filter_map(Rule::parse)
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
                )));
            }
            // Only confirmed values are sent; an optional field is simply left out.
            return Ok(None);
        }
    }
    for rule in rules {
        match rule {
            Rule::Required if value.trim().is_empty() => {
                return Err(FieldError::Invalid(problem(
                    "required",
                    format!("`{column}` is empty"),
                )));
            }
            Rule::Email if !value.is_empty() => {
                if let Err(why) = email::check(&value) {
                    return Err(FieldError::Invalid(problem(
                        "email",
                        format!("`{value}` {why}"),
                    )));
                }
            }
            _ => {}
        }
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
            crm = { kind = "hubspot", token_env = "T" }
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
        let MapOutcome::Ready(p) = out else {
            panic!("expected ready, got {out:?}")
        };
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
