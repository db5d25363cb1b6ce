//! Arbitrary values through capture and mapping. SQLite stores any value in an untyped column
//! (text, integers, reals, blobs of any bytes, NULL), as a shop database that grew over years
//! does; every such row must be captured, read and mapped without a panic: a value that cannot
//! be read quarantines its record only (naming the column), the rest maps as usual. Then the
//! whole engine runs over such a table against the sandbox, and every row is accounted for.

mod support;

use crmsync_core::config::{Secrets, load_str};
use crmsync_core::mapping::{MapOutcome, map_row};
use crmsync_sandbox::SandboxConfig;
use crmsync_store::sqlite::SqliteSource;
use crmsync_store::{Capture, Source};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use sqlx::{Connection, SqliteConnection};

/// A value as the app database may hold it.
#[derive(Debug, Clone)]
enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

const COLUMNS: [&str; 7] = [
    "email",
    "phone",
    "country",
    "name",
    "total_cents",
    "state",
    "signed_up",
];

/// Mostly plausible values, with hostile ones mixed in.
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => Just(Value::Null),
        2 => any::<i64>().prop_map(Value::Int),
        1 => any::<f64>().prop_map(Value::Real),
        3 => any::<String>().prop_map(Value::Text),
        2 => prop::sample::select(vec![
            "ada@example.com", " ADA@Example.COM ", "not an email", "+44 20 7946 0958",
            "020 7946 0958", "GB", "United Kingdom", "de", "129900", "12,50", "1e5", "paid",
            "pending", "2026-02-01T10:00:00Z", "01.02.2026", "", "   ", "\u{0}", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
        ])
        .prop_map(|s| Value::Text(s.to_string())),
        2 => prop::collection::vec(any::<u8>(), 0..24).prop_map(Value::Blob),
    ]
}

fn rows() -> impl Strategy<Value = Vec<[Value; 7]>> {
    prop::collection::vec(
        (
            value(),
            value(),
            value(),
            value(),
            value(),
            value(),
            value(),
        )
            .prop_map(|(a, b, c, d, e, f, g)| [a, b, c, d, e, f, g]),
        1..12,
    )
}

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
table = "people"
object = "contacts"
capture = "trigger"
[sync.fields]
email = { crm = "email", transform = ["normalize_email", "lowercase"], validate = ["required", "email"] }
phone = { crm = "phone", transform = [{ e164 = { region_column = "country", default = "US" } }], on_invalid = "skip_field" }
name = { crm = "firstname", transform = ["trim", "collapse_whitespace", "title_case", { truncate = 40 }] }
total_cents = { crm = "lifetime_value", transform = [{ number = { divide_by = 100, decimals = 2 } }], on_invalid = "skip_field" }
state = { crm = "hs_lead_status", map = { pending = "NEW", paid = "CONNECTED" }, on_invalid = "skip_field" }
signed_up = { crm = "createdate", transform = [{ datetime = "iso" }], on_invalid = "skip_field", write = "create_only" }
"#;

async fn clear(conn: &mut SqliteConnection) {
    sqlx::query("DELETE FROM people")
        .execute(&mut *conn)
        .await
        .expect("clear");
}

async fn fill(conn: &mut SqliteConnection, rows: &[[Value; 7]]) {
    for (i, row) in rows.iter().enumerate() {
        let mut q = sqlx::query(
            "INSERT INTO people (id, email, phone, country, name, total_cents, state, signed_up) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(i as i64 + 1);
        for v in row {
            q = match v {
                Value::Null => q.bind(None::<String>),
                Value::Int(n) => q.bind(*n),
                Value::Real(r) => q.bind(*r),
                Value::Text(s) => q.bind(s.clone()),
                Value::Blob(b) => q.bind(b.clone()),
            };
        }
        q.execute(&mut *conn).await.expect("insert");
    }
}

async fn create(dir: &std::path::Path) -> (SqliteConnection, SqliteSource, String) {
    let url = format!("sqlite://{}?mode=rwc", dir.join("app.db").display());
    let mut conn = SqliteConnection::connect(&url).await.expect("app db");
    // Untyped columns: SQLite keeps each value with the type it was given.
    sqlx::query(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, email, phone, country, name, total_cents, state, signed_up)",
    )
    .execute(&mut conn)
    .await
    .expect("ddl");
    let source = SqliteSource::open(&url).await.expect("source");
    (conn, source, url)
}

fn config(dir: &std::path::Path, base: &str) -> crmsync_core::config::Config {
    load_str(
        &CONFIG.replace("BASE", base),
        &dir.join("crmsync.toml"),
        Secrets::Required,
        &|_| Some("t".into()),
    )
    .expect("config valid")
}

