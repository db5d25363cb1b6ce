//! OAuth for public apps (BRIDGES 4.1): `POST /oauth/v1/token` (and its date-versioned
//! successor `/oauth/2026-03/token`, same form) with the `refresh_token` grant, the access
//! tokens it issues, and `POST /_sandbox/oauth/expire`, which ends every issued token now.
//!
//! Invariants: an issued access token is accepted until its lifetime
//! ([`OAuthConfig::token_lifetime_secs`]) ends, even after newer ones were issued (HubSpot
//! keeps several live), and answered 401 `EXPIRED_AUTHENTICATION` afterwards (FACTS 2.1, with
//! HubSpot's "expired N second(s) ago"); the refresh token stays valid across refreshes unless
//! [`OAuthConfig::rotate_refresh_tokens`] is on, in which case each refresh returns a new one
//! and the one used stops working. Errors have HubSpot's v1 shape
//! `{"status":"BAD_REFRESH_TOKEN","message":"missing or invalid refresh token","correlationId":…}`.
//! The token endpoint needs no bearer token and is not rate limited, but is counted in the
//! call statistics.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::json_error;
use super::state::AppState;

/// The token endpoints served: v1 (retiring 16 Feb 2027) and the date-versioned successor.
pub(crate) const TOKEN_PATHS: [&str; 2] = ["/oauth/v1/token", "/oauth/2026-03/token"];

/// Issued tokens are forgotten this long after they expired (they are answered as unknown then).
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// The public app the sandbox knows. `Default` documents the defaults of `crmsync sandbox`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthConfig {
    /// The app's client id (`crmsync-sandbox`).
    pub client_id: String,
    /// The app's client secret (`sandbox-secret`).
    pub client_secret: String,
    /// The refresh token of the app's installation (`sandbox-refresh-token`).
    pub refresh_token: String,
    /// Lifetime of an issued access token, in seconds (HubSpot: 1800).
    pub token_lifetime_secs: u64,
    /// Each refresh returns a new refresh token and the used one stops working (HubSpot
    /// normally keeps the refresh token; this is the strict case a client must survive).
    pub rotate_refresh_tokens: bool,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        OAuthConfig {
            client_id: "crmsync-sandbox".to_owned(),
            client_secret: "sandbox-secret".to_owned(),
            refresh_token: "sandbox-refresh-token".to_owned(),
            token_lifetime_secs: 1800,
            rotate_refresh_tokens: false,
        }
    }
}

/// What the gate learns about a presented bearer token.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Valid,
    /// Expired this many seconds ago (at least 1, as HubSpot words it).
    Expired(u64),
}

/// Issued access tokens and the refresh tokens that work.
#[derive(Debug)]
pub(crate) struct OAuthTokens {
    config: OAuthConfig,
    /// Access token -> when it expires.
    access: HashMap<String, Instant>,
    refresh: HashSet<String>,
}

impl OAuthTokens {
    pub fn new(config: OAuthConfig) -> Self {
        let refresh = HashSet::from([config.refresh_token.clone()]);
        OAuthTokens {
            config,
            access: HashMap::new(),
            refresh,
        }
    }

    /// `None` for a token this sandbox did not issue (the static-token rules apply to it).
    pub fn check(&self, token: &str, now: Instant) -> Option<Verdict> {
        let expires = self.access.get(token)?;
        Some(if now < *expires {
            Verdict::Valid
        } else {
            Verdict::Expired(now.saturating_duration_since(*expires).as_secs().max(1))
        })
    }

    /// Ends every issued token now; answers how many were still valid.
    pub fn expire_all(&mut self, now: Instant) -> usize {
        let mut ended = 0;
        for expires in self.access.values_mut() {
            if *expires > now {
                *expires = now;
                ended += 1;
            }
        }
        ended
    }

