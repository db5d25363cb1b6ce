//! `/crm/v3/pipelines/{objectType}`: pipelines and their stages, stored and mutable
//! (FACTS 2.8). Deals start with HubSpot's default "Sales Pipeline"; the stored stage ids are
//! the allowed values of the record's stage property (`dealstage`), so a record write is
//! checked against what these endpoints serve.
//!
//! Invariants: an object keeps at least one pipeline and every pipeline at least one stage;
//! with `validateReferencesBeforeDelete` or `validateDealStageUsagesBeforeDelete`, nothing
//! that live records still use is removed.

use std::collections::{BTreeMap, HashSet};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::{JsonBody, Params};
use super::object_type::ObjectType;
use super::objects::object_type;
use super::pipeline_defs::{
    self, Pipeline, PipelineInput, Stage, StageInput, check_metadata, invalid,
};
use super::state::AppState;
use super::store::Store;

fn pipeline_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Unable to find pipeline {id}"))
}

fn stage_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Unable to find stage {id}"))
}

/// The object type, which must be one that has pipelines for writes.
fn pipeline_object(segment: &str) -> Result<ObjectType, ApiError> {
    let object = object_type(segment)?;
    if pipeline_defs::pipeline_properties(object).is_none() {
        return Err(ApiError::validation(format!(
            "Pipelines are not supported for object type {}",
            object.name()
        )));
    }
    Ok(object)
}

/// Whether the request asked HubSpot to refuse removing what records use.
fn validate_usage(params: &Params) -> bool {
    params.flag("validateReferencesBeforeDelete")
        || params.flag("validateDealStageUsagesBeforeDelete")
}

/// 400 when live records still sit in `pipeline` (in `stages`, when given).
fn refuse_if_used(
    store: &Store,
    object: ObjectType,
    pipeline: &str,
    stages: Option<&[&str]>,
) -> Result<(), ApiError> {
    let used = store.records_in(object, pipeline, stages);
    if used == 0 {
        return Ok(());
    }
    let what = match stages {
        Some(stages) => format!("stage(s) {} of pipeline {pipeline}", stages.join(", ")),
        None => format!("pipeline {pipeline}"),
    };
    Err(ApiError::validation(format!(
        "Cannot remove {what}: {used} {} still use it; move them first",
        object.name()
    )))
}

/// Builds stages from inputs for `pipeline`. Ids given (`stageId`) are kept and must be
/// unused by other pipelines of the object; others are generated. `existing` keeps the
/// creation time of stages a replacement keeps.
fn build_stages(
    store: &mut Store,
    object: ObjectType,
    pipeline_id: Option<&str>,
    inputs: Vec<StageInput>,
    existing: &[Stage],
    problems: &mut Vec<String>,
) -> Vec<Stage> {
    let now = store.now();
    let taken: HashSet<String> = store
        .pipelines(object)
        .iter()
        .filter(|p| Some(p.id.as_str()) != pipeline_id)
        .flat_map(|p| p.stages.iter().map(|s| s.id.clone()))
        .collect();
    let mut seen = HashSet::new();
    let mut stages = Vec::new();
    for (input, order) in inputs.into_iter().zip(0..) {
        let label = input.label.unwrap_or_default();
        if label.trim().is_empty() {
            problems.push("every stage needs a label".to_owned());
        }
        let metadata = match &input.metadata {
            Some(raw) => check_metadata(object, &label, raw, problems),
            None => check_metadata(object, &label, &serde_json::Map::new(), problems),
        };
        let id = match input.stage_id.map(|id| id.text()) {
            Some(id) if !id.trim().is_empty() => {
                if taken.contains(&id) {
                    problems.push(format!(
                        "stage id {id} is already used by another pipeline of {}",
                        object.name()
                    ));
                }
                id
            }
            _ => store.next_definition_id(),
        };
        if !seen.insert(id.clone()) {
            problems.push(format!("stage id {id} appears twice"));
        }
        let created_at = existing
            .iter()
            .find(|s| s.id == id)
            .map_or(now, |s| s.created_at);
        stages.push(Stage {
            id,
            label,
            display_order: input.display_order.unwrap_or(order),
            metadata,
            created_at,
            updated_at: now,
        });
    }
    stages
}

