//! The `/_sandbox/` admin surface: reset, limits and call statistics. No auth, not rate
//! limited, not counted (the gate skips it).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::extract::JsonBody;
use super::limits::Limits;
use super::object_type::ObjectType;
use super::state::AppState;

/// Clears records, associations, custom properties, statistics, rate-limit usage and the
/// webhook delivery log; the configuration (token, limits, faults, webhook target) stays.
async fn reset(State(state): State<AppState>) -> StatusCode {
    {
        let mut store = state.store();
        *store = store.emptied();
    }
    state.stats().clear();
    state.limiter().reset();
    state.webhooks().clear_log();
    StatusCode::NO_CONTENT
}

async fn get_limits(State(state): State<AppState>) -> axum::Json<Limits> {
    axum::Json(state.limiter().limits())
}

fn optional_u32(
    map: &Map<String, Value>,
    key: &str,
    current: Option<u32>,
) -> Result<Option<u32>, ApiError> {
    match map.get(key) {
        None => Ok(current),
        Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::validation(format!("{key} must be null or a non-negative integer"))
            }),
    }
}

/// Updates the limits: keys present replace the current value (`null` = unlimited), absent
/// keys keep it. Usage counters restart.
async fn put_limits(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<axum::Json<Limits>, ApiError> {
    let current = state.limiter().limits();
    let interval_ms = match body.get("interval_ms") {
        None => current.interval_ms,
        Some(v) => v
            .as_u64()
            .filter(|&ms| ms > 0)
            .ok_or_else(|| ApiError::validation("interval_ms must be a positive integer"))?,
    };
    let limits = Limits {
        interval_limit: optional_u32(&body, "interval_limit", current.interval_limit)?,
        interval_ms,
        daily_limit: optional_u32(&body, "daily_limit", current.daily_limit)?,
        search_per_second: optional_u32(&body, "search_per_second", current.search_per_second)?,
    };
    state.limiter().set(limits);
    Ok(axum::Json(limits))
}

async fn stats(State(state): State<AppState>) -> axum::Json<Value> {
    let (calls, total) = state.stats().to_json();
    let store = state.store();
    let mut objects = Map::new();
    for object in ObjectType::ALL {
        objects.insert(object.name().to_owned(), json!(store.live_count(object)));
    }
    axum::Json(json!({ "calls": calls, "total": total, "objects": objects }))
}

/// `POST /_sandbox/restore/{objectType}/{id}`: what HubSpot's UI restore does to an archived
/// record (no public REST endpoint exists); 204, or 404 when there is no such archived record.
async fn restore(
    State(state): State<AppState>,
    axum::extract::Path((segment, id)): axum::extract::Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let object = ObjectType::parse(&segment)
        .ok_or_else(|| ApiError::not_found(format!("Unknown object type {segment}")))?;
    let restored = id
        .parse::<u64>()
        .is_ok_and(|id| state.store().restore_archived(object, id));
    if restored {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "No archived {} {id}",
            object.singular()
        )))
    }
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/_sandbox/restore/{object_type}/{id}", post(restore))
        .route("/_sandbox/reset", post(reset))
        .route("/_sandbox/limits", get(get_limits).put(put_limits))
        .route("/_sandbox/stats", get(stats))
}
