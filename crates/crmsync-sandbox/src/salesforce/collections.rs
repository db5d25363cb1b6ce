//! sObject Collections (FACTS 3.5): create, update, upsert by external id, delete and
//! retrieve up to 200 records in one call. Invariant: results come in request order, item
//! errors use `statusCode`, and with `allOrNone: true` a single failure leaves the org exactly
//! as it was (successful items report `ALL_OR_NONE_OPERATION_ROLLED_BACK`).

use serde_json::{Map, Value, json};

use super::error::{SfError, SfResult, ok};
use super::org::Org;
use super::rest::Ctx;
use super::sobjects::{field_list, object, record_json};
use super::write::{self, Upserted, Writer};

const MAX_RECORDS: usize = 200;

type Outcome = Result<(String, Option<bool>), SfError>;

fn too_many(n: usize) -> SfError {
    SfError::bad(
        "EXCEEDED_ID_LIMIT",
        format!(
            "record limit reached. cannot submit more than {MAX_RECORDS} records into this call (got {n})"
        ),
    )
}

struct Batch {
    all_or_none: bool,
    records: Vec<Map<String, Value>>,
}

fn batch(ctx: &Ctx) -> SfResult<Batch> {
    let body = ctx.object_body()?;
    let all_or_none = body
        .get("allOrNone")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let records = match body.get("records") {
        Some(Value::Array(items)) => items,
        _ => {
            return Err(SfError::bad(
                "JSON_PARSER_ERROR",
                "records must be an array of sObjects",
            ));
        }
    };
    if records.len() > MAX_RECORDS {
        return Err(too_many(records.len()));
    }
    let records = records
        .iter()
        .map(|r| {
            r.as_object()
                .cloned()
                .ok_or_else(|| SfError::bad("JSON_PARSER_ERROR", "each record must be an object"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Batch {
        all_or_none,
        records,
    })
}

fn record_type(record: &Map<String, Value>) -> Option<String> {
    record
        .get("attributes")
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn missing_type() -> SfError {
    SfError::bad("INVALID_TYPE", "Each record must have attributes.type")
}

/// Applies `op` to every record under one lock; rolls back on failure when `all_or_none`.
fn apply<F>(ctx: &Ctx, all_or_none: bool, n: usize, mut op: F) -> Value
where
    F: FnMut(&mut Org, &Writer, usize) -> Outcome,
{
    let writer = ctx.writer();
    let mut org = ctx.state.org();
    let snapshot = all_or_none.then(|| org.clone());
    let outcomes: Vec<Outcome> = (0..n).map(|i| op(&mut org, &writer, i)).collect();
    let failed = outcomes.iter().any(Result::is_err);
    if failed && let Some(snapshot) = snapshot {
        *org = snapshot;
    }
    let rolled_back = failed && all_or_none;
    let items: Vec<Value> = outcomes
        .into_iter()
        .map(|outcome| match outcome {
            Ok(_) if rolled_back => json!({
                "id": null,
                "success": false,
                "errors": [{
                    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
                    "fields": [],
                }],
            }),
            Ok((id, created)) => {
                let mut item = json!({"id": id, "success": true, "errors": []});
                if let Some(created) = created {
                    item["created"] = json!(created);
                }
                item
            }
            Err(error) => json!({"id": null, "success": false, "errors": [error.to_item()]}),
        })
        .collect();
    Value::Array(items)
}

/// `POST /composite/sobjects`.
pub(crate) fn create(ctx: &Ctx) -> SfResult {
    let Batch {
        all_or_none,
        records,
    } = batch(ctx)?;
    let result = apply(ctx, all_or_none, records.len(), |org, writer, i| {
        let record = &records[i];
        let ty = record_type(record).ok_or_else(missing_type)?;
        write::create(org, writer, &ty, record).map(|id| (id, None))
    });
    Ok(ok(&result))
}

/// `PATCH /composite/sobjects`: each record carries `id` and `attributes.type`.
pub(crate) fn update(ctx: &Ctx) -> SfResult {
    let Batch {
        all_or_none,
        records,
    } = batch(ctx)?;
    let result = apply(ctx, all_or_none, records.len(), |org, writer, i| {
        let record = &records[i];
        let id = record
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("id"))
            .and_then(|(_, v)| v.as_str())
            .ok_or_else(|| {
                SfError::bad("MISSING_ARGUMENT", "Id not specified in an update call")
                    .with_fields(["Id"])
            })?;
        let ty = match record_type(record) {
            Some(ty) => ty,
            None => org
                .object_of_id(id)
                .map(|o| o.name.clone())
                .ok_or_else(missing_type)?,
        };
        write::update(org, writer, &ty, id, record).map(|id| (id, None))
    });
    Ok(ok(&result))
}

/// `PATCH /composite/sobjects/{Type}/{ExtField}`.
pub(crate) fn upsert(ctx: &Ctx, object_name: &str, field: &str) -> SfResult {
    let Batch {
        all_or_none,
        records,
    } = batch(ctx)?;
    let (def, field) = {
        let org = ctx.state.org();
        let def = object(&org, object_name)?;
        let field = write::external_field(&def, field)?.name.clone();
        (def, field)
    };
    let result = apply(ctx, all_or_none, records.len(), |org, writer, i| {
        let record = &records[i];
        let value = record
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&field))
            .map(|(_, v)| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .filter(|v| !v.is_empty() && v != "null")
            .ok_or_else(|| {
                SfError::bad("MISSING_ARGUMENT", format!("{field} not specified"))
                    .with_fields([field.clone()])
            })?;
        match write::upsert(org, writer, &def.name, &field, &value, record)? {
            Upserted::Created(id) => Ok((id, Some(true))),
            Upserted::Updated(id) => Ok((id, Some(false))),
        }
    });
    Ok(ok(&result))
}

/// `DELETE /composite/sobjects?ids=…&allOrNone=…`.
pub(crate) fn delete(ctx: &Ctx) -> SfResult {
    let ids: Vec<String> = ctx
        .param("ids")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if ids.len() > MAX_RECORDS {
        return Err(too_many(ids.len()));
    }
    let all_or_none = ctx
        .param("allOrNone")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let result = apply(ctx, all_or_none, ids.len(), |org, writer, i| {
        write::delete(org, writer, None, &ids[i]).map(|id| (id, None))
    });
    // Failed deletes name the id they were about.
    let mut items = match result {
        Value::Array(items) => items,
        other => return Ok(ok(&other)),
    };
    for (item, id) in items.iter_mut().zip(&ids) {
        if item["id"].is_null() {
            item["id"] = json!(id);
        }
    }
    Ok(ok(&Value::Array(items)))
}

/// `GET /composite/sobjects/{Type}?ids=…&fields=…` or `POST` with `{ids, fields}`.
pub(crate) fn retrieve(ctx: &Ctx, object_name: &str) -> SfResult {
    let (ids, fields): (Vec<String>, Option<String>) = if ctx.method == axum::http::Method::POST {
        let body = ctx.object_body()?;
        let list = |key: &str| -> Vec<String> {
            body.get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let fields = list("fields");
        (list("ids"), (!fields.is_empty()).then(|| fields.join(",")))
    } else {
        let ids = ctx
            .param("ids")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        (ids, ctx.param("fields"))
    };
    if ids.len() > 2000 {
        return Err(too_many(ids.len()));
    }
    let org = ctx.state.org();
    let def = object(&org, object_name)?;
    let fields = field_list(&def, fields)?;
    let rows: Vec<Value> = ids
        .iter()
        .map(|id| {
            write::existing(&org, &def.name, id)
                .map(|r| record_json(&def, r, fields.as_deref(), &ctx.version))
                .unwrap_or(Value::Null)
        })
        .collect();
    Ok(ok(&Value::Array(rows)))
}
