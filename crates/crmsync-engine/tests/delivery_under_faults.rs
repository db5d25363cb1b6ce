//! Delivery converges under every failure mode the sandbox can inject: 5xx answers, dropped
//! connections, requests that hang past the timeout, 429 storms, batches applied and then
//! answered with an error, an expired token. Converged means: every valid record in the CRM
//! exactly once, linked, nothing left in the queue.

mod support;

use crmsync_sandbox::SandboxConfig;
use crmsync_store::{Coordination, Records};
use serde_json::json;
use std::time::Duration;
use support::{TestClock, World, wall_ms, world};

fn customers() -> Vec<(i64, &'static str, &'static str)> {
    (1..=120)
        .map(|i| {
            let email: &'static str = if i == 60 {
                "broken@"
            } else {
                Box::leak(format!("buyer{i}@example.com").into_boxed_str())
            };
            (i, "Robotics Co", email)
        })
        .collect()
}

fn orders() -> Vec<(i64, i64, &'static str, &'static str)> {
    (1..=400)
        .map(|i| {
            (
                i,
                1 + i % 120,
                "Order",
                if i % 3 == 0 { "paid" } else { "new" },
            )
        })
        .collect()
}

async fn set_faults(w: &World, faults: serde_json::Value) {
    let r = reqwest::Client::new()
        .put(format!("{}/_sandbox/faults", w.sandbox.base_url()))
        .json(&faults)
        .send()
        .await
        .expect("admin call");
    assert!(
        r.status().is_success(),
        "faults accepted: {}",
        r.text().await.unwrap_or_default()
    );
}

/// Runs passes (moving the engine's clock an hour each time, past any retry delay) until the
/// queue is empty; returns the retries and 429s the call log recorded.
async fn converge(w: &World, max_passes: usize) -> (u64, u64) {
    let clock = TestClock::at(wall_ms());
    let engine = w
        .engine_full(
            w.config.clone(),
            |hc| {
                hc.timeout = Duration::from_millis(400);
                hc.max_retries = 3;
            },
            Some(clock.clone()),
        )
        .await;
    for pass in 1..=max_passes {
        // A pass may stop (an expired token, the schema check out of retries); the next goes on.
        if let Err(e) = engine.push_once().await {
            eprintln!("pass {pass} stopped: {e}");
        }
        let mut pending = 0;
        for s in ["companies", "contacts", "deals"] {
            let c = engine.state.counts(s).await.expect("counts");
            assert_eq!(c.dead, 0, "{s}: no job may die under transient faults");
            pending += c.pending;
        }
        if pending == 0 {
            let calls = engine.state.call_summary(0).await.expect("call log");
            return (calls.retries as u64, calls.rate_limited as u64);
        }
        clock.advance(3_600_000);
    }
    panic!("did not converge in {max_passes} passes");
}

async fn assert_exactly_once(w: &World) {
    assert_eq!(
        w.objects().await,
        (120, 119, 400),
        "each valid record exactly once"
    );
    let engine = w.engine().await;
    for (sync, n) in [("companies", 120), ("contacts", 119), ("deals", 400)] {
        assert_eq!(
            engine.state.counts(sync).await.expect("counts").linked,
            n,
            "{sync} linked"
        );
    }
}

#[tokio::test]
async fn converges_through_server_errors_resets_and_hangs() {
    let w = world(&customers(), &orders(), SandboxConfig::unlimited()).await;
    set_faults(&w, json!({"seed": 11, "error_rate": 0.2, "reset_rate": 0.05, "hang_rate": 0.05, "hang_ms": 3000})).await;
    let (retries, _) = converge(&w, 15).await;
    assert!(retries > 0, "the faults were real: the client retried");
    set_faults(&w, json!({})).await;
    assert_exactly_once(&w).await;
}

#[tokio::test]
async fn converges_through_a_429_storm() {
    let w = world(&customers(), &orders(), SandboxConfig::unlimited()).await;
    set_faults(&w, json!({"storm": {"policy": "SECONDLY", "requests": 3}})).await;
    let (_, limited) = converge(&w, 10).await;
    assert_eq!(
        limited, 3,
        "each of the storm's 429s was retried and logged"
    );
    assert_exactly_once(&w).await;
}

#[tokio::test]
async fn batches_applied_then_failed_are_not_duplicated() {
    let w = world(&customers(), &orders(), SandboxConfig::unlimited()).await;
    // The worst case for a create-then-save-id integration: the CRM did the work, we saw a 500.
    set_faults(&w, json!({"fail_after_apply": 5})).await;
    converge(&w, 10).await;
    assert_exactly_once(&w).await;
    // Contacts and deals go out as creates carrying their associations; a create the sandbox
    // applied and answered 500 is sent again, finds its key taken and falls back to upsert +
    // association call: every record is still linked to its company, once.
    let engine = w.engine().await;
    let crm_id = |sync: &'static str, key: i64| {
        let state = &engine.state;
        async move {
            state
                .link(sync, &key.to_string())
                .await
                .expect("link")
                .and_then(|l| l.crm_id)
                .expect("linked")
        }
    };
    assert!(w.calls_to("/batch/create").await > 0, "creates were used");
    for (sync, object, key, customer) in (1..=400)
        .step_by(7)
        .map(|i| ("deals", "deals", i, 1 + i % 120))
        .chain(
            (1..=120)
                .filter(|i| *i != 60)
                .map(|i| ("contacts", "contacts", i, i)),
        )
    {
        let id = crm_id(sync, key).await;
        let company = crm_id("companies", customer).await;
        let links = w
            .get(&format!(
                "/crm/v4/objects/{object}/{id}/associations/companies"
            ))
            .await;
        let targets: Vec<String> = links["results"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["toObjectId"].to_string().trim_matches('"').to_string())
            .collect();
        assert_eq!(
            targets,
            vec![company],
            "{sync} {key} linked to its company once"
        );
    }
}

#[tokio::test]
async fn an_expired_token_stops_the_pass_and_loses_nothing() {
    let w = world(&customers(), &orders(), SandboxConfig::unlimited()).await;
    set_faults(&w, json!({"token_expires_after_ms": 0})).await;
    let engine = w.engine().await;
    let err = engine.push_once().await.expect_err("401 stops the pass");
    assert!(
        err.to_string().contains("EXPIRED_AUTHENTICATION") || err.to_string().contains("expired"),
        "{err}"
    );
    // A new token (faults cleared): everything arrives.
    set_faults(&w, json!({})).await;
    converge(&w, 5).await;
    assert_exactly_once(&w).await;
}
