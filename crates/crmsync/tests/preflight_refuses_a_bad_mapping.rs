//! `sync --once` and `run` check the mapping against the CRM's schema before they send
//! anything: a mapped property the portal does not have is refused with exit 2, naming the
//! sync and the property, and costs no write. `--force` starts anyway; the sync is then stopped
//! after its first refused call and reported as STOPPED, with the fix.

use assert_cmd::Command;
use crmsync_sandbox::{Sandbox, SandboxConfig};
use serde_json::Value;

async fn run(args: Vec<String>) -> (i32, String, String) {
    let out = tokio::task::spawn_blocking(move || {
        Command::cargo_bin("crmsync")
            .expect("binary built")
            .env_remove("RUST_LOG")
            .env("HUBSPOT_ACCESS_TOKEN", "any-token")
            .args(&args)
            .output()
    })
    .await
    .expect("join")
    .expect("crmsync runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Write calls (not GET) the sandbox saw on endpoints containing `part`.
async fn writes_to(base: &str, part: &str) -> u64 {
    let stats: Value = reqwest::get(format!("{base}/_sandbox/stats"))
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    stats["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["method"] != "GET")
        .filter(|c| c["endpoint"].as_str().is_some_and(|e| e.contains(part)))
        .map(|c| c["count"].as_u64().unwrap_or(0))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_property_the_crm_lacks_is_refused_before_any_write_unless_forced() {
    let sandbox = Sandbox::start("127.0.0.1:0", SandboxConfig::unlimited())
        .await
        .expect("sandbox");
    let base = sandbox.base_url();
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = dir.path().join("demo");
    let (code, out, err) = run(vec![
        "demo".into(),
        "--no-sync".into(),
        "--customers".into(),
        "150".into(),
        "--orders".into(),
        "20".into(),
        "--crm-url".into(),
        base.clone(),
        "--dir".into(),
        demo.display().to_string(),
    ])
    .await;
    assert_eq!(code, 0, "demo --no-sync:\n{out}\n{err}");
    let cfg = demo.join("crmsync.toml");
    let text = std::fs::read_to_string(&cfg).expect("config");
    let bad = text.replace(
        r#"city = { crm = "city" }"#,
        r#"city = { crm = "town_of_hq" }"#,
    );
    assert_ne!(bad, text, "the demo maps city");
    std::fs::write(&cfg, bad).expect("config");
    let config = cfg.display().to_string();

    let (code, out, err) = run(vec![
        "sync".into(),
        "--once".into(),
        "--config".into(),
        config.clone(),
    ])
    .await;
    assert_eq!(code, 2, "refused as a config problem:\n{out}\n{err}");
    assert!(
        err.contains("companies") && err.contains("town_of_hq") && err.contains("--force"),
        "names the sync, the property and the way out: {err}"
    );
    assert_eq!(
        writes_to(&base, "/objects/").await,
        0,
        "nothing was written"
    );

    let (code, out, err) = run(vec![
        "sync".into(),
        "--once".into(),
        "--force".into(),
        "--config".into(),
        config.clone(),
    ])
    .await;
    assert_eq!(code, 1, "a stopped sync fails the pass:\n{out}\n{err}");
    assert!(
        out.contains("STOPPED companies") && out.contains("town_of_hq"),
        "{out}"
    );
    assert_eq!(
        writes_to(&base, "/companies/batch/upsert").await,
        1,
        "one refused call, no bisection"
    );
    let (code, out, _) = run(vec!["status".into(), "--config".into(), config]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("STOPPED companies"),
        "status shows the stop: {out}"
    );
}
