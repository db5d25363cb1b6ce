//! A PostgreSQL state database whose connections die while batches are in flight: settles are
//! retried (or kept and stored before the next round), so after the passes every record is in
//! the CRM exactly once, linked once, and no job is left leased to the worker.

mod support;

use crmsync_crm::hubspot::{HubspotClient, HubspotConfig};
use crmsync_engine::{CallBuffer, Engine};
use crmsync_sandbox::SandboxConfig;
use crmsync_store::Records;
use crmsync_store::postgres::PgState;
use crmsync_store::sqlite::SqliteSource;
use crmsync_store::testing::TestDb;
use secrecy::SecretString;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use support::world;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_state_connections_mid_batch_settle_exactly_once() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let customers: Vec<(i64, String, String)> = (1..=300)
        .map(|i| (i, format!("Company {i}"), format!("c{i}@example.com")))
        .collect();
    let customers: Vec<(i64, &str, &str)> = customers
        .iter()
        .map(|(i, c, e)| (*i, c.as_str(), e.as_str()))
        .collect();
    let orders: Vec<(i64, i64, &str, &str)> = (1..=600)
        .map(|i| (i, 1 + i % 300, "Robot", "new"))
        .collect();
    let w = world(&customers, &orders, SandboxConfig::unlimited()).await;
    // Every CRM answer takes a while, so batches are in flight when the connections die.
    reqwest::Client::new()
        .put(format!("{}/_sandbox/faults", w.sandbox.base_url()))
        .json(&json!({"latency_ms": 150}))
        .send()
        .await
        .expect("faults");

    let app_name = format!("crmsync_{}", db.name);
    let state_url = format!("{}&application_name={app_name}", db.url);
    let state = PgState::open(&state_url).await.expect("state");
    let source = SqliteSource::open(&w.config.source_url())
        .await
        .expect("source");
    let calls = CallBuffer::default();
    let mut hc = HubspotConfig::new(w.sandbox.base_url(), SecretString::from("test-token"));
    hc.requests_per_interval = 100_000;
    hc.interval = Duration::from_secs(1);
    let crm = HubspotClient::new(hc, Some(calls.observer())).expect("client");
    let engine = Engine::new(w.config.clone(), source, state, crm, calls);
    let gate = engine.budget_gate();
    engine.crm.set_gate(Arc::new(gate));

    // Kill every connection of the state's pool a few times while the first pass runs.
    let admin = sqlx::PgPool::connect(&db.url).await.expect("admin pool");
    let killer = {
        let admin = admin.clone();
        let app_name = app_name.clone();
        tokio::spawn(async move {
            let mut killed = 0i64;
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_millis(400)).await;
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
                )
                .bind(&app_name)
                .fetch_one(&admin)
                .await
                .expect("terminate");
                killed += n;
            }
            killed
        })
    };
    let first = engine.push_once().await;
    let killed = killer.await.expect("killer");
    assert!(killed > 0, "connections were really killed");
    eprintln!(
        "first pass under lost connections: {:?}",
        first.as_ref().map(|r| r.calls)
    );

    // The passes after it finish the work; nothing was duplicated on the way.
    for _ in 0..3 {
        if engine.push_once().await.is_ok() {
            break;
        }
    }
    assert_eq!(
        w.objects().await,
        (300, 300, 600),
        "each record exactly once"
    );
    for (sync, n) in [("companies", 300), ("contacts", 300), ("deals", 600)] {
        let c = engine.state.counts(sync).await.expect("counts");
        assert_eq!((c.linked, c.pending, c.dead), (n, 0, 0), "{sync}: {c:?}");
    }
    let running: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state = 'running'")
        .fetch_one(&admin)
        .await
        .unwrap_or(-1);
    assert_eq!(running, 0, "no job is left leased to the worker");
    admin.close().await;
    db.drop_now().await;
}
