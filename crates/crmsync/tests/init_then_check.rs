//! Issue 11's `crmsync init` acceptance scenario through the binary, on SQLite and on
//! PostgreSQL: a Rails-shaped app database (users with e-mail, phone, country and a
//! confirmation time; accounts with a domain; orders in cents with a `state` and foreign keys;
//! order lines) becomes a proposal with the right objects, the cents scale, a stage map
//! skeleton listing the states found, and the associations. `check` against a real sandbox
//! says what is left to decide; with the skeleton filled in, `check` passes. Also: `--out`
//! never overwrites without `--force`, and an empty or unreachable database is a clear error.

mod support;

use crmsync_core::config::{Config, Secrets};
use crmsync_sandbox::{Sandbox, SandboxConfig};
use crmsync_store::testing::TestDb;
use std::path::{Path, PathBuf};
use support::cli::run;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Sqlite,
    Postgres,
}

/// The app's schema and rows, as a Rails migration would leave them.
fn rails_app(dialect: Dialect) -> Vec<String> {
    let (id, ts) = match dialect {
        Dialect::Sqlite => ("INTEGER PRIMARY KEY", "TEXT"),
        Dialect::Postgres => ("bigserial PRIMARY KEY", "timestamp(6)"),
    };
    let stamps = format!("created_at {ts} NOT NULL, updated_at {ts} NOT NULL");
    let mut out = vec![
        "CREATE TABLE schema_migrations (version varchar PRIMARY KEY)".to_string(),
        format!("CREATE TABLE accounts (id {id}, name varchar NOT NULL, domain varchar, {stamps})"),
        format!(
            "CREATE TABLE users (id {id}, email varchar NOT NULL, first_name varchar, last_name varchar, phone varchar, country varchar, email_verified_at {ts}, account_id bigint REFERENCES accounts (id), encrypted_password varchar NOT NULL, {stamps})"
        ),
        format!("CREATE TABLE products (id {id}, name varchar NOT NULL, {stamps})"),
        format!(
            "CREATE TABLE orders (id {id}, user_id bigint NOT NULL REFERENCES users (id), account_id bigint REFERENCES accounts (id), total_cents integer NOT NULL, state text NOT NULL, {stamps})"
        ),
        format!(
            "CREATE TABLE order_lines (id {id}, order_id bigint NOT NULL REFERENCES orders (id), product_id bigint NOT NULL REFERENCES products (id), quantity integer NOT NULL, unit_price_cents integer NOT NULL, {stamps})"
        ),
    ];
    let now = "'2026-01-10 09:30:00'";
    out.push(format!(
        "INSERT INTO accounts (id, name, domain, created_at, updated_at) VALUES (1, 'Acme Robotics', 'ACME.example', {now}, {now}), (2, 'Globex', NULL, {now}, {now})"
    ));
    out.push(format!(
        "INSERT INTO users (id, email, first_name, last_name, phone, country, email_verified_at, account_id, encrypted_password, created_at, updated_at) VALUES
         (1, 'ada@acme.example', 'Ada', 'Lovelace', '030 1234567', 'DE', {now}, 1, 'x', {now}, {now}),
         (2, ' Grace@Globex.example ', 'Grace', 'Hopper', '(202) 555-0143', 'US', {now}, 2, 'x', {now}, {now}),
         (3, 'alan@acme.example', 'Alan', NULL, '+44 20 7946 0958', NULL, NULL, 1, 'x', {now}, {now})"
    ));
    out.push(format!(
        "INSERT INTO products (id, name, created_at, updated_at) VALUES (1, 'Robot arm', {now}, {now})"
    ));
    out.push(format!(
        "INSERT INTO orders (id, user_id, account_id, total_cents, state, created_at, updated_at) VALUES
         (1, 1, 1, 129900, 'paid', {now}, {now}),
         (2, 2, 2, 4999, 'pending', {now}, {now}),
         (3, 1, 1, 100, 'shipped', {now}, {now}),
         (4, 3, NULL, 2500, 'paid', {now}, {now})"
    ));
    out.push(format!(
        "INSERT INTO order_lines (id, order_id, product_id, quantity, unit_price_cents, created_at, updated_at) VALUES (1, 1, 1, 2, 64950, {now}, {now})"
    ));
    out
}

