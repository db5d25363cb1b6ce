//! SOQL execution: `GET …/query/?q=`, `…/queryAll/?q=` and `…/query/<locator>-<offset>`
//! (FACTS 3.6). Invariant: `query` never returns deleted rows, `queryAll` does; a paged result
//! is computed once and served page by page from its locator, so pages never overlap or skip.

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value, json};

use super::clock;
use super::error::{SfError, SfResult, ok};
use super::org::{Org, Record};
use super::rest::Ctx;
use super::schema::{FieldDef, FieldType, ObjectDef};
use super::soql::{self, Cond, Literal, Op};

const DEFAULT_BATCH: usize = 2000;
const MIN_BATCH: usize = 200;
const MAX_OFFSET: usize = 2000;

/// A field path resolved against the schema.
#[derive(Debug, Clone)]
enum Path {
    Own(FieldDef),
    Parent {
        reference: String,
        relationship: String,
        object: String,
        field: FieldDef,
    },
}

impl Path {
    fn field(&self) -> &FieldDef {
        match self {
            Path::Own(f) | Path::Parent { field: f, .. } => f,
        }
    }

    fn value<'a>(&self, org: &'a Org, record: &'a Record) -> &'a Value {
        match self {
            Path::Own(f) => record.get(&f.name),
            Path::Parent {
                reference,
                object,
                field,
                ..
            } => record
                .get(reference)
                .as_str()
                .and_then(|id| org.record(object, id))
                .map_or(&Value::Null, |parent| parent.get(&field.name)),
        }
    }
}

fn invalid_field(path: &str, object: &str) -> SfError {
    SfError::bad(
        "INVALID_FIELD",
        format!(
            "No such column '{path}' on entity '{object}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
        ),
    )
}

fn resolve(org: &Org, def: &ObjectDef, path: &str) -> Result<Path, SfError> {
    match path.split_once('.') {
        None => def
            .field(path)
            .cloned()
            .map(Path::Own)
            .ok_or_else(|| invalid_field(path, &def.name)),
        Some((rel, name)) => {
            let reference = def.relationship(rel).ok_or_else(|| {
                SfError::bad(
                    "INVALID_FIELD",
                    format!("Didn't understand relationship '{rel}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name."),
                )
            })?;
            let object = reference.reference_to.first().cloned().unwrap_or_default();
            let parent = org
                .object(&object)
                .ok_or_else(|| invalid_field(path, &def.name))?;
            let field = parent
                .field(name)
                .cloned()
                .ok_or_else(|| invalid_field(name, &parent.name))?;
            Ok(Path::Parent {
                reference: reference.name.clone(),
                relationship: reference.relationship_name.clone().unwrap_or_default(),
                object: parent.name.clone(),
                field,
            })
        }
    }
}

/// A value ready to compare: text lower-cased, datetimes as timestamps.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Key {
    Null,
    Bool(bool),
    Num(f64),
    Text(String),
}

fn key_of(ty: FieldType, value: &Value) -> Key {
    match value {
        Value::Null => Key::Null,
        Value::Bool(b) => Key::Bool(*b),
        Value::Number(n) => Key::Num(n.as_f64().unwrap_or_default()),
        Value::String(s) if ty == FieldType::Datetime => {
            clock::parse(s).map_or(Key::Null, |at| Key::Num(at.timestamp() as f64))
        }
        Value::String(s) => Key::Text(s.to_lowercase()),
        other => Key::Text(other.to_string()),
    }
}

fn datetime_key(at: DateTime<Utc>) -> Key {
    Key::Num(at.timestamp() as f64)
}

fn date_key(date: NaiveDate) -> Key {
    Key::Text(date.format("%Y-%m-%d").to_string())
}

/// The literal as a key for a field of type `ty`, or the INVALID_FIELD error Salesforce gives
/// for a literal of the wrong type.
fn literal_key(field: &FieldDef, literal: &Literal) -> Result<Key, SfError> {
    let ty = field.ty;
    let wrong = |expected: &str| {
        SfError::bad(
            "INVALID_FIELD",
            format!(
                "value of filter criterion for field '{}' must be of type {expected} and should not be enclosed in quotes",
                field.name
            ),
        )
    };
    Ok(match (ty, literal) {
        (_, Literal::Null) => Key::Null,
        (FieldType::Datetime, Literal::DateTime(at)) => datetime_key(*at),
        (FieldType::Datetime, Literal::Date(d)) => datetime_key(
            d.and_hms_opt(0, 0, 0)
                .map_or_else(Utc::now, |n| n.and_utc()),
        ),
        (FieldType::Datetime, _) => return Err(wrong("dateTime")),
        (FieldType::Date, Literal::Date(d)) => date_key(*d),
        (FieldType::Date, _) => return Err(wrong("date")),
        (FieldType::Boolean, Literal::Bool(b)) => Key::Bool(*b),
        (FieldType::Boolean, _) => return Err(wrong("boolean")),
        (t, Literal::Num(n)) if t.is_number() => Key::Num(*n),
        (t, _) if t.is_number() => return Err(wrong("double")),
        (_, Literal::Str(s)) => Key::Text(s.replace("\\%", "%").replace("\\_", "_").to_lowercase()),
        _ => return Err(wrong("string")),
    })
}

