//! `MysqlSource` on a real MariaDB/MySQL server: reading the user's tables as text, paging,
//! compare-and-set writes, the `updated_at` frontier, and trigger capture, above all that a
//! change committed late (with a lower `seq` than one already read) is never lost.
//!
//! Each test creates its own database (`TestDb::mysql()`), and skips when the server is
//! unreachable unless `CI=true`. Transactions that must stay open use connections of their
//! own; nothing waits by sleeping: each step is awaited before the next.

use crmsync_store::mysql::MysqlSource;
use crmsync_store::testing::TestDb;
use crmsync_store::{Capture, RowWrite, Source, StoreError, TableKind, UpdatedPage};
use sqlx::mysql::{MySqlConnection, MySqlPool, MySqlPoolOptions};
use sqlx::{AssertSqlSafe, Connection, Row};

/// A fresh database with `ddl` applied, our source on it, and a pool for direct SQL.
async fn setup(ddl: &[&str]) -> Option<(TestDb, MysqlSource, MySqlPool)> {
    let db = TestDb::mysql().await?;
    let admin = MySqlPoolOptions::new()
        .max_connections(2)
        .connect(&db.url)
        .await
        .expect("connect to the test database");
    for statement in ddl {
        exec(&admin, statement).await;
    }
    let source = MysqlSource::open(&db.url).await.expect("open the source");
    Some((db, source, admin))
}

async fn exec(pool: &MySqlPool, statement: &str) {
    sqlx::raw_sql(AssertSqlSafe(statement.to_string()))
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

async fn exec_on(conn: &mut MySqlConnection, statement: &str) {
    sqlx::raw_sql(AssertSqlSafe(statement.to_string()))
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

async fn scalar_i64(pool: &MySqlPool, statement: &str) -> i64 {
    sqlx::query_scalar(AssertSqlSafe(statement.to_string()))
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"))
}

async fn connection(db: &TestDb) -> MySqlConnection {
    MySqlConnection::connect(&db.url)
        .await
        .expect("a connection of its own")
}

fn write(key: &str, set: &[(&str, Option<&str>)], expect: &[(&str, Option<&str>)]) -> RowWrite {
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

/// Every key `changes_since` hands out from `cursor` on, page by page, and the last cursor.
async fn drain(
    source: &MysqlSource,
    table: &str,
    cursor: Option<String>,
    limit: usize,
) -> (Vec<String>, String) {
    let mut keys = Vec::new();
    let mut cursor = cursor;
    for _ in 0..1000 {
        let page = source
            .changes_since(table, cursor.as_deref(), limit)
            .await
            .expect("changes_since");
        assert!(
            page.keys.len() <= limit,
            "a page holds at most `limit` keys"
        );
        keys.extend(page.keys);
        cursor = Some(page.cursor);
        if !page.more {
            break;
        }
    }
    (keys, cursor.unwrap_or_default())
}

const CUSTOMERS: &str = "CREATE TABLE customers (
    id BIGINT PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    email VARCHAR(100) NULL,
    hubspot_id VARCHAR(40) NULL
) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci";

#[tokio::test]
async fn describe_reports_tables_views_generated_columns_and_missing_tables() {
    let Some((db, source, _admin)) = setup(&[
        "CREATE TABLE orders (
            id INT AUTO_INCREMENT PRIMARY KEY,
            status VARCHAR(20) NOT NULL DEFAULT 'new',
            total DECIMAL(10,2) NOT NULL,
            note TEXT NULL,
            doubled DECIMAL(12,2) AS (total * 2) VIRTUAL,
            stamped_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
        )",
        "CREATE VIEW open_orders AS SELECT id, status FROM orders WHERE status <> 'done'",
    ])
    .await
    else {
        return;
    };

    let t = source.describe("orders").await.expect("describe orders");
    assert_eq!(t.kind, TableKind::Table);
    let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["id", "status", "total", "note", "doubled", "stamped_at"]
    );
    let id = t.column("id").expect("id");
    assert!(id.primary_key && id.has_default && !id.nullable && !id.generated);
    assert!(id.data_type.starts_with("int"), "{}", id.data_type);
    let status = t.column("status").expect("status");
    assert!(status.has_default && !status.nullable && !status.primary_key);
    assert_eq!(status.data_type, "varchar(20)");
    let total = t.column("total").expect("total");
    assert!(!total.has_default && !total.nullable);
    let note = t.column("note").expect("note");
    assert!(
        note.nullable && !note.has_default,
        "nullable is not a default"
    );
    assert!(t.column("doubled").expect("doubled").generated);
    // An expression default is a default, not a generated column.
    let stamped = t.column("stamped_at").expect("stamped_at");
    assert!(stamped.has_default && !stamped.generated);

    // Qualified with the database, the same table.
    let qualified = source
        .describe(&format!("{}.orders", db.name))
        .await
        .expect("describe db.orders");
    assert_eq!(qualified.columns.len(), 6);

    let v = source.describe("open_orders").await.expect("describe view");
    assert_eq!(v.kind, TableKind::View);
    assert_eq!(v.columns.len(), 2);

    match source.describe("nope").await {
        Err(StoreError::Schema(m)) => assert!(m.contains("`nope`"), "{m}"),
        other => panic!("expected a schema error naming the table, got {other:?}"),
    }
    db.drop_now().await;
}

