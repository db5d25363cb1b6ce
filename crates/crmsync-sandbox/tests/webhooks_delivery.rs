//! Change notifications over real sockets: a tiny axum receiver records what the sandbox
//! POSTs. Covers v3 and v1 signatures, event shapes (creation, propertyChange, deletion,
//! merge, associationChange), batching, retries with `attemptNumber`, no retry on 4xx, and
//! the integration-vs-other-user `changeSource`.

mod support;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::post;
use base64::Engine;
use crmsync_sandbox::{SandboxConfig, SignatureVersion, WebhookConfig, WebhookRetry};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::{Harness, TOKEN, eventually};

const SECRET: &str = "client-secret-123";
const OTHER: &str = "ui-user-token";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: String,
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    /// Statuses to answer, in order; 200 once exhausted.
    script: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    async fn start(script: &[u16]) -> (Receiver, String) {
        let receiver = Receiver::default();
        receiver
            .script
            .lock()
            .expect("script lock")
            .extend(script.iter().copied());
        let app = axum::Router::new()
            .route("/hooks", post(receive))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("receiver binds");
        let addr = listener.local_addr().expect("receiver address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, format!("http://{addr}/hooks"))
    }

    fn requests(&self) -> Vec<Received> {
        self.got.lock().expect("got lock").clone()
    }

    /// All events received so far, flattened.
    fn events(&self) -> Vec<Value> {
        self.requests()
            .iter()
            .flat_map(|r| serde_json::from_str::<Vec<Value>>(&r.body).expect("an array of events"))
            .collect()
    }

    async fn wait_for(&self, what: &str, predicate: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        eventually(what, Duration::from_secs(10), || async {
            let events = self.events();
            predicate(&events).then_some(events)
        })
        .await
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: String) -> AxumStatus {
    receiver
        .got
        .lock()
        .expect("got lock")
        .push(Received { headers, body });
    let status = receiver
        .script
        .lock()
        .expect("script lock")
        .pop_front()
        .unwrap_or(200);
    AxumStatus::from_u16(status).unwrap_or(AxumStatus::OK)
}

fn header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["subscriptionType"] == kind)
        .collect()
}

async fn sandbox_with(config: WebhookConfig) -> Harness {
    Harness::start(SandboxConfig {
        token: Some(TOKEN.to_owned()),
        other_tokens: [(OTHER.to_owned(), 4242)].into_iter().collect(),
        webhooks: Some(config),
        ..SandboxConfig::unlimited()
    })
    .await
}

fn quick(url: &str) -> WebhookConfig {
    WebhookConfig {
        flush_ms: 20,
        retry: WebhookRetry {
            max_attempts: 3,
            initial_backoff_ms: 20,
        },
        ..WebhookConfig::new(url, SECRET)
    }
}

