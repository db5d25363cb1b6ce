//! The contract suite of the app database ([`Source`] + [`Capture`]): one public async
//! function per promise, generic over the backend, each given a [`Shop`]: a fresh source whose
//! database holds the same small shop on every backend (see [`fixture`]), and a raw
//! connection to that database ([`AppDb`]) through which the test makes the app's own edits.
//!
//! A backend's test file builds a `Shop` per test (its own file, schema or database) and calls
//! each function; `tests/source_contract.rs` does so for every backend. The functions assert
//! with `assert!`/`expect` (they are tests) and never sleep to wait for work: a change becomes
//! readable when the backend says it is committed-safe (on PostgreSQL, after every older
//! transaction on the server ended), so they poll for a condition until a deadline.
//!
//! Absence is proven with a marker: to show that an edit was *not* logged, the test makes a
//! logged edit after it and waits for that one; a log that is read in commit-safe order would
//! have returned the first edit before (or with) the marker.

use crate::error::StoreError;
use crate::model::{Inserted, NewRow, RowWrite, SourceRow, TableKind, UpdatedPage};
use crate::{Capture, Source};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How long a test waits for a committed change to become readable. On a shared PostgreSQL
/// server another session's long transaction holds capture back, so this is generous; a
/// passing test returns as soon as the change is there.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The SQL dialect of an app database, for the fixture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
    Mysql,
}

/// A raw connection to the app database, for the app's own edits in a test.
#[derive(Debug, Clone)]
pub enum AppDb {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
    Mysql(sqlx::MySqlPool),
}

impl AppDb {
    pub fn dialect(&self) -> Dialect {
        match self {
            AppDb::Sqlite(_) => Dialect::Sqlite,
            AppDb::Postgres(_) => Dialect::Postgres,
            AppDb::Mysql(_) => Dialect::Mysql,
        }
    }

    /// Runs `statement` (one statement, or several separated by `;`) and commits it.
    pub async fn exec(&self, statement: impl Into<String>) -> Result<(), StoreError> {
        let text = crate::ident::sql(statement.into());
        match self {
            AppDb::Sqlite(p) => sqlx::raw_sql(text).execute(p).await.map(drop),
            AppDb::Postgres(p) => sqlx::raw_sql(text).execute(p).await.map(drop),
            AppDb::Mysql(p) => sqlx::raw_sql(text).execute(p).await.map(drop),
        }
        .map_err(StoreError::from)
    }

    /// The integer `query` answers (a `COUNT(*)`).
    pub async fn count(&self, query: impl Into<String>) -> Result<i64, StoreError> {
        let text = crate::ident::sql(query.into());
        match self {
            AppDb::Sqlite(p) => sqlx::query_scalar(text).fetch_one(p).await,
            AppDb::Postgres(p) => sqlx::query_scalar(text).fetch_one(p).await,
            AppDb::Mysql(p) => sqlx::query_scalar(text).fetch_one(p).await,
        }
        .map_err(StoreError::from)
    }

    async fn run(&self, statement: impl Into<String>) {
        let statement = statement.into();
        if let Err(e) = self.exec(statement.clone()).await {
            panic!("app SQL failed: {e}\n{statement}");
        }
    }
}

/// The shop every backend provides, in its own dialect:
///
/// - `customers(id integer primary key, name text not null, email text, tier text default
///   'basic', note text, updated_at timestamp, name_length generated from name)` holding ids
///   1..=12 (inserted out of order); `updated_at` is `2020-01-01 00:00:00` for 1-4,
///   `2020-01-02 00:00:00` for 5-10, `2020-01-03 00:00:00` for 11-12; `name` is `c<id>`,
///   `email` `c<id>@example.com` except 7's, which is NULL;
/// - the view `customer_names(id, name)`;
/// - `tags(code varchar(20) primary key, label text, updated_at timestamp)`, empty.
pub fn fixture(dialect: Dialect) -> Vec<String> {
    let ddl = match dialect {
        Dialect::Sqlite => [
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, tier TEXT DEFAULT 'basic', note TEXT, updated_at TIMESTAMP, name_length INTEGER GENERATED ALWAYS AS (length(name)) VIRTUAL)",
            "CREATE TABLE tags (code VARCHAR(20) PRIMARY KEY, label TEXT, updated_at TIMESTAMP)",
        ],
        Dialect::Postgres => [
            "CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL, email text, tier text DEFAULT 'basic', note text, updated_at timestamp, name_length integer GENERATED ALWAYS AS (length(name)) STORED)",
            "CREATE TABLE tags (code varchar(20) PRIMARY KEY, label text, updated_at timestamp)",
        ],
        Dialect::Mysql => [
            "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, email VARCHAR(100), tier VARCHAR(20) DEFAULT 'basic', note TEXT, updated_at DATETIME, name_length INT GENERATED ALWAYS AS (CHAR_LENGTH(name)) STORED)",
            "CREATE TABLE tags (code VARCHAR(20) PRIMARY KEY, label TEXT, updated_at DATETIME)",
        ],
    };
    let mut out: Vec<String> = ddl.iter().map(|s| s.to_string()).collect();
    out.push("CREATE VIEW customer_names AS SELECT id, name FROM customers".into());
    for id in [10, 3, 12, 1, 9, 2, 11, 5, 4, 8, 6, 7] {
        let day = match id {
            1..=4 => 1,
            5..=10 => 2,
            _ => 3,
        };
        let email = if id == 7 {
            "NULL".to_string()
        } else {
            format!("'c{id}@example.com'")
        };
        out.push(format!(
            "INSERT INTO customers (id, name, email, updated_at) VALUES ({id}, 'c{id}', {email}, '2020-01-0{day} 00:00:00')"
        ));
    }
    out
}

