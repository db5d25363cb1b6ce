//! `crmsync run` in webhook mode, end to end: the real binary on a directory made by `crmsync
//! demo`, against a sandbox that delivers v3-signed change notifications to the run's receiver.
//! Polling and reconciliation are off (`[run] poll = false`, `reconcile_interval_ms = 0`), so a
//! CRM change can only reach the app through a webhook. Proven here, with the sandbox's call
//! statistics rather than timings:
//! - a company renamed in the CRM UI reaches the app row with one batch read and no write;
//! - an app edit is pushed with one write, and the events our own write causes come back, are
//!   stored and applied without any call (no echo);
//! - a company archived in the CRM flags the app row (`crm_deleted_column`) and `crmsync
//!   deletions` lists it;
//! - a company merged into a CRM-created one re-points the link to the survivor, and the next
//!   app edit updates the survivor: no duplicate company.
//!
//! crmsync's own calls are the batch, search and association endpoints; the test itself only
//! uses single-record endpoints (GET, PATCH, DELETE, create, merge), so the two never mix in
//! the counts. Every wait is a condition checked every 50 ms under a deadline.

mod support;

use support::wait_for;

use crmsync_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};
use sqlx::{Connection, SqliteConnection};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// The client secret the sandbox signs with, handed to `crmsync run` in this variable.
const SECRET_ENV: &str = "CRMSYNC_TEST_WEBHOOK_SECRET";
const SECRET: &str = "s3cret-of-the-hubspot-app";
/// The token of a HubSpot user editing in the UI (sandbox `other_tokens`).
const UI_TOKEN: &str = "ui-token";
/// Customers `crmsync demo` generates here.
const CUSTOMERS: u64 = 20;

fn crmsync() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin!("crmsync"));
    c.env("HUBSPOT_ACCESS_TOKEN", "test-token")
        .env_remove("RUST_LOG");
    c
}

/// Runs a short-lived command off the runtime's threads (the sandbox serves on them).
async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("crmsync runs"))
        .await
        .expect("join")
}

async fn connect(path: &Path, mode: &str) -> SqliteConnection {
    SqliteConnection::connect(&format!("sqlite://{}?mode={mode}", path.display()))
        .await
        .expect("sqlite")
}

/// Call counts per (method, endpoint template, status), from `GET /_sandbox/stats`.
type Calls = BTreeMap<(String, String, u64), u64>;

/// A demo directory synced once, and `crmsync run` on it with a webhook receiver the sandbox
/// delivers to. The run is killed when dropped.
struct Demo {
    run: Child,
    /// What `crmsync run` wrote to stderr so far (for failure messages).
    log: Arc<Mutex<Vec<String>>>,
    dir: PathBuf,
    config: PathBuf,
    base: String,
    http: reqwest::Client,
    _temp: tempfile::TempDir,
    _sandbox: Sandbox,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.run.kill();
        let _ = self.run.wait();
    }
}

