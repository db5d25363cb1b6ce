//! HubSpot-shaped error responses (FACTS 2.9).
//!
//! Every error leaves the emulator as JSON with `status:"error"`, `message`, a uuid
//! `correlationId` and a `category`, with `Content-Type: application/json` and the same id in
//! `X-HubSpot-Correlation-Id`. The npm client cannot parse an error without a content type
//! (FACTS 2.2), so no code path may answer an error any other way.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Header carrying the correlation id of an error (FACTS 2.9).
pub(crate) const CORRELATION_HEADER: &str = "x-hubspot-correlation-id";

/// One failed property value inside a `Property values were not valid: [...]` message.
#[derive(Debug, Clone)]
pub(crate) struct PropertyProblem {
    /// Property name, e.g. `email`.
    pub name: String,
    /// HubSpot error code, e.g. `INVALID_EMAIL`, `PROPERTY_DOESNT_EXIST`, `INVALID_OPTION`.
    pub error: &'static str,
    /// Human readable explanation.
    pub message: String,
}

/// An error answered to a client.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub category: &'static str,
    pub message: String,
    pub context: Option<Value>,
    pub errors: Vec<Value>,
    /// Further top-level fields some answers carry (`errorType`, `errorTokens`); boxed so the
    /// common error stays small in every `Result`.
    pub extra: Option<Box<serde_json::Map<String, Value>>>,
}

impl ApiError {
    pub fn new(status: StatusCode, category: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            category,
            message: message.into(),
            context: None,
            errors: Vec::new(),
            extra: None,
        }
    }

    /// 400 `VALIDATION_ERROR`.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
    }

    /// 404 `OBJECT_NOT_FOUND`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", message)
    }

    /// 409 `CONFLICT`, e.g. "Contact already exists. Existing ID: 123" (FACTS 2.3).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "CONFLICT", message)
    }

    /// 400 `VALIDATION_ERROR` for a `hasUniqueValue` property whose value another record holds,
    /// worded as HubSpot words it. Source: response bodies quoted verbatim in integrations'
    /// tests and incident notes (found through the code corpus, e.g. a Django HubSpot module's
    /// `test_service_event_create_with_same_data`, and a "live-verified" deal-identity check
    /// matching `category == VALIDATION_ERROR`, a message starting `Cannot set
    /// PropertyValueCoordinates{` and ending `already has that value.`): status 400,
    /// `errorType` `UNIQUE_VALUE_CONFLICT`, `errorTokens` naming both records. `on` is the
    /// record being written (for a create, the id HubSpot had allocated to it).
    pub fn unique_value_taken(
        object_type_id: &str,
        property: &str,
        value: &str,
        on: u64,
        existing: u64,
    ) -> Self {
        let mut error = Self::validation(format!(
            "Cannot set PropertyValueCoordinates{{objectTypeId={object_type_id}, propertyName={property}, value={value}}} on {on}. {existing} already has that value."
        ));
        let mut extra = serde_json::Map::new();
        extra.insert("errorType".to_owned(), json!("UNIQUE_VALUE_CONFLICT"));
        extra.insert(
            "errorTokens".to_owned(),
            json!({
                "objectTypeId": [object_type_id],
                "propertyName": [property],
                "conflictingValue": [value],
                "existingObjectId": [existing.to_string()],
                "objectId": [on.to_string()],
            }),
        );
        error.extra = Some(Box::new(extra));
        error
    }

    /// 401 `INVALID_AUTHENTICATION` (FACTS 2.1).
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "INVALID_AUTHENTICATION", message)
    }

    /// 400 `VALIDATION_ERROR` whose message embeds the JSON array of problems, exactly as
    /// HubSpot's v3 object endpoints do (FACTS 2.9).
    pub fn property_values(problems: &[PropertyProblem]) -> Self {
        let items: Vec<Value> = problems
            .iter()
            .map(|p| {
                json!({
                    "isValid": false,
                    "message": p.message,
                    "error": p.error,
                    "name": p.name,
                    "localizedErrorMessage": p.message,
                })
            })
            .collect();
        let embedded = serde_json::to_string(&items).unwrap_or_else(|_| "[]".to_owned());
        let mut error = Self::validation(format!("Property values were not valid: {embedded}"));
        error.errors = problems
            .iter()
            .map(|p| {
                json!({
                    "message": p.message,
                    "code": p.error,
                    "context": { "propertyName": [p.name] },
                })
            })
            .collect();
        error
    }

    pub fn with_context(mut self, context: Value) -> Self {
        self.context = Some(context);
        self
    }

    /// The body as a `StandardError` inside a batch response (`errors[]`, FACTS 2.3).
    pub fn standard_error(&self) -> Value {
        let mut body = json!({
            "status": "error",
            "category": self.category,
            "message": self.message,
            "errors": self.errors,
            "links": {},
        });
        if let (Some(context), Some(map)) = (&self.context, body.as_object_mut()) {
            map.insert("context".to_owned(), context.clone());
        }
        body
    }
}

/// Builds a JSON response with a fresh correlation id in body and header.
pub(crate) fn json_error(status: StatusCode, mut body: Value) -> Response {
    let correlation = uuid::Uuid::new_v4().to_string();
    if let Some(map) = body.as_object_mut() {
        map.insert(
            "correlationId".to_owned(),
            Value::String(correlation.clone()),
        );
    }
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&correlation) {
        headers.insert(CORRELATION_HEADER, value);
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "status": "error",
            "message": self.message,
            "category": self.category,
        });
        if let Some(map) = body.as_object_mut() {
            if let Some(context) = self.context {
                map.insert("context".to_owned(), context);
            }
            if !self.errors.is_empty() {
                map.insert("errors".to_owned(), Value::Array(self.errors));
            }
            for (name, value) in self.extra.into_iter().flat_map(|extra| *extra) {
                map.insert(name, value);
            }
        }
        json_error(self.status, body)
    }
}
