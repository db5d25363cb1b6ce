//! A deal whose company was deleted in the CRM: HubSpot refuses the association batch as a
//! whole, so without care that one deal would fail (and finally kill) every deal retried with
//! it. The refused batch is split, the other deals are associated, and the orphan's job goes
//! to a dead state named "parent gone" after its attempts, which `status` shows.

mod support;

use crmsync_core::config::{Secrets, load_str};
use crmsync_engine::outbound::deliver::PARENT_GONE;
use crmsync_sandbox::SandboxConfig;
use crmsync_store::Records;
use support::{CONFIG, TestClock, wall_ms, world};

fn customers() -> Vec<(i64, &'static str, &'static str)> {
    vec![
        (1, "Acme Robotics", "ada@acme.com"),
        (2, "Globex", "grace@globex.com"),
        (3, "Initech", "peter@initech.com"),
    ]
}

fn orders() -> Vec<(i64, i64, &'static str, &'static str)> {
    vec![
        (1, 1, "Robot arm", "new"),
        (2, 2, "Gripper", "paid"),
        (3, 3, "Conveyor", "new"),
    ]
}

#[tokio::test]
async fn an_orphaned_deal_dies_named_and_alone() {
    let w = world(&customers(), &orders(), SandboxConfig::unlimited()).await;
    let text = CONFIG.replace("BASE", &w.sandbox.base_url()).replace(
        "token_env = \"HUBSPOT_ACCESS_TOKEN\"",
        "token_env = \"HUBSPOT_ACCESS_TOKEN\"\nmax_attempts = 2",
    );
    let config = load_str(
        &text,
        &w.dir.path().join("crmsync.toml"),
        Secrets::Required,
        &|_| Some("test-token".into()),
    )
    .expect("config valid");
    let clock = TestClock::at(wall_ms());
    let engine = w.engine_full(config, |_| {}, Some(clock.clone())).await;
    crmsync_engine::install(&engine.config, &engine.app)
        .await
        .expect("triggers");
    engine.push_once().await.expect("first pass");
    let company = engine
        .state
        .link("companies", "2")
        .await
        .expect("link")
        .and_then(|l| l.crm_id)
        .expect("company 2 in the CRM");

    // Sales deletes Globex in HubSpot; then every order changes in the app.
    let resp = reqwest::Client::new()
        .delete(format!(
            "{}/crm/v3/objects/companies/{company}",
            w.sandbox.base_url()
        ))
        .bearer_auth("test-token")
        .send()
        .await
        .expect("delete");
    assert!(resp.status().is_success(), "{}", resp.status());
    w.app_sql("UPDATE orders SET title = title || ' v2', updated_at = '2026-02-01T00:00:00Z'")
        .await;

    // Attempt 1, then (after the retry delay) attempt 2: out of attempts.
    let mut passes = 0;
    let dead = loop {
        engine.push_once().await.expect("pass");
        clock.advance(3_600_000);
        passes += 1;
        let status = crmsync_engine::status::status(&engine.config, &engine.state, &engine.app)
            .await
            .expect("status");
        let deals = status
            .syncs
            .iter()
            .find(|s| s.sync == "deals")
            .expect("deals")
            .clone();
        if let Some(p) = deals.stuck.iter().find(|p| p.state == "dead") {
            break (p.clone(), deals);
        }
        assert!(passes < 6, "the orphan's job never died: {deals:?}");
    };
    let (problem, deals) = dead;
    assert_eq!(problem.jobs, 1, "only the orphan dies: {deals:?}");
    assert!(
        problem.error.starts_with(PARENT_GONE) && problem.error.contains(&company),
        "named reason with the parent: {}",
        problem.error
    );
    assert_eq!(deals.failed, 1, "{deals:?}");
    assert_eq!(deals.synced, 2, "the others are in sync: {deals:?}");

    // The other deals took their new titles and kept their companies.
    for (order, title) in [("1", "Robot arm v2"), ("3", "Conveyor v2")] {
        let deal = engine
            .state
            .link("deals", order)
            .await
            .expect("link")
            .and_then(|l| l.crm_id)
            .expect("deal linked");
        let record = w
            .get(&format!(
                "/crm/v3/objects/deals/{deal}?properties=dealname&associations=companies"
            ))
            .await;
        assert_eq!(record["properties"]["dealname"], title, "{record}");
        let companies = record["associations"]["companies"]["results"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0);
        assert!(companies >= 1, "deal {order} kept its company: {record}");
    }
}
