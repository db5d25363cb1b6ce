//! The call log's way in: the CRM client reports every HTTP attempt to a [`CallBuffer`]
//! (cheap, never blocking), and the engine appends what was buffered to the state's call log
//! after each stage. The log is for people (`status`, `explain`); the budget is counted by the
//! reservation in the state ([`crate::gate`]), so a call a crash kept out of the log is still
//! counted.

use crmsync_crm::{CallObserver, CallRecord};
use crmsync_store::{CallRow, Coordination, StoreError};
use std::sync::{Arc, Mutex};

/// Collects the client's [`CallRecord`]s until the engine writes them to the call log.
#[derive(Debug, Clone, Default)]
pub struct CallBuffer(Arc<Mutex<Vec<CallRecord>>>);

impl CallBuffer {
    /// An observer to hand to the CRM client.
    pub fn observer(&self) -> CallObserver {
        let buf = self.0.clone();
        Arc::new(move |c| {
            if let Ok(mut b) = buf.lock() {
                b.push(c);
            }
        })
    }

    fn drain(&self) -> Vec<CallRecord> {
        self.0
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default()
    }

    /// Appends the buffered records to `state`'s call log, as calls of `connection`, and
    /// returns them (the engine reports each as an event; they are counted even when the log
    /// cannot be written).
    pub async fn flush<S: Coordination>(
        &self,
        state: &S,
        connection: &str,
    ) -> (Vec<CallRow>, Result<(), StoreError>) {
        let rows: Vec<CallRow> = self
            .drain()
            .into_iter()
            .map(|c| to_row(connection, c))
            .collect();
        let written = state.record_calls(&rows).await;
        (rows, written)
    }
}

fn to_row(connection: &str, c: CallRecord) -> CallRow {
    let rate_limits = if c.rate_limit_headers.is_empty() {
        None
    } else {
        let m: serde_json::Map<String, serde_json::Value> = c
            .rate_limit_headers
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        Some(serde_json::Value::Object(m).to_string())
    };
    CallRow {
        connection: connection.to_string(),
        at_ms: c.started_at_ms,
        method: c.method,
        endpoint: c.endpoint,
        status: c.status,
        attempt: c.attempt,
        latency_ms: i64::try_from(c.latency.as_millis()).unwrap_or(i64::MAX),
        records: c.records,
        operation: c.operation.to_string(),
        rate_limited: c.rate_limited,
        rate_limits,
        error: c.error,
    }
}
