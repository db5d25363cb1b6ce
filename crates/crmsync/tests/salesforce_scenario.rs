//! The binary with `kind = "salesforce"` against the sandbox's Salesforce flavour: a small
//! order system (customers as Accounts and Contacts, orders as Opportunities) goes through
//! `check` and `sync` once, every child linked to its Account inside its own write; a second
//! `sync` creates nothing; a customer with no last name is refused alone, with Salesforce's
//! words; and the secrets never reach the output.

mod support;

use crmsync_sandbox::{SalesforceConfig, SalesforceSandbox};
use serde_json::Value;
use sqlx::Connection;
use support::cli::run_with;
use support::wait_for;

const CONFIG: &str = r#"
[source]
url = "sqlite://app.db"
[crm]
environment = "sandbox"
kind = "salesforce"
login_url = "BASE"
client_id = "crmsync-sandbox"
client_secret_env = "SF_CLIENT_SECRET"
refresh_token_env = "SF_REFRESH_TOKEN"
[[sync]]
name = "companies"
table = "customers"
object = "companies"
id_property = "crmsync_id__c"
capture = "scan"
[sync.fields]
company = { crm = "Name", validate = "required" }
[[sync]]
name = "contacts"
table = "customers"
object = "contacts"
id_property = "crmsync_id__c"
capture = "scan"
associate = { id = "companies" }
[sync.fields]
email = { crm = "Email", transform = ["trim", "lowercase"], validate = "email" }
last_name = { crm = "LastName" }
[[sync]]
name = "deals"
table = "orders"
object = "deals"
id_property = "crmsync_id__c"
capture = "scan"
associate = { customer_id = "companies" }
[sync.fields]
title = { crm = "Name" }
status = { crm = "StageName", map = { new = "Prospecting", paid = "Closed Won" } }
amount = { crm = "Amount" }
closes = { crm = "CloseDate", constant = "2027-01-31" }
"#;

const SECRET: &str = "sandbox-secret";
const REFRESH: &str = "sandbox-refresh-token";

