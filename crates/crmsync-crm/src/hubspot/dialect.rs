//! [`HubspotDialect`]: how the shared [`crate::http::Transport`] reads HubSpot's answers: its
//! error bodies (FACTS 2.8), its `X-HubSpot-RateLimit-*` headers (FACTS 2.10), its daily
//! limit, which no in-call retry can outwait, and, for a public app, the 401 that a refreshed
//! OAuth token may fix (`EXPIRED_AUTHENTICATION`, FACTS 2.1).

use std::time::Duration;

use reqwest::header::HeaderMap;

use super::error as hs_error;
use crate::CrmError;
use crate::http::Dialect;

/// HubSpot's dialect, with the headroom the client keeps below the account's window.
pub(crate) struct HubspotDialect {
    /// Share of the window, in percent, below which the lane pauses (other apps share the account).
    pub(crate) headroom_percent: u32,
    /// The window assumed when an answer does not say its length.
    pub(crate) interval: Duration,
    /// The credentials are a public app's OAuth tokens, which a refresh may fix.
    pub(crate) oauth: bool,
}

impl Dialect for HubspotDialect {
    fn crm(&self) -> &'static str {
        "hubspot"
    }

    fn classify(&self, what: &str, status: u16, headers: &HeaderMap, body: &str) -> CrmError {
        let err = hs_error::from_response(what, status, headers, body);
        if self.oauth {
            hs_error::for_public_app(err)
        } else {
            err
        }
    }

    fn rate_headers(&self, headers: &HeaderMap) -> Vec<(String, String)> {
        headers
            .iter()
            .filter(|(name, _)| name.as_str().starts_with("x-hubspot-ratelimit-"))
            .filter_map(|(name, value)| {
                Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
            })
            .collect()
    }

    /// Slows down when `X-HubSpot-RateLimit-Remaining` is below the headroom of the window:
    /// each missing request slot is worth one average slot time of the window.
    fn pause_hint(&self, headers: &HeaderMap) -> Option<Duration> {
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
        let slots = u32::try_from(low_water - remaining).unwrap_or(u32::MAX);
        let slot = window / u32::try_from(max).unwrap_or(u32::MAX);
        Some(slot.saturating_mul(slots).min(window))
    }

    /// A daily limit lasts until midnight in the account's time zone.
    fn outlasts_retries(&self, err: &CrmError) -> bool {
        hs_error::is_daily_limit(err)
    }

    /// Any 401 of a public app: `EXPIRED_AUTHENTICATION` is the usual one, but a token revoked
    /// early is fixed by a refresh too; the transport renews once per call, so a refresh that
    /// does not help ends in the 401 itself.
    fn session_expired(&self, err: &CrmError) -> bool {
        self.oauth && err.status == Some(401)
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn low_remaining_header_asks_for_a_pause() {
        let dialect = HubspotDialect {
            headroom_percent: 10,
            interval: Duration::from_secs(10),
            oauth: false,
        };
        let mut headers = HeaderMap::new();
        headers.insert("x-hubspot-ratelimit-max", HeaderValue::from_static("100"));
        headers.insert(
            "x-hubspot-ratelimit-interval-milliseconds",
            HeaderValue::from_static("1000"),
        );
        headers.insert(
            "x-hubspot-ratelimit-remaining",
            HeaderValue::from_static("50"),
        );
        assert_eq!(dialect.pause_hint(&headers), None);
        headers.insert(
            "x-hubspot-ratelimit-remaining",
            HeaderValue::from_static("5"),
        );
        // 5 slots short of the 10 % low-water mark, 10 ms per slot of a 1 s window.
        assert_eq!(
            dialect.pause_hint(&headers),
            Some(Duration::from_millis(50))
        );
    }
}
