//! The org survives a restart through its state file, and the shared fault dice answer
//! Salesforce-shaped 5xx errors without consuming the daily allocation.

mod sf_support;

use crmsync_sandbox::SalesforceConfig;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sf_support::Sf;

#[tokio::test]
async fn the_org_survives_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = SalesforceConfig {
        state_file: Some(dir.path().join("org.json")),
        ..SalesforceConfig::unlimited()
    };
    let sf = Sf::start(config.clone()).await;
    let id = sf
        .create(
            "Account",
            json!({"Name": "Kept", "crmsync_id__c": "keep-1"}),
        )
        .await;
    sf.sandbox.shutdown().await;

    let sf = Sf::start(config).await;
    let got = sf.get("sobjects/Account/crmsync_id__c/keep-1").await;
    assert_eq!(
        (got.status, got.body["Id"].as_str()),
        (StatusCode::OK, Some(id.as_str()))
    );
    let newer = sf.create("Account", json!({"Name": "After restart"})).await;
    assert!(
        newer > id,
        "ids keep increasing across restarts: {newer} vs {id}"
    );
    sf.sandbox.shutdown().await;
}

#[tokio::test]
async fn injected_server_errors_are_salesforce_shaped_and_free() {
    let sf = Sf::start(SalesforceConfig {
        daily_limit: Some(50),
        ..SalesforceConfig::default()
    })
    .await;
    let set = sf
        .admin(
            Method::PUT,
            "/_sandbox/faults",
            json!({"seed": 7, "error_rate": 1.0}),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let failed = sf.get("limits/").await;
    assert!(failed.status.is_server_error(), "{}", failed.status);
    assert!(failed.body[0]["errorCode"].is_string(), "{}", failed.body);
    sf.admin(Method::PUT, "/_sandbox/faults", json!({})).await;
    let limits = sf.get("limits/").await;
    assert_eq!(
        limits.body["DailyApiRequests"]["Remaining"], 49,
        "the faulted call was not counted"
    );
    sf.sandbox.shutdown().await;
}
