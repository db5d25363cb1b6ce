//! The shared API budget as the CRM client sees it: a [`CallGate`] that reserves every attempt
//! in the state database ([`Coordination::reserve_call`]) against the connection's rolling
//! window and today's allowance, so any number of workers together stay under the account's
//! limit less the headroom. A full window is waited out (the wait is short: a slot frees when
//! the oldest call leaves the window); a spent day is not: the call fails at once as
//! rate-limited until the reset, and delivery pauses on its own budget check.

use crate::budget::Budget;
use crate::clock::Clock;
use crmsync_core::config::CrmConfig;
use crmsync_crm::{CallGate, CallWindow, CrmError, ErrorKind};
use crmsync_store::{Coordination, DayLimit, Grant, Reservation, WindowLimit};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Reserves each call of one CRM connection in the shared state.
pub struct BudgetGate<S> {
    state: S,
    connection: String,
    crm: CrmConfig,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
    /// One reservation of this process in flight at a time. Without it, concurrent calls each
    /// read the clock, then queue on the database's lock, and are stamped with the instant they
    /// asked rather than the later instant they were granted and sent: a burst the CRM counts
    /// in a later window than the reservations did. Waiting for our turn first, then reading
    /// the clock, keeps the stamps close to the sends.
    turn: tokio::sync::Mutex<()>,
}

impl<S> BudgetGate<S> {
    pub fn new(
        state: S,
        connection: String,
        crm: CrmConfig,
        clock: Arc<dyn Clock>,
        cancel: CancellationToken,
    ) -> Self {
        BudgetGate {
            state,
            connection,
            crm,
            clock,
            cancel,
            turn: tokio::sync::Mutex::new(()),
        }
    }
}

/// How many times a failing state database is asked again before the call fails.
const STATE_RETRIES: u32 = 5;

impl<S: Coordination + 'static> BudgetGate<S> {
    async fn reserve(&self, window: &CallWindow) -> Result<(), CrmError> {
        let mut failures = 0;
        loop {
            if self.cancel.is_cancelled() {
                return Err(CrmError::new(
                    ErrorKind::Transport,
                    "not sent: crmsync is stopping",
                ));
            }
            let turn = self.turn.lock().await;
            let now = self.clock.now_ms();
            let budget = Budget::new(&self.crm, now);
            let length_ms = i64::try_from(window.length.as_millis()).unwrap_or(i64::MAX);
            let request = Reservation {
                connection: self.connection.clone(),
                windows: vec![WindowLimit {
                    name: window.name.to_string(),
                    max: window.max,
                    length_ms,
                    // Workers together send at the window's even pace: a burst granted when
                    // the oldest slot leaves the window would meet the previous burst's late
                    // arrivals in one window of the CRM's.
                    min_gap_ms: length_ms / i64::from(window.max.max(1)),
                }],
                day: Some(DayLimit {
                    start_ms: budget.day_start_ms,
                    allowance: budget.allowance,
                }),
                now_ms: now,
            };
            let answer = self.state.reserve_call(&request).await;
            drop(turn);
            match answer {
                Ok(Grant::Granted) => return Ok(()),
                Ok(Grant::Wait { until_ms, limit }) if limit == "day" => {
                    let wait = Duration::from_millis(u64::try_from(until_ms - now).unwrap_or(0));
                    return Err(CrmError::new(
                        ErrorKind::RateLimited,
                        format!(
                            "today's API budget share of {} calls is spent; calls resume after the daily reset",
                            budget.allowance
                        ),
                    )
                    .with_retry_after(wait));
                }
                Ok(Grant::Wait { until_ms, .. }) => {
                    // Another worker (or a killed predecessor) filled the window: wait until
                    // its oldest call leaves it, then ask again.
                    let wait = u64::try_from(until_ms - now).unwrap_or(0).clamp(1, 60_000);
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                        _ = self.cancel.cancelled() => {}
                    }
                }
                Err(e) if failures < STATE_RETRIES => {
                    failures += 1;
                    tracing::warn!(error = %e, "reserving an API call failed; asking again");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(200 << failures)) => {}
                        _ = self.cancel.cancelled() => {}
                    }
                }
                Err(e) => {
                    return Err(CrmError::new(
                        ErrorKind::Transport,
                        format!(
                            "not sent: the API call could not be reserved in the state database: {e}"
                        ),
                    ));
                }
            }
        }
    }
}

impl<S: Coordination + 'static> CallGate for BudgetGate<S> {
    fn admit<'a>(
        &'a self,
        window: &'a CallWindow,
    ) -> Pin<Box<dyn Future<Output = Result<(), CrmError>> + Send + 'a>> {
        Box::pin(self.reserve(window))
    }
}
