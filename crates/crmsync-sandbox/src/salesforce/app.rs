//! The gate every request passes and the assembly of the whole application. Order: `/_sandbox`
//! (admin, no auth, not metered); the token endpoint and the version list (no auth); then
//! authentication (401 without consuming the allocation), injected faults (consume nothing),
//! the rolling daily limit (403), the handler. Invariant: every answer under `/services/`
//! carries `Sforce-Limit-Info`, and every request is counted in the statistics.

use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::auth;
use super::discovery;
use super::error::SfError;
use super::limits;
use super::persist;
use super::rest::{self, Ctx};
use super::state::SfState;
use crate::hubspot::faults::{self, Action};

/// The whole application on `state`.
pub(crate) fn app(state: SfState) -> Router {
    Router::new().fallback(handle).with_state(state)
}

fn server_error(status: StatusCode) -> Response {
    let code = if status == StatusCode::SERVICE_UNAVAILABLE {
        "SERVER_UNAVAILABLE"
    } else {
        "UNKNOWN_EXCEPTION"
    };
    SfError::new(
        status,
        code,
        format!(
            "sandbox fault: {}",
            status.canonical_reason().unwrap_or("error")
        ),
    )
    .into_response()
}

async fn handle(
    State(state): State<SfState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    if path == "/_sandbox" || path.starts_with("/_sandbox/") {
        let response = super::admin::handle(&state, &method, &path, &headers, &body);
        if method != Method::GET {
            persist::save_if_configured(&state);
        }
        return response;
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (class, mut response) = match segments.as_slice() {
        ["services", "oauth2", "token"] if method == Method::POST => {
            let form = rest::form_decode(&String::from_utf8_lossy(&body));
            (
                "/services/oauth2/token".to_owned(),
                auth::token(&state, &headers, &form),
            )
        }
        ["services", "data"] if method == Method::GET => {
            ("/services/data".to_owned(), discovery::versions())
        }
        ["services", "data", rest @ ..] => {
            let (class, response) = api(&state, method.clone(), &uri, &headers, &body, rest).await;
            (format!("/services/data{class}"), response)
        }
        _ => ("(unknown)".to_owned(), SfError::not_found().into_response()),
    };
    if !response.headers().contains_key("sforce-limit-info") {
        let usage = state.limiter().usage(Instant::now());
        limits::apply_header(response.headers_mut(), usage);
    }
    state
        .stats()
        .record(method.as_str(), &class, response.status().as_u16());
    if method != Method::GET && response.status().is_success() {
        persist::save_if_configured(&state);
    }
    response
}

/// An authenticated REST call: auth, faults, limit, handler.
async fn api(
    state: &SfState,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    segments: &[&str],
) -> (String, Response) {
    let (version, rest) = match segments.split_first() {
        Some((first, rest)) if first.starts_with('v') => match rest::version_of(first) {
            Some(version) => (version, rest),
            None => {
                return (
                    "/{version}".to_owned(),
                    SfError::not_found().into_response(),
                );
            }
        },
        _ => ("59.0".to_owned(), segments),
    };
    let user = auth::bearer(headers).and_then(|t| state.tokens().user(t));
    let Some(user) = user else {
        return (
            "/(unauthenticated)".to_owned(),
            SfError::invalid_session().into_response(),
        );
    };
    let (delay, action) = state.faults().plan(Instant::now());
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let class = format!("/v{version}");
    match action {
        Action::Pass => {}
        Action::Expired(_) => return (class, SfError::invalid_session().into_response()),
        Action::Storm(_) => return (class, limits::exceeded().into_response()),
        Action::Hang(duration) => {
            tokio::time::sleep(duration).await;
            return (class, server_error(StatusCode::SERVICE_UNAVAILABLE));
        }
        Action::Reset => return (class, faults::reset()),
        Action::ServerError(status) => return (class, server_error(status)),
    }
    let verdict = state.limiter().admit(Instant::now());
    let usage = match verdict {
        Ok(usage) => usage,
        Err(usage) => {
            let mut response = limits::exceeded().into_response();
            limits::apply_header(response.headers_mut(), usage);
            return (class, response);
        }
    };
    let ctx = Ctx {
        state,
        method,
        version,
        user,
        headers,
        params: rest::form_decode(uri.query().unwrap_or_default()),
        body,
    };
    let (endpoint, mut response) = rest::route(&ctx, rest);
    limits::apply_header(response.headers_mut(), usage);
    (format!("/vXX.X{endpoint}"), response)
}
