//! What a CRM says about its own schema, for preflight checks: the properties of an object
//! (type, field type, uniqueness, enumeration options, read-only) and the pipelines with their
//! stages. Read-only descriptions; nothing here changes the CRM.

use serde::Serialize;

/// One property of a CRM object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PropertyInfo {
    /// Internal name, e.g. `email`.
    pub name: String,
    /// Data type in the neutral vocabulary every connector maps its own to: `string`,
    /// `number`, `date`, `datetime`, `enumeration`, `bool`; empty when the CRM did not say.
    pub kind: String,
    /// The CRM's own type word: HubSpot's `fieldType` (`text`, `phonenumber`, `select`, ...),
    /// Salesforce's field `type` (`email`, `currency`, `picklist`, `reference`, ...).
    pub field_type: String,
    /// Whether the property holds unique values (usable as an upsert id property).
    pub has_unique_value: bool,
    /// Whether values cannot be written through the API (calculated or system properties).
    pub read_only: bool,
    /// Allowed values of an enumeration (their internal values, not labels).
    pub options: Vec<String>,
    /// Whether a new record must carry a value (Salesforce: not nillable, createable, not
    /// defaulted on create). HubSpot requires nothing beyond its own object rules.
    pub required: bool,
    /// Longest text value accepted, when the CRM says (Salesforce `length`).
    pub max_length: Option<u64>,
}

/// A pipeline of an object (deal pipelines in HubSpot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pipeline {
    pub id: String,
    pub label: String,
    pub stages: Vec<Stage>,
}

/// One stage of a [`Pipeline`]; `id` is the value the stage property takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    pub id: String,
    pub label: String,
}
