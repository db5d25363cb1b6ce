//! The REST surface under `/services/data/vNN.N/`: the request context handlers share and the
//! route table (FACTS 3.2–3.9). Invariant: trailing slashes never matter, `+` in query strings
//! is a space, and every route answers Salesforce-shaped JSON (errors included).

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use serde_json::Value;

use super::error::{SfError, SfResult};
use super::state::SfState;
use super::write::Writer;
use super::{clock, collections, discovery, query, replication, sobjects, tooling};

/// One authenticated API request.
pub(crate) struct Ctx<'a> {
    pub state: &'a SfState,
    pub method: Method,
    /// API version from the path, e.g. `59.0`.
    pub version: String,
    /// The caller's user id.
    pub user: String,
    pub headers: &'a HeaderMap,
    pub params: Vec<(String, String)>,
    pub body: &'a [u8],
}

impl Ctx<'_> {
    pub fn param(&self, key: &str) -> Option<String> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The JSON body (`{}` when empty).
    pub fn json(&self) -> SfResult<Value> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Object(serde_json::Map::new()));
        }
        serde_json::from_slice(self.body).map_err(|e| {
            SfError::bad(
                "JSON_PARSER_ERROR",
                format!("The request body is not valid JSON: {e}"),
            )
        })
    }

    /// The JSON body as an object.
    pub fn object_body(&self) -> SfResult<serde_json::Map<String, Value>> {
        match self.json()? {
            Value::Object(map) => Ok(map),
            _ => Err(SfError::bad(
                "JSON_PARSER_ERROR",
                "The request body must be a JSON object",
            )),
        }
    }

    pub fn writer(&self) -> Writer {
        Writer {
            user: self.user.clone(),
            now: clock::now(),
            users: self.state.users(),
        }
    }
}

/// Decodes `application/x-www-form-urlencoded` text (query strings and form bodies).
pub(crate) fn form_decode(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_plus(k), decode_plus(v))
        })
        .collect()
}

/// Percent-decoding with `+` as a space (`quote_plus`).
pub(crate) fn decode_plus(raw: &str) -> String {
    percent_decode_str(&raw.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

fn decode(raw: &str) -> String {
    percent_decode_str(raw).decode_utf8_lossy().into_owned()
}

/// Whether `segment` is an API version this sandbox serves (`v40.0` and later).
pub(crate) fn version_of(segment: &str) -> Option<String> {
    let number = segment.strip_prefix('v')?;
    let value: f64 = number.parse().ok()?;
    (value >= 40.0 && number.contains('.')).then(|| number.to_owned())
}

fn method_not_allowed(method: &Method) -> SfError {
    SfError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("HTTP Method '{method}' not allowed."),
    )
}

/// Routes `rest` (raw path segments after the version) to its handler: the endpoint class for
/// statistics and the answer.
pub(crate) fn route(ctx: &Ctx, rest: &[&str]) -> (String, Response) {
    let m = ctx.method.clone();
    let d: Vec<String> = rest.iter().map(|s| decode(s)).collect();
    let seg: Vec<&str> = d.iter().map(String::as_str).collect();
    let object = seg.get(1).copied().unwrap_or_default().to_owned();
    let (class, result): (String, SfResult) = match (&m, seg.as_slice()) {
        (&Method::GET, []) => ("/".into(), discovery::resources(ctx)),
        (&Method::GET, ["sobjects"]) => ("/sobjects".into(), discovery::global(ctx)),
        (&Method::GET, ["sobjects", t]) => (format!("/sobjects/{t}"), discovery::basic(ctx, t)),
        (&Method::POST, ["sobjects", t]) => (format!("/sobjects/{t}"), sobjects::create(ctx, t)),
        (_, ["sobjects", _]) => ("/sobjects/{type}".into(), Err(method_not_allowed(&m))),
        (&Method::GET, ["sobjects", t, "describe"]) => (
            format!("/sobjects/{t}/describe"),
            discovery::describe(ctx, t),
        ),
        (&Method::GET, ["sobjects", t, "updated"]) => (
            format!("/sobjects/{t}/updated"),
            replication::updated(ctx, t),
        ),
        (&Method::GET, ["sobjects", t, "deleted"]) => (
            format!("/sobjects/{t}/deleted"),
            replication::deleted(ctx, t),
        ),
        (&Method::GET, ["sobjects", t, id]) => {
            (format!("/sobjects/{t}/{{id}}"), sobjects::get(ctx, t, id))
        }
        (&Method::PATCH, ["sobjects", t, id]) => (
            format!("/sobjects/{t}/{{id}}"),
            sobjects::update(ctx, t, id),
        ),
        (&Method::DELETE, ["sobjects", t, id]) => (
            format!("/sobjects/{t}/{{id}}"),
            sobjects::delete(ctx, t, id),
        ),
        (_, ["sobjects", _, _]) => ("/sobjects/{type}/{id}".into(), Err(method_not_allowed(&m))),
        (&Method::GET, ["sobjects", t, field, _]) => {
            let value = decode_plus(rest.get(3).copied().unwrap_or_default());
            (
                format!("/sobjects/{t}/{field}/{{value}}"),
                sobjects::get_by_external_id(ctx, t, field, &value),
            )
        }
        (&Method::PATCH, ["sobjects", t, field, _]) => {
            let value = decode_plus(rest.get(3).copied().unwrap_or_default());
            (
                format!("/sobjects/{t}/{field}/{{value}}"),
                sobjects::upsert(ctx, t, field, &value),
            )
        }
        (_, ["sobjects", _, _, _]) => (
            "/sobjects/{type}/{field}/{value}".into(),
            Err(method_not_allowed(&m)),
        ),
        (&Method::GET, ["query"]) => ("/query".into(), query::run(ctx, false)),
        (&Method::GET, ["queryAll"]) => ("/queryAll".into(), query::run(ctx, true)),
        (&Method::GET, ["query" | "queryAll", locator]) => {
            ("/query/{locator}".into(), query::more(ctx, locator))
        }
        (&Method::GET, ["limits"]) => ("/limits".into(), discovery::limits(ctx)),
        (&Method::POST, ["composite", "sobjects"]) => {
            ("/composite/sobjects".into(), collections::create(ctx))
        }
        (&Method::PATCH, ["composite", "sobjects"]) => {
            ("/composite/sobjects".into(), collections::update(ctx))
        }
        (&Method::DELETE, ["composite", "sobjects"]) => {
            ("/composite/sobjects".into(), collections::delete(ctx))
        }
        (&Method::GET | &Method::POST, ["composite", "sobjects", t]) => (
            format!("/composite/sobjects/{t}"),
            collections::retrieve(ctx, t),
        ),
        (&Method::PATCH, ["composite", "sobjects", t, field]) => (
            format!("/composite/sobjects/{t}/{field}"),
            collections::upsert(ctx, t, field),
        ),
        (&Method::POST, ["tooling", "sobjects", "CustomField"]) => (
            "/tooling/sobjects/CustomField".into(),
            tooling::create_field(ctx),
        ),
        _ => (
            format!("/{}", seg.first().copied().unwrap_or_default()),
            Err(SfError::not_found()),
        ),
    };
    let response = match result {
        Ok(response) => response,
        Err(error) => error.respond(&ctx.version, &object),
    };
    (class, response)
}

/// 204 without a body.
pub(crate) fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}
