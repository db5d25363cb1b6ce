//! [`Lane`]: the client-side pacing of one kind of call on one CRM connection (HubSpot's
//! burst window, its search limit, ...), so 429s are the exception rather than the pacing
//! mechanism (DESIGN principle 5). Every connector's lanes are built here; the connector only
//! says how large they are and, through its dialect, when an answer asks for a pause.
//!
//! Two parts per lane:
//! - a GCRA limiter (`governor`) sized to the lane's budget. Its burst plus its steady rate add
//!   up to the budget, so even a *rolling* window never sees more than the budget: with 100 per
//!   10 s and 10 % headroom that is a burst of 1 plus one request every 10 s / 89;
//! - a pause that every request of the lane waits out, set when an answer says the window is
//!   nearly used up (other apps share the account) or when a 429 asked for a wait, so all
//!   concurrent callers back off together instead of each one discovering the limit with its
//!   own 429.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

use crate::{CallWindow, CrmError, ErrorKind};

/// One paced lane. Shared by every clone of a client: one connection, one lane.
pub struct Lane {
    /// The window the lane keeps under, as the shared gate counts it (DESIGN 5).
    window: CallWindow,
    gcra: DefaultDirectRateLimiter,
    /// No request of the lane starts before this instant.
    pause_until: Mutex<Option<Instant>>,
}

impl Lane {
    /// A lane allowing `max` requests in any `length`, less `headroom_percent` of them: the
    /// budget a rolling window of that length must never exceed. `name` names the window
    /// (`interval`, `search`) in the shared gate and in messages.
    pub fn rolling(
        name: &'static str,
        max: u32,
        length: Duration,
        headroom_percent: u32,
    ) -> Result<Self, CrmError> {
        if max == 0 || length.is_zero() {
            return Err(CrmError::new(
                ErrorKind::Config,
                format!(
                    "the {name} rate limit must allow at least one request in a window longer than zero"
                ),
            ));
        }
        if headroom_percent >= 100 {
            return Err(CrmError::new(
                ErrorKind::Config,
                format!("headroom_percent must be below 100, got {headroom_percent}"),
            ));
        }
        let budget = (u64::from(max) * u64::from(100 - headroom_percent) / 100).max(1);
        // A small burst: what the burst takes, the steady rate loses for the whole run (the two
        // add up to the budget), and a backfill lives on the steady rate.
        let burst = (budget / 50).max(1);
        let steady = budget.saturating_sub(burst).max(1);
        let period = length / u32::try_from(steady).unwrap_or(u32::MAX);
        Self::build(
            CallWindow {
                name,
                max: u32::try_from(budget).unwrap_or(u32::MAX),
                length,
            },
            period,
            burst,
        )
    }

    /// A lane spacing requests evenly, `per_second` a second with no burst (HubSpot's search
    /// limit), and telling the shared gate `per_second` in any `gate_length` (a margin for
    /// the skew between the gate's clock and the CRM's).
    pub fn spaced(
        name: &'static str,
        per_second: u32,
        gate_length: Duration,
    ) -> Result<Self, CrmError> {
        if per_second == 0 {
            return Err(CrmError::new(
                ErrorKind::Config,
                format!("the {name} rate limit must allow at least one request a second"),
            ));
        }
        Self::build(
            CallWindow {
                name,
                max: per_second,
                length: gate_length,
            },
            Duration::from_secs(1) / per_second,
            1,
        )
    }

    fn build(window: CallWindow, period: Duration, burst: u64) -> Result<Self, CrmError> {
        let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
            .ok_or_else(|| {
                CrmError::new(
                    ErrorKind::Config,
                    format!("the {} rate limit window is too small", window.name),
                )
            })?
            .allow_burst(
                NonZeroU32::new(u32::try_from(burst).unwrap_or(u32::MAX))
                    .unwrap_or(NonZeroU32::MIN),
            );
        Ok(Lane {
            window,
            gcra: RateLimiter::direct(quota),
            pause_until: Mutex::new(None),
        })
    }

    /// The window this lane keeps under, for the shared gate.
    pub fn window(&self) -> &CallWindow {
        &self.window
    }

    /// Waits until one more request of the lane may start.
    pub async fn acquire(&self) {
        // Loop: a pause may be extended while we sleep.
        loop {
            let until = *self
                .pause_until
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match until {
                Some(until) if until > Instant::now() => tokio::time::sleep_until(until).await,
                _ => break,
            }
        }
        self.gcra.until_ready().await;
    }

    /// Holds every request of the lane back for `wait` from now (never shortens a longer pause).
    pub fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut guard = self
            .pause_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if guard.is_none_or(|current| current < until) {
            *guard = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pause_holds_the_next_request_back() {
        let lane = Lane::rolling("interval", 100, Duration::from_secs(10), 10).expect("lane");
        assert_eq!(lane.window().max, 90);
        lane.pause_for(Duration::from_millis(50));
        let started = std::time::Instant::now();
        lane.acquire().await;
        assert!(
            started.elapsed() >= Duration::from_millis(40),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn an_empty_window_is_a_config_error() {
        assert!(Lane::rolling("interval", 0, Duration::from_secs(10), 10).is_err());
        assert!(Lane::rolling("interval", 10, Duration::from_secs(10), 100).is_err());
        assert!(Lane::spaced("search", 0, Duration::from_secs(1)).is_err());
    }
}
