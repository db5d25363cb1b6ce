//! Single-record sObject REST (FACTS 3.3, 3.4): create, read (`?fields=`), update, delete,
//! read and upsert by external id. Invariant: success codes are Salesforce's (201 create,
//! 204 update/delete, 201/200 upsert with `created`), and a 300 changes nothing.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::error::{SfError, SfResult, json_response, ok};
use super::org::{Org, Record};
use super::rest::{Ctx, no_content};
use super::schema::ObjectDef;
use super::write::{self, Upserted};

/// The canonical object definition for a path segment (404 for unknown types).
pub(crate) fn object(org: &Org, name: &str) -> SfResult<ObjectDef> {
    org.object(name).cloned().ok_or_else(SfError::not_found)
}

/// A record as REST reads answer it: `attributes` plus all fields, or only `fields`.
pub(crate) fn record_json(
    def: &ObjectDef,
    record: &Record,
    fields: Option<&[String]>,
    version: &str,
) -> Value {
    let mut out = Map::new();
    out.insert(
        "attributes".to_owned(),
        json!({"type": def.name, "url": format!("/services/data/v{version}/sobjects/{}/{}", def.name, record.id())}),
    );
    match fields {
        None => {
            for f in &def.fields {
                out.insert(f.name.clone(), record.get(&f.name).clone());
            }
        }
        Some(names) => {
            out.insert("Id".to_owned(), Value::String(record.id().to_owned()));
            for name in names {
                if let Some(f) = def.field(name) {
                    out.insert(f.name.clone(), record.get(&f.name).clone());
                }
            }
        }
    }
    Value::Object(out)
}

/// `?fields=A,B` checked against the object.
pub(crate) fn field_list(def: &ObjectDef, raw: Option<String>) -> SfResult<Option<Vec<String>>> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let names: Vec<String> = raw
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    for name in &names {
        if def.field(name).is_none() {
            return Err(SfError::bad(
                "INVALID_FIELD",
                format!("No such column '{name}' on sobject of type {}", def.name),
            ));
        }
    }
    Ok(Some(names))
}

fn saved(status: StatusCode, id: &str, created: Option<bool>) -> Response {
    let mut body = json!({"id": id, "success": true, "errors": []});
    if let Some(created) = created {
        body["created"] = json!(created);
    }
    json_response(status, &body)
}

pub(crate) fn create(ctx: &Ctx, object_name: &str) -> SfResult {
    let body = ctx.object_body()?;
    let mut org = ctx.state.org();
    let def = object(&org, object_name)?;
    let id = write::create(&mut org, &ctx.writer(), &def.name, &body)?;
    Ok(saved(StatusCode::CREATED, &id, None))
}

pub(crate) fn get(ctx: &Ctx, object_name: &str, id: &str) -> SfResult {
    let org = ctx.state.org();
    let def = object(&org, object_name)?;
    let fields = field_list(&def, ctx.param("fields"))?;
    let record = write::existing(&org, &def.name, id)?;
    Ok(ok(&record_json(
        &def,
        record,
        fields.as_deref(),
        &ctx.version,
    )))
}

pub(crate) fn update(ctx: &Ctx, object_name: &str, id: &str) -> SfResult {
    let body = ctx.object_body()?;
    let mut org = ctx.state.org();
    let def = object(&org, object_name)?;
    write::update(&mut org, &ctx.writer(), &def.name, id, &body)?;
    Ok(no_content())
}

pub(crate) fn delete(ctx: &Ctx, object_name: &str, id: &str) -> SfResult {
    let mut org = ctx.state.org();
    let def = object(&org, object_name)?;
    write::existing(&org, &def.name, id)?;
    write::delete(&mut org, &ctx.writer(), Some(&def.name), id)?;
    Ok(no_content())
}

pub(crate) fn get_by_external_id(
    ctx: &Ctx,
    object_name: &str,
    field: &str,
    value: &str,
) -> SfResult {
    let org = ctx.state.org();
    let def = object(&org, object_name)?;
    let field = write::external_field(&def, field)?;
    let fields = field_list(&def, ctx.param("fields"))?;
    let found = write::lookup(&org, &def, field, value);
    match found.as_slice() {
        [] => Err(SfError::not_found()),
        [id] => {
            let record = write::existing(&org, &def.name, id)?;
            Ok(ok(&record_json(
                &def,
                record,
                fields.as_deref(),
                &ctx.version,
            )))
        }
        _ => Err(SfError::multiple(found)),
    }
}

fn version_number(version: &str) -> f64 {
    version.parse().unwrap_or(59.0)
}

pub(crate) fn upsert(ctx: &Ctx, object_name: &str, field: &str, value: &str) -> SfResult {
    let body = ctx.object_body()?;
    let mut org = ctx.state.org();
    let def = object(&org, object_name)?;
    match write::upsert(&mut org, &ctx.writer(), &def.name, field, value, &body)? {
        Upserted::Created(id) => Ok(saved(StatusCode::CREATED, &id, Some(true))),
        // The `created` flag and the 200 exist from API 46.0 (FACTS 3.4); older versions say 204.
        Upserted::Updated(_) if version_number(&ctx.version) < 46.0 => Ok(no_content()),
        Upserted::Updated(id) => Ok(saved(StatusCode::OK, &id, Some(false))),
    }
}