#[tokio::test]
async fn v3_signed_creation_and_property_change_events() {
    let (receiver, url) = Receiver::start(&[]).await;
    let h = Harness::unlimited().await;
    let put = h
        .send(
            Method::PUT,
            "/_sandbox/webhooks",
            Some(json!({"target_url": url, "client_secret": SECRET, "signature_version": "v3", "flush_ms": 20})),
            None,
        )
        .await;
    assert_eq!(put.status, reqwest::StatusCode::OK, "{}", put.body);
    let id = h
        .create("contacts", json!({"email": "w@x.io", "firstname": "Ann"}))
        .await;
    h.patch(
        &format!("/crm/v3/objects/contacts/{id}"),
        json!({"properties": {"firstname": "Anna", "lastname": "Lee", "email": "w@x.io"}}),
    )
    .await;
    let events = receiver
        .wait_for("creation and 2 property changes", |e| e.len() >= 3)
        .await;
    let creation = of_type(&events, "contact.creation");
    assert_eq!(creation.len(), 1);
    assert_eq!(
        creation[0]["objectId"].as_u64().map(|v| v.to_string()),
        Some(id.clone())
    );
    assert_eq!(creation[0]["changeFlag"], "NEW");
    assert_eq!(creation[0]["changeSource"], "INTEGRATION");
    assert_eq!(creation[0]["sourceId"], "54321");
    assert_eq!(creation[0]["portalId"], 62515);
    assert_eq!(creation[0]["appId"], 54321);
    for field in ["eventId", "subscriptionId", "occurredAt", "attemptNumber"] {
        assert!(creation[0][field].is_number(), "{field} in {}", creation[0]);
    }
    let mut changes: Vec<(String, String)> = of_type(&events, "contact.propertyChange")
        .iter()
        .map(|e| {
            (
                e["propertyName"].as_str().unwrap_or_default().to_owned(),
                e["propertyValue"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    changes.sort();
    assert_eq!(
        changes,
        vec![
            ("firstname".into(), "Anna".into()),
            ("lastname".into(), "Lee".into())
        ],
        "one event per changed property, unchanged email skipped"
    );

    for request in receiver.requests() {
        assert_eq!(header(&request, "x-hubspot-signature-version"), "v3");
        let timestamp = header(&request, "x-hubspot-request-timestamp");
        let ms: i64 = timestamp.parse().expect("timestamp in ms");
        assert!(ms > 1_600_000_000_000, "milliseconds, not seconds");
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("hmac key");
        mac.update(format!("POST{url}{}{timestamp}", request.body).as_bytes());
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(header(&request, "x-hubspot-signature-v3"), expected);
    }
}

#[tokio::test]
async fn v1_signatures_and_batches_of_at_most_max_batch() {
    let (receiver, url) = Receiver::start(&[]).await;
    let h = sandbox_with(WebhookConfig {
        signature_version: SignatureVersion::V1,
        max_batch: 2,
        ..quick(&url)
    })
    .await;
    let inputs: Vec<Value> = (0..5)
        .map(|i| json!({"properties": {"email": format!("b{i}@x.io")}}))
        .collect();
    let reply = h
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": inputs}),
        )
        .await;
    assert_eq!(reply.status, reqwest::StatusCode::CREATED);
    receiver.wait_for("5 creations", |e| e.len() >= 5).await;
    for request in receiver.requests() {
        let events: Vec<Value> = serde_json::from_str(&request.body).expect("array");
        assert!(events.len() <= 2, "max_batch respected: {}", events.len());
        assert_eq!(header(&request, "x-hubspot-signature-version"), "v1");
        let mut hasher = Sha256::new();
        hasher.update(SECRET.as_bytes());
        hasher.update(request.body.as_bytes());
        assert_eq!(
            header(&request, "x-hubspot-signature"),
            hex::encode(hasher.finalize())
        );
    }
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_increasing_attempt_numbers() {
    let (receiver, url) = Receiver::start(&[503, 429]).await;
    let h = sandbox_with(quick(&url)).await;
    h.create("companies", json!({"name": "Retry Inc"})).await;
    let delivered = eventually("a delivered delivery", Duration::from_secs(10), || async {
        let log = h
            .send(Method::GET, "/_sandbox/webhooks/deliveries", None, None)
            .await
            .body;
        (log["results"][0]["state"] == "delivered").then_some(log)
    })
    .await;
    let attempts = &delivered["results"][0]["attempts"];
    assert_eq!(attempts.as_array().map(Vec::len), Some(3), "{delivered}");
    assert_eq!(attempts[0]["status"], 503);
    assert_eq!(attempts[1]["status"], 429);
    assert_eq!(attempts[2]["status"], 200);
    let numbers: Vec<Value> = receiver
        .events()
        .iter()
        .map(|e| e["attemptNumber"].clone())
        .collect();
    assert_eq!(numbers, vec![json!(0), json!(1), json!(2)]);
    assert_eq!(receiver.events()[0]["subscriptionType"], "company.creation");
}

#[tokio::test]
async fn client_errors_are_not_retried_and_connection_failures_are() {
    let (receiver, url) = Receiver::start(&[400]).await;
    let h = sandbox_with(quick(&url)).await;
    h.create("deals", json!({"dealname": "No retry"})).await;
    let log = eventually("a failed delivery", Duration::from_secs(10), || async {
        let log = h
            .send(Method::GET, "/_sandbox/webhooks/deliveries", None, None)
            .await
            .body;
        (log["results"][0]["state"] == "failed").then_some(log)
    })
    .await;
    assert_eq!(
        log["results"][0]["attempts"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(receiver.requests().len(), 1);

    // Nobody listens on this port: every attempt is a connection error.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let dead = format!("http://{}/hooks", closed.local_addr().expect("addr"));
    drop(closed);
    let h = sandbox_with(quick(&dead)).await;
    h.create("deals", json!({"dealname": "Unreachable"})).await;
    let log = eventually("all attempts used", Duration::from_secs(10), || async {
        let log = h
            .send(Method::GET, "/_sandbox/webhooks/deliveries", None, None)
            .await
            .body;
        (log["results"][0]["state"] == "failed").then_some(log)
    })
    .await;
    let attempts = log["results"][0]["attempts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(attempts.len(), 3, "{log}");
    assert!(
        attempts
            .iter()
            .all(|a| a["status"].is_null() && a["error"].is_string())
    );
}

#[tokio::test]
async fn changes_by_another_user_are_attributed_to_the_ui() {
    let (receiver, url) = Receiver::start(&[]).await;
    let h = sandbox_with(quick(&url)).await;
    let id = h.create("contacts", json!({"email": "two@x.io"})).await;
    let reply = h
        .send(
            Method::PATCH,
            &format!("/crm/v3/objects/contacts/{id}"),
            Some(json!({"properties": {"firstname": "FromUI"}})),
            Some(OTHER),
        )
        .await;
    assert_eq!(reply.status, reqwest::StatusCode::OK);
    let events = receiver
        .wait_for("the UI property change", |e| {
            !of_type(e, "contact.propertyChange").is_empty()
        })
        .await;
    let change = of_type(&events, "contact.propertyChange")[0];
    assert_eq!(change["changeSource"], "CRM_UI");
    assert_eq!(change["sourceId"], "userId:4242");
    assert_eq!(
        of_type(&events, "contact.creation")[0]["changeSource"],
        "INTEGRATION"
    );

    let history = h
        .get(&format!(
            "/crm/v3/objects/contacts/{id}?propertiesWithHistory=firstname,email"
        ))
        .await;
    let versions = &history.body["propertiesWithHistory"]["firstname"];
    assert_eq!(versions[0]["value"], "FromUI");
    assert_eq!(versions[0]["sourceType"], "CRM_UI");
    assert_eq!(versions[0]["updatedByUserId"], 4242);
    assert_eq!(
        history.body["propertiesWithHistory"]["email"][0]["sourceType"],
        "INTEGRATION"
    );
}

#[tokio::test]
async fn merges_deletions_and_associations_are_notified_and_pollable() {
    let (receiver, url) = Receiver::start(&[]).await;
    let h = sandbox_with(quick(&url)).await;
    let keep = h.create("companies", json!({"name": "Keep"})).await;
    let gone = h
        .create("companies", json!({"name": "Gone", "domain": "gone.io"}))
        .await;
    let contact = h.create("contacts", json!({"email": "assoc@x.io"})).await;
    let put = h
        .put(
            &format!("/crm/v4/objects/contacts/{contact}/associations/default/companies/{keep}"),
            None,
        )
        .await;
    assert!(put.status.is_success());
    let merged = h
        .post(
            "/crm/v3/objects/companies/merge",
            json!({"primaryObjectId": keep, "objectIdToMerge": gone}),
        )
        .await;
    assert_eq!(merged.status, reqwest::StatusCode::OK, "{}", merged.body);
    let resolved = h.get(&format!("/crm/v3/objects/companies/{gone}")).await;
    assert_eq!(
        resolved.body["id"],
        keep.as_str(),
        "absorbed id resolves to the survivor"
    );
    assert_eq!(resolved.body["properties"]["domain"], "gone.io");
    h.delete(&format!("/crm/v3/objects/contacts/{contact}"))
        .await;
    let archived = h.get("/crm/v3/objects/contacts?archived=true").await;
    assert_eq!(archived.body["results"][0]["id"], contact.as_str());

    let events = receiver
        .wait_for("merge, deletions and association", |e| {
            !of_type(e, "company.merge").is_empty()
                && !of_type(e, "contact.deletion").is_empty()
                && of_type(e, "company.associationChange").len() == 1
        })
        .await;
    let merge = of_type(&events, "company.merge")[0];
    assert_eq!(merge["primaryObjectId"].to_string(), keep);
    assert_eq!(
        merge["mergedObjectIds"],
        json!([gone.parse::<u64>().unwrap_or(0)])
    );
    assert_eq!(merge["newObjectId"].to_string(), keep);
    assert!(merge["numberOfPropertiesMoved"].as_u64() >= Some(1));
    let deletions = of_type(&events, "company.deletion");
    assert_eq!(deletions[0]["objectId"].to_string(), gone);
    assert_eq!(deletions[0]["changeFlag"], "MERGED");
    assert_eq!(
        of_type(&events, "contact.deletion")[0]["changeFlag"],
        "DELETED"
    );
    let association = of_type(&events, "contact.associationChange")[0];
    assert_eq!(association["associationType"], "CONTACT_TO_COMPANY");
    assert_eq!(association["fromObjectId"].to_string(), contact);
    assert_eq!(association["toObjectId"].to_string(), keep);
    assert_eq!(association["associationRemoved"], false);
    let back = of_type(&events, "company.associationChange")[0];
    assert_eq!(back["associationType"], "COMPANY_TO_CONTACT");
}

#[tokio::test]
async fn webhook_configuration_is_validated() {
    let h = Harness::unlimited().await;
    let reply = h
        .send(
            Method::PUT,
            "/_sandbox/webhooks",
            Some(json!({"target_url": "not a url", "client_secret": "s", "max_batch": 0})),
            None,
        )
        .await;
    assert_eq!(reply.status, reqwest::StatusCode::BAD_REQUEST);
    let message = reply.body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("target_url") && message.contains("max_batch"),
        "{message}"
    );
}
