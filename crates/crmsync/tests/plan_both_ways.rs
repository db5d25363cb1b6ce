//! `crmsync plan --records --json` on a two-way sync after edits on both sides lists exactly
//! the records the following round of `crmsync run` changes, and changes nothing itself.
//!
//! A demo-like setup on SQLite (customers -> HubSpot companies, the name two-way with
//! `conflict = "review"`, the city push-only, CRM creations inserted, CRM deletions flagged),
//! a sandbox over a real socket, an initial `run --rounds 1`; then the app updates two rows,
//! inserts one and deletes one, and "someone in HubSpot" renames one company, renames the
//! company the app renamed too (a conflict), creates one and deletes one. The plan's
//! (direction, record, action) set is compared with what the round did, read from the app
//! database, the state database and the sandbox's records; the plan made no write call (the
//! sandbox's stats) and left the app and state databases as they were.

mod support;

use crmsync_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};
use sqlx::{Connection, Row, SqliteConnection};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use support::cli::run_with;

async fn db(path: &Path) -> SqliteConnection {
    SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .expect("db opens")
}

async fn exec(path: &Path, sql: &'static str) {
    let mut c = db(path).await;
    sqlx::raw_sql(sql).execute(&mut c).await.expect(sql);
}

/// Every row of every table but the call log and the budget's counters, as text.
async fn state_dump(path: &Path) -> BTreeMap<String, Vec<String>> {
    let mut c = db(path).await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN ('calls', 'call_days', 'call_slots') ORDER BY name",
    )
    .fetch_all(&mut c)
    .await
    .expect("tables");
    let mut out = BTreeMap::new();
    // The names come from SQLite's own catalogue of a database this test made.
    for t in tables {
        let cols: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT name FROM pragma_table_info('{t}')"
        )))
        .fetch_all(&mut c)
        .await
        .expect("columns");
        let expr = cols
            .iter()
            .map(|c| format!("quote(\"{c}\")"))
            .collect::<Vec<_>>()
            .join(" || '|' || ");
        let mut rows: Vec<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT {expr} FROM \"{t}\"")))
                .fetch_all(&mut c)
                .await
                .expect("rows");
        if t == "sqlite_sequence" {
            // The call log's row counter moves with the calls.
            rows.retain(|r| !r.starts_with("'calls'"));
        }
        rows.sort();
        out.insert(t, rows);
    }
    out
}

/// The app's customers: id -> (company_name, city, crm_deleted_at, hubspot_company_id).
async fn customers(path: &Path) -> BTreeMap<i64, [Option<String>; 4]> {
    let mut c = db(path).await;
    sqlx::query("SELECT id, company_name, city, crm_deleted_at, hubspot_company_id FROM customers")
        .fetch_all(&mut c)
        .await
        .expect("customers")
        .into_iter()
        .map(|r| (r.get::<i64, _>(0), [r.get(1), r.get(2), r.get(3), r.get(4)]))
        .collect()
}

/// Rows of one state query as tuples of text.
async fn state_rows(path: &Path, sql: &'static str) -> BTreeSet<Vec<String>> {
    let mut c = db(path).await;
    sqlx::query(sql)
        .fetch_all(&mut c)
        .await
        .expect(sql)
        .into_iter()
        .map(|r| (0..r.len()).map(|i| r.get::<String, _>(i)).collect())
        .collect()
}

/// The CRM's live companies: id -> (name, city, our key).
async fn companies(http: &reqwest::Client, base: &str) -> BTreeMap<String, [String; 3]> {
    let v: Value = http
        .get(format!(
            "{base}/crm/v3/objects/companies?limit=100&properties=name,city,crmsync_customer_id"
        ))
        .bearer_auth("ui-token")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let text = |r: &Value, p: &str| r["properties"][p].as_str().unwrap_or("").to_string();
    v["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["id"].as_str().expect("id").to_string(),
                [
                    text(r, "name"),
                    text(r, "city"),
                    text(r, "crmsync_customer_id"),
                ],
            )
        })
        .collect()
}

