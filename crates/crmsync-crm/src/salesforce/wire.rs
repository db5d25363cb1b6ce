//! Salesforce REST bodies as crmsync reads and writes them (FACTS 3.1–3.10). Reads are
//! lenient (unknown fields ignored, optional ones defaulted) so an answer with more than we
//! need never fails; record values stay [`serde_json::Value`]s until the client types them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The token endpoint's success answer.
#[derive(Debug, Deserialize)]
pub(crate) struct TokenAnswer {
    pub access_token: String,
    pub instance_url: String,
}

/// The token endpoint's failure answer.
#[derive(Debug, Deserialize)]
pub(crate) struct OAuthError {
    pub error: String,
    #[serde(default)]
    pub error_description: Option<String>,
}

/// One entry of a REST error array (`errorCode`) or of a collection result (`statusCode`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ApiError {
    #[serde(default)]
    pub message: String,
    #[serde(default, alias = "statusCode")]
    #[serde(rename = "errorCode")]
    pub error_code: Option<String>,
    #[serde(default)]
    pub fields: Vec<String>,
}

/// One item of a collection answer, in request order.
#[derive(Debug, Deserialize)]
pub(crate) struct SaveResult {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub success: bool,
    #[serde(default)]
    pub created: Option<bool>,
    #[serde(default)]
    pub errors: Vec<ApiError>,
}

/// A collection write: `{"allOrNone": false, "records": [...]}`.
#[derive(Debug, Serialize)]
pub(crate) struct CollectionRequest<'a> {
    #[serde(rename = "allOrNone")]
    pub all_or_none: bool,
    pub records: &'a [serde_json::Value],
}

/// A SOQL answer page.
#[derive(Debug, Deserialize)]
pub(crate) struct QueryPage {
    #[serde(default)]
    pub done: bool,
    #[serde(rename = "nextRecordsUrl", default)]
    pub next_records_url: Option<String>,
    #[serde(default)]
    pub records: Vec<BTreeMap<String, serde_json::Value>>,
}

/// `GET …/sobjects/{Type}/describe`, the parts crmsync uses.
#[derive(Debug, Deserialize)]
pub(crate) struct Describe {
    #[serde(default)]
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Field {
    pub name: String,
    #[serde(default)]
    pub label: String,
    /// A custom field (`__c`): configuration, not Salesforce's own.
    #[serde(default)]
    pub custom: bool,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub length: u64,
    #[serde(default)]
    pub nillable: bool,
    #[serde(default)]
    pub unique: bool,
    #[serde(rename = "externalId", default)]
    pub external_id: bool,
    #[serde(default)]
    pub createable: bool,
    #[serde(default)]
    pub updateable: bool,
    #[serde(rename = "defaultedOnCreate", default)]
    pub defaulted_on_create: bool,
    #[serde(rename = "picklistValues", default)]
    pub picklist_values: Vec<PicklistValue>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PicklistValue {
    pub value: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}