/// A statement that leaves customer 2's `email` unreadable as text, on the backends that can
/// hold such a value (SQLite: bytes that are not UTF-8). `None` where the column cannot.
pub fn unreadable_email(dialect: Dialect) -> Option<&'static str> {
    match dialect {
        Dialect::Sqlite => {
            Some("UPDATE customers SET email = CAST(X'C328FF' AS TEXT) WHERE id = 2")
        }
        Dialect::Postgres | Dialect::Mysql => None,
    }
}

/// A fresh source over the shop, and a raw connection to its database.
#[derive(Debug)]
pub struct Shop<S> {
    pub source: S,
    pub app: AppDb,
}

impl<S: Source + Capture> Shop<S> {
    /// Creates the [`fixture`] through `app`, then opens the source with `open`.
    pub async fn create<F, Fut>(app: AppDb, open: F) -> Self
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<S, StoreError>>,
    {
        for statement in fixture(app.dialect()) {
            app.run(statement).await;
        }
        let source = open().await.expect("open the source over the shop");
        Shop { source, app }
    }
}

const CUSTOMER_COLUMNS: [&str; 4] = ["name", "email", "note", "updated_at"];

fn keys(rows: &[SourceRow]) -> Vec<String> {
    rows.iter().map(|r| r.key.clone()).collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn value<'a>(row: &'a SourceRow, column: &str) -> Option<&'a str> {
    row.values
        .get(column)
        .unwrap_or_else(|| panic!("row {} has no value for `{column}`: {row:?}", row.key))
        .as_deref()
}

async fn customer<S: Source>(shop: &Shop<S>, id: &str) -> Option<SourceRow> {
    shop.source
        .fetch("customers", "id", &CUSTOMER_COLUMNS, &[id.to_string()])
        .await
        .expect("fetch a customer")
        .pop()
}

