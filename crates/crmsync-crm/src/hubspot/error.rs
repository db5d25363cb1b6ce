//! Turns HubSpot's answers into [`CrmError`]s, once, at the edge: the status picks the
//! [`ErrorKind`] (401/403 auth, 429 rate limited, 5xx server, other 4xx rejected), the body gives
//! the CRM's own words (FACTS 2.9), and a 429 says how long to wait (FACTS 2.10).
//!
//! Messages are lowercase sentences that name what was being done (`contacts batch upsert`) and
//! quote HubSpot, so a quarantined record or an alert explains itself without the call log.

use std::time::Duration;

use reqwest::header::HeaderMap;

use super::wire;
use crate::{CrmError, ErrorKind, ObjectKind};

/// Prefix of the property-value validation message that embeds a JSON array (FACTS 2.9).
const PROPERTY_VALUES_PREFIX: &str = "Property values were not valid:";

/// How much of a non-JSON error body we quote (HubSpot sometimes answers 404/502 with HTML).
const RAW_BODY_QUOTE: usize = 200;

/// The CRM's words for one failure, before they are put in a sentence.
#[derive(Debug, Default, PartialEq, Eq)]
struct Described {
    /// Most specific code: the property error (`INVALID_EMAIL`), else the category.
    code: Option<String>,
    /// The category as HubSpot sent it (`VALIDATION_ERROR`), shown in the message.
    category: Option<String>,
    text: String,
    property: Option<String>,
}

/// Classifies a non-2xx answer to `what` (e.g. `contacts batch upsert`).
pub(crate) fn from_response(what: &str, status: u16, headers: &HeaderMap, body: &str) -> CrmError {
    let parsed: Option<wire::Error> = serde_json::from_str(body).ok();
    let described = match &parsed {
        Some(err) => describe_error(err),
        None => Described {
            text: quote_raw(body),
            ..Described::default()
        },
    };
    let head = match &described.category {
        Some(category) => format!("{status} {category}"),
        None => status.to_string(),
    };
    let text = &described.text;
    let (kind, message, retry_after) = match status {
        401 | 403 => {
            let mut message = format!("hubspot refused the credentials for {what}: {head}: {text}");
            let scopes = parsed.as_ref().map(required_scopes).unwrap_or_default();
            if scopes.is_empty() {
                message.push_str(PRIVATE_APP_HINT);
            } else {
                message.push_str(&format!("; grant the app the scopes {}", scopes.join(", ")));
            }
            (ErrorKind::Auth, message, None)
        }
        429 => {
            let policy = parsed.as_ref().and_then(|e| e.policy_name.clone());
            let head = match &policy {
                Some(policy) => format!("429 {policy}"),
                None => head,
            };
            let message = format!("hubspot rate limit reached on {what}: {head}: {text}");
            let wait = retry_after(headers, policy.as_deref(), text);
            (ErrorKind::RateLimited, message, wait)
        }
        500..=599 => (
            ErrorKind::Server,
            format!("hubspot failed {what}: {head}: {text}"),
            None,
        ),
        // A property that does not exist or cannot be written is wrong for every record the
        // mapping sends, not for this one: a schema error, so delivery stops instead of
        // splitting the batch down to single records.
        400..=499 if is_schema_code(described.code.as_deref()) => {
            let property = described.property.as_deref().unwrap_or("?");
            (
                ErrorKind::Schema,
                format!(
                    "hubspot rejected {what}: {head}: {text}; every record of this mapping would fail the same way: create the property `{property}` in HubSpot (or make it writable), or remove it from the mapping, then start crmsync again"
                ),
                None,
            )
        }
        400..=499 => (
            ErrorKind::Rejected,
            format!("hubspot rejected {what}: {head}: {text}"),
            None,
        ),
        _ => (
            ErrorKind::Protocol,
            format!("hubspot answered {what} with unexpected status {head}: {text}"),
            None,
        ),
    };
    let code = if status == 429 {
        parsed
            .as_ref()
            .and_then(|e| e.policy_name.clone())
            .or(described.code)
    } else {
        described.code
    };
    CrmError {
        kind,
        status: Some(status),
        code,
        message,
        retry_after,
        property: described.property,
    }
}

