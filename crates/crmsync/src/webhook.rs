//! The webhook receiver of `crmsync run --webhook-listen ADDR`: `POST /hubspot/webhooks`
//! checks HubSpot's v3 signature (five-minute window, constant-time compare), stores the events
//! in the state database (deduplicated by `eventId`) *before* answering 2xx, and wakes the run
//! loop so the next poll starts at once instead of at the end of `poll_interval_ms`. The poll
//! does the applying; the events make it prompt. A refused request gets 401 (HubSpot does not
//! retry it), a storage failure 500 (HubSpot retries).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use crmsync_crm::hubspot::webhook::verify_v3;
use crmsync_store::{PullStore, SqliteStore};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use tokio::sync::Notify;

/// The path events are received on.
pub const PATH: &str = "/hubspot/webhooks";

/// What the route needs.
pub struct Receiver {
    pub secret: SecretString,
    /// The URL as configured in HubSpot (what v3 signs); `http://<Host><path>` when `None`.
    pub public_url: Option<String>,
    pub store: SqliteStore,
    pub wake: Arc<Notify>,
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn receive(
    State(r): State<Arc<Receiver>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let url = match &r.public_url {
        Some(u) => u.clone(),
        None => format!(
            "http://{}{}",
            header(&headers, "host").unwrap_or_default(),
            uri.path_and_query().map_or(PATH, |p| p.as_str())
        ),
    };
    if let Err(e) = verify_v3(
        r.secret.expose_secret(),
        "POST",
        &url,
        &body,
        header(&headers, "x-hubspot-request-timestamp"),
        header(&headers, "x-hubspot-signature-v3"),
        crmsync_store::state::sqlite::now_ms(),
    ) {
        tracing::warn!(error = %e, "webhook request refused");
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(serde_json::Value::Array(items)) = serde_json::from_slice::<serde_json::Value>(&body)
    else {
        return StatusCode::BAD_REQUEST;
    };
    let events: Vec<(String, String)> = items
        .iter()
        .filter_map(|e| {
            let id = match &e["eventId"] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => return None,
            };
            Some((id, e.to_string()))
        })
        .collect();
    match r.store.record_webhook_events(&events).await {
        Ok(new) => {
            tracing::info!(received = events.len(), new, "webhook events stored");
            if new > 0 {
                r.wake.notify_one();
            }
            StatusCode::NO_CONTENT
        }
        Err(e) => {
            tracing::error!(error = %e, "webhook events could not be stored; hubspot will retry");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// The receiver's routes.
pub fn router(receiver: Arc<Receiver>) -> Router {
    Router::new()
        .route(PATH, post(receive))
        .with_state(receiver)
}