/// Reads changes of `table` after `from` in pages of `limit` until `key` appears (or the
/// deadline passes: a failure). Returns the keys of every page read, in order, and the
/// cursor after the page holding `key`.
pub async fn read_changes_until<S: Capture>(
    source: &S,
    table: &str,
    from: Option<&str>,
    key: &str,
    limit: usize,
) -> (Vec<String>, String) {
    let deadline = Instant::now() + DEADLINE;
    let mut cursor = from.map(str::to_string);
    let mut seen = Vec::new();
    loop {
        let page = source
            .changes_since(table, cursor.as_deref(), limit)
            .await
            .expect("changes_since");
        let found = page.keys.iter().any(|k| k == key);
        seen.extend(page.keys);
        cursor = Some(page.cursor);
        if found {
            return (seen, cursor.unwrap_or_default());
        }
        if !page.more {
            assert!(
                Instant::now() < deadline,
                "change of `{table}` key {key} not readable within {DEADLINE:?}; read so far: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

// ----- describe ---------------------------------------------------------------------------

/// `describe` reports a table's columns (type, nullability, default, generated, key) and a
/// view as a view.
pub async fn describe_table_view_and_generated_column<S: Source + Capture>(shop: &Shop<S>) {
    let t = shop.source.describe("customers").await.expect("describe");
    assert_eq!(t.name, "customers");
    assert_eq!(t.kind, TableKind::Table);
    let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "id",
            "name",
            "email",
            "tier",
            "note",
            "updated_at",
            "name_length"
        ],
        "columns in table order"
    );
    let col = |n: &str| t.column(n).unwrap_or_else(|| panic!("column {n}"));
    assert!(col("id").primary_key);
    assert!(
        col("id").data_type.to_ascii_lowercase().contains("int"),
        "{:?}",
        col("id")
    );
    assert!(!col("name").primary_key);
    assert!(!col("name").nullable, "name is NOT NULL");
    assert!(col("email").nullable);
    assert!(col("tier").has_default, "tier has a default");
    assert!(!col("note").has_default);
    assert!(col("name_length").generated, "name_length is generated");
    assert!(!col("name").generated);
    assert_eq!(t.missing(&["name", "nope"]), ["nope"]);

    let v = shop
        .source
        .describe("customer_names")
        .await
        .expect("describe view");
    assert_eq!(v.kind, TableKind::View);
    assert!(
        v.column("id").is_some() && v.column("name").is_some(),
        "{v:?}"
    );
    assert!(v.column("email").is_none());
}

/// `describe` of a table that does not exist is a schema error naming it.
pub async fn describe_missing_table_is_a_schema_error<S: Source + Capture>(shop: &Shop<S>) {
    match shop.source.describe("no_such_table").await {
        Err(StoreError::Schema(message)) => {
            assert!(message.contains("no_such_table"), "{message}");
        }
        other => panic!("expected a schema error, got {other:?}"),
    }
}

// ----- reading ----------------------------------------------------------------------------

/// Keyset pages come in the key's own order (integer keys: 9 before 10; text keys: text
/// order), with the columns read as text and NULL as `None`.
pub async fn scan_pages_in_key_order<S: Source + Capture>(shop: &Shop<S>) {
    let src = &shop.source;
    assert_eq!(src.count("customers").await.expect("count"), 12);
    let page = |after: Option<&'static str>| async move {
        src.scan_page("customers", "id", &CUSTOMER_COLUMNS, after, 5)
            .await
            .expect("scan_page")
    };
    let first = page(None).await;
    assert_eq!(keys(&first), strings(&["1", "2", "3", "4", "5"]));
    assert_eq!(value(&first[0], "name"), Some("c1"));
    assert_eq!(value(&first[0], "email"), Some("c1@example.com"));
    assert_eq!(value(&first[0], "note"), None);
    assert_eq!(value(&first[0], "updated_at"), Some("2020-01-01 00:00:00"));
    assert!(first.iter().all(|r| r.unreadable.is_empty()));
    let second = page(Some("5")).await;
    assert_eq!(keys(&second), strings(&["6", "7", "8", "9", "10"]));
    assert_eq!(value(&second[1], "email"), None, "customer 7 has no email");
    assert_eq!(keys(&page(Some("10")).await), strings(&["11", "12"]));
    assert!(page(Some("12")).await.is_empty());

    shop.app
        .run("INSERT INTO tags (code, label) VALUES ('x2', 'two'), ('x10', 'ten'), ('x1', 'one')")
        .await;
    let tags = src
        .scan_page("tags", "code", &["label"], None, 10)
        .await
        .expect("scan tags");
    assert_eq!(
        keys(&tags),
        strings(&["x1", "x10", "x2"]),
        "text keys in text order"
    );
    let after = src
        .scan_page("tags", "code", &["label"], Some("x10"), 10)
        .await
        .expect("scan tags after x10");
    assert_eq!(keys(&after), strings(&["x2"]));
}

/// `fetch` returns the rows of the keys that exist; missing keys are simply absent, and any
/// number of keys may be asked for.
pub async fn fetch_returns_only_present_keys<S: Source + Capture>(shop: &Shop<S>) {
    let rows = shop
        .source
        .fetch(
            "customers",
            "id",
            &["name"],
            &strings(&["3", "999", "10", "12"]),
        )
        .await
        .expect("fetch");
    let found: BTreeSet<String> = keys(&rows).into_iter().collect();
    assert_eq!(found, ["10", "12", "3"].map(String::from).into());
    let ten = rows.iter().find(|r| r.key == "10").expect("row 10");
    assert_eq!(value(ten, "name"), Some("c10"));

    let many: Vec<String> = (1..=1500).map(|i| i.to_string()).collect();
    let rows = shop
        .source
        .fetch("customers", "id", &["name"], &many)
        .await
        .expect("fetch many");
    assert_eq!(rows.len(), 12, "every existing row once, across chunks");
    assert!(
        shop.source
            .fetch("customers", "id", &["name"], &[])
            .await
            .expect("fetch none")
            .is_empty()
    );
}

/// A value that cannot be read as text is reported with its column; the row's other values
/// are read, and other rows are unaffected. Skipped where the backend cannot hold one.
pub async fn unreadable_value_does_not_hide_the_row<S: Source + Capture>(shop: &Shop<S>) {
    let Some(statement) = unreadable_email(shop.app.dialect()) else {
        return;
    };
    shop.app.run(statement).await;
    let rows = shop
        .source
        .scan_page("customers", "id", &["name", "email"], None, 3)
        .await
        .expect("scan despite an unreadable value");
    assert_eq!(keys(&rows), strings(&["1", "2", "3"]));
    let two = &rows[1];
    assert_eq!(value(two, "name"), Some("c2"));
    assert!(!two.values.contains_key("email"), "{two:?}");
    assert_eq!(two.unreadable.len(), 1, "{two:?}");
    assert_eq!(two.unreadable[0].0, "email");
    assert!(rows[0].unreadable.is_empty() && rows[2].unreadable.is_empty());
    let fetched = customer(shop, "2").await.expect("fetch row 2");
    assert_eq!(fetched.unreadable.len(), 1);
}

// ----- writing ----------------------------------------------------------------------------

fn row_write(key: &str, set: &[(&str, Option<&str>)], expect: &[(&str, Option<&str>)]) -> RowWrite {
    let pairs = |p: &[(&str, Option<&str>)]| {
        p.iter()
            .map(|(c, v)| (c.to_string(), v.map(str::to_string)))
            .collect()
    };
    RowWrite {
        key: key.to_string(),
        set: pairs(set),
        expect: pairs(expect),
    }
}

/// `write` is compare-and-set: a row whose expected column changed is not overwritten, a
/// missing row is not reported, NULLs are written and expected, and the written keys are
/// returned.
pub async fn write_is_compare_and_set<S: Source + Capture>(shop: &Shop<S>) {
    let writes = [
        row_write(
            "2",
            &[("email", Some("new2@example.com"))],
            &[("name", Some("c2"))],
        ),
        // The app renamed customer 3 since we read it: not overwritten.
        row_write(
            "3",
            &[("email", Some("new3@example.com"))],
            &[("name", Some("stale"))],
        ),
        row_write("999", &[("email", Some("ghost@example.com"))], &[]),
        row_write(
            "4",
            &[("email", None)],
            &[("email", Some("c4@example.com"))],
        ),
        row_write(
            "7",
            &[("email", Some("e7@example.com"))],
            &[("email", None)],
        ),
        // An integer key given as text, two columns at once.
        row_write("10", &[("note", Some("vip")), ("tier", Some("gold"))], &[]),
    ];
    let written = shop
        .source
        .write("customers", "id", &writes)
        .await
        .expect("write");
    let written: BTreeSet<String> = written.into_iter().collect();
    assert_eq!(written, ["10", "2", "4", "7"].map(String::from).into());
    let email = |r: Option<SourceRow>| r.and_then(|r| value(&r, "email").map(str::to_string));
    assert_eq!(
        email(customer(shop, "2").await).as_deref(),
        Some("new2@example.com")
    );
    assert_eq!(
        email(customer(shop, "3").await).as_deref(),
        Some("c3@example.com")
    );
    assert_eq!(email(customer(shop, "4").await), None);
    assert_eq!(
        email(customer(shop, "7").await).as_deref(),
        Some("e7@example.com")
    );
    assert!(customer(shop, "999").await.is_none(), "write never inserts");
    let ten = customer(shop, "10").await.expect("row 10");
    assert_eq!(value(&ten, "note"), Some("vip"));
    let tier = shop
        .app
        .count("SELECT COUNT(*) FROM customers WHERE id = 10 AND tier = 'gold'")
        .await
        .expect("count");
    assert_eq!(tier, 1);

    // Repeating the same writes: the rows hold the values under the expectations, so they
    // count as written again (2's expectation still holds; 4's and 7's do not any more).
    let again = shop
        .source
        .write("customers", "id", &writes)
        .await
        .expect("write again");
    let again: BTreeSet<String> = again.into_iter().collect();
    assert_eq!(again, ["10", "2"].map(String::from).into());
}

/// Writes of one call are one transaction: a failing row undoes the rows before it.
pub async fn write_is_all_or_nothing<S: Source + Capture>(shop: &Shop<S>) {
    let writes = [
        row_write("1", &[("note", Some("first"))], &[]),
        row_write("2", &[("no_such_column", Some("x"))], &[]),
    ];
    let result = shop.source.write("customers", "id", &writes).await;
    assert!(
        result.is_err(),
        "a column that does not exist fails the write: {result:?}"
    );
    let one = customer(shop, "1").await.expect("row 1");
    assert_eq!(value(&one, "note"), None, "row 1's write was rolled back");
}

/// Writing values a row already holds counts as written and fires no change (no empty
/// update that the capture would mistake for an edit).
pub async fn write_of_equal_values_is_written_without_a_change<S: Source + Capture>(
    shop: &Shop<S>,
) {
    let src = &shop.source;
    src.install_capture("customers", "id", &["name", "email"])
        .await
        .expect("install");
    let from = src.change_position().await.expect("position");
    let written = src
        .write(
            "customers",
            "id",
            &[row_write(
                "1",
                &[("email", Some("c1@example.com"))],
                &[("name", Some("c1"))],
            )],
        )
        .await
        .expect("write equal values");
    assert_eq!(written, ["1"]);
    shop.app
        .run("UPDATE customers SET name = 'marker' WHERE id = 5")
        .await;
    let (seen, _) = read_changes_until(src, "customers", Some(&from), "5", 100).await;
    assert_eq!(seen, ["5"], "the equal write logged nothing");
}

// ----- insert -----------------------------------------------------------------------------

/// `accounts`: a Rails-shaped table with a key the database assigns, a NOT NULL timestamp
/// without a default, a unique e-mail and a CRM-id column, in each dialect.
fn accounts_ddl(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => {
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT NOT NULL UNIQUE, hubspot_id TEXT, created_at DATETIME NOT NULL, seen_at INTEGER, born DATE, label VARCHAR(40), score REAL)"
        }
        Dialect::Postgres => {
            "CREATE TABLE accounts (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, email text NOT NULL UNIQUE, hubspot_id bigint, created_at timestamp(6) NOT NULL, seen_at bigint, born date, label varchar(40), score double precision)"
        }
        Dialect::Mysql => {
            "CREATE TABLE accounts (id BIGINT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(100) NOT NULL UNIQUE, hubspot_id VARCHAR(30), created_at DATETIME(6) NOT NULL, seen_at BIGINT, born DATE, label VARCHAR(40), score DOUBLE)"
        }
    }
}

