//! Change notifications pushed to a subscriber (FACTS 2.11): configuration, the
//! background dispatcher, signed delivery with retries, and the `/_sandbox/webhooks` admin
//! routes.
//!
//! Flow: store mutations append [`Change`](super::events::Change)s to the store's outbox
//! (only while a target is configured); the gate wakes the dispatcher after every write; the
//! dispatcher waits `flush_ms` so a burst lands in one request, drains the outbox, cuts it
//! into arrays of at most `max_batch` events and hands each to its own delivery task, which
//! signs (v3 or v1) and retries on connection errors, timeouts, 5xx and 429 with doubling
//! backoff, bumping `attemptNumber`. Other 4xx answers are final. Every attempt is logged for
//! `GET /_sandbox/webhooks/deliveries`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::ApiError;
use super::events::Context;
use super::extract::JsonBody;
use super::record::iso;
use super::signature;
use super::state::AppState;

/// Most deliveries kept for the admin log; older ones are dropped.
const MAX_LOGGED: usize = 1000;

/// How requests are signed (FACTS 2.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureVersion {
    /// `X-HubSpot-Signature`: hex SHA-256 of secret + body.
    V1,
    /// `X-HubSpot-Signature-v3`: base64 HMAC-SHA256 of method + uri + body + timestamp.
    #[default]
    V3,
}

/// Retry policy of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookRetry {
    /// Attempts in total, the first included (at least 1).
    pub max_attempts: u32,
    /// Wait before the first retry; doubles on each further retry.
    pub initial_backoff_ms: u64,
}

impl Default for WebhookRetry {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff_ms: 1000,
        }
    }
}

fn default_max_batch() -> usize {
    100
}
fn default_flush_ms() -> u64 {
    50
}
fn default_timeout_ms() -> u64 {
    // HubSpot waits 5 s for the subscriber (FACTS 2.11).
    5000
}

/// Where and how change notifications are delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Full URL the events are POSTed to; also the `uri` signed by v3.
    pub target_url: String,
    /// The app's client secret, key of the signatures.
    pub client_secret: String,
    #[serde(default)]
    pub signature_version: SignatureVersion,
    /// Events per request, 1–100 (HubSpot sends up to 100).
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    #[serde(default)]
    pub retry: WebhookRetry,
    /// How long the dispatcher gathers events before sending.
    #[serde(default = "default_flush_ms")]
    pub flush_ms: u64,
    /// Per-attempt timeout.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Subscribed `subscriptionType`s (`contact.creation`, …); empty = all.
    #[serde(default)]
    pub subscriptions: Vec<String>,
}

impl WebhookConfig {
    /// A v3-signed subscription to every event with default batching and retries.
    pub fn new(target_url: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            target_url: target_url.into(),
            client_secret: client_secret.into(),
            signature_version: SignatureVersion::V3,
            max_batch: default_max_batch(),
            retry: WebhookRetry::default(),
            flush_ms: default_flush_ms(),
            timeout_ms: default_timeout_ms(),
            subscriptions: Vec::new(),
        }
    }

    /// Every problem with the configuration, or none.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match reqwest::Url::parse(&self.target_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => problems.push(format!(
                "target_url must be an http(s) URL such as http://127.0.0.1:8080/hooks, got {:?}",
                self.target_url
            )),
        }
        if !(1..=100).contains(&self.max_batch) {
            problems.push(format!("max_batch must be 1–100, got {}", self.max_batch));
        }
        if self.retry.max_attempts == 0 {
            problems.push("retry.max_attempts must be at least 1".to_owned());
        }
        problems
    }
}

/// One attempt of a delivery.
#[derive(Debug, Clone, Serialize)]
struct Attempt {
    #[serde(rename = "attemptNumber")]
    number: u32,
    at: String,
    /// HTTP status answered, if any.
    status: Option<u16>,
    /// Connection error or timeout, if no status.
    error: Option<String>,
}

/// One POST of an event array, with its attempts.
#[derive(Debug, Clone, Serialize)]
struct Delivery {
    id: u64,
    /// `pending`, `delivered` or `failed`.
    state: &'static str,
    status: Option<u16>,
    attempts: Vec<Attempt>,
    events: Vec<Value>,
}

/// Webhook configuration and delivery log.
#[derive(Debug, Default)]
pub(crate) struct Webhooks {
    pub config: Option<WebhookConfig>,
    deliveries: Vec<Delivery>,
    next_event_id: u64,
    next_delivery_id: u64,
}

impl Webhooks {
    pub fn new(config: Option<WebhookConfig>) -> Self {
        Self {
            config,
            next_event_id: 1,
            next_delivery_id: 1,
            ..Self::default()
        }
    }

    pub fn clear_log(&mut self) {
        self.deliveries.clear();
    }

    fn delivery_mut(&mut self, id: u64) -> Option<&mut Delivery> {
        self.deliveries.iter_mut().rev().find(|d| d.id == id)
    }
}

/// Sends events until the sandbox stops; spawned by `Sandbox::start`.
pub(crate) async fn dispatch(state: AppState) {
    let client = match reqwest::Client::builder().build() {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "webhook dispatcher cannot build an HTTP client");
            return;
        }
    };
    loop {
        state.webhook_wake().notified().await;
        let Some(flush) = state.webhooks().config.as_ref().map(|c| c.flush_ms) else {
            continue;
        };
        tokio::time::sleep(Duration::from_millis(flush)).await;
        flush_now(&state, &client);
    }
}

