//! Validation and normalisation of property values on write (FACTS 2.2, 2.9).
//!
//! Clients may send strings, numbers, booleans or null; the sandbox stores the normalised
//! string HubSpot would return, or rejects the value with HubSpot's error code.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde_json::Value;

use super::error::PropertyProblem;
use super::record::iso;
use super::schema::PropertyDef;

/// A value as sent by a client: `None` clears the property (empty string or null, FACTS 2.2).
pub(crate) fn raw_value(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

fn problem(def: &PropertyDef, error: &'static str, message: String) -> PropertyProblem {
    PropertyProblem {
        name: def.name.clone(),
        error,
        message,
    }
}

/// Returns the stored form of `raw` for the property `def`, or the problem with it.
pub(crate) fn normalize(
    def: &PropertyDef,
    is_email: bool,
    raw: &str,
) -> Result<String, PropertyProblem> {
    if is_email {
        return if is_valid_email(raw) {
            Ok(raw.to_owned())
        } else {
            Err(problem(
                def,
                "INVALID_EMAIL",
                format!("Email address {raw} is invalid"),
            ))
        };
    }
    // Since 2025 HubSpot rejects surrounding blanks in non-string values (FACTS 2.7).
    let blanks = raw.trim() != raw;
    match def.kind.as_str() {
        "number" => match raw.parse::<f64>() {
            Ok(n) if n.is_finite() && !blanks => Ok(raw.to_owned()),
            _ => Err(problem(
                def,
                "INVALID_INTEGER",
                format!("{raw} was not a valid number."),
            )),
        },
        "bool" => match raw {
            "true" | "false" => Ok(raw.to_owned()),
            "TRUE" | "True" => Ok("true".to_owned()),
            "FALSE" | "False" => Ok("false".to_owned()),
            _ => Err(problem(
                def,
                "INVALID_OPTION",
                format!("{raw} was not one of the allowed options: [true, false]"),
            )),
        },
        "enumeration" => {
            let allowed = |v: &str| def.options.iter().any(|o| o.value == v);
            let ok = if def.field_type == "checkbox" {
                raw.split(';').all(|v| v.is_empty() || allowed(v))
            } else {
                allowed(raw)
            };
            // Sandbox-maintained multi-value fields (merged ids) have no fixed options.
            if ok || def.read_only_value {
                Ok(raw.to_owned())
            } else {
                let names: Vec<&str> = def.options.iter().map(|o| o.value.as_str()).collect();
                Err(problem(
                    def,
                    "INVALID_OPTION",
                    format!(
                        "{raw} was not one of the allowed options: [{}]",
                        names.join(", ")
                    ),
                ))
            }
        }
        "date" => parse_instant(raw)
            .filter(|at| !blanks && at.time() == NaiveTime::MIN)
            .map(|at| at.date_naive().format("%Y-%m-%d").to_string())
            .ok_or_else(|| {
                problem(
                    def,
                    "INVALID_DATE",
                    format!("{raw} is not a valid date (midnight UTC)"),
                )
            }),
        "datetime" => parse_instant(raw)
            .filter(|_| !blanks)
            .map(iso)
            .ok_or_else(|| {
                problem(
                    def,
                    "INVALID_DATE",
                    format!("{raw} is not a valid datetime"),
                )
            }),
        _ => Ok(raw.to_owned()),
    }
}

/// Parses epoch milliseconds, RFC 3339 or a bare `YYYY-MM-DD` (midnight UTC).
pub(crate) fn parse_instant(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    if let Ok(ms) = raw.parse::<i64>() {
        return DateTime::from_timestamp_millis(ms);
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
        return Some(at.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_time(NaiveTime::MIN).and_utc())
}

/// A deliberately simple syntax check: one `@`, a non-empty local part, a dotted domain and
/// no blanks. HubSpot's own check is stricter only in exotic cases.
pub(crate) fn is_valid_email(raw: &str) -> bool {
    let Some((local, domain)) = raw.split_once('@') else {
        return false;
    };
    let labels: Vec<&str> = domain.split('.').collect();
    !local.is_empty()
        && !domain.contains('@')
        && !raw.chars().any(|c| c.is_whitespace() || c.is_control())
        && labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty())
        && labels.last().is_some_and(|tld| tld.len() >= 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_syntax() {
        assert!(is_valid_email("ada@example.com"));
        assert!(!is_valid_email("not an email"));
        assert!(!is_valid_email("a@b"));
        assert!(!is_valid_email("@example.com"));
        assert!(!is_valid_email("a@@example.com"));
    }

    #[test]
    fn instants_accept_epoch_iso_and_dates() {
        let expected = parse_instant("2024-03-01T00:00:00Z");
        assert!(expected.is_some());
        assert_eq!(parse_instant("1709251200000"), expected);
        assert_eq!(parse_instant("2024-03-01"), expected);
        assert_eq!(parse_instant("yesterday"), None);
    }
}