async fn app_db(dir: &std::path::Path, customers: usize) {
    let url = format!("sqlite://{}?mode=rwc", dir.join("app.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("app db");
    sqlx::query(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, company TEXT, email TEXT, last_name TEXT)",
    )
    .execute(&mut conn)
    .await
    .expect("ddl");
    sqlx::query("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, title TEXT, status TEXT, amount REAL)")
        .execute(&mut conn)
        .await
        .expect("ddl");
    for i in 1..=customers {
        // Customer 3 has no last name: Salesforce refuses that contact, and only that one.
        let last = (i != 3).then(|| format!("Builder {i}"));
        sqlx::query("INSERT INTO customers VALUES (?, ?, ?, ?)")
            .bind(i as i64)
            .bind(format!("Robot Works {i}"))
            .bind(format!("buyer{i}@example.com"))
            .bind(last)
            .execute(&mut conn)
            .await
            .expect("customer");
        for j in 0..2 {
            let id = (i * 10 + j) as i64;
            sqlx::query("INSERT INTO orders VALUES (?, ?, ?, ?, ?)")
                .bind(id)
                .bind(i as i64)
                .bind(format!("Order {id}"))
                .bind(if j == 0 { "new" } else { "paid" })
                .bind(1299.5 + id as f64)
                .execute(&mut conn)
                .await
                .expect("order");
        }
    }
    conn.close().await.expect("close");
}

/// Runs SOQL against the org with a token of its own.
async fn soql(org: &SalesforceSandbox, q: &str) -> Value {
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{}/services/oauth2/token", org.base_url()))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "crmsync-sandbox"),
            ("client_secret", SECRET),
            ("username", "sandbox@crmsync.local"),
            ("password", "sandbox"),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token json");
    let token = token["access_token"].as_str().expect("access token");
    http.get(format!("{}/services/data/v59.0/queryAll", org.base_url()))
        .query(&[("q", q)])
        .bearer_auth(token)
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("query json")
}

fn total(v: &Value) -> u64 {
    v["totalSize"].as_u64().unwrap_or(u64::MAX)
}

#[tokio::test]
async fn an_order_system_reaches_salesforce_once_linked_in_its_own_writes() {
    let org = SalesforceSandbox::start("127.0.0.1:0", SalesforceConfig::unlimited())
        .await
        .expect("org starts");
    let dir = tempfile::tempdir().expect("dir");
    app_db(dir.path(), 40).await;
    let config = dir.path().join("crmsync.toml");
    std::fs::write(&config, CONFIG.replace("BASE", &org.base_url())).expect("config");
    let cfg = config.display().to_string();
    let envs = [("SF_CLIENT_SECRET", SECRET), ("SF_REFRESH_TOKEN", REFRESH)];

    let check = run_with(["check", "--config", &cfg], None, &envs).await;
    assert!(
        check.stdout.contains("companies") && check.stdout.contains("deals"),
        "{check:?}"
    );
    assert!(!check.stdout.contains("required_missing"), "{check:?}");

    let first = run_with(["sync", "--once", "--config", &cfg], None, &envs).await;
    assert_eq!(
        first.code, 1,
        "one contact is refused, so the run reports it: {first:?}"
    );
    for out in [&first.stdout, &first.stderr, &check.stdout, &check.stderr] {
        assert!(!out.contains(SECRET) && !out.contains(REFRESH), "{out}");
    }
    let contacts_line = first
        .stdout
        .lines()
        .find(|l| l.starts_with("contacts"))
        .expect("a contacts line");
    let cols: Vec<&str> = contacts_line.split_whitespace().collect();
    assert_eq!(cols.get(2), Some(&"39"), "created: {contacts_line}");
    assert_eq!(cols.get(7), Some(&"1"), "rejected: {contacts_line}");
    assert!(
        first.stdout.contains("0 association batches"),
        "lookups ride in the writes: {}",
        first.stdout
    );
    // The refused contact's story names Salesforce's own error and the field.
    let story = run_with(["explain", "--config", &cfg, "contacts", "3"], None, &envs).await;
    assert!(
        story.stdout.contains("REQUIRED_FIELD_MISSING") && story.stdout.contains("LastName"),
        "{story:?}"
    );

    let accounts = soql(&org, "SELECT Id FROM Account WHERE IsDeleted = false").await;
    assert_eq!(total(&accounts), 40, "{accounts}");
    let contacts = soql(
        &org,
        "SELECT Id, AccountId FROM Contact WHERE IsDeleted = false",
    )
    .await;
    assert_eq!(
        total(&contacts),
        39,
        "all but the one without a last name: {contacts}"
    );
    let linked = soql(&org, "SELECT Id FROM Contact WHERE AccountId != null").await;
    assert_eq!(total(&linked), 39, "every contact is linked to its account");
    let deals = soql(
        &org,
        "SELECT Id FROM Opportunity WHERE AccountId != null AND StageName = 'Closed Won'",
    )
    .await;
    assert_eq!(total(&deals), 40, "{deals}");
    let all_deals = soql(&org, "SELECT Id FROM Opportunity").await;
    assert_eq!(total(&all_deals), 80);

    // Nothing changed: a second sync creates nothing.
    let again = run_with(["sync", "--once", "--config", &cfg], None, &envs).await;
    assert_ne!(again.code, 2, "{again:?}");
    assert_eq!(total(&soql(&org, "SELECT Id FROM Account").await), 40);
    assert_eq!(total(&soql(&org, "SELECT Id FROM Contact").await), 39);
    assert_eq!(total(&soql(&org, "SELECT Id FROM Opportunity").await), 80);
    for (sync, unchanged) in [("companies", "40"), ("contacts", "39"), ("deals", "80")] {
        let line = again
            .stdout
            .lines()
            .find(|l| l.starts_with(sync))
            .unwrap_or_default();
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols.get(2), Some(&"0"), "nothing created: {line}");
        assert_eq!(cols.get(4), Some(&unchanged), "unchanged: {line}");
    }
    // Only the refused contact is tried again (it may have been fixed in the org's rules).
    assert!(
        again.stdout.contains("carrying 1 records"),
        "{}",
        again.stdout
    );
}

