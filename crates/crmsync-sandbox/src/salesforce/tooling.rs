//! Tooling API: `POST …/tooling/sobjects/CustomField` creates a custom field that describe,
//! writes and SOQL see at once. Invariant: a field name exists at most once per object
//! (`DUPLICATE_DEVELOPER_NAME`), and only `__c` names can be created.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::error::{SfError, SfResult, json_response};
use super::ids;
use super::rest::Ctx;
use super::schema::{FieldDef, FieldType};

fn field_type(kind: &str) -> Option<FieldType> {
    Some(match kind {
        "Text" => FieldType::String,
        "TextArea" | "LongTextArea" => FieldType::Textarea,
        "Email" => FieldType::Email,
        "Phone" => FieldType::Phone,
        "Url" => FieldType::Url,
        "Checkbox" => FieldType::Boolean,
        "Number" => FieldType::Double,
        "Currency" => FieldType::Currency,
        "Percent" => FieldType::Percent,
        "Date" => FieldType::Date,
        "DateTime" => FieldType::Datetime,
        _ => return None,
    })
}

pub(crate) fn create_field(ctx: &Ctx) -> SfResult {
    let body = ctx.object_body()?;
    let full = body
        .get("FullName")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            SfError::bad(
                "REQUIRED_FIELD_MISSING",
                "Required fields are missing: [FullName]",
            )
            .with_fields(["FullName"])
        })?;
    let (object, name) = full.split_once('.').ok_or_else(|| {
        SfError::bad(
            "INVALID_FIELD",
            format!("FullName must be Object.Field__c, e.g. Account.foo__c; got {full}"),
        )
    })?;
    if !name.ends_with("__c")
        || name.len() <= 3
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(SfError::bad(
            "INVALID_FIELD",
            format!(
                "a custom field name must end in __c and use letters, digits and underscores: {name}"
            ),
        ));
    }
    let meta = body.get("Metadata").cloned().unwrap_or(Value::Null);
    let kind = meta.get("type").and_then(Value::as_str).unwrap_or("Text");
    let ty = field_type(kind).ok_or_else(|| {
        SfError::bad("INVALID_TYPE", format!("unsupported custom field type {kind}; use Text, Number, Checkbox, Email, Date, DateTime…"))
    })?;
    let flag = |key: &str| meta.get(key).and_then(Value::as_bool).unwrap_or(false);
    let length = meta
        .get("length")
        .and_then(Value::as_u64)
        .map(|n| n.min(131_072) as u32);
    if ty == FieldType::String && length.is_some_and(|n| n == 0 || n > 255) {
        return Err(SfError::bad(
            "FIELD_INTEGRITY_EXCEPTION",
            "Text length must be between 1 and 255",
        ));
    }
    let label = meta
        .get("label")
        .and_then(Value::as_str)
        .unwrap_or(name)
        .to_owned();
    let mut org = ctx.state.org();
    let next = org.next_id + 1;
    org.next_id = next;
    let def = org.object_mut(object).ok_or_else(|| {
        SfError::bad(
            "INVALID_TYPE",
            format!("sObject type '{object}' is not supported."),
        )
    })?;
    if def.field(name).is_some() {
        return Err(SfError::bad(
            "DUPLICATE_DEVELOPER_NAME",
            format!("There's already a field named {name} on {}.", def.name),
        ));
    }
    let mut field = FieldDef::custom(
        name,
        &label,
        ty,
        length.or((ty == FieldType::String).then_some(255)),
    );
    field.external_id = flag("externalId");
    field.id_lookup = field.external_id;
    field.unique = flag("unique");
    field.required = flag("required");
    def.fields.push(field);
    let object = def.name.clone();
    let canonical = name.to_owned();
    let empty = if ty == FieldType::Boolean {
        Value::Bool(false)
    } else {
        Value::Null
    };
    for record in org.table_mut(&object).values_mut() {
        record
            .fields
            .entry(canonical.clone())
            .or_insert(empty.clone());
    }
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"id": ids::mint("00N", next), "success": true, "errors": [], "warnings": [], "infos": []}),
    ))
}
