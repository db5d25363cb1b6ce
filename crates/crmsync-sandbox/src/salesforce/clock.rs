//! Time as Salesforce writes and reads it. Invariant: every datetime the sandbox stores or
//! answers is UTC, whole seconds, formatted `2024-01-15T10:20:30.000+0000`, so string order is
//! time order.

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};

/// Now, truncated to the whole second (Salesforce stamps carry no sub-second precision).
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

/// `2024-01-15T10:20:30.000+0000`.
pub(crate) fn format(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string()
}

/// A datetime as clients send it: RFC 3339 (`Z` or `±hh:mm`), Salesforce's own `±hhmm`, or
/// with a `+` that a query string decoded into a space.
pub(crate) fn parse(raw: &str) -> Option<DateTime<Utc>> {
    let text = raw.trim().replace(' ', "+");
    if let Ok(at) = DateTime::parse_from_rfc3339(&text) {
        return Some(at.with_timezone(&Utc));
    }
    for pattern in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(at) = DateTime::parse_from_str(&text, pattern) {
            return Some(at.with_timezone(&Utc));
        }
    }
    None
}

/// A `YYYY-MM-DD` date.
pub(crate) fn parse_date(raw: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok()
}

/// `at` with its seconds dropped (getUpdated/getDeleted work in whole minutes).
pub(crate) fn floor_minute(at: DateTime<Utc>) -> DateTime<Utc> {
    let secs = at.timestamp();
    DateTime::from_timestamp(secs - secs.rem_euclid(60), 0).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_every_client_spelling() {
        let at = parse("2024-01-15T10:20:30Z").expect("rfc3339");
        assert_eq!(format(at), "2024-01-15T10:20:30.000+0000");
        assert_eq!(parse("2024-01-15T10:20:30.000+0000"), Some(at));
        assert_eq!(parse("2024-01-15T11:20:30 01:00"), Some(at));
        assert_eq!(format(floor_minute(at)), "2024-01-15T10:20:00.000+0000");
        assert_eq!(parse("yesterday"), None);
    }
}
