//! HubSpot's rate limits: headers on every response and exact 429 bodies (FACTS 2.10).

mod support;

use crmsync_sandbox::SandboxConfig;
use reqwest::StatusCode;
use serde_json::json;
use support::{Harness, TOKEN};

fn tiny(interval: Option<u32>, daily: Option<u32>, search: Option<u32>) -> SandboxConfig {
    SandboxConfig {
        token: Some(TOKEN.to_owned()),
        interval_limit: interval,
        interval_ms: 60_000,
        daily_limit: daily,
        search_per_second: search,
        portal_id: 1,
        ..SandboxConfig::default()
    }
}

#[tokio::test]
async fn ten_secondly_limit_answers_429_with_policy_and_retry_after() {
    let h = Harness::start(tiny(Some(2), None, None)).await;
    let first = h.get("/crm/v3/objects/contacts").await;
    assert_eq!(first.header("x-hubspot-ratelimit-max"), Some("2"));
    assert_eq!(first.header("x-hubspot-ratelimit-remaining"), Some("1"));
    assert_eq!(
        first.header("x-hubspot-ratelimit-interval-milliseconds"),
        Some("60000")
    );
    // The daily limit is off here: no daily headers (a made-up maximum would be paced by).
    assert!(first.header("x-hubspot-ratelimit-daily").is_none());
    assert!(
        first
            .header("x-hubspot-ratelimit-daily-remaining")
            .is_none()
    );
    let second = h.get("/crm/v3/objects/contacts").await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.header("x-hubspot-ratelimit-remaining"), Some("0"));

    let third = h.get("/crm/v3/objects/contacts").await;
    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS);
    third.error_category();
    assert_eq!(third.body["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(third.body["errorType"], "RATE_LIMIT");
    assert_eq!(
        third.body["message"],
        "You have reached your ten_secondly_rolling limit."
    );
    let retry: u64 = third
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After seconds");
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    assert_eq!(third.header("x-hubspot-ratelimit-remaining"), Some("0"));

    let search = h.post("/crm/v3/objects/contacts/search", json!({})).await;
    assert_eq!(
        search.status,
        StatusCode::OK,
        "search is exempt from the ten-secondly limit"
    );
}

#[tokio::test]
async fn search_has_a_secondly_limit() {
    let h = Harness::start(tiny(None, None, Some(1))).await;
    let first = h.post("/crm/v3/objects/contacts/search", json!({})).await;
    assert_eq!(first.status, StatusCode::OK);
    let second = h.post("/crm/v3/objects/contacts/search", json!({})).await;
    assert_eq!(second.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(second.body["policyName"], "SECONDLY");
    assert_eq!(
        second.body["message"],
        "You have reached your secondly limit."
    );
}

#[tokio::test]
async fn daily_limit_answers_daily_policy() {
    let h = Harness::start(tiny(None, Some(1), None)).await;
    assert_eq!(h.get("/crm/v3/objects/deals").await.status, StatusCode::OK);
    let over = h.get("/crm/v3/objects/deals").await;
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(over.body["policyName"], "DAILY");
    assert_eq!(
        over.header("x-hubspot-ratelimit-daily-remaining"),
        Some("0")
    );
}

#[tokio::test]
async fn admin_calls_are_neither_limited_nor_counted_and_limits_can_change() {
    let h = Harness::start(tiny(Some(1), None, None)).await;
    assert_eq!(
        h.get("/crm/v3/objects/contacts").await.status,
        StatusCode::OK
    );
    for _ in 0..3 {
        let stats = h
            .send(reqwest::Method::GET, "/_sandbox/stats", None, None)
            .await;
        assert_eq!(stats.status, StatusCode::OK);
    }
    assert_eq!(
        h.get("/crm/v3/objects/contacts").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    let put = h
        .send(
            reqwest::Method::PUT,
            "/_sandbox/limits",
            Some(json!({"interval_limit": null})),
            None,
        )
        .await;
    assert_eq!(put.status, StatusCode::OK);
    assert_eq!(put.body["interval_limit"], serde_json::Value::Null);
    assert_eq!(
        put.body["interval_ms"], 60_000,
        "absent keys keep their value"
    );
    assert_eq!(
        h.get("/crm/v3/objects/contacts").await.status,
        StatusCode::OK
    );
    let limits = h
        .send(reqwest::Method::GET, "/_sandbox/limits", None, None)
        .await;
    assert_eq!(
        limits.body,
        json!({"interval_limit": null, "interval_ms": 60000, "daily_limit": null, "search_per_second": null})
    );
}