async fn list(
    State(state): State<AppState>,
    Path(segment): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let object = object_type(&segment)?;
    let store = state.store();
    let results: Vec<Value> = store
        .pipelines(object)
        .iter()
        .map(Pipeline::to_json)
        .collect();
    Ok(axum::Json(json!({ "results": results })))
}

/// `POST /crm/v3/pipelines/{objectType}` → 201.
async fn create(
    State(state): State<AppState>,
    Path(segment): Path<String>,
    JsonBody(input): JsonBody<PipelineInput>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let object = pipeline_object(&segment)?;
    let mut store = state.store();
    let mut problems = Vec::new();
    let label = input.label.unwrap_or_default();
    if label.trim().is_empty() {
        problems.push("label is required".to_owned());
    }
    let id = match input.pipeline_id.map(|id| id.text()) {
        Some(id) if !id.trim().is_empty() => {
            if store.pipeline(object, &id).is_some() {
                return Err(ApiError::conflict(format!(
                    "A pipeline with id {id} already exists for {}",
                    object.name()
                )));
            }
            id
        }
        _ => store.next_definition_id(),
    };
    let inputs = input.stages.unwrap_or_default();
    if inputs.is_empty() {
        problems.push("a pipeline needs at least one stage".to_owned());
    }
    let stages = build_stages(&mut store, object, Some(&id), inputs, &[], &mut problems);
    if !problems.is_empty() {
        return Err(invalid(&problems));
    }
    let now = store.now();
    let display_order = input
        .display_order
        .unwrap_or(store.pipelines(object).len() as i64);
    let mut pipeline = Pipeline {
        id,
        label,
        display_order,
        stages,
        created_at: now,
        updated_at: now,
    };
    pipeline.sort_stages();
    let body = pipeline.to_json();
    let mut pipelines = store.pipelines(object).to_vec();
    pipelines.push(pipeline);
    store.set_pipelines(object, pipelines);
    Ok((StatusCode::CREATED, axum::Json(body)))
}

