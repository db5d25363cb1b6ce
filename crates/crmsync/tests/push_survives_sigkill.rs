//! Kill the real binary with SIGKILL at random points of a backfill, restart it, and check that
//! the CRM ends up with every record exactly once: nothing duplicated, nothing lost.

use crmsync_sandbox::{Sandbox, SandboxConfig};
use rand::{Rng, SeedableRng};
use sqlx::{Connection, SqliteConnection};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CUSTOMERS: i64 = 1200;
const ORDERS: i64 = 2500;

async fn make_app_db(path: &Path) {
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .expect("create");
    sqlx::query("CREATE TABLE customers (id INTEGER PRIMARY KEY, company TEXT, email TEXT)")
        .execute(&mut conn)
        .await
        .expect("ddl");
    sqlx::query("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, title TEXT, status TEXT)").execute(&mut conn).await.expect("ddl");
    let mut tx = conn.begin().await.expect("tx");
    for i in 1..=CUSTOMERS {
        sqlx::query("INSERT INTO customers VALUES (?, ?, ?)")
            .bind(i)
            .bind(format!("Company {i}"))
            .bind(format!("buyer{i}@example.com"))
            .execute(&mut *tx)
            .await
            .expect("insert");
    }
    for i in 1..=ORDERS {
        sqlx::query("INSERT INTO orders VALUES (?, ?, ?, ?)")
            .bind(i)
            .bind(1 + i % CUSTOMERS)
            .bind(format!("Order {i}"))
            .bind(if i % 2 == 0 { "paid" } else { "new" })
            .execute(&mut *tx)
            .await
            .expect("insert");
    }
    tx.commit().await.expect("commit");
}

fn config(base_url: &str) -> String {
    format!(
        r#"
[source]
url = "sqlite://app.db"
[crm]
environment = "sandbox"
kind = "hubspot"
base_url = "{base_url}"
token_env = "HUBSPOT_ACCESS_TOKEN"
requests_per_interval = 30
interval_ms = 1000
[[sync]]
name = "companies"
table = "customers"
object = "companies"
id_property = "app_customer_id"
[sync.fields]
company = {{ crm = "name" }}
[[sync]]
name = "contacts"
table = "customers"
object = "contacts"
id_property = "app_customer_id"
associate = {{ id = "companies" }}
[sync.fields]
email = {{ crm = "email", validate = "email" }}
[[sync]]
name = "deals"
table = "orders"
object = "deals"
id_property = "app_order_id"
associate = {{ customer_id = "companies" }}
[sync.fields]
title = {{ crm = "dealname" }}
status = {{ crm = "dealstage", map = {{ new = "appointmentscheduled", paid = "closedwon" }} }}
"#
    )
}

async fn stats(base: &str) -> serde_json::Value {
    reqwest::get(format!("{base}/_sandbox/stats"))
        .await
        .expect("stats")
        .json()
        .await
        .expect("json")
}

