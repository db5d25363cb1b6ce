//! The first slice end to end: app rows pushed into the sandbox CRM exactly once, linked by
//! association; invalid rows reported, not sent; a second pass sends nothing; a pass replayed
//! after the links were lost duplicates nothing.

mod support;

use crmsync_sandbox::SandboxConfig;
use crmsync_store::{Inspect, QuarantineKind, Records};
use support::world;

fn customers() -> Vec<(i64, &'static str, &'static str)> {
    vec![
        (1, "Acme Robotics", "ada@acme.com"),
        (2, "Globex", " GRACE@GLOBEX.COM "),
        (3, "Initech", "not an email"),
        (4, "Hooli", "linus@hooli.com"),
    ]
}

fn orders() -> Vec<(i64, i64, &'static str, &'static str)> {
    (1..=250)
        .map(|i| {
            (
                i,
                (i % 4) + 1,
                "Order",
                if i % 2 == 0 { "paid" } else { "new" },
            )
        })
        .collect()
}

#[tokio::test]
async fn pushes_everything_once_with_associations_and_reports_invalid_rows() {
    let w = world(&customers(), &orders(), SandboxConfig::unlimited()).await;
    let engine = w.engine().await;
    crmsync_engine::install(&engine.config, &engine.app)
        .await
        .expect("install triggers");
    let report = engine.push_once().await.expect("pass runs");

    let by = |name: &str| {
        report
            .syncs
            .iter()
            .find(|s| s.sync == name)
            .cloned()
            .expect("sync reported")
    };
    assert_eq!(by("companies").created, 4);
    assert_eq!((by("contacts").created, by("contacts").invalid), (3, 1));
    assert_eq!(by("deals").created, 250);
    assert_eq!(w.objects().await, (4, 3, 250));
    // 250 deals travel in three full-size batches (100, 100, 50), not one call per record.
    assert_eq!(report.upsert_calls, 1 + 1 + 3);
    assert_eq!(report.upserted_records, 4 + 3 + 250);

    // The invalid contact is quarantined with field and rule, and never reached the CRM.
    let q = engine
        .state
        .quarantined("contacts")
        .await
        .expect("quarantine");
    assert_eq!(q.len(), 1);
    assert_eq!(
        (
            q[0].local_id.as_str(),
            q[0].kind,
            q[0].field.as_deref(),
            q[0].rule.as_str()
        ),
        ("3", QuarantineKind::Invalid, Some("email"), "email")
    );

    // Transforms applied before sending.
    let link = engine
        .state
        .link("contacts", "2")
        .await
        .expect("link")
        .expect("linked");
    let contact = w
        .get(&format!(
            "/crm/v3/objects/contacts/{}?properties=email",
            link.crm_id.expect("crm id")
        ))
        .await;
    assert_eq!(contact["properties"]["email"], "grace@globex.com");

    // Associations: deal 2 belongs to customer 3's company; contact 1 to company 1.
    let deal = engine
        .state
        .link("deals", "2")
        .await
        .expect("link")
        .and_then(|l| l.crm_id)
        .expect("deal id");
    let company3 = engine
        .state
        .link("companies", "3")
        .await
        .expect("link")
        .and_then(|l| l.crm_id)
        .expect("company id");
    let assoc = w
        .get(&format!(
            "/crm/v4/objects/deals/{deal}/associations/companies"
        ))
        .await;
    assert_eq!(
        assoc["results"][0]["toObjectId"]
            .to_string()
            .trim_matches('"'),
        company3
    );
    let contact1 = engine
        .state
        .link("contacts", "1")
        .await
        .expect("link")
        .and_then(|l| l.crm_id)
        .expect("contact id");
    let company1 = engine
        .state
        .link("companies", "1")
        .await
        .expect("link")
        .and_then(|l| l.crm_id)
        .expect("company id");
    let assoc = w
        .get(&format!(
            "/crm/v4/objects/contacts/{contact1}/associations/companies"
        ))
        .await;
    assert_eq!(
        assoc["results"][0]["toObjectId"]
            .to_string()
            .trim_matches('"'),
        company1
    );
}

