//! `/crm/v3/properties/{objectType}`: list, read, create, update and archive property
//! definitions, one at a time or in batches (FACTS 2.7). Groups are in
//! [`groups`](super::groups).
//!
//! Invariants: a created or updated property names an existing group and has unique option
//! values; `hasUniqueValue` never changes after creation; HubSpot-defined definitions are
//! read-only. A custom property created with `hasUniqueValue: true` is usable as
//! `idProperty` at once.

use std::collections::HashSet;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::batch::envelope;
use super::error::ApiError;
use super::extract::{JsonBody, Params};
use super::object_type::ObjectType;
use super::objects::object_type;
use super::schema::{PropertyDef, PropertyOption};
use super::state::AppState;
use super::store::Store;
use super::store::catalog::property_not_found;

/// HubSpot allows at most 10 unique properties per object (FACTS 2.7).
const MAX_UNIQUE: usize = 10;

pub(crate) const TYPES: &[&str] = &[
    "string",
    "number",
    "date",
    "datetime",
    "enumeration",
    "bool",
    "phone_number",
];
pub(crate) const FIELD_TYPES: &[&str] = &[
    "text",
    "textarea",
    "html",
    "phonenumber",
    "number",
    "date",
    "select",
    "radio",
    "checkbox",
    "booleancheckbox",
    "calculation_equation",
    "file",
];

/// `OptionInput`.
#[derive(Debug, Deserialize)]
struct OptionInput {
    #[serde(default)]
    label: String,
    #[serde(default)]
    value: String,
    #[serde(rename = "displayOrder", default)]
    display_order: Option<i64>,
    #[serde(default)]
    hidden: bool,
    #[serde(default)]
    description: Option<String>,
}

/// `PropertyCreate`.
#[derive(Debug, Deserialize)]
struct PropertyCreate {
    #[serde(default)]
    name: String,
    #[serde(default)]
    label: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(rename = "fieldType", default)]
    field_type: String,
    #[serde(rename = "groupName", default)]
    group_name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    options: Vec<OptionInput>,
    #[serde(rename = "displayOrder", default)]
    display_order: Option<i64>,
    #[serde(rename = "hasUniqueValue", default)]
    has_unique_value: bool,
    #[serde(default)]
    hidden: bool,
    #[serde(rename = "formField", default)]
    form_field: Option<bool>,
}

/// `PropertyUpdate`: provided fields are overwritten. `hasUniqueValue` is not part of it;
/// it is read only to refuse a change HubSpot does not allow.
#[derive(Debug, Deserialize)]
struct PropertyUpdate {
    #[serde(default)]
    label: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(rename = "fieldType", default)]
    field_type: Option<String>,
    #[serde(rename = "groupName", default)]
    group_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    options: Option<Vec<OptionInput>>,
    #[serde(rename = "displayOrder", default)]
    display_order: Option<i64>,
    #[serde(default)]
    hidden: Option<bool>,
    #[serde(rename = "formField", default)]
    form_field: Option<bool>,
    #[serde(rename = "hasUniqueValue", default)]
    has_unique_value: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct Batch<T> {
    inputs: Vec<T>,
}

/// `PropertyName`.
#[derive(Debug, Deserialize)]
struct NameInput {
    name: String,
}

/// `BatchReadInputPropertyName`.
#[derive(Debug, Deserialize)]
struct BatchRead {
    inputs: Vec<NameInput>,
    #[serde(default)]
    archived: bool,
}

fn valid_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Checks options: labels present, values present and unique.
fn option_problems(options: &[OptionInput], problems: &mut Vec<String>) {
    let mut seen = HashSet::new();
    for option in options {
        if option.value.is_empty() {
            problems.push(format!("option {:?} has no value", option.label));
        } else if !seen.insert(option.value.as_str()) {
            problems.push(format!(
                "option values must be unique, {:?} appears more than once",
                option.value
            ));
        }
        if option.label.trim().is_empty() {
            problems.push(format!("option {:?} has no label", option.value));
        }
    }
}

/// Checks a type / field type / options combination, wherever it comes from.
fn shape_problems(
    kind: &str,
    field_type: &str,
    options: &[OptionInput],
    options_given: bool,
    problems: &mut Vec<String>,
) {
    if !TYPES.contains(&kind) {
        problems.push(format!("type must be one of {TYPES:?}, got {kind:?}"));
    }
    if !FIELD_TYPES.contains(&field_type) {
        problems.push(format!(
            "fieldType must be one of {FIELD_TYPES:?}, got {field_type:?}"
        ));
    }
    if kind == "enumeration" && options_given && options.is_empty() {
        problems.push("options are required for enumeration properties".to_owned());
    }
    option_problems(options, problems);
}

