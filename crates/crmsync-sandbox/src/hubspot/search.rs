//! `POST /crm/v3/objects/{objectType}/search` (FACTS 2.5): filter groups (OR of ANDs), one
//! sort in object or string form, free-text `query`, numeric-offset `after`, at most 200
//! per page and 10,000 results per query. Filter-group limits are configurable and default
//! to the strictest figures HubSpot has published (5 groups, 6 filters per group, 18 in
//! total), so a search that passes here passes in production. With a configured index lag a
//! record is hidden from search until that long after its last write (FACTS 2.3); until then
//! an updated record is missing rather than stale, which a watermark-based poller sees the
//! same way: late.

use std::cmp::Ordering;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::JsonBody;
use super::object_type::ObjectType;
use super::objects::object_type;
use super::record::Record;
use super::schema::PropertyDef;
use super::state::{AppState, SearchRules};
use super::values::parse_instant;

const MAX_LIMIT: usize = 200;
/// Results beyond this offset are never served (FACTS 2.5).
const MAX_RESULTS: usize = 10_000;

#[derive(Debug, Deserialize)]
struct SearchRequest {
    #[serde(rename = "filterGroups", default)]
    filter_groups: Vec<FilterGroup>,
    /// A top-level `filters` array, which HubSpot accepts as one group whose filters all hold
    /// (beside any `filterGroups`, ORed with them).
    #[serde(default)]
    filters: Vec<Filter>,
    #[serde(default)]
    sorts: Vec<Value>,
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    properties: Vec<String>,
    #[serde(default)]
    limit: Option<Value>,
    #[serde(default)]
    after: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct FilterGroup {
    #[serde(default)]
    filters: Vec<Filter>,
}

#[derive(Debug, Deserialize)]
struct Filter {
    #[serde(rename = "propertyName")]
    property: String,
    operator: String,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    values: Option<Vec<Value>>,
    #[serde(rename = "highValue", default)]
    high_value: Option<Value>,
}

/// A JSON scalar as the string HubSpot would compare.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string().trim_matches('"').to_owned()),
    }
}

/// Reads a number sent as JSON number or numeric string.
fn number(value: &Value, what: &str) -> Result<usize, ApiError> {
    text(value)
        .and_then(|t| t.trim().parse::<usize>().ok())
        .ok_or_else(|| {
            ApiError::validation(format!(
                "{what} must be a non-negative integer, got {value}"
            ))
        })
}

/// Compares two values by the property's type.
fn compare(kind: &str, left: &str, right: &str) -> Option<Ordering> {
    match kind {
        "number" => {
            let (l, r) = (
                left.trim().parse::<f64>().ok()?,
                right.trim().parse::<f64>().ok()?,
            );
            l.partial_cmp(&r)
        }
        "date" | "datetime" => Some(parse_instant(left)?.cmp(&parse_instant(right)?)),
        _ => Some(left.to_lowercase().cmp(&right.to_lowercase())),
    }
}

/// `*` wildcard match, case-insensitive.
fn glob(pattern: &str, candidate: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = candidate;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(stripped) = rest.strip_prefix(part) else {
                return false;
            };
            rest = stripped;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    rest.is_empty()
}

fn contains_token(value: &str, pattern: &str) -> bool {
    let value = value.to_lowercase();
    let pattern = pattern.to_lowercase();
    glob(&pattern, &value) || value.split_whitespace().any(|token| glob(&pattern, token))
}

impl Filter {
    fn check(&self) -> Result<(), ApiError> {
        let needs_value = matches!(
            self.operator.as_str(),
            "EQ" | "NEQ" | "LT" | "LTE" | "GT" | "GTE" | "CONTAINS_TOKEN" | "NOT_CONTAINS_TOKEN"
        );
        let ok = match self.operator.as_str() {
            _ if needs_value => self.value.as_ref().and_then(text).is_some(),
            "BETWEEN" => self.value.is_some() && self.high_value.is_some(),
            "IN" | "NOT_IN" => self.values.is_some(),
            "HAS_PROPERTY" | "NOT_HAS_PROPERTY" => true,
            other => {
                return Err(ApiError::validation(format!(
                    "Unknown filter operator {other} for property {}",
                    self.property
                )));
            }
        };
        if ok {
            Ok(())
        } else {
            Err(ApiError::validation(format!(
                "Filter on {} with operator {} is missing its value",
                self.property, self.operator
            )))
        }
    }

