//! A stored CRM record and its rendering as HubSpot's `SimplePublicObject` (FACTS 2.2).
//!
//! Invariant: `props` always holds `hs_object_id`, `createdate` and the type's last-modified
//! property, all as strings; every value is a string because HubSpot returns nothing else.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::actor::Actor;
use super::object_type::ObjectType;
use super::schema::PropertyDef;

/// Versions kept per property for `propertiesWithHistory`; older ones are dropped.
const MAX_VERSIONS: usize = 20;

/// ISO-8601 UTC with milliseconds, HubSpot's datetime format (`2024-03-01T10:15:00.123Z`).
pub(crate) fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// One past or current value of a property.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Version {
    /// `""` when the write cleared the property.
    pub value: String,
    pub at: DateTime<Utc>,
    pub actor: Actor,
}

/// One record of one object type.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    pub id: u64,
    pub props: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
    /// Newest first, per property.
    #[serde(default)]
    pub history: BTreeMap<String, Vec<Version>>,
}

impl Record {
    /// Remembers a write of `name` for `propertiesWithHistory`.
    pub fn remember(&mut self, name: &str, value: Option<&str>, at: DateTime<Utc>, actor: Actor) {
        let versions = self.history.entry(name.to_owned()).or_default();
        versions.insert(
            0,
            Version {
                value: value.unwrap_or_default().to_owned(),
                at,
                actor,
            },
        );
        versions.truncate(MAX_VERSIONS);
    }

    /// `propertiesWithHistory` for the named properties (FACTS 2.2): every remembered
    /// version, newest first; a property set by the sandbox itself (ids, dates) reports its
    /// current value only.
    pub fn history_json(&self, names: &[String], app_id: u64) -> Map<String, Value> {
        let mut out = Map::new();
        for name in names {
            let versions: Vec<Value> = match self.history.get(name) {
                Some(versions) => versions
                    .iter()
                    .map(|v| {
                        let mut entry = json!({
                            "value": v.value,
                            "timestamp": iso(v.at),
                            "sourceType": v.actor.change_source(),
                            "sourceId": v.actor.source_id(app_id),
                        });
                        if let Some(user) = v.actor.user_id() {
                            entry["updatedByUserId"] = json!(user);
                        }
                        entry
                    })
                    .collect(),
                None => match self.props.get(name) {
                    Some(value) => vec![json!({
                        "value": value,
                        "timestamp": iso(self.updated_at),
                        "sourceType": "CALCULATED",
                    })],
                    None => Vec::new(),
                },
            };
            out.insert(name.clone(), Value::Array(versions));
        }
        out
    }

    pub fn is_archived(&self) -> bool {
        self.archived_at.is_some()
    }

    /// The record envelope with the selected properties.
    ///
    /// `selection = None` returns the type's default set; otherwise the named properties
    /// that exist (unknown names are ignored, unset ones are `null`) plus the id and dates.
    pub fn render(
        &self,
        object: ObjectType,
        schema: &BTreeMap<String, PropertyDef>,
        selection: Option<&[String]>,
    ) -> Map<String, Value> {
        let mut properties = Map::new();
        let mut put = |name: &str| {
            let value = self
                .props
                .get(name)
                .map_or(Value::Null, |v| Value::String(v.clone()));
            properties.insert(name.to_owned(), value);
        };
        match selection {
            None => object
                .default_properties()
                .iter()
                .for_each(|name| put(name)),
            Some(names) => {
                for name in names.iter().filter(|n| schema.contains_key(n.as_str())) {
                    put(name);
                }
                for name in [
                    "hs_object_id",
                    "createdate",
                    object.last_modified_property(),
                ] {
                    put(name);
                }
            }
        }
        let mut envelope = Map::new();
        envelope.insert("id".to_owned(), Value::String(self.id.to_string()));
        envelope.insert("properties".to_owned(), Value::Object(properties));
        envelope.insert("createdAt".to_owned(), json!(iso(self.created_at)));
        envelope.insert("updatedAt".to_owned(), json!(iso(self.updated_at)));
        envelope.insert("archived".to_owned(), json!(self.is_archived()));
        if let Some(at) = self.archived_at {
            envelope.insert("archivedAt".to_owned(), json!(iso(at)));
        }
        envelope
    }
}
