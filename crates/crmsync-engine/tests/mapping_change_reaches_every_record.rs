//! A mapping change reaches records already synced: the next capture notices the sync's mapping
//! fingerprint changed and plans every row again (a trigger-captured table's rows did not
//! change, so the change log alone would never look at them). `plan` shows the cost first; a
//! record quarantined by a rule the new config dropped is sent by itself; `resync` re-plans on
//! demand and, with nothing changed, sends nothing.

mod support;

use crmsync_core::config::{Secrets, load_str};
use crmsync_engine::budget::Budget;
use crmsync_engine::estimate::estimate;
use crmsync_sandbox::SandboxConfig;
use crmsync_store::Records;
use support::{CONFIG, world};

fn customers() -> Vec<(i64, &'static str, &'static str)> {
    vec![
        (1, "Acme Robotics", "ada@acme.com"),
        (2, "Globex", "grace@globex.com"),
        (3, "Initech", "peter@initech.com"),
        (4, "", "nameless@example.com"),
    ]
}

#[tokio::test]
async fn a_changed_mapping_replans_every_record_and_retries_what_it_no_longer_refuses() {
    let w = world(&customers(), &[], SandboxConfig::unlimited()).await;
    let first = w.engine().await;
    crmsync_engine::install(&first.config, &first.app)
        .await
        .expect("install triggers");
    let report = first.push_once().await.expect("first pass");
    let companies = |r: &crmsync_engine::RunReport| {
        r.syncs
            .iter()
            .find(|s| s.sync == "companies")
            .cloned()
            .expect("companies reported")
    };
    assert_eq!(
        (companies(&report).created, companies(&report).invalid),
        (3, 1)
    );

    // The new mapping: companies also carry the buyer's e-mail in `description`, and the name
    // is no longer required.
    let text = CONFIG.replace("BASE", &w.sandbox.base_url()).replace(
        r#"company = { crm = "name", validate = "required" }"#,
        r#"company = { crm = "name" }
email = { crm = "description" }"#,
    );
    let config = load_str(
        &text,
        &w.dir.path().join("crmsync.toml"),
        Secrets::Required,
        &|_| Some("test-token".into()),
    )
    .expect("config valid");
    let second = w.engine_with(config.clone(), |_| {}).await;

    // `plan` first: it knows a re-plan is coming and what it sends.
    let now = crmsync_store::now_ms();
    let est = estimate(
        &config,
        &second.state,
        &second.app,
        &Budget::new(&config.raw.crm, now),
        100,
        now,
    )
    .await
    .expect("estimate");
    let plan = est
        .syncs
        .iter()
        .find(|s| s.sync == "companies")
        .expect("companies planned");
    assert!(plan.replan, "the mapping change is announced");
    assert_eq!(
        plan.to_send, 4,
        "three updates and the one no longer refused"
    );
    assert!(
        !est.syncs.iter().any(|s| s.sync == "contacts" && s.replan),
        "an unchanged sync is not re-planned"
    );

    let report = second.push_once().await.expect("second pass");
    let c = companies(&report);
    assert_eq!(c.read, 4, "every row was read again, though none changed");
    assert_eq!((c.updated, c.created, c.invalid), (3, 1, 0), "{c:?}");
    let link = second
        .state
        .link("companies", "1")
        .await
        .expect("link")
        .expect("linked");
    let id = link.crm_id.expect("crm id");
    let company = w
        .get(&format!(
            "/crm/v3/objects/companies/{id}?properties=description"
        ))
        .await;
    assert_eq!(company["properties"]["description"], "ada@acme.com");
    assert!(
        second
            .state
            .quarantined("companies")
            .await
            .expect("quarantine")
            .is_empty(),
        "the record the old rule refused left the quarantine by itself"
    );

    // Planned with this mapping now: another pass reads only what changed.
    let report = second.push_once().await.expect("third pass");
    assert_eq!(companies(&report).read, 0);

    // `resync` re-plans on demand; nothing differs, so nothing is sent.
    let upserts = w.calls_to("/companies/batch/upsert").await;
    second
        .request_resync("companies")
        .await
        .expect("resync asked");
    let report = second.push_once().await.expect("resync pass");
    assert_eq!(companies(&report).read, 4);
    assert_eq!(companies(&report).updated, 0);
    assert_eq!(w.calls_to("/companies/batch/upsert").await, upserts);
}
