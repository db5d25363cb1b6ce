//! Call statistics for `GET /_sandbox/stats`: counts per method, endpoint template and status.
//!
//! Endpoints are path templates with ids replaced by `{id}` and object types spelled with
//! their plural name (`/crm/v3/objects/contacts/{id}`), so the table stays small however many
//! records a test touches.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::object_type::ObjectType;

/// Path segments that are fixed words, never ids.
const KEYWORDS: &[&str] = &[
    "batch",
    "search",
    "merge",
    "gdpr-delete",
    "associations",
    "groups",
    "stages",
    "labels",
];

/// The endpoint template of a request path.
pub(crate) fn endpoint_template(path: &str) -> String {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let in_pipelines = segments.get(2) == Some(&"pipelines");
    let in_properties = segments.get(2) == Some(&"properties");
    let mut out = String::with_capacity(path.len());
    let mut previous_was_type = false;
    for segment in &segments {
        out.push('/');
        if let Some(object) = ObjectType::parse(segment) {
            out.push_str(object.name());
            previous_was_type = true;
            continue;
        }
        if previous_was_type && !KEYWORDS.contains(segment) {
            out.push_str(if in_pipelines {
                "{pipelineId}"
            } else if in_properties {
                "{propertyName}"
            } else {
                "{id}"
            });
        } else if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str("{id}");
        } else {
            out.push_str(segment);
        }
        previous_was_type = false;
    }
    out
}

/// Call counters.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    calls: BTreeMap<(String, String, u16), u64>,
}

impl Stats {
    pub fn record(&mut self, method: &str, path: &str, status: u16) {
        *self
            .calls
            .entry((method.to_owned(), endpoint_template(path), status))
            .or_default() += 1;
    }

    pub fn clear(&mut self) {
        self.calls.clear();
    }

    /// `{calls:[{method, endpoint, status, count}], total}`.
    pub fn to_json(&self) -> (Value, u64) {
        let calls: Vec<Value> = self
            .calls
            .iter()
            .map(|((method, endpoint, status), count)| {
                json!({"method": method, "endpoint": endpoint, "status": status, "count": count})
            })
            .collect();
        (Value::Array(calls), self.calls.values().sum())
    }
}

#[cfg(test)]
mod tests {
    use super::endpoint_template;

    #[test]
    fn templates_replace_ids_and_type_ids() {
        assert_eq!(
            endpoint_template("/crm/v3/objects/0-1/batch/upsert"),
            "/crm/v3/objects/contacts/batch/upsert"
        );
        assert_eq!(
            endpoint_template("/crm/v3/objects/companies/cust-1"),
            "/crm/v3/objects/companies/{id}"
        );
        assert_eq!(
            endpoint_template("/crm/v4/objects/deals/12/associations/default/companies/34"),
            "/crm/v4/objects/deals/{id}/associations/default/companies/{id}"
        );
        assert_eq!(
            endpoint_template("/crm/v3/objects/contacts/search"),
            "/crm/v3/objects/contacts/search"
        );
        assert_eq!(
            endpoint_template("/crm/v3/pipelines/deals/default"),
            "/crm/v3/pipelines/deals/{pipelineId}"
        );
    }
}
