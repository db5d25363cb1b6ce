//! The middleware every API request passes: authentication, injected faults, rate limits,
//! rate-limit headers, call statistics, and the guarantee that no error leaves without a
//! HubSpot JSON body.
//!
//! Order matters: the OAuth token endpoint bypasses all of it but the stats; an
//! unauthenticated request (or one with an expired OAuth token: 401 `EXPIRED_AUTHENTICATION`)
//! is answered 401 without consuming budget (it cannot be attributed to an app); then come the injected faults (latency, expired token,
//! 429 storm, hang, reset, 5xx), which consume nothing either; a 429 consumes nothing; all
//! still carry the headers (FACTS 2.10) and are counted in stats (a reset as status 0). The
//! handler runs with the caller as [`actor`] so changes are attributed. `/_sandbox` requests
//! bypass all of it. After any write the background tasks (webhooks, persistence) are woken.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::actor::{self, Actor};
use super::auth;
use super::error::ApiError;
use super::faults::{self, Action};
use super::limits;
use super::oauth::{self, Verdict};
use super::state::AppState;

/// Largest error body read back when converting a non-JSON error.
const MAX_ERROR_BODY: usize = 64 * 1024;

pub(crate) async fn gate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    if path == "/_sandbox" || path.starts_with("/_sandbox/") {
        let response = ensure_json_error(next.run(request).await).await;
        if method != Method::GET {
            state.changed();
        }
        return response;
    }
    if oauth::TOKEN_PATHS.contains(&path.as_str()) {
        // The token endpoint authenticates by its form, not a bearer token, and is not part
        // of the API's rate limits; it is counted like any call.
        let response = ensure_json_error(next.run(request).await).await;
        state
            .stats()
            .record(method.as_str(), &path, response.status().as_u16());
        return response;
    }
    let search = method == Method::POST && path.ends_with("/search");
    let issued = auth::bearer(request.headers())
        .and_then(|token| state.oauth().check(token, Instant::now()));
    let caller = match issued {
        Some(Verdict::Valid) => Ok(Actor::Integration),
        Some(Verdict::Expired(ago)) => Err(faults::expired(ago)),
        None => auth::check(request.headers(), state.token(), state.other_tokens())
            .map_err(IntoResponse::into_response),
    };
    let response = match caller {
        Err(mut response) => {
            let usage = state.limiter().usage(Instant::now());
            limits::apply_headers(response.headers_mut(), &usage);
            response
        }
        Ok(caller) => {
            let (delay, action) = state.faults().plan(Instant::now());
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            match action {
                Action::Pass => {
                    let verdict = state.limiter().admit(search, Instant::now());
                    match verdict {
                        Err(rejection) => rejection.into_response(),
                        Ok(usage) => {
                            let response = actor::scope(caller, next.run(request)).await;
                            let mut response = ensure_json_error(response).await;
                            if response.status().is_success()
                                && method == Method::POST
                                && faults::is_batch_write(&path)
                                && let Some(status) = state.faults().take_fail_after_apply()
                            {
                                response = faults::server_error(status);
                            }
                            limits::apply_headers(response.headers_mut(), &usage);
                            response
                        }
                    }
                }
                Action::Expired(ago) => faults::expired(ago),
                Action::Storm(policy) => {
                    let usage = state.limiter().usage(Instant::now());
                    limits::storm(policy, usage).into_response()
                }
                Action::Hang(duration) => {
                    tokio::time::sleep(duration).await;
                    faults::server_error(StatusCode::GATEWAY_TIMEOUT)
                }
                Action::Reset => {
                    state.stats().record(method.as_str(), &path, 0);
                    return faults::reset();
                }
                Action::ServerError(status) => faults::server_error(status),
            }
        }
    };
    if method != Method::GET {
        state.changed();
    }
    state
        .stats()
        .record(method.as_str(), &path, response.status().as_u16());
    response
}

/// Rewrites framework-generated errors (405, 413, path rejections…) into HubSpot's shape;
/// the npm client cannot read an error without a JSON content type (FACTS 2.2).
async fn ensure_json_error(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let text = match axum::body::to_bytes(response.into_body(), MAX_ERROR_BODY).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let (category, default_message) = match status {
        StatusCode::NOT_FOUND => ("OBJECT_NOT_FOUND", "Resource not found"),
        StatusCode::METHOD_NOT_ALLOWED => {
            ("VALIDATION_ERROR", "Method not allowed for this resource")
        }
        s if s.is_server_error() => ("INTERNAL_ERROR", "Internal error"),
        _ => ("VALIDATION_ERROR", "Invalid request"),
    };
    let message = if text.is_empty() {
        default_message.to_owned()
    } else {
        text
    };
    ApiError::new(status, category, message).into_response()
}

/// Answer for routes that do not exist: JSON 404, never an empty or HTML body.
pub(crate) async fn not_found(method: Method, uri: axum::http::Uri) -> Response {
    ApiError::not_found(format!("No route for {method} {}", uri.path())).into_response()
}

/// Answer for a known route with an unsupported method.
pub(crate) async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "VALIDATION_ERROR",
        format!("Method {method} is not allowed on {}", uri.path()),
    )
    .into_response()
}
