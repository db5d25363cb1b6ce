//! The JSON API of the operator server (documented in docs/operations.md, described by
//! `/api/openapi.json`) and `/metrics`. Each answer is the same data the CLI shows: `status`,
//! `conflicts`, `deletions`, `explain`; the actions are `resolve`, `deletions --apply/--reject`,
//! `pause`/`resume`. Errors are `{"error": "..."}` with 400 (a request that cannot be done as
//! asked), 404 (no such record) or 500 (the state or app database failed).

use super::Ops;
use super::metrics as m;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use crmsync_engine::EngineError;
use crmsync_engine::lifecycle::conflict::{Take, resolve_conflict};
use crmsync_engine::lifecycle::deletion::Decision;
use crmsync_store::{Conflict, Coordination, CrmDeletion, Lifecycle, QueueCounts, Records};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;

/// An API error: its status and message.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Refused(why) | EngineError::Config(why) => {
                ApiError(StatusCode::BAD_REQUEST, why)
            }
            other => ApiError(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        }
    }
}

impl From<crmsync_store::StoreError> for ApiError {
    fn from(e: crmsync_store::StoreError) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

/// A conflict as the API shows it.
#[derive(Debug, Serialize)]
pub struct ConflictView {
    pub id: i64,
    pub sync: String,
    pub record: String,
    pub crm_id: String,
    pub field: String,
    pub column: String,
    pub app_value: String,
    pub crm_value: String,
    pub base_value: Option<String>,
    pub since: String,
}

impl From<&Conflict> for ConflictView {
    fn from(c: &Conflict) -> Self {
        ConflictView {
            id: c.id,
            sync: c.sync.clone(),
            record: c.local_id.clone(),
            crm_id: c.crm_id.clone(),
            field: c.field.clone(),
            column: c.column.clone(),
            app_value: c.app_value.clone(),
            crm_value: c.crm_value.clone(),
            base_value: c.base_value.clone(),
            since: crmsync_engine::status::rfc3339(c.created_at_ms),
        }
    }
}

/// A CRM deletion as the API shows it.
#[derive(Debug, Serialize)]
pub struct DeletionView {
    pub sync: String,
    pub record: String,
    pub crm_id: String,
    pub state: String,
    pub action: Option<String>,
    pub seen: String,
}

impl From<&CrmDeletion> for DeletionView {
    fn from(d: &CrmDeletion) -> Self {
        DeletionView {
            sync: d.sync.clone(),
            record: d.local_id.clone(),
            crm_id: d.crm_id.clone(),
            state: d.state.as_str().to_string(),
            action: d.action.clone(),
            seen: crmsync_engine::status::rfc3339(d.seen_at_ms),
        }
    }
}

pub async fn status(
    State(ops): State<Arc<Ops>>,
) -> Result<Json<crmsync_engine::status::Status>, ApiError> {
    let e = &ops.engine;
    Ok(Json(
        crmsync_engine::status::status(&e.config, &e.state, &e.app).await?,
    ))
}

pub async fn conflicts(State(ops): State<Arc<Ops>>) -> Result<Json<Vec<ConflictView>>, ApiError> {
    let open = ops.engine.state.open_conflicts(None).await?;
    Ok(Json(open.iter().map(ConflictView::from).collect()))
}

/// The body of a resolve: which side's value wins.
#[derive(Debug, Deserialize)]
pub struct ResolveBody {
    pub take: String,
}

/// `app` or `crm`.
pub fn parse_take(take: &str) -> Result<Take, ApiError> {
    match take {
        "app" => Ok(Take::App),
        "crm" => Ok(Take::Crm),
        other => Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("take must be \"app\" or \"crm\", not {other:?}"),
        )),
    }
}

pub async fn resolve(
    State(ops): State<Arc<Ops>>,
    Path(id): Path<i64>,
    Json(body): Json<ResolveBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let take = parse_take(&body.take)?;
    let e = &ops.engine;
    let c = resolve_conflict(&e.config, &e.state, &e.app, id, take).await?;
    e.wakes.wake_sync(&c.sync);
    Ok(Json(
        json!({"resolved": c.id, "take": take.as_str(), "sync": c.sync, "record": c.local_id}),
    ))
}

pub async fn deletions(State(ops): State<Arc<Ops>>) -> Result<Json<Vec<DeletionView>>, ApiError> {
    let all = ops.engine.state.deletions(None, None).await?;
    Ok(Json(all.iter().map(DeletionView::from).collect()))
}

/// Which sync's held deletions to settle (all when absent).
#[derive(Debug, Deserialize)]
pub struct SyncQuery {
    pub sync: Option<String>,
}

/// `apply` or `reject`.
pub fn parse_decision(decision: &str) -> Result<Decision, ApiError> {
    match decision {
        "apply" => Ok(Decision::Apply),
        "reject" => Ok(Decision::Reject),
        other => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no action {other:?}: POST /api/deletions/apply or /api/deletions/reject"),
        )),
    }
}

pub async fn decide_deletions(
    State(ops): State<Arc<Ops>>,
    Path(decision): Path<String>,
    Query(q): Query<SyncQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let decision = parse_decision(&decision)?;
    let n = ops
        .engine
        .decide_deletions(q.sync.as_deref(), decision)
        .await?;
    Ok(Json(json!({ "settled": n })))
}

pub async fn record(
    State(ops): State<Arc<Ops>>,
    Path((sync, key)): Path<(String, String)>,
) -> Result<Json<crmsync_engine::explain::Explanation>, ApiError> {
    let e = &ops.engine;
    Ok(Json(
        crmsync_engine::explain::explain(&e.config, &e.state, &e.app, &sync, &key).await?,
    ))
}

async fn set_paused(ops: &Ops, paused: bool) -> Result<Json<serde_json::Value>, ApiError> {
    ops.engine.state.set_paused(paused).await?;
    ops.engine.wakes.wake_all();
    Ok(Json(json!({ "paused": paused })))
}

pub async fn pause(State(ops): State<Arc<Ops>>) -> Result<Json<serde_json::Value>, ApiError> {
    set_paused(&ops, true).await
}

pub async fn resume(State(ops): State<Arc<Ops>>) -> Result<Json<serde_json::Value>, ApiError> {
    set_paused(&ops, false).await
}

/// Prometheus text: the counters as they stand, the gauges read now.
pub async fn metrics(State(ops): State<Arc<Ops>>) -> Result<Response, ApiError> {
    let Some(handle) = &ops.metrics else {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are not recorded in this process".into(),
        ));
    };
    let e = &ops.engine;
    let st = crmsync_engine::status::status(&e.config, &e.state, &e.app).await?;
    let mut queues: Vec<(String, QueueCounts)> = Vec::new();
    for s in &e.config.raw.syncs {
        queues.push((s.name.clone(), e.state.counts(&s.name).await?));
    }
    let now = crmsync_store::now_ms();
    let interval = interval_use(e, now).await?;
    m::refresh(&st, &queues, interval, now);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response())
}

/// The calls logged in the last interval window, against its limit.
pub async fn interval_use(
    e: &crate::cli::common::Worker,
    now_ms: i64,
) -> Result<m::Interval, ApiError> {
    let crm = &e.config.raw.crm;
    let since = now_ms - i64::try_from(crm.interval_ms()).unwrap_or(i64::MAX);
    Ok(m::Interval {
        limit: crm.requests_per_interval(),
        used: e.state.call_summary(since).await?.calls,
    })
}

/// The OpenAPI description of this API.
pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
}
