//! Bearer-token authentication (FACTS 2.1).
//!
//! OAuth access tokens the sandbox issued pass while they live (the gate asks
//! [`super::oauth`] first). Otherwise, with a configured token only that token passes; without
//! one any non-empty bearer token passes, so SDK examples with placeholder tokens work. Anything else is 401
//! `INVALID_AUTHENTICATION`. Tokens listed in `other_tokens` always pass and make the request
//! another user's (see [`Actor`]).

use std::collections::BTreeMap;

use axum::http::{HeaderMap, header};

use super::actor::Actor;
use super::error::ApiError;

const NOT_FOUND: &str = "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview";

/// The bearer token of a request, if it presents one.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|token| !token.is_empty())
}

/// Checks the `Authorization` header against the configured tokens and says who is calling.
/// (OAuth access tokens the sandbox issued are checked before, by the gate.)
pub(crate) fn check(
    headers: &HeaderMap,
    expected: Option<&str>,
    others: &BTreeMap<String, u64>,
) -> Result<Actor, ApiError> {
    let presented = bearer(headers);
    if let Some(&user) = presented.and_then(|token| others.get(token)) {
        return Ok(Actor::User(user));
    }
    match (presented, expected) {
        (None, _) => Err(ApiError::unauthorized(NOT_FOUND)),
        (Some(token), Some(expected)) if token != expected => Err(ApiError::unauthorized(
            "The access token provided is not valid for this sandbox portal. Check the token configured with `crmsync sandbox --token`.",
        )),
        (Some(_), _) => Ok(Actor::Integration),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(header::AUTHORIZATION, v);
        }
        headers
    }

    #[test]
    fn accepts_only_the_configured_token() {
        let none = BTreeMap::new();
        assert!(check(&with("Bearer pat-1"), Some("pat-1"), &none).is_ok());
        assert!(check(&with("Bearer pat-2"), Some("pat-1"), &none).is_err());
        assert!(check(&with("Bearer anything"), None, &none).is_ok());
        assert!(check(&with("Bearer "), None, &none).is_err());
        assert!(check(&HeaderMap::new(), None, &none).is_err());
    }

    #[test]
    fn other_tokens_belong_to_users() {
        let others = BTreeMap::from([("ui-token".to_owned(), 7)]);
        assert_eq!(
            check(&with("Bearer ui-token"), Some("pat-1"), &others).ok(),
            Some(Actor::User(7))
        );
        assert_eq!(
            check(&with("Bearer pat-1"), Some("pat-1"), &others).ok(),
            Some(Actor::Integration)
        );
    }
}
