//! Salesforce's errors turned into [`CrmError`]s once, with Salesforce's own words: REST error
//! arrays `[{message, errorCode, fields}]`, collection items (`statusCode`), OAuth answers
//! `{error, error_description}` and the 300 of an ambiguous External ID (FACTS 3.4, 3.10).
//!
//! Invariant: the message quotes Salesforce's message and code, never a token or a request body.

use crate::{CrmError, ErrorKind, ObjectKind};

use super::wire::{ApiError, OAuthError};

/// The daily (rolling 24 h) limit's message; the concurrency limit shares the code but clears
/// in seconds.
const TOTAL_REQUESTS: &str = "TotalRequests";

/// Codes that name a field the org does not have or will not let us write: no record of the
/// mapping can succeed until the org or the mapping changes.
fn is_schema_code(code: &str) -> bool {
    matches!(
        code,
        "INVALID_FIELD" | "INVALID_FIELD_FOR_INSERT_UPDATE" | "INVALID_TYPE" | "NO_SUCH_COLUMN"
    )
}

/// The error a non-2xx answer means.
pub(crate) fn from_response(what: &str, status: u16, body: &str) -> CrmError {
    if status == 300 {
        let candidates: Vec<String> = serde_json::from_str(body).unwrap_or_default();
        return CrmError::new(
            ErrorKind::Rejected,
            format!(
                "salesforce found {} records for one external id in {what} (300 Multiple Choices); crmsync does not guess which one: make the External ID field unique",
                candidates.len()
            ),
        )
        .with_status(300)
        .with_code("MULTIPLE_CHOICES");
    }
    // serde reads a struct from a JSON array too: only an object is an OAuth answer.
    if body.trim_start().starts_with('{')
        && let Ok(oauth) = serde_json::from_str::<OAuthError>(body)
    {
        let text = oauth
            .error_description
            .map(|d| format!("{}: {d}", oauth.error))
            .unwrap_or_else(|| oauth.error.clone());
        return CrmError::new(
            ErrorKind::Auth,
            format!("salesforce refused {what}: {text}"),
        )
        .with_status(status)
        .with_code(oauth.error);
    }
    let first = serde_json::from_str::<Vec<ApiError>>(body)
        .ok()
        .and_then(|errors| errors.into_iter().next());
    let (code, text, field) = match first {
        Some(e) => (
            e.error_code.unwrap_or_else(|| "UNKNOWN".into()),
            e.message,
            e.fields.into_iter().next(),
        ),
        None => (format!("HTTP_{status}"), quote_raw(body), None),
    };
    let kind = match status {
        401 => ErrorKind::Auth,
        403 if code == "REQUEST_LIMIT_EXCEEDED" => ErrorKind::RateLimited,
        403 => ErrorKind::Auth,
        429 => ErrorKind::RateLimited,
        500..=599 => ErrorKind::Server,
        _ if is_schema_code(&code) => ErrorKind::Schema,
        _ => ErrorKind::Rejected,
    };
    let mut err = CrmError::new(kind, format!("salesforce refused {what}: {code}: {text}"))
        .with_status(status)
        .with_code(code);
    if let Some(field) = field {
        err = err.with_property(field);
    }
    err
}

/// One record's error inside a collection answer.
pub(crate) fn record_error(object: ObjectKind, key: &str, errors: &[ApiError]) -> CrmError {
    let Some(first) = errors.first() else {
        return CrmError::new(
            ErrorKind::Rejected,
            format!("salesforce rejected {object} record {key} without saying why"),
        );
    };
    let code = first.error_code.clone().unwrap_or_else(|| "UNKNOWN".into());
    let kind = if is_schema_code(&code) {
        ErrorKind::Schema
    } else {
        ErrorKind::Rejected
    };
    let mut err = CrmError::new(
        kind,
        format!(
            "salesforce rejected {object} record {key}: {code}: {}",
            first.message
        ),
    )
    .with_code(code);
    if let Some(field) = first.fields.first() {
        err = err.with_property(field.clone());
    }
    err
}

/// A 2xx answer whose body we cannot read.
pub(crate) fn protocol(what: &str, detail: impl std::fmt::Display) -> CrmError {
    CrmError::new(
        ErrorKind::Protocol,
        format!("salesforce answered {what} with a body crmsync cannot read: {detail}"),
    )
}

/// Whether `err` is the rolling 24 h limit, which no in-call retry can outwait.
pub(crate) fn is_daily_limit(err: &CrmError) -> bool {
    err.kind == ErrorKind::RateLimited
        && err.code.as_deref() == Some("REQUEST_LIMIT_EXCEEDED")
        && err.message.contains(TOTAL_REQUESTS)
}

/// Whether `err` says the access token expired (FACTS 3.1).
pub(crate) fn is_expired_session(err: &CrmError) -> bool {
    err.status == Some(401) && err.code.as_deref() == Some("INVALID_SESSION_ID")
}

fn quote_raw(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        return "empty error body".into();
    }
    let mut quoted: String = body.chars().take(300).collect();
    if quoted.len() < body.len() {
        quoted.push('…');
    }
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_arrays_keep_salesforce_words_and_kinds() {
        let e = from_response(
            "Account upsert",
            400,
            r#"[{"message":"No such column 'Foo__c' on sobject of type Account","errorCode":"INVALID_FIELD"}]"#,
        );
        assert_eq!(e.kind, ErrorKind::Schema);
        assert!(e.message.contains("No such column"), "{}", e.message);
        let e = from_response(
            "query",
            403,
            r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#,
        );
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert!(is_daily_limit(&e));
        let e = from_response(
            "query",
            401,
            r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
        );
        assert!(is_expired_session(&e));
        let e = from_response(
            "token",
            400,
            r#"{"error":"invalid_grant","error_description":"expired access/refresh token"}"#,
        );
        assert_eq!(
            (e.kind, e.code.as_deref()),
            (ErrorKind::Auth, Some("invalid_grant"))
        );
        let e = from_response("Account upsert", 300, r#"["/a/1","/a/2"]"#);
        assert_eq!(e.code.as_deref(), Some("MULTIPLE_CHOICES"));
        assert!(!e.is_retryable());
        let e = from_response("query", 502, "<html>bad gateway</html>");
        assert_eq!(e.kind, ErrorKind::Server);
    }

    #[test]
    fn a_collection_item_names_record_field_and_rule() {
        let errors: Vec<ApiError> = serde_json::from_str(
            r#"[{"statusCode":"INVALID_EMAIL_ADDRESS","message":"Email: invalid email address: x","fields":["Email"]}]"#,
        )
        .expect("parse");
        let e = record_error(ObjectKind::Contacts, "42", &errors);
        assert_eq!(e.kind, ErrorKind::Rejected);
        assert_eq!(e.property.as_deref(), Some("Email"));
        assert!(e.message.contains("record 42"), "{}", e.message);
    }
}