#[tokio::test]
async fn integer_keys_page_in_numeric_order_even_beyond_2_pow_53() {
    let Some((db, source, admin)) = setup(&[CUSTOMERS]).await else {
        return;
    };
    let mut expected: Vec<i64> = (1..=12).collect();
    // Distinct integers that are one and the same as a double: text compared as a float
    // would page past one of them.
    let big = 9_007_199_254_740_993_i64;
    expected.extend([big, big + 1, big + 2]);
    for k in &expected {
        exec(
            &admin,
            &format!("INSERT INTO customers (id, name) VALUES ({k}, 'c{k}')"),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = source
            .scan_page("customers", "id", &["name"], after.as_deref(), 4)
            .await
            .expect("scan_page");
        for r in &page {
            assert_eq!(
                r.values.get("name").cloned().flatten(),
                Some(format!("c{}", r.key))
            );
        }
        seen.extend(page.iter().map(|r| r.key.clone()));
        if page.len() < 4 {
            break;
        }
        after = page.last().map(|r| r.key.clone());
    }
    let expected: Vec<String> = expected.iter().map(i64::to_string).collect();
    assert_eq!(seen, expected, "9 before 10, every big key once");
    assert_eq!(source.count("customers").await.expect("count"), 15);

    // The index is used: the shape of `scan_page`'s statement plans as a range on the
    // primary key, not a scan of every row.
    let plan = sqlx::query(
        "EXPLAIN SELECT id FROM customers WHERE id IS NOT NULL AND id > CAST(? AS SIGNED) ORDER BY id LIMIT 4",
    )
    .bind("9")
    .fetch_one(&admin)
    .await
    .expect("explain");
    let key: Option<String> = plan.try_get("key").expect("the plan's key");
    assert_eq!(key.as_deref(), Some("PRIMARY"));
    db.drop_now().await;
}

#[tokio::test]
async fn fetch_returns_the_rows_that_exist() {
    let Some((db, source, admin)) = setup(&[CUSTOMERS]).await else {
        return;
    };
    exec(&admin, "INSERT INTO customers (id, name, email) VALUES (1, 'Ada', 'ada@x.test'), (2, 'Bob', NULL), (10, 'Cy', 'cy@x.test')").await;
    // More keys than one statement takes, most of them without a row.
    let mut keys: Vec<String> = (100..1300).map(|k| k.to_string()).collect();
    keys.extend(["10".to_string(), "2".to_string(), "999999".to_string()]);
    let mut rows = source
        .fetch("customers", "id", &["name", "email"], &keys)
        .await
        .expect("fetch");
    rows.sort_by_key(|r| r.key.parse::<i64>().unwrap_or(0));
    let got: Vec<(&str, Option<&str>)> = rows
        .iter()
        .map(|r| {
            (
                r.key.as_str(),
                r.values.get("email").and_then(|v| v.as_deref()),
            )
        })
        .collect();
    assert_eq!(got, [("2", None), ("10", Some("cy@x.test"))]);
    assert!(rows.iter().all(|r| r.unreadable.is_empty()));
    db.drop_now().await;
}

#[tokio::test]
async fn a_value_that_is_not_text_is_reported_and_the_rest_of_the_row_is_read() {
    let Some((db, source, admin)) = setup(&["CREATE TABLE files (
            id INT PRIMARY KEY,
            title VARCHAR(50) CHARACTER SET utf8mb4,
            body BLOB,
            code VARCHAR(10) CHARACTER SET ascii,
            legacy VARCHAR(10) CHARACTER SET latin1
        )"])
    .await
    else {
        return;
    };
    // Bytes the server would refuse in strict mode get in the way legacy apps put them there.
    exec(&admin, "SET SESSION sql_mode = ''; SET NAMES binary; INSERT INTO files VALUES (1, 'report', 0xC328FF, 0xFF41, 0xE9), (2, 'fine', 'plain text', 'A1', 'ok'); SET NAMES utf8mb4").await;
    let mut rows = source
        .scan_page(
            "files",
            "id",
            &["title", "body", "code", "legacy"],
            None,
            10,
        )
        .await
        .expect("scan_page");
    rows.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(rows.len(), 2, "the row with bad bytes is still read");
    let bad = &rows[0];
    assert_eq!(bad.key, "1");
    assert_eq!(
        bad.values.get("title").cloned().flatten().as_deref(),
        Some("report")
    );
    // latin1 is a character set of its own: é converted, not refused.
    assert_eq!(
        bad.values.get("legacy").cloned().flatten().as_deref(),
        Some("é")
    );
    let unreadable: Vec<&str> = bad.unreadable.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(unreadable, ["body", "code"]);
    assert!(!bad.values.contains_key("body") && !bad.values.contains_key("code"));
    let (_, why) = &bad.unreadable[0];
    assert!(
        why.contains("not valid UTF-8") && why.contains("c328ff"),
        "{why}"
    );
    let good = &rows[1];
    assert!(good.unreadable.is_empty());
    assert_eq!(
        good.values.get("body").cloned().flatten().as_deref(),
        Some("plain text")
    );
    // Through fetch as well.
    let fetched = source
        .fetch("files", "id", &["body"], &["1".into()])
        .await
        .expect("fetch");
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].unreadable.len(), 1);
    db.drop_now().await;
}