fn sync_once(config: &Path) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin!("crmsync"));
    c.args(["sync", "--once", "--config"])
        .arg(config)
        .env("HUBSPOT_ACCESS_TOKEN", "test-token")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_neither_duplicates_nor_loses() {
    let sandbox = Sandbox::start(
        "127.0.0.1:0",
        SandboxConfig {
            interval_limit: Some(30),
            interval_ms: 1000,
            ..SandboxConfig::default()
        },
    )
    .await
    .expect("sandbox");
    let base = sandbox.base_url();
    let dir = tempfile::tempdir().expect("temp dir");
    make_app_db(&dir.path().join("app.db")).await;
    let cfg = dir.path().join("crmsync.toml");
    std::fs::write(&cfg, config(&base)).expect("config");

    let seed: u64 = std::env::var("CRMSYNC_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261128);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut kills = 0;
    for _ in 0..6 {
        let before = stats(&base).await["total"].as_u64().unwrap_or(0);
        let mut child = sync_once(&cfg).spawn().expect("spawn crmsync");
        // Kill once the sandbox has seen a random number of this run's requests: a point
        // inside the work, wherever it happens to be (upsert, association, commit).
        let target = before + rng.random_range(1..25u64);
        let deadline = Instant::now() + Duration::from_secs(60);
        let finished = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break Some(status);
            }
            if stats(&base).await["total"].as_u64().unwrap_or(0) >= target {
                break None;
            }
            assert!(Instant::now() < deadline, "crmsync made no progress");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        match finished {
            Some(status) => {
                assert!(status.success(), "an uninterrupted run succeeds");
                break;
            }
            None => {
                child.kill().expect("SIGKILL");
                child.wait().expect("reaped");
                kills += 1;
            }
        }
    }
    assert!(
        kills >= 3,
        "the test killed the binary mid-work ({kills} kills; seed {seed})"
    );

    // Let it finish; then a last pass must have nothing left to do.
    let status = tokio::task::spawn_blocking({
        let cfg = cfg.clone();
        move || sync_once(&cfg).status()
    })
    .await
    .expect("join")
    .expect("final run");
    assert!(status.success(), "the final run completes (seed {seed})");

    let s = stats(&base).await;
    let objects = (
        &s["objects"]["companies"],
        &s["objects"]["contacts"],
        &s["objects"]["deals"],
    );
    assert_eq!(
        (objects.0.as_i64(), objects.1.as_i64(), objects.2.as_i64()),
        (Some(CUSTOMERS), Some(CUSTOMERS), Some(ORDERS)),
        "every record in the CRM exactly once after {kills} kills (seed {seed})"
    );
    let state = SqliteConnection::connect(&format!(
        "sqlite://{}",
        dir.path().join("crmsync-state.db").display()
    ))
    .await
    .expect("state db");
    let mut state = state;
    let linked: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM links WHERE crm_id IS NOT NULL")
        .fetch_one(&mut state)
        .await
        .expect("links");
    assert_eq!(linked, 2 * CUSTOMERS + ORDERS, "every record linked");
    let live: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state != 'done'")
        .fetch_one(&mut state)
        .await
        .expect("jobs");
    assert_eq!(live, 0, "nothing left in the queue");
    // Associations survived the kills too: sampled deals point at their customer's company.
    // (The checks are not crmsync's calls: lift the sandbox's rate limit for them.)
    let http = reqwest::Client::new();
    let lifted = http
        .put(format!("{base}/_sandbox/limits"))
        .json(&serde_json::json!({"interval_limit": null, "daily_limit": null, "search_per_second": null}))
        .send()
        .await
        .expect("limits");
    assert!(lifted.status().is_success());
    let deals: Vec<(String, String)> =
        sqlx::query_as("SELECT local_id, crm_id FROM links WHERE sync = 'deals'")
            .fetch_all(&mut state)
            .await
            .expect("deal links");
    let companies: std::collections::HashMap<String, String> =
        sqlx::query_as::<_, (String, String)>(
            "SELECT local_id, crm_id FROM links WHERE sync = 'companies'",
        )
        .fetch_all(&mut state)
        .await
        .expect("company links")
        .into_iter()
        .collect();
    let mut checked = 0;
    for chunk in deals.chunks(100) {
        let inputs: Vec<_> = chunk
            .iter()
            .map(|(_, id)| serde_json::json!({"id": id}))
            .collect();
        let page: serde_json::Value = http
            .post(format!(
                "{base}/crm/v4/associations/deals/companies/batch/read"
            ))
            .bearer_auth("test-token")
            .json(&serde_json::json!({"inputs": inputs}))
            .send()
            .await
            .expect("batch read")
            .json()
            .await
            .expect("json");
        let mut found = std::collections::HashMap::new();
        for r in page["results"].as_array().into_iter().flatten() {
            let from = r["from"]["id"].to_string().trim_matches('"').to_string();
            let to: Vec<String> = r["to"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|t| t["toObjectId"].to_string().trim_matches('"').to_string())
                        .collect()
                })
                .unwrap_or_default();
            found.insert(from, to);
        }
        for (order, deal) in chunk {
            let customer = (1 + order.parse::<i64>().expect("numeric key") % CUSTOMERS).to_string();
            let want = vec![companies[&customer].clone()];
            assert_eq!(
                found.get(deal),
                Some(&want),
                "deal {order} is associated to its company, once (seed {seed})"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, ORDERS);
    sandbox.shutdown().await;
}
