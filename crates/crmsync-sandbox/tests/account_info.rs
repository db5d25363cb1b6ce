//! `GET /account-info/v3/details` reports the configured portal id and account type (so one
//! sandbox can pose as a production account), and the daily API usage endpoint counts the
//! day's calls against the daily limit.

mod support;

use crmsync_sandbox::SandboxConfig;
use reqwest::StatusCode;
use support::{Harness, TOKEN};

#[tokio::test]
async fn details_report_the_configured_portal_and_account_type() {
    let h = Harness::start(SandboxConfig {
        token: Some(TOKEN.to_owned()),
        portal_id: 777,
        account_type: "STANDARD".into(),
        ..SandboxConfig::default()
    })
    .await;
    let r = h.get("/account-info/v3/details").await;
    assert_eq!(r.status, StatusCode::OK);
    let body = &r.body;
    assert_eq!(body["portalId"], 777);
    assert_eq!(body["accountType"], "STANDARD");
    assert_eq!(body["timeZone"], "UTC");

    let default = Harness::start(SandboxConfig {
        token: Some(TOKEN.to_owned()),
        ..SandboxConfig::default()
    })
    .await;
    assert_eq!(
        default.get("/account-info/v3/details").await.body["accountType"],
        "SANDBOX",
        "a sandbox is a test account unless told otherwise"
    );
}

#[tokio::test]
async fn daily_usage_counts_the_days_calls_against_the_limit() {
    let h = Harness::start(SandboxConfig {
        token: Some(TOKEN.to_owned()),
        daily_limit: Some(1000),
        ..SandboxConfig::default()
    })
    .await;
    for _ in 0..3 {
        h.get("/crm/v3/objects/contacts").await;
    }
    let r = h.get("/account-info/v3/api-usage/daily/private-apps").await;
    assert_eq!(r.status, StatusCode::OK);
    let usage = &r.body["results"][0];
    assert_eq!(usage["name"], "api-calls-daily");
    assert_eq!(usage["usageLimit"], 1000);
    // The three listings and this call itself.
    assert_eq!(usage["currentUsage"], 4);
    assert!(
        usage["resetsAt"]
            .as_str()
            .is_some_and(|t| t.ends_with("T00:00:00.000Z"))
    );
}