#[tokio::test]
async fn writes_compare_and_set_and_an_equal_value_is_no_change() {
    let Some((db, source, admin)) = setup(&[CUSTOMERS]).await else {
        return;
    };
    exec(&admin, "INSERT INTO customers (id, name, email) VALUES (1, 'abc', 'a@x.test'), (2, 'bob', 'b@x.test'), (3, 'cy', NULL)").await;
    source
        .install_capture("customers", "id", &["name", "email"])
        .await
        .expect("install");
    let logged = "SELECT COUNT(*) FROM _crmsync_changes";
    assert_eq!(scalar_i64(&admin, logged).await, 0);

    let written = source
        .write(
            "customers",
            "id",
            &[
                // Case only, in a case-insensitive column: still a change to write.
                write(
                    "1",
                    &[("name", Some("ABC"))],
                    &[("email", Some("a@x.test"))],
                ),
                // The app changed the e-mail meanwhile: the expectation fails, nothing written.
                write(
                    "2",
                    &[("name", Some("Robert"))],
                    &[("email", Some("old@x.test"))],
                ),
                // A NULL expected and held.
                write("3", &[("email", Some("cy@x.test"))], &[("email", None)]),
                // No such row.
                write("4", &[("name", Some("nobody"))], &[]),
            ],
        )
        .await
        .expect("write");
    assert_eq!(written, ["1", "3"]);
    let names: Vec<(i64, String, Option<String>)> =
        sqlx::query_as("SELECT id, name, email FROM customers ORDER BY id")
            .fetch_all(&admin)
            .await
            .expect("read back");
    assert_eq!(
        names,
        [
            (1, "ABC".into(), Some("a@x.test".into())),
            (2, "bob".into(), Some("b@x.test".into())),
            (3, "cy".into(), Some("cy@x.test".into())),
        ]
    );
    assert_eq!(scalar_i64(&admin, logged).await, 2, "two rows changed");

    // The same values again: written already (reported), and no change logged, because no
    // UPDATE that fires the trigger is issued.
    let again = source
        .write(
            "customers",
            "id",
            &[
                write(
                    "1",
                    &[("name", Some("ABC"))],
                    &[("email", Some("a@x.test"))],
                ),
                write(
                    "3",
                    &[("email", Some("cy@x.test")), ("hubspot_id", None)],
                    &[],
                ),
            ],
        )
        .await
        .expect("write again");
    assert_eq!(again, ["1", "3"]);
    assert_eq!(scalar_i64(&admin, logged).await, 2, "no change logged");

    // A write-back into an unwatched column is written but is not a change.
    let back = source
        .write(
            "customers",
            "id",
            &[write("2", &[("hubspot_id", Some("hs-2"))], &[])],
        )
        .await
        .expect("write back");
    assert_eq!(back, ["2"]);
    assert_eq!(scalar_i64(&admin, logged).await, 2, "unwatched column");
    db.drop_now().await;
}