    fn matches(&self, def: Option<&PropertyDef>, record: &Record) -> bool {
        let kind = def.map_or("string", |d| d.kind.as_str());
        let actual = record.props.get(&self.property).filter(|v| !v.is_empty());
        let wanted = self.value.as_ref().and_then(text).unwrap_or_default();
        let cmp = |with: &str| actual.and_then(|a| compare(kind, a, with));
        let in_values = || {
            self.values
                .iter()
                .flatten()
                .filter_map(text)
                .any(|v| cmp(&v) == Some(Ordering::Equal))
        };
        match self.operator.as_str() {
            "EQ" => cmp(&wanted) == Some(Ordering::Equal),
            "NEQ" => cmp(&wanted) != Some(Ordering::Equal),
            "LT" => cmp(&wanted) == Some(Ordering::Less),
            "LTE" => matches!(cmp(&wanted), Some(Ordering::Less | Ordering::Equal)),
            "GT" => cmp(&wanted) == Some(Ordering::Greater),
            "GTE" => matches!(cmp(&wanted), Some(Ordering::Greater | Ordering::Equal)),
            "BETWEEN" => {
                let high = self.high_value.as_ref().and_then(text).unwrap_or_default();
                matches!(cmp(&wanted), Some(Ordering::Greater | Ordering::Equal))
                    && matches!(cmp(&high), Some(Ordering::Less | Ordering::Equal))
            }
            "IN" => in_values(),
            "NOT_IN" => !in_values(),
            "HAS_PROPERTY" => actual.is_some(),
            "NOT_HAS_PROPERTY" => actual.is_none(),
            "CONTAINS_TOKEN" => actual.is_some_and(|a| contains_token(a, &wanted)),
            "NOT_CONTAINS_TOKEN" => !actual.is_some_and(|a| contains_token(a, &wanted)),
            _ => false,
        }
    }
}

/// The sort: `{propertyName, direction}` or `"prop"` / `"-prop"` (FACTS 2.5). Only the first
/// sort is honoured, like HubSpot.
fn sort_of(sorts: &[Value]) -> Result<Option<(String, bool)>, ApiError> {
    let Some(first) = sorts.first() else {
        return Ok(None);
    };
    match first {
        Value::String(s) => Ok(Some(match s.strip_prefix('-') {
            Some(name) => (name.to_owned(), true),
            None => (s.clone(), false),
        })),
        Value::Object(map) => {
            let name = map
                .get("propertyName")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::validation("sorts[0].propertyName is required"))?;
            let descending = match map.get("direction").and_then(Value::as_str) {
                None | Some("ASCENDING") => false,
                Some("DESCENDING") => true,
                Some(other) => {
                    return Err(ApiError::validation(format!(
                        "sort direction must be ASCENDING or DESCENDING, got {other}"
                    )));
                }
            };
            Ok(Some((name.to_owned(), descending)))
        }
        other => Err(ApiError::validation(format!("invalid sort {other}"))),
    }
}

fn check_limits(groups: &[FilterGroup], rules: &SearchRules) -> Result<(), ApiError> {
    if groups.len() > rules.max_groups {
        return Err(ApiError::validation(format!(
            "Too many filter groups: {}. The maximum is {}.",
            groups.len(),
            rules.max_groups
        )));
    }
    let mut total = 0;
    for group in groups {
        if group.filters.len() > rules.max_filters_per_group {
            return Err(ApiError::validation(format!(
                "Too many filters in a group: {}. The maximum is {}.",
                group.filters.len(),
                rules.max_filters_per_group
            )));
        }
        total += group.filters.len();
        group.filters.iter().try_for_each(Filter::check)?;
    }
    if total > rules.max_filters {
        return Err(ApiError::validation(format!(
            "Too many filters: {total}. The maximum across all groups is {}.",
            rules.max_filters
        )));
    }
    Ok(())
}

fn query_matches(object: ObjectType, record: &Record, query: &str) -> bool {
    let query = query.to_lowercase();
    object.searchable_properties().iter().any(|name| {
        record
            .props
            .get(*name)
            .is_some_and(|v| v.to_lowercase().contains(&query))
    })
}

