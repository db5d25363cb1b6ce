//! Failure modes on demand: server errors, latency, hangs, connection resets, 429 storms,
//! token expiry and "applied then failed" batch writes. Configured by
//! [`FaultConfig`] (start-up) and `GET|PUT /_sandbox/faults` (runtime); `Default` injects
//! nothing.
//!
//! Reproducibility: every API request draws the same five numbers from one seeded
//! `StdRng`, whatever is enabled, so the same seed and the same request sequence give the
//! same faults. Faults only touch API routes, never `/_sandbox/*`, and a faulted request
//! consumes no rate-limit budget (it never reached the limiter).

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::{ApiError, json_error};
use super::extract::JsonBody;
use super::state::AppState;

/// Which 429 a storm answers with (FACTS 2.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StormPolicy {
    /// `policyName: TEN_SECONDLY_ROLLING` with `Retry-After`.
    TenSecondlyRolling,
    /// `policyName: SECONDLY`, "You have reached your secondly limit."
    Secondly,
    /// `policyName: DAILY`.
    Daily,
}

/// A burst of 429 answers: for the next `requests` API calls and/or for `duration_ms` after
/// the configuration was applied; with neither, until the faults are cleared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitStorm {
    pub policy: StormPolicy,
    #[serde(default)]
    pub requests: Option<u32>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
}

/// Failure modes injected into API answers. Every field off by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Seed of the fault dice; the same seed replays the same faults.
    pub seed: u64,
    /// Share of requests (0.0–1.0) answered 500, 502 or 503 with a HubSpot error body.
    pub error_rate: f64,
    /// Added to every API request before it is handled.
    pub latency_ms: u64,
    /// Up to this many extra milliseconds, uniformly drawn.
    pub latency_jitter_ms: u64,
    /// Share of requests that hang for `hang_ms` (longer than any client timeout) and
    /// are then answered 504 without being applied.
    pub hang_rate: f64,
    pub hang_ms: u64,
    /// Share of requests whose connection is dropped without any HTTP response.
    pub reset_rate: f64,
    /// 429 answers for a while.
    pub storm: Option<RateLimitStorm>,
    /// The token expires this long after the configuration was applied (start-up or
    /// `PUT /_sandbox/faults`): 401 `EXPIRED_AUTHENTICATION` afterwards.
    pub token_expires_after_ms: Option<u64>,
    /// The next N batch writes (create/update/upsert/archive) are applied and then
    /// answered 500 or 502, the worst case for duplicates.
    pub fail_after_apply: u32,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            error_rate: 0.0,
            latency_ms: 0,
            latency_jitter_ms: 0,
            hang_rate: 0.0,
            hang_ms: 300_000,
            reset_rate: 0.0,
            storm: None,
            token_expires_after_ms: None,
            fail_after_apply: 0,
        }
    }
}

impl FaultConfig {
    /// Every problem with the configuration, or none.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, rate) in [
            ("error_rate", self.error_rate),
            ("hang_rate", self.hang_rate),
            ("reset_rate", self.reset_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                problems.push(format!("{name} must be between 0.0 and 1.0, got {rate}"));
            }
        }
        problems
    }
}

/// What the gate does with one API request.
#[derive(Debug)]
pub(crate) enum Action {
    Pass,
    /// 401 `EXPIRED_AUTHENTICATION`, expired this many seconds ago.
    Expired(u64),
    Storm(StormPolicy),
    Hang(Duration),
    Reset,
    ServerError(StatusCode),
}

/// The dice and counters behind the configuration.
#[derive(Debug)]
pub(crate) struct Faults {
    config: FaultConfig,
    rng: StdRng,
    applied_at: Instant,
    storm_left: Option<u32>,
    fail_after_apply_left: u32,
}

const SERVER_ERRORS: [StatusCode; 3] = [
    StatusCode::INTERNAL_SERVER_ERROR,
    StatusCode::BAD_GATEWAY,
    StatusCode::SERVICE_UNAVAILABLE,
];

