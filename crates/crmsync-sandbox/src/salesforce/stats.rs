//! Call statistics for `GET /_sandbox/stats`: counts per method, endpoint class and status.
//! Invariant: endpoint classes never contain record ids or external-id values, so the table
//! stays small however many records a test touches.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// Call counters.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    calls: BTreeMap<(String, String, u16), u64>,
}

impl Stats {
    pub fn record(&mut self, method: &str, class: &str, status: u16) {
        *self
            .calls
            .entry((method.to_owned(), class.to_owned(), status))
            .or_default() += 1;
    }

    pub fn clear(&mut self) {
        self.calls.clear();
    }

    /// `[{method, endpoint, status, count}]` and the total.
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