fn group_problem(store: &Store, object: ObjectType, group: &str, problems: &mut Vec<String>) {
    if group.trim().is_empty() {
        problems.push("groupName is required".to_owned());
    } else if !store.groups(object).contains_key(group) {
        problems.push(format!(
            "groupName {group:?} is not a property group of {}; create it with POST /crm/v3/properties/{}/groups",
            object.name(),
            object.name()
        ));
    }
}

fn invalid_definition(problems: &[String]) -> ApiError {
    ApiError::validation(format!(
        "Invalid property definition: {}",
        problems.join("; ")
    ))
}

fn to_options(inputs: Vec<OptionInput>) -> Vec<PropertyOption> {
    inputs
        .into_iter()
        .zip(0..)
        .map(|(o, order)| PropertyOption {
            label: o.label,
            value: o.value,
            display_order: o.display_order.unwrap_or(order),
            hidden: o.hidden,
            description: o.description.unwrap_or_default(),
        })
        .collect()
}

/// Validates and stores one new property; used by the single and the batch create.
fn create_one(
    store: &mut Store,
    object: ObjectType,
    input: PropertyCreate,
) -> Result<Value, ApiError> {
    let mut problems = Vec::new();
    if !valid_name(&input.name) {
        problems.push(format!(
            "name must start with a lowercase letter and contain only a-z, 0-9 and _, got {:?}",
            input.name
        ));
    }
    if input.label.trim().is_empty() {
        problems.push("label is required".to_owned());
    }
    shape_problems(
        &input.kind,
        &input.field_type,
        &input.options,
        true,
        &mut problems,
    );
    group_problem(store, object, &input.group_name, &mut problems);
    if !problems.is_empty() {
        return Err(invalid_definition(&problems));
    }
    if input.has_unique_value
        && store
            .schema(object)
            .values()
            .filter(|d| d.has_unique_value && d.name != "hs_object_id")
            .count()
            >= MAX_UNIQUE
    {
        return Err(ApiError::validation(format!(
            "{} already has {MAX_UNIQUE} unique properties, the maximum",
            object.name()
        )));
    }
    let now = store.now();
    let def = PropertyDef {
        name: input.name,
        label: input.label,
        kind: input.kind,
        field_type: input.field_type,
        group_name: input.group_name,
        description: input.description.unwrap_or_default(),
        options: to_options(input.options),
        display_order: input.display_order.unwrap_or(-1),
        has_unique_value: input.has_unique_value,
        hubspot_defined: false,
        read_only_value: false,
        created_at: now,
        updated_at: now,
        hidden: input.hidden,
        form_field: input.form_field,
        archived_at: None,
    };
    let body = def.to_json();
    store.add_property(object, def)?;
    Ok(body)
}

/// `GET /crm/v3/properties/{objectType}`; `archived=true` lists only archived properties.
async fn list(
    State(state): State<AppState>,
    Path(segment): Path<String>,
    params: Params,
) -> Result<axum::Json<Value>, ApiError> {
    let object = object_type(&segment)?;
    let store = state.store();
    let defs = if params.flag("archived") {
        store.archived_properties(object)
    } else {
        store.schema(object)
    };
    let results: Vec<Value> = defs.values().map(PropertyDef::to_json).collect();
    Ok(axum::Json(json!({ "results": results })))
}

/// The property `name`, looking among archived ones only when `archived` is set.
fn find<'a>(
    store: &'a Store,
    object: ObjectType,
    name: &str,
    archived: bool,
) -> Result<&'a PropertyDef, ApiError> {
    let defs = if archived {
        store.archived_properties(object)
    } else {
        store.schema(object)
    };
    defs.get(name)
        .ok_or_else(|| property_not_found(object, name))
}

async fn get_one(
    State(state): State<AppState>,
    Path((segment, name)): Path<(String, String)>,
    params: Params,
) -> Result<axum::Json<Value>, ApiError> {
    let object = object_type(&segment)?;
    let store = state.store();
    let def = find(&store, object, &name, params.flag("archived"))?;
    Ok(axum::Json(def.to_json()))
}

/// `POST /crm/v3/properties/{objectType}` → 201; existing name → 409 `OBJECT_ALREADY_EXISTS`.
async fn create(
    State(state): State<AppState>,
    Path(segment): Path<String>,
    JsonBody(input): JsonBody<PropertyCreate>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let object = object_type(&segment)?;
    let mut store = state.store();
    let body = create_one(&mut store, object, input)?;
    Ok((StatusCode::CREATED, axum::Json(body)))
}

