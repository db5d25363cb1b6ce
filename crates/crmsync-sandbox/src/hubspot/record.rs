//! A stored CRM record and its rendering as HubSpot's `SimplePublicObject` (FACTS 2.2).
//!
//! Invariant: `props` always holds `hs_object_id`, `createdate` and the type's last-modified
//! property, all as strings; every value is a string because HubSpot returns nothing else.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::object_type::ObjectType;
use super::schema::PropertyDef;

/// ISO-8601 UTC with milliseconds, HubSpot's datetime format (`2024-03-01T10:15:00.123Z`).
pub(crate) fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// One record of one object type.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub id: u64,
    pub props: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
}

impl Record {
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
