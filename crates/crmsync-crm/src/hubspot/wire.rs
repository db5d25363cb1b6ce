//! Serde shapes of the HubSpot JSON bodies this client sends and reads, named after HubSpot's
//! OpenAPI schemas (FACTS 2.3, 2.6, 2.7, 2.9, 2.10). Our own types: nothing here is shared with
//! the sandbox, so a misreading of the wire format cannot hide on both sides.
//!
//! Read types are lenient on purpose (every field defaulted, ids accepted as string or number,
//! `context` kept as raw JSON): an answer we half understand must still yield the CRM's message.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// `BatchInputSimplePublicObjectBatchInputUpsert`: body of `POST …/batch/upsert`.
#[derive(Debug, Serialize)]
pub struct BatchInputUpsert<'a> {
    pub inputs: Vec<SimplePublicObjectBatchInputUpsert<'a>>,
}

/// One record of a batch upsert: `id` is the value of the unique `idProperty`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimplePublicObjectBatchInputUpsert<'a> {
    pub id: &'a str,
    pub id_property: &'a str,
    pub properties: BTreeMap<&'a str, &'a str>,
}

/// `BatchInputSimplePublicObjectInputForCreate`: body of `POST …/batch/create` (FACTS 2.3).
#[derive(Debug, Serialize)]
pub struct BatchInputCreate<'a> {
    pub inputs: Vec<SimplePublicObjectInputForCreate<'a>>,
}

/// One record to create, with the associations HubSpot makes together with it.
#[derive(Debug, Serialize)]
pub struct SimplePublicObjectInputForCreate<'a> {
    pub properties: BTreeMap<&'a str, &'a str>,
    pub associations: Vec<PublicAssociationsForObject<'a>>,
}

/// `PublicAssociationsForObject`: `{to:{id}, types:[{associationCategory, associationTypeId}]}`
/// (FACTS 2.3, 2.6).
#[derive(Debug, Serialize)]
pub struct PublicAssociationsForObject<'a> {
    pub to: PublicObjectId<'a>,
    pub types: Vec<AssociationSpec>,
}

/// `AssociationSpec`: which association type to create.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociationSpec {
    pub association_category: &'static str,
    pub association_type_id: u32,
}

/// HubSpot's own unlabelled association type from `from` to `to` (FACTS 2.6: HUBSPOT_DEFINED
/// ids seen in HubSpot's examples and several integrations); `None` for a pair whose id we
/// have not confirmed, which is then linked by the default-association call instead.
pub fn unlabelled_type_id(from: crate::ObjectKind, to: crate::ObjectKind) -> Option<u32> {
    use crate::ObjectKind::{Companies, Contacts, Deals};
    match (from, to) {
        (Contacts, Companies) => Some(279),
        (Companies, Contacts) => Some(280),
        (Deals, Contacts) => Some(3),
        (Contacts, Deals) => Some(4),
        (Deals, Companies) => Some(341),
        (Companies, Deals) => Some(342),
        _ => None,
    }
}

/// `BatchResponseSimplePublicUpsertObject[WithErrors]`: 200, or 207 with `errors`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BatchResponseUpsert {
    pub status: Option<String>,
    pub results: Vec<SimplePublicUpsertObject>,
    pub num_errors: Option<u32>,
    pub errors: Vec<StandardError>,
}

/// `SimplePublicUpsertObject`: the record envelope plus `new` (true when created).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SimplePublicUpsertObject {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    pub properties: BTreeMap<String, Option<String>>,
    pub new: bool,
}

/// `StandardError`: one per-record error inside a 207 batch answer.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct StandardError {
    pub status: Option<String>,
    pub category: Option<String>,
    pub sub_category: Option<Value>,
    pub message: Option<String>,
    /// `{key: [values]}`; for batch errors `ids` lists the records concerned (FACTS 2.3).
    pub context: BTreeMap<String, Value>,
    #[serde(deserialize_with = "opt_id_string")]
    pub id: Option<String>,
    pub errors: Vec<ErrorDetail>,
}

/// `Error`: the body of every non-2xx answer (FACTS 2.9), plus the rate-limit fields of a 429
/// (`errorType`, `policyName`, FACTS 2.10).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Error {
    pub status: Option<String>,
    pub message: Option<String>,
    pub correlation_id: Option<String>,
    pub category: Option<String>,
    pub sub_category: Option<Value>,
    pub context: BTreeMap<String, Value>,
    pub errors: Vec<ErrorDetail>,
    pub error_type: Option<String>,
    pub policy_name: Option<String>,
}