impl Demo {
    async fn start() -> Demo {
        let mut sc = SandboxConfig::unlimited();
        sc.other_tokens.insert(UI_TOKEN.into(), 7);
        let sandbox = Sandbox::start("127.0.0.1:0", sc).await.expect("sandbox");
        let base = sandbox.base_url();
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().join("demo");
        let mut demo = crmsync();
        demo.arg("demo")
            .arg("--dir")
            .arg(&dir)
            .args(["--customers", &CUSTOMERS.to_string(), "--orders", "20"])
            .args(["--crm-url", &base]);
        let out = output(demo).await;
        assert!(
            out.status.success(),
            "crmsync demo: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );

        // The demo's config, switched to webhooks only, with deletions flagged in a new column.
        let config = dir.join("crmsync.toml");
        let text = std::fs::read_to_string(&config).expect("demo config");
        // The demo's `[run]` table (up to the blank line after it) is replaced; the demo already
        // flags deleted companies into `crm_deleted_at`.
        assert!(
            text.contains("crm_deleted_column = \"crm_deleted_at\""),
            "{text}"
        );
        let start = text.find("[run]\n").expect("the demo has a [run] table");
        let end = start
            + text[start..]
                .find("\n\n")
                .expect("a blank line after [run]")
            + 1;
        let text = format!(
            "{}[run]\n# Rounds (pushes) every 200 ms; CRM changes come only by webhook.\n\
             poll_interval_ms = 200\npoll = false\nreconcile_interval_ms = 0\n\n\
             [webhooks]\nlisten = \"127.0.0.1:0\"\nsecret_env = \"{SECRET_ENV}\"\n{}",
            &text[..start],
            &text[end..]
        );
        std::fs::write(&config, text).expect("config");

        let mut run = crmsync()
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env(SECRET_ENV, SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("crmsync run starts");
        let stderr = run.stderr.take().expect("stderr piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let lines = log.clone();
        // Keeps draining stderr until the process ends, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().expect("log").push(line.clone());
                let _ = tx.send(line);
            }
        });
        let receiver = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let line = rx.recv_timeout(left).ok()?;
                if let Some(rest) = line.strip_prefix("receiving HubSpot webhooks on ") {
                    return rest.split_whitespace().next().map(str::to_string);
                }
            }
        })
        .await
        .expect("join");
        let Some(receiver) = receiver else {
            panic!("no receiver started: {:#?}", log.lock().expect("log"));
        };

        // HubSpot's side: the app's webhook subscriptions, signed v3 with the client secret,
        // batched for the default 50 ms.
        let http = reqwest::Client::new();
        let put = http
            .put(format!("{base}/_sandbox/webhooks"))
            .json(&json!({
                "target_url": receiver,
                "client_secret": SECRET,
                "signature_version": "v3",
                "flush_ms": 50,
                "subscriptions": [
                    "company.creation", "company.propertyChange", "company.deletion",
                    "company.merge", "contact.propertyChange", "contact.deletion",
                    "contact.merge"
                ]
            }))
            .send()
            .await
            .expect("configure webhooks");
        assert!(put.status().is_success(), "{:?}", put.text().await);
        Demo {
            run,
            log,
            config,
            base,
            http,
            dir,
            _temp: temp,
            _sandbox: sandbox,
        }
    }

    fn app_db(&self) -> PathBuf {
        self.dir.join("orders.db")
    }

    fn state_db(&self) -> PathBuf {
        self.dir.join("crmsync-state.db")
    }

    /// A customer and the CRM id of its company.
    async fn linked_customer(&self, nth: i64) -> (i64, String) {
        let mut app = connect(&self.app_db(), "ro").await;
        sqlx::query_as(
            "SELECT id, hubspot_company_id FROM customers WHERE hubspot_company_id IS NOT NULL \
             ORDER BY id LIMIT 1 OFFSET ?",
        )
        .bind(nth)
        .fetch_one(&mut app)
        .await
        .expect("a linked customer")
    }

    /// Waits until `sql` (one row, one column, `?` = the customer's id) yields `want`.
    async fn wait_app(&self, sql: &'static str, id: i64, want: Option<&str>, what: &str) {
        let db = self.app_db();
        wait_for(30, what, || {
            let db = db.clone();
            async move {
                let mut app = connect(&db, "ro").await;
                let got: Option<String> = sqlx::query_scalar(sql)
                    .bind(id)
                    .fetch_one(&mut app)
                    .await
                    .ok()?;
                match want {
                    Some(w) => (got.as_deref() == Some(w)).then_some(()),
                    None => got.map(|_| ()),
                }
            }
        })
        .await;
    }

    /// The company's properties as the integration reads them.
    async fn company(&self, crm_id: &str) -> Value {
        self.http
            .get(format!(
                "{}/crm/v3/objects/companies/{crm_id}?properties=name,crmsync_customer_id",
                self.base
            ))
            .bearer_auth("test-token")
            .send()
            .await
            .expect("get company")
            .json()
            .await
            .expect("json")
    }

    /// An API request made as the UI user; its JSON answer (null for 204).
    async fn as_ui_user(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(UI_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn stats(&self) -> Value {
        self.http
            .get(format!("{}/_sandbox/stats", self.base))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("json")
    }

    async fn calls(&self) -> Calls {
        let stats = self.stats().await;
        stats["calls"]
            .as_array()
            .expect("calls")
            .iter()
            .map(|c| {
                (
                    (
                        c["method"].as_str().unwrap_or_default().to_string(),
                        c["endpoint"].as_str().unwrap_or_default().to_string(),
                        c["status"].as_u64().unwrap_or_default(),
                    ),
                    c["count"].as_u64().unwrap_or_default(),
                )
            })
            .collect()
    }

    async fn companies_in_crm(&self) -> u64 {
        self.stats().await["objects"]["companies"]
            .as_u64()
            .expect("company count")
    }

    /// The stored webhook events (body, applied) that `pick` selects.
    async fn events(&self, pick: impl Fn(&Value) -> bool) -> Vec<(Value, bool)> {
        let mut state = connect(&self.state_db(), "ro").await;
        let rows: Vec<(String, Option<i64>)> =
            sqlx::query_as("SELECT body, applied_at FROM webhook_events ORDER BY received_at")
                .fetch_all(&mut state)
                .await
                .expect("webhook_events");
        rows.into_iter()
            .filter_map(|(body, applied)| {
                let v: Value = serde_json::from_str(&body).ok()?;
                pick(&v).then_some((v, applied.is_some()))
            })
            .collect()
    }

    /// Waits until an event `pick` selects is stored and applied; returns it.
    async fn wait_event_applied(&self, what: &str, pick: impl Fn(&Value) -> bool) -> Value {
        let pick = &pick;
        wait_for(30, what, || async move {
            let found = self.events(pick).await;
            (!found.is_empty() && found.iter().all(|(_, applied)| *applied))
                .then(|| found[0].0.clone())
        })
        .await
    }

    /// `crmsync ARGS --config <demo>`, which must succeed; its stdout.
    async fn cli(&self, args: &[&str]) -> String {
        let mut cmd = crmsync();
        cmd.args(args).arg("--config").arg(&self.config);
        let out = output(cmd).await;
        assert!(
            out.status.success(),
            "crmsync {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    async fn pending_events(&self) -> u64 {
        let st: Value =
            serde_json::from_str(&self.cli(&["status", "--json"]).await).expect("status json");
        st["two_way"]["webhook_events_pending"]
            .as_u64()
            .expect("webhook_events_pending")
    }

    fn log(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }
}

/// The calls crmsync made between two snapshots (batch, search and association endpoints;
/// the test uses none of them), with their counts.
fn crmsync_calls(before: &Calls, after: &Calls) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter(|((_, endpoint, _), _)| {
            endpoint.contains("/batch/")
                || endpoint.ends_with("/search")
                || endpoint.contains("/associations")
        })
        .filter_map(|(key, n)| {
            let d = n - before.get(key).copied().unwrap_or(0);
            (d > 0).then(|| (format!("{} {} {}", key.0, key.1, key.2), d))
        })
        .collect()
}

fn is_name_change(e: &Value, crm_id: &str, value: &str, source: &str) -> bool {
    e["subscriptionType"] == "company.propertyChange"
        && e["objectId"].to_string().trim_matches('"') == crm_id
        && e["propertyName"] == "name"
        && e["propertyValue"] == value
        && e["changeSource"] == source
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crm_ui_edit_arrives_by_webhook_and_our_own_push_comes_back_without_a_call() {
    let demo = Demo::start().await;
    let (customer, company) = demo.linked_customer(0).await;

    // Someone renames the company in the HubSpot UI: one batch read, the app row changes.
    let before = demo.calls().await;
    demo.as_ui_user(
        reqwest::Method::PATCH,
        &format!("/crm/v3/objects/companies/{company}"),
        Some(json!({ "properties": { "name": "Acme Renamed In The UI" } })),
    )
    .await;
    demo.wait_app(
        "SELECT company_name FROM customers WHERE id = ?",
        customer,
        Some("Acme Renamed In The UI"),
        "the UI edit in the app",
    )
    .await;
    demo.wait_event_applied("the UI edit's event applied", |e| {
        is_name_change(e, &company, "Acme Renamed In The UI", "CRM_UI")
    })
    .await;
    assert_eq!(
        crmsync_calls(&before, &demo.calls().await),
        BTreeMap::from([(
            "POST /crm/v3/objects/companies/batch/read 200".to_string(),
            1
        )]),
        "one read of the record, no write back\n{}",
        demo.log()
    );

    // The app renames it: one read before writing (docs/two-way.md) and one write; the sandbox
    // then reports that write as a change made by the integration, which is stored, recognised
    // as ours and applied without a call.
    let before = demo.calls().await;
    let mut app = connect(&demo.app_db(), "rw").await;
    sqlx::query("UPDATE customers SET company_name = 'Acme Renamed In The App' WHERE id = ?")
        .bind(customer)
        .execute(&mut app)
        .await
        .expect("app edit");
    app.close().await.expect("close");
    let (d, c) = (&demo, company.as_str());
    wait_for(30, "the app edit in the CRM", || async move {
        (d.company(c).await["properties"]["name"] == "Acme Renamed In The App").then_some(())
    })
    .await;
    let echo = demo
        .wait_event_applied("our own write's event stored and applied", |e| {
            is_name_change(e, &company, "Acme Renamed In The App", "INTEGRATION")
        })
        .await;
    assert_eq!(
        echo["sourceId"], "54321",
        "the integration's app id: {echo}"
    );
    assert_eq!(demo.pending_events().await, 0);
    let made = crmsync_calls(&before, &demo.calls().await);
    assert_eq!(
        made,
        BTreeMap::from([
            (
                "POST /crm/v3/objects/companies/batch/read 200".to_string(),
                1
            ),
            (
                "POST /crm/v3/objects/companies/batch/upsert 200".to_string(),
                1
            )
        ]),
        "the push (its read before writing and the upsert) and nothing for its echo\n{}",
        demo.log()
    );
    // Every delivery was accepted.
    let deliveries: Value = demo
        .http
        .get(format!("{}/_sandbox/webhooks/deliveries", demo.base))
        .send()
        .await
        .expect("deliveries")
        .json()
        .await
        .expect("json");
    let text = deliveries.to_string();
    assert!(!text.contains("\"failed\""), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_company_archived_in_the_crm_flags_the_app_row_and_is_listed_as_deleted() {
    let demo = Demo::start().await;
    let (customer, company) = demo.linked_customer(1).await;
    let before = demo.calls().await;
    demo.as_ui_user(
        reqwest::Method::DELETE,
        &format!("/crm/v3/objects/companies/{company}"),
        None,
    )
    .await;
    demo.wait_app(
        "SELECT crm_deleted_at FROM customers WHERE id = ?",
        customer,
        None,
        "the deletion flag in the app row",
    )
    .await;
    demo.wait_event_applied("the deletion event applied", |e| {
        e["subscriptionType"] == "company.deletion"
            && e["objectId"].to_string().trim_matches('"') == company
    })
    .await;
    assert_eq!(
        crmsync_calls(&before, &demo.calls().await),
        // 207: HubSpot's answer to a batch read naming an id it does not have.
        BTreeMap::from([(
            "POST /crm/v3/objects/companies/batch/read 207".to_string(),
            1
        )]),
        "one read finds it gone; nothing is written to the CRM\n{}",
        demo.log()
    );
    let listed = demo.cli(&["deletions"]).await;
    let row = listed
        .lines()
        .find(|l| l.split_whitespace().next() == Some("companies"))
        .unwrap_or_else(|| panic!("no companies deletion listed:\n{listed}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cols,
        [
            "companies",
            &customer.to_string(),
            &company,
            "applied",
            "flag"
        ],
        "{listed}"
    );
    assert_eq!(demo.pending_events().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_into_a_crm_created_company_repoints_the_link_and_later_edits_update_the_survivor()
{
    let demo = Demo::start().await;
    let (customer, absorbed) = demo.linked_customer(2).await;
    // A company someone created in the CRM, not known to the app.
    let created = demo
        .as_ui_user(
            reqwest::Method::POST,
            "/crm/v3/objects/companies",
            Some(json!({ "properties": { "name": "Survivor Holdings" } })),
        )
        .await;
    let survivor = created["id"].as_str().expect("new id").to_string();
    let companies = demo.companies_in_crm().await;
    assert_eq!(companies, CUSTOMERS + 1);

    demo.as_ui_user(
        reqwest::Method::POST,
        "/crm/v3/objects/companies/merge",
        Some(json!({ "primaryObjectId": survivor, "objectIdToMerge": absorbed })),
    )
    .await;
    let state_db = demo.state_db();
    wait_for(30, "the link re-pointed to the survivor", || {
        let state_db = state_db.clone();
        let survivor = survivor.clone();
        async move {
            let mut state = connect(&state_db, "ro").await;
            let crm_id: Option<String> = sqlx::query_scalar(
                "SELECT crm_id FROM links WHERE sync = 'companies' AND local_id = ?",
            )
            .bind(customer.to_string())
            .fetch_one(&mut state)
            .await
            .ok()?;
            (crm_id.as_deref() == Some(survivor.as_str())).then_some(())
        }
    })
    .await;
    let explained: Value = serde_json::from_str(
        &demo
            .cli(&["explain", "companies", &customer.to_string(), "--json"])
            .await,
    )
    .expect("explain json");
    assert_eq!(
        explained["link"]["crm_id"],
        survivor.as_str(),
        "{explained}"
    );
    assert_eq!(
        demo.companies_in_crm().await,
        CUSTOMERS,
        "the merge absorbed one"
    );
    assert_eq!(
        demo.company(&survivor).await["properties"]["crmsync_customer_id"],
        customer.to_string(),
        "upserts by our key find the survivor"
    );

    // The app edits the record: the survivor changes, no company is created.
    let before = demo.calls().await;
    let mut app = connect(&demo.app_db(), "rw").await;
    sqlx::query("UPDATE customers SET company_name = 'Merged Robotics' WHERE id = ?")
        .bind(customer)
        .execute(&mut app)
        .await
        .expect("app edit");
    app.close().await.expect("close");
    let (d, s) = (&demo, survivor.as_str());
    wait_for(30, "the app edit on the survivor", || async move {
        (d.company(s).await["properties"]["name"] == "Merged Robotics").then_some(())
    })
    .await;
    assert_eq!(
        demo.companies_in_crm().await,
        CUSTOMERS,
        "no duplicate company\n{}",
        demo.log()
    );
    let made = crmsync_calls(&before, &demo.calls().await);
    assert!(made.keys().all(|k| !k.contains("batch/create")), "{made:?}");
    // The write-back column follows the survivor with that push.
    demo.wait_app(
        "SELECT hubspot_company_id FROM customers WHERE id = ?",
        customer,
        Some(&survivor),
        "the survivor's id written back",
    )
    .await;
}
