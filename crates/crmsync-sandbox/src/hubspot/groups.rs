//! `/crm/v3/properties/{objectType}/groups`: list, read, create, update and archive property
//! groups (FACTS 2.7). Groups are stored per object type; a new portal has HubSpot's default
//! groups (`contactinformation`, `companyinformation`, …).
//!
//! Invariant: a group that live properties still name is never removed (see
//! [`Store::remove_group`](super::store::Store::remove_group)).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::JsonBody;
use super::objects::object_type;
use super::schema::PropertyGroup;
use super::state::AppState;
use super::store::catalog::{already_exists, group_not_found};

/// `PropertyGroupCreate`.
#[derive(Debug, Deserialize)]
struct GroupCreate {
    #[serde(default)]
    name: String,
    #[serde(default)]
    label: String,
    #[serde(rename = "displayOrder", default)]
    display_order: Option<i64>,
}

/// `PropertyGroupUpdate`: provided fields are overwritten.
#[derive(Debug, Deserialize)]
struct GroupUpdate {
    #[serde(default)]
    label: Option<String>,
    #[serde(rename = "displayOrder", default)]
    display_order: Option<i64>,
}

/// Group names follow the property-name rule: lowercase letters, digits and `_`.
fn valid_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

async fn list(
    State(state): State<AppState>,
    Path(segment): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let object = object_type(&segment)?;
    let store = state.store();
    let mut groups: Vec<&PropertyGroup> = store.groups(object).values().collect();
    // Display order first; HubSpot puts -1 ("after the others") last.
    groups.sort_by_key(|g| (g.display_order < 0, g.display_order, g.name.clone()));
    let results: Vec<Value> = groups.into_iter().map(PropertyGroup::to_json).collect();
    Ok(axum::Json(json!({ "results": results })))
}

async fn get_one(
    State(state): State<AppState>,
    Path((segment, name)): Path<(String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    let object = object_type(&segment)?;
    let store = state.store();
    store
        .groups(object)
        .get(&name)
        .map(|g| axum::Json(g.to_json()))
        .ok_or_else(|| group_not_found(object, &name))
}

/// `POST …/groups` → 201; an existing name → 409 `OBJECT_ALREADY_EXISTS`.
async fn create(
    State(state): State<AppState>,
    Path(segment): Path<String>,
    JsonBody(input): JsonBody<GroupCreate>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let object = object_type(&segment)?;
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
    if !problems.is_empty() {
        return Err(ApiError::validation(format!(
            "Invalid property group: {}",
            problems.join("; ")
        )));
    }
    let mut store = state.store();
    if store.groups(object).contains_key(&input.name) {
        return Err(already_exists(format!(
            "A property group named '{}' already exists for object type {}.",
            input.name,
            object.type_id()
        )));
    }
    let group = PropertyGroup {
        name: input.name,
        label: input.label,
        display_order: input.display_order.unwrap_or(-1),
    };
    let body = group.to_json();
    store.put_group(object, group);
    Ok((StatusCode::CREATED, axum::Json(body)))
}

/// `PATCH …/groups/{groupName}` → 200.
async fn update(
    State(state): State<AppState>,
    Path((segment, name)): Path<(String, String)>,
    JsonBody(input): JsonBody<GroupUpdate>,
) -> Result<axum::Json<Value>, ApiError> {
    let object = object_type(&segment)?;
    let mut store = state.store();
    let mut group = store
        .groups(object)
        .get(&name)
        .cloned()
        .ok_or_else(|| group_not_found(object, &name))?;
    if let Some(label) = input.label {
        if label.trim().is_empty() {
            return Err(ApiError::validation("label cannot be empty"));
        }
        group.label = label;
    }
    if let Some(order) = input.display_order {
        group.display_order = order;
    }
    let body = group.to_json();
    store.put_group(object, group);
    Ok(axum::Json(body))
}

/// `DELETE …/groups/{groupName}` → 204; 400 while properties still belong to it.
async fn archive(
    State(state): State<AppState>,
    Path((segment, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let object = object_type(&segment)?;
    state.store().remove_group(object, &name)?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/crm/v3/properties/{object_type}/groups",
            get(list).post(create),
        )
        .route(
            "/crm/v3/properties/{object_type}/groups/{group}",
            get(get_one).patch(update).delete(archive),
        )
}
