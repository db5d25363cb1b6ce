//! A small order system in a real SQLite file, a sandbox CRM on a real socket, and an engine
//! wired to both, for the scenario tests.

#![allow(dead_code)]

use crmsync_core::config::{Config, Secrets, load_str};
use crmsync_crm::hubspot::{HubspotClient, HubspotConfig};
use crmsync_engine::{CallBuffer, Engine};
use crmsync_sandbox::{Sandbox, SandboxConfig};
use crmsync_store::Role;
use crmsync_store::sqlite::{SqliteSource, SqliteState};
use std::sync::Arc;

/// The engine the scenario tests run: a SQLite app and state, the HubSpot client.
pub type TestEngine = Engine<SqliteSource, SqliteState, HubspotClient>;
use secrecy::SecretString;
use sqlx::{Connection, SqliteConnection};
use tempfile::TempDir;

pub struct World {
    pub dir: TempDir,
    pub sandbox: Sandbox,
    pub config: Config,
}

pub const CONFIG: &str = r#"
[source]
url = "sqlite://app.db"
[crm]
environment = "sandbox"
kind = "hubspot"
base_url = "BASE"
token_env = "HUBSPOT_ACCESS_TOKEN"
[[sync]]
name = "companies"
table = "customers"
object = "companies"
id_property = "app_customer_id"
capture = "trigger"
[sync.fields]
company = { crm = "name", validate = "required" }
[[sync]]
name = "contacts"
table = "customers"
object = "contacts"
id_property = "app_customer_id"
capture = "scan"
associate = { id = "companies" }
[sync.fields]
email = { crm = "email", transform = ["trim", "lowercase"], validate = ["required", "email"] }
[[sync]]
name = "deals"
table = "orders"
object = "deals"
id_property = "app_order_id"
capture = "updated_at"
updated_at_column = "updated_at"
associate = { customer_id = "companies" }
[sync.fields]
title = { crm = "dealname" }
status = { crm = "dealstage", map = { new = "appointmentscheduled", paid = "closedwon" } }
"#;

/// Creates the app database with `customers` (id, company, email) and `orders` rows, and a
/// sandbox with `sandbox_config`.
pub async fn world(
    customers: &[(i64, &str, &str)],
    orders: &[(i64, i64, &str, &str)],
    sandbox_config: SandboxConfig,
) -> World {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("app.db");
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", db.display()))
        .await
        .expect("create app db");
    sqlx::query("CREATE TABLE customers (id INTEGER PRIMARY KEY, company TEXT, email TEXT)")
        .execute(&mut conn)
        .await
        .expect("ddl");
    sqlx::query("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, title TEXT, status TEXT, updated_at TEXT)")
        .execute(&mut conn)
        .await
        .expect("ddl");
    let mut tx = conn.begin().await.expect("begin");
    for (id, company, email) in customers {
        sqlx::query("INSERT INTO customers VALUES (?, ?, ?)")
            .bind(id)
            .bind(company)
            .bind(email)
            .execute(&mut *tx)
            .await
            .expect("insert");
    }
    for (id, customer, title, status) in orders {
        sqlx::query("INSERT INTO orders VALUES (?, ?, ?, ?, '2026-01-01T00:00:00Z')")
            .bind(id)
            .bind(customer)
            .bind(title)
            .bind(status)
            .execute(&mut *tx)
            .await
            .expect("insert");
    }
    tx.commit().await.expect("commit");
    conn.close().await.expect("close");
    let sandbox = Sandbox::start("127.0.0.1:0", sandbox_config)
        .await
        .expect("sandbox starts");
    let text = CONFIG.replace("BASE", &sandbox.base_url());
    let path = dir.path().join("crmsync.toml");
    std::fs::write(&path, &text).expect("write config");
    let config = load_str(&text, &path, Secrets::Required, &|_| {
        Some("test-token".into())
    })
    .expect("config valid");
    World {
        dir,
        sandbox,
        config,
    }
}