/// Drains the outbox into deliveries.
fn flush_now(state: &AppState, client: &reqwest::Client) {
    let changes = std::mem::take(&mut state.store().outbox.changes);
    if changes.is_empty() {
        return;
    }
    let context = Context {
        portal_id: state.portal_id(),
        app_id: state.app_id(),
    };
    let mut hooks = state.webhooks();
    let Some(config) = hooks.config.clone() else {
        return;
    };
    let mut events = Vec::with_capacity(changes.len());
    for change in &changes {
        let kind = change.subscription_type();
        if !config.subscriptions.is_empty() && !config.subscriptions.contains(&kind) {
            continue;
        }
        events.push(change.to_event(hooks.next_event_id, context));
        hooks.next_event_id += 1;
    }
    let config = Arc::new(config);
    for chunk in events.chunks(config.max_batch.max(1)) {
        let id = hooks.next_delivery_id;
        hooks.next_delivery_id += 1;
        hooks.deliveries.push(Delivery {
            id,
            state: "pending",
            status: None,
            attempts: Vec::new(),
            events: chunk.to_vec(),
        });
        if hooks.deliveries.len() > MAX_LOGGED {
            hooks.deliveries.remove(0);
        }
        tokio::spawn(deliver(
            state.clone(),
            client.clone(),
            Arc::clone(&config),
            id,
            chunk.to_vec(),
        ));
    }
}

/// What one attempt produced.
enum Outcome {
    Status(u16),
    Failed(String),
}

async fn attempt(client: &reqwest::Client, config: &WebhookConfig, events: &[Value]) -> Outcome {
    let body = match serde_json::to_vec(events) {
        Ok(body) => body,
        Err(error) => return Outcome::Failed(format!("cannot encode events: {error}")),
    };
    let mut request = client
        .post(&config.target_url)
        .timeout(Duration::from_millis(config.timeout_ms))
        .header("content-type", "application/json");
    match config.signature_version {
        SignatureVersion::V1 => {
            request = request
                .header(
                    "x-hubspot-signature",
                    signature::v1(&config.client_secret, &body),
                )
                .header("x-hubspot-signature-version", "v1");
        }
        SignatureVersion::V3 => {
            let timestamp = Utc::now().timestamp_millis();
            let signed = signature::v3(
                &config.client_secret,
                "POST",
                &config.target_url,
                &body,
                timestamp,
            );
            request = request
                .header("x-hubspot-signature-v3", signed)
                .header("x-hubspot-request-timestamp", timestamp.to_string())
                .header("x-hubspot-signature-version", "v3");
        }
    }
    match request.body(body).send().await {
        Ok(response) => Outcome::Status(response.status().as_u16()),
        Err(error) if error.is_timeout() => Outcome::Failed(format!("timeout: {error}")),
        Err(error) => Outcome::Failed(format!("connection error: {error}")),
    }
}

/// Delivers one event array with retries (FACTS 2.11: connection failure, timeout, 5xx and
/// 429 are retried, other 4xx are not).
async fn deliver(
    state: AppState,
    client: reqwest::Client,
    config: Arc<WebhookConfig>,
    id: u64,
    mut events: Vec<Value>,
) {
    let mut backoff = Duration::from_millis(config.retry.initial_backoff_ms);
    for number in 0..config.retry.max_attempts {
        for event in &mut events {
            event["attemptNumber"] = json!(number);
        }
        let outcome = attempt(&client, &config, &events).await;
        let (status, error, retry) = match outcome {
            Outcome::Status(code) => (
                Some(code),
                None,
                code >= 500 || code == StatusCode::TOO_MANY_REQUESTS.as_u16(),
            ),
            Outcome::Failed(error) => (None, Some(error), true),
        };
        let last = number + 1 >= config.retry.max_attempts;
        {
            let mut hooks = state.webhooks();
            let Some(delivery) = hooks.delivery_mut(id) else {
                return;
            };
            delivery.attempts.push(Attempt {
                number,
                at: iso(Utc::now()),
                status,
                error,
            });
            delivery.status = status;
            if status.is_some_and(|s| (200..300).contains(&s)) {
                delivery.state = "delivered";
                return;
            }
            if !retry || last {
                delivery.state = "failed";
                return;
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = backoff.saturating_mul(2);
    }
}

async fn get_config(State(state): State<AppState>) -> axum::Json<Value> {
    axum::Json(serde_json::to_value(&state.webhooks().config).unwrap_or(Value::Null))
}

/// Sets the subscriber; events start being recorded from now on.
async fn put_config(
    State(state): State<AppState>,
    JsonBody(config): JsonBody<WebhookConfig>,
) -> Result<axum::Json<Value>, ApiError> {
    let problems = config.problems();
    if !problems.is_empty() {
        return Err(ApiError::validation(problems.join("; ")));
    }
    let body = serde_json::to_value(&config).unwrap_or(Value::Null);
    state.webhooks().config = Some(config);
    state.store().outbox.enabled = true;
    Ok(axum::Json(body))
}

/// Turns notifications off and drops undelivered events.
async fn delete_config(State(state): State<AppState>) -> StatusCode {
    state.webhooks().config = None;
    let mut store = state.store();
    store.outbox.enabled = false;
    store.outbox.changes.clear();
    StatusCode::NO_CONTENT
}

async fn deliveries(State(state): State<AppState>) -> axum::Json<Value> {
    let hooks = state.webhooks();
    axum::Json(json!({ "results": hooks.deliveries }))
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/_sandbox/webhooks",
            get(get_config).put(put_config).delete(delete_config),
        )
        .route("/_sandbox/webhooks/deliveries", get(deliveries))
}
