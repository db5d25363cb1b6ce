//! Who may use the operator server: loopback readers freely; everyone else, and every action,
//! with the operator token (bearer header or the `crmsync_token` cookie `/login` sets).
//!
//! Invariant: a request that changes something (any method but GET and HEAD) passes only with
//! the right token; the token is compared in constant time and never echoed.

use super::Ops;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::Arc;

/// The cookie the dashboard's login sets.
pub const COOKIE: &str = "crmsync_token";

/// Paths anyone may reach: probes, and the login form itself.
const OPEN: &[&str] = &["/healthz", "/readyz", "/login"];

/// The token the request presents, from `Authorization: Bearer` or the cookie.
fn presented(headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_string())
        });
    bearer.or_else(|| {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE)
            .map(|(_, value)| value.to_string())
    })
}

/// Whether `given` is the operator token (digests compared, so timing says nothing).
pub fn is_token(ops: &Ops, given: &str) -> bool {
    ops.token.as_ref().is_some_and(|t| {
        Sha256::digest(t.expose_secret().as_bytes()) == Sha256::digest(given.as_bytes())
    })
}

/// Whether the request carries the operator token.
pub fn authorized(ops: &Ops, headers: &HeaderMap) -> bool {
    presented(headers).is_some_and(|t| is_token(ops, &t))
}

/// The access check in front of every route.
pub async fn check(
    State(ops): State<Arc<Ops>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    if OPEN.contains(&path) || (reads && peer.ip().is_loopback()) {
        return next.run(request).await;
    }
    if authorized(&ops, request.headers()) {
        return next.run(request).await;
    }
    let why = if ops.token.is_none() {
        "this needs the operator token, and none is configured: export CRMSYNC_SERVER_TOKEN (or set [server] token_env / token_file) and restart `crmsync run`"
    } else if reads {
        "this needs the operator token (Authorization: Bearer, or log in at /login)"
    } else {
        "actions need the operator token (Authorization: Bearer, or log in at /login)"
    };
    tracing::warn!(%peer, path, "operator request refused: no valid token");
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        why,
    )
        .into_response()
}
