//! The client-side limiter that keeps this connection under HubSpot's rolling interval limit
//! (FACTS 2.10), so 429s are the exception rather than the pacing mechanism (DESIGN principle 5).
//!
//! Two parts:
//! - a GCRA limiter (`governor`) sized to `requests_per_interval` minus the headroom. Its burst
//!   plus its steady rate add up to the budget, so even a *rolling* window of `interval` never
//!   sees more than the budget: with 100/10 s and 10 % headroom that is a burst of 1 plus one
//!   request every 10 s / 89;
//! - a pause that every request waits out, set when HubSpot says the window is nearly used up
//!   (`X-HubSpot-RateLimit-Remaining` below the headroom: other apps share the account) or when a
//!   429 asked for a wait, so all concurrent callers back off together instead of each one
//!   discovering the limit with its own 429.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::HeaderMap;
use tokio::time::Instant;

use crate::{CrmError, ErrorKind};

pub(crate) struct Limiter {
    gcra: DefaultDirectRateLimiter,
    /// No request starts before this instant.
    pause_until: Mutex<Option<Instant>>,
    headroom_percent: u32,
    interval: Duration,
}

impl Limiter {
    /// A limiter for `requests_per_interval` per `interval`, keeping `headroom_percent` unused.
    pub(crate) fn new(
        requests_per_interval: u32,
        interval: Duration,
        headroom_percent: u32,
    ) -> Result<Self, CrmError> {
        if requests_per_interval == 0 || interval.is_zero() {
            return Err(CrmError::new(
                ErrorKind::Config,
                "hubspot requests_per_interval and interval must be above zero (hubspot's default is 100 per 10 s)",
            ));
        }
        if headroom_percent >= 100 {
            return Err(CrmError::new(
                ErrorKind::Config,
                format!(
                    "hubspot headroom_percent must be below 100, got {headroom_percent} (default 10)"
                ),
            ));
        }
        let budget =
            (u64::from(requests_per_interval) * u64::from(100 - headroom_percent) / 100).max(1);
        // A small burst: what the burst takes, the steady rate loses for the whole run (the two
        // add up to the budget), and a backfill lives on the steady rate.
        let burst = (budget / 50).max(1);
        let steady = budget.saturating_sub(burst).max(1);
        let period = interval / u32::try_from(steady).unwrap_or(u32::MAX);
        let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
            .ok_or_else(|| {
                CrmError::new(
                    ErrorKind::Config,
                    "hubspot rate limit interval is too small",
                )
            })?
            .allow_burst(
                NonZeroU32::new(u32::try_from(burst).unwrap_or(u32::MAX))
                    .unwrap_or(NonZeroU32::MIN),
            );
        Ok(Limiter {
            gcra: RateLimiter::direct(quota),
            pause_until: Mutex::new(None),
            headroom_percent,
            interval,
        })
    }

    /// Waits until one more request may start.
    pub(crate) async fn acquire(&self) {
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

    /// Holds every request back for `wait` from now (never shortens a longer pause).
    pub(crate) fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut guard = self
            .pause_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if guard.is_none_or(|current| current < until) {
            *guard = Some(until);
        }
    }

    /// Reads HubSpot's rate-limit headers of an answer and slows down when the window is nearly
    /// spent. Returns the pause it set, if any, for logging.
    pub(crate) fn observe(&self, headers: &HeaderMap) -> Option<Duration> {
        let remaining = header_u64(headers, "x-hubspot-ratelimit-remaining")?;
        let max = header_u64(headers, "x-hubspot-ratelimit-max").filter(|m| *m > 0)?;
        let window = header_u64(headers, "x-hubspot-ratelimit-interval-milliseconds")
            .filter(|ms| *ms > 0 && *ms <= 60_000)
            .map(Duration::from_millis)
            .unwrap_or(self.interval);
        let low_water = (max * u64::from(self.headroom_percent) / 100).max(1);
        if remaining >= low_water {
            return None;
        }
        // Each missing request slot is worth one average slot time of the window.
        let slots = u32::try_from(low_water - remaining).unwrap_or(u32::MAX);
        let slot = window / u32::try_from(max).unwrap_or(u32::MAX);
        let wait = slot.saturating_mul(slots).min(window);
        self.pause_for(wait);
        Some(wait)
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}