async fn get_one(
    State(state): State<AppState>,
    Path((segment, pipeline_id)): Path<(String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    let object = object_type(&segment)?;
    let store = state.store();
    store
        .pipeline(object, &pipeline_id)
        .map(|p| axum::Json(p.to_json()))
        .ok_or_else(|| pipeline_not_found(&pipeline_id))
}

/// Applies `change` to pipeline `id` of `object` and stores the result.
fn with_pipeline<T>(
    store: &mut Store,
    object: ObjectType,
    id: &str,
    change: impl FnOnce(&mut Store, &mut Pipeline) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let mut pipelines = store.pipelines(object).to_vec();
    let index = pipelines
        .iter()
        .position(|p| p.id == id)
        .ok_or_else(|| pipeline_not_found(id))?;
    let answer = change(store, &mut pipelines[index])?;
    pipelines[index].updated_at = store.now();
    pipelines[index].sort_stages();
    store.set_pipelines(object, pipelines);
    Ok(answer)
}

/// `PUT /crm/v3/pipelines/{objectType}/{pipelineId}` → 200: label, order and stages replaced.
async fn replace(
    State(state): State<AppState>,
    Path((segment, pipeline_id)): Path<(String, String)>,
    params: Params,
    JsonBody(input): JsonBody<PipelineInput>,
) -> Result<axum::Json<Value>, ApiError> {
    let object = pipeline_object(&segment)?;
    let mut store = state.store();
    let updated = with_pipeline(&mut store, object, &pipeline_id, |store, pipeline| {
        let mut problems = Vec::new();
        let label = input.label.unwrap_or_default();
        if label.trim().is_empty() {
            problems.push("label is required".to_owned());
        }
        let inputs = input.stages.unwrap_or_default();
        if inputs.is_empty() {
            problems.push("a pipeline needs at least one stage".to_owned());
        }
        let stages = build_stages(
            store,
            object,
            Some(&pipeline.id),
            inputs,
            &pipeline.stages,
            &mut problems,
        );
        if !problems.is_empty() {
            return Err(invalid(&problems));
        }
        let kept: HashSet<&str> = stages.iter().map(|s| s.id.as_str()).collect();
        let removed: Vec<&str> = pipeline
            .stages
            .iter()
            .map(|s| s.id.as_str())
            .filter(|id| !kept.contains(id))
            .collect();
        if validate_usage(&params) && !removed.is_empty() {
            refuse_if_used(store, object, &pipeline.id, Some(&removed))?;
        }
        pipeline.label = label;
        if let Some(order) = input.display_order {
            pipeline.display_order = order;
        }
        pipeline.stages = stages;
        Ok(())
    });
    updated?;
    let body = store.pipeline(object, &pipeline_id).map(Pipeline::to_json);
    body.map(axum::Json)
        .ok_or_else(|| pipeline_not_found(&pipeline_id))
}

/// `PATCH /crm/v3/pipelines/{objectType}/{pipelineId}` → 200: label and display order.
async fn patch(
    State(state): State<AppState>,
    Path((segment, pipeline_id)): Path<(String, String)>,
    JsonBody(input): JsonBody<PipelineInput>,
) -> Result<axum::Json<Value>, ApiError> {
    let object = pipeline_object(&segment)?;
    let mut store = state.store();
    with_pipeline(&mut store, object, &pipeline_id, |_, pipeline| {
        if let Some(label) = input.label {
            if label.trim().is_empty() {
                return Err(ApiError::validation("label cannot be empty"));
            }
            pipeline.label = label;
        }
        if let Some(order) = input.display_order {
            pipeline.display_order = order;
        }
        Ok(())
    })?;
    store
        .pipeline(object, &pipeline_id)
        .map(|p| axum::Json(p.to_json()))
        .ok_or_else(|| pipeline_not_found(&pipeline_id))
}

/// `DELETE /crm/v3/pipelines/{objectType}/{pipelineId}` → 204.
async fn remove(
    State(state): State<AppState>,
    Path((segment, pipeline_id)): Path<(String, String)>,
    params: Params,
) -> Result<StatusCode, ApiError> {
    let object = pipeline_object(&segment)?;
    let mut store = state.store();
    if store.pipeline(object, &pipeline_id).is_none() {
        return Err(pipeline_not_found(&pipeline_id));
    }
    if store.pipelines(object).len() == 1 {
        return Err(ApiError::validation(format!(
            "Pipeline {pipeline_id} is the last pipeline of {}; an object keeps at least one",
            object.name()
        )));
    }
    if validate_usage(&params) {
        refuse_if_used(&store, object, &pipeline_id, None)?;
    }
    let pipelines: Vec<Pipeline> = store
        .pipelines(object)
        .iter()
        .filter(|p| p.id != pipeline_id)
        .cloned()
        .collect();
    store.set_pipelines(object, pipelines);
    Ok(StatusCode::NO_CONTENT)
}

async fn stages(
    State(state): State<AppState>,
    Path((segment, pipeline_id)): Path<(String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    let object = object_type(&segment)?;
    let store = state.store();
    let pipeline = store
        .pipeline(object, &pipeline_id)
        .ok_or_else(|| pipeline_not_found(&pipeline_id))?;
    let results: Vec<Value> = pipeline.stages.iter().map(Stage::to_json).collect();
    Ok(axum::Json(json!({ "results": results })))
}

/// `POST …/{pipelineId}/stages` → 201.
async fn create_stage(
    State(state): State<AppState>,
    Path((segment, pipeline_id)): Path<(String, String)>,
    JsonBody(input): JsonBody<StageInput>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let object = pipeline_object(&segment)?;
    let mut store = state.store();
    let stage = with_pipeline(&mut store, object, &pipeline_id, |store, pipeline| {
        let mut problems = Vec::new();
        let mut input = input;
        if input.display_order.is_none() {
            input.display_order = Some(pipeline.stages.len() as i64);
        }
        let mut built = build_stages(
            store,
            object,
            Some(&pipeline.id),
            vec![input],
            &[],
            &mut problems,
        );
        if let Some(stage) = built.first()
            && pipeline.stage(&stage.id).is_some()
        {
            problems.push(format!("stage id {} already exists", stage.id));
        }
        if !problems.is_empty() {
            return Err(invalid(&problems));
        }
        let stage = built.remove(0);
        pipeline.stages.push(stage.clone());
        Ok(stage)
    })?;
    Ok((StatusCode::CREATED, axum::Json(stage.to_json())))
}

async fn stage_one(
    State(state): State<AppState>,
    Path((segment, pipeline_id, stage_id)): Path<(String, String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    let object = object_type(&segment)?;
    let store = state.store();
    store
        .pipeline(object, &pipeline_id)
        .ok_or_else(|| pipeline_not_found(&pipeline_id))?
        .stage(&stage_id)
        .map(|s| axum::Json(s.to_json()))
        .ok_or_else(|| stage_not_found(&stage_id))
}

/// Shared by PUT (everything replaced) and PATCH (given fields overwritten, metadata keys
/// merged over the current ones).
fn change_stage(
    store: &mut Store,
    object: ObjectType,
    pipeline_id: &str,
    stage_id: &str,
    input: StageInput,
    replace: bool,
) -> Result<Stage, ApiError> {
    with_pipeline(store, object, pipeline_id, |store, pipeline| {
        let now = store.now();
        let stage = pipeline
            .stages
            .iter_mut()
            .find(|s| s.id == stage_id)
            .ok_or_else(|| stage_not_found(stage_id))?;
        let mut problems = Vec::new();
        let label = match input.label {
            Some(label) => label,
            None if replace => String::new(),
            None => stage.label.clone(),
        };
        if label.trim().is_empty() {
            problems.push("label is required".to_owned());
        }
        let mut raw = serde_json::Map::new();
        if !replace {
            for (key, value) in &stage.metadata {
                raw.insert(key.clone(), Value::String(value.clone()));
            }
        }
        if let Some(given) = input.metadata {
            raw.extend(given);
        }
        let metadata: BTreeMap<String, String> =
            check_metadata(object, &label, &raw, &mut problems);
        if !problems.is_empty() {
            return Err(invalid(&problems));
        }
        stage.label = label;
        stage.metadata = metadata;
        if let Some(order) = input.display_order {
            stage.display_order = order;
        }
        stage.updated_at = now;
        Ok(stage.clone())
    })
}

/// `PUT …/stages/{stageId}` → 200.
async fn replace_stage(
    State(state): State<AppState>,
    Path((segment, pipeline_id, stage_id)): Path<(String, String, String)>,
    JsonBody(input): JsonBody<StageInput>,
) -> Result<axum::Json<Value>, ApiError> {
    let object = pipeline_object(&segment)?;
    let mut store = state.store();
    let stage = change_stage(&mut store, object, &pipeline_id, &stage_id, input, true)?;
    Ok(axum::Json(stage.to_json()))
}

/// `PATCH …/stages/{stageId}` → 200.
async fn patch_stage(
    State(state): State<AppState>,
    Path((segment, pipeline_id, stage_id)): Path<(String, String, String)>,
    JsonBody(input): JsonBody<StageInput>,
) -> Result<axum::Json<Value>, ApiError> {
    let object = pipeline_object(&segment)?;
    let mut store = state.store();
    let stage = change_stage(&mut store, object, &pipeline_id, &stage_id, input, false)?;
    Ok(axum::Json(stage.to_json()))
}

/// `DELETE …/stages/{stageId}` → 204.
async fn remove_stage(
    State(state): State<AppState>,
    Path((segment, pipeline_id, stage_id)): Path<(String, String, String)>,
    params: Params,
) -> Result<StatusCode, ApiError> {
    let object = pipeline_object(&segment)?;
    let mut store = state.store();
    with_pipeline(&mut store, object, &pipeline_id, |store, pipeline| {
        if pipeline.stage(&stage_id).is_none() {
            return Err(stage_not_found(&stage_id));
        }
        if pipeline.stages.len() == 1 {
            return Err(ApiError::validation(format!(
                "Stage {stage_id} is the last stage of pipeline {pipeline_id}; a pipeline keeps at least one"
            )));
        }
        if validate_usage(&params) {
            refuse_if_used(store, object, &pipeline.id, Some(&[stage_id.as_str()]))?;
        }
        pipeline.stages.retain(|s| s.id != stage_id);
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/crm/v3/pipelines/{object_type}", get(list).post(create))
        .route(
            "/crm/v3/pipelines/{object_type}/{pipeline_id}",
            get(get_one).put(replace).patch(patch).delete(remove),
        )
        .route(
            "/crm/v3/pipelines/{object_type}/{pipeline_id}/stages",
            get(stages).post(create_stage),
        )
        .route(
            "/crm/v3/pipelines/{object_type}/{pipeline_id}/stages/{stage_id}",
            get(stage_one)
                .put(replace_stage)
                .patch(patch_stage)
                .delete(remove_stage),
        )
}
