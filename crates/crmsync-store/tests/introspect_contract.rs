//! The schema-reading contract suite (`crmsync_store::testing::introspect_suite`, what
//! `crmsync init` reads) on every backend: each test builds the Rails-like catalog in a
//! database of its own (a temporary SQLite file, a fresh PostgreSQL schema, a fresh MariaDB
//! database) and runs one function of the suite on it.

use crmsync_store::mysql::MysqlSource;
use crmsync_store::postgres::PgSource;
use crmsync_store::sqlite::SqliteSource;
use crmsync_store::testing::TestDb;
use crmsync_store::testing::introspect_suite::{self as suite, Catalog};
use crmsync_store::testing::source_suite::AppDb;

/// What keeps a test's database alive; dropped after the catalog (field order).
#[allow(dead_code)]
enum Guard {
    Dir(tempfile::TempDir),
    Db(TestDb),
}

struct Env<S> {
    catalog: Catalog<S>,
    _guard: Guard,
}

async fn sqlite() -> Option<Env<SqliteSource>> {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("app.db").display());
    let opts = url
        .parse::<sqlx::sqlite::SqliteConnectOptions>()
        .expect("sqlite url")
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(opts)
        .await
        .expect("create the app file");
    let catalog = Catalog::create(AppDb::Sqlite(pool), || SqliteSource::open(&url)).await;
    Some(Env {
        catalog,
        _guard: Guard::Dir(dir),
    })
}

async fn postgres() -> Option<Env<PgSource>> {
    let db = TestDb::postgres().await?;
    let pool = sqlx::PgPool::connect(&db.url)
        .await
        .expect("connect to the test schema");
    let catalog = Catalog::create(AppDb::Postgres(pool), || PgSource::open(&db.url)).await;
    Some(Env {
        catalog,
        _guard: Guard::Db(db),
    })
}

async fn mariadb() -> Option<Env<MysqlSource>> {
    let db = TestDb::mysql().await?;
    let pool = sqlx::MySqlPool::connect(&db.url)
        .await
        .expect("connect to the test database");
    let catalog = Catalog::create(AppDb::Mysql(pool), || MysqlSource::open(&db.url)).await;
    Some(Env {
        catalog,
        _guard: Guard::Db(db),
    })
}

macro_rules! introspect_contract {
    ($backend:ident, $setup:ident) => {
        mod $backend {
            introspect_contract!(@tests $setup, [
                tables_are_sorted_without_crmsync_tables,
                foreign_keys_name_both_ends,
                declared_values_are_enum_labels,
                distinct_values_are_sorted_and_bounded,
                missing_table_is_a_schema_error,
            ]);
        }
    };
    (@tests $setup:ident, [$($test:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let Some(env) = super::$setup().await else { return };
                super::suite::$test(&env.catalog).await;
            }
        )*
    };
}

introspect_contract!(sqlite, sqlite);
introspect_contract!(postgres, postgres);
introspect_contract!(mariadb, mariadb);
