//! OAuth 2.0 (FACTS 3.1): `POST /services/oauth2/token` with the password,
//! client-credentials, refresh-token and JWT-bearer grants, and the bearer check every REST
//! call passes. Invariant: only tokens this sandbox issued are accepted; anything else is 401
//! `INVALID_SESSION_ID`.
//!
//! JWT bearer: the assertion must be a well-formed JWT whose `iss` is the client id and whose
//! `sub` is the username (and whose `exp`, if present, lies in the future). Its signature is
//! **not** verified: the sandbox has no certificate to check it against.

use std::collections::HashMap;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::error::json_response;
use super::state::SfState;

/// Issued tokens and who they belong to.
#[derive(Debug)]
pub(crate) struct Tokens {
    access: HashMap<String, String>,
    refresh: HashMap<String, String>,
}

impl Tokens {
    pub fn new(fixed_refresh: &str, user: &str) -> Self {
        let mut refresh = HashMap::new();
        refresh.insert(fixed_refresh.to_owned(), user.to_owned());
        Self {
            access: HashMap::new(),
            refresh,
        }
    }

    /// A new access token for `user`.
    pub fn issue(&mut self, org_id: &str, user: &str) -> String {
        let token = format!(
            "{}!AQ{}",
            org_id.get(..15).unwrap_or(org_id),
            uuid::Uuid::new_v4().simple()
        );
        self.access.insert(token.clone(), user.to_owned());
        token
    }

    fn issue_refresh(&mut self, user: &str) -> String {
        let token = format!("5Aep{}", uuid::Uuid::new_v4().simple());
        self.refresh.insert(token.clone(), user.to_owned());
        token
    }

    /// Forgets every access token issued so far (the org's session timeout); refresh
    /// tokens stay valid, so a client can obtain a new one.
    pub fn expire_sessions(&mut self) -> usize {
        let n = self.access.len();
        self.access.clear();
        n
    }

    /// The user an access token belongs to.
    pub fn user(&self, token: &str) -> Option<String> {
        self.access.get(token).cloned()
    }
}

/// The bearer token of a request (`Authorization: Bearer …` or the older `OAuth …`).
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The server's base URL as the client called it.
pub(crate) fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

/// The token answer for `user` (FACTS 3.1).
pub(crate) fn token_answer(
    state: &SfState,
    headers: &HeaderMap,
    user: &str,
    refresh: bool,
) -> Value {
    let instance = base_url(headers);
    let mut tokens = state.tokens();
    let access = tokens.issue(state.org_id(), user);
    let issued_at = chrono::Utc::now().timestamp_millis().to_string();
    let id = format!("{instance}/id/{}/{user}", state.org_id());
    let signature = Hmac::<Sha256>::new_from_slice(state.config().client_secret.as_bytes())
        .map(|mut mac| {
            mac.update(format!("{id}{issued_at}").as_bytes());
            STANDARD.encode(mac.finalize().into_bytes())
        })
        .unwrap_or_default();
    let mut body = json!({
        "access_token": access,
        "instance_url": instance,
        "id": id,
        "token_type": "Bearer",
        "issued_at": issued_at,
        "signature": signature,
        "scope": "api refresh_token",
    });
    if refresh {
        body["refresh_token"] = json!(tokens.issue_refresh(user));
    }
    body
}

fn decode_jwt_claims(assertion: &str) -> Option<Value> {
    let mut parts = assertion.split('.');
    let (Some(head), Some(claims), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let head: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(head.trim_end_matches('=')).ok()?).ok()?;
    head.get("alg")?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims.trim_end_matches('=')).ok()?).ok()
}

/// `POST /services/oauth2/token` (form-encoded).
pub(crate) fn token(state: &SfState, headers: &HeaderMap, form: &[(String, String)]) -> Response {
    let get = |key: &str| form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let config = state.config();
    let bad = StatusCode::BAD_REQUEST;
    let client_ok = || {
        get("client_id") == Some(config.client_id.as_str())
            && get("client_secret") == Some(config.client_secret.as_str())
    };
    let user = state.integration_user().to_owned();
    match get("grant_type").unwrap_or_default() {
        "password" => {
            if get("client_id") != Some(config.client_id.as_str()) {
                return oauth_error(bad, "invalid_client_id", "client identifier invalid");
            }
            if get("client_secret") != Some(config.client_secret.as_str()) {
                return oauth_error(bad, "invalid_client", "invalid client credentials");
            }
            if get("username") != Some(config.username.as_str())
                || get("password") != Some(config.password.as_str())
            {
                return oauth_error(bad, "invalid_grant", "authentication failure");
            }
            json_response(StatusCode::OK, &token_answer(state, headers, &user, true))
        }
        "client_credentials" => {
            if !client_ok() {
                return oauth_error(bad, "invalid_client", "invalid client credentials");
            }
            json_response(StatusCode::OK, &token_answer(state, headers, &user, false))
        }
        "refresh_token" => {
            if get("client_id").is_some_and(|c| c != config.client_id)
                || get("client_secret").is_some_and(|s| s != config.client_secret)
            {
                return oauth_error(bad, "invalid_client", "invalid client credentials");
            }
            let owner = get("refresh_token").and_then(|t| state.tokens().refresh.get(t).cloned());
            match owner {
                Some(owner) => {
                    json_response(StatusCode::OK, &token_answer(state, headers, &owner, false))
                }
                None => oauth_error(bad, "invalid_grant", "expired access/refresh token"),
            }
        }
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
            let Some(claims) = get("assertion").and_then(decode_jwt_claims) else {
                return oauth_error(bad, "invalid_grant", "invalid assertion");
            };
            if claims.get("iss").and_then(Value::as_str) != Some(config.client_id.as_str()) {
                return oauth_error(bad, "invalid_client_id", "client identifier invalid");
            }
            if claims.get("sub").and_then(Value::as_str) != Some(config.username.as_str()) {
                return oauth_error(bad, "invalid_grant", "user hasn't approved this consumer");
            }
            if claims
                .get("exp")
                .and_then(Value::as_i64)
                .is_some_and(|exp| exp < chrono::Utc::now().timestamp())
            {
                return oauth_error(bad, "invalid_grant", "expired authorization code");
            }
            json_response(StatusCode::OK, &token_answer(state, headers, &user, false))
        }
        _ => oauth_error(bad, "unsupported_grant_type", "grant type not supported"),
    }
}