impl Faults {
    pub fn new(config: FaultConfig) -> Self {
        Self {
            rng: StdRng::seed_from_u64(config.seed),
            applied_at: Instant::now(),
            storm_left: config.storm.as_ref().and_then(|s| s.requests),
            fail_after_apply_left: config.fail_after_apply,
            config,
        }
    }

    /// Whether any fault is configured: lets the gate skip the dice entirely.
    fn idle(&self) -> bool {
        self.config
            == FaultConfig {
                seed: self.config.seed,
                hang_ms: self.config.hang_ms,
                ..FaultConfig::default()
            }
    }

    /// The added latency and the action for the next API request.
    pub fn plan(&mut self, now: Instant) -> (Duration, Action) {
        if self.idle() {
            return (Duration::ZERO, Action::Pass);
        }
        let jitter: f64 = self.rng.random();
        let hang: f64 = self.rng.random();
        let reset: f64 = self.rng.random();
        let error: f64 = self.rng.random();
        let which = self.rng.random_range(0..SERVER_ERRORS.len());
        let extra = (jitter * (self.config.latency_jitter_ms as f64 + 1.0)).floor() as u64;
        let delay = Duration::from_millis(
            self.config
                .latency_ms
                .saturating_add(extra.min(self.config.latency_jitter_ms)),
        );
        let elapsed = now.saturating_duration_since(self.applied_at);
        if let Some(after) = self.config.token_expires_after_ms
            && elapsed >= Duration::from_millis(after)
        {
            let ago = elapsed
                .saturating_sub(Duration::from_millis(after))
                .as_secs();
            return (delay, Action::Expired(ago.max(1)));
        }
        if let Some(storm) = &self.config.storm {
            let within_time = storm
                .duration_ms
                .is_none_or(|ms| elapsed < Duration::from_millis(ms));
            let within_count = self.storm_left.is_none_or(|left| left > 0);
            if within_time && within_count {
                if let Some(left) = self.storm_left.as_mut() {
                    *left -= 1;
                }
                return (delay, Action::Storm(storm.policy));
            }
        }
        let action = if hang < self.config.hang_rate {
            Action::Hang(Duration::from_millis(self.config.hang_ms))
        } else if reset < self.config.reset_rate {
            Action::Reset
        } else if error < self.config.error_rate {
            SERVER_ERRORS
                .get(which)
                .map_or(Action::Pass, |&status| Action::ServerError(status))
        } else {
            Action::Pass
        };
        (delay, action)
    }

    /// Consumes one "applied then failed" token after a successful batch write.
    pub fn take_fail_after_apply(&mut self) -> Option<StatusCode> {
        if self.fail_after_apply_left == 0 {
            return None;
        }
        self.fail_after_apply_left -= 1;
        // Alternate 500 and 502 so clients see both.
        Some(if self.fail_after_apply_left.is_multiple_of(2) {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::BAD_GATEWAY
        })
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut body = serde_json::to_value(&self.config).unwrap_or(Value::Null);
        body["remaining"] = json!({
            "storm_requests": self.storm_left,
            "fail_after_apply": self.fail_after_apply_left,
        });
        body
    }
}

/// Whether `path` is a batch write that "applied then failed" targets.
pub(crate) fn is_batch_write(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    matches!(
        segments.as_slice(),
        [
            "crm",
            "v3",
            "objects",
            _,
            "batch",
            "create" | "update" | "upsert" | "archive"
        ]
    )
}

/// A HubSpot-shaped 5xx body.
pub(crate) fn server_error(status: StatusCode) -> Response {
    let (category, message) = match status {
        StatusCode::BAD_GATEWAY => ("BAD_GATEWAY", "Bad Gateway"),
        StatusCode::SERVICE_UNAVAILABLE => ("SERVICE_UNAVAILABLE", "Service Unavailable"),
        StatusCode::GATEWAY_TIMEOUT => ("GATEWAY_TIMEOUT", "Gateway Timeout"),
        _ => ("INTERNAL_ERROR", "internal error"),
    };
    json_error(
        status,
        json!({"status": "error", "message": message, "category": category}),
    )
}