/// SQL LIKE with `%` and `_`, case-insensitive; `\%` and `\_` are literal.
fn like(text: &str, pattern: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum P {
        Any,
        One,
        Ch(char),
    }
    let mut parts = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        parts.push(match c {
            '\\' => P::Ch(chars.next().unwrap_or('\\')),
            '%' => P::Any,
            '_' => P::One,
            other => P::Ch(other),
        });
    }
    let text: Vec<char> = text.chars().collect();
    // dp[j]: pattern prefix of length j matches the text prefix seen so far.
    let mut dp = vec![false; parts.len() + 1];
    dp[0] = true;
    for j in 0..parts.len() {
        if parts[j] == P::Any {
            dp[j + 1] = dp[j];
        }
    }
    for &c in &text {
        let mut next = vec![false; parts.len() + 1];
        for j in 0..parts.len() {
            next[j + 1] = match parts[j] {
                P::Any => next[j] || dp[j + 1],
                P::One => dp[j],
                P::Ch(p) => dp[j] && p == c,
            };
        }
        dp = next;
    }
    dp[parts.len()]
}

/// A condition with its field paths resolved and literals typed.
enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Cmp(Path, Op, Key, String),
    In(Path, Vec<Key>, bool),
}

fn compile(org: &Org, def: &ObjectDef, cond: &Cond) -> Result<Filter, SfError> {
    Ok(match cond {
        Cond::And(a, b) => Filter::And(
            Box::new(compile(org, def, a)?),
            Box::new(compile(org, def, b)?),
        ),
        Cond::Or(a, b) => Filter::Or(
            Box::new(compile(org, def, a)?),
            Box::new(compile(org, def, b)?),
        ),
        Cond::Not(a) => Filter::Not(Box::new(compile(org, def, a)?)),
        Cond::Cmp(path, op, literal) => {
            let path = resolve(org, def, path)?;
            let key = literal_key(path.field(), literal)?;
            if *op == Op::Like && !path.field().ty.is_text() {
                return Err(SfError::bad(
                    "INVALID_QUERY_FILTER_OPERATOR",
                    format!(
                        "invalid operator on field '{}': LIKE is only valid on text fields",
                        path.field().name
                    ),
                ));
            }
            let pattern = match literal {
                Literal::Str(s) => s.to_lowercase(),
                _ => String::new(),
            };
            Filter::Cmp(path, *op, key, pattern)
        }
        Cond::In(path, literals, negated) => {
            let path = resolve(org, def, path)?;
            let keys = literals
                .iter()
                .map(|l| literal_key(path.field(), l))
                .collect::<Result<Vec<_>, _>>()?;
            Filter::In(path, keys, *negated)
        }
    })
}

fn matches(org: &Org, record: &Record, filter: &Filter) -> bool {
    match filter {
        Filter::And(a, b) => matches(org, record, a) && matches(org, record, b),
        Filter::Or(a, b) => matches(org, record, a) || matches(org, record, b),
        Filter::Not(a) => !matches(org, record, a),
        Filter::Cmp(path, op, key, pattern) => {
            let value = key_of(path.field().ty, path.value(org, record));
            match op {
                Op::Eq => value == *key,
                Op::Ne => value != *key,
                Op::Like => match &value {
                    Key::Text(text) => like(text, pattern),
                    _ => false,
                },
                _ if value == Key::Null || *key == Key::Null => false,
                Op::Lt => value.partial_cmp(key) == Some(Ordering::Less),
                Op::Le => matches!(
                    value.partial_cmp(key),
                    Some(Ordering::Less | Ordering::Equal)
                ),
                Op::Gt => value.partial_cmp(key) == Some(Ordering::Greater),
                Op::Ge => matches!(
                    value.partial_cmp(key),
                    Some(Ordering::Greater | Ordering::Equal)
                ),
            }
        }
        Filter::In(path, keys, negated) => {
            let value = key_of(path.field().ty, path.value(org, record));
            keys.contains(&value) != *negated
        }
    }
}

