//! The webhook receiver of `crmsync run` (`[webhooks] listen`, or `--webhook-listen ADDR`):
//! `POST /hubspot/webhooks` checks HubSpot's signature (v3 by default: five-minute window; v1
//! when `[webhooks] signature = "v1"`; constant-time compares), stores the events in the state
//! database (deduplicated by their content, see [`dedup_key`]) *before* answering 2xx, and
//! wakes the run loop, which applies them at once (the webhook leader turns them into hints; each sync's leader reads the
//! records they name back).
//!
//! Answers: 204 stored (or already known); 401 a missing, wrong or stale signature, or one of the
//! other version; 400 a body that is not a JSON array of events with `eventId`,
//! `subscriptionType` and `objectId` (nothing of it is stored); 413 a body over
//! `max_body_bytes` (at once when declared); 405 another method; 408 a request not read within
//! `[server] read_timeout_ms`; 500 a storage failure, or a state database that did not take
//! the events within [`STORE_TIMEOUT`] (shorter than HubSpot's 5 s delivery timeout, so
//! HubSpot sees the failure and retries instead of timing out). HubSpot retries only 5xx and
//! 429, so every refusal is final and only a failure to store makes it deliver again. Neither
//! the secret nor a request's signature is ever logged.

use crate::exit::UsageError;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use crmsync_core::config::{Config, WebhookSignature};
use crmsync_crm::hubspot::webhook::{SignatureError, verify_v1, verify_v3};
use crmsync_store::{AnyState, Lifecycle};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The path events are received on.
pub const PATH: &str = "/hubspot/webhooks";

/// How long storing a delivery may wait for the state database (a SQLite lock held by a long
/// transaction, a slow PostgreSQL): HubSpot gives up on a delivery after 5 s.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(3);

/// What the route needs.
pub struct Receiver {
    pub secret: SecretString,
    /// The signature version checked; requests signed with the other one are refused.
    pub signature: WebhookSignature,
    /// The URL as configured in HubSpot (what v3 signs); `http://<Host><path>` when `None`.
    pub public_url: Option<String>,
    /// Larger bodies get 413.
    pub max_body_bytes: usize,
    pub store: AnyState,
    pub wake: Arc<Notify>,
}

/// The flags of `crmsync run` that override `[webhooks]` keys of the config file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--webhook-listen` (over `listen`).
    pub listen: Option<SocketAddr>,
    /// `--webhook-secret-env` (over `secret_env` and `secret_file`).
    pub secret_env: Option<String>,
    /// `--webhook-url` (over `url`).
    pub url: Option<String>,
}

/// Starts the receiver when the config's `[webhooks] listen` or the `--webhook-listen` flag
/// gives an address: resolves the client secret (only then: nothing else needs it), binds, and
/// serves in the background. Returns the bound address, `None` when no receiver is configured.
pub async fn start(
    config: &Config,
    flags: Overrides,
    store: AnyState,
    wake: Arc<Notify>,
    stop: CancellationToken,
) -> anyhow::Result<Option<SocketAddr>> {
    let hooks = &config.raw.webhooks;
    // Validated when the config was loaded.
    let from_file = hooks.listen.as_deref().and_then(|a| a.parse().ok());
    let Some(addr) = flags.listen.or(from_file) else {
        if hooks.url.is_some() {
            crate::progress::warn_line(
                "[webhooks] url is set but no `listen` address: not receiving webhooks",
            );
        }
        return Ok(None);
    };
    let secret = match &flags.secret_env {
        Some(var) => match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => SecretString::from(v.trim().to_string()),
            _ => {
                return Err(UsageError(format!(
                    "--webhook-secret-env names {var}, which is not set (or empty); export it with the HubSpot app's client secret"
                ))
                .into());
            }
        },
        None => config.webhook_secret(&|name| std::env::var(name).ok())?,
    };
    let receiver = Arc::new(Receiver {
        secret,
        signature: hooks.signature,
        public_url: flags.url.or_else(|| hooks.url.clone()),
        max_body_bytes: hooks.max_body_bytes,
        store,
        wake,
    });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    crate::progress::announce(&format!(
        "receiving HubSpot webhooks on http://{bound}{PATH} ({} signatures)",
        receiver.signature.as_str()
    ));
    let limits = crate::serve::Limits {
        max_connections: config.raw.server.max_connections,
        read_timeout: Duration::from_millis(config.raw.server.read_timeout_ms),
        max_body_bytes: receiver.max_body_bytes,
    };
    crate::serve::spawn(listener, router(receiver), limits, "webhooks", stop);
    Ok(Some(bound))
}