fn account(email: &str, crm_id: &str, now: &[&str]) -> NewRow {
    NewRow {
        values: vec![
            ("email".to_string(), Some(email.to_string())),
            ("hubspot_id".to_string(), Some(crm_id.to_string())),
        ],
        now: strings(now),
        unless: Some(("hubspot_id".to_string(), crm_id.to_string())),
    }
}

const ACCOUNT_COLUMNS: [&str; 6] = [
    "email",
    "hubspot_id",
    "created_at",
    "seen_at",
    "born",
    "label",
];

/// `insert` answers the key the database assigned (growing), and `now` columns hold the
/// current time in their type's form: a timestamp, Unix seconds, today's date, a text.
pub async fn insert_assigns_the_key_and_writes_now_in_each_columns_form<S: Source + Capture>(
    shop: &Shop<S>,
) {
    shop.app.run(accounts_ddl(shop.app.dialect())).await;
    let src = &shop.source;
    let before = chrono::Utc::now();
    let first = src
        .insert(
            "accounts",
            "id",
            &account(
                "a@example.com",
                "501",
                &["created_at", "seen_at", "born", "label"],
            ),
        )
        .await
        .expect("insert");
    let second = src
        .insert(
            "accounts",
            "id",
            &account("b@example.com", "502", &["created_at"]),
        )
        .await
        .expect("insert");
    let (Inserted::Row(k1), Inserted::Row(k2)) = (&first, &second) else {
        panic!("both inserted: {first:?}, {second:?}");
    };
    let (n1, n2): (i64, i64) = (
        k1.parse().expect("an integer key"),
        k2.parse().expect("an integer key"),
    );
    assert!(n2 > n1, "assigned keys grow: {k1}, {k2}");
    let rows = src
        .fetch("accounts", "id", &ACCOUNT_COLUMNS, std::slice::from_ref(k1))
        .await
        .expect("fetch");
    let row = rows.first().expect("the inserted row is there");
    assert_eq!(value(row, "email"), Some("a@example.com"));
    assert_eq!(value(row, "hubspot_id"), Some("501"));
    let near = |t: chrono::DateTime<chrono::Utc>, what: &str| {
        let d = (t - before).num_seconds().abs();
        assert!(
            d < 3600,
            "{what} is the current time (UTC): {t} vs {before}"
        );
    };
    let created = value(row, "created_at").expect("created_at is set");
    let created = chrono::NaiveDateTime::parse_from_str(created, "%Y-%m-%d %H:%M:%S%.f")
        .unwrap_or_else(|e| panic!("created_at `{created}` is a timestamp: {e}"))
        .and_utc();
    near(created, "created_at");
    let seen: i64 = value(row, "seen_at")
        .expect("seen_at is set")
        .parse()
        .expect("seen_at holds Unix seconds as an integer");
    near(
        chrono::DateTime::from_timestamp(seen, 0).expect("seconds"),
        "seen_at",
    );
    let born = value(row, "born").expect("born is set");
    let born = chrono::NaiveDate::parse_from_str(born, "%Y-%m-%d")
        .unwrap_or_else(|e| panic!("born `{born}` is a date: {e}"));
    assert!(
        (born - before.date_naive()).num_days().abs() <= 1,
        "born is today: {born}"
    );
    // Found again by the CRM-id column (typed: `502` finds the value in an integer column).
    let found = src
        .keys_by(
            "accounts",
            "id",
            "hubspot_id",
            &strings(&["501", "502", "999"]),
        )
        .await
        .expect("keys_by");
    assert_eq!(
        found,
        [
            ("501".to_string(), k1.clone()),
            ("502".to_string(), k2.clone())
        ]
        .into(),
        "each held value answers its row's key, an absent one nothing"
    );
    let label = value(row, "label").expect("label is set");
    chrono::NaiveDateTime::parse_from_str(label, "%Y-%m-%d %H:%M:%S%.f")
        .unwrap_or_else(|e| panic!("a text column gets `YYYY-MM-DD HH:MM:SS.f`: `{label}`: {e}"));
}

