//! Every rejection comes back in HubSpot's exact error shape (FACTS 2.9).

mod support;

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{Harness, TOKEN};

#[tokio::test]
async fn invalid_email_is_a_validation_error_with_embedded_details() {
    let h = Harness::unlimited().await;
    let reply = h
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "not an email"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_category(), "VALIDATION_ERROR");
    let message = reply.body["message"].as_str().unwrap_or_default();
    let embedded = message
        .strip_prefix("Property values were not valid: ")
        .expect("HubSpot prefix");
    let items: serde_json::Value = serde_json::from_str(embedded).expect("embedded JSON array");
    assert_eq!(items[0]["error"], "INVALID_EMAIL");
    assert_eq!(items[0]["name"], "email");
    assert_eq!(items[0]["isValid"], false);
}

#[tokio::test]
async fn duplicate_contact_email_is_409_naming_the_existing_id() {
    let h = Harness::unlimited().await;
    let id = h
        .create("contacts", json!({"email": "Ada@Example.com"}))
        .await;
    let reply = h
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "ada@example.com"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.error_category(), "CONFLICT");
    assert_eq!(
        reply.body["message"],
        format!("Contact already exists. Existing ID: {id}")
    );
}

#[tokio::test]
async fn unknown_property_and_unknown_deal_stage_are_rejected() {
    let h = Harness::unlimited().await;
    let reply = h
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "a@x.io", "shoe_size": "9"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("PROPERTY_DOESNT_EXIST")
    );

    let reply = h
        .post(
            "/crm/v3/objects/deals",
            json!({"properties": {"dealname": "x", "pipeline": "default", "dealstage": "nope"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_category(), "VALIDATION_ERROR");
    assert!(
        reply.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("INVALID_OPTION")
    );
}

#[tokio::test]
async fn number_properties_reject_non_numbers() {
    let h = Harness::unlimited().await;
    let reply = h
        .post(
            "/crm/v3/objects/deals",
            json!({"properties": {"dealname": "x", "amount": "lots"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("INVALID_INTEGER")
    );
    let ok = h
        .post(
            "/crm/v3/objects/deals",
            json!({"properties": {"dealname": "x", "amount": 1500}}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED);
    assert_eq!(
        ok.body["properties"]["amount"], "1500",
        "numbers come back as strings"
    );
}

#[tokio::test]
async fn batch_over_100_inputs_is_rejected_and_nothing_is_written() {
    let h = Harness::unlimited().await;
    let inputs: Vec<_> = (0..101)
        .map(|i| json!({"properties": {"email": format!("b{i}@x.io")}}))
        .collect();
    let reply = h
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({ "inputs": inputs }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_category(), "VALIDATION_ERROR");
    let list = h.get("/crm/v3/objects/contacts").await;
    assert_eq!(list.body["results"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn unknown_routes_missing_records_and_wrong_methods_answer_json() {
    let h = Harness::unlimited().await;
    let reply = h.get("/crm/v3/nothing/here").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_category(), "OBJECT_NOT_FOUND");

    let reply = h.get("/crm/v3/objects/companies/999999").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_category(), "OBJECT_NOT_FOUND");

    let reply = h
        .send(Method::PUT, "/crm/v3/objects/contacts", None, Some(TOKEN))
        .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    reply.error_category();
}

#[tokio::test]
async fn malformed_json_is_a_hubspot_400() {
    let h = Harness::unlimited().await;
    let response = h
        .http
        .post(h.url("/crm/v3/objects/contacts"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{\"properties\": ")
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = response.json().await.expect("JSON error body");
    assert_eq!(body["category"], "VALIDATION_ERROR");
}

#[tokio::test]
async fn missing_or_wrong_token_is_401() {
    let h = Harness::unlimited().await;
    let reply = h
        .send(Method::GET, "/crm/v3/objects/contacts", None, None)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.error_category(), "INVALID_AUTHENTICATION");
    assert!(
        reply.header("x-hubspot-ratelimit-max").is_none(),
        "no rate-limit headers while the limits are off"
    );
    let limited = Harness::start(crmsync_sandbox::SandboxConfig::default()).await;
    let refused = limited
        .send(Method::GET, "/crm/v3/objects/contacts", None, None)
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.header("x-hubspot-ratelimit-max"),
        Some("100"),
        "with limits on, headers on every response, a refusal's too"
    );

    let reply = h
        .send(
            Method::GET,
            "/crm/v3/objects/contacts",
            None,
            Some("pat-other"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    let open = Harness::start(crmsync_sandbox::SandboxConfig::unlimited()).await;
    let reply = open
        .send(
            Method::GET,
            "/crm/v3/objects/contacts",
            None,
            Some("anything"),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "without a configured token any bearer token passes"
    );
}
