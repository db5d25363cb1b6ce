//! The `/_sandbox/` admin surface of the Salesforce flavour: statistics, reset, a "UI user"
//! token, merge, the daily-limit knobs and the fault knobs. No auth, not metered, not counted.
//! Invariant: admin calls change the org only through the same write functions the API uses.

use std::time::Instant;

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::auth;
use super::clock;
use super::error::{SfError, json_response, ok};
use super::state::SfState;
use super::write::{self, Writer};
use crate::hubspot::FaultConfig;
use crate::hubspot::faults::Faults;

fn body_object(body: &[u8]) -> Result<Map<String, Value>, SfError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(SfError::bad(
            "JSON_PARSER_ERROR",
            "the body must be a JSON object",
        )),
        Err(e) => Err(SfError::bad(
            "JSON_PARSER_ERROR",
            format!("the body is not valid JSON: {e}"),
        )),
    }
}

fn stats(state: &SfState) -> Response {
    let (calls, total) = state.stats().to_json();
    let records = state.org().counts();
    let usage = state.limiter().usage(Instant::now());
    ok(&json!({
        "calls": calls,
        "total": total,
        "records": records,
        "api_usage": {"used": usage.used, "max": usage.max},
    }))
}

fn reset(state: &SfState) -> Response {
    {
        let mut org = state.org();
        *org = org.emptied();
    }
    state.stats().clear();
    state.limiter().set(None, Some(0), Instant::now());
    StatusCode::NO_CONTENT.into_response()
}

fn ui_token(state: &SfState, headers: &HeaderMap) -> Response {
    let user = state.ui_user().to_owned();
    let mut body = auth::token_answer(state, headers, &user, false);
    body["user_id"] = json!(user);
    ok(&body)
}

fn merge(state: &SfState, body: &[u8]) -> Result<Response, SfError> {
    let body = body_object(body)?;
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
    let object = text("object").ok_or_else(|| {
        SfError::bad(
            "REQUIRED_FIELD_MISSING",
            "object is required, e.g. \"Account\"",
        )
    })?;
    let master = text("master").ok_or_else(|| {
        SfError::bad(
            "REQUIRED_FIELD_MISSING",
            "master is required (the surviving record's id)",
        )
    })?;
    let victims: Vec<String> = body
        .get("victims")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if victims.is_empty() {
        return Err(SfError::bad(
            "REQUIRED_FIELD_MISSING",
            "victims must list at least one id",
        ));
    }
    let writer = Writer {
        user: state.ui_user().to_owned(),
        now: clock::now(),
        users: state.users(),
    };
    let mut org = state.org();
    let moved = write::merge(&mut org, &writer, &object, &master, &victims)?;
    let master = write::existing(&org, &object, &master)?.id().to_owned();
    Ok(ok(
        &json!({"master": master, "merged": victims, "reparented": moved}),
    ))
}

fn limits_json(state: &SfState) -> Value {
    let mut limiter = state.limiter();
    let usage = limiter.usage(Instant::now());
    json!({"daily_limit": limiter.limit(), "used": usage.used, "max": usage.max})
}

fn put_limits(state: &SfState, body: &[u8]) -> Result<Response, SfError> {
    let body = body_object(body)?;
    let number = |key: &str| -> Result<Option<Option<u32>>, SfError> {
        match body.get(key) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(|n| Some(Some(n)))
                .ok_or_else(|| {
                    SfError::bad(
                        "INVALID_FIELD",
                        format!("{key} must be null or a non-negative integer"),
                    )
                }),
        }
    };
    let limit = number("daily_limit")?;
    let used = number("used")?.flatten();
    state.limiter().set(limit, used, Instant::now());
    Ok(ok(&limits_json(state)))
}

fn put_faults(state: &SfState, body: &[u8]) -> Result<Response, SfError> {
    let config: FaultConfig = serde_json::from_slice(body).map_err(|e| {
        SfError::bad(
            "JSON_PARSER_ERROR",
            format!("not a fault configuration: {e}"),
        )
    })?;
    let problems = config.problems();
    if !problems.is_empty() {
        return Err(SfError::bad("INVALID_FIELD", problems.join("; ")));
    }
    let mut faults = state.faults();
    *faults = Faults::new(config);
    Ok(ok(&faults.to_json()))
}

/// Routes one admin request.
pub(crate) fn handle(
    state: &SfState,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let result = match (method, path.trim_end_matches('/')) {
        (&Method::GET, "/_sandbox/stats") => Ok(stats(state)),
        (&Method::POST, "/_sandbox/reset") => Ok(reset(state)),
        (&Method::POST, "/_sandbox/ui-token") => Ok(ui_token(state, headers)),
        (&Method::POST, "/_sandbox/expire-sessions") => {
            let expired = state.tokens().expire_sessions();
            Ok(ok(&json!({ "expired": expired })))
        }
        (&Method::POST, "/_sandbox/merge") => merge(state, body),
        (&Method::GET, "/_sandbox/limits") => Ok(ok(&limits_json(state))),
        (&Method::PUT, "/_sandbox/limits") => put_limits(state, body),
        (&Method::GET, "/_sandbox/faults") => Ok(ok(&state.faults().to_json())),
        (&Method::PUT, "/_sandbox/faults") => put_faults(state, body),
        _ => Err(SfError::not_found()),
    };
    result.unwrap_or_else(|error| json_response(error.status, &json!([error.to_json()])))
}