#[test]
fn arbitrary_values_are_captured_read_and_mapped_without_a_panic() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let (conn, source, _) = rt.block_on(create(dir.path()));
    let conn = tokio::sync::Mutex::new(conn);
    let config = config(dir.path(), "http://127.0.0.1:9");
    let sync = &config.raw.syncs[0];
    rt.block_on(source.install_capture("people", "id", &COLUMNS))
        .expect("install");
    let mut runner = TestRunner::new(RunnerConfig {
        cases: 48,
        // Runs from a test binary: failures are printed with their minimal input instead.
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let result = runner.run(&rows(), |rows| {
        rt.block_on(async {
            let mut app = conn.lock().await;
            clear(&mut app).await;
            let start = source.change_position().await.expect("position");
            fill(&mut app, &rows).await;
            drop(app);
            // Capture sees every inserted row.
            let page = source
                .changes_since("people", Some(&start), 1_000)
                .await
                .expect("changes");
            let mut keys = page.keys.clone();
            keys.sort_by_key(|k| k.parse::<i64>().unwrap_or(i64::MAX));
            let want: Vec<String> = (1..=rows.len()).map(|i| i.to_string()).collect();
            prop_assert_eq!(&keys, &want);
            // Each row reads back, with unreadable columns named and the rest intact.
            let read = source
                .fetch("people", "id", &COLUMNS, &keys)
                .await
                .expect("fetch never fails on a value");
            prop_assert_eq!(read.len(), rows.len());
            for r in &read {
                let i: usize = r.key.parse().map_err(|_| TestCaseError::fail("key"))?;
                let original = &rows[i - 1];
                for (col, v) in COLUMNS.iter().zip(original) {
                    let unreadable = r.unreadable.iter().any(|(c, _)| c == col);
                    match v {
                        Value::Blob(b) if std::str::from_utf8(b).is_err() => {
                            prop_assert!(unreadable, "non-UTF-8 `{}` must be named", col);
                        }
                        Value::Null => prop_assert_eq!(r.values.get(*col), Some(&None)),
                        Value::Int(n) => {
                            prop_assert_eq!(r.values.get(*col), Some(&Some(n.to_string())))
                        }
                        Value::Text(s) => {
                            prop_assert_eq!(r.values.get(*col), Some(&Some(s.clone())))
                        }
                        _ => prop_assert!(unreadable || r.values.contains_key(*col)),
                    }
                }
                // Mapping takes any text without a panic; an unreadable record is never
                // mapped (the engine quarantines it first).
                if r.unreadable.is_empty() {
                    match map_row(sync, &r.values) {
                        MapOutcome::Ready(m) => {
                            // The e-mail rule held: what is sent is a lower-cased address.
                            let email = m.properties.get("email");
                            prop_assert!(
                                email.is_some_and(|e| e.contains('@') && *e == e.to_lowercase()),
                                "sent e-mail {:?}",
                                email
                            );
                        }
                        MapOutcome::Invalid(problems) => prop_assert!(!problems.is_empty()),
                        MapOutcome::Held(_) => {}
                    }
                }
            }
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The whole engine over one hostile table: no panic, and every row is either in the CRM,
/// quarantined or held; the unreadable ones are quarantined naming their column.
#[tokio::test]
async fn the_engine_accounts_for_every_hostile_row() {
    let mut runner = TestRunner::deterministic();
    let rows = prop::collection::vec(
        (
            value(),
            value(),
            value(),
            value(),
            value(),
            value(),
            value(),
        )
            .prop_map(|(a, b, c, d, e, f, g)| [a, b, c, d, e, f, g]),
        200,
    )
    .new_tree(&mut runner)
    .expect("rows")
    .current();
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut conn, _, _) = create(dir.path()).await;
    // Half the rows get a good e-mail, so the CRM is reached.
    let mut rows = rows;
    for (i, r) in rows.iter_mut().enumerate() {
        if i % 2 == 0 {
            r[0] = Value::Text(format!("person{i}@example.com"));
        }
    }
    fill(&mut conn, &rows).await;
    let sandbox = crmsync_sandbox::Sandbox::start("127.0.0.1:0", SandboxConfig::unlimited())
        .await
        .expect("sandbox");
    let w = support::World {
        config: config(dir.path(), &sandbox.base_url()),
        dir,
        sandbox,
    };
    // A custom number property, as a shop creates for its revenue figure.
    let created = reqwest::Client::new()
        .post(format!(
            "{}/crm/v3/properties/contacts",
            w.sandbox.base_url()
        ))
        .bearer_auth("t")
        .json(&serde_json::json!({
            "name": "lifetime_value", "label": "Lifetime value", "type": "number",
            "fieldType": "number", "groupName": "contactinformation"
        }))
        .send()
        .await
        .expect("create property");
    assert!(created.status().is_success(), "{}", created.status());
    let engine = w.engine().await;
    crmsync_engine::install(&engine.config, &engine.app)
        .await
        .expect("install");
    let report = engine.push_once().await.expect("no pass fails on a value");
    let status = crmsync_engine::status::status(&engine.config, &engine.state, &engine.app)
        .await
        .expect("status");
    let s = &status.syncs[0];
    assert_eq!(s.total, 200);
    assert_eq!(
        s.synced + s.quarantined + s.held + s.failed,
        200,
        "every row accounted for: {s:?} {report:?}"
    );
    assert!(s.synced >= 1, "the good rows reach the CRM: {s:?}");
    let unreadable = rows
        .iter()
        .filter(|r| {
            r.iter()
                .any(|v| matches!(v, Value::Blob(b) if std::str::from_utf8(b.as_slice()).is_err()))
        })
        .count() as i64;
    assert!(
        s.quarantined >= unreadable,
        "{s:?}, {unreadable} unreadable"
    );
    assert_eq!(
        w.objects().await.1,
        u64::try_from(s.synced).unwrap_or(0),
        "one contact per synced row"
    );
}