/// What a refused private-app token suggests checking.
const PRIVATE_APP_HINT: &str = "; check the access token and the private app's scopes";

/// `err` as a public app's: a refused token is not a private app's to check, but the app's
/// installation (a refresh was already tried when this is a 401).
pub(crate) fn for_public_app(mut err: CrmError) -> CrmError {
    if let Some(head) = err.message.strip_suffix(PRIVATE_APP_HINT) {
        err.message = format!(
            "{head}; check that the app is still installed in the account, with the scopes crmsync needs"
        );
    }
    err
}

/// Codes that name a property the portal does not have or does not let us write: no record
/// of the mapping can succeed until the portal or the mapping changes.
fn is_schema_code(code: Option<&str>) -> bool {
    matches!(code, Some("PROPERTY_DOESNT_EXIST" | "READ_ONLY_VALUE"))
}

/// Whether a refused write says a unique value it carries is held by another record — for a
/// create of ours, the sign that the record exists already (a write whose answer was lost).
/// HubSpot says so two ways:
/// - a contact's e-mail: 409 `CONFLICT` "Contact already exists. Existing ID: N" (FACTS 2.3,
///   many threads; newer answers say `OBJECT_ALREADY_EXISTS`, error `CONTACT_EXISTS`, HubSpot
///   community thread "Updated 409 Conflict responses", 2024);
/// - a `hasUniqueValue` property: 400 `VALIDATION_ERROR` "Cannot set
///   PropertyValueCoordinates{…, propertyName=p, value=v} on N. M already has that value."
///   (`errorType` `UNIQUE_VALUE_CONFLICT`), as quoted verbatim in integrations' test fixtures.
pub(crate) fn is_value_taken(err: &CrmError) -> bool {
    if err.kind != ErrorKind::Rejected {
        return false;
    }
    let conflict = matches!(
        err.code.as_deref(),
        Some("CONFLICT" | "OBJECT_ALREADY_EXISTS" | "CONTACT_EXISTS")
    );
    err.message.contains("already has that value")
        || (conflict && err.message.contains("already exists"))
}

/// A 2xx answer whose body we cannot read.
pub(crate) fn protocol(what: &str, detail: impl std::fmt::Display) -> CrmError {
    CrmError::new(
        ErrorKind::Protocol,
        format!("hubspot answered {what} with a body crmsync cannot read: {detail}"),
    )
}

/// One record's error inside a 207 batch answer.
pub(crate) fn record_error(object: ObjectKind, key: &str, err: &wire::StandardError) -> CrmError {
    let described = describe_standard(err);
    let head = described.category.as_deref().unwrap_or("error");
    CrmError {
        kind: ErrorKind::Rejected,
        status: Some(207),
        code: described.code,
        message: format!(
            "hubspot rejected {object} record {key}: {head}: {}",
            described.text
        ),
        retry_after: None,
        property: described.property,
    }
}

/// Same as [`record_error`] for a batch-level error we cannot tie to a record.
pub(crate) fn batch_error(what: &str, err: &wire::StandardError) -> CrmError {
    let described = describe_standard(err);
    let head = described.category.as_deref().unwrap_or("error");
    CrmError {
        kind: ErrorKind::Rejected,
        status: Some(207),
        code: described.code,
        message: format!("hubspot rejected {what}: {head}: {}", described.text),
        retry_after: None,
        property: described.property,
    }
}

fn describe_error(err: &wire::Error) -> Described {
    let category = err.category.clone().or_else(|| err.error_type.clone());
    describe(category, err.message.as_deref(), &err.errors)
}

fn describe_standard(err: &wire::StandardError) -> Described {
    describe(err.category.clone(), err.message.as_deref(), &err.errors)
}