fn compare(a: &Key, b: &Key, nulls_last: bool) -> Ordering {
    match (a, b) {
        (Key::Null, Key::Null) => Ordering::Equal,
        (Key::Null, _) => {
            if nulls_last {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
        (_, Key::Null) => {
            if nulls_last {
                Ordering::Less
            } else {
                Ordering::Greater
            }
        }
        _ => a.partial_cmp(b).unwrap_or(Ordering::Equal),
    }
}

fn attributes(object: &str, id: &str, version: &str) -> Value {
    json!({"type": object, "url": format!("/services/data/v{version}/sobjects/{object}/{id}")})
}

fn row(org: &Org, def: &ObjectDef, record: &Record, select: &[Path], version: &str) -> Value {
    let mut out = Map::new();
    out.insert(
        "attributes".to_owned(),
        attributes(&def.name, record.id(), version),
    );
    for path in select {
        match path {
            Path::Own(f) => {
                out.insert(f.name.clone(), record.get(&f.name).clone());
            }
            Path::Parent {
                reference,
                relationship,
                object,
                field,
            } => {
                let parent = record
                    .get(reference)
                    .as_str()
                    .and_then(|id| org.record(object, id));
                let Some(parent) = parent else {
                    out.insert(relationship.clone(), Value::Null);
                    continue;
                };
                let entry = out.entry(relationship.clone()).or_insert_with(
                    || json!({"attributes": attributes(object, parent.id(), version)}),
                );
                if let Value::Object(map) = entry {
                    map.insert(field.name.clone(), parent.get(&field.name).clone());
                }
            }
        }
    }
    Value::Object(out)
}

/// Runs `text`: `(totalSize, rows)`; `rows` is empty for `COUNT()`.
pub(crate) fn execute(
    org: &Org,
    text: &str,
    all_rows: bool,
    version: &str,
) -> Result<(usize, Vec<Value>, bool), SfError> {
    let query = soql::parse(text).map_err(|m| SfError::bad("MALFORMED_QUERY", m))?;
    let def = org.object(&query.object).cloned().ok_or_else(|| {
        SfError::bad(
            "INVALID_TYPE",
            format!("sObject type '{}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name.", query.object),
        )
    })?;
    let select = match &query.fields {
        Some(fields) => Some(
            fields
                .iter()
                .map(|f| resolve(org, &def, f))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => None,
    };
    let filter = query
        .filter
        .as_ref()
        .map(|c| compile(org, &def, c))
        .transpose()?;
    let order = query
        .order
        .iter()
        .map(|o| resolve(org, &def, &o.field).map(|p| (p, o.descending, o.nulls_last)))
        .collect::<Result<Vec<_>, _>>()?;
    if query.offset.is_some_and(|o| o > MAX_OFFSET) {
        return Err(SfError::bad(
            "NUMBER_OUTSIDE_VALID_RANGE",
            format!("Maximum SOQL offset allowed is {MAX_OFFSET}"),
        ));
    }
    let mut found: Vec<&Record> = org
        .table(&def.name)
        .map(|t| t.values().collect())
        .unwrap_or_default();
    found.retain(|r| {
        (all_rows || !r.is_deleted()) && filter.as_ref().is_none_or(|f| matches(org, r, f))
    });
    if !order.is_empty() {
        found.sort_by(|a, b| {
            for (path, descending, nulls_last) in &order {
                let ka = key_of(path.field().ty, path.value(org, a));
                let kb = key_of(path.field().ty, path.value(org, b));
                let mut o = compare(&ka, &kb, *nulls_last != *descending);
                if *descending {
                    o = o.reverse();
                }
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
    }
    let offset = query.offset.unwrap_or(0);
    let found: Vec<&Record> = found
        .into_iter()
        .skip(offset)
        .take(query.limit.unwrap_or(usize::MAX))
        .collect();
    let Some(select) = select else {
        return Ok((found.len(), Vec::new(), true));
    };
    let rows: Vec<Value> = found
        .iter()
        .map(|r| row(org, &def, r, &select, version))
        .collect();
    Ok((rows.len(), rows, false))
}

fn batch_size(ctx: &Ctx) -> usize {
    ctx.header("sforce-query-options")
        .and_then(|v| {
            v.split([',', ';'])
                .filter_map(|p| p.trim().strip_prefix("batchSize="))
                .find_map(|n| n.trim().parse::<usize>().ok())
        })
        .map_or(DEFAULT_BATCH, |n| n.clamp(MIN_BATCH, DEFAULT_BATCH))
}

fn page(org: &mut Org, total: usize, rows: Vec<Value>, batch: usize, version: &str) -> Value {
    if rows.len() <= batch {
        return json!({"totalSize": total, "done": true, "records": rows});
    }
    let first: Vec<Value> = rows.iter().take(batch).cloned().collect();
    let number = org.keep_locator(rows, batch);
    json!({
        "totalSize": total,
        "done": false,
        "nextRecordsUrl": format!("/services/data/v{version}/query/{}-{batch}", locator_name(number)),
        "records": first,
    })
}

fn locator_name(number: u64) -> String {
    format!("01gSB{number:010}")
}

/// `SELECT … FROM Organization`: the org's one row (not a stored record: it has no history,
/// is never written, and is not counted in the stats), with the fields asked for among `Id`,
/// `Name`, `IsSandbox`, `OrganizationType`, `InstanceName`; `None` for other objects.
fn organization(ctx: &Ctx, text: &str) -> Result<Option<Value>, SfError> {
    let query = soql::parse(text).map_err(|m| SfError::bad("MALFORMED_QUERY", m))?;
    if !query.object.eq_ignore_ascii_case("Organization") {
        return Ok(None);
    }
    let id = ctx.state.org_id().to_owned();
    let sandbox = ctx.state.config().is_sandbox;
    let mut out = serde_json::Map::new();
    out.insert(
        "attributes".into(),
        attributes("Organization", &id, &ctx.version),
    );
    for field in query.fields.unwrap_or_default() {
        let value = match field.to_ascii_lowercase().as_str() {
            "id" => json!(id),
            "name" => json!("crmsync sandbox org"),
            "issandbox" => json!(sandbox),
            "organizationtype" => json!("Enterprise Edition"),
            "instancename" => json!(if sandbox { "CS1" } else { "NA1" }),
            _ => return Err(invalid_field(&field, "Organization")),
        };
        out.insert(field, value);
    }
    Ok(Some(Value::Object(out)))
}

/// `GET …/query/?q=` and `…/queryAll/?q=`.
pub(crate) fn run(ctx: &Ctx, all_rows: bool) -> SfResult {
    let text = ctx
        .param("q")
        .ok_or_else(|| SfError::bad("MALFORMED_QUERY", "A query string has to be specified"))?;
    let batch = batch_size(ctx);
    if let Some(row) = organization(ctx, &text)? {
        return Ok(ok(&json!({"totalSize": 1, "done": true, "records": [row]})));
    }
    let mut org = ctx.state.org();
    let (total, rows, _) = execute(&org, &text, all_rows, &ctx.version)?;
    Ok(ok(&page(&mut org, total, rows, batch, &ctx.version)))
}

/// `GET …/query/<locator>-<offset>`: the next page.
pub(crate) fn more(ctx: &Ctx, locator: &str) -> SfResult {
    let invalid = || SfError::bad("INVALID_QUERY_LOCATOR", "invalid query locator");
    let (name, offset) = locator.rsplit_once('-').ok_or_else(invalid)?;
    let offset: usize = offset.parse().map_err(|_| invalid())?;
    let number: u64 = name
        .strip_prefix("01gSB")
        .and_then(|n| n.parse().ok())
        .ok_or_else(invalid)?;
    let org = ctx.state.org();
    let found = org.locators.get(&number).ok_or_else(invalid)?;
    let total = found.rows.len();
    if offset > total {
        return Err(invalid());
    }
    let end = (offset + found.batch).min(total);
    let records: Vec<Value> = found
        .rows
        .get(offset..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    let mut body = json!({"totalSize": total, "done": end >= total, "records": records});
    if end < total {
        body["nextRecordsUrl"] = json!(format!(
            "/services/data/v{}/query/{}-{end}",
            ctx.version,
            locator_name(number)
        ));
    }
    Ok(ok(&body))
}

#[cfg(test)]
mod tests {
    use super::like;

    #[test]
    fn like_patterns() {
        assert!(like("pg-abc-0001", "pg-abc-%"));
        assert!(like("abc", "a_c"));
        assert!(!like("abd", "a_c"));
        assert!(like("100%", "100\\%"));
        assert!(!like("1000", "100\\%"));
        assert!(like("", "%"));
    }
}
