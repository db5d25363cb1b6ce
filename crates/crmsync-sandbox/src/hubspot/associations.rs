//! Associations v4 (FACTS 2.6): single and batch create (labeled and default), list, batch
//! read and archive. The graph itself lives in [`links`](super::links) and is symmetric, so
//! every write is visible from both ends.

use std::collections::BTreeSet;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::{IdValue, JsonBody, Params};
use super::links::{self, AssociationType};
use super::object_type::ObjectType;
use super::objects::{AssociationSpec, IdRef, association_kind, object_type};
use super::record::iso;
use super::state::AppState;
use super::store::Store;

/// Page size limit of the list endpoint (FACTS 2.6).
const MAX_PAGE: usize = 500;
/// Batch size limit of the v4 batch endpoints.
const MAX_INPUTS: usize = 1000;

#[derive(Debug, Deserialize)]
struct Batch<T> {
    inputs: Vec<T>,
}

#[derive(Debug, Deserialize)]
struct PairInput {
    from: IdRef,
    to: IdRef,
    #[serde(default)]
    types: Vec<AssociationSpec>,
}

#[derive(Debug, Deserialize)]
struct ReadInput {
    id: IdValue,
    #[serde(default)]
    after: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ArchiveInput {
    from: IdRef,
    #[serde(default)]
    to: Vec<IdRef>,
}

fn types_json(
    store: &Store,
    from: ObjectType,
    to: ObjectType,
    types: &BTreeSet<u32>,
) -> Vec<Value> {
    types
        .iter()
        .filter_map(|&id| {
            store.type_label(from, to, id).map(
                |(category, label)| json!({"category": category, "typeId": id, "label": label}),
            )
        })
        .collect()
}

/// A live record id or a 404 naming it.
fn live_id(store: &Store, object: ObjectType, id: &str) -> Result<u64, ApiError> {
    store
        .resolve(object, id, None)?
        .filter(|&rid| store.live(object, rid).is_some())
        .ok_or_else(|| ApiError::not_found(format!("No {} with id {id} exists", object.singular())))
}

fn check_size(count: usize) -> Result<(), ApiError> {
    if count > MAX_INPUTS {
        return Err(ApiError::validation(format!(
            "Too many inputs: {count}. A batch accepts at most {MAX_INPUTS} inputs."
        )));
    }
    Ok(())
}

/// `LabelsBetweenObjectPair` after a labeled create.
fn labels_between(store: &Store, from: (ObjectType, u64), to: (ObjectType, u64)) -> Value {
    let types = store
        .links
        .targets(from, to.0)
        .into_iter()
        .find(|(node, _)| *node == to)
        .map(|(_, types)| types)
        .unwrap_or_default();
    let labels: Vec<String> = types
        .iter()
        .filter_map(|&id| store.type_label(from.0, to.0, id))
        .filter_map(|(_, label)| label)
        .collect();
    json!({
        "fromObjectTypeId": from.0.type_id(),
        "fromObjectId": from.1,
        "toObjectTypeId": to.0.type_id(),
        "toObjectId": to.1,
        "labels": labels,
    })
}

fn default_kind(from: ObjectType, to: ObjectType) -> Result<&'static AssociationType, ApiError> {
    links::default_type(from, to).ok_or_else(|| {
        ApiError::validation(format!(
            "No default association type exists from {} to {}",
            from.name(),
            to.name()
        ))
    })
}

fn default_result(from: u64, to: u64, kind: &AssociationType) -> Value {
    json!({
        "from": {"id": from.to_string()},
        "to": {"id": to.to_string()},
        "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": kind.id},
    })
}

/// `PUT /crm/v4/objects/{from}/{id}/associations/{to}/{toId}` with `[spec]` → 201.
async fn create_labeled(
    State(state): State<AppState>,
    Path((from_seg, from_id, to_seg, to_id)): Path<(String, String, String, String)>,
    JsonBody(specs): JsonBody<Vec<AssociationSpec>>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let (from, to) = (object_type(&from_seg)?, object_type(&to_seg)?);
    let mut store = state.store();
    let from_node = (from, live_id(&store, from, &from_id)?);
    let to_node = (to, live_id(&store, to, &to_id)?);
    let kinds = specs
        .iter()
        .map(|spec| association_kind(&store, from, Some(to), spec))
        .collect::<Result<Vec<_>, _>>()?;
    if kinds.is_empty() {
        return Err(ApiError::validation(
            "at least one association type is required",
        ));
    }
    for kind in &kinds {
        store.associate(from_node, to_node, kind);
    }
    Ok((
        StatusCode::CREATED,
        axum::Json(labels_between(&store, from_node, to_node)),
    ))
}