/// The stage each order state gets when the skeleton is filled in.
fn stage_of(state: &str) -> &'static str {
    match state {
        "pending" => "appointmentscheduled",
        "paid" => "contractsent",
        _ => "closedwon",
    }
}

fn load(path: &Path) -> Config {
    crmsync_core::config::load(path, Secrets::NotNeeded)
        .unwrap_or_else(|e| panic!("the proposal loads: {e}"))
}

/// Runs `init`, checks the proposal, `check`s it against a sandbox before and after filling
/// in the stage map.
async fn init_then_check(source_url: &str, dir: &Path) {
    let out = dir.join("crmsync.toml");
    let r = run([
        "init",
        "--source",
        source_url,
        "--out",
        &out.display().to_string(),
    ])
    .await;
    assert_eq!(r.code, 0, "init:\n{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(
            "5 syncs (companies, contacts, deals, products, line_items), 1 status map to fill in"
        ),
        "{}",
        r.stderr
    );
    let text = std::fs::read_to_string(&out).expect("the proposal was written");

    // The same proposal on stdout without --out.
    let printed = run(["init", "--source", source_url]).await;
    assert_eq!(printed.code, 0, "{}", printed.stderr);
    assert_eq!(printed.stdout, text, "stdout and --out hold the same text");

    // The proposal: objects, scale, skeleton, associations.
    let config = load(&out);
    let by_name = |n: &str| {
        config
            .sync(n)
            .unwrap_or_else(|| panic!("sync {n} proposed:\n{text}"))
    };
    assert_eq!(
        config
            .raw
            .syncs
            .iter()
            .map(|s| (s.name.as_str(), s.table.as_str(), s.object.as_str()))
            .collect::<Vec<_>>(),
        [
            ("companies", "accounts", "companies"),
            ("contacts", "users", "contacts"),
            ("deals", "orders", "deals"),
            ("products", "products", "products"),
            ("line_items", "order_lines", "line_items")
        ]
    );
    assert_eq!(by_name("companies").fields["domain"].crm, "domain");
    let contacts = by_name("contacts");
    assert_eq!(
        contacts.fields["email"].confirmed_by.as_deref(),
        Some("email_verified_at")
    );
    assert!(
        text.contains("transform = [{ e164 = { region_column = \"country\" } }]"),
        "{text}"
    );
    assert_eq!(
        contacts.associate.iter().collect::<Vec<_>>(),
        [(&"account_id".to_string(), &"companies".to_string())]
    );
    let deals = by_name("deals");
    assert!(
        text.contains("total_cents = { crm = \"amount\", transform = [{ number = { divide_by = 100, decimals = 2 } }] }"),
        "{text}"
    );
    let map = deals.fields["state"].map.clone().expect("a stage map");
    assert_eq!(
        map.iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
        [("paid", ""), ("pending", ""), ("shipped", "")],
        "the states found, targets left empty"
    );
    assert_eq!(
        deals.associate.iter().collect::<Vec<_>>(),
        [
            (&"account_id".to_string(), &"companies".to_string()),
            (&"user_id".to_string(), &"contacts".to_string())
        ]
    );
    assert!(deals.associate.is_required("account_id"));
    assert!(!deals.associate.is_required("user_id"));
    let lines = by_name("line_items");
    assert_eq!(
        lines.associate.iter().collect::<Vec<_>>(),
        [
            (&"order_id".to_string(), &"deals".to_string()),
            (&"product_id".to_string(), &"products".to_string())
        ],
        "a line item goes with its deal and its product (hs_product_id)"
    );
    assert!(
        text.contains("unit_price_cents = { crm = \"price\", transform = [{ number = { divide_by = 100, decimals = 2 } }] }"),
        "{text}"
    );
    assert!(!text.contains("any-token"));

    // `check` against a real sandbox says what is left to decide.
    let sandbox = Sandbox::start("127.0.0.1:0", SandboxConfig::unlimited())
        .await
        .expect("sandbox starts");
    let text = text.replace(
        "base_url = \"http://127.0.0.1:4010\"",
        &format!("base_url = \"{}\"", sandbox.base_url()),
    );
    std::fs::write(&out, &text).expect("point the proposal at the sandbox");
    let cfg = out.display().to_string();
    let r = run(["check", "--config", cfg.as_str()]).await;
    assert_eq!(
        r.code, 1,
        "the skeleton is not filled in:\n{}\n{}",
        r.stdout, r.stderr
    );
    assert!(
        r.stdout.contains("error: deals.state: `map` has no `dealstage` value yet for `paid`, `pending`, `shipped`: set each to one of appointmentscheduled,"),
        "{}",
        r.stdout
    );

    // Filled in, it passes.
    let filled: String = text
        .lines()
        .map(|line| match line.split_once(" = \"\"") {
            Some((state, _)) if !line.starts_with('#') => {
                format!("{state} = \"{}\"", stage_of(state))
            }
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&out, filled).expect("fill in the stages");
    let r = run(["check", "--config", cfg.as_str()]).await;
    assert_eq!(r.code, 0, "check passes:\n{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("No problems found"), "{}", r.stdout);
    assert!(
        r.stdout.contains("note: contacts.email"),
        "Alan's unconfirmed address is held, a note: {}",
        r.stdout
    );
    sandbox.shutdown().await;
}

async fn sqlite_app(dir: &Path, statements: &[String]) -> String {
    let file: PathBuf = dir.join("shop.db");
    let url = format!("sqlite://{}", file.display());
    let opts = url
        .parse::<sqlx::sqlite::SqliteConnectOptions>()
        .expect("sqlite url")
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(opts)
        .await
        .expect("create the app file");
    for s in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(s.clone()))
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{e}: {s}"));
    }
    pool.close().await;
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_on_a_rails_sqlite_database_proposes_what_check_accepts_once_filled_in() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = sqlite_app(dir.path(), &rails_app(Dialect::Sqlite)).await;
    init_then_check(&url, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_on_a_rails_postgres_database_proposes_what_check_accepts_once_filled_in() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let pool = sqlx::PgPool::connect(&db.url)
        .await
        .expect("connect to the test schema");
    for s in rails_app(Dialect::Postgres) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(s.clone()))
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{e}: {s}"));
    }
    pool.close().await;
    let dir = tempfile::tempdir().expect("temp dir");
    init_then_check(&db.url, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_never_overwrites_without_force() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = sqlite_app(dir.path(), &rails_app(Dialect::Sqlite)).await;
    let out = dir.path().join("crmsync.toml");
    std::fs::write(&out, "# mine\n").expect("an existing file");
    let out_arg = out.display().to_string();
    let r = run(["init", "--source", url.as_str(), "--out", out_arg.as_str()]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("exists already") && r.stderr.contains("--force"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&out).expect("read"),
        "# mine\n",
        "untouched"
    );
    let r = run([
        "init",
        "--source",
        url.as_str(),
        "--out",
        out_arg.as_str(),
        "--force",
    ])
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        std::fs::read_to_string(&out)
            .expect("read")
            .contains("[[sync]]")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_on_an_empty_or_unreachable_database_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = sqlite_app(dir.path(), &[]).await;
    let r = run(["init", "--source", url.as_str()]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("has no tables or views"), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "nothing proposed: {}", r.stdout);

    let url = sqlite_app(
        dir.path(),
        &["CREATE TABLE widgets (id INTEGER PRIMARY KEY, label TEXT)".to_string()],
    )
    .await;
    let r = run(["init", "--source", url.as_str()]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("none of the tables") && r.stderr.contains("widgets"),
        "{}",
        r.stderr
    );

    let missing = format!("sqlite://{}", dir.path().join("nope.db").display());
    let r = run(["init", "--source", missing.as_str()]).await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot open source database"),
        "{}",
        r.stderr
    );

    // Nothing listens on port 1; the password never shows.
    let r = run([
        "init",
        "--source",
        "postgres://app:hunter2@127.0.0.1:1/shop",
    ])
    .await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("cannot open source database postgres://app:***@127.0.0.1:1/shop")
            && r.stderr.contains("Connection refused"),
        "the server's own reason: {}",
        r.stderr
    );
    assert!(!r.stderr.contains("hunter2"), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}
