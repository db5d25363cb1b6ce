//! Records created in the CRM become app rows (`on_crm_create = "insert"`), against the
//! sandbox over HTTP, with a second token playing a salesperson in the HubSpot UI, on a
//! Rails-shaped `users` table (NOT NULL `created_at`/`updated_at` without a default) in
//! SQLite and in PostgreSQL:
//!
//! - a contact sales creates becomes one row (timestamps from `insert_values`, the CRM id in
//!   `hubspot_id`), linked; the insert's own trigger event sends nothing back; a later app
//!   edit updates that same contact (the sandbox still holds two contacts); the next poll
//!   inserts nothing;
//! - the same through a stored `contact.creation` webhook event (and our own contact's creation
//!   event is not even read back);
//! - a contact whose row the database refuses (no e-mail, NOT NULL) is reported once with the
//!   database's reason (status, explain), not tried every round, and inserted once sales
//!   fills the e-mail in;
//! - an insert interrupted before its link (the row and the claim exist, the link does not)
//!   is finished, not repeated, and its row is not pushed as a new contact meanwhile;
//! - `check` names a required column nothing fills.

use crmsync_core::config::{Config, Secrets, load_str};
use crmsync_crm::hubspot::{HubspotClient, HubspotConfig};
use crmsync_engine::{CallBuffer, Engine};
use crmsync_sandbox::{Sandbox, SandboxConfig};
use crmsync_store::sqlite::SqliteState;
use crmsync_store::testing::TestDb;
use crmsync_store::testing::source_suite::AppDb;
use crmsync_store::{AnySource, CreateState, Creates, Lifecycle, Records, Role};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::{Duration, Instant};

type TestEngine = Engine<AnySource, SqliteState, HubspotClient>;

const UI_TOKEN: &str = "sales-token";

const CONFIG: &str = r#"
[source]
url = "SOURCE"
[state]
url = "sqlite://state.db"
[crm]
environment = "sandbox"
kind = "hubspot"
base_url = "BASE"
token_env = "HUBSPOT_ACCESS_TOKEN"
[run]
poll_overlap_ms = 1000
[[sync]]
name = "users"
table = "users"
object = "contacts"
id_property = "app_user_id"
direction = "both"
write_back_column = "hubspot_id"
on_crm_create = "insert"
insert_values = { created_at = "now", updated_at = "now" }
[sync.fields]
email = { crm = "email", transform = ["trim", "lowercase"] }
first_name = { crm = "firstname" }
"#;

/// The app database and how to reach it.
struct App {
    url: String,
    db: AppDb,
    _keep: Option<TestDb>,
}

async fn sqlite_app(dir: &tempfile::TempDir) -> App {
    let url = format!("sqlite://{}", dir.path().join("app.db").display());
    let opts = url
        .parse::<sqlx::sqlite::SqliteConnectOptions>()
        .expect("url")
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(opts).await.expect("app db");
    let db = AppDb::Sqlite(pool);
    db.exec(
        "CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, email VARCHAR NOT NULL, first_name VARCHAR, hubspot_id VARCHAR, created_at DATETIME(6) NOT NULL, updated_at DATETIME(6) NOT NULL);
         CREATE UNIQUE INDEX index_users_on_email ON users (email);
         INSERT INTO users (email, first_name, created_at, updated_at) VALUES ('ada@example.com', 'Ada', '2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000')",
    )
    .await
    .expect("ddl");
    App {
        url,
        db,
        _keep: None,
    }
}

