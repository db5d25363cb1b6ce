//! [`HubspotConfig`]: where the HubSpot API is, the token (a private app's) or the OAuth
//! credentials (a public app's, [`HubspotOAuth`]), and the budget the client keeps to.
//!
//! The token is a [`SecretString`]: `Debug` prints it redacted, and the client only exposes it
//! to build the `Authorization` header (marked sensitive), so it never reaches a log.

use std::time::Duration;

use secrecy::SecretString;

use super::oauth::HubspotOAuth;
use crate::RetryPolicy;

/// How to reach one HubSpot account and how hard the client may push it.
#[derive(Debug, Clone)]
pub struct HubspotConfig {
    /// API root without a trailing slash: `https://api.hubapi.com`, or the sandbox's URL.
    pub base_url: String,
    /// Private-app or OAuth access token, sent as `Authorization: Bearer` (FACTS 2.1).
    /// An empty token sends no `Authorization` header at all. Unused when `oauth` is set.
    pub token: SecretString,
    /// A public app's credentials: access tokens are then obtained and refreshed with its
    /// refresh token (BRIDGES 4.1), and `token` is unused.
    pub oauth: Option<HubspotOAuth>,
    /// Timeout of one HTTP attempt (connect + response), not of all retries together.
    pub timeout: Duration,
    /// Requests HubSpot allows per `interval` for this app (FACTS 2.10: 100 on Free/Starter,
    /// 190 on Professional/Enterprise, 110 for public OAuth apps).
    pub requests_per_interval: u32,
    /// HubSpot's rolling rate-limit window (10 s, `X-HubSpot-RateLimit-Interval-Milliseconds`).
    pub interval: Duration,
    /// Share of `requests_per_interval`, in percent, the client leaves unused for other apps on
    /// the same account and for clock skew against HubSpot's rolling window (DESIGN principle 5).
    pub headroom_percent: u32,
    /// Retries after the first attempt for retryable failures (429, 5xx, timeout, reset).
    pub max_retries: u32,
    /// The backoff of those retries (its `max_retries` is replaced by the field above).
    pub retry: RetryPolicy,
    /// Names this connection in the call log and the shared budget.
    pub connection: String,
}

impl HubspotConfig {
    /// A config for `base_url` and `token` with every other field at its default.
    pub fn new(base_url: impl Into<String>, token: SecretString) -> Self {
        HubspotConfig {
            base_url: base_url.into(),
            token,
            oauth: None,
            timeout: default_timeout(),
            requests_per_interval: default_requests_per_interval(),
            interval: default_interval(),
            headroom_percent: default_headroom_percent(),
            max_retries: default_max_retries(),
            retry: RetryPolicy::default(),
            connection: "crm".to_string(),
        }
    }
}

impl HubspotConfig {
    /// A config for a public app's `oauth` credentials at `base_url`, every other field at its
    /// default.
    pub fn with_oauth(base_url: impl Into<String>, oauth: HubspotOAuth) -> Self {
        HubspotConfig {
            oauth: Some(oauth),
            ..HubspotConfig::new(base_url, SecretString::from(String::new()))
        }
    }
}

/// HubSpot's production API root.
pub const DEFAULT_BASE_URL: &str = "https://api.hubapi.com";

/// 30 s: a 100-record batch upsert normally answers in well under 5 s.
pub fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

/// 100: the Free/Starter private-app burst limit (FACTS 2.10), the safe assumption.
pub fn default_requests_per_interval() -> u32 {
    100
}

/// 10 s: HubSpot's `TEN_SECONDLY_ROLLING` window (FACTS 2.10).
pub fn default_interval() -> Duration {
    Duration::from_secs(10)
}

/// 10 %: leaves room for other integrations on the same account.
pub fn default_headroom_percent() -> u32 {
    10
}

/// 5 retries: with a 200 ms base and 10 s cap that spans roughly half a minute of trouble.
pub fn default_max_retries() -> u32 {
    5
}