async fn stats(http: &reqwest::Client, base: &str) -> BTreeMap<(String, String), u64> {
    let v: Value = http
        .get(format!("{base}/_sandbox/stats"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    let mut out = BTreeMap::new();
    for c in v["calls"].as_array().expect("calls") {
        *out.entry((
            c["method"].as_str().unwrap_or("").to_string(),
            c["endpoint"].as_str().unwrap_or("").to_string(),
        ))
        .or_default() += c["count"].as_u64().unwrap_or(0);
    }
    out
}

async fn ui(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> Value {
    let mut r = http.request(method, url).bearer_auth("ui-token");
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.expect("ui call");
    assert!(resp.status().is_success(), "{:?}", resp.status());
    resp.json().await.unwrap_or(Value::Null)
}

type Change = (String, String, String);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_lists_exactly_what_the_next_round_changes_both_ways() {
    let mut sc = SandboxConfig::unlimited();
    sc.other_tokens.insert("ui-token".into(), 7);
    let sandbox = Sandbox::start("127.0.0.1:0", sc).await.expect("sandbox");
    let base = sandbox.base_url();
    let http = reqwest::Client::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let app = dir.path().join("app.db");
    let state = dir.path().join("state.db");
    exec(
        &app,
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, company_name TEXT, city TEXT, hubspot_company_id TEXT, crm_deleted_at TEXT);
         INSERT INTO customers (id, company_name, city) VALUES
           (1, 'Acme', 'Berlin'), (2, 'Globex', 'Berlin'), (3, 'Initech', 'Austin'),
           (4, 'Hooli', 'Palo Alto'), (5, 'Umbrella', 'Raccoon City'), (6, 'Soylent', 'New York');",
    )
    .await;
    let cfg = dir.path().join("crmsync.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[source]
url = "sqlite://app.db"
[state]
url = "sqlite://state.db"
[crm]
environment = "sandbox"
kind = "hubspot"
base_url = "{base}"
token_env = "HUBSPOT_ACCESS_TOKEN"
[run]
poll_interval_ms = 600000
archive_check_interval_ms = 1
reconcile_interval_ms = 0
[[sync]]
name = "companies"
table = "customers"
object = "companies"
id_property = "crmsync_customer_id"
capture = "trigger"
write_back_column = "hubspot_company_id"
on_crm_create = "insert"
on_crm_delete = "flag"
crm_deleted_column = "crm_deleted_at"
[sync.fields]
company_name = {{ crm = "name", direction = "both", conflict = "review" }}
city = {{ crm = "city" }}
"#
        ),
    )
    .expect("config");
    let d = Some(dir.path());
    let cli = |args: &'static [&'static str]| run_with(args.iter().copied(), d, &[]);
    let out = cli(&["install", "--config", "crmsync.toml"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = cli(&["run", "--rounds", "1", "--config", "crmsync.toml"]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let crm = companies(&http, &base).await;
    assert_eq!(crm.len(), 6, "the initial round pushed every row: {crm:?}");
    let crm_of = |key: &str| {
        crm.iter()
            .find(|(_, v)| v[2] == key)
            .map(|(id, _)| id.clone())
            .expect("linked")
    };
    let (c1, c5, c6) = (crm_of("1"), crm_of("5"), crm_of("6"));

    // Edits on both sides.
    exec(
        &app,
        "UPDATE customers SET company_name = 'Acme Robotics' WHERE id = 1;
         UPDATE customers SET city = 'Hamburg' WHERE id = 2;
         INSERT INTO customers (id, company_name, city) VALUES (7, 'Stark', 'Malibu');
         DELETE FROM customers WHERE id = 3;",
    )
    .await;
    let patch = |id: &str, name: &str| {
        ui(
            &http,
            reqwest::Method::PATCH,
            format!("{base}/crm/v3/objects/companies/{id}"),
            Some(json!({ "properties": { "name": name } })),
        )
    };
    patch(&c1, "Acme Industries").await;
    patch(&c5, "Umbrella Corp").await;
    let made = ui(
        &http,
        reqwest::Method::POST,
        format!("{base}/crm/v3/objects/companies"),
        Some(json!({ "properties": { "name": "Wayne Enterprises" } })),
    )
    .await;
    let wayne = made["id"].as_str().expect("created id").to_string();
    ui(
        &http,
        reqwest::Method::DELETE,
        format!("{base}/crm/v3/objects/companies/{c6}"),
        None,
    )
    .await;

    // The plan, read-only.
    let (state_before, app_before, stats_before) = (
        state_dump(&state).await,
        customers(&app).await,
        stats(&http, &base).await,
    );
    let out = cli(&["plan", "--records", "--json", "--config", "crmsync.toml"]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let plan: Value = serde_json::from_str(&out.stdout).expect("plan JSON");
    assert_eq!(
        state_dump(&state).await,
        state_before,
        "the plan wrote the state"
    );
    assert_eq!(customers(&app).await, app_before, "the plan wrote the app");
    let stats_after = stats(&http, &base).await;
    let mut plan_calls = 0;
    for ((method, endpoint), n) in &stats_after {
        let new = n - stats_before
            .get(&(method.clone(), endpoint.clone()))
            .copied()
            .unwrap_or(0);
        if new == 0 {
            continue;
        }
        plan_calls += new;
        assert!(
            method == "GET" || endpoint.ends_with("/search") || endpoint.ends_with("/batch/read"),
            "the plan wrote to the CRM: {method} {endpoint}"
        );
    }
    assert!(plan_calls > 0, "a two-way plan reads the CRM");
    assert!(
        plan["syncs"][0]["inbound"].is_object(),
        "inbound known: {}",
        plan["syncs"][0]
    );

    let planned: BTreeSet<Change> = plan["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| {
            let direction = r["direction"].as_str()?.to_string();
            let action = r["action"].as_str()?.to_string();
            let changes = matches!(action.as_str(), "create" | "update" | "conflict" | "delete")
                || (direction == "inbound" && action == "held");
            let key = if direction == "inbound" {
                r["crm_id"].as_str()?
            } else {
                r["local_id"].as_str()?
            };
            changes.then(|| (direction.clone(), key.to_string(), action))
        })
        .collect();
    let expected: BTreeSet<Change> = [
        ("outbound", "2", "update"),
        ("outbound", "7", "create"),
        ("inbound", c1.as_str(), "conflict"),
        ("inbound", c5.as_str(), "update"),
        ("inbound", wayne.as_str(), "create"),
        ("inbound", c6.as_str(), "delete"),
    ]
    .into_iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(planned, expected, "{}", out.stdout);
    // The update names the field that changes.
    let update = plan["records"]
        .as_array()
        .expect("records")
        .iter()
        .find(|r| r["direction"] == "outbound" && r["local_id"] == "2" && r["action"] == "update")
        .expect("the update of 2");
    assert_eq!(update["fields"], json!(["city"]), "{update}");

    // The round itself.
    let crm_before = companies(&http, &base).await;
    let conflicts_before = state_rows(&state, "SELECT crm_id FROM conflicts").await;
    let deletions_before = state_rows(&state, "SELECT crm_id, state FROM crm_deletions").await;
    let out = cli(&["run", "--rounds", "1", "--config", "crmsync.toml"]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let links: BTreeMap<String, String> = state_rows(
        &state,
        "SELECT local_id, crm_id FROM links WHERE crm_id IS NOT NULL",
    )
    .await
    .into_iter()
    .map(|r| (r[0].clone(), r[1].clone()))
    .collect();
    let mut did: BTreeSet<Change> = BTreeSet::new();
    let change = |d: &str, k: &str, a: &str| (d.to_string(), k.to_string(), a.to_string());
    let app_after = customers(&app).await;
    for (id, after) in &app_after {
        let crm_id = links.get(&id.to_string()).cloned().unwrap_or_default();
        match app_before.get(id) {
            None => {
                did.insert(change("inbound", &crm_id, "create"));
            }
            // Name and city are what the round may write; the deletion time is a deletion.
            Some(before) if before[..2] != after[..2] => {
                did.insert(change("inbound", &crm_id, "update"));
            }
            _ => {}
        }
    }
    for r in state_rows(&state, "SELECT crm_id FROM conflicts").await {
        if !conflicts_before.contains(&r) {
            did.insert(change("inbound", &r[0], "conflict"));
        }
    }
    for r in state_rows(&state, "SELECT crm_id, state FROM crm_deletions").await {
        if !deletions_before.contains(&r) {
            let action = if r[1] == "held" { "held" } else { "delete" };
            did.insert(change("inbound", &r[0], action));
        }
    }
    let crm_after = companies(&http, &base).await;
    for (id, after) in &crm_after {
        match crm_before.get(id) {
            None => {
                did.insert(change("outbound", &after[2], "create"));
            }
            Some(before) if before[..2] != after[..2] => {
                did.insert(change("outbound", &after[2], "update"));
            }
            _ => {}
        }
    }
    assert_eq!(
        did, planned,
        "the round did other than planned\n{}",
        out.stderr
    );
    // And the deletion was the flag the plan announced.
    assert!(app_after[&6][2].is_some(), "{app_after:?}");
}
