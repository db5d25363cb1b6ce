//! HubSpot's rate limits and rate-limit headers (FACTS 2.10).
//!
//! Three budgets: a rolling interval (Free tier: 100 per 10 s) that search is exempt from,
//! a per-second budget for search (5/s), and a daily budget (250,000, reset at midnight UTC,
//! the sandbox portal's time zone). Rejected requests consume nothing. Every response carries
//! the `X-HubSpot-RateLimit-*` headers of the limits that are on; a limit that is off sends
//! none (as HubSpot sends no daily headers to OAuth apps, FACTS 2.10), never a made-up maximum
//! a client would pace itself by.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::json_error;

/// The configurable limits, as served by `GET /_sandbox/limits` (null = unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Limits {
    pub interval_limit: Option<u32>,
    pub interval_ms: u64,
    pub daily_limit: Option<u32>,
    pub search_per_second: Option<u32>,
}

/// Budget state after admitting a request, for the response headers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Usage {
    /// The interval limit and what is left of it; `None` when that limit is off.
    interval: Option<(u32, u32)>,
    interval_ms: u64,
    /// The daily limit and what is left of it; `None` when that limit is off.
    daily: Option<(u32, u32)>,
}

impl Usage {
    /// Calls made today and the daily limit; `None` as limit when it is off.
    pub fn daily_used(&self) -> (u64, Option<u32>) {
        match self.daily {
            Some((limit, left)) => (u64::from(limit.saturating_sub(left)), Some(limit)),
            None => (0, None),
        }
    }
}

/// Which budget rejected a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    TenSecondlyRolling,
    Secondly,
    Daily,
}

/// A 429 with the usage to report and how long to wait.
#[derive(Debug)]
pub(crate) struct Rejection {
    pub policy: Policy,
    retry_after: Duration,
    usage: Usage,
}

/// Sliding-window counters for all budgets.
#[derive(Debug)]
pub(crate) struct Limiter {
    limits: Limits,
    window: VecDeque<Instant>,
    search_window: VecDeque<Instant>,
    day: NaiveDate,
    daily_used: u32,
}

fn prune(window: &mut VecDeque<Instant>, span: Duration, now: Instant) {
    while window
        .front()
        .is_some_and(|&t| now.saturating_duration_since(t) >= span)
    {
        window.pop_front();
    }
}

impl Limiter {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            window: VecDeque::new(),
            search_window: VecDeque::new(),
            day: Utc::now().date_naive(),
            daily_used: 0,
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Replaces the limits and forgets past usage so the new limits apply from now.
    pub fn set(&mut self, limits: Limits) {
        *self = Self::new(limits);
    }

    pub fn reset(&mut self) {
        *self = Self::new(self.limits);
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(self.limits.interval_ms.max(1))
    }

    fn roll(&mut self, now: Instant) {
        let today = Utc::now().date_naive();
        if today != self.day {
            self.day = today;
            self.daily_used = 0;
        }
        let interval = self.interval();
        prune(&mut self.window, interval, now);
        prune(&mut self.search_window, Duration::from_secs(1), now);
    }

    /// Current usage without consuming anything (401 responses).
    pub fn usage(&mut self, now: Instant) -> Usage {
        self.roll(now);
        self.snapshot()
    }

    fn snapshot(&self) -> Usage {
        let used = u32::try_from(self.window.len()).unwrap_or(u32::MAX);
        Usage {
            interval: self
                .limits
                .interval_limit
                .map(|max| (max, max.saturating_sub(used))),
            interval_ms: self.limits.interval_ms,
            daily: self
                .limits
                .daily_limit
                .map(|daily| (daily, daily.saturating_sub(self.daily_used))),
        }
    }

    /// Consumes one request of the applicable budgets or explains the 429.
    pub fn admit(&mut self, search: bool, now: Instant) -> Result<Usage, Rejection> {
        self.roll(now);
        if let Some(daily) = self.limits.daily_limit
            && self.daily_used >= daily
        {
            let midnight = (Utc::now().date_naive() + chrono::Days::new(1))
                .and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc());
            let wait = midnight
                .and_then(|m| (m - Utc::now()).to_std().ok())
                .unwrap_or(Duration::from_secs(1));
            return Err(self.reject(Policy::Daily, wait));
        }
        if search {
            // Search is exempt from the ten-secondly limit but has its own (FACTS 2.5).
            if let Some(limit) = self.limits.search_per_second
                && self.search_window.len() >= limit as usize
            {
                let wait = self.wait_for(&self.search_window, Duration::from_secs(1), now);
                return Err(self.reject(Policy::Secondly, wait));
            }
            self.search_window.push_back(now);
        } else {
            if let Some(limit) = self.limits.interval_limit
                && self.window.len() >= limit as usize
            {
                let wait = self.wait_for(&self.window, self.interval(), now);
                return Err(self.reject(Policy::TenSecondlyRolling, wait));
            }
            self.window.push_back(now);
        }
        self.daily_used = self.daily_used.saturating_add(1);
        Ok(self.snapshot())
    }

    fn wait_for(&self, window: &VecDeque<Instant>, span: Duration, now: Instant) -> Duration {
        window
            .front()
            .map(|&oldest| span.saturating_sub(now.saturating_duration_since(oldest)))
            .unwrap_or(span)
    }

    fn reject(&self, policy: Policy, retry_after: Duration) -> Rejection {
        Rejection {
            policy,
            retry_after,
            usage: self.snapshot(),
        }
    }
}

