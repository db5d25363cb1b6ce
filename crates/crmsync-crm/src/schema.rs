//! What a CRM says about its own schema, for preflight checks: the properties of an object
//! (type, field type, uniqueness, enumeration options, read-only) and the pipelines with their
//! stages. Read-only descriptions; nothing here changes the CRM.

use serde::Serialize;

/// One property of a CRM object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PropertyInfo {
    /// Internal name, e.g. `email`.
    pub name: String,
    /// Data type: `string`, `number`, `date`, `datetime`, `enumeration`, `bool`, ... (HubSpot's
    /// `type`); empty when the CRM did not say.
    pub kind: String,
    /// UI field type: `text`, `phonenumber`, `select`, ... (HubSpot's `fieldType`).
    pub field_type: String,
    /// Whether the property holds unique values (usable as an upsert id property).
    pub has_unique_value: bool,
    /// Whether values cannot be written through the API (calculated or system properties).
    pub read_only: bool,
    /// Allowed values of an enumeration (their internal values, not labels).
    pub options: Vec<String>,
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
