//! Two-way sync against the sandbox, with a second token playing a HubSpot user editing in the
//! UI: CRM edits reach the app on the next poll and cause no write back (the sandbox's call
//! counts prove it), app edits reach the CRM, both-sided edits follow the field's policy, an
//! interrupted poll loses nothing, and the kill switch stops writes to both sides.

mod support;

use crmsync_core::config::{Config, Secrets, load_str};

use crmsync_sandbox::SandboxConfig;
use crmsync_store::{Coordination, CursorDirection, Lifecycle, Records};
use std::time::{Duration, Instant};
use support::{CONFIG, TestEngine, World, world};

const UI_TOKEN: &str = "ui-token";

fn sandbox() -> SandboxConfig {
    let mut c = SandboxConfig::unlimited();
    c.other_tokens.insert(UI_TOKEN.into(), 4242);
    c
}

/// The world's config with the company name and the contact e-mail two-way; `policy` is the
/// company name's conflict policy.
fn two_way(w: &World, policy: &str) -> Config {
    let text = CONFIG
        .replace("BASE", &w.sandbox.base_url())
        .replace(
            r#"company = { crm = "name", validate = "required" }"#,
            &format!(
                r#"company = {{ crm = "name", validate = "required", direction = "both", conflict = "{policy}" }}"#
            ),
        )
        .replace(
            r#"validate = ["required", "email"] }"#,
            r#"validate = ["required", "email"], direction = "both" }"#,
        );
    assert!(text.contains(r#"direction = "both", conflict"#));
    let path = w.dir.path().join("crmsync.toml");
    load_str(&text, &path, Secrets::Required, &|_| Some("t".into())).expect("two-way config valid")
}

async fn synced(policy: &str) -> (World, TestEngine) {
    let w = world(
        &[
            (1, "Acme", "ada@acme.com"),
            (2, "Globex", "grace@globex.com"),
        ],
        &[],
        sandbox(),
    )
    .await;
    let engine = w.engine_with(two_way(&w, policy), |_| {}).await;
    crmsync_engine::install(&engine.config, &engine.app)
        .await
        .expect("install triggers");
    engine.push_once().await.expect("backfill");
    // The first poll sees our own pushes come back: nothing to apply.
    let r = engine.pull_once().await.expect("first poll");
    assert_eq!(r.applied, 0, "{r:?}");
    assert!(r.fetched >= 4, "{r:?}");
    (w, engine)
}

async fn crm_id(engine: &TestEngine, sync: &str, key: &str) -> String {
    engine
        .state
        .links_for(sync, &[key.to_string()])
        .await
        .expect("link")
        .remove(key)
        .and_then(|l| l.crm_id)
        .expect("linked")
}

/// Edits a CRM record as the other user (the HubSpot UI).
async fn crm_edit(w: &World, object: &str, id: &str, prop: &str, value: &str) {
    let status = reqwest::Client::new()
        .patch(format!(
            "{}/crm/v3/objects/{object}/{id}",
            w.sandbox.base_url()
        ))
        .bearer_auth(UI_TOKEN)
        .json(&serde_json::json!({ "properties": { prop: value } }))
        .send()
        .await
        .expect("patch")
        .status();
    assert!(status.is_success(), "{status}");
}

async fn crm_value(w: &World, object: &str, id: &str, prop: &str) -> String {
    let v = w
        .get(&format!("/crm/v3/objects/{object}/{id}?properties={prop}"))
        .await;
    v["properties"][prop]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn app_company(w: &World, id: i64) -> String {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&w.config.source_url())
        .await
        .expect("app db");
    sqlx::query_scalar("SELECT company FROM customers WHERE id = ?")
        .bind(id)
        .fetch_one(&mut conn)
        .await
        .expect("row")
}

/// Polls until `app_company(id) == want` or the deadline passes.
async fn poll_until_company(w: &World, engine: &TestEngine, id: i64, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        engine.pull_once().await.expect("poll");
        if app_company(w, id).await == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "company {id} never became {want:?}: {:?}",
            app_company(w, id).await
        );
    }
}

#[tokio::test]
async fn crm_edit_reaches_the_app_on_the_next_poll_without_echo() {
    let (w, engine) = synced("crm_wins").await;
    let id = crm_id(&engine, "companies", "1").await;
    crm_edit(&w, "companies", &id, "name", "Acme Robotics").await;
    poll_until_company(&w, &engine, 1, "Acme Robotics").await;
    assert_eq!(app_company(&w, 2).await, "Globex");

    // The write-back fired the change-capture trigger; the push pass finds the same payload
    // hash and makes no write call.
    let upserts = w.calls_to("batch/upsert").await;
    let report = engine.push_once().await.expect("push");
    let companies = report
        .syncs
        .iter()
        .find(|s| s.sync == "companies")
        .expect("companies");
    assert_eq!(
        (companies.created, companies.updated),
        (0, 0),
        "{companies:?}"
    );
    assert!(companies.unchanged >= 1, "{companies:?}");
    assert_eq!(w.calls_to("batch/upsert").await, upserts);
    // And the next poll, seeing the same CRM values again, writes nothing either.
    let r = engine.pull_once().await.expect("poll");
    assert_eq!(r.applied, 0, "{r:?}");
}

