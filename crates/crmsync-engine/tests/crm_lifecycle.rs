//! What happens on our side when records die or merge in the CRM, and what reconciliation
//! repairs: archive -> the row is flagged and no push recreates it; a mass deletion is held for
//! a person; a merge re-points the link (no duplicate afterwards) or reports two app records on
//! one CRM record; reconciliation finds 0 drift on a synced setup and repairs missed edits;
//! stored webhook events are applied, and our own writes coming back cost no call.

mod support;

use crmsync_core::config::{Config, Secrets, load_str};
use crmsync_engine::lifecycle::deletion::Decision;

use crmsync_sandbox::SandboxConfig;
use crmsync_store::{Coordination, DeletionState, Lifecycle, Records};
use serde_json::json;
use support::{CONFIG, TestEngine, World, world};

const UI_TOKEN: &str = "ui-token";

type E = TestEngine;

fn sandbox() -> SandboxConfig {
    let mut c = SandboxConfig::unlimited();
    c.other_tokens.insert(UI_TOKEN.into(), 4242);
    c
}

/// The world's config, company name two-way, with `on_delete` (lines of the companies sync,
/// e.g. `crm_deleted_column = "crm_deleted_at"`) for CRM deletions.
fn config_with(w: &World, on_delete: &str) -> Config {
    let text = CONFIG
        .replace("BASE", &w.sandbox.base_url())
        .replace(
            r#"company = { crm = "name", validate = "required" }"#,
            r#"company = { crm = "name", validate = "required", direction = "both" }"#,
        )
        .replace(
            "id_property = \"app_customer_id\"\ncapture = \"trigger\"",
            &format!("id_property = \"app_customer_id\"\ncapture = \"trigger\"\n{on_delete}"),
        );
    assert!(text.contains(on_delete));
    let path = w.dir.path().join("crmsync.toml");
    load_str(&text, &path, Secrets::Required, &|_| Some("t".into())).expect("config valid")
}

/// `n` customers, each with one order, pushed; the first poll done.
async fn synced(n: i64) -> (World, E) {
    synced_with(n, "crm_deleted_column = \"crm_deleted_at\"").await
}

async fn synced_with(n: i64, on_delete: &str) -> (World, E) {
    let names: Vec<(i64, String, String)> = (1..=n)
        .map(|i| (i, format!("Company {i}"), format!("c{i}@example.com")))
        .collect();
    let customers: Vec<(i64, &str, &str)> = names
        .iter()
        .map(|(i, c, e)| (*i, c.as_str(), e.as_str()))
        .collect();
    let orders: Vec<(i64, i64, &str, &str)> = (1..=n).map(|i| (i, i, "Robot", "new")).collect();
    let w = world(&customers, &orders, sandbox()).await;
    w.app_sql("ALTER TABLE customers ADD COLUMN crm_deleted_at TEXT")
        .await;
    let engine = w.engine_with(config_with(&w, on_delete), |_| {}).await;
    crmsync_engine::install(&engine.config, &engine.app)
        .await
        .expect("install");
    engine.push_once().await.expect("backfill");
    engine.pull_once().await.expect("first poll");
    (w, engine)
}

async fn crm_id(engine: &E, sync: &str, key: &str) -> String {
    engine
        .state
        .link(sync, key)
        .await
        .expect("link")
        .and_then(|l| l.crm_id)
        .expect("linked")
}