async fn search(
    State(state): State<AppState>,
    Path(segment): Path<String>,
    JsonBody(request): JsonBody<SearchRequest>,
) -> Result<axum::Json<Value>, ApiError> {
    let object = object_type(&segment)?;
    let rules = state.search_rules();
    let mut request = request;
    if !request.filters.is_empty() {
        let filters = std::mem::take(&mut request.filters);
        request.filter_groups.push(FilterGroup { filters });
    }
    check_limits(&request.filter_groups, &rules)?;
    let visible_until = chrono::Duration::from_std(rules.lag)
        .ok()
        .filter(|lag| !lag.is_zero())
        .map(|lag| chrono::Utc::now() - lag);
    let limit = match &request.limit {
        None | Some(Value::Null) => 10,
        Some(v) => number(v, "limit")?,
    };
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::validation(format!(
            "limit must be between 1 and {MAX_LIMIT}, got {limit}"
        )));
    }
    let offset = match &request.after {
        None | Some(Value::Null) => 0,
        Some(Value::String(s)) if s.is_empty() => 0,
        Some(v) => number(v, "after")?,
    };
    if offset >= MAX_RESULTS {
        return Err(ApiError::validation(format!(
            "Paging beyond {MAX_RESULTS} results is not supported (after={offset}). Narrow the filters, e.g. restart from the last seen modification date."
        )));
    }
    let sort = sort_of(&request.sorts)?;
    let query = request
        .query
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty());

    let store = state.store();
    let schema = store.schema(object);
    let mut hits: Vec<&Record> = store
        .table(object)
        .records
        .values()
        .filter(|r| !r.is_archived())
        .filter(|r| visible_until.is_none_or(|until| r.updated_at <= until))
        .filter(|r| {
            request.filter_groups.is_empty()
                || request.filter_groups.iter().any(|g| {
                    g.filters
                        .iter()
                        .all(|f| f.matches(schema.get(&f.property), r))
                })
        })
        .filter(|r| query.is_none_or(|q| query_matches(object, r, q)))
        .collect();
    if let Some((name, descending)) = &sort {
        let kind = schema.get(name).map_or("string", |d| d.kind.as_str());
        // Records are already in id order; a stable sort keeps id as the tie-break.
        hits.sort_by(|a, b| {
            let order = match (a.props.get(name), b.props.get(name)) {
                (Some(x), Some(y)) => compare(kind, x, y).unwrap_or(Ordering::Equal),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            };
            if *descending { order.reverse() } else { order }
        });
    }
    let total = hits.len();
    let selection = (!request.properties.is_empty()).then_some(request.properties.as_slice());
    let results: Vec<Value> = hits
        .iter()
        .skip(offset)
        .take(limit)
        .map(|r| Value::Object(r.render(object, schema, selection)))
        .collect();
    let mut body = json!({ "total": total, "results": results });
    let next = offset + limit;
    if next < total {
        body["paging"] = json!({ "next": { "after": next.to_string() } });
    }
    Ok(axum::Json(body))
}

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/crm/v3/objects/{object_type}/search", post(search))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_and_tokens() {
        assert!(contains_token("Ada Lovelace", "love*"));
        assert!(contains_token("ada@example.com", "*@example.com"));
        assert!(!contains_token("ada@example.com", "*@example.org"));
        assert!(glob("a*c", "abbc"));
    }

    #[test]
    fn typed_comparison() {
        assert_eq!(compare("number", "10", "9"), Some(Ordering::Greater));
        assert_eq!(compare("string", "10", "9"), Some(Ordering::Less));
        assert_eq!(
            compare("datetime", "2024-01-01T00:00:00.000Z", "0"),
            Some(Ordering::Greater)
        );
    }

    #[test]
    fn sorts_in_both_forms() {
        let parsed = sort_of(&[json!("-createdate")]).ok().flatten();
        assert_eq!(parsed, Some(("createdate".to_owned(), true)));
        let parsed = sort_of(&[json!({"propertyName": "email", "direction": "ASCENDING"})])
            .ok()
            .flatten();
        assert_eq!(parsed, Some(("email".to_owned(), false)));
    }
}
