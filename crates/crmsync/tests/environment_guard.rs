//! The environment guard, through the real binary against two sandboxes over real sockets:
//! one a test portal (`SANDBOX`), one posing as a production account (`STANDARD`). A
//! `staging` config pointed at the production one is refused (exit 2) before any write call;
//! a state database bound to the test portal refuses the other account, naming both; an
//! explicit `allow_production_account` lets a new state write there; `crmsync env` shows it.

use crmsync_sandbox::{Sandbox, SandboxConfig};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn crmsync() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin!("crmsync"));
    c.env("HUBSPOT_ACCESS_TOKEN", "test-token")
        .env_remove("RUST_LOG");
    c
}

fn sync_once(config: &Path) -> Output {
    crmsync()
        .args(["sync", "--once", "--config"])
        .arg(config)
        .output()
        .expect("crmsync sync --once")
}

async fn stats(sandbox: &Sandbox) -> Value {
    reqwest::get(format!("{}/_sandbox/stats", sandbox.base_url()))
        .await
        .expect("stats")
        .json()
        .await
        .expect("json")
}

/// The calls the sandbox answered other than reading the account details.
fn other_calls(stats: &Value) -> Vec<String> {
    stats["calls"]
        .as_array()
        .map(|calls| {
            calls
                .iter()
                .filter(|c| c["endpoint"] != "/account-info/v3/details")
                .map(|c| format!("{} {}", c["method"], c["endpoint"]))
                .collect()
        })
        .unwrap_or_default()
}

fn edit(config: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(config).expect("config");
    assert!(text.contains(from), "the config holds {from:?}");
    std::fs::write(config, text.replace(from, to)).expect("config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staging_is_refused_by_a_production_account_and_a_bound_state_refuses_another() {
    let production = Sandbox::start(
        "127.0.0.1:0",
        SandboxConfig {
            portal_id: 999,
            account_type: "STANDARD".into(),
            ..SandboxConfig::unlimited()
        },
    )
    .await
    .expect("production sandbox");
    let test_portal = Sandbox::start("127.0.0.1:0", SandboxConfig::unlimited())
        .await
        .expect("test sandbox");
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = dir.path().join("demo");
    let prepared = crmsync()
        .args([
            "demo",
            "--no-sync",
            "--customers",
            "5",
            "--orders",
            "5",
            "--dir",
        ])
        .arg(&demo)
        .args(["--crm-url", &production.base_url()])
        .output()
        .expect("demo --no-sync");
    assert!(
        prepared.status.success(),
        "{}",
        String::from_utf8_lossy(&prepared.stderr)
    );
    let config = demo.join("crmsync.toml");
    edit(
        &config,
        "environment = \"sandbox\"",
        "environment = \"staging\"",
    );

    // 1. staging -> a production account: exit 2, no write, a message naming both sides.
    let refused = sync_once(&config);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("environment = \"staging\"")
            && stderr.contains("HubSpot portal 999 (STANDARD, a production account)")
            && stderr.contains("allow_production_account"),
        "{stderr}"
    );
    let seen = stats(&production).await;
    assert_eq!(
        other_calls(&seen),
        Vec::<String>::new(),
        "no call but the account read"
    );
    assert_eq!(seen["objects"]["contacts"], 0);
    let env = crmsync()
        .args(["env", "--json", "--config"])
        .arg(&config)
        .output()
        .expect("crmsync env");
    assert_eq!(env.status.code(), Some(2));
    let shown: Value = serde_json::from_slice(&env.stdout).expect("env --json");
    assert_eq!(shown["environment"], "staging");
    assert_eq!(shown["crm_account"]["id"], "hubspot:999");
    assert_eq!(shown["allowed"], false);
    assert_eq!(
        shown["bound"]["crm_account"],
        Value::Null,
        "env binds nothing"
    );

    // 2. The same config on the test portal syncs, and binds the state to it.
    edit(&config, &production.base_url(), &test_portal.base_url());
    let synced = sync_once(&config);
    assert!(
        synced.status.success(),
        "{}",
        String::from_utf8_lossy(&synced.stderr)
    );
    assert_eq!(stats(&test_portal).await["objects"]["companies"], 5);

    // 3. Back to the production account, even with the explicit permission: this state
    //    belongs to the test portal, and the refusal names both accounts.
    edit(&config, &test_portal.base_url(), &production.base_url());
    edit(
        &config,
        "environment = \"staging\"",
        "environment = \"staging\"\nallow_production_account = true",
    );
    let other = sync_once(&config);
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert_eq!(other.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("hubspot:62515") && stderr.contains("HubSpot portal 999"),
        "{stderr}"
    );
    assert_eq!(other_calls(&stats(&production).await), Vec::<String>::new());

    // 4. A new state database with the permission writes into the production account.
    let text = std::fs::read_to_string(&config).expect("config");
    let fresh = demo.join("fresh.toml");
    std::fs::write(
        &fresh,
        text.replace("crmsync-state.db", "crmsync-state-production.db"),
    )
    .expect("config");
    assert!(
        std::fs::read_to_string(&fresh)
            .expect("config")
            .contains("crmsync-state-production.db"),
        "the demo config names its state file"
    );
    let allowed = sync_once(&fresh);
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
    assert_eq!(stats(&production).await["objects"]["companies"], 5);
}

#[tokio::test]
async fn a_config_without_an_environment_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("crmsync.toml");
    std::fs::write(
        &config,
        "[source]\nurl = \"sqlite://app.db\"\n[crm]\nkind = \"hubspot\"\ntoken_env = \"HUBSPOT_ACCESS_TOKEN\"\n",
    )
    .expect("config");
    let out = sync_once(&config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("crmsync.toml:3: `crm.environment`"),
        "{stderr}"
    );
}
