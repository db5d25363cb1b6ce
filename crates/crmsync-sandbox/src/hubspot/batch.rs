//! `/crm/v3/objects/{objectType}/batch/{create|read|update|upsert|archive}` (FACTS 2.3).
//!
//! Failure granularity follows what HubSpot does in practice: an invalid value or a duplicate
//! unique value fails the whole request (400/409) before anything is written; missing ids
//! produce a 207 with an `OBJECT_NOT_FOUND` error listing them. At most 100 inputs.

use std::collections::HashSet;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::extract::{IdValue, JsonBody, Params};
use super::object_type::ObjectType;
use super::objects::{
    IdRef, InlineAssociation, object_type, resolve_inline, with_history, written_selection,
};
use super::record::iso;
use super::state::AppState;
use super::store::{Changes, Claims};

/// HubSpot's batch size limit (FACTS 2.3).
const MAX_INPUTS: usize = 100;

#[derive(Debug, Deserialize)]
struct Batch<T> {
    inputs: Vec<T>,
}

#[derive(Debug, Deserialize)]
struct CreateItem {
    #[serde(default)]
    properties: Map<String, Value>,
    #[serde(default)]
    associations: Vec<InlineAssociation>,
    #[serde(rename = "objectWriteTraceId", default)]
    trace_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ReadRequest {
    inputs: Vec<IdRef>,
    #[serde(default)]
    properties: Vec<String>,
    #[serde(rename = "propertiesWithHistory", default)]
    properties_with_history: Vec<String>,
    #[serde(rename = "idProperty", default)]
    id_property: Option<String>,
}

#[derive(Debug, Deserialize)]
struct UpdateItem {
    id: IdValue,
    #[serde(default)]
    properties: Map<String, Value>,
    #[serde(rename = "idProperty", default)]
    id_property: Option<String>,
    #[serde(rename = "objectWriteTraceId", default)]
    trace_id: Option<String>,
}

fn check_size(count: usize) -> Result<(), ApiError> {
    if count > MAX_INPUTS {
        return Err(ApiError::validation(format!(
            "Too many inputs: {count}. A batch accepts at most {MAX_INPUTS} inputs."
        ))
        .with_context(json!({ "maxInputs": [MAX_INPUTS.to_string()] })));
    }
    Ok(())
}

/// `BatchResponse…` envelope; with errors it becomes the `WithErrors` variant and 207.
pub(crate) fn envelope(
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

fn missing_error(object: ObjectType, ids: &[String]) -> Value {
    ApiError::not_found(format!(
        "Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.",
        object.singular().to_uppercase()
    ))
    .with_context(json!({ "ids": ids }))
    .standard_error()
}

fn reject_duplicate_ids(ids: &[String]) -> Result<(), ApiError> {
    let mut seen = HashSet::new();
    let duplicates: Vec<&String> = ids.iter().filter(|id| !seen.insert(id.as_str())).collect();
    if duplicates.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(format!(
            "Duplicate IDs found in batch input: {duplicates:?}. IDs must be unique"
        )))
    }
}

fn with_trace(mut record: Map<String, Value>, trace: Option<String>) -> Value {
    if let Some(trace) = trace {
        record.insert("objectWriteTraceId".to_owned(), Value::String(trace));
    }
    Value::Object(record)
}

/// `POST …/batch/create` → 201.
async fn create(
    State(state): State<AppState>,
    Path(segment): Path<String>,
    JsonBody(batch): JsonBody<Batch<CreateItem>>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let object = object_type(&segment)?;
    check_size(batch.inputs.len())?;
    let started = Utc::now();
    let mut store = state.store();
    let mut claims = Claims::new();
    let mut planned = Vec::with_capacity(batch.inputs.len());
    for item in batch.inputs {
        let changes = store.validate(object, &item.properties, None)?;
        store.check_unique(object, &changes, None, &mut claims)?;
        let targets = resolve_inline(&store, object, &item.associations)?;
        planned.push((changes, targets, item.trace_id));
    }
    let mut results = Vec::with_capacity(planned.len());
    for (changes, targets, trace) in planned {
        let selection = written_selection(object, &changes);
        let id = store.create(object, changes);
        for (target, kind) in targets {
            store.associate((object, id), target, &kind);
        }
        if let Some(record) = store.live(object, id) {
            let body = record.render(object, store.schema(object), Some(&selection));
            results.push(with_trace(body, trace));
        }
    }
    Ok(envelope(StatusCode::CREATED, started, results, Vec::new()))
}

/// `POST …/batch/read` → 200, or 207 listing missing ids.
async fn read(
    State(state): State<AppState>,
    Path(segment): Path<String>,
    params: Params,
    JsonBody(request): JsonBody<ReadRequest>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let object = object_type(&segment)?;
    check_size(request.inputs.len())?;
    let started = Utc::now();
    let archived = params.flag("archived");
    let store = state.store();
    let selection = (!request.properties.is_empty()).then_some(request.properties.as_slice());
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for input in &request.inputs {
        let id = input.id.text();
        let record = store
            .resolve(object, &id, request.id_property.as_deref())?
            .and_then(|rid| store.table(object).records.get(&rid))
            .filter(|r| r.is_archived() == archived);
        match record {
            Some(record) => {
                let mut body = record.render(object, store.schema(object), selection);
                with_history(
                    &mut body,
                    record,
                    Some(&request.properties_with_history),
                    state.app_id(),
                );
                results.push(Value::Object(body));
            }
            None => missing.push(id),
        }
    }
    let errors = if missing.is_empty() {
        Vec::new()
    } else {
        vec![missing_error(object, &missing)]
    };
    Ok(envelope(StatusCode::OK, started, results, errors))
}

