//! A deal stage set in the CRM that the field's `map` does not know has no way back into the
//! app. It used to be a warning in the log every round and nowhere else; now `status` counts
//! it with the values met, until the mapping changes.

mod support;

use crmsync_core::config::{Config, Secrets, load_str};
use crmsync_sandbox::SandboxConfig;
use crmsync_store::Records;
use std::time::{Duration, Instant};
use support::{CONFIG, TestEngine, World, world};

const UI_TOKEN: &str = "ui-token";

fn config(w: &World, map: &str) -> Config {
    let text = CONFIG.replace("BASE", &w.sandbox.base_url()).replace(
        r#"status = { crm = "dealstage", map = { new = "appointmentscheduled", paid = "closedwon" } }"#,
        &format!(r#"status = {{ crm = "dealstage", map = {{ {map} }}, direction = "both" }}"#),
    );
    assert!(text.contains("direction = \"both\""));
    load_str(
        &text,
        &w.dir.path().join("crmsync.toml"),
        Secrets::Required,
        &|_| Some("test-token".into()),
    )
    .expect("config valid")
}

async fn unmapped(engine: &TestEngine) -> Vec<crmsync_engine::inbound::warnings::Unmapped> {
    let status = crmsync_engine::status::status(&engine.config, &engine.state, &engine.app)
        .await
        .expect("status");
    status
        .syncs
        .into_iter()
        .find(|s| s.sync == "deals")
        .expect("deals")
        .unmapped
}

#[tokio::test]
async fn an_unmapped_crm_stage_is_counted_by_status_until_the_map_changes() {
    let mut sandbox = SandboxConfig::unlimited();
    sandbox.other_tokens.insert(UI_TOKEN.into(), 4242);
    let w = world(
        &[(1, "Acme", "ada@acme.com")],
        &[(1, 1, "Robot arm", "new"), (2, 1, "Gripper", "paid")],
        sandbox,
    )
    .await;
    let engine = w
        .engine_with(
            config(&w, r#"new = "appointmentscheduled", paid = "closedwon""#),
            |_| {},
        )
        .await;
    crmsync_engine::install(&engine.config, &engine.app)
        .await
        .expect("triggers");
    engine.push_once().await.expect("backfill");
    engine.pull_once().await.expect("first poll");
    assert!(unmapped(&engine).await.is_empty());

    // A salesperson marks both deals lost: a stage the app's status map does not know.
    for order in ["1", "2"] {
        let deal = engine
            .state
            .link("deals", order)
            .await
            .expect("link")
            .and_then(|l| l.crm_id)
            .expect("linked");
        let status = reqwest::Client::new()
            .patch(format!(
                "{}/crm/v3/objects/deals/{deal}",
                w.sandbox.base_url()
            ))
            .bearer_auth(UI_TOKEN)
            .json(&serde_json::json!({ "properties": { "dealstage": "closedlost" } }))
            .send()
            .await
            .expect("patch")
            .status();
        assert!(status.is_success(), "{status}");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let warnings = loop {
        engine.pull_once().await.expect("poll");
        let w = unmapped(&engine).await;
        if w.first().is_some_and(|u| u.count >= 2) {
            break w;
        }
        assert!(Instant::now() < deadline, "never counted: {w:?}");
    };
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].field, "status");
    assert_eq!(warnings[0].values, ["closedlost"]);

    // The map learns the stage: a new process with the new config starts afresh.
    let engine = w
        .engine_with(
            config(
                &w,
                r#"new = "appointmentscheduled", paid = "closedwon", lost = "closedlost""#,
            ),
            |_| {},
        )
        .await;
    engine.push_once().await.expect("push with the new mapping");
    assert!(unmapped(&engine).await.is_empty());
}