/// With `unless`, an insert of a value some row holds already inserts nothing and answers
/// that row's key, also when two inserts of the same value run at once.
pub async fn insert_is_guarded_by_the_unless_column<S: Source + Capture>(shop: &Shop<S>) {
    shop.app.run(accounts_ddl(shop.app.dialect())).await;
    let src = &shop.source;
    let row = account("a@example.com", "601", &["created_at"]);
    let Inserted::Row(k) = src.insert("accounts", "id", &row).await.expect("insert") else {
        panic!("the first insert inserts");
    };
    assert_eq!(
        src.insert("accounts", "id", &row)
            .await
            .expect("insert again"),
        Inserted::Exists(k.clone()),
        "a repeat answers the row that is there"
    );
    // Two at once, with different e-mails (the guard decides, not the unique e-mail).
    let (a, b) = (
        account("x@example.com", "602", &["created_at"]),
        account("y@example.com", "602", &["created_at"]),
    );
    let (ra, rb) = tokio::join!(
        src.insert("accounts", "id", &a),
        src.insert("accounts", "id", &b)
    );
    let (ra, rb) = (ra.expect("insert a"), rb.expect("insert b"));
    let rows = matches!(ra, Inserted::Row(_)) as u8 + matches!(rb, Inserted::Row(_)) as u8;
    assert_eq!(rows, 1, "one of two racing inserts inserts: {ra:?}, {rb:?}");
    let n = shop
        .app
        .count("SELECT COUNT(*) FROM accounts WHERE hubspot_id = 602")
        .await
        .expect("count");
    assert_eq!(n, 1, "one row for the value");
}