    /// A refresh with `refresh_token` by `client_id`/`client_secret`: the answer body or
    /// HubSpot's refusal (status, error status, message).
    fn refresh(
        &mut self,
        client_id: Option<&str>,
        client_secret: Option<&str>,
        refresh_token: Option<&str>,
        now: Instant,
    ) -> Result<serde_json::Value, (StatusCode, &'static str, &'static str)> {
        let bad = StatusCode::BAD_REQUEST;
        let (Some(client_id), Some(client_secret)) = (
            client_id.filter(|c| !c.is_empty()),
            client_secret.filter(|s| !s.is_empty()),
        ) else {
            return Err((
                bad,
                "error",
                "Any of the listed authentication credentials are missing",
            ));
        };
        let Some(used) = refresh_token.filter(|t| self.refresh.contains(*t)) else {
            return Err((bad, "BAD_REFRESH_TOKEN", "missing or invalid refresh token"));
        };
        if client_id != self.config.client_id {
            return Err((
                bad,
                "BAD_REFRESH_TOKEN",
                "refresh token was not issued to this client",
            ));
        }
        if client_secret != self.config.client_secret {
            // The shape HubSpot uses for the other fields; the exact code is not confirmed.
            return Err((bad, "BAD_CLIENT_SECRET", "missing or invalid client secret"));
        }
        let used = used.to_owned();
        self.access
            .retain(|_, expires| now.saturating_duration_since(*expires) < FORGET_AFTER);
        let lifetime = self.config.token_lifetime_secs;
        let access = format!(
            "CO{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        self.access
            .insert(access.clone(), now + Duration::from_secs(lifetime));
        let refresh = if self.config.rotate_refresh_tokens {
            let next = format!("na1-{}", uuid::Uuid::new_v4());
            self.refresh.remove(&used);
            self.refresh.insert(next.clone());
            next
        } else {
            used
        };
        Ok(json!({
            "token_type": "bearer",
            "refresh_token": refresh,
            "access_token": access,
            "expires_in": lifetime,
        }))
    }
}

/// A form body as `x-www-form-urlencoded` decodes it (`+` is a space).
fn form(body: &[u8]) -> Vec<(String, String)> {
    let decode = |raw: &str| {
        percent_decode_str(&raw.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn refusal(status: StatusCode, code: &str, message: &str) -> Response {
    json_error(status, json!({"status": code, "message": message}))
}

/// `POST /oauth/v1/token`: the form's grant, answered as HubSpot does.
async fn token(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    // Only a form carries the fields (BRIDGES 4.1); any other body carries none.
    let fields = if is_form { form(&body) } else { Vec::new() };
    let get = |key: &str| {
        fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    match get("grant_type") {
        Some("refresh_token") => {
            let answer = state.oauth().refresh(
                get("client_id"),
                get("client_secret"),
                get("refresh_token"),
                Instant::now(),
            );
            match answer {
                Ok(body) => (StatusCode::OK, axum::Json(body)).into_response(),
                Err((status, code, message)) => refusal(status, code, message),
            }
        }
        // The sandbox has no authorize page, so it never issued a code.
        Some("authorization_code") => refusal(
            StatusCode::BAD_REQUEST,
            "BAD_AUTH_CODE",
            "missing or invalid auth code",
        ),
        _ => refusal(
            StatusCode::BAD_REQUEST,
            "error",
            "Any of the listed authentication credentials are missing",
        ),
    }
}

/// `POST /_sandbox/oauth/expire`: every issued access token expires now (refresh tokens stay).
async fn expire(State(state): State<AppState>) -> axum::Json<serde_json::Value> {
    let expired = state.oauth().expire_all(Instant::now());
    axum::Json(json!({ "expired": expired }))
}

pub(crate) fn router() -> Router<AppState> {
    let mut router = Router::new().route("/_sandbox/oauth/expire", post(expire));
    for path in TOKEN_PATHS {
        router = router.route(path, post(token));
    }
    router
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(rotate: bool) -> OAuthTokens {
        OAuthTokens::new(OAuthConfig {
            token_lifetime_secs: 2,
            rotate_refresh_tokens: rotate,
            ..OAuthConfig::default()
        })
    }

    fn refresh(
        t: &mut OAuthTokens,
        token: &str,
        now: Instant,
    ) -> Result<serde_json::Value, &'static str> {
        t.refresh(
            Some("crmsync-sandbox"),
            Some("sandbox-secret"),
            Some(token),
            now,
        )
        .map_err(|(_, code, _)| code)
    }

    #[test]
    fn issued_tokens_live_their_lifetime_side_by_side() {
        let mut t = tokens(false);
        let now = Instant::now();
        let first = refresh(&mut t, "sandbox-refresh-token", now).expect("issued");
        let a = first["access_token"].as_str().expect("token").to_owned();
        assert_eq!(
            first["refresh_token"], "sandbox-refresh-token",
            "not rotated"
        );
        let second = refresh(
            &mut t,
            "sandbox-refresh-token",
            now + Duration::from_secs(1),
        )
        .expect("issued");
        let b = second["access_token"].as_str().expect("token").to_owned();
        assert_eq!(
            t.check(&a, now + Duration::from_millis(1500)),
            Some(Verdict::Valid)
        );
        assert_eq!(
            t.check(&b, now + Duration::from_millis(2500)),
            Some(Verdict::Valid)
        );
        assert_eq!(
            t.check(&a, now + Duration::from_secs(5)),
            Some(Verdict::Expired(3))
        );
        assert_eq!(t.check("pat-na1-other", now), None);
        assert_eq!(t.expire_all(now + Duration::from_millis(2500)), 1);
        assert_eq!(
            t.check(&b, now + Duration::from_millis(2500)),
            Some(Verdict::Expired(1))
        );
    }

    #[test]
    fn refusals_are_hubspots() {
        let mut t = tokens(false);
        let now = Instant::now();
        assert_eq!(
            refresh(&mut t, "wrong", now).err(),
            Some("BAD_REFRESH_TOKEN")
        );
        assert_eq!(
            t.refresh(
                Some("other-app"),
                Some("sandbox-secret"),
                Some("sandbox-refresh-token"),
                now
            )
            .map_err(|(_, _, message)| message)
            .err(),
            Some("refresh token was not issued to this client")
        );
        assert_eq!(
            t.refresh(
                Some("crmsync-sandbox"),
                None,
                Some("sandbox-refresh-token"),
                now
            )
            .map_err(|(_, code, _)| code)
            .err(),
            Some("error")
        );
    }

    #[test]
    fn a_rotated_refresh_token_replaces_the_used_one() {
        let mut t = tokens(true);
        let now = Instant::now();
        let answer = refresh(&mut t, "sandbox-refresh-token", now).expect("issued");
        let next = answer["refresh_token"]
            .as_str()
            .expect("rotated")
            .to_owned();
        assert_ne!(next, "sandbox-refresh-token");
        assert_eq!(
            refresh(&mut t, "sandbox-refresh-token", now).err(),
            Some("BAD_REFRESH_TOKEN")
        );
        assert!(refresh(&mut t, &next, now).is_ok());
    }

    #[test]
    fn forms_decode_plus_and_percent() {
        assert_eq!(
            form(b"grant_type=refresh_token&client_secret=a%2Bb+c"),
            vec![
                ("grant_type".to_owned(), "refresh_token".to_owned()),
                ("client_secret".to_owned(), "a+b c".to_owned())
            ]
        );
    }
}
