//! The operator server of `crmsync run --listen` over a real socket, against a running demo:
//! `/metrics` before and after a sync (strictly parsed, the counters move), `/healthz` and
//! `/readyz`, the JSON API with its actions (they need the token; reads from the loopback do
//! not), and a refusal to listen beyond the loopback without a token.

mod support;

use support::ops::{OpsRun, TOKEN, wait_for};
use support::prom::sum;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_a_sync_and_parse_strictly() {
    let ops = OpsRun::start(Some(TOKEN)).await;
    let before = ops.metrics().await;
    for name in [
        "crmsync_sync_records",
        "crmsync_queue_jobs",
        "crmsync_api_budget_remaining",
        "crmsync_conflicts_open",
        "crmsync_deletions_held",
        "crmsync_webhook_events_pending",
        "crmsync_oldest_pending_change_seconds",
        "crmsync_build_info",
    ] {
        assert!(before.iter().any(|s| s.name == name), "{name} missing");
    }
    assert_eq!(
        sum(
            &before,
            "crmsync_sync_records",
            &[("sync", "companies"), ("state", "synced")]
        ),
        f64::from(support::ops::CUSTOMERS)
    );
    let updated = |s: &[support::prom::Sample]| {
        sum(
            s,
            "crmsync_records_total",
            &[
                ("sync", "companies"),
                ("direction", "push"),
                ("outcome", "updated"),
            ],
        )
    };
    let ok_upserts = |s: &[support::prom::Sample]| {
        sum(
            s,
            "crmsync_crm_requests_total",
            &[("operation", "upsert"), ("status", "200")],
        )
    };
    let (updated_before, upserts_before) = (updated(&before), ok_upserts(&before));

    // An app edit: the next round pushes it.
    sqlx::query("UPDATE customers SET company_name = 'Renamed Robotics', updated_at = '2030-01-01T00:00:00Z' WHERE id = (SELECT MIN(id) FROM customers)")
        .execute(&mut ops.app().await)
        .await
        .expect("edit");
    let ops_ref = &ops;
    let after = wait_for(30, "the push counted", move || async move {
        let m = ops_ref.metrics().await;
        (updated(&m) > updated_before).then_some(m)
    })
    .await;
    assert_eq!(updated(&after), updated_before + 1.0);
    assert!(
        ok_upserts(&after) > upserts_before,
        "the upsert call is counted"
    );
    // Labels stay low-cardinality: no record ids or values.
    for s in &after {
        for (k, v) in &s.labels {
            assert!(
                [
                    "connection",
                    "operation",
                    "status",
                    "sync",
                    "direction",
                    "outcome",
                    "state",
                    "window",
                    "reason",
                    "task",
                    "version"
                ]
                .contains(&k.as_str()),
                "label {k}={v} on {}",
                s.name
            );
        }
    }

    let health = ops
        .http
        .get(format!("{}/healthz", ops.url))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    let ready = ops.json("/readyz").await;
    assert_eq!(ready["ready"], true, "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_reads_freely_on_the_loopback_and_acts_only_with_the_token() {
    let ops = OpsRun::start(Some(TOKEN)).await;
    let status = ops.json("/api/status").await;
    let syncs: Vec<&str> = status["syncs"]
        .as_array()
        .expect("syncs")
        .iter()
        .filter_map(|s| s["sync"].as_str())
        .collect();
    assert_eq!(syncs, ["companies", "contacts", "deals"], "{status}");
    let openapi = ops.json("/api/openapi.json").await;
    assert_eq!(openapi["openapi"], "3.1.0");
    assert!(openapi["paths"]["/api/status"].is_object());

    // No token, a wrong one: 401 and nothing changes.
    for auth in [None, Some("wrong")] {
        let mut req = ops.http.post(format!("{}/api/pause", ops.url));
        if let Some(a) = auth {
            req = req.bearer_auth(a);
        }
        let resp = req.send().await.expect("answer");
        assert_eq!(resp.status(), 401);
        let body = resp.text().await.unwrap_or_default();
        assert!(!body.contains(TOKEN), "{body}");
    }
    assert_eq!(ops.json("/api/status").await["two_way"]["paused"], false);

    // A conflict parked for review, settled with the CRM's value through the API.
    let (id, customer, _) = ops.make_conflict(1).await;
    let settled = ops
        .post_ok(
            &format!("/api/conflicts/{id}/resolve"),
            Some(serde_json::json!({"take": "crm"})),
        )
        .await;
    assert_eq!(settled["resolved"], id);
    let name: String = sqlx::query_scalar("SELECT company_name FROM customers WHERE id = ?")
        .bind(customer)
        .fetch_one(&mut ops.app().await)
        .await
        .expect("row");
    assert_eq!(name, "CRM Side Inc");
    assert!(
        ops.json("/api/conflicts")
            .await
            .as_array()
            .is_some_and(|a| a.is_empty())
    );

    // Mass deletion held, then rejected (the records are pushed again).
    ops.hold_deletions(5, 3).await;
    let m = ops.metrics().await;
    assert_eq!(sum(&m, "crmsync_deletions_held", &[]), 3.0);
    let settled = ops.post_ok("/api/deletions/reject", None).await;
    assert_eq!(settled["settled"], 3);
    let held = ops.json("/api/deletions").await;
    assert!(
        held.as_array()
            .is_some_and(|a| a.iter().all(|d| d["state"] != "held")),
        "{held}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_the_server_stays_on_the_loopback_and_offers_no_actions() {
    let ops = OpsRun::start(None).await;
    let resp = ops
        .http
        .post(format!("{}/api/pause", ops.url))
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 401);
    assert!(
        resp.text()
            .await
            .unwrap_or_default()
            .contains("none is configured")
    );

    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin!("crmsync"))
        .args(["run", "--rounds", "1", "--listen", "0.0.0.0:0", "--config"])
        .arg(ops.dir.join("crmsync.toml"))
        .env("HUBSPOT_ACCESS_TOKEN", "test-token")
        .env_remove("CRMSYNC_SERVER_TOKEN")
        .env_remove("OPS_TOKEN")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("without a token") && stderr.contains("0.0.0.0"),
        "{stderr}"
    );
}