/// `ErrorDetail`: an entry of `errors[]` in an [`Error`] or [`StandardError`].
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ErrorDetail {
    pub message: Option<String>,
    pub code: Option<String>,
    #[serde(rename = "in")]
    pub in_field: Option<String>,
    pub context: BTreeMap<String, Value>,
    pub sub_category: Option<Value>,
}

/// One item of the JSON array HubSpot embeds in the message of a property-value
/// `VALIDATION_ERROR`: `Property values were not valid: [{…}]` (FACTS 2.9).
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct PropertyValidationResult {
    pub is_valid: bool,
    pub message: Option<String>,
    /// `INVALID_EMAIL`, `PROPERTY_DOESNT_EXIST`, `INVALID_OPTION`, …
    pub error: Option<String>,
    /// The property name.
    pub name: Option<String>,
    pub localized_error_message: Option<String>,
}

/// `Property` (FACTS 2.7), only the fields this client reads.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Property {
    pub name: String,
    pub label: String,
    pub group_name: String,
    pub description: String,
    pub hubspot_defined: bool,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub has_unique_value: bool,
    pub archived: bool,
    pub field_type: Option<String>,
    pub options: Vec<PropertyOption>,
    pub calculated: bool,
    pub modification_metadata: Option<PropertyModificationMetadata>,
}

/// `Option` of an enumeration property.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PropertyOption {
    pub value: String,
    pub label: String,
    pub hidden: bool,
    pub display_order: Option<i64>,
}

/// `PropertyModificationMetadata`: whether the API may write values.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PropertyModificationMetadata {
    pub read_only_value: bool,
}

/// `CollectionResponsePipelineNoPaging`: answer of `GET /crm/v3/pipelines/{objectType}` (FACTS 2.8).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CollectionResponsePipeline {
    pub results: Vec<Pipeline>,
}

/// `Pipeline`, only the fields this client reads.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Pipeline {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    pub label: String,
    pub display_order: i64,
    pub archived: bool,
    pub stages: Vec<PipelineStage>,
}

/// `PipelineStage`, only the fields this client reads.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PipelineStage {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    pub label: String,
    pub display_order: i64,
    pub archived: bool,
    /// String values (FACTS 2.8); anything else is read as its JSON text.
    pub metadata: BTreeMap<String, Value>,
}

/// `CollectionResponsePropertyNoPaging`: answer of `GET /crm/v3/properties/{objectType}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CollectionResponseProperty {
    pub results: Vec<Property>,
}

/// `PropertyCreate`: body of `POST /crm/v3/properties/{objectType}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyCreate<'a> {
    pub name: &'a str,
    pub label: &'a str,
    pub description: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub field_type: &'a str,
    pub group_name: &'a str,
    pub has_unique_value: bool,
}

/// `BatchInputPublicDefaultAssociationMultiPost`: body of `…/batch/associate/default` (FACTS 2.6).
#[derive(Debug, Serialize)]
pub struct BatchInputDefaultAssociation<'a> {
    pub inputs: Vec<PublicDefaultAssociationMultiPost<'a>>,
}

/// One unlabelled association to create.
#[derive(Debug, Serialize)]
pub struct PublicDefaultAssociationMultiPost<'a> {
    pub from: PublicObjectId<'a>,
    pub to: PublicObjectId<'a>,
}

/// `PublicObjectId`: `{"id": "…"}`.
#[derive(Debug, Serialize)]
pub struct PublicObjectId<'a> {
    pub id: &'a str,
}

/// `BatchResponsePublicDefaultAssociation`: only the errors matter to us (results are not
/// needed: the association exists afterwards either way).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BatchResponseDefaultAssociation {
    pub status: Option<String>,
    pub num_errors: Option<u32>,
    pub errors: Vec<StandardError>,
}

/// `PublicObjectSearchRequest`: body of `POST /crm/v3/objects/{object}/search` (FACTS 2.5).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchRequest<'a> {
    pub filter_groups: Vec<FilterGroup<'a>>,
    pub sorts: Vec<Sort<'a>>,
    pub properties: Vec<&'a str>,
    pub limit: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct FilterGroup<'a> {
    pub filters: Vec<Filter<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter<'a> {
    pub property_name: &'a str,
    pub operator: &'a str,
    pub value: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sort<'a> {
    pub property_name: &'a str,
    pub direction: &'a str,
}

/// `CollectionResponseWithTotalSimplePublicObjectForwardPaging`: a search answer.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SearchResponse {
    pub total: u64,
    pub results: Vec<SearchRecord>,
    pub paging: Option<Paging>,
}

/// One record of a search answer.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SearchRecord {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    pub properties: BTreeMap<String, Option<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Paging {
    pub next: Option<NextPage>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NextPage {
    pub after: Option<String>,
}