/// The receiver's routes. Another method than POST gets 405 (axum's method router); the body
/// limit and the timeouts are the server's ([`crate::serve`]).
pub fn router(receiver: Arc<Receiver>) -> Router {
    let limit = receiver.max_body_bytes;
    Router::new()
        .route(PATH, post(receive))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(receiver)
}

/// Why a request is not stored; the answer HubSpot gets says as much, and no more.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    /// A signature problem: 401, which HubSpot does not retry.
    #[error("invalid webhook signature")]
    Signature(#[from] SignatureError),
    /// The body is not an array of events: 400.
    #[error("{0}")]
    Body(String),
    /// The state database failed: 500, which HubSpot retries.
    #[error("the events could not be stored")]
    Store,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = match &self {
            Refusal::Signature(_) => StatusCode::UNAUTHORIZED,
            Refusal::Body(_) => StatusCode::BAD_REQUEST,
            Refusal::Store => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, self.to_string()).into_response()
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks the request's signature with the configured version.
fn verify(r: &Receiver, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<(), SignatureError> {
    let secret = r.secret.expose_secret();
    match r.signature {
        // The v3 header is unambiguous, and HubSpot may send a v1 signature beside it, so the
        // version header is not consulted.
        WebhookSignature::V3 => {
            let url = match &r.public_url {
                Some(u) => u.clone(),
                None => format!(
                    "http://{}{}",
                    header(headers, "host").unwrap_or_default(),
                    uri.path_and_query().map_or(PATH, |p| p.as_str())
                ),
            };
            verify_v3(
                secret,
                "POST",
                &url,
                body,
                header(headers, "x-hubspot-request-timestamp"),
                header(headers, "x-hubspot-signature-v3"),
                crmsync_store::now_ms(),
            )
        }
        // `X-HubSpot-Signature` also carries v2 signatures: the version header must not name
        // another version.
        WebhookSignature::V1 => match header(headers, "x-hubspot-signature-version") {
            Some(v) if !v.trim().eq_ignore_ascii_case("v1") => Err(SignatureError::OtherVersion {
                got: v.trim().chars().take(8).collect(),
                want: "v1",
            }),
            _ => verify_v1(secret, body, header(headers, "x-hubspot-signature")),
        },
    }
}

/// The `(dedup key, event JSON)` pairs of a delivery, or why it is not one: a JSON array whose
/// every element is an object with an `eventId` (number or string), a `subscriptionType`
/// (string) and an `objectId` (number or string). One bad event refuses the whole delivery.
fn events(body: &[u8]) -> Result<Vec<(String, String)>, Refusal> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Refusal::Body(format!("the body is not JSON: {e}")))?;
    let Value::Array(items) = value else {
        return Err(Refusal::Body(
            "the body is not a JSON array of events".into(),
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, e)| {
            if !matches!(&e["eventId"], Value::Number(_))
                && !matches!(&e["eventId"], Value::String(s) if !s.is_empty())
            {
                return Err(Refusal::Body(format!("event {i} has no eventId")));
            }
            if !matches!(&e["subscriptionType"], Value::String(s) if !s.is_empty()) {
                return Err(Refusal::Body(format!("event {i} has no subscriptionType")));
            }
            if !matches!(&e["objectId"], Value::Number(_))
                && !matches!(&e["objectId"], Value::String(s) if !s.is_empty())
            {
                return Err(Refusal::Body(format!("event {i} has no objectId")));
            }
            Ok((dedup_key(e), e.to_string()))
        })
        .collect()
}

/// What a redelivery changes of an event: HubSpot counts its attempts.
const VARIES_ON_REDELIVERY: &[&str] = &["attemptNumber"];

/// The key an event is deduplicated by: a SHA-256 over everything it says (the id, the
/// subscription, the object, when it happened, the property and its value, merge and
/// association details) except what a redelivery changes, with the fields in sorted order.
/// HubSpot does not promise `eventId`s unique, so two events sharing one are both kept,
/// while a redelivery of one event is recognised.
fn dedup_key(event: &Value) -> String {
    use sha2::{Digest, Sha256};
    let mut fields: Vec<(&String, &Value)> = event
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| !VARIES_ON_REDELIVERY.contains(&k.as_str()))
                .collect()
        })
        .unwrap_or_default();
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let mut hash = Sha256::new();
    for (key, value) in fields {
        // Length-prefixed, so no two different events hash the same bytes.
        let value = value.to_string();
        hash.update((key.len() as u64).to_le_bytes());
        hash.update(key.as_bytes());
        hash.update((value.len() as u64).to_le_bytes());
        hash.update(value.as_bytes());
    }
    format!("sha256:{}", hex::encode(hash.finalize()))
}