#[tokio::test]
async fn app_edit_reaches_the_crm_and_does_not_come_back() {
    let (w, engine) = synced("crm_wins").await;
    let id = crm_id(&engine, "companies", "2").await;
    w.app_sql("UPDATE customers SET company = 'Globex Corp' WHERE id = 2")
        .await;
    engine.push_once().await.expect("push");
    assert_eq!(crm_value(&w, "companies", &id, "name").await, "Globex Corp");
    // Our own push comes back through the poll: recognised (values equal), nothing written.
    let r = engine.pull_once().await.expect("poll");
    assert_eq!(r.applied, 0, "{r:?}");
    assert_eq!(app_company(&w, 2).await, "Globex Corp");
}

/// Both sides edit company 1's name; returns (app value, CRM value) after a poll and a push.
async fn both_edited(policy: &str) -> (World, TestEngine, String) {
    let (w, engine) = synced(policy).await;
    let id = crm_id(&engine, "companies", "1").await;
    crm_edit(&w, "companies", &id, "name", "Acme (CRM)").await;
    w.app_sql("UPDATE customers SET company = 'Acme (app)' WHERE id = 1")
        .await;
    engine.pull_once().await.expect("poll");
    engine.push_once().await.expect("push");
    (w, engine, id)
}

#[tokio::test]
async fn both_edited_crm_wins() {
    let (w, _engine, id) = both_edited("crm_wins").await;
    assert_eq!(app_company(&w, 1).await, "Acme (CRM)");
    assert_eq!(crm_value(&w, "companies", &id, "name").await, "Acme (CRM)");
}

#[tokio::test]
async fn both_edited_app_wins() {
    let (w, engine, id) = both_edited("app_wins").await;
    assert_eq!(app_company(&w, 1).await, "Acme (app)");
    assert_eq!(crm_value(&w, "companies", &id, "name").await, "Acme (app)");
    // The CRM now holds our value: the next poll agrees and writes nothing.
    let r = engine.pull_once().await.expect("poll");
    assert_eq!(r.applied, 0, "{r:?}");
}

#[tokio::test]
async fn both_edited_newest_without_a_timestamp_column_takes_the_crm() {
    // The companies sync has no `updated_at_column`: documented to fall back to the CRM.
    let (w, _engine, id) = both_edited("newest").await;
    assert_eq!(app_company(&w, 1).await, "Acme (CRM)");
    assert_eq!(crm_value(&w, "companies", &id, "name").await, "Acme (CRM)");
}

#[tokio::test]
async fn both_edited_review_parks_until_resolved() {
    let (w, engine, id) = both_edited("review").await;
    // Parked: neither side was written.
    assert_eq!(app_company(&w, 1).await, "Acme (app)");
    assert_eq!(crm_value(&w, "companies", &id, "name").await, "Acme (CRM)");
    let open = engine.state.open_conflicts(None).await.expect("conflicts");
    assert_eq!(open.len(), 1, "{open:?}");
    let c = &open[0];
    assert_eq!(
        (
            c.local_id.as_str(),
            c.column.as_str(),
            c.app_value.as_str(),
            c.crm_value.as_str()
        ),
        ("1", "company", "Acme (app)", "Acme (CRM)")
    );
    // More rounds change nothing while it is open.
    engine.pull_once().await.expect("poll");
    engine.push_once().await.expect("push");
    assert_eq!(crm_value(&w, "companies", &id, "name").await, "Acme (CRM)");

    // Settled with the app's value (what `crmsync resolve --take app` does: the CRM's value is
    // acknowledged as the base, so the app's is the newer change): it is pushed.
    engine
        .state
        .record_pulls(
            "companies",
            &[crmsync_store::PullRecord {
                local_id: "1".into(),
                pushed_hash: None,
                pulled_hash: None,
                bases: vec![("name".into(), c.crm_value.clone())],
            }],
        )
        .await
        .expect("base");
    assert!(
        engine
            .state
            .resolve_conflict(c.id, "app")
            .await
            .expect("resolve")
    );
    assert!(
        engine
            .state
            .open_conflicts(None)
            .await
            .expect("conflicts")
            .is_empty()
    );
    engine.push_once().await.expect("push");
    assert_eq!(crm_value(&w, "companies", &id, "name").await, "Acme (app)");
}