/// 401 `EXPIRED_AUTHENTICATION` with HubSpot's wording (FACTS 2.1).
pub(crate) fn expired(seconds_ago: u64) -> Response {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "EXPIRED_AUTHENTICATION",
        format!("The OAuth token used to make this call expired {seconds_ago} second(s) ago."),
    )
    .into_response()
}

/// A response whose body fails before its first byte: hyper then closes the connection
/// without writing the status line, so the client sees the connection drop mid-request.
pub(crate) fn reset() -> Response {
    let failing = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "sandbox fault: connection reset",
        ))
    });
    Response::new(Body::from_stream(failing))
}

async fn get_faults(State(state): State<AppState>) -> axum::Json<Value> {
    axum::Json(state.faults().to_json())
}

/// Replaces the whole fault configuration (absent fields = off) and restarts the dice,
/// the storm and the token-expiry clock.
async fn put_faults(
    State(state): State<AppState>,
    JsonBody(config): JsonBody<FaultConfig>,
) -> Result<axum::Json<Value>, ApiError> {
    let problems = config.problems();
    if !problems.is_empty() {
        return Err(ApiError::validation(problems.join("; ")));
    }
    let mut faults = state.faults();
    *faults = Faults::new(config);
    Ok(axum::Json(faults.to_json()))
}

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/_sandbox/faults", get(get_faults).put(put_faults))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actions(config: &FaultConfig, n: usize) -> Vec<String> {
        let mut faults = Faults::new(config.clone());
        let now = Instant::now();
        (0..n).map(|_| format!("{:?}", faults.plan(now))).collect()
    }

    #[test]
    fn the_same_seed_replays_the_same_faults() {
        let config = FaultConfig {
            seed: 42,
            error_rate: 0.3,
            reset_rate: 0.1,
            latency_jitter_ms: 50,
            ..FaultConfig::default()
        };
        assert_eq!(actions(&config, 200), actions(&config, 200));
        let other = FaultConfig {
            seed: 43,
            ..config.clone()
        };
        assert_ne!(actions(&config, 200), actions(&other, 200));
        let errors = actions(&config, 1000)
            .iter()
            .filter(|a| a.contains("ServerError"))
            .count();
        assert!((150..=400).contains(&errors), "about 30% of 90%: {errors}");
    }

    #[test]
    fn storms_end_after_their_request_count() {
        let mut faults = Faults::new(FaultConfig {
            storm: Some(RateLimitStorm {
                policy: StormPolicy::Daily,
                requests: Some(2),
                duration_ms: None,
            }),
            ..FaultConfig::default()
        });
        let now = Instant::now();
        assert!(matches!(
            faults.plan(now).1,
            Action::Storm(StormPolicy::Daily)
        ));
        assert!(matches!(
            faults.plan(now).1,
            Action::Storm(StormPolicy::Daily)
        ));
        assert!(matches!(faults.plan(now).1, Action::Pass));
    }

    #[test]
    fn batch_writes_are_recognised() {
        assert!(is_batch_write("/crm/v3/objects/contacts/batch/upsert"));
        assert!(is_batch_write("/crm/v3/objects/0-3/batch/archive"));
        assert!(!is_batch_write("/crm/v3/objects/contacts/batch/read"));
        assert!(!is_batch_write("/crm/v3/objects/contacts"));
    }

    #[test]
    fn rates_out_of_range_are_reported() {
        let config = FaultConfig {
            error_rate: 1.5,
            reset_rate: -0.1,
            ..FaultConfig::default()
        };
        assert_eq!(config.problems().len(), 2);
    }
}
