//! What a record created in the CRM does on a sync: `on_crm_create = "ignore"` (the default:
//! nothing, as before) or `"insert"` (it becomes a row of the sync's table), and the
//! `insert_values` that fill the columns a new row needs but the CRM does not supply
//! (`created_at = "now"`, `active = true`). Invariant: an [`InsertValue`] is either the
//! database's current time or one constant as text; [`problems`] names every way a sync's
//! combination of these keys cannot work, with the key it is about.

use super::raw::SyncConfig;
use serde::{Deserialize, Deserializer};
use std::fmt;

/// `on_crm_create` of a sync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnCrmCreate {
    /// A CRM record without a link is left alone (counted as `unlinked`).
    #[default]
    Ignore,
    /// A CRM record crmsync did not create becomes a row of the table, linked to it.
    Insert,
}

/// One value of `insert_values`.
#[derive(Clone, PartialEq, Eq)]
pub enum InsertValue {
    /// `"now"`: the database's current time, written in the form the column's type holds
    /// (docs/mapping.md, "Records created in the CRM").
    Now,
    /// Any other value, as text; the database converts it to the column's type. Booleans are
    /// `1` and `0` (what SQLite, MySQL and PostgreSQL booleans all take).
    Constant(String),
}

impl fmt::Debug for InsertValue {
    // Part of the mapping fingerprint (the `Debug` form of a sync): stable and short.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InsertValue::Now => write!(f, "now"),
            InsertValue::Constant(v) => write!(f, "{v:?}"),
        }
    }
}

impl<'de> Deserialize<'de> for InsertValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match toml::Value::deserialize(d)? {
            toml::Value::String(s) if s == "now" => Ok(InsertValue::Now),
            toml::Value::String(s) => Ok(InsertValue::Constant(s)),
            toml::Value::Integer(n) => Ok(InsertValue::Constant(n.to_string())),
            toml::Value::Float(x) => Ok(InsertValue::Constant(x.to_string())),
            toml::Value::Boolean(b) => Ok(InsertValue::Constant(if b { "1" } else { "0" }.into())),
            other => Err(D::Error::custom(format!(
                "expected \"now\", a text, a number or a boolean, got a {}",
                other.type_str()
            ))),
        }
    }
}

/// The problems of `sync`'s `on_crm_create` / `insert_values`, as (key below the sync,
/// message). `pulls` says whether the sync has a field that pulls.
pub fn problems(sync: &SyncConfig, pulls: bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if sync.on_crm_create == OnCrmCreate::Ignore {
        if !sync.insert_values.is_empty() {
            out.push((
                "insert_values".to_string(),
                "`insert_values` fill rows inserted for records created in the CRM; set `on_crm_create = \"insert\"` or remove them".to_string(),
            ));
        }
        return out;
    }
    if !pulls {
        out.push((
            "on_crm_create".to_string(),
            "`insert` makes rows from the fields the sync pulls, and this sync pulls none; make some fields two-way (`direction = \"both\"`) or remove `on_crm_create`".to_string(),
        ));
    }
    if sync.write_back_column.is_none() {
        out.push((
            "on_crm_create".to_string(),
            "`insert` needs a `write_back_column` (e.g. `write_back_column = \"hubspot_id\"`): each inserted row carries its CRM id from the start, so an insert interrupted by a crash is found again instead of made twice".to_string(),
        ));
    }
    for column in sync.insert_values.keys() {
        let at = format!("insert_values.{column}");
        if column.trim().is_empty() {
            out.push((at, "must name a column of the table".to_string()));
        } else if *column == sync.key {
            out.push((
                at,
                format!(
                    "`{column}` is the sync's key, which the database assigns to a new row; remove it"
                ),
            ));
        } else if sync.write_back_column.as_deref() == Some(column.as_str()) {
            out.push((
                at,
                format!(
                    "`{column}` is the `write_back_column`, which receives the CRM id; remove it"
                ),
            ));
        } else if let Some(field) = sync.fields.iter().find_map(|(k, f)| {
            (f.direction.unwrap_or(sync.direction) != super::Direction::Push
                && f.column.as_deref().unwrap_or(k) == column)
                .then_some(k)
        }) {
            out.push((
                at,
                format!(
                    "`{column}` is filled by the pulled field `{field}`; `insert_values` are for columns the CRM does not supply"
                ),
            ));
        }
    }
    out
}