#[tokio::test]
async fn installing_capture_twice_leaves_one_trigger_per_event() {
    let Some((db, source, admin)) = setup(&[CUSTOMERS]).await else {
        return;
    };
    assert!(
        !source
            .capture_installed("customers")
            .await
            .expect("installed?")
    );
    source
        .install_capture("customers", "id", &["name"])
        .await
        .expect("install");
    // Again, with another watched set: replaced, not added.
    source
        .install_capture("customers", "id", &["name", "email"])
        .await
        .expect("install again");
    assert!(
        source
            .capture_installed("customers")
            .await
            .expect("installed?")
    );
    let triggers = scalar_i64(
        &admin,
        "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = 'customers'",
    )
    .await;
    assert_eq!(triggers, 3);
    exec(&admin, "INSERT INTO customers (id, name) VALUES (1, 'a')").await;
    exec(
        &admin,
        "UPDATE customers SET email = 'e@x.test' WHERE id = 1",
    )
    .await;
    assert_eq!(
        scalar_i64(&admin, "SELECT COUNT(*) FROM _crmsync_changes").await,
        2,
        "one entry per change, and the new watched set applies"
    );

    // A missing key or watched column is named, and nothing is installed for it.
    match source.install_capture("customers", "id", &["nope"]).await {
        Err(StoreError::Schema(m)) => assert!(m.contains("`nope`"), "{m}"),
        other => panic!("expected a schema error, got {other:?}"),
    }
    db.drop_now().await;
}

#[tokio::test]
async fn inserts_updates_and_deletes_are_logged_unwatched_updates_are_not() {
    let Some((db, source, admin)) = setup(&[CUSTOMERS]).await else {
        return;
    };
    source
        .install_capture("customers", "id", &["name", "email"])
        .await
        .expect("install");
    let start = source.change_position().await.expect("position");
    exec(
        &admin,
        "INSERT INTO customers (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c')",
    )
    .await;
    exec(
        &admin,
        "UPDATE customers SET hubspot_id = 'hs' WHERE id = 1",
    )
    .await;
    let (keys, after_inserts) = drain(&source, "customers", Some(start), 100).await;
    assert_eq!(
        keys,
        ["1", "2", "3"],
        "the unwatched update is not a change"
    );

    exec(&admin, "UPDATE customers SET name = 'B' WHERE id = 2").await;
    exec(&admin, "UPDATE customers SET email = NULL WHERE id = 3").await; // NULL -> NULL
    exec(&admin, "DELETE FROM customers WHERE id = 1").await;
    exec(&admin, "UPDATE customers SET id = 30 WHERE id = 3").await;
    let (keys, _) = drain(&source, "customers", Some(after_inserts.clone()), 100).await;
    assert_eq!(
        keys,
        ["2", "1", "3", "30"],
        "a changed key is the old one gone and the new one"
    );
    let ops: Vec<(String, String)> =
        sqlx::query_as("SELECT row_key, op FROM _crmsync_changes WHERE seq > 3 ORDER BY seq")
            .fetch_all(&admin)
            .await
            .expect("ops");
    let ops: Vec<(&str, &str)> = ops.iter().map(|(k, o)| (k.as_str(), o.as_str())).collect();
    assert_eq!(
        ops,
        [
            ("2", "update"),
            ("1", "delete"),
            ("3", "delete"),
            ("30", "update")
        ]
    );
    assert_eq!(
        source
            .changes_pending("customers", Some(&after_inserts))
            .await
            .expect("pending"),
        4
    );
    db.drop_now().await;
}