/// A row the database refuses for its content is an answer with the database's reason, and
/// writes nothing; a table that does not exist is an error.
pub async fn insert_refused_by_the_database_is_an_answer<S: Source + Capture>(shop: &Shop<S>) {
    shop.app.run(accounts_ddl(shop.app.dialect())).await;
    let src = &shop.source;
    // NOT NULL without a default, and nothing fills it.
    let got = src
        .insert("accounts", "id", &account("a@example.com", "701", &[]))
        .await
        .expect("an answer, not an error");
    let Inserted::Refused(why) = &got else {
        panic!("refused: {got:?}");
    };
    assert!(
        why.contains("created_at"),
        "the reason names the column: {why}"
    );
    // A duplicate of a unique column.
    src.insert(
        "accounts",
        "id",
        &account("b@example.com", "702", &["created_at"]),
    )
    .await
    .expect("insert");
    let got = src
        .insert(
            "accounts",
            "id",
            &account("b@example.com", "703", &["created_at"]),
        )
        .await
        .expect("an answer, not an error");
    assert!(
        matches!(got, Inserted::Refused(_)),
        "unique e-mail: {got:?}"
    );
    // A value the column's type does not take (not on SQLite, which keeps any value).
    if shop.app.dialect() != Dialect::Sqlite {
        let mut row = account("c@example.com", "704", &["created_at"]);
        row.values.push(("score".into(), Some("lots".into())));
        let got = src.insert("accounts", "id", &row).await.expect("an answer");
        assert!(matches!(got, Inserted::Refused(_)), "a bad number: {got:?}");
    }
    let n = shop
        .app
        .count("SELECT COUNT(*) FROM accounts")
        .await
        .expect("count");
    assert_eq!(n, 1, "only the good row was written");
    let err = src
        .insert("no_such_table", "id", &account("d@example.com", "705", &[]))
        .await;
    assert!(err.is_err(), "a missing table is an error: {err:?}");
}

/// An inserted row is logged by the capture triggers like any app insert.
pub async fn insert_is_captured<S: Source + Capture>(shop: &Shop<S>) {
    shop.app.run(accounts_ddl(shop.app.dialect())).await;
    let src = &shop.source;
    src.install_capture("accounts", "id", &["email"])
        .await
        .expect("install");
    let from = src.change_position().await.expect("position");
    let Inserted::Row(k) = src
        .insert(
            "accounts",
            "id",
            &account("a@example.com", "801", &["created_at"]),
        )
        .await
        .expect("insert")
    else {
        panic!("inserted");
    };
    let (seen, _) = read_changes_until(src, "accounts", Some(&from), &k, 100).await;
    assert_eq!(seen, [k], "the insert is one logged change");
}

