//! PostgreSQL-only promises of the app database, beyond the shared contract suite: the late
//! commit (a sequence is not commit order), LISTEN/NOTIFY (delivered at commit, survives a
//! killed connection, stops with its receiver), schema-qualified and oddly quoted tables, an
//! `updated_at` frontier held back by an open transaction, stable text under hostile session
//! settings, concurrent installs, and what `open` and `identity` promise.
//!
//! Every test gets its own schema (`TestDb`), except the `SQL_ASCII` one, which needs a
//! database of its own (encoding is per database); it drops it the same way.

use crmsync_store::postgres::PgSource;
use crmsync_store::testing::source_suite::{self as suite, AppDb, DEADLINE, Dialect, Shop};
use crmsync_store::testing::{DEFAULT_POSTGRES_URL, TestDb};
use crmsync_store::{Capture, RowWrite, Source, StoreError, UpdatedPage};
use sqlx::{Connection, PgConnection, PgPool};
use std::time::Instant;

/// A shop in a fresh schema, with capture on `customers` (key `id`, watching `name`).
async fn shop() -> Option<(Shop<PgSource>, TestDb)> {
    let db = TestDb::postgres().await?;
    let pool = PgPool::connect(&db.url).await.expect("connect");
    let shop = Shop::create(AppDb::Postgres(pool), || PgSource::open(&db.url)).await;
    shop.source
        .install_capture("customers", "id", &["name"])
        .await
        .expect("install");
    Some((shop, db))
}

fn pool(shop: &Shop<PgSource>) -> &PgPool {
    match &shop.app {
        AppDb::Postgres(p) => p,
        _ => unreachable!("a PostgreSQL shop"),
    }
}

/// Polls `condition` until it holds or the deadline passes (a failure naming `what`).
async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    while !condition().await {
        assert!(Instant::now() < deadline, "{what}: not within {DEADLINE:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The next notified name among `ours`, within `within`. Every test schema lives in one
/// database, which has one `crmsync_changes` channel: names of other tests' tables pass by.
async fn next_of(
    rx: &mut tokio::sync::mpsc::Receiver<String>,
    ours: &[&str],
    within: std::time::Duration,
) -> String {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let name = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no notification of {ours:?} within {within:?}"))
            .expect("the channel is open");
        if ours.contains(&name.as_str()) {
            return name;
        }
    }
}

/// `url` naming database `name` instead of its own (the query string is kept).
fn on_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let root = base.rsplit_once('/').map_or(base, |(r, _)| r);
    format!("{root}/{name}?{query}")
}

