//! Replication API (FACTS 3.7): `GET …/sobjects/{T}/updated/?start=&end=` and
//! `…/deleted/?start=&end=`. Invariant: windows are whole minutes (seconds ignored) and
//! `latestDateCovered` never lies in the future or after `end`, so a client that continues
//! from it misses nothing.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::clock;
use super::error::{SfError, SfResult, ok};
use super::rest::Ctx;
use super::sobjects::object;

const MAX_IDS: usize = 600_000;

fn window(ctx: &Ctx, max_days: i64) -> SfResult<(DateTime<Utc>, DateTime<Utc>, DateTime<Utc>)> {
    let read = |key: &str| -> SfResult<DateTime<Utc>> {
        let raw = ctx.param(key).ok_or_else(|| {
            SfError::bad(
                "MISSING_ARGUMENT",
                format!("{key} is required, e.g. {key}=2024-01-01T00:00:00+00:00"),
            )
        })?;
        clock::parse(&raw).ok_or_else(|| {
            SfError::bad(
                "INVALID_REPLICATION_DATE",
                format!("{key} is not a valid dateTime: {raw}"),
            )
        })
    };
    let start = clock::floor_minute(read("start")?);
    let end = clock::floor_minute(read("end")?);
    let now = clock::now();
    if start > end {
        return Err(SfError::bad(
            "INVALID_REPLICATION_DATE",
            "startDate must chronologically precede endDate",
        ));
    }
    if start < now - Duration::days(max_days) {
        return Err(SfError::bad(
            "INVALID_REPLICATION_DATE",
            format!("startDate cannot be more than {max_days} days ago"),
        ));
    }
    let covered = end.min(clock::floor_minute(now));
    Ok((start, end, covered))
}

fn within(stamp: &Value, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
    stamp
        .as_str()
        .and_then(clock::parse)
        .is_some_and(|at| at >= start && at < end)
}

/// `…/updated/`: live records whose SystemModstamp falls in the window.
pub(crate) fn updated(ctx: &Ctx, object_name: &str) -> SfResult {
    let (start, end, covered) = window(ctx, 30)?;
    let org = ctx.state.org();
    let def = object(&org, object_name)?;
    let ids: Vec<&str> = org
        .table(&def.name)
        .map(|t| {
            t.values()
                .filter(|r| !r.is_deleted() && within(r.get("SystemModstamp"), start, end))
                .map(|r| r.id())
                .collect()
        })
        .unwrap_or_default();
    if ids.len() > MAX_IDS {
        return Err(SfError::bad(
            "EXCEEDED_ID_LIMIT",
            "more than 600,000 ids; use a shorter window",
        ));
    }
    Ok(ok(
        &json!({"ids": ids, "latestDateCovered": clock::format(covered)}),
    ))
}

/// `…/deleted/`: records deleted (or merged away) in the window.
pub(crate) fn deleted(ctx: &Ctx, object_name: &str) -> SfResult {
    let (start, end, covered) = window(ctx, 15)?;
    let org = ctx.state.org();
    let def = object(&org, object_name)?;
    let rows: Vec<Value> = org
        .table(&def.name)
        .map(|t| {
            t.values()
                .filter_map(|r| {
                    let at = r.deleted_at.as_ref()?;
                    (r.is_deleted() && within(&Value::String(at.clone()), start, end))
                        .then(|| json!({"id": r.id(), "deletedDate": at}))
                })
                .collect()
        })
        .unwrap_or_default();
    if rows.len() > MAX_IDS {
        return Err(SfError::bad(
            "EXCEEDED_ID_LIMIT",
            "more than 600,000 ids; use a shorter window",
        ));
    }
    let created = org.created_at.as_str();
    let earliest = clock::parse(created)
        .map(clock::floor_minute)
        .map_or_else(|| created.to_owned(), clock::format);
    Ok(ok(&json!({
        "deletedRecords": rows,
        "earliestDateAvailable": earliest,
        "latestDateCovered": clock::format(covered),
    })))
}
