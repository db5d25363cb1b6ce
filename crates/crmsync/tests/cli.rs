//! The `crmsync` command as a user meets it: the demo end to end, `status --json`, the no-op
//! resync, and exit codes for bad input.

use assert_cmd::Command;
use std::path::Path;

fn crmsync() -> Command {
    let mut c = Command::cargo_bin("crmsync").expect("binary built");
    c.env_remove("RUST_LOG").env_remove("CRMSYNC_CONFIG");
    c
}

fn status_json(config: &Path) -> serde_json::Value {
    let out = crmsync()
        .args(["status", "--json", "--config"])
        .arg(config)
        .output()
        .expect("status runs");
    assert!(
        out.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status --json prints JSON")
}

#[test]
fn demo_syncs_valid_records_once_and_status_reports_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = dir.path().join("demo");
    let out = crmsync()
        .args(["demo", "--customers", "300", "--orders", "600", "--dir"])
        .arg(&demo)
        .output()
        .expect("demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 300 customers: ids 37, 137, 237 have broken addresses (1%).
    assert!(
        stdout.contains("3 contacts quarantined as invalid"),
        "{stdout}"
    );
    assert!(
        stdout.contains("The sandbox CRM now holds 300 companies"),
        "{stdout}"
    );
    for f in ["orders.db", "crmsync.toml", "crmsync-state.db"] {
        assert!(demo.join(f).exists(), "{f} kept in --dir");
    }

    let st = status_json(&demo.join("crmsync.toml"));
    let syncs = st["syncs"].as_array().expect("syncs array");
    let by = |name: &str| {
        syncs
            .iter()
            .find(|s| s["sync"] == name)
            .cloned()
            .expect("sync in status")
    };
    let companies = by("companies");
    assert_eq!(
        (
            companies["total"].as_i64(),
            companies["synced"].as_i64(),
            companies["pending"].as_i64()
        ),
        (Some(300), Some(300), Some(0))
    );
    let contacts = by("contacts");
    assert_eq!(contacts["quarantined"].as_i64(), Some(3));
    let held = contacts["held"].as_i64().expect("held count");
    assert_eq!(contacts["synced"].as_i64(), Some(300 - 3 - held));
    assert_eq!(contacts["failed"].as_i64(), Some(0));
    assert_eq!(by("deals")["synced"].as_i64(), Some(600));
    for key in ["calls", "retries", "rate_limited"] {
        assert!(st["crm"][key].is_i64(), "crm.{key} in status: {st}");
    }
    assert!(st["crm"]["calls"].as_i64().unwrap_or(0) > 0);
}

#[test]
fn a_config_error_exits_2_naming_file_line_and_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("crmsync.toml");
    std::fs::write(&cfg, "[source]\nurl = \"sqlite://x.db\"\n[crm]\nenvironment = \"sandbox\"\nkind = \"hubspot\"\ntoken_env = \"CRMSYNC_TEST_NO_SUCH_VAR\"\n[[sync]]\nname = \"a\"\ntable = \"t\"\nobject = \"tickets\"\n[sync.fields]\nx = { crm = \"y\" }\n").expect("write");
    let out = crmsync()
        .args(["sync", "--once", "--config"])
        .arg(&cfg)
        .env_remove("CRMSYNC_TEST_NO_SUCH_VAR")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has 2 problems"), "{err}");
    assert!(err.contains("crmsync.toml:10: `sync[0].object`"), "{err}");
    assert!(err.contains("CRMSYNC_TEST_NO_SUCH_VAR"), "{err}");
}

#[test]
fn sync_without_once_is_a_usage_error() {
    let out = crmsync()
        .args(["sync", "--config", "/nonexistent.toml"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--once"));
}

#[test]
fn a_missing_config_file_is_named() {
    let out = crmsync()
        .args(["status", "--config", "/nonexistent/crmsync.toml"])
        .output()
        .expect("runs");
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/crmsync.toml"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_once_right_after_the_demo_sends_no_write_calls() {
    let sandbox =
        crmsync_sandbox::Sandbox::start("127.0.0.1:0", crmsync_sandbox::SandboxConfig::default())
            .await
            .expect("sandbox starts");
    let url = sandbox.base_url();
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = dir.path().join("demo");
    let (u, d) = (url.clone(), demo.clone());
    let out = tokio::task::spawn_blocking(move || {
        crmsync()
            .args([
                "demo",
                "--customers",
                "100",
                "--orders",
                "200",
                "--crm-url",
                &u,
                "--dir",
            ])
            .arg(&d)
            .output()
    })
    .await
    .expect("join")
    .expect("demo runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let upserts = || async {
        let s: serde_json::Value = reqwest::get(format!("{url}/_sandbox/stats"))
            .await
            .expect("stats")
            .json()
            .await
            .expect("json");
        s["calls"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|c| {
                        c["endpoint"].as_str().is_some_and(|e| {
                            e.ends_with("/batch/upsert") || e.contains("/associations/")
                        })
                    })
                    .map(|c| c["count"].as_u64().unwrap_or(0))
                    .sum::<u64>()
            })
            .unwrap_or(0)
    };
    let before = upserts().await;
    assert!(before > 0);

    let cfg = demo.join("crmsync.toml");
    let out = tokio::task::spawn_blocking(move || {
        crmsync()
            .args(["sync", "--once", "--json", "--config"])
            .arg(&cfg)
            .env("HUBSPOT_ACCESS_TOKEN", "any-token")
            .output()
    })
    .await
    .expect("join")
    .expect("sync runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json report");
    assert_eq!(report["upsert_calls"], 0, "{report}");
    assert_eq!(report["association_calls"], 0, "{report}");
    assert_eq!(upserts().await, before, "the sandbox saw no write call");

    // A reconciliation right after reads every linked record back and finds nothing to repair.
    let cfg = demo.join("crmsync.toml");
    let out = tokio::task::spawn_blocking(move || {
        crmsync()
            .args(["reconcile", "--config"])
            .arg(&cfg)
            .env("HUBSPOT_ACCESS_TOKEN", "any-token")
            .output()
    })
    .await
    .expect("join")
    .expect("reconcile runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("drift repaired:    0 "), "{stdout}");
    assert!(!stdout.contains("records read back: 0\n"), "{stdout}");
    assert_eq!(upserts().await, before, "still no write call");
    sandbox.shutdown().await;
}

/// `--log-format json`: stderr is one JSON object per line (timestamp, level, message and
/// fields flattened), nothing in between; text logs into a pipe carry no colour codes.
#[test]
fn json_logs_are_one_object_per_line_and_text_logs_into_a_pipe_have_no_colours() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = crmsync()
        .args([
            "--log-format",
            "json",
            "demo",
            "--customers",
            "30",
            "--orders",
            "30",
            "--dir",
        ])
        .arg(dir.path().join("json"))
        .output()
        .expect("demo runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "info-level events are logged by default");
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for key in ["timestamp", "level", "message"] {
            assert!(v.get(key).is_some(), "{key} missing: {line}");
        }
    }
    assert!(
        lines.iter().any(|l| l.contains("\"sync\":\"companies\"")),
        "fields are flattened into the object: {stderr}"
    );

    let out = crmsync()
        .args(["-v", "demo", "--customers", "30", "--orders", "30", "--dir"])
        .arg(dir.path().join("text"))
        .output()
        .expect("demo runs");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("INFO"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "escape codes in a pipe: {stderr:?}"
    );
}
