//! `/crm/v3/pipelines/{objectType}`: the default deal pipeline with its seven stages
//! (FACTS 2.8). Read-only: the stage ids double as the allowed values of `dealstage`.

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use serde_json::{Value, json};

use super::error::ApiError;
use super::object_type::ObjectType;
use super::state::AppState;

/// Id of the default deal pipeline.
pub(crate) const DEFAULT_ID: &str = "default";
/// Label of the default deal pipeline.
pub(crate) const DEFAULT_LABEL: &str = "Sales Pipeline";

/// One deal stage.
pub(crate) struct Stage {
    pub id: &'static str,
    pub label: &'static str,
    /// Metadata values are strings in HubSpot (FACTS 2.8).
    pub probability: &'static str,
    pub is_closed: bool,
}

/// The stages of the default deal pipeline, in display order (FACTS 2.8).
pub(crate) const DEFAULT_STAGES: [Stage; 7] = [
    stage(
        "appointmentscheduled",
        "Appointment Scheduled",
        "0.2",
        false,
    ),
    stage("qualifiedtobuy", "Qualified To Buy", "0.4", false),
    stage(
        "presentationscheduled",
        "Presentation Scheduled",
        "0.6",
        false,
    ),
    stage(
        "decisionmakerboughtin",
        "Decision Maker Bought-In",
        "0.8",
        false,
    ),
    stage("contractsent", "Contract Sent", "0.9", false),
    stage("closedwon", "Closed Won", "1.0", true),
    stage("closedlost", "Closed Lost", "0.0", true),
];

const fn stage(
    id: &'static str,
    label: &'static str,
    probability: &'static str,
    is_closed: bool,
) -> Stage {
    Stage {
        id,
        label,
        probability,
        is_closed,
    }
}

/// Whether `stage` is a stage of `pipeline`.
pub(crate) fn stage_in_pipeline(pipeline: &str, stage: &str) -> bool {
    pipeline == DEFAULT_ID && DEFAULT_STAGES.iter().any(|s| s.id == stage)
}

const CREATED_AT: &str = "2020-01-01T00:00:00.000Z";

fn stage_json(stage: &Stage, order: usize) -> Value {
    json!({
        "id": stage.id,
        "label": stage.label,
        "displayOrder": order,
        "metadata": {
            "isClosed": if stage.is_closed { "true" } else { "false" },
            "probability": stage.probability,
        },
        "createdAt": CREATED_AT,
        "updatedAt": CREATED_AT,
        "archived": false,
        "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
    })
}

fn default_pipeline() -> Value {
    let stages: Vec<Value> = DEFAULT_STAGES
        .iter()
        .enumerate()
        .map(|(order, s)| stage_json(s, order))
        .collect();
    json!({
        "id": DEFAULT_ID,
        "label": DEFAULT_LABEL,
        "displayOrder": 0,
        "stages": stages,
        "createdAt": CREATED_AT,
        "updatedAt": CREATED_AT,
        "archived": false,
    })
}

fn pipelines_of(segment: &str) -> Result<Vec<Value>, ApiError> {
    match ObjectType::parse(segment) {
        Some(ObjectType::Deals) => Ok(vec![default_pipeline()]),
        // Contacts and companies have no pipelines; HubSpot answers an empty list.
        Some(_) => Ok(Vec::new()),
        None => Err(ApiError::validation(format!(
            "Unable to infer object type from: {segment}"
        ))),
    }
}

fn find(segment: &str, pipeline_id: &str) -> Result<Value, ApiError> {
    pipelines_of(segment)?
        .into_iter()
        .find(|p| p["id"] == pipeline_id)
        .ok_or_else(|| ApiError::not_found(format!("Unable to find pipeline {pipeline_id}")))
}

async fn list(Path(object_type): Path<String>) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(
        json!({ "results": pipelines_of(&object_type)? }),
    ))
}

async fn get_one(
    Path((object_type, pipeline_id)): Path<(String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(find(&object_type, &pipeline_id)?))
}

async fn stages(
    Path((object_type, pipeline_id)): Path<(String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    let pipeline = find(&object_type, &pipeline_id)?;
    Ok(axum::Json(json!({ "results": pipeline["stages"] })))
}

async fn stage_one(
    Path((object_type, pipeline_id, stage_id)): Path<(String, String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    let pipeline = find(&object_type, &pipeline_id)?;
    pipeline["stages"]
        .as_array()
        .and_then(|stages| stages.iter().find(|s| s["id"] == stage_id.as_str()))
        .cloned()
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found(format!("Unable to find stage {stage_id}")))
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/crm/v3/pipelines/{object_type}", get(list))
        .route(
            "/crm/v3/pipelines/{object_type}/{pipeline_id}",
            get(get_one),
        )
        .route(
            "/crm/v3/pipelines/{object_type}/{pipeline_id}/stages",
            get(stages),
        )
        .route(
            "/crm/v3/pipelines/{object_type}/{pipeline_id}/stages/{stage_id}",
            get(stage_one),
        )
}