/// `PATCH /crm/v3/properties/{objectType}/{name}` → 200 with the new definition.
async fn update(
    State(state): State<AppState>,
    Path((segment, name)): Path<(String, String)>,
    JsonBody(input): JsonBody<PropertyUpdate>,
) -> Result<axum::Json<Value>, ApiError> {
    let object = object_type(&segment)?;
    let mut store = state.store();
    let mut def = find(&store, object, &name, false)?.clone();
    if def.hubspot_defined {
        return Err(ApiError::validation(format!(
            "{name} is a HubSpot-defined property of {}; its definition is read-only",
            object.name()
        )));
    }
    let mut problems = Vec::new();
    if let Some(unique) = input.has_unique_value
        && unique != def.has_unique_value
    {
        problems.push(format!(
            "hasUniqueValue cannot be changed after a property is created ({name} has {})",
            def.has_unique_value
        ));
    }
    if let Some(label) = &input.label
        && label.trim().is_empty()
    {
        problems.push("label cannot be empty".to_owned());
    }
    if let Some(group) = &input.group_name {
        group_problem(&store, object, group, &mut problems);
    }
    let kind = input.kind.clone().unwrap_or_else(|| def.kind.clone());
    let field_type = input
        .field_type
        .clone()
        .unwrap_or_else(|| def.field_type.clone());
    let options_given = input.options.is_some();
    let options = input.options.unwrap_or_default();
    shape_problems(&kind, &field_type, &options, options_given, &mut problems);
    if kind == "enumeration" && !options_given && def.options.is_empty() {
        problems.push("options are required for enumeration properties".to_owned());
    }
    if !problems.is_empty() {
        return Err(invalid_definition(&problems));
    }
    def.kind = kind;
    def.field_type = field_type;
    if options_given {
        def.options = to_options(options);
    }
    if let Some(label) = input.label {
        def.label = label;
    }
    if let Some(group) = input.group_name {
        def.group_name = group;
    }
    if let Some(description) = input.description {
        def.description = description;
    }
    if let Some(order) = input.display_order {
        def.display_order = order;
    }
    if let Some(hidden) = input.hidden {
        def.hidden = hidden;
    }
    if input.form_field.is_some() {
        def.form_field = input.form_field;
    }
    def.updated_at = store.now();
    let body = def.to_json();
    store.replace_property(object, def);
    Ok(axum::Json(body))
}

/// `DELETE /crm/v3/properties/{objectType}/{name}` → 204 (archives).
async fn archive(
    State(state): State<AppState>,
    Path((segment, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let object = object_type(&segment)?;
    state.store().archive_property(object, &name)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST …/batch/create` → 201, or 207 with the inputs that failed (each fails alone).
async fn batch_create(
    State(state): State<AppState>,
    Path(segment): Path<String>,
    JsonBody(batch): JsonBody<Batch<PropertyCreate>>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let started = Utc::now();
    let object = object_type(&segment)?;
    let mut store = state.store();
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for input in batch.inputs {
        let name = input.name.clone();
        match create_one(&mut store, object, input) {
            Ok(body) => results.push(body),
            Err(error) => errors.push(
                error
                    .with_context(json!({ "name": [name] }))
                    .standard_error(),
            ),
        }
    }
    Ok(envelope(StatusCode::CREATED, started, results, errors))
}

/// `POST …/batch/read` → 200, or 207 naming the properties not found.
async fn batch_read(
    State(state): State<AppState>,
    Path(segment): Path<String>,
    JsonBody(batch): JsonBody<BatchRead>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let started = Utc::now();
    let object = object_type(&segment)?;
    let store = state.store();
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for input in &batch.inputs {
        match find(&store, object, &input.name, batch.archived) {
            Ok(def) => results.push(def.to_json()),
            Err(error) => errors.push(
                error
                    .with_context(json!({ "name": [input.name] }))
                    .standard_error(),
            ),
        }
    }
    Ok(envelope(StatusCode::OK, started, results, errors))
}

/// `POST …/batch/archive` → 204 whatever the state of each name (FACTS 2.7): unknown,
/// already archived and HubSpot-defined names are skipped.
async fn batch_archive(
    State(state): State<AppState>,
    Path(segment): Path<String>,
    JsonBody(batch): JsonBody<Batch<NameInput>>,
) -> Result<StatusCode, ApiError> {
    let object = object_type(&segment)?;
    let mut store = state.store();
    for input in &batch.inputs {
        // Every refusal is one of the states the endpoint ignores.
        let _ = store.archive_property(object, &input.name);
    }
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/crm/v3/properties/{object_type}", get(list).post(create))
        .route(
            "/crm/v3/properties/{object_type}/batch/create",
            post(batch_create),
        )
        .route(
            "/crm/v3/properties/{object_type}/batch/read",
            post(batch_read),
        )
        .route(
            "/crm/v3/properties/{object_type}/batch/archive",
            post(batch_archive),
        )
        .route(
            "/crm/v3/properties/{object_type}/{name}",
            get(get_one).patch(update).delete(archive),
        )
}