/// `PUT /crm/v4/objects/{from}/{id}/associations/default/{to}/{toId}` → 200.
async fn create_default(
    State(state): State<AppState>,
    Path((from_seg, from_id, to_seg, to_id)): Path<(String, String, String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    let started = Utc::now();
    let (from, to) = (object_type(&from_seg)?, object_type(&to_seg)?);
    let mut store = state.store();
    let from_node = (from, live_id(&store, from, &from_id)?);
    let to_node = (to, live_id(&store, to, &to_id)?);
    let kind = default_kind(from, to)?;
    store.associate(from_node, to_node, kind);
    // HubSpot reports both directions of the default association.
    let results = match default_kind(to, from) {
        Ok(inverse) => vec![
            default_result(from_node.1, to_node.1, kind),
            default_result(to_node.1, from_node.1, inverse),
        ],
        Err(_) => vec![default_result(from_node.1, to_node.1, kind)],
    };
    Ok(axum::Json(json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": iso(started),
        "completedAt": iso(Utc::now()),
    })))
}

/// `GET /crm/v4/objects/{from}/{id}/associations/{to}` → paged by target id.
async fn list(
    State(state): State<AppState>,
    Path((from_seg, from_id, to_seg)): Path<(String, String, String)>,
    params: Params,
) -> Result<axum::Json<Value>, ApiError> {
    let (from, to) = (object_type(&from_seg)?, object_type(&to_seg)?);
    let limit = params.limit(MAX_PAGE, MAX_PAGE)?;
    let after = match params.get("after") {
        None | Some("") => 0,
        Some(raw) => raw
            .parse::<u64>()
            .map_err(|_| ApiError::validation(format!("invalid after cursor {raw}")))?,
    };
    let store = state.store();
    let from_node = (from, live_id(&store, from, &from_id)?);
    Ok(axum::Json(page(&store, from_node, to, after, limit)))
}

/// One page of associations of `from_node` to `to` starting at target id `after`.
fn page(
    store: &Store,
    from_node: (ObjectType, u64),
    to: ObjectType,
    after: u64,
    limit: usize,
) -> Value {
    let mut targets = store
        .links
        .targets(from_node, to)
        .into_iter()
        .filter(|((_, id), _)| *id >= after && store.live(to, *id).is_some());
    let results: Vec<Value> = targets
        .by_ref()
        .take(limit)
        .map(|((_, id), types)| {
            json!({"toObjectId": id, "associationTypes": types_json(store, from_node.0, to, &types)})
        })
        .collect();
    let mut body = json!({ "results": results });
    if let Some(((_, next), _)) = targets.next() {
        body["paging"] = json!({"next": {"after": next.to_string()}});
    }
    body
}

/// `DELETE /crm/v4/objects/{from}/{id}/associations/{to}/{toId}` → 204.
async fn remove(
    State(state): State<AppState>,
    Path((from_seg, from_id, to_seg, to_id)): Path<(String, String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let (from, to) = (object_type(&from_seg)?, object_type(&to_seg)?);
    let mut store = state.store();
    let from_node = (from, live_id(&store, from, &from_id)?);
    let to_node = (to, live_id(&store, to, &to_id)?);
    store.dissociate(from_node, to_node);
    Ok(StatusCode::NO_CONTENT)
}

fn envelope(
    success: StatusCode,
    started: chrono::DateTime<Utc>,
    results: Vec<Value>,
    errors: Vec<Value>,
) -> (StatusCode, axum::Json<Value>) {
    let mut body = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": iso(started),
        "completedAt": iso(Utc::now()),
    });
    if errors.is_empty() {
        return (success, axum::Json(body));
    }
    body["numErrors"] = json!(errors.len());
    body["errors"] = Value::Array(errors);
    (StatusCode::MULTI_STATUS, axum::Json(body))
}

/// `POST /crm/v4/associations/{from}/{to}/batch/create` → 201, 207 for missing records.
async fn batch_create(
    State(state): State<AppState>,
    Path((from_seg, to_seg)): Path<(String, String)>,
    JsonBody(batch): JsonBody<Batch<PairInput>>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let started = Utc::now();
    let (from, to) = (object_type(&from_seg)?, object_type(&to_seg)?);
    check_size(batch.inputs.len())?;
    let mut store = state.store();
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for input in &batch.inputs {
        let kinds = input
            .types
            .iter()
            .map(|spec| association_kind(&store, from, Some(to), spec))
            .collect::<Result<Vec<_>, _>>()?;
        let ends = live_id(&store, from, &input.from.id.text())
            .and_then(|f| Ok((f, live_id(&store, to, &input.to.id.text())?)));
        match ends {
            Ok((f, t)) => {
                let kinds = if kinds.is_empty() {
                    vec![*default_kind(from, to)?]
                } else {
                    kinds
                };
                for kind in &kinds {
                    store.associate((from, f), (to, t), kind);
                }
                results.push(labels_between(&store, (from, f), (to, t)));
            }
            Err(error) => errors.push(error.standard_error()),
        }
    }
    Ok(envelope(StatusCode::CREATED, started, results, errors))
}