async fn receive(
    State(r): State<Arc<Receiver>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, Refusal> {
    if let Err(e) = verify(&r, &uri, &headers, &body) {
        crate::ops::metrics::webhook_refused("signature");
        tracing::warn!(error = %e, version = r.signature.as_str(), "webhook request refused");
        return Err(e.into());
    }
    let events = events(&body).inspect_err(|e| {
        crate::ops::metrics::webhook_refused("body");
        tracing::warn!(error = %e, "webhook request refused: not a delivery of events");
    })?;
    let stored = tokio::time::timeout(
        STORE_TIMEOUT,
        r.store
            .record_webhook_events(&events, crmsync_store::now_ms()),
    )
    .await;
    match stored {
        Err(_) => {
            crate::ops::metrics::webhook_refused("store");
            tracing::error!(
                waited_ms = STORE_TIMEOUT.as_millis() as u64,
                "the state database did not take the webhook events in time; hubspot will retry"
            );
            Err(Refusal::Store)
        }
        Ok(Ok(new)) => {
            crate::ops::metrics::webhook_stored(events.len() as u64, new);
            tracing::info!(received = events.len(), new, "webhook events stored");
            if new > 0 {
                r.wake.notify_one();
            }
            Ok(StatusCode::NO_CONTENT)
        }
        Ok(Err(e)) => {
            crate::ops::metrics::webhook_refused("store");
            tracing::error!(error = %e, "webhook events could not be stored; hubspot will retry");
            Err(Refusal::Store)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_keyed_by_content_not_by_event_id_alone() {
        let key = |json: &str| dedup_key(&serde_json::from_str(json).expect("json"));
        let a = r#"{"eventId":7,"subscriptionId":1,"objectId":10,"occurredAt":1000,"subscriptionType":"contact.propertyChange","propertyName":"email","propertyValue":"a@x.io","attemptNumber":0}"#;
        // A redelivery (another attempt, fields in another order) is the same event.
        let again = r#"{"attemptNumber":3,"objectId":10,"eventId":7,"subscriptionId":1,"occurredAt":1000,"subscriptionType":"contact.propertyChange","propertyName":"email","propertyValue":"a@x.io"}"#;
        assert_eq!(key(a), key(again));
        // The same id with another object, time, property, value or subscription is not.
        for other in [
            a.replace(r#""objectId":10"#, r#""objectId":11"#),
            a.replace(r#""occurredAt":1000"#, r#""occurredAt":1001"#),
            a.replace(r#""propertyName":"email""#, r#""propertyName":"phone""#),
            a.replace("a@x.io", "b@x.io"),
            a.replace(r#""subscriptionId":1"#, r#""subscriptionId":2"#),
        ] {
            assert_ne!(key(a), key(&other), "{other}");
        }
    }

    #[test]
    fn a_delivery_is_an_array_of_events_with_id_type_and_object() {
        let ok = br#"[{"eventId":1,"subscriptionType":"contact.creation","objectId":123},
                      {"eventId":"2","subscriptionType":"object.creation","objectId":"0-1"}]"#;
        let got = events(ok).expect("valid");
        assert_eq!(got.len(), 2);
        assert_ne!(got[0].0, got[1].0);
        assert!(events(b"[]").expect("empty is fine").is_empty());
        for (body, says) in [
            (&br#"{"eventId":1}"#[..], "not a JSON array"),
            (b"not json", "not JSON"),
            (
                br#"[{"eventId":1,"subscriptionType":"contact.creation","objectId":1},{"subscriptionType":"contact.creation","objectId":1}]"#,
                "event 1 has no eventId",
            ),
            (
                br#"[{"eventId":1,"objectId":1}]"#,
                "event 0 has no subscriptionType",
            ),
            (
                br#"[{"eventId":1,"subscriptionType":"contact.creation","objectId":null}]"#,
                "event 0 has no objectId",
            ),
            (b"[1]", "event 0 has no eventId"),
        ] {
            match events(body) {
                Err(Refusal::Body(m)) => assert!(m.contains(says), "{m}"),
                other => panic!("{says}: {other:?}"),
            }
        }
    }
}