fn describe(
    category: Option<String>,
    message: Option<&str>,
    details: &[wire::ErrorDetail],
) -> Described {
    let message = message.unwrap_or("").trim();
    if let Some(items) = parse_property_errors(message) {
        let invalid: Vec<&wire::PropertyValidationResult> =
            items.iter().filter(|i| !i.is_valid).collect();
        let shown = if invalid.is_empty() {
            items.iter().collect()
        } else {
            invalid
        };
        let parts: Vec<String> = shown.iter().map(|item| property_item(item)).collect();
        let first = shown.first();
        return Described {
            code: first
                .and_then(|i| i.error.clone())
                .or_else(|| category.clone()),
            category,
            text: format!("{PROPERTY_VALUES_PREFIX} {}", parts.join("; ")),
            property: first.and_then(|i| i.name.clone()),
        };
    }
    // Other validation errors put the specifics in `errors[]` (`code`, `in` = the field).
    let detail = details
        .iter()
        .find(|d| d.code.is_some() || d.in_field.is_some());
    let mut text = if message.is_empty() {
        details
            .iter()
            .filter_map(|d| d.message.as_deref())
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        message.to_string()
    };
    if text.is_empty() {
        text = "no error message".to_string();
    }
    if let Some(detail) = detail {
        match (&detail.code, &detail.in_field) {
            (Some(code), Some(field)) => text.push_str(&format!(" ({code} for {field})")),
            (Some(code), None) => text.push_str(&format!(" ({code})")),
            (None, Some(field)) => text.push_str(&format!(" (in {field})")),
            (None, None) => {}
        }
    }
    Described {
        code: detail
            .and_then(|d| d.code.clone())
            .or_else(|| category.clone()),
        category,
        text,
        property: detail.and_then(|d| d.in_field.clone()),
    }
}

/// `Email address foo@bar is invalid (INVALID_EMAIL for email)`.
fn property_item(item: &wire::PropertyValidationResult) -> String {
    let message = item.message.as_deref().unwrap_or("invalid value");
    match (&item.error, &item.name) {
        (Some(code), Some(name)) => format!("{message} ({code} for {name})"),
        (Some(code), None) => format!("{message} ({code})"),
        (None, Some(name)) => format!("{message} (for {name})"),
        (None, None) => message.to_string(),
    }
}

/// Parses the JSON array HubSpot embeds after `Property values were not valid:` (FACTS 2.9).
/// `None` when the message has another form or the array does not parse.
pub(crate) fn parse_property_errors(message: &str) -> Option<Vec<wire::PropertyValidationResult>> {
    let start = message.find(PROPERTY_VALUES_PREFIX)? + PROPERTY_VALUES_PREFIX.len();
    let rest = message[start..].trim_start();
    if !rest.starts_with('[') {
        return None;
    }
    // A streaming deserializer stops after the array, so trailing text does not matter.
    let mut de = serde_json::Deserializer::from_str(rest);
    let items: Vec<wire::PropertyValidationResult> =
        serde::Deserialize::deserialize(&mut de).ok()?;
    if items.is_empty() { None } else { Some(items) }
}

/// Scopes a 403 `MISSING_SCOPES` says are needed (`errors[].context.requiredGranularScopes`, FACTS 2.1).
fn required_scopes(err: &wire::Error) -> Vec<String> {
    let mut scopes: Vec<String> = err
        .errors
        .iter()
        .flat_map(|d| wire::context_strings(&d.context, "requiredGranularScopes"))
        .chain(wire::context_strings(
            &err.context,
            "requiredGranularScopes",
        ))
        .collect();
    scopes.sort();
    scopes.dedup();
    scopes
}