/// `POST /crm/v4/associations/{from}/{to}/batch/associate/default` → 200.
async fn batch_default(
    State(state): State<AppState>,
    Path((from_seg, to_seg)): Path<(String, String)>,
    JsonBody(batch): JsonBody<Batch<PairInput>>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let started = Utc::now();
    let (from, to) = (object_type(&from_seg)?, object_type(&to_seg)?);
    check_size(batch.inputs.len())?;
    let kind = default_kind(from, to)?;
    let mut store = state.store();
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for input in &batch.inputs {
        let ends = live_id(&store, from, &input.from.id.text())
            .and_then(|f| Ok((f, live_id(&store, to, &input.to.id.text())?)));
        match ends {
            Ok((f, t)) => {
                store.associate((from, f), (to, t), kind);
                results.push(default_result(f, t, kind));
            }
            Err(error) => errors.push(error.standard_error()),
        }
    }
    Ok(envelope(StatusCode::OK, started, results, errors))
}

/// `POST /crm/v4/associations/{from}/{to}/batch/read` → 200, 207 for missing records.
async fn batch_read(
    State(state): State<AppState>,
    Path((from_seg, to_seg)): Path<(String, String)>,
    JsonBody(batch): JsonBody<Batch<ReadInput>>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let started = Utc::now();
    let (from, to) = (object_type(&from_seg)?, object_type(&to_seg)?);
    check_size(batch.inputs.len())?;
    let store = state.store();
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for input in &batch.inputs {
        let id = input.id.text();
        match live_id(&store, from, &id) {
            Ok(rid) => {
                let after = input
                    .after
                    .as_deref()
                    .and_then(|a| a.parse::<u64>().ok())
                    .unwrap_or(0);
                let mut page = page(&store, (from, rid), to, after, MAX_PAGE);
                let mut item = json!({"from": {"id": id}, "to": page["results"].take()});
                if let Some(paging) = page.get("paging") {
                    item["paging"] = paging.clone();
                }
                results.push(item);
            }
            Err(error) => errors.push(error.with_context(json!({"ids": [id]})).standard_error()),
        }
    }
    Ok(envelope(StatusCode::OK, started, results, errors))
}

/// `POST /crm/v4/associations/{from}/{to}/batch/archive` → 204.
async fn batch_archive(
    State(state): State<AppState>,
    Path((from_seg, to_seg)): Path<(String, String)>,
    JsonBody(batch): JsonBody<Batch<ArchiveInput>>,
) -> Result<StatusCode, ApiError> {
    let (from, to) = (object_type(&from_seg)?, object_type(&to_seg)?);
    check_size(batch.inputs.len())?;
    let mut store = state.store();
    for input in &batch.inputs {
        let Some(f) = store.resolve(from, &input.from.id.text(), None)? else {
            continue;
        };
        for target in &input.to {
            if let Some(t) = store.resolve(to, &target.id.text(), None)? {
                store.dissociate((from, f), (to, t));
            }
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /crm/v4/associations/{from}/{to}/batch/labels/archive` → 204; removing the
/// unlabeled type removes the whole association (FACTS 2.6).
async fn batch_archive_labels(
    State(state): State<AppState>,
    Path((from_seg, to_seg)): Path<(String, String)>,
    JsonBody(batch): JsonBody<Batch<PairInput>>,
) -> Result<StatusCode, ApiError> {
    let (from, to) = (object_type(&from_seg)?, object_type(&to_seg)?);
    check_size(batch.inputs.len())?;
    let mut store = state.store();
    for input in &batch.inputs {
        let kinds = input
            .types
            .iter()
            .map(|spec| association_kind(&store, from, Some(to), spec))
            .collect::<Result<Vec<_>, _>>()?;
        let f = store.resolve(from, &input.from.id.text(), None)?;
        let t = store.resolve(to, &input.to.id.text(), None)?;
        if let (Some(f), Some(t)) = (f, t) {
            store.remove_labels((from, f), (to, t), &kinds);
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/crm/v4/objects/{from}/{from_id}/associations/{to}",
            get(list),
        )
        .route(
            "/crm/v4/objects/{from}/{from_id}/associations/{to}/{to_id}",
            put(create_labeled).delete(remove),
        )
        .route(
            "/crm/v4/objects/{from}/{from_id}/associations/default/{to}/{to_id}",
            put(create_default),
        )
        .route(
            "/crm/v4/associations/{from}/{to}/batch/create",
            post(batch_create),
        )
        .route(
            "/crm/v4/associations/{from}/{to}/batch/associate/default",
            post(batch_default),
        )
        .route(
            "/crm/v4/associations/{from}/{to}/batch/read",
            post(batch_read),
        )
        .route(
            "/crm/v4/associations/{from}/{to}/batch/archive",
            post(batch_archive),
        )
        .route(
            "/crm/v4/associations/{from}/{to}/batch/labels/archive",
            post(batch_archive_labels),
        )
}
