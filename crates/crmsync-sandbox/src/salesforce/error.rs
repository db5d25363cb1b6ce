//! Salesforce error answers (FACTS 3.10). Invariant: every error leaves as a JSON array of
//! `{message, errorCode, fields?}`; inside sObject Collections the same error is written as
//! `{statusCode, message, fields}`.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One Salesforce error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub(crate) struct SfError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub fields: Vec<String>,
    /// For 300 Multiple Choices: the ids an external id matched.
    pub matches: Vec<String>,
}

impl SfError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            fields: Vec::new(),
            matches: Vec::new(),
        }
    }

    /// 400 with `code`.
    pub fn bad(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn with_fields<I, S>(mut self, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.fields = fields.into_iter().map(Into::into).collect();
        self
    }

    /// 404 `NOT_FOUND`.
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        )
    }

    /// 401 `INVALID_SESSION_ID`.
    pub fn invalid_session() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        )
    }

    /// 300: an external id matched several records.
    pub fn multiple(ids: Vec<String>) -> Self {
        let mut error = Self::new(
            StatusCode::MULTIPLE_CHOICES,
            "DUPLICATE_EXTERNAL_ID",
            format!(
                "more than one record found for external id field: [{}]",
                ids.join(", ")
            ),
        );
        error.matches = ids;
        error
    }

    /// `{message, errorCode, fields?}` as in REST error arrays.
    pub fn to_json(&self) -> Value {
        let mut body = json!({"message": self.message, "errorCode": self.code});
        if !self.fields.is_empty() {
            body["fields"] = json!(self.fields);
        }
        body
    }

    /// `{statusCode, message, fields}` as in sObject Collections results.
    pub fn to_item(&self) -> Value {
        json!({"statusCode": self.code, "message": self.message, "fields": self.fields})
    }

    /// The REST answer; a 300 lists the matching record URLs under API `version`.
    pub fn respond(&self, version: &str, object: &str) -> Response {
        if self.status == StatusCode::MULTIPLE_CHOICES {
            let urls: Vec<Value> = self
                .matches
                .iter()
                .map(|id| json!(format!("/services/data/v{version}/sobjects/{object}/{id}")))
                .collect();
            return json_response(self.status, &Value::Array(urls));
        }
        self.clone().into_response()
    }
}

impl IntoResponse for SfError {
    fn into_response(self) -> Response {
        json_response(self.status, &json!([self.to_json()]))
    }
}

/// A JSON answer with Salesforce's content type.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

/// 200 with `body`.
pub(crate) fn ok(body: &Value) -> Response {
    json_response(StatusCode::OK, body)
}

pub(crate) type SfResult<T = Response> = Result<T, SfError>;