/// The wait before retrying a 429 (FACTS 2.10): the `Retry-After` header when present (not every
/// 429 has one); else the policy's window: `TEN_SECONDLY_ROLLING` the interval HubSpot reports
/// in `X-HubSpot-RateLimit-Interval-Milliseconds` or 10 s, `SECONDLY` 1 s. `DAILY` and unknown
/// policies give `None`: waiting seconds will not help a daily limit.
fn retry_after(headers: &HeaderMap, policy: Option<&str>, text: &str) -> Option<Duration> {
    if let Some(secs) =
        header_str(headers, "retry-after").and_then(|v| v.trim().parse::<f64>().ok())
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some(Duration::from_secs_f64(secs.min(3600.0)));
    }
    match policy {
        Some("TEN_SECONDLY_ROLLING") => Some(
            header_str(headers, "x-hubspot-ratelimit-interval-milliseconds")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|ms| *ms > 0 && *ms <= 60_000)
                .map(Duration::from_millis)
                .unwrap_or(Duration::from_secs(10)),
        ),
        Some("SECONDLY") => Some(Duration::from_secs(1)),
        // The search limit's 429 may come without a policy name; the npm client keys on this text.
        _ if text.contains("secondly limit") && !text.contains("ten_secondly") => {
            Some(Duration::from_secs(1))
        }
        _ => None,
    }
}

