//! The contract suite of [`Introspect`] (reading the app database's schema for `crmsync
//! init`): one public async function per promise, generic over the backend, each given a
//! [`Catalog`]: a fresh source whose database holds the same small Rails-like schema on every
//! backend (see [`fixture`]). `tests/introspect_contract.rs` runs every function on SQLite,
//! PostgreSQL and MariaDB.

use super::source_suite::{AppDb, Dialect};
use crate::error::StoreError;
use crate::model::ForeignKey;
use crate::{Capture, Introspect};
use std::collections::BTreeMap;

/// The schema every backend provides, in its own dialect:
///
/// - `accounts(id primary key, name not null, domain)`;
/// - `users(id primary key, email not null, account_id -> accounts.id, state)` with states
///   `b`, `a`, `B`, `a` and NULL;
/// - `orders(id primary key, user_id -> users (the primary key, implicitly on SQLite), status,
///   code)`: `status` is an enumerated type (`pending`, `paid`, `shipped`) where the database
///   has them (text on SQLite), holding `paid`, `pending` and NULL; `code` holds 60 distinct
///   values `c00` .. `c59`;
/// - `order_lines(order_id -> orders.id, line_no, primary key (order_id, line_no))`;
/// - `shipments(id primary key, (order_id, line_no) -> order_lines)`: a key of two columns;
/// - the view `paid_orders(id, code)`.
pub fn fixture(dialect: Dialect) -> Vec<String> {
    let status_type = match dialect {
        Dialect::Sqlite => "TEXT",
        Dialect::Postgres => "order_status",
        Dialect::Mysql => "ENUM('pending', 'paid', 'shipped')",
    };
    let text = match dialect {
        Dialect::Mysql => "VARCHAR(100)",
        _ => "TEXT",
    };
    let mut out = Vec::new();
    if dialect == Dialect::Postgres {
        out.push("CREATE TYPE order_status AS ENUM ('pending', 'paid', 'shipped')".to_string());
    }
    // SQLite: `REFERENCES users` names no column: the key is users' primary key.
    let user_ref = match dialect {
        Dialect::Sqlite => "REFERENCES users",
        _ => "REFERENCES users (id)",
    };
    out.extend([
        format!("CREATE TABLE accounts (id INTEGER PRIMARY KEY, name {text} NOT NULL, domain {text})"),
        format!("CREATE TABLE users (id INTEGER PRIMARY KEY, email {text} NOT NULL, account_id INTEGER REFERENCES accounts (id), state {text})"),
        format!("CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER {user_ref}, status {status_type}, code {text})"),
        "CREATE TABLE order_lines (order_id INTEGER NOT NULL REFERENCES orders (id), line_no INTEGER NOT NULL, PRIMARY KEY (order_id, line_no))".to_string(),
        "CREATE TABLE shipments (id INTEGER PRIMARY KEY, order_id INTEGER, line_no INTEGER, FOREIGN KEY (order_id, line_no) REFERENCES order_lines (order_id, line_no))".to_string(),
        "CREATE VIEW paid_orders AS SELECT id, code FROM orders WHERE status = 'paid'".to_string(),
        "INSERT INTO accounts (id, name, domain) VALUES (1, 'Acme', 'acme.example')".to_string(),
        "INSERT INTO users (id, email, account_id, state) VALUES (1, 'a@x.example', 1, 'b'), (2, 'b@x.example', 1, 'a'), (3, 'c@x.example', NULL, 'B'), (4, 'd@x.example', 1, 'a'), (5, 'e@x.example', 1, NULL)".to_string(),
    ]);
    let orders: Vec<String> = (0..60)
        .map(|i| {
            let status = match i % 3 {
                0 => "'paid'",
                1 => "'pending'",
                _ => "NULL",
            };
            format!("({}, {}, {status}, 'c{i:02}')", i + 1, i % 5 + 1)
        })
        .collect();
    out.push(format!(
        "INSERT INTO orders (id, user_id, status, code) VALUES {}",
        orders.join(", ")
    ));
    out
}

/// A fresh source over the [`fixture`], and a raw connection to its database.
#[derive(Debug)]
pub struct Catalog<S> {
    pub source: S,
    pub app: AppDb,
}

impl<S: Introspect + Capture> Catalog<S> {
    /// Creates the [`fixture`] through `app`, then opens the source with `open`.
    pub async fn create<F, Fut>(app: AppDb, open: F) -> Self
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<S, StoreError>>,
    {
        for statement in fixture(app.dialect()) {
            if let Err(e) = app.exec(statement.clone()).await {
                panic!("app SQL failed: {e}\n{statement}");
            }
        }
        let source = open().await.expect("open the source over the catalog");
        Catalog { source, app }
    }
}