/// `POST …/batch/update` → 200, or 207 for ids that do not exist.
async fn update(
    State(state): State<AppState>,
    Path(segment): Path<String>,
    JsonBody(batch): JsonBody<Batch<UpdateItem>>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let object = object_type(&segment)?;
    check_size(batch.inputs.len())?;
    let started = Utc::now();
    let ids: Vec<String> = batch.inputs.iter().map(|i| i.id.text()).collect();
    reject_duplicate_ids(&ids)?;
    let mut store = state.store();
    let mut claims = Claims::new();
    let mut planned: Vec<(u64, Changes, Option<String>)> = Vec::new();
    let mut missing = Vec::new();
    for (item, id) in batch.inputs.into_iter().zip(ids) {
        let Some(rid) = store
            .resolve(object, &id, item.id_property.as_deref())?
            .filter(|&rid| store.live(object, rid).is_some())
        else {
            missing.push(id);
            continue;
        };
        let changes = store.validate(object, &item.properties, store.live(object, rid))?;
        store.check_unique(object, &changes, Some(rid), &mut claims)?;
        planned.push((rid, changes, item.trace_id));
    }
    let mut results = Vec::with_capacity(planned.len());
    for (rid, changes, trace) in planned {
        let selection = written_selection(object, &changes);
        store.update(object, rid, changes);
        if let Some(record) = store.live(object, rid) {
            let body = record.render(object, store.schema(object), Some(&selection));
            results.push(with_trace(body, trace));
        }
    }
    let errors = if missing.is_empty() {
        Vec::new()
    } else {
        vec![missing_error(object, &missing)]
    };
    Ok(envelope(StatusCode::OK, started, results, errors))
}

/// What an upsert input turned into once validated.
enum UpsertPlan {
    Create(Changes),
    Update(u64, Changes),
}

/// `POST …/batch/upsert` → 200; each result carries `new` (FACTS 2.3). Matching is by the
/// unique `idProperty` (contact `email` or a `hasUniqueValue` property) through the index.
async fn upsert(
    State(state): State<AppState>,
    Path(segment): Path<String>,
    JsonBody(batch): JsonBody<Batch<UpdateItem>>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let object = object_type(&segment)?;
    check_size(batch.inputs.len())?;
    let started = Utc::now();
    let ids: Vec<String> = batch.inputs.iter().map(|i| i.id.text()).collect();
    reject_duplicate_ids(&ids)?;
    let mut store = state.store();
    let mut claims = Claims::new();
    let mut planned = Vec::with_capacity(ids.len());
    let mut missing = Vec::new();
    for (item, id) in batch.inputs.into_iter().zip(ids) {
        let id_property = item
            .id_property
            .as_deref()
            .filter(|p| !p.is_empty() && *p != "hs_object_id");
        let existing = store
            .resolve(object, &id, id_property)?
            .filter(|&rid| store.live(object, rid).is_some());
        let plan = match (existing, id_property) {
            (Some(rid), _) => {
                let changes = store.validate(object, &item.properties, store.live(object, rid))?;
                store.check_unique(object, &changes, Some(rid), &mut claims)?;
                UpsertPlan::Update(rid, changes)
            }
            (None, Some(property)) => {
                let mut properties = item.properties;
                properties.insert(property.to_owned(), Value::String(id.clone()));
                let changes = store.validate(object, &properties, None)?;
                store.check_unique(object, &changes, None, &mut claims)?;
                UpsertPlan::Create(changes)
            }
            (None, None) => {
                missing.push(id);
                continue;
            }
        };
        planned.push((plan, item.trace_id));
    }
    let mut results = Vec::with_capacity(planned.len());
    for (plan, trace) in planned {
        let (rid, is_new, selection) = match plan {
            UpsertPlan::Create(changes) => {
                let selection = written_selection(object, &changes);
                (store.create(object, changes), true, selection)
            }
            UpsertPlan::Update(rid, changes) => {
                let selection = written_selection(object, &changes);
                store.update(object, rid, changes);
                (rid, false, selection)
            }
        };
        if let Some(record) = store.live(object, rid) {
            let mut body = record.render(object, store.schema(object), Some(&selection));
            body.insert("new".to_owned(), Value::Bool(is_new));
            results.push(with_trace(body, trace));
        }
    }
    let errors = if missing.is_empty() {
        Vec::new()
    } else {
        vec![missing_error(object, &missing)]
    };
    Ok(envelope(StatusCode::OK, started, results, errors))
}

/// `POST …/batch/archive` → 204, unknown ids ignored.
async fn archive(
    State(state): State<AppState>,
    Path(segment): Path<String>,
    JsonBody(batch): JsonBody<Batch<IdRef>>,
) -> Result<StatusCode, ApiError> {
    let object = object_type(&segment)?;
    check_size(batch.inputs.len())?;
    let mut store = state.store();
    for input in &batch.inputs {
        if let Some(rid) = store.resolve(object, &input.id.text(), None)? {
            store.archive(object, rid);
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/crm/v3/objects/{object_type}/batch/create", post(create))
        .route("/crm/v3/objects/{object_type}/batch/read", post(read))
        .route("/crm/v3/objects/{object_type}/batch/update", post(update))
        .route("/crm/v3/objects/{object_type}/batch/upsert", post(upsert))
        .route("/crm/v3/objects/{object_type}/batch/archive", post(archive))
}
