//! Issue 5's acceptance scenario through the binary: the demo's invalid and unconfirmed e-mails
//! show up in `crmsync check` before any sync (which sends GETs only), in quarantine after the
//! sync, with the reason; fixing the row in the app database makes it flow on the next
//! `sync --once` with no manual step. Also `check --json` and `retry`.

use assert_cmd::Command;
use crmsync_sandbox::{Sandbox, SandboxConfig};
use serde_json::Value;
use sqlx::Connection;
use std::path::{Path, PathBuf};

fn crmsync() -> Command {
    let mut c = Command::cargo_bin("crmsync").expect("binary built");
    c.env_remove("RUST_LOG")
        .env_remove("CRMSYNC_CONFIG")
        .env("HUBSPOT_ACCESS_TOKEN", "any-token");
    c
}

/// Runs the binary off the async runtime; returns (exit code, stdout, stderr).
async fn run(args: Vec<String>) -> (i32, String, String) {
    let out = tokio::task::spawn_blocking(move || crmsync().args(&args).output())
        .await
        .expect("join")
        .expect("crmsync runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn stats(url: &str) -> Value {
    reqwest::get(format!("{url}/_sandbox/stats"))
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats json")
}

fn calls_by_method(stats: &Value) -> (u64, u64) {
    let mut gets = 0;
    let mut others = 0;
    for c in stats["calls"].as_array().into_iter().flatten() {
        let n = c["count"].as_u64().unwrap_or(0);
        if c["method"] == "GET" {
            gets += n;
        } else {
            others += n;
        }
    }
    (gets, others)
}

async fn app_sql(dir: &Path, sql: &'static str) {
    let mut conn =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", dir.join("orders.db").display()))
            .await
            .expect("open app db");
    sqlx::query(sql).execute(&mut conn).await.expect("app sql");
}

async fn quarantine(dir: &Path, sync: &str, key: &str) -> Option<(String, String)> {
    let mut conn = sqlx::SqliteConnection::connect(&format!(
        "sqlite://{}",
        dir.join("crmsync-state.db").display()
    ))
    .await
    .expect("open state db");
    sqlx::query_as("SELECT kind, rule FROM quarantine WHERE sync = ? AND local_id = ?")
        .bind(sync)
        .bind(key)
        .fetch_optional(&mut conn)
        .await
        .expect("quarantine query")
}

/// Generates the demo (synced into a throwaway sandbox), then points its config at `fresh`.
async fn demo_for(fresh: &Sandbox) -> (tempfile::TempDir, PathBuf) {
    let first = Sandbox::start("127.0.0.1:0", SandboxConfig::unlimited())
        .await
        .expect("sandbox starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = dir.path().join("demo");
    let (code, out, err) = run(vec![
        "demo".into(),
        "--customers".into(),
        "200".into(),
        "--orders".into(),
        "50".into(),
        "--crm-url".into(),
        first.base_url(),
        "--dir".into(),
        demo.display().to_string(),
    ])
    .await;
    assert_eq!(code, 0, "demo failed:\n{out}\n{err}");
    first.shutdown().await;
    let cfg = demo.join("crmsync.toml");
    let text = std::fs::read_to_string(&cfg).expect("config");
    let text = text.replace(
        &first_url_line(&text),
        &format!("base_url = \"{}\"", fresh.base_url()),
    );
    std::fs::write(&cfg, text).expect("rewrite config");
    // A new CRM: the old state's links belong to the first sandbox.
    std::fs::remove_file(demo.join("crmsync-state.db")).expect("remove state");
    (dir, demo)
}

fn first_url_line(text: &str) -> String {
    text.lines()
        .find(|l| l.starts_with("base_url"))
        .expect("base_url line")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_emails_show_in_check_then_quarantine_and_a_fixed_row_flows() {
    let sandbox = Sandbox::start("127.0.0.1:0", SandboxConfig::unlimited())
        .await
        .expect("sandbox starts");
    let url = sandbox.base_url();
    let (_dir, demo) = demo_for(&sandbox).await;
    let cfg = demo.join("crmsync.toml").display().to_string();

    // 1. check before any sync: problems found (exit 1), only GETs sent, state untouched.
    let (code, out, err) = run(vec!["check".into(), "--config".into(), cfg.clone()]).await;
    assert_eq!(code, 1, "check finds problems:\n{out}\n{err}");
    assert!(out.contains("error: contacts.email"), "{out}");
    assert!(out.contains("fails `email`"), "{out}");
    assert!(
        out.contains("    37: `"),
        "customer 37's broken address is an example:\n{out}"
    );
    assert!(
        out.contains("note: contacts.email"),
        "unconfirmed e-mails are noted:\n{out}"
    );
    assert!(
        out.contains("does not exist yet; the first sync creates it"),
        "{out}"
    );
    let (gets, writes) = calls_by_method(&stats(&url).await);
    assert!(gets > 0, "check read the CRM schema");
    assert_eq!(writes, 0, "check sends GETs only");
    assert!(
        !demo.join("crmsync-state.db").exists(),
        "check does not create the state database"
    );

    let (code, out, _) = run(vec![
        "check".into(),
        "--json".into(),
        "--config".into(),
        cfg.clone(),
    ])
    .await;
    assert_eq!(code, 1);
    let report: Value = serde_json::from_str(&out).expect("check --json");
    let invalid = report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["kind"] == "invalid" && f["rule"] == "email")
        .cloned()
        .expect("invalid e-mail finding");
    assert_eq!(invalid["count"], 2, "customers 37 and 137: {invalid}");
    assert_eq!(invalid["examples"][0]["key"], "37");
    let held = report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["kind"] == "held")
        .cloned()
        .expect("held finding");
    assert!(held["count"].as_u64().unwrap_or(0) > 0, "{held}");

    // 2. sync: customer 37's contact is quarantined as invalid with the rule.
    let (code, out, err) = run(vec![
        "sync".into(),
        "--once".into(),
        "--config".into(),
        cfg.clone(),
    ])
    .await;
    assert_eq!(code, 1, "record failures exit 1:\n{out}\n{err}");
    assert_eq!(
        quarantine(&demo, "contacts", "37").await,
        Some(("invalid".to_string(), "email".to_string()))
    );
    let contacts_before = stats(&url).await["objects"]["contacts"]
        .as_u64()
        .unwrap_or(0);

    // 3. fix the row in the app database; the next sync sends it, no manual step.
    app_sql(
        &demo,
        "UPDATE customers SET email = 'fixed' || id || '@example.com', email_confirmed_at = '2026-01-01T00:00:00Z' WHERE id IN (37, 137)",
    )
    .await;
    let (code, out, err) = run(vec![
        "sync".into(),
        "--once".into(),
        "--config".into(),
        cfg.clone(),
    ])
    .await;
    assert_eq!(code, 0, "nothing fails any more:\n{out}\n{err}");
    assert_eq!(
        quarantine(&demo, "contacts", "37").await,
        None,
        "left the quarantine"
    );
    assert_eq!(quarantine(&demo, "contacts", "137").await, None);
    let s = stats(&url).await;
    assert_eq!(
        s["objects"]["contacts"].as_u64(),
        Some(contacts_before + 2),
        "both contacts arrived"
    );

    // explain tells the record's story: in the CRM with the current payload, out of quarantine,
    // and the calls around its push.
    let (code, out, err) = run(vec![
        "explain".into(),
        "contacts".into(),
        "37".into(),
        "--json".into(),
        "--config".into(),
        cfg.clone(),
    ])
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let e: Value = serde_json::from_str(&out).expect("explain --json");
    assert_eq!(e["source"]["email"], "fixed37@example.com", "{e}");
    assert_eq!(e["mapped"]["status"], "ready", "{e}");
    assert_eq!(e["mapped"]["properties"]["email"], "fixed37@example.com");
    assert_eq!(e["in_sync"], true, "{e}");
    assert!(e["link"]["crm_id"].is_string(), "{e}");
    assert!(e["quarantine"].is_null(), "{e}");
    let calls = e["calls"].as_array().cloned().unwrap_or_default();
    assert!(
        calls
            .iter()
            // A first import of a contact linked to its company is a batch create carrying
            // the association (docs/hubspot.md, "How associations are written").
            .any(|c| c["endpoint"] == "/crm/v3/objects/contacts/batch/create" && c["status"] == 201),
        "the create that carried it: {e}"
    );
    let (code, out, _) = run(vec![
        "explain".into(),
        "contacts".into(),
        "135".into(),
        "--config".into(),
        cfg.clone(),
    ])
    .await;
    assert_eq!(code, 0);
    assert!(
        out.contains("held: email"),
        "an unconfirmed contact is held:\n{out}"
    );
    assert!(out.contains("quarantine: held"), "{out}");

    // 4. retry: nothing rejected, so nothing marked; a clean pass.
    let (code, out, err) = run(vec!["retry".into(), "--config".into(), cfg.clone()]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("0 quarantined records marked for retry"),
        "{out}"
    );
    sandbox.shutdown().await;
}