fn key(columns: &[&str], table: &str, referenced: &[&str]) -> ForeignKey {
    ForeignKey {
        columns: columns.iter().map(|c| c.to_string()).collect(),
        table: table.to_string(),
        referenced: referenced.iter().map(|c| c.to_string()).collect(),
    }
}

/// `tables` lists tables and views in byte order, and never crmsync's own change log.
pub async fn tables_are_sorted_without_crmsync_tables<S: Introspect + Capture>(c: &Catalog<S>) {
    c.source
        .install_capture("orders", "id", &["status"])
        .await
        .expect("install capture (adds crmsync's change log)");
    let tables = c.source.tables().await.expect("tables");
    assert_eq!(
        tables,
        [
            "accounts",
            "order_lines",
            "orders",
            "paid_orders",
            "shipments",
            "users"
        ],
        "tables and the view, sorted, without `_crmsync_*`"
    );
}

/// `foreign_keys` names the columns, the referenced table and its columns, also for a key of
/// two columns and for SQLite's implicit reference to a primary key; a view has none.
pub async fn foreign_keys_name_both_ends<S: Introspect + Capture>(c: &Catalog<S>) {
    let fks =
        |t: &'static str| async move { c.source.foreign_keys(t).await.expect("foreign keys") };
    assert_eq!(
        fks("users").await,
        [key(&["account_id"], "accounts", &["id"])]
    );
    assert_eq!(
        fks("orders").await,
        [key(&["user_id"], "users", &["id"])],
        "the implicit reference names the primary key"
    );
    assert_eq!(
        fks("shipments").await,
        [key(
            &["order_id", "line_no"],
            "order_lines",
            &["order_id", "line_no"]
        )]
    );
    assert_eq!(
        fks("order_lines").await,
        [key(&["order_id"], "orders", &["id"])]
    );
    assert!(fks("accounts").await.is_empty());
    assert!(fks("paid_orders").await.is_empty(), "a view has no keys");
}

/// `declared_values` lists an enumerated type's labels in their declared order (none on
/// SQLite, which has no such types).
pub async fn declared_values_are_enum_labels<S: Introspect + Capture>(c: &Catalog<S>) {
    let declared = c
        .source
        .declared_values("orders")
        .await
        .expect("declared values");
    let expected: BTreeMap<String, Vec<String>> = match c.app.dialect() {
        Dialect::Sqlite => BTreeMap::new(),
        _ => [(
            "status".to_string(),
            vec!["pending".into(), "paid".into(), "shipped".into()],
        )]
        .into(),
    };
    assert_eq!(declared, expected);
    assert!(
        c.source
            .declared_values("users")
            .await
            .expect("declared values")
            .is_empty()
    );
}

/// `distinct_values` lists each non-NULL value once, in byte order (case-sensitive: `B`
/// before `a`), at most `limit` of them, and says when more exist.
pub async fn distinct_values_are_sorted_and_bounded<S: Introspect + Capture>(c: &Catalog<S>) {
    let d = c
        .source
        .distinct_values("users", "state", 50)
        .await
        .expect("distinct states");
    assert_eq!(d.values, ["B", "a", "b"], "NULL left out, byte order");
    assert!(!d.more);
    let d = c
        .source
        .distinct_values("orders", "status", 50)
        .await
        .expect("distinct statuses");
    assert_eq!(
        d.values,
        ["paid", "pending"],
        "values present, not declared"
    );
    assert!(!d.more);
    let d = c
        .source
        .distinct_values("orders", "code", 50)
        .await
        .expect("distinct codes");
    assert_eq!(d.values.len(), 50);
    assert!(d.more, "60 codes, 50 listed");
    assert!(d.values.windows(2).all(|w| w[0] < w[1]), "{:?}", d.values);
    let d = c
        .source
        .distinct_values("orders", "code", 60)
        .await
        .expect("distinct codes");
    assert_eq!(d.values.len(), 60);
    assert!(!d.more, "exactly the limit is not more");
    let d = c
        .source
        .distinct_values("orders", "user_id", 50)
        .await
        .expect("distinct user ids");
    assert_eq!(d.values, ["1", "2", "3", "4", "5"], "numbers as text");
}

/// Asking about a table that does not exist is a schema error naming it.
pub async fn missing_table_is_a_schema_error<S: Introspect + Capture>(c: &Catalog<S>) {
    let check = |what: &str, r: Result<(), StoreError>| match r {
        Err(StoreError::Schema(m)) => assert!(m.contains("no_such_table"), "{what}: {m}"),
        other => panic!("{what}: expected a schema error, got {other:?}"),
    };
    check(
        "foreign_keys",
        c.source.foreign_keys("no_such_table").await.map(drop),
    );
    check(
        "declared_values",
        c.source.declared_values("no_such_table").await.map(drop),
    );
    check(
        "distinct_values",
        c.source
            .distinct_values("no_such_table", "x", 5)
            .await
            .map(drop),
    );
}