async fn ui(
    w: &World,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> serde_json::Value {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", w.sandbox.base_url()))
        .bearer_auth(UI_TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.unwrap_or(serde_json::Value::Null)
}

async fn archive(w: &World, id: &str) {
    ui(
        w,
        reqwest::Method::DELETE,
        &format!("/crm/v3/objects/companies/{id}"),
        None,
    )
    .await;
}

async fn app_value(w: &World, sql: &str, id: i64) -> Option<String> {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&w.config.source_url())
        .await
        .expect("app db");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .bind(id)
        .fetch_one(&mut conn)
        .await
        .expect("row")
}

async fn live_companies(w: &World) -> u64 {
    w.objects().await.0
}

#[tokio::test]
async fn an_archived_record_is_flagged_and_never_recreated() {
    let (w, engine) = synced(12).await;
    let one = crm_id(&engine, "companies", "1").await;
    archive(&w, &one).await;
    let r = engine.reconcile_once().await.expect("reconcile");
    assert_eq!((r.deleted, r.deletions_held), (1, 0), "{r:?}");
    assert!(
        app_value(&w, "SELECT crm_deleted_at FROM customers WHERE id = ?", 1)
            .await
            .is_some_and(|t| t.starts_with("20")),
        "the row carries the deletion time"
    );
    let deletions = engine
        .state
        .deletions(Some("companies"), None)
        .await
        .expect("deletions");
    assert_eq!(deletions.len(), 1);
    assert_eq!(deletions[0].state, DeletionState::Applied);
    assert_eq!(deletions[0].crm_id, one);

    // An app edit of the deleted record does not bring it back.
    let companies = live_companies(&w).await;
    w.app_sql("UPDATE customers SET company = 'Revived' WHERE id = 1")
        .await;
    engine.push_once().await.expect("push");
    assert_eq!(live_companies(&w).await, companies, "no company recreated");
    let held = engine
        .state
        .quarantined("companies")
        .await
        .expect("quarantine");
    assert!(
        held.iter()
            .any(|q| q.local_id == "1" && q.rule == "crm_deleted"),
        "{held:?}"
    );

    // The same through a stored deletion event: no reconciliation needed.
    let two = crm_id(&engine, "companies", "2").await;
    archive(&w, &two).await;
    let event = json!({"eventId": 77, "subscriptionType": "company.deletion", "objectId": two.parse::<u64>().expect("numeric id"), "changeFlag": "DELETED"});
    engine
        .state
        .record_webhook_events(&[("77".into(), event.to_string())], support::wall_ms())
        .await
        .expect("store event");
    let r = engine.apply_webhook_events().await.expect("apply events");
    assert_eq!((r.events, r.deleted), (1, 1), "{r:?}");
    assert_eq!(
        engine.state.pending_webhook_count().await.expect("count"),
        0
    );
}

#[tokio::test]
async fn a_mass_deletion_is_held_until_a_person_decides() {
    let (w, engine) = synced(12).await;
    for key in 1..=11 {
        archive(&w, &crm_id(&engine, "companies", &key.to_string()).await).await;
    }
    let r = engine.reconcile_once().await.expect("reconcile");
    assert_eq!((r.deleted, r.deletions_held), (0, 11), "{r:?}");
    assert_eq!(
        app_value(&w, "SELECT crm_deleted_at FROM customers WHERE id = ?", 1).await,
        None,
        "nothing is flagged while held"
    );
    let status = crmsync_engine::status::status(&engine.config, &engine.state, &engine.app)
        .await
        .expect("status");
    assert_eq!(status.two_way.deletions_held, 11);
    // While held, an app edit does not recreate the record either.
    w.app_sql("UPDATE customers SET company = 'Edited' WHERE id = 3")
        .await;
    engine.push_once().await.expect("push while held");
    assert_eq!(live_companies(&w).await, 1);

    // Rejected: the records are pushed again, so the CRM has all twelve companies again.
    let n = engine
        .decide_deletions(Some("companies"), Decision::Reject)
        .await
        .expect("reject");
    assert_eq!(n, 11);
    engine.push_once().await.expect("push");
    assert_eq!(live_companies(&w).await, 12);
    assert!(
        engine
            .state
            .deletions(None, None)
            .await
            .expect("deletions")
            .is_empty()
    );
    // ... and the recreated records are linked to their new ids: a reconciliation finds nothing.
    let r = engine.reconcile_once().await.expect("reconcile again");
    assert_eq!(r.drift(), 0, "{r:?}");
}

#[tokio::test]
async fn held_deletions_can_be_applied() {
    let (w, engine) = synced(12).await;
    for key in 1..=11 {
        archive(&w, &crm_id(&engine, "companies", &key.to_string()).await).await;
    }
    engine.reconcile_once().await.expect("reconcile");
    let n = engine
        .decide_deletions(None, Decision::Apply)
        .await
        .expect("apply");
    assert_eq!(n, 11);
    assert!(
        app_value(&w, "SELECT crm_deleted_at FROM customers WHERE id = ?", 11)
            .await
            .is_some()
    );
    assert_eq!(
        engine
            .state
            .deletions(Some("companies"), Some(DeletionState::Applied))
            .await
            .expect("deletions")
            .len(),
        11
    );
}

#[tokio::test]
async fn a_merge_repoints_the_link_and_the_next_push_updates_the_survivor() {
    let (w, engine) = synced(3).await;
    let one = crm_id(&engine, "companies", "1").await;
    let created = ui(
        &w,
        reqwest::Method::POST,
        "/crm/v3/objects/companies",
        Some(json!({"properties": {"name": "Company One (from sales)"}})),
    )
    .await;
    let survivor = created["id"].as_str().expect("created id").to_string();
    ui(
        &w,
        reqwest::Method::POST,
        "/crm/v3/objects/companies/merge",
        Some(json!({"primaryObjectId": survivor, "objectIdToMerge": one})),
    )
    .await;
    let r = engine.reconcile_once().await.expect("reconcile");
    assert_eq!((r.merged, r.shared), (1, 0), "{r:?}");
    assert_eq!(crm_id(&engine, "companies", "1").await, survivor);

    let companies = live_companies(&w).await;
    w.app_sql("UPDATE customers SET company = 'One Robotics' WHERE id = 1")
        .await;
    engine.push_once().await.expect("push");
    assert_eq!(live_companies(&w).await, companies, "no duplicate company");
    let v = w
        .get(&format!(
            "/crm/v3/objects/companies/{survivor}?properties=name"
        ))
        .await;
    assert_eq!(v["properties"]["name"], "One Robotics");
}

#[tokio::test]
async fn merging_two_linked_records_reports_two_app_records_on_one() {
    let (w, engine) = synced(3).await;
    let one = crm_id(&engine, "companies", "1").await;
    let two = crm_id(&engine, "companies", "2").await;
    ui(
        &w,
        reqwest::Method::POST,
        "/crm/v3/objects/companies/merge",
        Some(json!({"primaryObjectId": one, "objectIdToMerge": two})),
    )
    .await;
    // Through the merge event this time.
    let event = json!({"eventId": 5, "subscriptionType": "company.merge", "objectId": one.parse::<u64>().expect("id"),
        "primaryObjectId": one.parse::<u64>().expect("id"), "mergedObjectIds": [two.parse::<u64>().expect("id")], "changeFlag": "MERGED"});
    engine
        .state
        .record_webhook_events(&[("5".into(), event.to_string())], support::wall_ms())
        .await
        .expect("store");
    let r = engine.apply_webhook_events().await.expect("apply");
    assert_eq!((r.merged, r.shared), (0, 1), "{r:?}");
    let merges = engine
        .state
        .merges(Some("companies"))
        .await
        .expect("merges");
    assert_eq!(merges.len(), 1);
    assert_eq!(merges[0].local_id, "2");
    assert_eq!(merges[0].shared_with.as_deref(), Some("1"));
    let held = engine
        .state
        .quarantined("companies")
        .await
        .expect("quarantine");
    assert!(
        held.iter()
            .any(|q| q.local_id == "2" && q.rule == "crm_merged"),
        "{held:?}"
    );
}

#[tokio::test]
async fn reconciliation_finds_no_drift_when_in_sync_and_repairs_what_was_missed() {
    let (w, engine) = synced(5).await;
    let r = engine.reconcile_once().await.expect("reconcile");
    assert_eq!(r.drift(), 0, "a synced setup has no drift: {r:?}");
    assert_eq!(r.checked, 15, "every linked record read back once");

    // Missed by every mechanism: a UI edit of a push-only field and of a two-way field.
    let deal = crm_id(&engine, "deals", "1").await;
    ui(
        &w,
        reqwest::Method::PATCH,
        &format!("/crm/v3/objects/deals/{deal}"),
        Some(json!({"properties": {"dealname": "Typo"}})),
    )
    .await;
    let company = crm_id(&engine, "companies", "2").await;
    ui(
        &w,
        reqwest::Method::PATCH,
        &format!("/crm/v3/objects/companies/{company}"),
        Some(json!({"properties": {"name": "Two Corp"}})),
    )
    .await;
    let r = engine.reconcile_once().await.expect("reconcile");
    assert_eq!((r.repushed, r.applied, r.drift()), (1, 1, 2), "{r:?}");
    assert_eq!(
        app_value(&w, "SELECT company FROM customers WHERE id = ?", 2)
            .await
            .as_deref(),
        Some("Two Corp")
    );
    engine.push_once().await.expect("push");
    let v = w
        .get(&format!("/crm/v3/objects/deals/{deal}?properties=dealname"))
        .await;
    assert_eq!(
        v["properties"]["dealname"], "Robot",
        "the app's value is back"
    );
    let r = engine.reconcile_once().await.expect("reconcile again");
    assert_eq!(r.drift(), 0, "{r:?}");
}

#[tokio::test]
async fn webhook_events_apply_crm_edits_and_our_own_writes_cost_no_call() {
    let (w, engine) = synced(3).await;
    let id = crm_id(&engine, "companies", "1").await;
    let n: u64 = id.parse().expect("numeric id");
    // Our own value coming back, and a field nobody pulls: no read.
    let own = json!({"eventId": 1, "subscriptionType": "company.propertyChange", "objectId": n, "propertyName": "name", "propertyValue": "Company 1"});
    let other = json!({"eventId": 2, "subscriptionType": "company.propertyChange", "objectId": n, "propertyName": "industry", "propertyValue": "ROBOTICS"});
    engine
        .state
        .record_webhook_events(
            &[
                ("1".into(), own.to_string()),
                ("2".into(), other.to_string()),
            ],
            support::wall_ms(),
        )
        .await
        .expect("store");
    let reads = w.calls_to("batch/read").await;
    let r = engine.apply_webhook_events().await.expect("apply");
    assert_eq!((r.events, r.events_skipped, r.applied), (2, 2, 0), "{r:?}");
    assert_eq!(
        w.calls_to("batch/read").await,
        reads,
        "no call for our own write"
    );

    // A real edit: one read, the row changes, nothing is pushed back.
    ui(
        &w,
        reqwest::Method::PATCH,
        &format!("/crm/v3/objects/companies/{id}"),
        Some(json!({"properties": {"name": "Acme"}})),
    )
    .await;
    let edit = json!({"eventId": 3, "subscriptionType": "company.propertyChange", "objectId": n, "propertyName": "name", "propertyValue": "Acme"});
    // Delivered twice and out of order with an older event: read once, applied once.
    let older = json!({"eventId": 4, "subscriptionType": "company.propertyChange", "objectId": n, "propertyName": "name", "propertyValue": "Company 1"});
    engine
        .state
        .record_webhook_events(
            &[
                ("3".into(), edit.to_string()),
                ("3".into(), edit.to_string()),
                ("4".into(), older.to_string()),
            ],
            support::wall_ms(),
        )
        .await
        .expect("store");
    let r = engine.apply_webhook_events().await.expect("apply");
    assert_eq!(r.applied, 1, "{r:?}");
    assert_eq!(w.calls_to("batch/read").await, reads + 1);
    assert_eq!(
        app_value(&w, "SELECT company FROM customers WHERE id = ?", 1)
            .await
            .as_deref(),
        Some("Acme")
    );
    let upserts = w.calls_to("batch/upsert").await;
    engine.push_once().await.expect("push");
    assert_eq!(w.calls_to("batch/upsert").await, upserts, "no echo");
}

#[tokio::test]
async fn without_webhooks_the_poll_learns_deletions_and_merges() {
    let (w, engine) = synced(4).await;
    let one = crm_id(&engine, "companies", "1").await;
    archive(&w, &one).await;
    let r = engine
        .check_archived_once()
        .await
        .expect("archived listing");
    assert_eq!(r.deleted, 1, "{r:?}");
    // Listing again finds nothing new.
    let r = engine.check_archived_once().await.expect("again");
    assert_eq!((r.deleted, r.deletions_held), (0, 0), "{r:?}");

    let two = crm_id(&engine, "companies", "2").await;
    let created = ui(
        &w,
        reqwest::Method::POST,
        "/crm/v3/objects/companies",
        Some(json!({"properties": {"name": "Two (sales)"}})),
    )
    .await;
    let survivor = created["id"].as_str().expect("id").to_string();
    ui(
        &w,
        reqwest::Method::POST,
        "/crm/v3/objects/companies/merge",
        Some(json!({"primaryObjectId": survivor, "objectIdToMerge": two})),
    )
    .await;
    let r = engine.pull_once().await.expect("poll");
    assert_eq!(r.merged, 1, "{r:?}");
    assert_eq!(crm_id(&engine, "companies", "2").await, survivor);
}

#[tokio::test]
async fn stored_events_stay_stored_until_applied() {
    let (w, engine) = synced(2).await;
    let id = crm_id(&engine, "companies", "1").await;
    ui(
        &w,
        reqwest::Method::PATCH,
        &format!("/crm/v3/objects/companies/{id}"),
        Some(json!({"properties": {"name": "Later Corp"}})),
    )
    .await;
    let event = json!({"eventId": 9, "subscriptionType": "company.propertyChange", "objectId": id.parse::<u64>().expect("id"), "propertyName": "name", "propertyValue": "Later Corp"});
    engine
        .state
        .record_webhook_events(&[("9".into(), event.to_string())], support::wall_ms())
        .await
        .expect("store");
    // Interrupted (here: the kill switch) before applying: the event is kept, not lost.
    engine.state.set_paused(true).await.expect("pause");
    let r = engine
        .apply_webhook_events()
        .await
        .expect("apply while paused");
    assert_eq!(r.events, 0);
    assert_eq!(
        engine.state.pending_webhook_count().await.expect("count"),
        1
    );
    engine.state.set_paused(false).await.expect("resume");
    let r = engine.apply_webhook_events().await.expect("apply");
    assert_eq!(r.applied, 1, "{r:?}");
    assert_eq!(
        engine.state.pending_webhook_count().await.expect("count"),
        0
    );
    assert_eq!(
        app_value(&w, "SELECT company FROM customers WHERE id = ?", 1)
            .await
            .as_deref(),
        Some("Later Corp")
    );
}

#[tokio::test]
async fn unlink_lets_the_next_push_recreate_and_a_second_deletion_counts_again() {
    let (w, engine) = synced_with(12, "on_crm_delete = \"unlink\"").await;
    let first = crm_id(&engine, "companies", "1").await;
    archive(&w, &first).await;
    let r = engine.reconcile_once().await.expect("reconcile");
    assert_eq!(r.deleted, 1, "{r:?}");
    assert!(
        engine
            .state
            .link("companies", "1")
            .await
            .expect("link")
            .is_none()
    );
    engine.push_once().await.expect("push");
    assert_eq!(live_companies(&w).await, 12, "recreated");
    let second = crm_id(&engine, "companies", "1").await;
    assert_ne!(second, first);
    archive(&w, &second).await;
    let r = engine.reconcile_once().await.expect("reconcile again");
    assert_eq!(r.deleted, 1, "the second deletion is a new one: {r:?}");
}

#[tokio::test]
async fn a_record_restored_in_the_crm_flows_again() {
    let (w, engine) = synced(12).await;
    let one = crm_id(&engine, "companies", "1").await;
    archive(&w, &one).await;
    engine.reconcile_once().await.expect("reconcile");
    assert!(
        app_value(&w, "SELECT crm_deleted_at FROM customers WHERE id = ?", 1)
            .await
            .is_some()
    );
    // Restored as HubSpot's UI does it; the restore event is how we hear of it.
    let status = reqwest::Client::new()
        .post(format!(
            "{}/_sandbox/restore/companies/{one}",
            w.sandbox.base_url()
        ))
        .send()
        .await
        .expect("restore")
        .status();
    assert_eq!(status, reqwest::StatusCode::NO_CONTENT);
    let event = json!({"eventId": 31, "subscriptionType": "company.restore", "objectId": one.parse::<u64>().expect("id"), "changeFlag": "RESTORED"});
    engine
        .state
        .record_webhook_events(&[("31".into(), event.to_string())], support::wall_ms())
        .await
        .expect("store");
    let r = engine.apply_webhook_events().await.expect("apply");
    assert_eq!(r.restored, 1, "{r:?}");
    assert_eq!(
        app_value(&w, "SELECT crm_deleted_at FROM customers WHERE id = ?", 1).await,
        None,
        "the flag is cleared"
    );
    assert!(
        engine
            .state
            .deletions(None, None)
            .await
            .expect("deletions")
            .is_empty()
    );
    // ... and the record is pushed again, to the same CRM record.
    w.app_sql("UPDATE customers SET company = 'Back Again' WHERE id = 1")
        .await;
    engine.push_once().await.expect("push");
    assert_eq!(live_companies(&w).await, 12);
    let v = w
        .get(&format!("/crm/v3/objects/companies/{one}?properties=name"))
        .await;
    assert_eq!(v["properties"]["name"], "Back Again");
}
