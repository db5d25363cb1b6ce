//! `/crm/v3/properties/{objectType}`: list, read and create property definitions, and list
//! property groups (FACTS 2.7). A custom property created with `hasUniqueValue: true` becomes
//! usable as `idProperty` at once.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::{JsonBody, Params};
use super::objects::object_type;
use super::schema::{self, PropertyDef, PropertyOption};
use super::state::AppState;

/// HubSpot allows at most 10 unique properties per object (FACTS 2.7).
const MAX_UNIQUE: usize = 10;

const TYPES: &[&str] = &[
    "string",
    "number",
    "date",
    "datetime",
    "enumeration",
    "bool",
    "phone_number",
];
const FIELD_TYPES: &[&str] = &[
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

#[derive(Debug, Deserialize)]
struct OptionInput {
    label: String,
    value: String,
    #[serde(rename = "displayOrder", default)]
    display_order: Option<i64>,
    #[serde(default)]
    hidden: bool,
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
}

/// Collects every problem of a create request, not just the first.
fn problems(input: &PropertyCreate) -> Vec<String> {
    let mut problems = Vec::new();
    let name_ok = input
        .name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase())
        && input
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !name_ok {
        problems.push(format!(
            "name must start with a lowercase letter and contain only a-z, 0-9 and _, got {:?}",
            input.name
        ));
    }
    if input.label.trim().is_empty() {
        problems.push("label is required".to_owned());
    }
    if !TYPES.contains(&input.kind.as_str()) {
        problems.push(format!(
            "type must be one of {TYPES:?}, got {:?}",
            input.kind
        ));
    }
    if !FIELD_TYPES.contains(&input.field_type.as_str()) {
        problems.push(format!(
            "fieldType must be one of {FIELD_TYPES:?}, got {:?}",
            input.field_type
        ));
    }
    if input.group_name.trim().is_empty() {
        problems.push("groupName is required".to_owned());
    }
    if input.kind == "enumeration" && input.options.is_empty() {
        problems.push("options are required for enumeration properties".to_owned());
    }
    problems
}

async fn list(
    State(state): State<AppState>,
    Path(segment): Path<String>,
    params: Params,
) -> Result<axum::Json<Value>, ApiError> {
    let object = object_type(&segment)?;
    // No property is ever archived in the sandbox.
    if params.flag("archived") {
        return Ok(axum::Json(json!({ "results": [] })));
    }
    let store = state.store();
    let results: Vec<Value> = store
        .schema(object)
        .values()
        .map(PropertyDef::to_json)
        .collect();
    Ok(axum::Json(json!({ "results": results })))
}

async fn get_one(
    State(state): State<AppState>,
    Path((segment, name)): Path<(String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    let object = object_type(&segment)?;
    let store = state.store();
    store
        .schema(object)
        .get(&name)
        .map(|def| axum::Json(def.to_json()))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Unable to find property {name} for object type {}",
                object.type_id()
            ))
        })
}

/// `POST /crm/v3/properties/{objectType}` → 201; existing name → 409 `OBJECT_ALREADY_EXISTS`.
async fn create(
    State(state): State<AppState>,
    Path(segment): Path<String>,
    JsonBody(input): JsonBody<PropertyCreate>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let object = object_type(&segment)?;
    let problems = problems(&input);
    if !problems.is_empty() {
        return Err(ApiError::validation(format!(
            "Invalid property definition: {}",
            problems.join("; ")
        )));
    }
    let mut store = state.store();
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
    let display_order = input.display_order.unwrap_or(-1);
    let def = PropertyDef {
        name: input.name,
        label: input.label,
        kind: input.kind,
        field_type: input.field_type,
        group_name: input.group_name,
        description: input.description.unwrap_or_default(),
        options: input
            .options
            .into_iter()
            .zip(0..)
            .map(|(o, order)| PropertyOption {
                label: o.label,
                value: o.value,
                display_order: o.display_order.unwrap_or(order),
                hidden: o.hidden,
            })
            .collect(),
        display_order,
        has_unique_value: input.has_unique_value,
        hubspot_defined: false,
        read_only_value: false,
        created_at: now,
        updated_at: now,
    };
    let body = def.to_json();
    store.add_property(object, def)?;
    Ok((StatusCode::CREATED, axum::Json(body)))
}

fn group_json(name: &str, label: &str, order: usize) -> Value {
    json!({ "name": name, "label": label, "displayOrder": order, "archived": false })
}

async fn groups(Path(segment): Path<String>) -> Result<axum::Json<Value>, ApiError> {
    let object = object_type(&segment)?;
    let results: Vec<Value> = schema::groups(object)
        .iter()
        .enumerate()
        .map(|(order, (name, label))| group_json(name, label, order))
        .collect();
    Ok(axum::Json(json!({ "results": results })))
}

async fn group_one(
    Path((segment, group)): Path<(String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    let object = object_type(&segment)?;
    schema::groups(object)
        .iter()
        .enumerate()
        .find(|(_, (name, _))| *name == group)
        .map(|(order, (name, label))| axum::Json(group_json(name, label, order)))
        .ok_or_else(|| ApiError::not_found(format!("Unable to find property group {group}")))
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/crm/v3/properties/{object_type}", get(list).post(create))
        .route("/crm/v3/properties/{object_type}/groups", get(groups))
        .route(
            "/crm/v3/properties/{object_type}/groups/{group}",
            get(group_one),
        )
        .route("/crm/v3/properties/{object_type}/{name}", get(get_one))
}
