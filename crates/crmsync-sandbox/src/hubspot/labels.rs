//! `/crm/v4/associations/{fromType}/{toType}/labels`: the association labels between two
//! object types (FACTS 2.6). HUBSPOT_DEFINED types are listed beside the portal's
//! USER_DEFINED labels; only the latter can be created, renamed and deleted.
//!
//! Invariant: a label always has two type ids, one per direction, so the symmetric graph in
//! [`links`](super::links) can carry it both ways; without an `inverseLabel` both directions
//! show the same label.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::JsonBody;
use super::links;
use super::objects::object_type;
use super::state::AppState;

/// `PublicAssociationDefinitionCreateRequest`.
#[derive(Debug, Deserialize)]
struct LabelCreate {
    #[serde(default)]
    label: String,
    #[serde(default)]
    name: String,
    #[serde(rename = "inverseLabel", default)]
    inverse_label: Option<String>,
}

/// `PublicAssociationDefinitionUpdateRequest`.
#[derive(Debug, Deserialize)]
struct LabelUpdate {
    #[serde(rename = "associationTypeId")]
    type_id: u32,
    #[serde(default)]
    label: String,
    #[serde(rename = "inverseLabel", default)]
    inverse_label: Option<String>,
}

fn spec(category: &str, type_id: u32, label: Option<&str>) -> Value {
    json!({ "category": category, "typeId": type_id, "label": label })
}

/// `GET …/labels` → 200 `{results:[{category, typeId, label}]}`.
async fn list(
    State(state): State<AppState>,
    Path((from_seg, to_seg)): Path<(String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    let (from, to) = (object_type(&from_seg)?, object_type(&to_seg)?);
    let store = state.store();
    let mut results: Vec<Value> = links::TYPES
        .iter()
        .filter(|t| t.from == from && t.to == to)
        .map(|t| spec("HUBSPOT_DEFINED", t.id, t.label))
        .collect();
    for defined in store.labels() {
        for id in [defined.type_id, defined.inverse_id] {
            if let Some((label, _)) = defined.seen(from, to, id) {
                results.push(spec("USER_DEFINED", id, Some(label)));
            }
        }
    }
    Ok(axum::Json(json!({ "results": results })))
}

/// `POST …/labels` → 200 with the new type id, and its inverse when `inverseLabel` is set.
async fn create(
    State(state): State<AppState>,
    Path((from_seg, to_seg)): Path<(String, String)>,
    JsonBody(input): JsonBody<LabelCreate>,
) -> Result<axum::Json<Value>, ApiError> {
    let (from, to) = (object_type(&from_seg)?, object_type(&to_seg)?);
    let mut problems = Vec::new();
    if input.label.trim().is_empty() {
        problems.push("label is required");
    }
    if input.name.trim().is_empty() {
        problems.push("name is required");
    }
    if input
        .inverse_label
        .as_deref()
        .is_some_and(|l| l.trim().is_empty())
    {
        problems.push("inverseLabel cannot be empty");
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(format!(
            "Invalid association label: {}",
            problems.join("; ")
        )));
    }
    let paired = input.inverse_label.is_some();
    let defined =
        state
            .store()
            .add_label(from, to, input.name, input.label, input.inverse_label)?;
    let mut results = vec![spec("USER_DEFINED", defined.type_id, Some(&defined.label))];
    if paired {
        results.push(spec(
            "USER_DEFINED",
            defined.inverse_id,
            defined.inverse_label.as_deref(),
        ));
    }
    Ok(axum::Json(json!({ "results": results })))
}

/// `PUT …/labels` `{associationTypeId, label, inverseLabel?}` → 204.
async fn update(
    State(state): State<AppState>,
    Path((from_seg, to_seg)): Path<(String, String)>,
    JsonBody(input): JsonBody<LabelUpdate>,
) -> Result<StatusCode, ApiError> {
    let (from, to) = (object_type(&from_seg)?, object_type(&to_seg)?);
    if input.label.trim().is_empty() {
        return Err(ApiError::validation(
            "Invalid association label: label is required",
        ));
    }
    state
        .store()
        .update_label(from, to, input.type_id, input.label, input.inverse_label)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE …/labels/{associationTypeId}` → 204; the label leaves every association.
async fn remove(
    State(state): State<AppState>,
    Path((from_seg, to_seg, type_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let (from, to) = (object_type(&from_seg)?, object_type(&to_seg)?);
    let type_id = type_id.parse::<u32>().map_err(|_| {
        ApiError::validation(format!("associationTypeId must be a number, got {type_id}"))
    })?;
    state.store().remove_label(from, to, type_id)?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/crm/v4/associations/{from}/{to}/labels",
            get(list).post(create).put(update),
        )
        .route(
            "/crm/v4/associations/{from}/{to}/labels/{type_id}",
            delete(remove),
        )
}
