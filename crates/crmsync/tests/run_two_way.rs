//! `crmsync run` as a real process: it pushes the app's rows, a CRM edit by another user (the
//! HubSpot UI) flows back into the app database, `crmsync conflicts` reports nothing open, and
//! SIGTERM ends it with exit code 0.

mod support;

use support::wait_for;

use crmsync_sandbox::{Sandbox, SandboxConfig};
use sqlx::{Connection, SqliteConnection};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

async fn app_db(path: &Path) -> SqliteConnection {
    SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .expect("app db")
}

fn crmsync(args: &[&str], config: &Path) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin!("crmsync"));
    c.args(args)
        .arg("--config")
        .arg(config)
        .env("HUBSPOT_ACCESS_TOKEN", "test-token")
        .env_remove("RUST_LOG");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_pulls_a_crm_edit_into_the_app_and_stops_cleanly_on_sigterm() {
    let mut sc = SandboxConfig::unlimited();
    sc.other_tokens.insert("ui-token".into(), 7);
    let sandbox = Sandbox::start("127.0.0.1:0", sc).await.expect("sandbox");
    let base = sandbox.base_url();
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("app.db");
    {
        let mut conn = app_db(&db).await;
        sqlx::query("CREATE TABLE customers (id INTEGER PRIMARY KEY, company TEXT)")
            .execute(&mut conn)
            .await
            .expect("ddl");
        sqlx::query("INSERT INTO customers VALUES (1, 'Acme'), (2, 'Globex')")
            .execute(&mut conn)
            .await
            .expect("rows");
    }
    let cfg = dir.path().join("crmsync.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[source]
url = "sqlite://app.db"
[crm]
environment = "sandbox"
kind = "hubspot"
base_url = "{base}"
token_env = "HUBSPOT_ACCESS_TOKEN"
[run]
poll_interval_ms = 200
[[sync]]
name = "companies"
table = "customers"
object = "companies"
id_property = "app_customer_id"
[sync.fields]
company = {{ crm = "name", direction = "both" }}
"#
        ),
    )
    .expect("config");
    let status = crmsync(&["install"], &cfg)
        .stdout(Stdio::null())
        .status()
        .expect("install");
    assert!(status.success());
    let mut child = crmsync(&["run"], &cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run starts");

    // The backfill reaches the CRM.
    let http = reqwest::Client::new();
    let id: String = wait_for(30, "the companies in the CRM", || {
        let http = http.clone();
        let base = base.clone();
        async move {
            let v: serde_json::Value = http
                .get(format!(
                    "{base}/crm/v3/objects/companies?properties=name,app_customer_id"
                ))
                .bearer_auth("test-token")
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let results = v["results"].as_array()?;
            (results.len() == 2).then_some(())?;
            results
                .iter()
                .find(|r| r["properties"]["app_customer_id"] == "1")
                .and_then(|r| r["id"].as_str().map(str::to_string))
        }
    })
    .await;

    // Someone renames the company in the HubSpot UI; the running loop brings it into the app.
    let patched = http
        .patch(format!("{base}/crm/v3/objects/companies/{id}"))
        .bearer_auth("ui-token")
        .json(&serde_json::json!({ "properties": { "name": "Acme Robotics" } }))
        .send()
        .await
        .expect("patch");
    assert!(patched.status().is_success());
    wait_for(30, "the CRM edit in the app", || {
        let db = db.clone();
        async move {
            let mut conn = app_db(&db).await;
            let name: String = sqlx::query_scalar("SELECT company FROM customers WHERE id = 1")
                .fetch_one(&mut conn)
                .await
                .ok()?;
            (name == "Acme Robotics").then_some(())
        }
    })
    .await;

    let out = crmsync(&["conflicts"], &cfg).output().expect("conflicts");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no open conflicts"));

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "crmsync run did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(code.code(), Some(0), "{code:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_webhooks_are_accepted_and_start_the_poll_at_once() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let hook_url = format!("http://127.0.0.1:{port}/hubspot/webhooks");
    let mut sc = SandboxConfig::unlimited();
    sc.other_tokens.insert("ui-token".into(), 7);
    sc.webhooks = Some(crmsync_sandbox::WebhookConfig::new(
        hook_url.clone(),
        "s3cret",
    ));
    let sandbox = Sandbox::start("127.0.0.1:0", sc).await.expect("sandbox");
    let base = sandbox.base_url();
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("app.db");
    {
        let mut conn = app_db(&db).await;
        sqlx::query("CREATE TABLE customers (id INTEGER PRIMARY KEY, company TEXT)")
            .execute(&mut conn)
            .await
            .expect("ddl");
        sqlx::query("INSERT INTO customers VALUES (1, 'Acme')")
            .execute(&mut conn)
            .await
            .expect("rows");
    }
    let cfg = dir.path().join("crmsync.toml");
    // A poll only every 10 minutes: the edit can only arrive promptly through the webhook.
    std::fs::write(
        &cfg,
        format!(
            r#"
[source]
url = "sqlite://app.db"
[crm]
environment = "sandbox"
kind = "hubspot"
base_url = "{base}"
token_env = "HUBSPOT_ACCESS_TOKEN"
[run]
poll_interval_ms = 600000
[[sync]]
name = "companies"
table = "customers"
object = "companies"
id_property = "app_customer_id"
capture = "scan"
[sync.fields]
company = {{ crm = "name", direction = "both" }}
"#
        ),
    )
    .expect("config");
    let mut child = crmsync(
        &["run", "--webhook-listen", &format!("127.0.0.1:{port}")],
        &cfg,
    )
    .env("HUBSPOT_CLIENT_SECRET", "s3cret")
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("run starts");
    let http = reqwest::Client::new();

    // A forged request is refused.
    let forged = wait_for(30, "the receiver", || {
        let http = http.clone();
        let url = hook_url.clone();
        async move {
            http.post(url)
                .header("x-hubspot-signature-v3", "AAAA")
                .header(
                    "x-hubspot-request-timestamp",
                    chrono::Utc::now().timestamp_millis().to_string(),
                )
                .body("[]")
                .send()
                .await
                .ok()
                .map(|r| r.status().as_u16())
        }
    })
    .await;
    assert_eq!(forged, 401);

    let id: String = wait_for(30, "the company in the CRM", || {
        let http = http.clone();
        let base = base.clone();
        async move {
            let v: serde_json::Value = http
                .get(format!("{base}/crm/v3/objects/companies?properties=name"))
                .bearer_auth("test-token")
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            v["results"][0]["id"].as_str().map(str::to_string)
        }
    })
    .await;
    let patched = http
        .patch(format!("{base}/crm/v3/objects/companies/{id}"))
        .bearer_auth("ui-token")
        .json(&serde_json::json!({ "properties": { "name": "Acme (from the UI)" } }))
        .send()
        .await
        .expect("patch");
    assert!(patched.status().is_success());
    wait_for(30, "the CRM edit in the app", || {
        let db = db.clone();
        async move {
            let mut conn = app_db(&db).await;
            let name: String = sqlx::query_scalar("SELECT company FROM customers WHERE id = 1")
                .fetch_one(&mut conn)
                .await
                .ok()?;
            (name == "Acme (from the UI)").then_some(())
        }
    })
    .await;
    // Every signed delivery was answered 2xx.
    let deliveries: serde_json::Value = http
        .get(format!("{base}/_sandbox/webhooks/deliveries"))
        .send()
        .await
        .expect("deliveries")
        .json()
        .await
        .expect("json");
    let text = deliveries.to_string();
    assert!(text.contains("delivered"), "{text}");
    assert!(!text.contains("\"failed\""), "{text}");

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "crmsync run did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(code.code(), Some(0), "{code:?}");
}
