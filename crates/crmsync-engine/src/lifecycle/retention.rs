//! Retention: applied webhook events and call-log rows older than `[state]
//! webhook_event_retention_days` / `call_log_retention_days` are removed, a bounded number per
//! statement so a long backlog never holds the state database's write lock for long. A webhook
//! event not applied yet is never removed, whatever its age.

use crate::engine::Engine;
use crate::error::EngineError;
use crate::telemetry::Event;
use crmsync_crm::Crm;
use crmsync_store::{Capture, Source, State};

/// Rows removed per statement.
const ROWS_PER_PRUNE: u64 = 5_000;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// How many rows one retention pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub webhook_events: u64,
    pub calls: u64,
}

impl<A, S, C> Engine<A, S, C>
where
    A: Source + Capture,
    S: State,
    C: Crm,
{
    /// Removes what is past its retention at `now_ms`. Stops early (with what it did) when
    /// the worker stops.
    pub async fn prune_retained(&self, now_ms: i64) -> Result<Pruned, EngineError> {
        let state = &self.config.raw.state;
        let mut pruned = Pruned::default();
        let events_before = now_ms - i64::from(state.webhook_event_retention_days) * DAY_MS;
        while !self.cancel.is_cancelled() {
            let n = self
                .state
                .prune_webhook_events(events_before, ROWS_PER_PRUNE)
                .await?;
            pruned.webhook_events += n;
            if n < ROWS_PER_PRUNE {
                break;
            }
        }
        let calls_before = now_ms - i64::from(state.call_log_retention_days) * DAY_MS;
        while !self.cancel.is_cancelled() {
            let n = self.state.prune_calls(calls_before, ROWS_PER_PRUNE).await?;
            pruned.calls += n;
            if n < ROWS_PER_PRUNE {
                break;
            }
        }
        for (table, n) in [
            ("webhook_events", pruned.webhook_events),
            ("calls", pruned.calls),
        ] {
            if n > 0 {
                self.emit(Event::Pruned {
                    table: table.into(),
                    changes: n,
                });
            }
        }
        Ok(pruned)
    }
}