/// A 429 forced by a fault storm, with the current usage in its headers.
pub(crate) fn storm(policy: super::faults::StormPolicy, usage: Usage) -> Rejection {
    use super::faults::StormPolicy;
    let (policy, retry_after) = match policy {
        StormPolicy::TenSecondlyRolling => (Policy::TenSecondlyRolling, Duration::from_secs(10)),
        StormPolicy::Secondly => (Policy::Secondly, Duration::from_secs(1)),
        StormPolicy::Daily => (Policy::Daily, Duration::from_secs(3600)),
    };
    Rejection {
        policy,
        retry_after,
        usage,
    }
}

/// Writes the `X-HubSpot-RateLimit-*` headers of the limits that are on.
pub(crate) fn apply_headers(headers: &mut HeaderMap, usage: &Usage) {
    let mut pairs = Vec::new();
    if let Some((max, remaining)) = usage.interval {
        pairs.push(("x-hubspot-ratelimit-max", u64::from(max)));
        pairs.push(("x-hubspot-ratelimit-remaining", u64::from(remaining)));
        pairs.push((
            "x-hubspot-ratelimit-interval-milliseconds",
            usage.interval_ms,
        ));
    }
    if let Some((daily, remaining)) = usage.daily {
        pairs.push(("x-hubspot-ratelimit-daily", u64::from(daily)));
        pairs.push(("x-hubspot-ratelimit-daily-remaining", u64::from(remaining)));
    }
    for (name, value) in pairs {
        headers.insert(name, HeaderValue::from(value));
    }
}

impl Rejection {
    /// The 429 body with the exact strings the npm client's retry logic matches (FACTS 2.10).
    pub fn into_response(self) -> Response {
        let (policy, message) = match self.policy {
            Policy::TenSecondlyRolling => (
                "TEN_SECONDLY_ROLLING",
                "You have reached your ten_secondly_rolling limit.",
            ),
            Policy::Secondly => ("SECONDLY", "You have reached your secondly limit."),
            Policy::Daily => ("DAILY", "You have reached your daily limit."),
        };
        let body = json!({
            "status": "error",
            "message": message,
            "errorType": "RATE_LIMIT",
            "category": "RATE_LIMITS",
            "policyName": policy,
            "requestId": uuid::Uuid::new_v4().to_string(),
        });
        let mut response = json_error(StatusCode::TOO_MANY_REQUESTS, body);
        let headers = response.headers_mut();
        apply_headers(headers, &self.usage);
        if self.policy != Policy::Secondly {
            // Whole seconds, rounded up so a client that obeys never comes back too early.
            let millis = self.retry_after.as_millis();
            let secs = u64::try_from(millis.div_ceil(1000))
                .unwrap_or(u64::MAX)
                .max(1);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(interval: Option<u32>, search: Option<u32>) -> Limits {
        Limits {
            interval_limit: interval,
            interval_ms: 10_000,
            daily_limit: Some(1000),
            search_per_second: search,
        }
    }

    #[test]
    fn rolling_window_frees_slots_after_the_interval() {
        let mut limiter = Limiter::new(limits(Some(2), None));
        let t0 = Instant::now();
        assert!(limiter.admit(false, t0).is_ok());
        assert!(limiter.admit(false, t0).is_ok());
        let rejected = limiter.admit(false, t0 + Duration::from_secs(3));
        assert!(matches!(
            rejected,
            Err(Rejection {
                policy: Policy::TenSecondlyRolling,
                ..
            })
        ));
        assert!(limiter.admit(false, t0 + Duration::from_secs(10)).is_ok());
    }

    #[test]
    fn search_has_its_own_budget() {
        let mut limiter = Limiter::new(limits(Some(1), Some(1)));
        let t0 = Instant::now();
        assert!(limiter.admit(false, t0).is_ok());
        assert!(
            limiter.admit(true, t0).is_ok(),
            "search is exempt from the interval limit"
        );
        assert!(matches!(
            limiter.admit(true, t0),
            Err(Rejection {
                policy: Policy::Secondly,
                ..
            })
        ));
    }
}