/// What the alert receiver got: (webhook-id, webhook-timestamp, webhook-signature, body).
type Got = std::sync::Arc<std::sync::Mutex<Vec<(String, String, String, String)>>>;

/// A mass deletion held raises an alert: a log line and a signed POST; the receiver's first
/// answer is 500, so the same alert (same `webhook-id`) comes again, and it verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_mass_deletion_raises_a_signed_alert_that_is_retried() {
    use axum::http::{HeaderMap, StatusCode};
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let got: Got = Default::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/alerts",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let h = |k: &str| {
                    headers
                        .get(k)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                let mut all = seen.lock().expect("lock");
                all.push((
                    h("webhook-id"),
                    h("webhook-timestamp"),
                    h("webhook-signature"),
                    body,
                ));
                // The first delivery fails: the sender must come back.
                if all.len() == 1 {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let ops = OpsRun::start_with(
        Some(TOKEN),
        "[alerts]\nurl_env = \"ALERT_URL\"\nsecret_env = \"ALERT_SECRET\"\n",
        &[
            ("ALERT_URL", &format!("http://{addr}/alerts")),
            ("ALERT_SECRET", secret),
        ],
    )
    .await;
    ops.hold_deletions(5, 3).await;
    let got_ref = &got;
    let deliveries = wait_for(30, "the alert delivered twice", move || async move {
        let all = got_ref.lock().expect("lock").clone();
        (all.len() >= 2).then_some(all)
    })
    .await;
    let (id, ts, sig, body) = &deliveries[0];
    assert_eq!(&deliveries[1].0, id, "a retry keeps the webhook-id");
    let v: serde_json::Value = serde_json::from_str(body).expect("JSON alert");
    assert_eq!(v["kind"], "deletions_held", "{v}");
    assert_eq!(v["sync"], "companies", "{v}");
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .expect("key");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("key");
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    let want = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    assert_eq!(sig, &want);
    assert!(
        ops.log().contains("held by the mass-deletion guard"),
        "the alert is logged too: {}",
        ops.log()
    );
    let m = ops.metrics().await;
    assert_eq!(
        support::prom::sum(&m, "crmsync_alerts_total", &[("kind", "deletions_held")]),
        1.0
    );
}

/// SIGHUP is logged and ignored (the worker and its server go on); SIGTERM ends it with exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_is_ignored_and_sigterm_stops_cleanly() {
    let mut ops = OpsRun::start(Some(TOKEN)).await;
    ops.signal("HUP");
    let ops_ref = &ops;
    wait_for(30, "the SIGHUP line", move || async move {
        ops_ref.log().contains("SIGHUP: ignored").then_some(())
    })
    .await;
    assert_eq!(
        ops.exited_within(0).await,
        None,
        "still running after SIGHUP"
    );
    assert_eq!(ops.json("/readyz").await["ready"], true);
    ops.signal("TERM");
    let status = ops.exited_within(30).await.expect("stopped after SIGTERM");
    assert!(status.success(), "{status}: {}", ops.log());
}

/// The reader the metrics test relies on refuses what the format forbids.
#[test]
fn the_strict_reader_refuses_what_the_format_forbids() {
    assert!(support::prom::parse("# TYPE a counter\na{x=\"1\"} 2\na{x=\"2\"} 3\n").is_ok());
    for bad in [
        "a{x=1} 2\n",
        "a{x=\"1\"} two\n",
        "# TYPE a counter\n# TYPE a counter\na 1\n",
        "a 1\nb 1\na 2\n",
        "a{x=\"1\"} 1\na{x=\"1\"} 2\n",
        "# TYPE a counter\na -1\n",
        "1a 1\n",
        "a{x=\"\\q\"} 1\n",
    ] {
        assert!(support::prom::parse(bad).is_err(), "accepted {bad:?}");
    }
}
