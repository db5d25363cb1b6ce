//! Dates and datetimes as apps store them, turned into what HubSpot's `date` and `datetime`
//! properties take: `YYYY-MM-DD` (a date at midnight UTC) and ISO-8601 UTC with milliseconds
//! (`2026-03-04T10:20:00.000Z`). Formats are chrono `strftime` patterns or the keywords `iso`,
//! `unix` (seconds) and `unix_ms`. Our own output is always accepted as input, so applying a
//! transform twice changes nothing. The way back ([`date_to_app`], [`datetime_to_app`]) writes a
//! CRM value in the app's first format such that the forward conversion gives it again.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc};
use std::fmt::Write as _;

/// How an app writes its dates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// A chrono `strftime` pattern such as `%d.%m.%Y %H:%M`.
    Pattern(String),
    /// RFC 3339, or `YYYY-MM-DD[ T]HH:MM:SS[.fff]`, or `YYYY-MM-DD`.
    Iso,
    /// Seconds since the Unix epoch.
    Unix,
    /// Milliseconds since the Unix epoch.
    UnixMs,
}

impl Format {
    /// Reads a format from the config: a keyword or a pattern (which must contain a `%`).
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "iso" => Ok(Format::Iso),
            "unix" => Ok(Format::Unix),
            "unix_ms" => Ok(Format::UnixMs),
            p if p.contains('%') => {
                // chrono reports a bad pattern only when used; try it once on a sample.
                let probe = chrono::format::StrftimeItems::new(p);
                if probe
                    .clone()
                    .any(|i| matches!(i, chrono::format::Item::Error))
                {
                    Err(format!("`{p}` is not a valid strftime pattern"))
                } else {
                    Ok(Format::Pattern(p.to_string()))
                }
            }
            other => Err(format!(
                "`{other}` is neither a strftime pattern (e.g. \"%d.%m.%Y\") nor one of iso, unix, unix_ms"
            )),
        }
    }
}

/// What one parse found: an instant, or a local date and time without a zone.
enum Parsed {
    Instant(DateTime<FixedOffset>),
    Local(NaiveDateTime),
}

fn parse_one(value: &str, format: &Format) -> Option<Parsed> {
    match format {
        Format::Unix => value
            .parse::<i64>()
            .ok()
            .and_then(|s| DateTime::from_timestamp(s, 0))
            .map(|d| Parsed::Instant(d.fixed_offset())),
        Format::UnixMs => value
            .parse::<i64>()
            .ok()
            .and_then(DateTime::from_timestamp_millis)
            .map(|d| Parsed::Instant(d.fixed_offset())),
        Format::Iso => {
            if let Ok(d) = DateTime::parse_from_rfc3339(value) {
                return Some(Parsed::Instant(d));
            }
            // PostgreSQL's text of a `timestamptz` (`2026-01-05 10:00:00+00`, DateStyle ISO)
            // and MySQL-style offsets: ISO 8601 with an offset whose minutes may be missing.
            for p in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
                if let Ok(d) = DateTime::parse_from_str(value, p) {
                    return Some(Parsed::Instant(d));
                }
            }
            for p in [
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M",
                "%Y-%m-%d %H:%M",
            ] {
                if let Ok(d) = NaiveDateTime::parse_from_str(value, p) {
                    return Some(Parsed::Local(d));
                }
            }
            NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .ok()
                .map(|d| Parsed::Local(d.and_time(NaiveTime::MIN)))
        }
        Format::Pattern(p) => {
            if let Ok(d) = DateTime::parse_from_str(value, p) {
                return Some(Parsed::Instant(d));
            }
            if let Ok(d) = NaiveDateTime::parse_from_str(value, p) {
                return Some(Parsed::Local(d));
            }
            NaiveDate::parse_from_str(value, p)
                .ok()
                .map(|d| Parsed::Local(d.and_time(NaiveTime::MIN)))
        }
    }
}