#[tokio::test]
async fn changes_since_pages_distinct_keys_and_prune_removes_what_was_read() {
    let Some((db, source, admin)) =
        setup(&[CUSTOMERS, "CREATE TABLE other (id INT PRIMARY KEY, v INT)"]).await
    else {
        return;
    };
    source
        .install_capture("customers", "id", &["name"])
        .await
        .expect("install");
    source
        .install_capture("other", "id", &["v"])
        .await
        .expect("install other");
    for k in 1..=5 {
        exec(
            &admin,
            &format!("INSERT INTO customers (id, name) VALUES ({k}, 'n{k}')"),
        )
        .await;
        exec(
            &admin,
            &format!("INSERT INTO other (id, v) VALUES ({k}, {k})"),
        )
        .await;
    }
    // Key 2 again: read once per page it falls in.
    exec(&admin, "UPDATE customers SET name = 'again' WHERE id = 2").await;

    let first = source
        .changes_since("customers", None, 2)
        .await
        .expect("page 1");
    assert_eq!(first.keys, ["1", "2"]);
    assert!(first.more);
    assert_eq!(
        source
            .changes_pending("customers", Some(&first.cursor))
            .await
            .expect("pending"),
        4,
        "3, 4, 5 and 2 again"
    );
    let (rest, last) = drain(&source, "customers", Some(first.cursor.clone()), 2).await;
    assert_eq!(rest, ["3", "4", "5", "2"]);
    // Nothing new: the cursor given comes back.
    let idle = source
        .changes_since("customers", Some(&last), 2)
        .await
        .expect("idle");
    assert!(idle.keys.is_empty() && !idle.more);
    assert_eq!(idle.cursor, last);

    // Prune up to the first page: only those entries of this table go.
    let removed = source
        .prune_changes("customers", &first.cursor)
        .await
        .expect("prune");
    assert_eq!(removed, 2);
    let (again, _) = drain(&source, "customers", None, 100).await;
    assert_eq!(again, ["3", "4", "5", "2"]);
    assert_eq!(
        source
            .prune_changes("customers", &last)
            .await
            .expect("prune all"),
        4
    );
    assert_eq!(
        source
            .changes_pending("customers", None)
            .await
            .expect("pending"),
        0
    );
    let (others, _) = drain(&source, "other", None, 100).await;
    assert_eq!(
        others,
        ["1", "2", "3", "4", "5"],
        "another table's log is kept"
    );
    // A cursor that is not ours prunes nothing.
    assert_eq!(
        source
            .prune_changes("other", "garbage")
            .await
            .expect("prune"),
        0
    );
    db.drop_now().await;
}

/// The hard case: A takes the lower `seq` and commits after B, which took the higher one.
#[tokio::test]
async fn a_change_that_commits_late_with_a_lower_seq_is_not_lost() {
    let Some((db, source, admin)) = setup(&[CUSTOMERS]).await else {
        return;
    };
    exec(&admin, "INSERT INTO customers (id, name) VALUES (1, 'one')").await;
    source
        .install_capture("customers", "id", &["name"])
        .await
        .expect("install");
    let start = source.change_position().await.expect("position");

    let mut a = connection(&db).await;
    let mut b = connection(&db).await;
    exec_on(&mut a, "BEGIN").await;
    exec_on(
        &mut a,
        "INSERT INTO customers (id, name) VALUES (100, 'late')",
    )
    .await;
    exec_on(
        &mut a,
        "UPDATE customers SET name = 'late too' WHERE id = 1",
    )
    .await;
    let a_seq: i64 = sqlx::query_scalar("SELECT MAX(seq) FROM _crmsync_changes")
        .fetch_one(&mut a)
        .await
        .expect("A's own seq");
    exec_on(
        &mut b,
        "INSERT INTO customers (id, name) VALUES (200, 'early')",
    )
    .await;
    let b_seq = scalar_i64(&admin, "SELECT MAX(seq) FROM _crmsync_changes").await;
    // The situation that loses changes with a `seq` cursor: B's higher seq is visible while
    // A's lower ones are not.
    assert!(a_seq < b_seq, "A holds seq {a_seq}, B {b_seq}");
    assert_eq!(
        scalar_i64(&admin, "SELECT COUNT(*) FROM _crmsync_changes").await,
        1,
        "only B's entry is visible"
    );

    let (before, cursor) = drain(&source, "customers", Some(start.clone()), 100).await;
    assert_eq!(before, ["200"], "B's change is read without waiting for A");

    exec_on(&mut a, "COMMIT").await;
    let (after, _) = drain(&source, "customers", Some(cursor), 100).await;
    assert_eq!(
        after,
        ["100", "1"],
        "A's changes come after the cursor that passed B"
    );
    db.drop_now().await;
}

#[tokio::test]
async fn change_position_covers_what_committed_and_not_what_is_still_open() {
    let Some((db, source, admin)) = setup(&[CUSTOMERS]).await else {
        return;
    };
    source
        .install_capture("customers", "id", &["name"])
        .await
        .expect("install");
    let mut a = connection(&db).await;
    exec_on(&mut a, "BEGIN").await;
    exec_on(
        &mut a,
        "INSERT INTO customers (id, name) VALUES (1, 'open')",
    )
    .await;
    exec(
        &admin,
        "INSERT INTO customers (id, name) VALUES (2, 'committed')",
    )
    .await;
    // A full scan starting now sees 2 (committed) but not 1 (open).
    let position = source.change_position().await.expect("position");
    exec_on(&mut a, "COMMIT").await;
    let (keys, _) = drain(&source, "customers", Some(position), 100).await;
    assert_eq!(
        keys,
        ["1"],
        "the open change follows the position, the committed one does not"
    );
    db.drop_now().await;
}

