//! The app-database contract suite (`crmsync_store::testing::source_suite`) on every backend:
//! each test builds the shop in a database of its own (a temporary SQLite file, a fresh
//! PostgreSQL schema, a fresh MariaDB database) and runs one function of the suite on it. A backend joins by adding one
//! `source_contract!` line with its setup.

use crmsync_store::mysql::MysqlSource;
use crmsync_store::postgres::PgSource;
use crmsync_store::sqlite::SqliteSource;
use crmsync_store::testing::TestDb;
use crmsync_store::testing::source_suite::{self as suite, AppDb, Shop};

/// What keeps a test's database alive; dropped after the shop (field order).
#[allow(dead_code)]
enum Guard {
    Dir(tempfile::TempDir),
    Db(TestDb),
}

struct Env<S> {
    shop: Shop<S>,
    _guard: Guard,
}

async fn sqlite() -> Option<Env<SqliteSource>> {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("shop.db").display());
    let opts = url
        .parse::<sqlx::sqlite::SqliteConnectOptions>()
        .expect("sqlite url")
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(opts)
        .await
        .expect("create the app file");
    let shop = Shop::create(AppDb::Sqlite(pool), || SqliteSource::open(&url)).await;
    Some(Env {
        shop,
        _guard: Guard::Dir(dir),
    })
}

async fn postgres() -> Option<Env<PgSource>> {
    let db = TestDb::postgres().await?;
    let pool = sqlx::PgPool::connect(&db.url)
        .await
        .expect("connect to the test schema");
    let shop = Shop::create(AppDb::Postgres(pool), || PgSource::open(&db.url)).await;
    Some(Env {
        shop,
        _guard: Guard::Db(db),
    })
}

async fn mariadb() -> Option<Env<MysqlSource>> {
    let db = TestDb::mysql().await?;
    let pool = sqlx::MySqlPool::connect(&db.url)
        .await
        .expect("connect to the test database");
    let shop = Shop::create(AppDb::Mysql(pool), || MysqlSource::open(&db.url)).await;
    Some(Env {
        shop,
        _guard: Guard::Db(db),
    })
}

macro_rules! source_contract {
    ($backend:ident, $setup:ident, [$($test:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(env) = super::$setup().await else { return };
                    super::suite::$test(&env.shop).await;
                }
            )*
        }
    };
    ($backend:ident, $setup:ident) => {
        source_contract!($backend, $setup, [
            describe_table_view_and_generated_column,
            describe_missing_table_is_a_schema_error,
            scan_pages_in_key_order,
            fetch_returns_only_present_keys,
            unreadable_value_does_not_hide_the_row,
            write_is_compare_and_set,
            write_is_all_or_nothing,
            write_of_equal_values_is_written_without_a_change,
            capture_install_is_idempotent,
            capture_logs_changes_but_not_unwatched_updates,
            changes_since_pages_with_its_cursor,
            prune_removes_changes_up_to_the_cursor,
            updated_page_orders_by_timestamp_then_key,
            updated_frontier_is_the_latest_timestamp,
            insert_assigns_the_key_and_writes_now_in_each_columns_form,
            insert_is_guarded_by_the_unless_column,
            insert_refused_by_the_database_is_an_answer,
            insert_is_captured,
        ]);
    };
}

source_contract!(sqlite, sqlite);
source_contract!(postgres, postgres);
source_contract!(mariadb, mariadb);