impl World {
    /// A fresh engine over the world's files (as a new process would have).
    pub async fn engine(&self) -> TestEngine {
        self.engine_with(self.config.clone(), |_| {}).await
    }

    /// A fresh engine on `clock` (its CRM calls reserved on that clock too).
    pub async fn engine_at(&self, clock: Arc<TestClock>) -> TestEngine {
        self.engine_full(self.config.clone(), |_| {}, Some(clock))
            .await
    }

    /// An engine with `config` and client settings adjusted by `tune`.
    pub async fn engine_with(
        &self,
        config: Config,
        tune: impl FnOnce(&mut HubspotConfig),
    ) -> TestEngine {
        self.engine_full(config, tune, None).await
    }

    pub async fn engine_full(
        &self,
        config: Config,
        tune: impl FnOnce(&mut HubspotConfig),
        clock: Option<Arc<TestClock>>,
    ) -> TestEngine {
        let store = SqliteState::open(&self.config.state_url(), Role::Beside)
            .await
            .expect("state db");
        let source = SqliteSource::open(&self.config.source_url())
            .await
            .expect("source db");
        let calls = CallBuffer::default();
        let mut hc = HubspotConfig::new(self.sandbox.base_url(), SecretString::from("test-token"));
        hc.max_retries = 6;
        // The sandbox runs unlimited here; don't let the client pace itself to HubSpot's Free tier.
        hc.requests_per_interval = 100_000;
        hc.interval = std::time::Duration::from_secs(1);
        tune(&mut hc);
        let crm = HubspotClient::new(hc, Some(calls.observer())).expect("client");
        let mut engine = Engine::new(config, source, store, crm, calls);
        if let Some(c) = clock {
            engine.clock = c;
        }
        // Every call is admitted by the shared budget, as in `crmsync run`.
        let gate = engine.budget_gate();
        engine.crm.set_gate(Arc::new(gate));
        engine
    }

    /// Runs SQL on the app database.
    pub async fn app_sql(&self, sql: &'static str) {
        let mut conn = SqliteConnection::connect(&self.config.source_url())
            .await
            .expect("open app db");
        sqlx::query(sql).execute(&mut conn).await.expect("app sql");
    }

    pub async fn stats(&self) -> serde_json::Value {
        reqwest::get(format!("{}/_sandbox/stats", self.sandbox.base_url()))
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats json")
    }

    /// Object counts in the sandbox: (companies, contacts, deals).
    pub async fn objects(&self) -> (u64, u64, u64) {
        let s = self.stats().await;
        let n = |k: &str| s["objects"][k].as_u64().unwrap_or(u64::MAX);
        (n("companies"), n("contacts"), n("deals"))
    }

    /// Requests made to endpoints whose path contains `part`, as counted by the sandbox.
    pub async fn calls_to(&self, part: &str) -> u64 {
        let s = self.stats().await;
        s["calls"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|c| c["endpoint"].as_str().is_some_and(|e| e.contains(part)))
                    .map(|c| c["count"].as_u64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0)
    }

    /// A GET on the sandbox with the test token.
    pub async fn get(&self, path: &str) -> serde_json::Value {
        reqwest::Client::new()
            .get(format!("{}{path}", self.sandbox.base_url()))
            .bearer_auth("test-token")
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json")
    }
}

/// A clock the test moves by hand.
#[derive(Debug, Default)]
pub struct TestClock(pub std::sync::atomic::AtomicI64);

impl TestClock {
    pub fn at(ms: i64) -> std::sync::Arc<Self> {
        std::sync::Arc::new(TestClock(std::sync::atomic::AtomicI64::new(ms)))
    }
    pub fn set(&self, ms: i64) {
        self.0.store(ms, std::sync::atomic::Ordering::SeqCst);
    }
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl crmsync_engine::clock::Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Milliseconds since the epoch, now.
pub fn wall_ms() -> i64 {
    crmsync_store::now_ms()
}
