//! `check` on a source with every kind of problem, against the sandbox over a real socket:
//! each problem is found with its count and examples, and the CRM sees GETs only.

use crmsync_core::config::{Secrets, load_str};
use crmsync_crm::hubspot::{HubspotClient, HubspotConfig};
use crmsync_engine::check::{Severity, check};
use crmsync_sandbox::{Sandbox, SandboxConfig};
use crmsync_store::sqlite::SqliteSource;
use secrecy::SecretString;
use sqlx::{Connection, SqliteConnection};

const CONFIG: &str = r#"
[source]
url = "sqlite://app.db"
[crm]
environment = "sandbox"
kind = "hubspot"
base_url = "BASE"
token_env = "T"
[[sync]]
name = "contacts"
table = "customers"
object = "contacts"
[sync.fields]
email = { crm = "email", transform = ["normalize_email", "lowercase"], validate = ["required", "email"], confirmed_by = "confirmed_at" }
name = { crm = "firstname", validate = { max_length = 10 } }
nickname = { crm = "no_such_property" }
created = { crm = "createdate", transform = [{ datetime = "%d.%m.%Y" }] }
[[sync]]
name = "deals"
table = "orders"
object = "deals"
capture = "updated_at"
updated_at_column = "updated"
[sync.fields]
title = { crm = "dealname", validate = "required" }
amount = { crm = "amount" }
status = { crm = "dealstage", map = { new = "appointmentscheduled", paid = "contractsent", shipped = "shipped_stage" } }
[[sync]]
name = "ghosts"
table = "missing_table"
object = "companies"
[sync.fields]
name = { crm = "name" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_finds_every_kind_of_problem_and_only_reads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("app.db");
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", db.display()))
        .await
        .expect("create app db");
    for sql in [
        "CREATE TABLE customers (id TEXT, email TEXT, confirmed_at TEXT, name TEXT, nickname TEXT, created TEXT)",
        "INSERT INTO customers VALUES ('1', 'ada@example.com', 'y', 'Ada', NULL, '01.02.2026')",
        "INSERT INTO customers VALUES ('2', 'not-an-email', 'y', 'Bob', NULL, NULL)",
        "INSERT INTO customers VALUES ('3', ' ADA@Example.com ', 'y', 'Ada Two', NULL, NULL)",
        "INSERT INTO customers VALUES ('4', 'cy@example.com', NULL, 'Cy', NULL, NULL)",
        "INSERT INTO customers VALUES ('5', 'di@example.com', 'y', 'Dionysius Maximilian', NULL, NULL)",
        "INSERT INTO customers VALUES ('6', 'ed@example.com', 'y', 'Ed', NULL, 'tomorrow')",
        "INSERT INTO customers VALUES ('6', 'ed2@example.com', 'y', 'Ed', NULL, NULL)",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, title TEXT, amount TEXT, status TEXT, currency TEXT, updated TEXT)",
        "INSERT INTO orders VALUES (1, 'A', '10.00', 'new', 'EUR', '2026-01-01 10:00:00')",
        "INSERT INTO orders VALUES (2, 'B', '1.234,50', 'paid', 'EUR', '01.02.2026')",
        "INSERT INTO orders VALUES (3, 'C', '5', 'lost', 'USD', NULL)",
    ] {
        sqlx::query(sql).execute(&mut conn).await.expect("app sql");
    }
    conn.close().await.expect("close");

    let sandbox = Sandbox::start("127.0.0.1:0", SandboxConfig::unlimited())
        .await
        .expect("sandbox starts");
    let text = CONFIG.replace("BASE", &sandbox.base_url());
    let config = load_str(
        &text,
        &dir.path().join("crmsync.toml"),
        Secrets::Required,
        &|_| Some("t".into()),
    )
    .expect("config valid");
    let crm = HubspotClient::new(
        HubspotConfig::new(sandbox.base_url(), SecretString::from("t")),
        None,
    )
    .expect("client");
    let source = SqliteSource::open(&config.source_url())
        .await
        .expect("source");
    let report = check(&config, &crm, &source, 2).await.expect("check runs");

    let find = |sync: &str, kind: &str, rule: Option<&str>| {
        report
            .findings
            .iter()
            .find(|f| f.sync == sync && f.kind == kind && f.rule.as_deref() == rule)
            .unwrap_or_else(|| panic!("no {sync} {kind} {rule:?} in {:#?}", report.findings))
    };
    let bad_email = find("contacts", "invalid", Some("email"));
    assert_eq!((bad_email.count, bad_email.severity), (1, Severity::Error));
    assert_eq!(bad_email.examples[0].key.as_deref(), Some("2"));
    assert_eq!(bad_email.examples[0].value.as_deref(), Some("not-an-email"));
    assert_eq!(find("contacts", "invalid", Some("max_length")).count, 1);
    assert_eq!(find("contacts", "invalid", Some("datetime")).count, 1);
    let held = find("contacts", "held", Some("confirmed_by"));
    assert_eq!((held.count, held.severity), (1, Severity::Note));
    let dup = find("contacts", "duplicate_email", None);
    assert_eq!((dup.count, dup.severity), (1, Severity::Warning));
    assert_eq!(dup.examples[0].key.as_deref(), Some("3"));
    assert_eq!(find("contacts", "duplicate_key", None).count, 1);
    let missing = find("contacts", "property_missing", None);
    assert_eq!(missing.field.as_deref(), Some("nickname"));
    assert_eq!(
        find("contacts", "id_property", None).severity,
        Severity::Note
    );

    let stage = find("deals", "unknown_option", None);
    assert!(
        stage.message.contains("`shipped_stage`"),
        "{}",
        stage.message
    );
    assert_eq!(
        find("deals", "invalid", Some("map")).examples[0]
            .key
            .as_deref(),
        Some("3")
    );
    let order = find("deals", "updated_at_order", None);
    assert_eq!((order.count, order.severity), (1, Severity::Error));
    assert_eq!(order.examples[0].value.as_deref(), Some("01.02.2026"));
    let null = find("deals", "updated_at_null", None);
    assert_eq!(
        (null.count, null.examples[0].key.as_deref()),
        (1, Some("3"))
    );
    let currency = find("deals", "currency_unmapped", None);
    assert_eq!(currency.severity, Severity::Warning);
    assert!(
        currency.message.contains("deal_currency_code"),
        "{}",
        currency.message
    );
    let amount = find("deals", "crm_type", Some("amount"));
    assert_eq!(amount.examples[0].value.as_deref(), Some("1.234,50"));
    assert!(
        find("ghosts", "source_schema", None)
            .message
            .contains("missing_table")
    );

    let contacts = &report.syncs[0];
    assert_eq!(
        (contacts.rows, contacts.invalid, contacts.held),
        (7, 3, 1),
        "{contacts:?}"
    );
    assert!(report.has_problems());

    let stats: serde_json::Value = reqwest::get(format!("{}/_sandbox/stats", sandbox.base_url()))
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    let calls = stats["calls"].as_array().cloned().unwrap_or_default();
    assert!(!calls.is_empty());
    assert!(
        calls.iter().all(|c| c["method"] == "GET"),
        "GETs only: {calls:?}"
    );
    assert_eq!(stats["objects"]["contacts"], 0);
    sandbox.shutdown().await;
}