#[tokio::test]
async fn a_rolled_back_transaction_does_not_stall_capture() {
    let Some((db, source, admin)) = setup(&[CUSTOMERS]).await else {
        return;
    };
    source
        .install_capture("customers", "id", &["name"])
        .await
        .expect("install");
    let mut a = connection(&db).await;
    exec_on(&mut a, "BEGIN").await;
    exec_on(
        &mut a,
        "INSERT INTO customers (id, name) VALUES (1, 'never')",
    )
    .await;
    exec(&admin, "INSERT INTO customers (id, name) VALUES (2, 'b')").await;
    let (first, cursor) = drain(&source, "customers", None, 100).await;
    assert_eq!(first, ["2"]);
    exec_on(&mut a, "ROLLBACK").await;
    // The rolled-back seq is a hole forever; later changes flow past it at once.
    exec(&admin, "INSERT INTO customers (id, name) VALUES (3, 'c')").await;
    let (next, _) = drain(&source, "customers", Some(cursor), 100).await;
    assert_eq!(next, ["3"]);
    db.drop_now().await;
}

#[tokio::test]
async fn updated_pages_follow_timestamp_then_key() {
    let Some((db, source, admin)) = setup(&[
        "CREATE TABLE deals (id INT PRIMARY KEY, updated_at DATETIME(3) NULL, amount INT)",
    ])
    .await
    else {
        return;
    };
    exec(&admin, "INSERT INTO deals VALUES (10, '2024-01-02 00:00:00', 1), (9, '2024-01-02 00:00:00', 2), (1, '2024-01-01 00:00:00', 3), (2, '2024-01-03 00:00:00.5', 4)").await;
    let cols = ["updated_at", "amount"];
    let page = |since, after, limit| UpdatedPage {
        table: "deals",
        key: "id",
        columns: &cols,
        ts_column: "updated_at",
        since,
        after,
        limit,
    };
    let first = source
        .updated_page(&page(Some("2024-01-02 00:00:00"), None, 2))
        .await
        .expect("first page");
    let keys: Vec<&str> = first.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["9", "10"], "ties broken by the key, 9 before 10");
    assert_eq!(
        first[0]
            .values
            .get("updated_at")
            .cloned()
            .flatten()
            .as_deref(),
        Some("2024-01-02 00:00:00.000")
    );
    let next = source
        .updated_page(&page(None, Some(("2024-01-02 00:00:00.000", "10")), 10))
        .await
        .expect("next page");
    let keys: Vec<&str> = next.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["2"]);
    db.drop_now().await;
}

#[tokio::test]
async fn the_updated_frontier_is_held_back_by_a_transaction_still_writing() {
    let Some((db, source, admin)) = setup(&[
        "CREATE TABLE deals (id INT PRIMARY KEY, updated_at DATETIME(3) NOT NULL, amount INT)",
        "CREATE TABLE notes (id INT PRIMARY KEY, body TEXT)",
    ])
    .await
    else {
        return;
    };
    assert_eq!(
        source
            .updated_frontier("deals", "updated_at")
            .await
            .expect("empty"),
        None
    );
    // A row stamped in the future stands for "the newest timestamp visible".
    exec(
        &admin,
        "INSERT INTO deals VALUES (1, '2099-01-01 00:00:00.250', 1)",
    )
    .await;
    let newest = "2099-01-01 00:00:00.250";
    // Writers anywhere on the server hold the frontier back, including other tests running
    // beside this one: wait (with a deadline) for a moment when none is open.
    let free = frontier_once_free(&source, newest).await;
    assert_eq!(free, newest);

    // A transaction that has written (anywhere) and not committed: its rows may commit with
    // a timestamp older than what is visible.
    let mut w = connection(&db).await;
    exec_on(&mut w, "BEGIN").await;
    exec_on(&mut w, "INSERT INTO notes VALUES (1, 'open')").await;
    // Read after the writer started, so its start (whole seconds, rounded down) is not later.
    let server_now: String = sqlx::query_scalar("SELECT CAST(UTC_TIMESTAMP(3) AS CHAR)")
        .fetch_one(&admin)
        .await
        .expect("now");
    let held = source
        .updated_frontier("deals", "updated_at")
        .await
        .expect("frontier")
        .expect("a value");
    assert_eq!(held.len(), 23, "the column's own text form: {held}");
    assert!(
        held.as_str() <= server_now.as_str(),
        "held back to the writer's start: {held} <= {server_now}"
    );
    exec_on(&mut w, "COMMIT").await;
    assert_eq!(
        frontier_once_free(&source, newest).await,
        newest,
        "free again once it committed"
    );
    db.drop_now().await;
}