/// Object ids are JSON strings, but v4 answers send numbers in practice (FACTS 2.2).
fn id_string<'de, D: Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    Ok(opt_id_string(de)?.unwrap_or_default())
}

fn opt_id_string<'de, D: Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(de)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// The string values of a `context` entry (`{"ids": ["a", "b"]}`, or a bare string/number).
pub fn context_strings(context: &BTreeMap<String, Value>, key: &str) -> Vec<String> {
    fn one(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
    match context.get(key) {
        Some(Value::Array(items)) => items.iter().filter_map(one).collect(),
        Some(v) => one(v).into_iter().collect(),
        None => Vec::new(),
    }
}

/// `BatchReadInputSimplePublicObjectId`: body of `POST …/batch/read` (FACTS 2.3).
#[derive(Debug, Serialize)]
pub struct BatchReadRequest<'a> {
    pub inputs: Vec<PublicObjectId<'a>>,
    pub properties: Vec<&'a str>,
    /// Read by this unique property's values instead of by record id.
    #[serde(rename = "idProperty", skip_serializing_if = "Option::is_none")]
    pub id_property: Option<&'a str>,
}

/// `BatchResponseSimplePublicObject`: the records found (200), and on 207 the ids that were not.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct BatchReadResponse {
    pub results: Vec<SearchRecord>,
    pub errors: Vec<StandardError>,
}

/// `BatchInputSimplePublicObjectBatchInput`: body of `POST …/batch/update`.
#[derive(Debug, Serialize)]
pub struct BatchUpdateRequest<'a> {
    pub inputs: Vec<BatchUpdateItem<'a>>,
}

/// One record to update, by CRM id.
#[derive(Debug, Serialize)]
pub struct BatchUpdateItem<'a> {
    pub id: &'a str,
    pub properties: BTreeMap<&'a str, &'a str>,
}

/// `GET /account-info/v3/details`: the portal the token belongs to (other fields unread).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountDetails {
    pub portal_id: u64,
    /// `STANDARD`, `DEVELOPER_TEST`, `SANDBOX`, `APP_DEVELOPER`; absent reads as `STANDARD`
    /// (production: when in doubt, guard).
    #[serde(default = "standard")]
    pub account_type: String,
}

fn standard() -> String {
    "STANDARD".to_string()
}

/// `CollectionResponsePropertyGroupNoPaging`: answer of `GET /crm/v3/properties/{o}/groups`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CollectionResponsePropertyGroup {
    pub results: Vec<PropertyGroup>,
}

/// `PropertyGroup` (FACTS 2.7).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PropertyGroup {
    pub name: String,
    pub label: String,
    pub display_order: Option<i64>,
    pub archived: bool,
}

/// `PropertyGroupCreate`: body of `POST /crm/v3/properties/{o}/groups`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyGroupCreate<'a> {
    pub name: &'a str,
    pub label: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_order: Option<i64>,
}

/// `PropertyGroupUpdate`: body of `PATCH …/groups/{groupName}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyGroupUpdate<'a> {
    pub label: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_order: Option<i64>,
}

/// `OptionInput` of a property create or update.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OptionInput<'a> {
    pub label: &'a str,
    pub value: &'a str,
    pub display_order: i64,
    pub hidden: bool,
}

/// `PropertyCreate` with every field a schema document sets (the id property uses the
/// smaller [`PropertyCreate`]).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyDefinitionCreate<'a> {
    pub name: &'a str,
    pub label: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub field_type: &'a str,
    pub group_name: &'a str,
    pub description: &'a str,
    pub has_unique_value: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<OptionInput<'a>>,
}

/// `PropertyUpdate`: body of `PATCH /crm/v3/properties/{o}/{name}` (uniqueness cannot change).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyUpdate<'a> {
    pub label: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub field_type: &'a str,
    pub group_name: &'a str,
    pub description: &'a str,
    pub options: Vec<OptionInput<'a>>,
}

/// `PipelineStageInput`: a stage in a pipeline create, or the body of a stage create/update.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineStageInput<'a> {
    pub label: &'a str,
    pub display_order: i64,
    pub metadata: &'a BTreeMap<String, String>,
}

/// `PipelineInput`: body of `POST /crm/v3/pipelines/{o}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineInput<'a> {
    pub label: &'a str,
    pub display_order: i64,
    pub stages: Vec<PipelineStageInput<'a>>,
}

/// `PipelinePatchInput`: body of `PATCH /crm/v3/pipelines/{o}/{pipelineId}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelinePatchInput<'a> {
    pub label: &'a str,
    pub display_order: i64,
}