#[tokio::test]
async fn a_second_pass_sends_no_write_calls() {
    let w = world(&customers(), &orders(), SandboxConfig::unlimited()).await;
    let engine = w.engine().await;
    crmsync_engine::install(&engine.config, &engine.app)
        .await
        .expect("install triggers");
    engine.push_once().await.expect("first pass");
    let upserts = w.calls_to("/batch/upsert").await;
    let assocs = w.calls_to("/associations/").await;

    // A new process, same files: every capture mode (trigger, scan, updated_at) finds nothing to send.
    let again = w.engine().await.push_once().await.expect("second pass");
    assert_eq!(
        w.calls_to("/batch/upsert").await,
        upserts,
        "no upsert on an unchanged resync"
    );
    assert_eq!(
        w.calls_to("/associations/").await,
        assocs,
        "no association call either"
    );
    assert_eq!(again.upsert_calls, 0);
    assert!(
        again.syncs.iter().all(|s| s.created + s.updated == 0),
        "{again:?}"
    );

    // One edited row is one record in one call.
    w.app_sql("UPDATE customers SET company = 'Acme Robotics GmbH' WHERE id = 1")
        .await;
    let third = w.engine().await.push_once().await.expect("third pass");
    let companies = third
        .syncs
        .iter()
        .find(|s| s.sync == "companies")
        .expect("companies");
    assert_eq!(
        (companies.read, companies.updated),
        (1, 1),
        "trigger capture reads only the edited row"
    );
    assert_eq!(third.upsert_calls, 1);
    assert_eq!(w.objects().await, (4, 3, 250));
}

#[tokio::test]
async fn replaying_after_the_links_were_lost_creates_no_duplicate() {
    let w = world(&customers(), &orders(), SandboxConfig::unlimited()).await;
    let engine = w.engine().await;
    engine.push_once().await.expect("first pass");
    let before = w.objects().await;
    let company1 = engine
        .state
        .link("companies", "1")
        .await
        .expect("link")
        .and_then(|l| l.crm_id);

    // The crash window of the seed pattern: the CRM has the records but we lost their ids.
    sqlx::query("DELETE FROM links")
        .execute(engine.state.pool())
        .await
        .expect("wipe links");
    sqlx::query("DELETE FROM cursors")
        .execute(engine.state.pool())
        .await
        .expect("wipe cursors");
    let replay = w.engine().await.push_once().await.expect("replay");

    assert_eq!(
        w.objects().await,
        before,
        "upsert by our key: nothing duplicated"
    );
    let created: u64 = replay.syncs.iter().map(|s| s.created).sum();
    let updated: u64 = replay.syncs.iter().map(|s| s.updated).sum();
    assert_eq!((created, updated), (0, 4 + 3 + 250));
    let relinked = engine
        .state
        .link("companies", "1")
        .await
        .expect("link")
        .and_then(|l| l.crm_id);
    assert_eq!(
        relinked, company1,
        "the link finds the same CRM record again"
    );
}

#[tokio::test]
async fn a_record_the_crm_rejects_is_isolated_and_the_rest_is_delivered() {
    // An unknown deal stage passes our mapping (it maps to a stage the CRM does not have) but
    // HubSpot refuses the whole batch; splitting isolates the one bad record.
    let w = world(&customers(), &orders(), SandboxConfig::unlimited()).await;
    let mut config = w.config.clone();
    if let Some(f) = config.raw.syncs[2]
        .fields
        .get_mut("status")
        .and_then(|f| f.map.as_mut())
    {
        f.insert("new".into(), "no_such_stage".into());
    }
    w.app_sql("UPDATE orders SET status = 'paid' WHERE id != 7")
        .await;
    let mut engine = w.engine().await;
    engine.config = config;
    let report = engine.push_once().await.expect("pass runs");
    let deals = report
        .syncs
        .iter()
        .find(|s| s.sync == "deals")
        .expect("deals");
    assert_eq!((deals.created, deals.rejected), (249, 1), "{deals:?}");
    let q = engine.state.quarantined("deals").await.expect("quarantine");
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].local_id, "7");
    assert_eq!(q[0].kind, QuarantineKind::Rejected);
    assert!(
        q[0].message.contains("no_such_stage") || q[0].message.contains("INVALID_OPTION"),
        "the CRM's own words: {}",
        q[0].message
    );
}