async fn postgres_app() -> Option<App> {
    let t = TestDb::postgres().await?;
    let pool = sqlx::PgPool::connect(&t.url).await.expect("pg");
    let db = AppDb::Postgres(pool);
    db.exec(
        "CREATE TABLE users (id bigserial PRIMARY KEY, email varchar NOT NULL, first_name varchar, hubspot_id varchar, created_at timestamp(6) NOT NULL, updated_at timestamp(6) NOT NULL);
         CREATE UNIQUE INDEX index_users_on_email ON users (email);
         INSERT INTO users (email, first_name, created_at, updated_at) VALUES ('ada@example.com', 'Ada', '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
    )
    .await
    .expect("ddl");
    Some(App {
        url: t.url.clone(),
        db,
        _keep: Some(t),
    })
}

struct World {
    dir: tempfile::TempDir,
    sandbox: Sandbox,
    app: App,
}

impl World {
    fn config(&self, text: &str) -> Config {
        let text = text
            .replace("SOURCE", &self.app.url)
            .replace("BASE", &self.sandbox.base_url());
        let path = self.dir.path().join("crmsync.toml");
        std::fs::write(&path, &text).expect("config file");
        load_str(&text, &path, Secrets::Required, &|_| {
            Some("test-token".into())
        })
        .expect("config valid")
    }

    async fn engine(&self, config: Config) -> TestEngine {
        let state = SqliteState::open(&config.state_url(), Role::Beside)
            .await
            .expect("state");
        let source = crmsync_store::open_source(&self.app.url)
            .await
            .expect("source");
        let calls = CallBuffer::default();
        let mut hc = HubspotConfig::new(self.sandbox.base_url(), SecretString::from("test-token"));
        hc.requests_per_interval = 100_000;
        hc.interval = Duration::from_secs(1);
        let crm = HubspotClient::new(hc, Some(calls.observer())).expect("client");
        let engine = Engine::new(config, source, state, crm, calls);
        let gate = engine.budget_gate();
        engine.crm.set_gate(Arc::new(gate));
        engine
    }

    async fn stats(&self) -> serde_json::Value {
        reqwest::get(format!("{}/_sandbox/stats", self.sandbox.base_url()))
            .await
            .expect("stats")
            .json()
            .await
            .expect("json")
    }

    async fn contacts(&self) -> u64 {
        self.stats().await["objects"]["contacts"]
            .as_u64()
            .unwrap_or(u64::MAX)
    }

    /// Requests to endpoints containing `part`, as the sandbox counted them.
    async fn calls_to(&self, part: &str) -> u64 {
        self.stats().await["calls"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|c| c["endpoint"].as_str().is_some_and(|e| e.contains(part)))
                    .map(|c| c["count"].as_u64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Sales creates a contact in the HubSpot UI; its id.
    async fn sales_creates(&self, properties: serde_json::Value) -> String {
        let v: serde_json::Value = reqwest::Client::new()
            .post(format!(
                "{}/crm/v3/objects/contacts",
                self.sandbox.base_url()
            ))
            .bearer_auth(UI_TOKEN)
            .json(&serde_json::json!({ "properties": properties }))
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("json");
        v["id"]
            .as_str()
            .unwrap_or_else(|| panic!("the sandbox created the contact: {v}"))
            .to_string()
    }

    async fn sales_edits(&self, id: &str, properties: serde_json::Value) {
        let status = reqwest::Client::new()
            .patch(format!(
                "{}/crm/v3/objects/contacts/{id}",
                self.sandbox.base_url()
            ))
            .bearer_auth(UI_TOKEN)
            .json(&serde_json::json!({ "properties": properties }))
            .send()
            .await
            .expect("patch")
            .status();
        assert!(status.is_success(), "{status}");
    }

    async fn crm_value(&self, id: &str, prop: &str) -> String {
        let v: serde_json::Value = reqwest::Client::new()
            .get(format!(
                "{}/crm/v3/objects/contacts/{id}?properties={prop}",
                self.sandbox.base_url()
            ))
            .bearer_auth("test-token")
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        v["properties"][prop]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn count(&self, where_: &str) -> i64 {
        self.app
            .db
            .count(format!("SELECT COUNT(*) FROM users WHERE {where_}"))
            .await
            .expect("count")
    }
}

async fn world(app: App, dir: tempfile::TempDir) -> World {
    let mut c = SandboxConfig::unlimited();
    c.other_tokens.insert(UI_TOKEN.into(), 4242);
    let sandbox = Sandbox::start("127.0.0.1:0", c).await.expect("sandbox");
    World { dir, sandbox, app }
}

/// Polls until `done` holds for the poll's report (the sandbox's search may show a record a
/// moment after it changed), or fails at the deadline.
async fn poll_until(
    engine: &TestEngine,
    what: &str,
    done: impl Fn(&crmsync_engine::report::PullReport) -> bool,
) -> crmsync_engine::report::PullReport {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut total = crmsync_engine::report::PullReport::default();
    loop {
        let r = engine.pull_once().await.expect("poll");
        total.add(&r);
        if done(&total) {
            return total;
        }
        assert!(Instant::now() < deadline, "{what}: {total:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The key of the row holding `crm_id`.
async fn row_of(engine: &TestEngine, crm_id: &str) -> Option<String> {
    engine
        .state
        .local_ids_of("users", &[crm_id.to_string()])
        .await
        .expect("links")
        .remove(crm_id)
}

async fn crm_created_records_become_rows(w: World) {
    let engine = w.engine(w.config(CONFIG)).await;
    crmsync_engine::install(&engine.config, &engine.app)
        .await
        .expect("install");
    engine.push_once().await.expect("backfill");
    assert_eq!(w.contacts().await, 1, "ada is in the CRM");
    poll_until(&engine, "our own push seen", |r| r.fetched >= 1).await;

    // Sales creates Grace in the CRM: she becomes a row.
    let grace = w
        .sales_creates(serde_json::json!({"email": "grace@example.com", "firstname": "Grace"}))
        .await;
    let r = poll_until(&engine, "grace inserted", |r| r.inserted == 1).await;
    assert_eq!(r.insert_refused, 0, "{r:?}");
    let key = row_of(&engine, &grace).await.expect("grace is linked");
    assert_eq!(
        w.count(&format!(
            "id = {key} AND email = 'grace@example.com' AND first_name = 'Grace' AND hubspot_id = '{grace}' AND created_at IS NOT NULL AND updated_at IS NOT NULL"
        ))
        .await,
        1,
        "one row with the pulled values, the CRM id written back, the timestamps filled"
    );
    assert_eq!(
        w.crm_value(&grace, "app_user_id").await,
        key,
        "our key is in the contact's id property, so upserts find it"
    );

    // The insert's own trigger event sends nothing back (no echo).
    let upserts = w.calls_to("batch/upsert").await;
    let pass = engine.push_once().await.expect("push after the insert");
    assert_eq!(
        w.calls_to("batch/upsert").await,
        upserts,
        "nothing pushed for the inserted row: {pass:?}"
    );
    assert_eq!(w.contacts().await, 2);

    // An app edit of the row updates the same contact: no duplicate.
    w.app
        .db
        .exec(format!(
            "UPDATE users SET first_name = 'Gracie' WHERE id = {key}"
        ))
        .await
        .expect("app edit");
    engine.push_once().await.expect("push the edit");
    assert_eq!(w.crm_value(&grace, "firstname").await, "Gracie");
    assert_eq!(w.contacts().await, 2, "the same contact was updated");

    // A second poll inserts nothing more.
    let r = engine.pull_once().await.expect("poll again");
    assert_eq!(r.inserted, 0, "{r:?}");
    assert_eq!(w.count("1 = 1").await, 2);

    // Through a webhook instead of the poll: a creation event of a contact sales made is read
    // back and inserted; the creation event of a contact crmsync made itself is not read.
    let lin = w
        .sales_creates(serde_json::json!({"email": "lin@example.com", "firstname": "Lin"}))
        .await;
    let ada = engine
        .state
        .link("users", "1")
        .await
        .expect("link")
        .and_then(|l| l.crm_id)
        .expect("ada is linked");
    let event = |n: u64, id: &str| {
        (
            format!("creation-{n}"),
            serde_json::json!({"eventId": n, "subscriptionType": "contact.creation", "objectId": id.parse::<u64>().expect("numeric id"), "changeFlag": "NEW"})
                .to_string(),
        )
    };
    engine
        .state
        .record_webhook_events(&[event(1, &lin), event(2, &ada)], crmsync_store::now_ms())
        .await
        .expect("store events");
    let r = engine.apply_webhook_events().await.expect("apply events");
    assert_eq!((r.events, r.inserted, r.checked), (2, 1, 1), "{r:?}");
    assert!(row_of(&engine, &lin).await.is_some(), "lin is a row now");
    assert_eq!(w.count("1 = 1").await, 3);

    // A contact without an e-mail: the database refuses the row (NOT NULL), once.
    let nomail = w
        .sales_creates(serde_json::json!({"firstname": "Nomail"}))
        .await;
    let r = poll_until(&engine, "refusal reported", |r| r.insert_refused == 1).await;
    assert_eq!(r.inserted, 0, "{r:?}");
    let entry = engine
        .state
        .creates_among("users", std::slice::from_ref(&nomail))
        .await
        .expect("entries")
        .remove(&nomail)
        .expect("the refusal is recorded");
    assert_eq!(entry.state, CreateState::Refused);
    assert!(
        entry.message.to_lowercase().contains("email"),
        "the database's reason names the column: {}",
        entry.message
    );
    let st = crmsync_engine::status::status(&engine.config, &engine.state, &engine.app)
        .await
        .expect("status");
    let users = &st.syncs[0];
    assert_eq!(users.insert_refused, 1, "{users:?}");
    assert_eq!(users.insert_problems[0].example, nomail);
    let e = crmsync_engine::explain::explain_crm(
        &engine.config,
        &engine.state,
        &engine.app,
        "users",
        &nomail,
    )
    .await
    .expect("explain");
    let c = e.crm_create.expect("explain shows the refused insert");
    assert_eq!((c.state.as_str(), c.attempts), ("refused", 1));
    // Not tried again while nothing changed (the poll's overlap reads it again).
    for _ in 0..2 {
        let r = engine.pull_once().await.expect("poll");
        assert_eq!(r.insert_refused, 0, "reported once: {r:?}");
    }
    engine
        .push_once()
        .await
        .expect("a pass with hints changes nothing");
    let entry = &engine
        .state
        .creates_among("users", std::slice::from_ref(&nomail))
        .await
        .expect("entries")[&nomail];
    assert_eq!(entry.attempts, 1, "not retried every round");
    // `crmsync retry` tries it again (still refused: one more attempt).
    engine
        .state
        .request_create_retry(Some("users"))
        .await
        .expect("retry");
    engine.push_once().await.expect("retry pass");
    let entry = &engine
        .state
        .creates_among("users", std::slice::from_ref(&nomail))
        .await
        .expect("entries")[&nomail];
    assert_eq!(
        (entry.attempts, entry.retry_requested),
        (2, false),
        "retried once on request"
    );
    // Sales fills the e-mail in: the record changed, so it is inserted now.
    w.sales_edits(&nomail, serde_json::json!({"email": "nomail@example.com"}))
        .await;
    poll_until(&engine, "inserted once fixed", |r| r.inserted == 1).await;
    assert!(row_of(&engine, &nomail).await.is_some());
    assert!(
        engine
            .state
            .creates(Some("users"))
            .await
            .expect("entries")
            .is_empty(),
        "nothing left refused or claimed"
    );
    assert_eq!(w.count("1 = 1").await, 4);
    assert_eq!(w.contacts().await, 4, "no contact was duplicated");
}

/// A crash between the app insert and the link: the row and the claim exist, nothing else.
async fn an_interrupted_insert_is_finished_not_repeated(w: World) {
    let engine = w.engine(w.config(CONFIG)).await;
    crmsync_engine::install(&engine.config, &engine.app)
        .await
        .expect("install");
    engine.push_once().await.expect("backfill");
    poll_until(&engine, "our own push seen", |r| r.fetched >= 1).await;
    let grace = w
        .sales_creates(serde_json::json!({"email": "grace@example.com", "firstname": "Grace"}))
        .await;
    // What the killed leader left: its claim, then the row (the insert committed), no link.
    engine
        .state
        .claim_creates(
            "users",
            &[(grace.clone(), 0)],
            &crmsync_core::hash::mapping_fingerprint(&engine.config.raw.syncs[0]),
            1,
        )
        .await
        .expect("claim");
    w.app
        .db
        .exec(format!(
            "INSERT INTO users (email, first_name, hubspot_id, created_at, updated_at) VALUES ('grace@example.com', 'Grace', '{grace}', '2026-02-01 00:00:00', '2026-02-01 00:00:00')"
        ))
        .await
        .expect("the row of the interrupted insert");
    // The next leader's capture runs before anything reads the CRM: the row is not pushed as
    // a new contact.
    let sync = engine.config.raw.syncs[0].clone();
    let r = engine.capture_sync(&sync).await.expect("capture");
    assert_eq!(r.queued, 0, "the unlinked row is parked, not queued: {r:?}");
    // The round's read back finishes it: linked to that row, no second row, no new contact.
    engine.push_once().await.expect("pass");
    let key = row_of(&engine, &grace).await.expect("linked");
    assert_eq!(w.count(&format!("hubspot_id = '{grace}'")).await, 1);
    assert_eq!(
        w.count(&format!("id = {key} AND hubspot_id = '{grace}'"))
            .await,
        1
    );
    assert_eq!(w.crm_value(&grace, "app_user_id").await, key);
    assert_eq!(w.contacts().await, 2, "ada and grace, nobody twice");
    let r = engine.pull_once().await.expect("poll");
    assert_eq!(r.inserted, 0, "{r:?}");
    assert_eq!(w.count("1 = 1").await, 2);
}

/// `check` names the required column no pulled field, write-back or insert value fills.
async fn check_names_a_required_column_nothing_fills(w: World) {
    let text = CONFIG.replace(
        r#"insert_values = { created_at = "now", updated_at = "now" }"#,
        r#"insert_values = { created_at = "now" }"#,
    );
    let engine = w.engine(w.config(&text)).await;
    let report = crmsync_engine::check::check(&engine.config, &engine.crm, &engine.app, 3)
        .await
        .expect("check");
    let found: Vec<&crmsync_engine::check::Finding> = report
        .findings
        .iter()
        .filter(|f| f.kind == "insert_required")
        .collect();
    assert_eq!(
        found
            .iter()
            .map(|f| (f.severity, f.sync.as_str(), f.field.as_deref()))
            .collect::<Vec<_>>(),
        [
            (crmsync_engine::check::Severity::Error, "users", None),
            (
                crmsync_engine::check::Severity::Note,
                "users",
                Some("email")
            ),
        ],
        "{found:?}"
    );
    assert!(
        found[0].message.contains("`updated_at`"),
        "{}",
        found[0].message
    );
    assert!(
        !report
            .findings
            .iter()
            .any(|f| f.kind == "insert_required" && f.message.contains("`created_at`")),
        "created_at is filled by insert_values"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_crm_created_records_become_rows() {
    let dir = tempfile::tempdir().expect("dir");
    let app = sqlite_app(&dir).await;
    crm_created_records_become_rows(world(app, dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_crm_created_records_become_rows() {
    let Some(app) = postgres_app().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    crm_created_records_become_rows(world(app, dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_interrupted_insert_is_finished_not_repeated() {
    let dir = tempfile::tempdir().expect("dir");
    let app = sqlite_app(&dir).await;
    an_interrupted_insert_is_finished_not_repeated(world(app, dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_interrupted_insert_is_finished_not_repeated() {
    let Some(app) = postgres_app().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    an_interrupted_insert_is_finished_not_repeated(world(app, dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_check_names_a_required_column_nothing_fills() {
    let dir = tempfile::tempdir().expect("dir");
    let app = sqlite_app(&dir).await;
    check_names_a_required_column_nothing_fills(world(app, dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_check_names_a_required_column_nothing_fills() {
    let Some(app) = postgres_app().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    check_names_a_required_column_nothing_fills(world(app, dir).await).await;
}
