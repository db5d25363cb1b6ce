//! Discovery (FACTS 3.2, 3.3, 3.8, 3.9): the version list, the resource map, describe global,
//! per-object basic info and describe, and `/limits`. Invariant: every URL in these answers
//! uses the API version the client called with.

use std::time::Instant;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::error::{SfResult, json_response, ok};
use super::rest::Ctx;
use super::sobjects::object;

const VERSIONS: &[(&str, &str)] = &[
    ("56.0", "Winter '23"),
    ("57.0", "Spring '23"),
    ("58.0", "Summer '23"),
    ("59.0", "Winter '24"),
    ("60.0", "Spring '24"),
    ("61.0", "Summer '24"),
    ("62.0", "Winter '25"),
];

/// `GET /services/data/` (no authentication, as on Salesforce).
pub(crate) fn versions() -> Response {
    let list: Vec<Value> = VERSIONS
        .iter()
        .map(|(v, label)| json!({"label": label, "url": format!("/services/data/v{v}"), "version": v}))
        .collect();
    json_response(StatusCode::OK, &Value::Array(list))
}

/// `GET /services/data/vNN.N/`.
pub(crate) fn resources(ctx: &Ctx) -> SfResult {
    let base = format!("/services/data/v{}", ctx.version);
    let mut map = serde_json::Map::new();
    for key in [
        "sobjects",
        "query",
        "queryAll",
        "search",
        "limits",
        "composite",
        "tooling",
        "recent",
    ] {
        map.insert(key.to_owned(), json!(format!("{base}/{key}")));
    }
    map.insert(
        "identity".to_owned(),
        json!(format!("/id/{}/{}", ctx.state.org_id(), ctx.user)),
    );
    Ok(ok(&Value::Object(map)))
}

/// `GET …/sobjects`.
pub(crate) fn global(ctx: &Ctx) -> SfResult {
    let org = ctx.state.org();
    let objects: Vec<Value> = org
        .objects
        .iter()
        .map(|o| o.summary(&ctx.version))
        .collect();
    Ok(ok(
        &json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": objects}),
    ))
}

/// `GET …/sobjects/{T}`.
pub(crate) fn basic(ctx: &Ctx, name: &str) -> SfResult {
    let org = ctx.state.org();
    let def = object(&org, name)?;
    Ok(ok(
        &json!({"objectDescribe": def.summary(&ctx.version), "recentItems": []}),
    ))
}

/// `GET …/sobjects/{T}/describe`.
pub(crate) fn describe(ctx: &Ctx, name: &str) -> SfResult {
    let org = ctx.state.org();
    let def = object(&org, name)?;
    let children: Vec<Value> = org
        .objects
        .iter()
        .flat_map(|o| {
            o.fields
                .iter()
                .filter(|f| f.reference_to.contains(&def.name) && f.name != "MasterRecordId")
                .map(|f| {
                    json!({
                        "childSObject": o.name,
                        "field": f.name,
                        "relationshipName": null,
                        "cascadeDelete": false,
                    })
                })
                .collect::<Vec<_>>()
        })
        .collect();
    Ok(ok(&def.describe(&ctx.version, children)))
}

/// `GET …/limits`.
pub(crate) fn limits(ctx: &Ctx) -> SfResult {
    let usage = ctx.state.limiter().usage(Instant::now());
    let entry = |max: u64, remaining: u64| json!({"Max": max, "Remaining": remaining});
    let records: usize = ctx
        .state
        .org()
        .records
        .values()
        .map(std::collections::BTreeMap::len)
        .sum();
    // Salesforce counts about 2 KB of data storage per record.
    let storage_used = (records as u64 * 2) / 1024;
    Ok(ok(&json!({
        "DailyApiRequests": entry(u64::from(usage.max), u64::from(usage.max.saturating_sub(usage.used))),
        "DailyBulkApiBatches": entry(15_000, 15_000),
        "DailyBulkV2QueryJobs": entry(10_000, 10_000),
        "DailyBulkV2QueryFileStorageMB": entry(976_562, 976_562),
        "DailyStreamingApiEvents": entry(1_000_000, 1_000_000),
        "DataStorageMB": entry(1_024, 1_024u64.saturating_sub(storage_used)),
        "FileStorageMB": entry(1_024, 1_024),
        "SingleEmail": entry(5_000, 5_000),
        "ConcurrentAsyncGetReportInstances": entry(200, 200),
    })))
}
