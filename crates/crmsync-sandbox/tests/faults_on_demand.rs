//! Failure modes on demand, as a client sees them over a real socket: 5xx bodies, latency,
//! hangs, connection resets, 429 storms, token expiry, "applied then failed" batches and
//! seeded reproducibility. Faults never touch `/_sandbox/*`.

mod support;

use std::time::{Duration, Instant};

use crmsync_sandbox::{FaultConfig, RateLimitStorm, SandboxConfig, StormPolicy};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Harness, TOKEN};

async fn set_faults(h: &Harness, faults: Value) {
    let reply = h
        .send(Method::PUT, "/_sandbox/faults", Some(faults), None)
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "faults accepted: {}",
        reply.body
    );
}

#[tokio::test]
async fn server_errors_are_hubspot_shaped_and_admin_routes_are_spared() {
    let h = Harness::unlimited().await;
    set_faults(&h, json!({"error_rate": 1.0, "seed": 1})).await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let reply = h.get("/crm/v3/objects/contacts").await;
        assert!(reply.status.is_server_error(), "status {}", reply.status);
        let category = reply.error_category();
        assert!(!category.is_empty());
        seen.insert(reply.status.as_u16());
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![500, 502, 503]);
    let stats = h.send(Method::GET, "/_sandbox/stats", None, None).await;
    assert_eq!(stats.status, StatusCode::OK);
    let current = h.send(Method::GET, "/_sandbox/faults", None, None).await;
    assert_eq!(current.body["error_rate"], 1.0);
    set_faults(&h, json!({})).await;
    assert_eq!(
        h.get("/crm/v3/objects/contacts").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn invalid_fault_configuration_is_a_400_naming_every_problem() {
    let h = Harness::unlimited().await;
    let reply = h
        .send(
            Method::PUT,
            "/_sandbox/faults",
            Some(json!({"error_rate": 2.0, "reset_rate": -1.0})),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let message = reply.body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("error_rate") && message.contains("reset_rate"),
        "{message}"
    );
}

#[tokio::test]
async fn faults_from_the_start_up_configuration_apply_at_once() {
    let h = Harness::start(SandboxConfig {
        token: Some(TOKEN.to_owned()),
        faults: FaultConfig {
            error_rate: 1.0,
            ..FaultConfig::default()
        },
        ..SandboxConfig::unlimited()
    })
    .await;
    assert!(
        h.get("/crm/v3/objects/contacts")
            .await
            .status
            .is_server_error()
    );
}

#[tokio::test]
async fn latency_delays_every_api_answer() {
    let h = Harness::unlimited().await;
    set_faults(&h, json!({"latency_ms": 250, "latency_jitter_ms": 50})).await;
    let started = Instant::now();
    let reply = h.get("/crm/v3/objects/contacts").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    h.send(Method::GET, "/_sandbox/faults", None, None).await;
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "admin is not delayed"
    );
}