/// Whether a 429 is HubSpot's daily limit, which no in-call retry can outwait.
pub(crate) fn is_daily_limit(err: &CrmError) -> bool {
    err.kind == ErrorKind::RateLimited && err.code.as_deref() == Some("DAILY")
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn quote_raw(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        return "empty error body".to_string();
    }
    let mut quoted: String = body.chars().take(RAW_BODY_QUOTE).collect();
    if quoted.len() < body.len() {
        quoted.push('…');
    }
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                *name,
                HeaderValue::from_str(value).expect("test header value"),
            );
        }
        map
    }

    const INVALID_EMAIL_BODY: &str = r#"{"status":"error","message":"Property values were not valid: [{\"isValid\":false,\"message\":\"Email address foo@bar is invalid\",\"error\":\"INVALID_EMAIL\",\"name\":\"email\",\"localizedErrorMessage\":\"Email address foo@bar is invalid\"}]","correlationId":"aeb5f871-7f07-4993-9211-075dc63e7cbf","category":"VALIDATION_ERROR"}"#;

    #[test]
    fn invalid_email_names_the_property_and_code() {
        let err = from_response(
            "contacts batch upsert",
            400,
            &HeaderMap::new(),
            INVALID_EMAIL_BODY,
        );
        assert_eq!(err.kind, ErrorKind::Rejected);
        assert_eq!(err.status, Some(400));
        assert_eq!(err.code.as_deref(), Some("INVALID_EMAIL"));
        assert_eq!(err.property.as_deref(), Some("email"));
        assert_eq!(
            err.message,
            "hubspot rejected contacts batch upsert: 400 VALIDATION_ERROR: Property values were not valid: \
             Email address foo@bar is invalid (INVALID_EMAIL for email)"
        );
        assert!(!err.is_retryable());
    }

    #[test]
    fn several_invalid_properties_are_all_quoted() {
        let body = r#"{"status":"error","category":"VALIDATION_ERROR","correlationId":"x","message":"Property values were not valid: [{\"isValid\":false,\"message\":\"Property \\\"foo\\\" does not exist\",\"error\":\"PROPERTY_DOESNT_EXIST\",\"name\":\"foo\"},{\"isValid\":false,\"message\":\"bar was not one of the allowed options\",\"error\":\"INVALID_OPTION\",\"name\":\"dealstage\"}]"}"#;
        let err = from_response("deals batch upsert", 400, &HeaderMap::new(), body);
        assert_eq!(err.code.as_deref(), Some("PROPERTY_DOESNT_EXIST"));
        assert_eq!(err.property.as_deref(), Some("foo"));
        assert!(
            err.message
                .contains(r#"Property "foo" does not exist (PROPERTY_DOESNT_EXIST for foo)"#),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("(INVALID_OPTION for dealstage)"),
            "{}",
            err.message
        );
        assert_eq!(
            err.kind,
            ErrorKind::Schema,
            "a missing property fails every record: no bisecting"
        );
        assert!(
            err.message.contains("create the property `foo`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_bad_option_alone_is_a_record_problem() {
        let body = r#"{"status":"error","category":"VALIDATION_ERROR","message":"Property values were not valid: [{\"isValid\":false,\"message\":\"bar was not one of the allowed options\",\"error\":\"INVALID_OPTION\",\"name\":\"dealstage\"}]"}"#;
        let err = from_response("deals batch upsert", 400, &HeaderMap::new(), body);
        assert_eq!(err.kind, ErrorKind::Rejected);
    }

    #[test]
    fn property_array_with_trailing_text_still_parses() {
        let items = parse_property_errors(
            r#"Property values were not valid: [{"isValid":false,"error":"INVALID_INTEGER","name":"n"}] (see docs)"#,
        )
        .expect("parsed");
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].error.as_deref(), Some("INVALID_INTEGER"));
        assert_eq!(
            parse_property_errors("Property values were not valid: oops"),
            None
        );
        assert_eq!(parse_property_errors("something else"), None);
    }

    #[test]
    fn conflict_is_rejected_with_the_crm_message() {
        let body = r#"{"status":"error","message":"Contact already exists. Existing ID: 123","correlationId":"c","category":"CONFLICT"}"#;
        let err = from_response("contacts batch upsert", 409, &HeaderMap::new(), body);
        assert_eq!(err.kind, ErrorKind::Rejected);
        assert_eq!(err.code.as_deref(), Some("CONFLICT"));
        assert_eq!(
            err.message,
            "hubspot rejected contacts batch upsert: 409 CONFLICT: Contact already exists. Existing ID: 123"
        );
    }

    #[test]
    fn unauthorized_and_forbidden_are_auth() {
        let body = r#"{"status":"error","message":"Authentication credentials not found. This API supports OAuth 2.0 authentication.","correlationId":"c","category":"INVALID_AUTHENTICATION"}"#;
        let err = from_response("contacts property listing", 401, &HeaderMap::new(), body);
        assert_eq!(err.kind, ErrorKind::Auth);
        assert_eq!(err.code.as_deref(), Some("INVALID_AUTHENTICATION"));
        assert!(err.message.starts_with(
            "hubspot refused the credentials for contacts property listing: 401 INVALID_AUTHENTICATION: Authentication credentials not found."
        ));
        assert!(!err.is_retryable());

        let body = r#"{"status":"error","message":"This app hasn't been granted all required scopes to make this call.","correlationId":"c","category":"MISSING_SCOPES","errors":[{"message":"One or more of the following scopes are required.","context":{"requiredGranularScopes":["crm.objects.contacts.write"]}}]}"#;
        let err = from_response("contacts batch upsert", 403, &HeaderMap::new(), body);
        assert_eq!(err.kind, ErrorKind::Auth);
        assert!(
            err.message
                .ends_with("grant the app the scopes crm.objects.contacts.write"),
            "{}",
            err.message
        );
    }

    const TEN_SECONDLY_BODY: &str = r#"{"status":"error","message":"You have reached your ten_secondly_rolling limit.","errorType":"RATE_LIMIT","correlationId":"c","policyName":"TEN_SECONDLY_ROLLING","requestId":"r"}"#;

    #[test]
    fn ten_secondly_429_waits_the_window() {
        let err = from_response(
            "contacts batch upsert",
            429,
            &HeaderMap::new(),
            TEN_SECONDLY_BODY,
        );
        assert_eq!(err.kind, ErrorKind::RateLimited);
        assert_eq!(err.code.as_deref(), Some("TEN_SECONDLY_ROLLING"));
        assert_eq!(err.retry_after(), Some(Duration::from_secs(10)));
        assert_eq!(
            err.message,
            "hubspot rate limit reached on contacts batch upsert: 429 TEN_SECONDLY_ROLLING: You have reached your ten_secondly_rolling limit."
        );
        assert!(err.is_retryable());

        // The window HubSpot reports wins over the 10 s default.
        let h = headers(&[("x-hubspot-ratelimit-interval-milliseconds", "2000")]);
        let err = from_response("contacts batch upsert", 429, &h, TEN_SECONDLY_BODY);
        assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
    }

    #[test]
    fn retry_after_header_wins() {
        let h = headers(&[("retry-after", "3")]);
        let err = from_response("contacts batch upsert", 429, &h, TEN_SECONDLY_BODY);
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    }

    #[test]
    fn secondly_and_daily_limits() {
        let body = r#"{"status":"error","message":"You have reached your secondly limit.","errorType":"RATE_LIMIT","correlationId":"c","policyName":"SECONDLY"}"#;
        let err = from_response("contacts search", 429, &HeaderMap::new(), body);
        assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));

        let body = r#"{"status":"error","message":"You have reached your secondly limit.","category":"RATE_LIMITS","correlationId":"c"}"#;
        let err = from_response("contacts search", 429, &HeaderMap::new(), body);
        assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));

        let body = r#"{"status":"error","message":"You have reached your daily limit.","errorType":"RATE_LIMIT","correlationId":"c","policyName":"DAILY"}"#;
        let err = from_response("contacts batch upsert", 429, &HeaderMap::new(), body);
        assert_eq!(err.kind, ErrorKind::RateLimited);
        assert_eq!(err.retry_after(), None);
        assert!(is_daily_limit(&err));
    }

    #[test]
    fn server_errors_are_retryable_and_html_is_quoted() {
        let err = from_response(
            "contacts batch upsert",
            502,
            &HeaderMap::new(),
            "<html><body>Bad Gateway</body></html>",
        );
        assert_eq!(err.kind, ErrorKind::Server);
        assert!(err.is_retryable());
        assert_eq!(
            err.message,
            "hubspot failed contacts batch upsert: 502: <html><body>Bad Gateway</body></html>"
        );

        let err = from_response(
            "contacts property crmsync_id lookup",
            404,
            &HeaderMap::new(),
            "",
        );
        assert_eq!(err.kind, ErrorKind::Rejected);
        assert_eq!(
            err.message,
            "hubspot rejected contacts property crmsync_id lookup: 404: empty error body"
        );
    }

    #[test]
    fn validation_details_in_errors_array_are_named() {
        let body = r#"{"status":"error","message":"Invalid input JSON on line 1","correlationId":"c","category":"VALIDATION_ERROR","errors":[{"message":"too many inputs","code":"TOO_MANY_INPUTS","in":"inputs"}]}"#;
        let err = from_response("contacts batch upsert", 400, &HeaderMap::new(), body);
        assert_eq!(err.code.as_deref(), Some("TOO_MANY_INPUTS"));
        assert_eq!(err.property.as_deref(), Some("inputs"));
        assert!(
            err.message
                .ends_with("Invalid input JSON on line 1 (TOO_MANY_INPUTS for inputs)"),
            "{}",
            err.message
        );
    }

    #[test]
    fn per_record_error_names_the_record() {
        let err: wire::StandardError = serde_json::from_str(
            r#"{"status":"error","category":"VALIDATION_ERROR","message":"Property values were not valid: [{\"isValid\":false,\"message\":\"Email address x is invalid\",\"error\":\"INVALID_EMAIL\",\"name\":\"email\"}]","context":{"ids":["42"]}}"#,
        )
        .expect("parse");
        let e = record_error(ObjectKind::Contacts, "42", &err);
        assert_eq!(
            e.message,
            "hubspot rejected contacts record 42: VALIDATION_ERROR: Property values were not valid: Email address x is invalid (INVALID_EMAIL for email)"
        );
        assert_eq!(e.code.as_deref(), Some("INVALID_EMAIL"));
        assert_eq!(
            wire::context_strings(&err.context, "ids"),
            vec!["42".to_string()]
        );
    }
}