// ----- capture ----------------------------------------------------------------------------

/// Installing capture twice is harmless (one log row per change, not two), and installing
/// again with other watched columns replaces what is watched.
pub async fn capture_install_is_idempotent<S: Source + Capture>(shop: &Shop<S>) {
    let src = &shop.source;
    assert!(
        !src.capture_installed("customers")
            .await
            .expect("installed?")
    );
    src.install_capture("customers", "id", &["name"])
        .await
        .expect("install");
    src.install_capture("customers", "id", &["name"])
        .await
        .expect("install again");
    assert!(
        src.capture_installed("customers")
            .await
            .expect("installed?")
    );
    assert!(!src.capture_installed("tags").await.expect("installed?"));

    let from = src.change_position().await.expect("position");
    shop.app
        .run("INSERT INTO customers (id, name) VALUES (30, 'c30')")
        .await;
    let (seen, cursor) = read_changes_until(src, "customers", Some(&from), "30", 100).await;
    assert_eq!(seen, ["30"]);
    let logged = shop
        .app
        .count(format!(
            "SELECT COUNT(*) FROM {} WHERE row_key = '30'",
            crate::CHANGE_LOG
        ))
        .await
        .expect("count log rows");
    assert_eq!(logged, 1, "one log row per change after installing twice");

    // email was not watched; after installing with it, it is.
    src.install_capture("customers", "id", &["name", "email"])
        .await
        .expect("install with email");
    shop.app
        .run("UPDATE customers SET email = 'changed@example.com' WHERE id = 1")
        .await;
    let (seen, _) = read_changes_until(src, "customers", Some(&cursor), "1", 100).await;
    assert_eq!(seen, ["1"]);
}

/// Inserts, updates of watched columns and deletes are logged, in order; an update of an
/// unwatched column is not.
pub async fn capture_logs_changes_but_not_unwatched_updates<S: Source + Capture>(shop: &Shop<S>) {
    let src = &shop.source;
    src.install_capture("customers", "id", &["name", "email"])
        .await
        .expect("install");
    let from = src.change_position().await.expect("position");
    for statement in [
        "INSERT INTO customers (id, name) VALUES (21, 'c21')",
        "UPDATE customers SET name = 'renamed' WHERE id = 2",
        "DELETE FROM customers WHERE id = 3",
        "UPDATE customers SET note = 'unwatched' WHERE id = 4",
        // Assigning a watched column its own value is no change either.
        "UPDATE customers SET name = 'c6' WHERE id = 6",
        "UPDATE customers SET email = NULL WHERE id = 8",
    ] {
        shop.app.run(statement).await;
    }
    let (seen, _) = read_changes_until(src, "customers", Some(&from), "8", 100).await;
    assert_eq!(seen, ["21", "2", "3", "8"]);
    assert_eq!(
        src.changes_pending("customers", Some(&from))
            .await
            .expect("pending"),
        4
    );
    assert_eq!(
        src.changes_pending("tags", Some(&from))
            .await
            .expect("pending"),
        0
    );
}

/// `changes_since` returns at most `limit` log rows per page (keys distinct within a page),
/// oldest first, and a cursor that the next page continues from; `more` says a page was
/// full, and a read with nothing new keeps the cursor.
pub async fn changes_since_pages_with_its_cursor<S: Source + Capture>(shop: &Shop<S>) {
    let src = &shop.source;
    src.install_capture("customers", "id", &["name"])
        .await
        .expect("install");
    let from = src.change_position().await.expect("position");
    for (id, name) in [(3, "a"), (1, "b"), (2, "c"), (3, "d"), (5, "e"), (6, "f")] {
        shop.app
            .run(format!(
                "UPDATE customers SET name = '{name}' WHERE id = {id}"
            ))
            .await;
    }
    // Wait until all six are readable, then page through them from the start.
    read_changes_until(src, "customers", Some(&from), "6", 100).await;
    let page = |cursor: String| async move {
        src.changes_since("customers", Some(&cursor), 2)
            .await
            .expect("changes_since")
    };
    let p1 = page(from.clone()).await;
    assert_eq!((p1.keys.clone(), p1.more), (strings(&["3", "1"]), true));
    let p2 = page(p1.cursor.clone()).await;
    assert_eq!((p2.keys.clone(), p2.more), (strings(&["2", "3"]), true));
    let p3 = page(p2.cursor.clone()).await;
    assert_eq!((p3.keys.clone(), p3.more), (strings(&["5", "6"]), true));
    let p4 = page(p3.cursor.clone()).await;
    assert_eq!((p4.keys.clone(), p4.more), (vec![], false));
    assert_eq!(p4.cursor, p3.cursor, "nothing new: the cursor stays");

    let whole = src
        .changes_since("customers", Some(&from), 100)
        .await
        .expect("one page");
    assert_eq!(
        whole.keys,
        strings(&["3", "1", "2", "5", "6"]),
        "distinct, oldest first"
    );
    assert!(!whole.more);
    assert_eq!(
        src.changes_pending("customers", Some(&from))
            .await
            .expect("pending"),
        5
    );
    assert_eq!(
        src.changes_pending("customers", Some(&p2.cursor))
            .await
            .expect("pending"),
        2
    );
    let other = src
        .changes_since("tags", None, 10)
        .await
        .expect("other table");
    assert!(other.keys.is_empty() && !other.more);
}

