//! Request extractors that fail the HubSpot way: query strings with repeated parameters and
//! JSON bodies whose parse errors become 400 `VALIDATION_ERROR` bodies (never plain text).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Decoded query parameters in order, repeated keys kept.
///
/// HubSpot's SDKs send `properties=a&properties=b` while the docs describe `properties=a,b`;
/// both are accepted (FACTS 1, 2.3).
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(raw: &str) -> Self {
        Params(
            raw.split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (decode(key), decode(value))
                })
                .collect(),
        )
    }

    /// First value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// All values of `key`, repeated and comma-separated; `None` when the key is absent.
    pub fn list(&self, key: &str) -> Option<Vec<String>> {
        let mut found = false;
        let mut values = Vec::new();
        for (_, value) in self.0.iter().filter(|(k, _)| k == key) {
            found = true;
            values.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned),
            );
        }
        found.then_some(values)
    }

    /// `true` only for `key=true` (case-insensitive).
    pub fn flag(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// `limit` within `1..=max`, `default` when absent.
    pub fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.get("limit") {
            None | Some("") => Ok(default),
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::validation(format!(
                    "limit must be a number between 1 and {max}, got {raw}"
                ))),
            },
        }
    }
}

/// Percent-decoding with `+` as space (form encoding). Invalid escapes are kept verbatim.
fn decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.uri.query().map(Params::parse).unwrap_or_default())
    }
}

/// A JSON body; malformed JSON is a HubSpot-shaped 400 (FACTS 2.9).
pub(crate) struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::validation(format!("Unable to read the request body: {e}")))?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::validation(format!("Invalid input JSON: {e}")))
    }
}

/// An object id sent as JSON string or number.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum IdValue {
    Text(String),
    Number(serde_json::Number),
}

impl IdValue {
    pub fn text(&self) -> String {
        match self {
            IdValue::Text(s) => s.clone(),
            IdValue::Number(n) => n.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_comma_separated_lists() {
        let params = Params::parse("properties=email&properties=firstname,lastname&limit=5");
        assert_eq!(
            params.list("properties"),
            Some(vec!["email".into(), "firstname".into(), "lastname".into()])
        );
        assert_eq!(params.list("associations"), None);
        assert_eq!(params.limit(10, 100).ok(), Some(5));
    }

    #[test]
    fn decodes_percent_and_plus() {
        let params = Params::parse("id=a%40b.com&q=hello+world&bad=%zz&tail=%4");
        assert_eq!(params.get("id"), Some("a@b.com"));
        assert_eq!(params.get("q"), Some("hello world"));
        assert_eq!(params.get("bad"), Some("%zz"));
        assert_eq!(params.get("tail"), Some("%4"));
    }
}
