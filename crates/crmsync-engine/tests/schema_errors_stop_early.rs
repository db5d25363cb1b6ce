//! A mapping the CRM cannot take (a property it does not have, a constant value it refuses)
//! fails every record the same way. Found at the first call, it stops that sync with the CRM's
//! message and the fix — no splitting the batch down to single records — while the other syncs
//! deliver; the preflight a start runs finds it before any call is spent.

mod support;

use crmsync_core::config::{Secrets, load_str};
use crmsync_sandbox::SandboxConfig;
use support::{CONFIG, world};

fn customers() -> Vec<(i64, &'static str, &'static str)> {
    (1..=250)
        .map(|i| {
            let email: &'static str = Box::leak(format!("buyer{i}@acme.com").into_boxed_str());
            (i, "Acme Robotics", email)
        })
        .collect()
}

fn orders() -> Vec<(i64, i64, &'static str, &'static str)> {
    (1..=120)
        .map(|i| (i, 1 + i % 250, "Order", "new"))
        .collect()
}

#[tokio::test]
async fn a_property_the_crm_lacks_stops_its_sync_after_one_call_and_the_others_go_on() {
    let w = world(&customers(), &orders(), SandboxConfig::unlimited()).await;
    // Companies also send `email` into `no_such_property`, which the portal does not have.
    let text = CONFIG.replace("BASE", &w.sandbox.base_url()).replace(
        r#"company = { crm = "name", validate = "required" }"#,
        r#"company = { crm = "name", validate = "required" }
email = { crm = "no_such_property" }"#,
    );
    let config = load_str(
        &text,
        &w.dir.path().join("crmsync.toml"),
        Secrets::Required,
        &|_| Some("test-token".into()),
    )
    .expect("config valid");

    let engine = w.engine_with(config.clone(), |_| {}).await;
    let problems = crmsync_engine::check::preflight(&engine.config, &engine.crm)
        .await
        .expect("preflight runs");
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].sync, "companies");
    assert!(
        problems[0].message.contains("no_such_property"),
        "{}",
        problems[0].message
    );

    // Started anyway (as with `--force`): one refused call, not a bisection.
    let report = engine.push_once().await.expect("the pass runs");
    let companies = report
        .syncs
        .iter()
        .find(|s| s.sync == "companies")
        .expect("companies reported");
    let why = companies.stopped.as_deref().expect("companies stopped");
    assert!(why.contains("no_such_property"), "{why}");
    assert!(
        why.contains("create the property"),
        "the fix is named: {why}"
    );
    assert_eq!(
        w.calls_to("/companies/batch/upsert").await,
        1,
        "one call found it: no splitting down to single records"
    );
    assert_eq!(companies.rejected, 0, "no record is blamed for the mapping");
    // Contacts and deals wait for their companies; nothing else went wrong.
    assert!(
        report.has_record_failures(),
        "a stopped sync is a failed pass"
    );

    // A new pass does not try again while the mapping is unchanged.
    let again = w.engine_with(config, |_| {}).await;
    let report = again.push_once().await.expect("the pass runs");
    assert_eq!(w.calls_to("/companies/batch/upsert").await, 1);
    assert!(
        report
            .syncs
            .iter()
            .any(|s| s.sync == "companies" && s.stopped.is_some()),
        "the stop is kept and reported"
    );

    // Fixed config: the start's preflight passes, the stop is cleared, everything flows.
    let fixed = w.engine().await;
    assert!(
        crmsync_engine::check::preflight(&fixed.config, &fixed.crm)
            .await
            .expect("preflight")
            .is_empty()
    );
    fixed.clear_stops().await.expect("clear");
    let report = fixed.push_once().await.expect("the pass runs");
    assert!(!report.has_record_failures(), "{report:#?}");
    assert_eq!(w.objects().await, (250, 250, 120));
}

#[tokio::test]
async fn a_constant_value_the_crm_refuses_stops_the_sync_instead_of_splitting() {
    let w = world(&customers(), &orders(), SandboxConfig::unlimited()).await;
    // Every order maps to a stage the default pipeline does not have.
    let text = CONFIG.replace("BASE", &w.sandbox.base_url()).replace(
        r#"map = { new = "appointmentscheduled", paid = "closedwon" }"#,
        r#"map = { new = "no_such_stage", paid = "closedwon" }"#,
    );
    let config = load_str(
        &text,
        &w.dir.path().join("crmsync.toml"),
        Secrets::Required,
        &|_| Some("test-token".into()),
    )
    .expect("config valid");
    let engine = w.engine_with(config, |_| {}).await;
    let report = engine.push_once().await.expect("the pass runs");
    let deals = report
        .syncs
        .iter()
        .find(|s| s.sync == "deals")
        .expect("deals reported");
    let why = deals.stopped.as_deref().expect("deals stopped");
    assert!(
        why.contains("dealstage") && why.contains("no_such_stage"),
        "{why}"
    );
    // A first import of deals is a batch create carrying their associations.
    assert_eq!(
        w.calls_to("/deals/batch/create").await,
        1,
        "one call, not a split down to 120 single records"
    );
    assert_eq!(w.calls_to("/deals/batch/upsert").await, 0);
    let (companies, contacts, deals) = w.objects().await;
    assert_eq!((companies, contacts, deals), (250, 250, 0));
}
