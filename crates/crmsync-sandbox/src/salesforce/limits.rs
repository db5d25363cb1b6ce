//! The org's rolling 24-hour API request allocation (FACTS 3.9). Invariant: usage is the
//! number of admitted requests in the last 24 hours (kept in one-minute buckets); a request
//! over the limit is refused 403 `REQUEST_LIMIT_EXCEEDED` and not counted.

use std::collections::VecDeque;
use std::time::Instant;

use axum::http::{HeaderMap, HeaderValue, StatusCode};

use super::error::SfError;

const WINDOW_MINUTES: u64 = 24 * 60;

/// Used and maximum, as `Sforce-Limit-Info: api-usage=N/M` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    pub used: u32,
    pub max: u32,
}

/// Requests per minute over the last 24 hours.
#[derive(Debug)]
pub(crate) struct DailyLimiter {
    limit: Option<u32>,
    origin: Instant,
    buckets: VecDeque<(u64, u32)>,
}

impl DailyLimiter {
    pub fn new(limit: Option<u32>) -> Self {
        Self {
            limit,
            origin: Instant::now(),
            buckets: VecDeque::new(),
        }
    }

    fn minute(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_secs() / 60
    }

    fn prune(&mut self, now: Instant) {
        let current = self.minute(now);
        while self
            .buckets
            .front()
            .is_some_and(|(m, _)| m + WINDOW_MINUTES <= current)
        {
            self.buckets.pop_front();
        }
    }

    /// `None` = unlimited.
    pub fn limit(&self) -> Option<u32> {
        self.limit
    }

    /// The maximum reported to clients; an unlimited org reports `u32::MAX`.
    pub fn max(&self) -> u32 {
        self.limit.unwrap_or(u32::MAX)
    }

    pub fn usage(&mut self, now: Instant) -> Usage {
        self.prune(now);
        Usage {
            used: self.buckets.iter().map(|(_, n)| *n).sum(),
            max: self.max(),
        }
    }

    /// Counts one request, or refuses it when the allocation is spent.
    pub fn admit(&mut self, now: Instant) -> Result<Usage, Usage> {
        let usage = self.usage(now);
        if self.limit.is_some_and(|limit| usage.used >= limit) {
            return Err(usage);
        }
        let minute = self.minute(now);
        match self.buckets.back_mut() {
            Some((m, n)) if *m == minute => *n += 1,
            _ => self.buckets.push_back((minute, 1)),
        }
        Ok(Usage {
            used: usage.used + 1,
            ..usage
        })
    }

    /// Replaces the limit and/or the usage (all counted as of now).
    pub fn set(&mut self, limit: Option<Option<u32>>, used: Option<u32>, now: Instant) {
        if let Some(limit) = limit {
            self.limit = limit;
        }
        if let Some(used) = used {
            self.buckets.clear();
            if used > 0 {
                let minute = self.minute(now);
                self.buckets.push_back((minute, used));
            }
        }
    }
}

/// `Sforce-Limit-Info: api-usage=N/M`.
pub(crate) fn apply_header(headers: &mut HeaderMap, usage: Usage) {
    if let Ok(value) = HeaderValue::from_str(&format!("api-usage={}/{}", usage.used, usage.max)) {
        headers.insert("sforce-limit-info", value);
    }
}

/// 403 `REQUEST_LIMIT_EXCEEDED`.
pub(crate) fn exceeded() -> SfError {
    SfError::new(
        StatusCode::FORBIDDEN,
        "REQUEST_LIMIT_EXCEEDED",
        "TotalRequests Limit exceeded.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_window_rolls_after_24_hours() {
        let mut limiter = DailyLimiter::new(Some(2));
        let start = Instant::now();
        assert!(limiter.admit(start).is_ok());
        assert!(limiter.admit(start).is_ok());
        assert_eq!(limiter.admit(start), Err(Usage { used: 2, max: 2 }));
        let later = start + Duration::from_secs(24 * 3600 + 61);
        assert_eq!(limiter.admit(later), Ok(Usage { used: 1, max: 2 }));
    }
}