#[tokio::test]
async fn a_poll_interrupted_before_applying_loses_nothing() {
    let (w, engine) = synced("crm_wins").await;
    let before = engine
        .state
        .cursor("companies", CursorDirection::Pull, "poll")
        .await
        .expect("cursor");
    assert!(before.is_some());
    let id = crm_id(&engine, "companies", "2").await;
    crm_edit(&w, "companies", &id, "name", "Globex (edited)").await;
    // The app database refuses the write: the poll fetched the change but cannot apply it.
    w.app_sql(
        "CREATE TRIGGER refuse BEFORE UPDATE ON customers BEGIN SELECT RAISE(ABORT, 'app db read-only'); END",
    )
    .await;
    assert!(engine.pull_once().await.is_err());
    assert_eq!(
        engine
            .state
            .cursor("companies", CursorDirection::Pull, "poll")
            .await
            .expect("cursor"),
        before,
        "the cursor must not move past an unapplied change"
    );
    assert_eq!(app_company(&w, 2).await, "Globex");
    w.app_sql("DROP TRIGGER refuse").await;
    poll_until_company(&w, &engine, 2, "Globex (edited)").await;
    assert_ne!(
        engine
            .state
            .cursor("companies", CursorDirection::Pull, "poll")
            .await
            .expect("cursor"),
        before
    );
}

#[tokio::test]
async fn pause_stops_writes_to_both_sides_and_resume_continues() {
    let (w, engine) = synced("crm_wins").await;
    let id1 = crm_id(&engine, "companies", "1").await;
    let id2 = crm_id(&engine, "companies", "2").await;
    engine.state.set_paused(true).await.expect("pause");
    crm_edit(&w, "companies", &id1, "name", "Acme (CRM)").await;
    w.app_sql("UPDATE customers SET company = 'Globex (app)' WHERE id = 2")
        .await;
    let upserts = w.calls_to("batch/upsert").await;
    engine.pull_once().await.expect("poll");
    engine.push_once().await.expect("push");
    assert_eq!(app_company(&w, 1).await, "Acme");
    assert_eq!(w.calls_to("batch/upsert").await, upserts);
    assert_eq!(crm_value(&w, "companies", &id2, "name").await, "Globex");
    // The app change is queued, not lost.
    assert!(
        engine
            .state
            .counts("companies")
            .await
            .expect("counts")
            .pending
            >= 1
    );

    engine.state.set_paused(false).await.expect("resume");
    poll_until_company(&w, &engine, 1, "Acme (CRM)").await;
    engine.push_once().await.expect("push");
    assert_eq!(
        crm_value(&w, "companies", &id2, "name").await,
        "Globex (app)"
    );
}

#[tokio::test]
async fn redelivered_webhook_events_are_stored_once() {
    let (_w, engine) = synced("crm_wins").await;
    let ev = |id: &str| (id.to_string(), format!(r#"{{"eventId":{id}}}"#));
    let store = &engine.state;
    assert_eq!(
        store
            .record_webhook_events(&[ev("1"), ev("2")], 1)
            .await
            .expect("store"),
        2
    );
    assert_eq!(
        store
            .record_webhook_events(&[ev("2"), ev("3")], 2)
            .await
            .expect("store"),
        1
    );
}

/// A CRM edit after the last poll, then an app edit, then a push with no poll in between: the
/// read before writing sees the CRM's edit, so the push cannot silently overwrite it.
async fn both_edited_between_polls(policy: &str) -> (World, TestEngine, String) {
    let (w, engine) = synced(policy).await;
    let id = crm_id(&engine, "companies", "1").await;
    crm_edit(&w, "companies", &id, "name", "Acme (CRM)").await;
    w.app_sql("UPDATE customers SET company = 'Acme (app)' WHERE id = 1")
        .await;
    engine.push_once().await.expect("push");
    (w, engine, id)
}

#[tokio::test]
async fn a_crm_edit_after_the_poll_is_not_overwritten_by_the_push() {
    let (w, engine, id) = both_edited_between_polls("crm_wins").await;
    assert_eq!(crm_value(&w, "companies", &id, "name").await, "Acme (CRM)");
    assert_eq!(app_company(&w, 1).await, "Acme (CRM)");
    // Settled: the next rounds change nothing and send nothing.
    let upserts = w.calls_to("batch/upsert").await;
    let r = engine.pull_once().await.expect("poll");
    assert_eq!(r.applied, 0, "{r:?}");
    engine.push_once().await.expect("push");
    assert_eq!(w.calls_to("batch/upsert").await, upserts);
}

#[tokio::test]
async fn a_crm_edit_after_the_poll_is_parked_for_review_before_the_push() {
    let (w, engine, id) = both_edited_between_polls("review").await;
    assert_eq!(crm_value(&w, "companies", &id, "name").await, "Acme (CRM)");
    assert_eq!(app_company(&w, 1).await, "Acme (app)");
    assert_eq!(
        engine
            .state
            .open_conflicts(None)
            .await
            .expect("conflicts")
            .len(),
        1
    );
}

#[tokio::test]
async fn app_wins_still_pushes_after_reading_the_crm_edit() {
    let (w, _engine, id) = both_edited_between_polls("app_wins").await;
    assert_eq!(crm_value(&w, "companies", &id, "name").await, "Acme (app)");
    assert_eq!(app_company(&w, 1).await, "Acme (app)");
}