fn parse_any(value: &str, formats: &[Format]) -> Result<Parsed, String> {
    let value = value.trim();
    // Canonical output first: this is what makes the transforms idempotent.
    std::iter::once(&Format::Iso)
        .chain(formats)
        .find_map(|f| parse_one(value, f))
        .ok_or_else(|| {
            let names: Vec<String> = formats
                .iter()
                .map(|f| match f {
                    Format::Pattern(p) => format!("`{p}`"),
                    Format::Iso => "iso".into(),
                    Format::Unix => "unix".into(),
                    Format::UnixMs => "unix_ms".into(),
                })
                .collect();
            format!("is not a date in the format {}", names.join(" or "))
        })
}

/// `value` as `YYYY-MM-DD`: the calendar date as written (a zone in the input is ignored, so
/// `2026-03-04T23:30+02:00` stays the 4th). Empty stays empty.
pub fn to_date(value: &str, formats: &[Format]) -> Result<String, String> {
    if value.trim().is_empty() {
        return Ok(String::new());
    }
    let date = match parse_any(value, formats)? {
        Parsed::Instant(d) => d.date_naive(),
        Parsed::Local(d) => d.date(),
    };
    Ok(date.format("%Y-%m-%d").to_string())
}

/// `value` as ISO-8601 UTC with milliseconds. A value without a zone is taken at `offset`
/// (UTC when `None`). Empty stays empty.
pub fn to_datetime(
    value: &str,
    formats: &[Format],
    offset: Option<FixedOffset>,
) -> Result<String, String> {
    if value.trim().is_empty() {
        return Ok(String::new());
    }
    let utc: DateTime<Utc> = match parse_any(value, formats)? {
        Parsed::Instant(d) => d.with_timezone(&Utc),
        Parsed::Local(d) => {
            let zone = offset.unwrap_or_else(utc_offset);
            zone.from_local_datetime(&d)
                .single()
                .ok_or("is not a valid local time")?
                .with_timezone(&Utc)
        }
    };
    Ok(utc.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// A CRM `date` value (`YYYY-MM-DD`; an instant such as HubSpot's midnight-UTC epoch
/// milliseconds gives its UTC date) written in the app's `format`: the reverse of [`to_date`].
/// Empty stays empty.
pub fn date_to_app(crm: &str, format: &Format) -> Result<String, String> {
    let crm = crm.trim();
    if crm.is_empty() {
        return Ok(String::new());
    }
    let date = parse_crm_instant(crm)
        .map(|at| at.date_naive())
        .ok_or("is not a date (YYYY-MM-DD)")?;
    let midnight = date.and_time(NaiveTime::MIN).and_utc().fixed_offset();
    match format {
        Format::Iso => Ok(date.format("%Y-%m-%d").to_string()),
        other => write_in(midnight, other),
    }
}

/// A CRM `datetime` value (ISO-8601 / RFC 3339, or epoch milliseconds) written in the app's
/// `format` at `offset` (UTC when `None`): the reverse of [`to_datetime`], which reads a
/// zone-less app value at that offset. A pattern with a zone shows the offset it is written at;
/// `iso` is RFC 3339 UTC without an offset and zone-less local time with one (an offset only
/// matters to apps storing zone-less times). Empty stays empty.
pub fn datetime_to_app(
    crm: &str,
    format: &Format,
    offset: Option<FixedOffset>,
) -> Result<String, String> {
    let crm = crm.trim();
    if crm.is_empty() {
        return Ok(String::new());
    }
    let at = parse_crm_instant(crm).ok_or(
        "is not a datetime (ISO-8601 such as 2025-01-15T10:20:00.000Z, or epoch milliseconds)",
    )?;
    match (format, offset) {
        (Format::Iso, None) => Ok(at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
        (Format::Iso, Some(o)) => Ok(at
            .with_timezone(&o)
            .format("%Y-%m-%dT%H:%M:%S%.3f")
            .to_string()),
        (other, o) => write_in(at.with_timezone(&o.unwrap_or_else(utc_offset)), other),
    }
}

/// What a CRM date or datetime property holds: RFC 3339, `YYYY-MM-DD` (midnight UTC) or epoch
/// milliseconds (HubSpot's form in older APIs and webhooks).
fn parse_crm_instant(crm: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc3339(crm) {
        return Some(d.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(crm, "%Y-%m-%d") {
        return Some(d.and_time(NaiveTime::MIN).and_utc());
    }
    crm.parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_millis)
}

/// `at` in an app format other than `iso`. chrono reports a pattern it cannot fill only while
/// writing, so that is an error here rather than a panic in `to_string`.
fn write_in(at: DateTime<FixedOffset>, format: &Format) -> Result<String, String> {
    match format {
        Format::Unix => Ok(at.timestamp().to_string()),
        Format::UnixMs => Ok(at.timestamp_millis().to_string()),
        Format::Iso => Ok(at.to_rfc3339()),
        Format::Pattern(p) => {
            let mut out = String::new();
            write!(out, "{}", at.format(p))
                .map_err(|_| format!("cannot be written in the format `{p}`"))?;
            Ok(out)
        }
    }
}

fn utc_offset() -> FixedOffset {
    Utc.fix()
}

/// Reads `+01:00`, `-05:30` or `Z` as an offset.
pub fn parse_offset(s: &str) -> Result<FixedOffset, String> {
    if s == "Z" || s == "UTC" {
        return Ok(utc_offset());
    }
    let bad = || format!("`{s}` is not a UTC offset like \"+01:00\"");
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let h: i32 = h.parse().map_err(|_| bad())?;
    let m: i32 = m.parse().map_err(|_| bad())?;
    if h > 23 || m > 59 {
        return Err(bad());
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60)).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn f(p: &str) -> Vec<Format> {
        vec![Format::parse(p).expect("format")]
    }

    #[test]
    fn dates_from_app_formats() {
        assert_eq!(
            to_date("04.03.2026", &f("%d.%m.%Y")).as_deref(),
            Ok("2026-03-04")
        );
        assert_eq!(
            to_date("2026-03-04", &f("%d.%m.%Y")).as_deref(),
            Ok("2026-03-04")
        );
        assert_eq!(
            to_date("2026-03-04T23:30:00+02:00", &f("iso")).as_deref(),
            Ok("2026-03-04")
        );
        assert_eq!(
            to_date("1772582400", &f("unix")).as_deref(),
            Ok("2026-03-04")
        );
        assert!(to_date("31.02.2026", &f("%d.%m.%Y")).is_err());
        assert!(to_date("yesterday", &f("%d.%m.%Y")).is_err());
    }

    #[test]
    fn postgres_timestamptz_text_is_iso() {
        assert_eq!(
            to_datetime("2026-01-05 10:00:00+00", &f("iso"), None).as_deref(),
            Ok("2026-01-05T10:00:00.000Z")
        );
        assert_eq!(
            to_datetime("2026-01-05 10:00:00.25+02", &f("iso"), None).as_deref(),
            Ok("2026-01-05T08:00:00.250Z")
        );
        assert_eq!(
            to_datetime("2026-01-05 10:00:00-05:30", &f("iso"), None).as_deref(),
            Ok("2026-01-05T15:30:00.000Z")
        );
    }

    #[test]
    fn datetimes_become_utc_with_millis() {
        assert_eq!(
            to_datetime("04.03.2026 10:20", &f("%d.%m.%Y %H:%M"), None).as_deref(),
            Ok("2026-03-04T10:20:00.000Z")
        );
        let berlin = parse_offset("+01:00").ok();
        assert_eq!(
            to_datetime("04.03.2026 10:20", &f("%d.%m.%Y %H:%M"), berlin).as_deref(),
            Ok("2026-03-04T09:20:00.000Z")
        );
        assert_eq!(
            to_datetime("2026-03-04T10:20:00.5+02:00", &f("iso"), None).as_deref(),
            Ok("2026-03-04T08:20:00.500Z")
        );
        assert_eq!(
            to_datetime("1772619600123", &f("unix_ms"), None).as_deref(),
            Ok("2026-03-04T10:20:00.123Z")
        );
        assert_eq!(
            to_datetime("2026-03-04", &f("iso"), None).as_deref(),
            Ok("2026-03-04T00:00:00.000Z")
        );
    }

    #[test]
    fn crm_dates_in_each_app_format() {
        let fmt = |p: &str| Format::parse(p).expect("format");
        for (format, app) in [
            ("%d.%m.%Y", "15.01.2025"),
            ("%m/%d/%Y", "01/15/2025"),
            ("iso", "2025-01-15"),
            ("unix", "1736899200"),
            ("unix_ms", "1736899200000"),
        ] {
            assert_eq!(
                date_to_app("2025-01-15", &fmt(format)).as_deref(),
                Ok(app),
                "{format}"
            );
        }
        for crm in [
            "1736899200000",
            "2025-01-15T00:00:00Z",
            "2025-01-15T00:00:00.000Z",
        ] {
            assert_eq!(
                date_to_app(crm, &fmt("%d.%m.%Y")).as_deref(),
                Ok("15.01.2025"),
                "{crm}"
            );
        }
        assert_eq!(date_to_app("", &fmt("%d.%m.%Y")).as_deref(), Ok(""));
        assert_eq!(
            date_to_app("15.01.2025", &fmt("%d.%m.%Y")),
            Err("is not a date (YYYY-MM-DD)".into())
        );
    }

    #[test]
    fn crm_datetimes_at_the_app_offset() {
        let fmt = |p: &str| Format::parse(p).expect("format");
        let berlin = parse_offset("+01:00").ok();
        let crm = "2026-03-04T09:20:00.500Z";
        for (format, offset, app) in [
            ("iso", None, "2026-03-04T09:20:00.500Z"),
            ("iso", berlin, "2026-03-04T10:20:00.500"),
            ("%d.%m.%Y %H:%M", berlin, "04.03.2026 10:20"),
            ("%d.%m.%Y %H:%M", None, "04.03.2026 09:20"),
            ("%Y-%m-%d %H:%M:%S%:z", berlin, "2026-03-04 10:20:00+01:00"),
            ("unix", berlin, "1772616000"),
            ("unix_ms", berlin, "1772616000500"),
        ] {
            assert_eq!(
                datetime_to_app(crm, &fmt(format), offset).as_deref(),
                Ok(app),
                "{format} {offset:?}"
            );
        }
        assert_eq!(
            datetime_to_app("1772616000500", &fmt("iso"), None).as_deref(),
            Ok(crm)
        );
        assert_eq!(
            datetime_to_app("2026-03-04T10:20:00+01:00", &fmt("iso"), None).as_deref(),
            Ok("2026-03-04T09:20:00.000Z")
        );
        assert_eq!(datetime_to_app(" ", &fmt("iso"), None).as_deref(), Ok(""));
        assert!(datetime_to_app("04.03.2026", &fmt("iso"), None).is_err());
    }

    #[test]
    fn bad_formats_and_offsets_are_config_errors() {
        assert!(Format::parse("dd.mm.yyyy").is_err());
        assert!(Format::parse("%Q").is_err());
        assert!(parse_offset("+1").is_err());
        assert!(parse_offset("+25:00").is_err());
    }

    proptest! {
        #[test]
        fn never_panic(s in ".{0,30}", p in "[%a-zA-Z.:/ -]{0,12}") {
            if let Ok(fmt) = Format::parse(&p) {
                let _ = to_date(&s, std::slice::from_ref(&fmt));
                let _ = to_datetime(&s, &[fmt], None);
            }
        }

        #[test]
        fn the_way_back_never_panics(s in ".{0,30}", p in "[%a-zA-Z.:/ -]{0,12}", east in -86_399i32..86_400) {
            if let Ok(fmt) = Format::parse(&p) {
                let _ = date_to_app(&s, &fmt);
                let _ = datetime_to_app(&s, &fmt, FixedOffset::east_opt(east));
                let _ = date_to_app("2025-01-15", &fmt);
                let _ = datetime_to_app("2025-01-15T10:20:00Z", &fmt, FixedOffset::east_opt(east));
            }
        }

        #[test]
        fn idempotent(d in 1i64..4_000_000_000_000, fmt in prop_oneof![Just("unix_ms"), Just("%d.%m.%Y %H:%M:%S")]) {
            let formats = f(fmt);
            let input = match fmt {
                "unix_ms" => d.to_string(),
                _ => DateTime::from_timestamp_millis(d).map(|t| t.format("%d.%m.%Y %H:%M:%S").to_string()).unwrap_or_default(),
            };
            if let Ok(once) = to_datetime(&input, &formats, None) {
                prop_assert_eq!(to_datetime(&once, &formats, None), Ok(once.clone()));
            }
            if let Ok(once) = to_date(&input, &formats) {
                prop_assert_eq!(to_date(&once, &formats), Ok(once.clone()));
            }
        }
    }
}