#[tokio::test]
async fn hanging_requests_run_into_the_client_timeout_and_are_not_applied() {
    let h = Harness::unlimited().await;
    set_faults(&h, json!({"hang_rate": 1.0, "hang_ms": 10_000})).await;
    let error = h
        .http
        .post(h.url("/crm/v3/objects/contacts"))
        .bearer_auth(TOKEN)
        .json(&json!({"properties": {"email": "hang@x.io"}}))
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .expect_err("the request hangs");
    assert!(error.is_timeout(), "{error:?}");
    set_faults(&h, json!({})).await;
    let found = h
        .get("/crm/v3/objects/contacts/hang@x.io?idProperty=email")
        .await;
    assert_eq!(found.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn resets_drop_the_connection_without_a_response() {
    let h = Harness::unlimited().await;
    set_faults(&h, json!({"reset_rate": 1.0})).await;
    let error = h
        .http
        .get(h.url("/crm/v3/objects/contacts"))
        .bearer_auth(TOKEN)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect_err("no HTTP response");
    assert!(!error.is_timeout(), "dropped, not hung: {error:?}");
    assert!(error.status().is_none());
    let chain = format!("{error:?}");
    assert!(
        chain.contains("IncompleteMessage") || chain.contains("closed") || chain.contains("reset"),
        "connection-level error: {chain}"
    );
    // The sandbox keeps serving new connections.
    set_faults(&h, json!({})).await;
    assert_eq!(
        h.get("/crm/v3/objects/contacts").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_429_storm_answers_the_ten_secondly_body_for_n_requests() {
    let h = Harness::unlimited().await;
    set_faults(
        &h,
        json!({"storm": {"policy": "TEN_SECONDLY_ROLLING", "requests": 2}}),
    )
    .await;
    for _ in 0..2 {
        let reply = h.get("/crm/v3/objects/contacts").await;
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(reply.body["policyName"], "TEN_SECONDLY_ROLLING");
        assert_eq!(
            reply.body["message"],
            "You have reached your ten_secondly_rolling limit."
        );
        assert_eq!(reply.body["errorType"], "RATE_LIMIT");
        assert!(reply.header("retry-after").is_some());
        // The limits are off: no made-up maximum to pace by.
        assert!(reply.header("x-hubspot-ratelimit-max").is_none());
    }
    assert_eq!(
        h.get("/crm/v3/objects/contacts").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_daily_storm_lasts_for_its_duration() {
    let h = Harness::start(SandboxConfig {
        token: Some(TOKEN.to_owned()),
        faults: FaultConfig {
            storm: Some(RateLimitStorm {
                policy: StormPolicy::Daily,
                requests: None,
                duration_ms: Some(300),
            }),
            ..FaultConfig::default()
        },
        ..SandboxConfig::unlimited()
    })
    .await;
    let reply = h.get("/crm/v3/objects/contacts").await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.body["policyName"], "DAILY");
    assert_eq!(reply.body["message"], "You have reached your daily limit.");
    support::eventually("the storm to pass", Duration::from_secs(5), || async {
        (h.get("/crm/v3/objects/contacts").await.status == StatusCode::OK).then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_expired_token_is_a_401_expired_authentication() {
    let h = Harness::unlimited().await;
    assert_eq!(
        h.get("/crm/v3/objects/contacts").await.status,
        StatusCode::OK
    );
    set_faults(&h, json!({"token_expires_after_ms": 0})).await;
    let reply = h.get("/crm/v3/objects/contacts").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.error_category(), "EXPIRED_AUTHENTICATION");
    let message = reply.body["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("The OAuth token used to make this call expired ")
            && message.ends_with(" second(s) ago."),
        "{message}"
    );
}

#[tokio::test]
async fn applied_then_failed_batches_are_written_before_the_5xx() {
    let h = Harness::unlimited().await;
    set_faults(&h, json!({"fail_after_apply": 1})).await;
    let upsert = json!({"inputs": [{"idProperty": "email", "id": "dup@x.io", "properties": {"firstname": "A"}}]});
    let failed = h
        .post("/crm/v3/objects/contacts/batch/upsert", upsert.clone())
        .await;
    assert!(failed.status.is_server_error(), "{}", failed.status);
    failed.error_category();
    let stored = h
        .get("/crm/v3/objects/contacts/dup@x.io?idProperty=email")
        .await;
    assert_eq!(stored.status, StatusCode::OK, "the write was applied");
    let retried = h
        .post("/crm/v3/objects/contacts/batch/upsert", upsert)
        .await;
    assert_eq!(retried.status, StatusCode::OK);
    assert_eq!(
        retried.body["results"][0]["new"], false,
        "the retry finds the record"
    );
    assert_eq!(retried.body["results"][0]["id"], stored.body["id"]);
}

async fn statuses(seed: u64) -> Vec<u16> {
    let h = Harness::unlimited().await;
    set_faults(&h, json!({"error_rate": 0.5, "seed": seed})).await;
    let mut out = Vec::new();
    for _ in 0..40 {
        out.push(h.get("/crm/v3/objects/contacts").await.status.as_u16());
    }
    out
}

#[tokio::test]
async fn the_same_seed_gives_the_same_faults() {
    let first = statuses(7).await;
    assert_eq!(first, statuses(7).await);
    assert!(
        first.contains(&200) && first.iter().any(|s| *s >= 500),
        "{first:?}"
    );
    assert_ne!(first, statuses(8).await);
}