#[tokio::test]
async fn the_demo_syncs_the_order_system_into_a_salesforce_org() {
    let dir = tempfile::tempdir().expect("dir");
    let demo = dir.path().join("demo");
    let demo_dir = demo.display().to_string();
    let out = run_with(
        [
            "demo",
            "--crm",
            "salesforce",
            "--customers",
            "300",
            "--orders",
            "600",
            "--dir",
            &demo_dir,
        ],
        None,
        &[],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("The sandbox CRM now holds 300 Accounts"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("0 association batches"),
        "{}",
        out.stdout
    );
    let written = std::fs::read_to_string(demo.join("crmsync.toml")).expect("config kept");
    assert!(written.contains("kind = \"salesforce\""));
    assert!(
        !written.contains(SECRET) && !written.contains(REFRESH),
        "no secret in the file"
    );
}

async fn app_value(dir: &std::path::Path, sql: &'static str) -> Option<String> {
    let url = format!("sqlite://{}", dir.join("app.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.ok()?;
    sqlx::query_scalar::<_, Option<String>>(sql)
        .fetch_one(&mut conn)
        .await
        .ok()
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_brings_a_salesforce_edit_and_deletion_into_the_app_without_echo() {
    let org = SalesforceSandbox::start("127.0.0.1:0", SalesforceConfig::unlimited())
        .await
        .expect("org starts");
    let base = org.base_url();
    let dir = tempfile::tempdir().expect("dir");
    {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("app db");
        sqlx::query(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, company TEXT, crm_deleted_at TEXT)",
        )
        .execute(&mut conn)
        .await
        .expect("ddl");
        sqlx::query("INSERT INTO customers (id, company) VALUES (1, 'Acme'), (2, 'Globex')")
            .execute(&mut conn)
            .await
            .expect("rows");
    }
    let cfg = dir.path().join("crmsync.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[source]
url = "sqlite://app.db"
[crm]
environment = "sandbox"
kind = "salesforce"
login_url = "{base}"
client_id = "crmsync-sandbox"
client_secret_env = "SF_CLIENT_SECRET"
refresh_token_env = "SF_REFRESH_TOKEN"
[run]
poll_interval_ms = 200
archive_check_interval_ms = 200
[[sync]]
name = "companies"
table = "customers"
object = "companies"
id_property = "crmsync_id__c"
on_crm_delete = "flag"
crm_deleted_column = "crm_deleted_at"
[sync.fields]
company = {{ crm = "Name", direction = "both" }}
"#
        ),
    )
    .expect("config");
    let cfg_s = cfg.display().to_string();
    let envs = [("SF_CLIENT_SECRET", SECRET), ("SF_REFRESH_TOKEN", REFRESH)];
    let install = run_with(["install", "--config", &cfg_s], None, &envs).await;
    assert_eq!(install.code, 0, "{install:?}");
    let mut run = std::process::Command::new(assert_cmd::cargo::cargo_bin!("crmsync"))
        .args(["run", "--config", &cfg_s])
        .envs(envs)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run starts");

    let acme: String = wait_for(30, "the accounts in the org", || {
        let org = &org;
        async move {
            let v = soql(
                org,
                "SELECT Id, crmsync_id__c FROM Account WHERE IsDeleted = false",
            )
            .await;
            (total(&v) == 2).then_some(())?;
            v["records"]
                .as_array()?
                .iter()
                .find(|r| r["crmsync_id__c"] == "1")
                .and_then(|r| r["Id"].as_str().map(str::to_string))
        }
    })
    .await;
    let globex = soql(&org, "SELECT Id FROM Account WHERE crmsync_id__c = '2'").await["records"][0]
        ["Id"]
        .as_str()
        .expect("globex id")
        .to_string();

    // A person renames Acme and deletes Globex in Salesforce.
    let http = reqwest::Client::new();
    let ui: Value = http
        .post(format!("{base}/_sandbox/ui-token"))
        .send()
        .await
        .expect("ui token")
        .json()
        .await
        .expect("ui json");
    let ui_token = ui["access_token"].as_str().expect("token").to_string();
    let ui_user = ui["user_id"].as_str().expect("user").to_string();
    let renamed = http
        .patch(format!(
            "{base}/services/data/v59.0/sobjects/Account/{acme}"
        ))
        .bearer_auth(&ui_token)
        .json(&serde_json::json!({"Name": "Acme Robotics"}))
        .send()
        .await
        .expect("rename");
    assert_eq!(renamed.status(), 204);
    let deleted = http
        .delete(format!(
            "{base}/services/data/v59.0/sobjects/Account/{globex}"
        ))
        .bearer_auth(&ui_token)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 204);

    wait_for(30, "the rename in the app", || async {
        let name = app_value(dir.path(), "SELECT company FROM customers WHERE id = 1").await?;
        (name == "Acme Robotics").then_some(())
    })
    .await;
    wait_for(30, "the deletion flagged in the app", || async {
        app_value(
            dir.path(),
            "SELECT crm_deleted_at FROM customers WHERE id = 2",
        )
        .await
    })
    .await;
    assert_eq!(
        app_value(dir.path(), "SELECT company FROM customers WHERE id = 2")
            .await
            .as_deref(),
        Some("Globex"),
        "a deletion in the CRM never deletes the app's row"
    );
    // No echo: the renamed account was last written by the person, not written back by us.
    let acme_row = soql(
        &org,
        &format!("SELECT Name, LastModifiedById FROM Account WHERE Id = '{acme}'"),
    )
    .await;
    assert_eq!(acme_row["records"][0]["Name"], "Acme Robotics");
    assert_eq!(
        acme_row["records"][0]["LastModifiedById"],
        ui_user.as_str(),
        "{acme_row}"
    );

    let kill = std::process::Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let code = wait_for(30, "run to stop on SIGTERM", || {
        let status = run.try_wait().ok().flatten();
        async move { status }
    })
    .await;
    assert_eq!(code.code(), Some(0), "{code:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_backfill_neither_duplicates_nor_loses_on_salesforce() {
    let org = SalesforceSandbox::start("127.0.0.1:0", SalesforceConfig::unlimited())
        .await
        .expect("org starts");
    let base = org.base_url();
    let http = reqwest::Client::new();
    // Slow answers, so a kill lands while batches are in flight.
    let slowed = http
        .put(format!("{base}/_sandbox/faults"))
        .json(&serde_json::json!({"latency_ms": 40}))
        .send()
        .await
        .expect("faults");
    assert!(slowed.status().is_success(), "{slowed:?}");
    let dir = tempfile::tempdir().expect("dir");
    app_db(dir.path(), 600).await;
    let config = dir.path().join("crmsync.toml");
    std::fs::write(&config, CONFIG.replace("BASE", &base)).expect("config");
    let cfg = config.display().to_string();
    let envs = [("SF_CLIENT_SECRET", SECRET), ("SF_REFRESH_TOKEN", REFRESH)];
    let total_calls = || async {
        let v: Value = reqwest::get(format!("{base}/_sandbox/stats"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        v["total"].as_u64()
    };
    let mut kills = 0;
    for round in 0..5u64 {
        let before = total_calls().await.unwrap_or(0);
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("crmsync"))
            .args(["sync", "--once", "--config", &cfg])
            .envs(envs)
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("sync starts");
        // Kill after a few calls: 3, 5, 7, ... beyond what the org had seen.
        let target = before + 3 + 2 * round;
        let finished = wait_for(60, "progress or the end of the sync", || {
            let done = child.try_wait().ok().flatten();
            async move {
                if let Some(status) = done {
                    return Some(Some(status));
                }
                (total_calls().await? >= target).then_some(None)
            }
        })
        .await;
        match finished {
            Some(status) => {
                // Exit 1: the contact without a last name is refused, as in the first test.
                assert_eq!(status.code(), Some(1), "an uninterrupted run finishes");
                break;
            }
            None => {
                child.kill().expect("SIGKILL");
                child.wait().expect("reaped");
                kills += 1;
            }
        }
    }
    assert!(kills >= 1, "at least one run was killed mid-way");
    let last = run_with(["sync", "--once", "--config", &cfg], None, &envs).await;
    assert_eq!(last.code, 1, "{last:?}");
    assert_eq!(
        total(&soql(&org, "SELECT Id FROM Account").await),
        600,
        "one Account per customer, after {kills} kills"
    );
    assert_eq!(total(&soql(&org, "SELECT Id FROM Contact").await), 599);
    assert_eq!(
        total(&soql(&org, "SELECT Id FROM Contact WHERE AccountId != null").await),
        599
    );
    assert_eq!(total(&soql(&org, "SELECT Id FROM Opportunity").await), 1200);
    assert_eq!(
        total(&soql(&org, "SELECT Id FROM Opportunity WHERE AccountId != null").await),
        1200
    );
}