/// The test's own session: a connection outside the source's pool.
async fn session(db: &TestDb) -> PgConnection {
    PgConnection::connect(&db.url)
        .await
        .expect("connect a session")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_commit_is_read_after_an_earlier_numbered_one_was_held_back() {
    let Some((shop, db)) = shop().await else {
        return;
    };
    let src = &shop.source;
    let from = src.change_position().await.expect("position");

    // A takes its transaction id first (and the lower seq), B commits first.
    let mut a = session(&db).await;
    let mut ta = a.begin().await.expect("begin A");
    sqlx::query("UPDATE customers SET name = 'by A' WHERE id = 1")
        .execute(&mut *ta)
        .await
        .expect("A updates 1");
    shop.app
        .exec("UPDATE customers SET name = 'by B' WHERE id = 2")
        .await
        .expect("B updates 2 and commits");

    // B's change is logged and committed, but a reader that returned it would move its
    // cursor past A's change for good.
    assert_eq!(
        src.changes_pending("customers", Some(&from))
            .await
            .expect("pending"),
        1
    );
    let held = src
        .changes_since("customers", Some(&from), 100)
        .await
        .expect("read");
    assert!(
        held.keys.is_empty(),
        "read past a running transaction: {held:?}"
    );
    assert_eq!(held.cursor, from, "the cursor does not move while A runs");

    ta.commit().await.expect("A commits");
    let (seen, _) = suite::read_changes_until(src, "customers", Some(&held.cursor), "2", 100).await;
    assert_eq!(seen, ["1", "2"], "A's change first (lower txid), then B's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_arrive_at_commit_and_stop_with_the_receiver() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    // A name of this test's own: every test schema shares one database and so one channel.
    let url = format!("{}&application_name={}", db.url, db.name);
    let app = PgPool::connect(&db.url).await.expect("connect");
    let src = PgSource::open(&url).await.expect("open");
    let (orders, marker) = (format!("{}_orders", db.name), format!("{}_marker", db.name));
    for t in [&orders, &marker] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE \"{t}\" (id integer PRIMARY KEY, note text)"
        )))
        .execute(&app)
        .await
        .expect("create");
        src.install_capture(t, "id", &["note"])
            .await
            .expect("install");
    }
    let mut rx = src
        .subscribe()
        .await
        .expect("subscribe")
        .expect("postgres notifies");

    // An insert into orders stays uncommitted while a marker insert commits: the marker's
    // notification must come first (the other one is only sent at commit).
    let mut a = PgConnection::connect(&db.url).await.expect("session");
    let mut ta = a.begin().await.expect("begin");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO \"{orders}\" VALUES (1, 'x')"
    )))
    .execute(&mut *ta)
    .await
    .expect("insert order");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO \"{marker}\" VALUES (1, 'x')"
    )))
    .execute(&app)
    .await
    .expect("insert marker");
    let ours = [orders.as_str(), marker.as_str()];
    let first = next_of(&mut rx, &ours, DEADLINE).await;
    assert_eq!(first, marker, "nothing is notified before its commit");
    ta.commit().await.expect("commit");
    assert_eq!(next_of(&mut rx, &ours, DEADLINE).await, orders);

    // Dropping the receiver ends the listening session.
    let listening = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN%'",
        )
        .bind(&db.name)
        .fetch_one(&app)
        .await
        .expect("pg_stat_activity")
    };
    assert_eq!(listening().await, 1);
    drop(rx);
    wait_until("the listener's session ends", || async {
        listening().await == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_listener_reconnects_and_wakes_the_tables_it_may_have_missed() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let url = format!("{}&application_name={}", db.url, db.name);
    let app = PgPool::connect(&db.url).await.expect("connect");
    let src = PgSource::open(&url).await.expect("open");
    let table = format!("{}_orders", db.name);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE \"{table}\" (id integer PRIMARY KEY, note text)"
    )))
    .execute(&app)
    .await
    .expect("create");
    src.install_capture(&table, "id", &["note"])
        .await
        .expect("install");
    let mut rx = src
        .subscribe()
        .await
        .expect("subscribe")
        .expect("postgres notifies");

    let killed: i64 = sqlx::query_scalar(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN%'",
    )
    .bind(&db.name)
    .fetch_one(&app)
    .await
    .expect("terminate the listener");
    assert_eq!(killed, 1);
    // Committed while the listener may be down: its notification may be lost, the wake-up
    // after reconnecting is not.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO \"{table}\" VALUES (1, 'x')"
    )))
    .execute(&app)
    .await
    .expect("insert");
    // Reconnecting is local work: seconds, not the capture deadline.
    let name = next_of(
        &mut rx,
        &[table.as_str()],
        std::time::Duration::from_secs(10),
    )
    .await;
    assert_eq!(name, table);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_qualified_table_with_quotes_in_its_names_works_throughout() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    // The table lives in a second schema, outside the source's search_path.
    let Some(other) = TestDb::postgres().await else {
        return;
    };
    let app = PgPool::connect(&db.url).await.expect("connect");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {}.\"Order \"\"Lines\"\"\" (\"Line Id\" bigint PRIMARY KEY, \"Item \"\"Name\"\"\" text, qty integer);
         INSERT INTO {}.\"Order \"\"Lines\"\"\" VALUES (9, 'nine', 1), (10, 'ten', 2), (11, 'eleven', 3)",
        other.name, other.name
    )))
    .execute(&app)
    .await
    .expect("create the table");
    let src = PgSource::open(&db.url).await.expect("open");
    let table = format!("{}.Order \"Lines\"", other.name);
    let (key, item) = ("Line Id", "Item \"Name\"");

    let info = src.describe(&table).await.expect("describe");
    assert!(
        info.column(key)
            .is_some_and(|c| c.primary_key && c.data_type == "bigint")
    );
    assert!(
        matches!(
            src.describe("Order \"Lines\"").await,
            Err(StoreError::Schema(_))
        ),
        "unqualified, the name is looked up in the search_path only"
    );

    let rows = src
        .scan_page(&table, key, &[item], Some("9"), 10)
        .await
        .expect("scan");
    assert_eq!(
        rows.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
        ["10", "11"]
    );
    let got = src
        .fetch(&table, key, &[item], &["11".into()])
        .await
        .expect("fetch");
    assert_eq!(
        got[0].values.get(item).cloned().flatten().as_deref(),
        Some("eleven")
    );

    src.install_capture(&table, key, &[item])
        .await
        .expect("install");
    assert!(src.capture_installed(&table).await.expect("installed?"));
    let from = src.change_position().await.expect("position");
    let written = src
        .write(
            &table,
            key,
            &[RowWrite {
                key: "10".into(),
                set: vec![(item.to_string(), Some("TEN".into()))],
                expect: vec![(item.to_string(), Some("ten".into()))],
            }],
        )
        .await
        .expect("write");
    assert_eq!(written, ["10"]);
    let (seen, _) = suite::read_changes_until(&src, &table, Some(&from), "10", 10).await;
    assert_eq!(seen, ["10"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_transaction_holds_the_updated_at_frontier_back() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let app = PgPool::connect(&db.url).await.expect("connect");
    sqlx::raw_sql(
        "CREATE TABLE events (id integer PRIMARY KEY, body text, updated_at timestamptz NOT NULL DEFAULT now());
         INSERT INTO events (id, body) VALUES (1, 'old')",
    )
    .execute(&app)
    .await
    .expect("create");
    let src = PgSource::open(&db.url).await.expect("open");

    // A starts and so far only reads; its rows will be stamped with its start, `now()`.
    let mut a = session(&db).await;
    let mut ta = a.begin().await.expect("begin A");
    let a_start: String = sqlx::query_scalar("SELECT now()::text")
        .fetch_one(&mut *ta)
        .await
        .expect("A's start");
    // B writes later and commits: the largest visible timestamp is B's.
    sqlx::query("INSERT INTO events (id, body) VALUES (2, 'by B')")
        .execute(&app)
        .await
        .expect("B");
    let frontier = src
        .updated_frontier("events", "updated_at")
        .await
        .expect("frontier")
        .expect("a frontier");
    let held: bool = sqlx::query_scalar(
        "SELECT CAST($1 AS timestamptz) <= CAST($2 AS timestamptz)
            AND CAST($1 AS timestamptz) < (SELECT MAX(updated_at) FROM events)",
    )
    .bind(&frontier)
    .bind(&a_start)
    .fetch_one(&app)
    .await
    .expect("compare");
    assert!(
        held,
        "frontier {frontier} must not pass A's start {a_start}"
    );

    // A now writes (stamped with its start, before B's row) and commits: a pass starting at
    // the frontier reads it.
    sqlx::query("INSERT INTO events (id, body) VALUES (3, 'by A')")
        .execute(&mut *ta)
        .await
        .expect("A writes");
    ta.commit().await.expect("A commits");
    let page = src
        .updated_page(&UpdatedPage {
            table: "events",
            key: "id",
            columns: &["body", "updated_at"],
            ts_column: "updated_at",
            since: Some(&frontier),
            after: None,
            limit: 100,
        })
        .await
        .expect("page");
    let keys: Vec<&str> = page.iter().map(|r| r.key.as_str()).collect();
    assert!(keys.contains(&"3") && keys.contains(&"2"), "{keys:?}");
    assert!(frontier.ends_with("+00"), "timestamptz in UTC: {frontier}");

    // Once nothing older is open (other tests share the server), it reaches the maximum.
    let top: String = sqlx::query_scalar("SELECT MAX(updated_at)::text FROM events")
        .fetch_one(&src.pool().clone())
        .await
        .expect("max");
    wait_until("the frontier reaches the latest row", || async {
        src.updated_frontier("events", "updated_at")
            .await
            .expect("frontier")
            .as_deref()
            == Some(top.as_str())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_read_as_stable_text_whatever_the_session_asks_for() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let app = PgPool::connect(&db.url).await.expect("connect");
    sqlx::raw_sql(
        "SET TimeZone = 'Europe/Berlin';
         CREATE TABLE kinds (id bigint PRIMARY KEY, at timestamptz, d date, span interval,
                             ratio double precision, amount numeric(10,2), flag boolean,
                             doc json, raw bytea, tags text[]);
         INSERT INTO kinds VALUES (1, '2024-03-01 12:00:00+01', '2024-03-01', '1 day 2 hours',
                                   0.1, 12.5, true, '{\"a\": 1}', '\\x0102', '{a,b}')",
    )
    .execute(&app)
    .await
    .expect("create");
    // The URL asks for other settings; the source's own win.
    let url = db.url.replace(
        "options=",
        "options=-c%20TimeZone%3DAsia/Tokyo%20-c%20IntervalStyle%3Dpostgres_verbose%20-c%20DateStyle%3DGerman%20",
    );
    let src = PgSource::open(&url).await.expect("open");
    let columns = [
        "at", "d", "span", "ratio", "amount", "flag", "doc", "raw", "tags",
    ];
    let row = src
        .fetch("kinds", "id", &columns, &["1".into()])
        .await
        .expect("fetch")
        .pop()
        .expect("row 1");
    let text = |c: &str| row.values.get(c).cloned().flatten();
    assert_eq!(text("at").as_deref(), Some("2024-03-01 11:00:00+00"));
    assert_eq!(text("d").as_deref(), Some("2024-03-01"));
    assert_eq!(text("span").as_deref(), Some("P1DT2H"));
    assert_eq!(text("ratio").as_deref(), Some("0.1"));
    assert_eq!(text("amount").as_deref(), Some("12.50"));
    assert_eq!(text("flag").as_deref(), Some("true"));
    assert_eq!(text("doc").as_deref(), Some("{\"a\": 1}"));
    assert_eq!(text("raw").as_deref(), Some("\\x0102"));
    assert_eq!(text("tags").as_deref(), Some("{a,b}"));

    // Writing what a row holds (in any spelling of the same text) counts as written; json,
    // which has no equality operator, is compared as text.
    let write = |column: &str, value: &str| RowWrite {
        key: "1".into(),
        set: vec![(column.to_string(), Some(value.to_string()))],
        expect: vec![],
    };
    let written = src
        .write(
            "kinds",
            "id",
            &[
                write("at", "2024-03-01 12:00:00+01"),
                write("doc", "{\"a\": 1}"),
                write("amount", "12.5"),
            ],
        )
        .await
        .expect("write equal values");
    assert_eq!(written, ["1", "1", "1"]);
    let changed = src
        .write("kinds", "id", &[write("doc", "{\"a\": 2}")])
        .await
        .expect("write json");
    assert_eq!(changed, ["1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_installs_both_succeed_and_log_once() {
    let Some((shop, db)) = shop().await else {
        return;
    };
    let (one, two) = (
        PgSource::open(&db.url).await.expect("open"),
        PgSource::open(&db.url).await.expect("open"),
    );
    let watched: &[&str] = &["name", "email"];
    let (a, b) = tokio::join!(
        one.install_capture("tags", "code", &["label"]),
        two.install_capture("tags", "code", &["label"]),
    );
    a.expect("install one");
    b.expect("install two");
    let (a, b) = tokio::join!(
        one.install_capture("customers", "id", watched),
        two.install_capture("customers", "id", watched),
    );
    a.expect("install one");
    b.expect("install two");
    let from = one.change_position().await.expect("position");
    shop.app
        .exec("UPDATE customers SET email = 'x@example.com' WHERE id = 3")
        .await
        .expect("update");
    let (seen, _) = suite::read_changes_until(&one, "customers", Some(&from), "3", 10).await;
    assert_eq!(seen, ["3"]);
    let rows: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM _crmsync_changes WHERE table_name = 'customers' AND row_key = '3'",
    )
    .fetch_one(pool(&shop))
    .await
    .expect("count");
    assert_eq!(rows, 1, "one trigger per operation, however many installs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_key_logs_the_old_key_too_and_null_keys_are_skipped() {
    let Some((shop, _db)) = shop().await else {
        return;
    };
    let src = &shop.source;
    let from = src.change_position().await.expect("position");
    shop.app
        .exec("UPDATE customers SET id = 100 WHERE id = 1")
        .await
        .expect("rekey");
    let (seen, _) = suite::read_changes_until(src, "customers", Some(&from), "100", 10).await;
    assert_eq!(
        seen,
        ["1", "100"],
        "the old key is gone, the new one is new"
    );

    // Customer 7 has no email: read by email, it cannot be addressed and is left out.
    let rows = src
        .scan_page("customers", "email", &["name"], None, 100)
        .await
        .expect("scan by email");
    assert_eq!(rows.len(), 11);
    assert!(
        rows.iter()
            .all(|r| r.values.get("name") != Some(&Some("c7".into())))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_refuses_views_and_unknown_columns() {
    let Some((shop, _db)) = shop().await else {
        return;
    };
    let src = &shop.source;
    match src.install_capture("customer_names", "id", &["name"]).await {
        Err(StoreError::Schema(m)) => assert!(m.contains("customer_names"), "{m}"),
        other => panic!("a view cannot carry capture triggers: {other:?}"),
    }
    match src.install_capture("customers", "id", &["nope"]).await {
        Err(StoreError::Schema(m)) => assert!(m.contains("nope"), "{m}"),
        other => panic!("an unknown watched column is a schema error: {other:?}"),
    }
    assert!(
        !src.capture_installed("customer_names")
            .await
            .expect("installed?")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_never_creates_a_database_and_identity_is_stable() {
    let Some((shop, db)) = shop().await else {
        return;
    };
    let missing = format!("{}_absent", db.name);
    let url = on_database(&db.url, &missing);
    match PgSource::open(&url).await {
        Err(StoreError::Open { .. }) => {}
        other => panic!("opening a missing database must fail: {other:?}"),
    }
    let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_database WHERE datname = $1")
        .bind(&missing)
        .fetch_one(pool(&shop))
        .await
        .expect("pg_database");
    assert_eq!(exists, 0);

    let id = shop.source.identity().await.expect("identity");
    let again = PgSource::open(&db.url)
        .await
        .expect("open")
        .identity()
        .await
        .expect("identity");
    assert_eq!(id, again, "stable across opens");
    let database: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(pool(&shop))
        .await
        .expect("database");
    assert!(
        id.starts_with("postgres:") && id.contains(&format!("/{database}/")),
        "{id}"
    );
    let Some(other) = TestDb::postgres().await else {
        return;
    };
    let elsewhere = PgSource::open(&other.url)
        .await
        .expect("open")
        .identity()
        .await
        .expect("identity");
    assert_ne!(id, elsewhere, "another schema is another app database");
}

/// A database of its own in `SQL_ASCII`, which stores any bytes: the one way a PostgreSQL
/// value can fail to be text. Dropped at the end (and best effort when the test fails).
struct AsciiDb {
    admin: String,
    name: String,
}

impl Drop for AsciiDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok(mut c) = PgConnection::connect(&admin).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut c)
                        .await;
                    }
                });
            }
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_are_not_utf8_are_reported_with_their_row() {
    // TestDb decides whether the server is there (and fails under CI when it is not).
    let Some(probe) = TestDb::postgres().await else {
        return;
    };
    let admin = std::env::var("CRMSYNC_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string());
    let guard = AsciiDb {
        admin: admin.clone(),
        name: format!("{}_ascii", probe.name),
    };
    let mut c = PgConnection::connect(&admin).await.expect("admin");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE {} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0",
        guard.name
    )))
    .execute(&mut c)
    .await
    .expect("create a SQL_ASCII database");
    let url = on_database(&admin, &guard.name);
    let app = PgPool::connect(&url).await.expect("connect");
    for statement in suite::fixture(Dialect::Postgres) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&app)
            .await
            .expect("fixture");
    }
    sqlx::query("UPDATE customers SET email = E'caf\\xe9' WHERE id = 2")
        .execute(&app)
        .await
        .expect("store a latin-1 byte");
    let src = PgSource::open(&url).await.expect("open");
    let rows = src
        .scan_page("customers", "id", &["name", "email"], None, 3)
        .await
        .expect("scan despite the bytes");
    assert_eq!(rows.len(), 3);
    let two = &rows[1];
    assert_eq!(two.key, "2");
    assert_eq!(
        two.values.get("name").cloned().flatten().as_deref(),
        Some("c2")
    );
    assert_eq!(two.unreadable.len(), 1, "{two:?}");
    assert_eq!(two.unreadable[0].0, "email");
    assert!(
        two.unreadable[0].1.contains("UTF-8"),
        "{:?}",
        two.unreadable
    );
    assert!(rows[0].unreadable.is_empty() && rows[2].unreadable.is_empty());
    src.pool().close().await;
    app.close().await;
    drop(guard);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_keys_are_the_rows_keys_whatever_their_type() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let app = PgPool::connect(&db.url).await.expect("connect");
    sqlx::raw_sql(
        "CREATE TABLE codes (code char(4) PRIMARY KEY, label text);
         CREATE TABLE moments (at timestamptz PRIMARY KEY, label text);
         CREATE TABLE stamps (at timestamp PRIMARY KEY, label text)",
    )
    .execute(&app)
    .await
    .expect("create");
    let src = PgSource::open(&db.url).await.expect("open");
    let tables = [("codes", "code"), ("moments", "at"), ("stamps", "at")];
    for (table, key) in tables {
        src.install_capture(table, key, &["label"])
            .await
            .expect("install");
    }
    let from = src.change_position().await.expect("position");
    // The app's own session speaks another zone and date style.
    sqlx::raw_sql(
        "SET TimeZone = 'Asia/Tokyo'; SET DateStyle = 'German';
         INSERT INTO codes VALUES ('ab', 'x');
         INSERT INTO moments VALUES ('2024-03-01 20:00:00+09', 'x');
         INSERT INTO stamps VALUES ('2024-03-01 10:00:00', 'x')",
    )
    .execute(&app)
    .await
    .expect("insert");
    for (table, key) in tables {
        let rows = src
            .scan_page(table, key, &["label"], None, 10)
            .await
            .expect("scan");
        let row_key = rows.first().expect("one row").key.clone();
        let (seen, _) = suite::read_changes_until(&src, table, Some(&from), &row_key, 10).await;
        assert_eq!(seen, [row_key], "{table}: the log's key is the row's key");
        let fetched = src
            .fetch(table, key, &["label"], &seen)
            .await
            .expect("fetch");
        assert_eq!(fetched.len(), 1, "{table}: the logged key finds its row");
    }
    let moment = src
        .scan_page("moments", "at", &[], None, 1)
        .await
        .expect("scan");
    assert_eq!(moment[0].key, "2024-03-01 11:00:00+00");

    // A char(4) key is compared as char(4), not truncated to char(1) by its cast.
    sqlx::query("INSERT INTO codes VALUES ('a', 'short')")
        .execute(&app)
        .await
        .expect("insert a");
    let after_a = src
        .scan_page("codes", "code", &[], Some("a"), 10)
        .await
        .expect("scan");
    assert_eq!(
        after_a.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
        ["ab"]
    );
    let written = src
        .write(
            "codes",
            "code",
            &[RowWrite {
                key: "ab".into(),
                set: vec![("label".into(), Some("y".into()))],
                expect: vec![("label".into(), Some("x".into()))],
            }],
        )
        .await
        .expect("write");
    assert_eq!(written, ["ab"]);
    let short: String = sqlx::query_scalar("SELECT label FROM codes WHERE code = 'a'")
        .fetch_one(&app)
        .await
        .expect("row a");
    assert_eq!(short, "short", "the write touched `ab` only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_frontier_is_rounded_as_the_column_rounds() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let app = PgPool::connect(&db.url).await.expect("connect");
    // A timestamp(0) column stores now() rounded to the second; a row far in the future makes
    // the open transaction's start the frontier.
    sqlx::raw_sql(
        "CREATE TABLE ticks (id integer PRIMARY KEY, at timestamp(0) NOT NULL DEFAULT now());
         INSERT INTO ticks VALUES (1, '2999-01-01 00:00:00')",
    )
    .execute(&app)
    .await
    .expect("create");
    let src = PgSource::open(&db.url).await.expect("open");
    // A transaction that started in the first half of a second: its rows round down.
    let mut a = session(&db).await;
    let mut ta = loop {
        let mut t = a.begin().await.expect("begin A");
        let fraction: f64 =
            sqlx::query_scalar("SELECT (extract(microseconds FROM now()) % 1000000)::float8")
                .fetch_one(&mut *t)
                .await
                .expect("A's start");
        if fraction > 0.0 && fraction < 500_000.0 {
            break t;
        }
        t.rollback().await.expect("rollback");
    };
    let frontier = src
        .updated_frontier("ticks", "at")
        .await
        .expect("frontier")
        .expect("a frontier");
    sqlx::query("INSERT INTO ticks (id) VALUES (2)")
        .execute(&mut *ta)
        .await
        .expect("A writes");
    ta.commit().await.expect("A commits");
    let page = src
        .updated_page(&UpdatedPage {
            table: "ticks",
            key: "id",
            columns: &["at"],
            ts_column: "at",
            since: Some(&frontier),
            after: None,
            limit: 10,
        })
        .await
        .expect("page");
    let keys: Vec<&str> = page.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(
        keys,
        ["2", "1"],
        "A's rounded-down row is at or after the frontier {frontier}"
    );
}
