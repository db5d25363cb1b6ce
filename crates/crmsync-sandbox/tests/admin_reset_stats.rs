//! The `/_sandbox` admin surface: stats per endpoint template and reset.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::Harness;

fn count(stats: &Value, method: &str, endpoint: &str, status: u64) -> u64 {
    stats["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["method"] == method && c["endpoint"] == endpoint && c["status"] == status)
        .and_then(|c| c["count"].as_u64())
        .unwrap_or(0)
}

#[tokio::test]
async fn stats_group_calls_by_template_and_reset_clears_data() {
    let h = Harness::unlimited().await;
    let id = h.create("contacts", json!({"email": "s@x.io"})).await;
    h.get(&format!("/crm/v3/objects/contacts/{id}")).await;
    h.get("/crm/v3/objects/0-1/999999").await;
    let upsert = json!({"inputs": [{"idProperty": "email", "id": "u@x.io", "properties": {}}]});
    h.post("/crm/v3/objects/0-1/batch/upsert", upsert).await;
    h.send(Method::GET, "/crm/v3/objects/contacts", None, None)
        .await;

    let stats = h
        .send(Method::GET, "/_sandbox/stats", None, None)
        .await
        .body;
    assert_eq!(count(&stats, "POST", "/crm/v3/objects/contacts", 201), 1);
    assert_eq!(
        count(&stats, "GET", "/crm/v3/objects/contacts/{id}", 200),
        1
    );
    assert_eq!(
        count(&stats, "GET", "/crm/v3/objects/contacts/{id}", 404),
        1
    );
    assert_eq!(
        count(&stats, "POST", "/crm/v3/objects/contacts/batch/upsert", 200),
        1
    );
    assert_eq!(count(&stats, "GET", "/crm/v3/objects/contacts", 401), 1);
    assert_eq!(stats["total"], 5);
    assert_eq!(
        stats["objects"],
        json!({"contacts": 2, "companies": 0, "deals": 0, "line_items": 0, "products": 0, "tickets": 0})
    );

    let reset = h.send(Method::POST, "/_sandbox/reset", None, None).await;
    assert!(reset.status.is_success());
    let stats = h
        .send(Method::GET, "/_sandbox/stats", None, None)
        .await
        .body;
    assert_eq!(stats["total"], 0);
    assert_eq!(stats["objects"]["contacts"], 0);
    let gone = h.get(&format!("/crm/v3/objects/contacts/{id}")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let reused = h.create("contacts", json!({"email": "s@x.io"})).await;
    assert!(!reused.is_empty(), "the e-mail index was cleared too");
}