/// `updated_frontier` of `deals` once it equals `newest` (no writer open anywhere on the
/// server), or its last value when 30 seconds pass without that.
async fn frontier_once_free(source: &MysqlSource, newest: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let f = source
            .updated_frontier("deals", "updated_at")
            .await
            .expect("frontier")
            .unwrap_or_default();
        if f == newest || std::time::Instant::now() > deadline {
            return f;
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn mariadb_urls_open_and_the_identity_names_server_and_database() {
    let Some((db, _source, _admin)) = setup(&[CUSTOMERS]).await else {
        return;
    };
    let url = db.url.replacen("mysql://", "mariadb://", 1);
    let any = crmsync_store::open_source(&url)
        .await
        .expect("mariadb:// opens");
    assert_eq!(any.backend(), crmsync_store::Backend::Mysql);
    let id = any.identity().await.expect("identity");
    assert!(
        id.starts_with("mysql://") && id.contains(&format!("/{}", db.name)),
        "{id}"
    );
    assert_eq!(id, any.identity().await.expect("identity again"), "stable");
    // Never creates a database.
    let missing = db.url.replace(&db.name, "crmsync_no_such_database");
    assert!(matches!(
        MysqlSource::open(&missing).await,
        Err(StoreError::Open { .. })
    ));
    db.drop_now().await;
}

#[tokio::test]
async fn long_and_qualified_table_names_get_their_own_triggers() {
    let long = format!("t_{}", "x".repeat(60));
    let Some((db, source, admin)) = setup(&[&format!(
        "CREATE TABLE `{long}` (id VARCHAR(20) PRIMARY KEY, v INT)"
    )])
    .await
    else {
        return;
    };
    let qualified = format!("{}.{long}", db.name);
    source
        .install_capture(&qualified, "id", &["v"])
        .await
        .expect("install");
    assert!(
        source
            .capture_installed(&qualified)
            .await
            .expect("installed?")
    );
    exec(&admin, &format!("INSERT INTO `{long}` VALUES ('k''1', 1)")).await;
    let (keys, _) = drain(&source, &qualified, None, 10).await;
    assert_eq!(keys, ["k'1"]);
    db.drop_now().await;
}

/// Writers commit out of `seq` order, some roll back, while two readers poll with cursors of
/// their own (so stampers race for the clock): each reader ends up with every committed key,
/// and no writer ever waits on the readers long enough to hit a short lock timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_and_readers_lose_nothing() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::time::{Duration, Instant};

    let Some((db, source, admin)) = setup(&[CUSTOMERS]).await else {
        return;
    };
    source
        .install_capture("customers", "id", &["name"])
        .await
        .expect("install");
    let commits = Arc::new(AtomicI64::new(0));
    let reads = Arc::new(AtomicI64::new(0));
    let finished = Arc::new(AtomicI64::new(0));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut writers = Vec::new();
    for w in 0..4_i64 {
        let url = db.url.clone();
        let (commits, reads, finished) = (commits.clone(), reads.clone(), finished.clone());
        writers.push(tokio::spawn(async move {
            let mut conn = MySqlConnection::connect(&url).await.expect("writer");
            exec_on(&mut conn, "SET SESSION innodb_lock_wait_timeout = 2").await;
            let mut committed = Vec::new();
            for i in 0..40_i64 {
                let key = w * 1000 + i;
                exec_on(&mut conn, "BEGIN").await;
                exec_on(
                    &mut conn,
                    &format!("INSERT INTO customers (id, name) VALUES ({key}, 'w{w}')"),
                )
                .await;
                // Writer 0 now and then keeps its lower seq open until another writer has
                // committed a higher one and a reader has read after that: the late commit.
                if w == 0 && i % 4 == 1 {
                    let c0 = commits.load(Ordering::SeqCst);
                    while commits.load(Ordering::SeqCst) == c0
                        && finished.load(Ordering::SeqCst) < 3
                    {
                        assert!(Instant::now() < deadline, "no other writer committed");
                        tokio::task::yield_now().await;
                    }
                    let r0 = reads.load(Ordering::SeqCst);
                    while reads.load(Ordering::SeqCst) < r0 + 2 {
                        assert!(Instant::now() < deadline, "the readers stopped");
                        tokio::task::yield_now().await;
                    }
                }
                if key % 7 == 3 {
                    exec_on(&mut conn, "ROLLBACK").await;
                } else {
                    exec_on(&mut conn, "COMMIT").await;
                    commits.fetch_add(1, Ordering::SeqCst);
                    committed.push(key.to_string());
                }
            }
            finished.fetch_add(1, Ordering::SeqCst);
            committed
        }));
    }
    let mut cursors: [Option<String>; 2] = [None, None];
    let mut seen: [std::collections::HashSet<String>; 2] = Default::default();
    let mut expected: Option<std::collections::HashSet<String>> = None;
    loop {
        for r in 0..2 {
            let page = source
                .changes_since("customers", cursors[r].as_deref(), 17)
                .await
                .expect("changes_since");
            seen[r].extend(page.keys);
            cursors[r] = Some(page.cursor);
            reads.fetch_add(1, Ordering::SeqCst);
        }
        if expected.is_none() && writers.iter().all(|w| w.is_finished()) {
            let mut all = std::collections::HashSet::new();
            for w in writers.drain(..) {
                all.extend(w.await.expect("writer finished"));
            }
            expected = Some(all);
        }
        if let Some(all) = &expected
            && seen.iter().all(|s| s.is_superset(all))
        {
            for s in &seen {
                assert_eq!(s.len(), all.len(), "no rolled-back key is ever read");
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readers still miss keys: {:?}",
            expected
                .as_ref()
                .map(|all| all.len() - seen[0].intersection(all).count())
        );
        tokio::task::yield_now().await;
    }
    // The run did what it is for: changes with a lower seq committed after ones with a higher
    // seq had been read (their batch is later), which a `seq` cursor would have lost.
    let overtaken = scalar_i64(
        &admin,
        "SELECT COUNT(*) FROM _crmsync_changes a JOIN _crmsync_changes b ON a.seq < b.seq AND a.batch > b.batch",
    )
    .await;
    assert!(
        overtaken > 0,
        "no change committed out of seq order; the test proved nothing"
    );
    db.drop_now().await;
}

#[tokio::test]
async fn a_lock_wait_timeout_is_transient() {
    let Some((db, _source, admin)) = setup(&[CUSTOMERS]).await else {
        return;
    };
    exec(&admin, "INSERT INTO customers (id, name) VALUES (1, 'a')").await;
    let mut holder = connection(&db).await;
    exec_on(&mut holder, "BEGIN").await;
    exec_on(
        &mut holder,
        "UPDATE customers SET name = 'held' WHERE id = 1",
    )
    .await;
    let mut waiter = connection(&db).await;
    exec_on(&mut waiter, "SET SESSION innodb_lock_wait_timeout = 1").await;
    let err = sqlx::raw_sql("UPDATE customers SET name = 'waiting' WHERE id = 1")
        .execute(&mut waiter)
        .await
        .expect_err("the row is locked");
    let err = StoreError::from(err);
    assert!(err.is_transient(), "{err}");
    exec_on(&mut holder, "ROLLBACK").await;
    db.drop_now().await;
}

#[tokio::test]
async fn without_the_process_privilege_the_frontier_error_says_the_fix() {
    let Some((db, _source, admin)) =
        setup(&["CREATE TABLE deals (id INT PRIMARY KEY, updated_at DATETIME NOT NULL)"]).await
    else {
        return;
    };
    // A user of this test only, allowed this database and nothing else.
    let user = format!("u{}", &db.name[db.name.len() - 12..]);
    let created = sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'; GRANT ALL ON `{}`.* TO '{user}'@'%'",
        db.name
    )))
    .execute(&admin)
    .await;
    if let Err(e) = created {
        eprintln!("skipped: the test server refuses to create a user ({e})");
        db.drop_now().await;
        return;
    }
    let opts: sqlx::mysql::MySqlConnectOptions = db.url.parse().expect("test URL");
    let url = format!(
        "mysql://{user}:pw@{}:{}/{}",
        opts.get_host(),
        opts.get_port(),
        db.name
    );
    let limited = MysqlSource::open(&url)
        .await
        .expect("open as the limited user");
    let result = limited.updated_frontier("deals", "updated_at").await;
    exec(&admin, &format!("DROP USER '{user}'@'%'")).await;
    match result {
        Err(StoreError::Schema(m)) => assert!(m.contains("GRANT PROCESS"), "{m}"),
        other => panic!("expected the privilege to be named, got {other:?}"),
    }
    db.drop_now().await;
}