/// Pruning removes a table's changes at or before a cursor, and only those.
pub async fn prune_removes_changes_up_to_the_cursor<S: Source + Capture>(shop: &Shop<S>) {
    let src = &shop.source;
    src.install_capture("customers", "id", &["name"])
        .await
        .expect("install");
    src.install_capture("tags", "code", &["label"])
        .await
        .expect("install tags");
    for statement in [
        "UPDATE customers SET name = 'a' WHERE id = 1",
        "UPDATE customers SET name = 'b' WHERE id = 2",
        "INSERT INTO tags (code) VALUES ('t')",
        "UPDATE customers SET name = 'c' WHERE id = 3",
    ] {
        shop.app.run(statement).await;
    }
    read_changes_until(src, "tags", None, "t", 100).await;
    read_changes_until(src, "customers", None, "3", 100).await;
    let first = src.changes_since("customers", None, 2).await.expect("page");
    assert_eq!(first.keys, strings(&["1", "2"]));
    assert_eq!(
        src.prune_changes("customers", &first.cursor)
            .await
            .expect("prune"),
        2
    );
    assert_eq!(
        src.prune_changes("customers", &first.cursor)
            .await
            .expect("prune"),
        0
    );
    let rest = src
        .changes_since("customers", None, 10)
        .await
        .expect("rest");
    assert_eq!(rest.keys, strings(&["3"]), "changes after the cursor stay");
    let tags = src.changes_since("tags", None, 10).await.expect("tags");
    assert_eq!(tags.keys, strings(&["t"]), "other tables' changes stay");
}

// ----- capture = "updated_at" -------------------------------------------------------------

fn updated<'a>(
    since: Option<&'a str>,
    after: Option<(&'a str, &'a str)>,
    limit: usize,
) -> UpdatedPage<'a> {
    UpdatedPage {
        table: "customers",
        key: "id",
        columns: &["name", "updated_at"],
        ts_column: "updated_at",
        since,
        after,
        limit,
    }
}

/// Pages ordered by (timestamp, key): from `since` inclusive, then after a (ts, key)
/// position, with the key compared in its own type (9 before 10 at one timestamp).
pub async fn updated_page_orders_by_timestamp_then_key<S: Source + Capture>(shop: &Shop<S>) {
    let src = &shop.source;
    let day2 = "2020-01-02 00:00:00";
    let p1 = src
        .updated_page(&updated(Some(day2), None, 4))
        .await
        .expect("page 1");
    assert_eq!(keys(&p1), strings(&["5", "6", "7", "8"]));
    let last = p1.last().expect("a row");
    let ts = value(last, "updated_at").expect("a timestamp").to_string();
    assert_eq!(ts, day2);
    let p2 = src
        .updated_page(&updated(None, Some((&ts, &last.key)), 4))
        .await
        .expect("page 2");
    assert_eq!(keys(&p2), strings(&["9", "10", "11", "12"]));
    let p3 = src
        .updated_page(&updated(None, Some(("2020-01-03 00:00:00", "12")), 4))
        .await
        .expect("page 3");
    assert!(p3.is_empty());
    let all = src
        .updated_page(&updated(None, None, 100))
        .await
        .expect("all");
    assert_eq!(all.len(), 12);
    assert_eq!(keys(&all[..4]), strings(&["1", "2", "3", "4"]));
}

/// The frontier is the largest timestamp in its own text form (which `since` reads back),
/// `None` for an empty table.
pub async fn updated_frontier_is_the_latest_timestamp<S: Source + Capture>(shop: &Shop<S>) {
    let src = &shop.source;
    let frontier = src
        .updated_frontier("customers", "updated_at")
        .await
        .expect("frontier");
    assert_eq!(frontier.as_deref(), Some("2020-01-03 00:00:00"));
    let next = src
        .updated_page(&updated(frontier.as_deref(), None, 10))
        .await
        .expect("from the frontier");
    assert_eq!(keys(&next), strings(&["11", "12"]));
    assert_eq!(
        src.updated_frontier("tags", "updated_at")
            .await
            .expect("empty"),
        None
    );
}