/// An edit undone before it was delivered: the queued job of the edit must not go out after
/// the row is back to what the CRM holds (the CRM would keep the undone value for good).
#[tokio::test]
async fn an_edit_undone_before_delivery_is_not_sent() {
    use crmsync_store::Coordination;
    let w = world(&customers(), &orders(), SandboxConfig::unlimited()).await;
    let engine = w.engine().await;
    crmsync_engine::install(&engine.config, &engine.app)
        .await
        .expect("install triggers");
    engine.push_once().await.expect("first pass");
    let upserts = w.calls_to("batch/upsert").await;

    // The edit is captured while paused (queued, not sent) ...
    engine.state.set_paused(true).await.expect("pause");
    w.app_sql("UPDATE customers SET company = 'Acme (typo)' WHERE id = 1")
        .await;
    engine.push_once().await.expect("paused pass");
    assert_eq!(
        engine
            .state
            .counts("companies")
            .await
            .expect("counts")
            .pending,
        1,
        "the edit is queued"
    );
    // ... then undone before delivery.
    w.app_sql("UPDATE customers SET company = 'Acme Robotics' WHERE id = 1")
        .await;
    engine.state.set_paused(false).await.expect("resume");
    engine.push_once().await.expect("pass");

    assert_eq!(
        engine
            .state
            .counts("companies")
            .await
            .expect("counts")
            .pending,
        0,
        "nothing is left to send"
    );
    assert_eq!(
        w.calls_to("batch/upsert").await,
        upserts,
        "the undone edit never reached the CRM"
    );
}

/// A write-back the app database refuses (a lock, a trigger) is not dropped: the CRM ids stay
/// pending in the state, the pass goes on, and a later pass writes them.
#[tokio::test]
async fn a_refused_write_back_is_retried_until_it_lands() {
    let w = world(&customers(), &orders(), SandboxConfig::unlimited()).await;
    w.app_sql("ALTER TABLE customers ADD COLUMN hubspot_id TEXT")
        .await;
    w.app_sql(
        "CREATE TRIGGER refuse BEFORE UPDATE OF hubspot_id ON customers BEGIN SELECT RAISE(ABORT, 'locked by a migration'); END",
    )
    .await;
    let mut config = w.config.clone();
    config.raw.syncs[0].write_back_column = Some("hubspot_id".into());
    let engine = w.engine_with(config, |_| {}).await;
    let report = engine.push_once().await.expect("the pass goes on");
    assert!(report.syncs.iter().any(|s| s.created > 0));
    assert_eq!(
        engine
            .state
            .pending_write_backs("companies", 100)
            .await
            .expect("pending")
            .len(),
        4,
        "every company's id waits to be written"
    );

    w.app_sql("DROP TRIGGER refuse").await;
    engine.push_once().await.expect("next pass");
    assert!(
        engine
            .state
            .pending_write_backs("companies", 100)
            .await
            .expect("pending")
            .is_empty()
    );
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&w.config.source_url())
        .await
        .expect("app db");
    let written: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM customers WHERE hubspot_id IS NOT NULL")
            .fetch_one(&mut conn)
            .await
            .expect("count");
    assert_eq!(written, 4, "the ids landed");
}

/// A value the app database cannot give as text (bytes that are not UTF-8) quarantines that
/// record, naming the column; nothing panics and every other record flows.
#[tokio::test]
async fn a_value_that_is_not_text_quarantines_only_its_record() {
    let w = world(&customers(), &orders(), SandboxConfig::unlimited()).await;
    w.app_sql("UPDATE customers SET company = CAST(X'41FF6D65' AS TEXT) WHERE id = 4")
        .await;
    let engine = w.engine().await;
    engine.push_once().await.expect("the pass runs");
    let q = engine
        .state
        .quarantine_entry("companies", "4")
        .await
        .expect("read")
        .expect("record 4 is quarantined");
    assert_eq!(q.kind, QuarantineKind::Invalid);
    assert_eq!(
        (q.rule.as_str(), q.field.as_deref()),
        ("unreadable", Some("company"))
    );
    assert!(q.message.contains("UTF-8"), "{}", q.message);
    let companies = w.objects().await.0;
    assert_eq!(companies, 3, "the other companies arrived");
}
