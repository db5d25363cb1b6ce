//! Test support (feature `testing`), for this and other crates' tests: the contract suites
//! every backend runs (`state_suite`, `source_suite`, `introspect_suite`), and test databases
//! on real servers.
//!
//! Test databases for every test that needs a real server: each test gets
//! its own PostgreSQL schema or MariaDB database, dropped afterwards, so tests run in parallel
//! and leave nothing behind.
//!
//! The servers come from `CRMSYNC_TEST_POSTGRES_URL` and `CRMSYNC_TEST_MYSQL_URL` (defaults:
//! the local `postgres://postgres@127.0.0.1:5432/test` and `mysql://root@127.0.0.1:3306/test`).
//! A server that cannot be reached skips the test with a line on stderr, except under
//! `CI=true`, where it fails it: CI must never pass by skipping.

pub mod introspect_suite;
pub mod source_suite;
pub mod state_suite;

use sqlx::Connection;

/// Default PostgreSQL server for tests.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Default MariaDB/MySQL server for tests.
pub const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// Which server a [`TestDb`] lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Postgres,
    Mysql,
}

/// A database (MariaDB) or schema (PostgreSQL) of one test, dropped when this is dropped.
#[derive(Debug)]
pub struct TestDb {
    server: Server,
    /// The URL tests connect to: it selects the fresh database or schema.
    pub url: String,
    /// The server URL the database was created from.
    admin_url: String,
    /// Name of the schema or database.
    pub name: String,
    dropped: bool,
}

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn unreachable(server: &str, url: &str, e: &dyn std::fmt::Display) -> Option<TestDb> {
    let url = crate::backend::redact_url(url);
    if under_ci() {
        panic!("CI=true and the test {server} server {url} is unreachable: {e}");
    }
    eprintln!(
        "skipped: the test {server} server {url} is unreachable ({e}); CI=true makes this a failure"
    );
    None
}

fn fresh_name() -> String {
    format!("crmsync_t_{}", uuid::Uuid::new_v4().simple())
}

impl TestDb {
    /// A fresh schema on the test PostgreSQL server; `None` (skip) when it is unreachable
    /// outside CI.
    pub async fn postgres() -> Option<TestDb> {
        let admin_url = std::env::var("CRMSYNC_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string());
        let mut conn = match sqlx::PgConnection::connect(&admin_url).await {
            Ok(c) => c,
            Err(e) => return unreachable("PostgreSQL", &admin_url, &e),
        };
        let name = fresh_name();
        if let Err(e) = sqlx::query(crate::ident::sql(format!("CREATE SCHEMA {name}")))
            .execute(&mut conn)
            .await
        {
            return unreachable("PostgreSQL", &admin_url, &e);
        }
        let _ = conn.close().await;
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        // `options=-c search_path=...` makes every connection of the pool use the schema.
        let url = format!("{admin_url}{sep}options=-c%20search_path%3D{name}");
        Some(TestDb {
            server: Server::Postgres,
            url,
            admin_url,
            name,
            dropped: false,
        })
    }

    /// A fresh database on the test MariaDB/MySQL server; `None` (skip) when it is unreachable
    /// outside CI.
    pub async fn mysql() -> Option<TestDb> {
        let admin_url = std::env::var("CRMSYNC_TEST_MYSQL_URL")
            .unwrap_or_else(|_| DEFAULT_MYSQL_URL.to_string());
        let mut conn = match sqlx::MySqlConnection::connect(&admin_url).await {
            Ok(c) => c,
            Err(e) => return unreachable("MySQL", &admin_url, &e),
        };
        let name = fresh_name();
        if let Err(e) = sqlx::query(crate::ident::sql(format!(
            "CREATE DATABASE {name} CHARACTER SET utf8mb4"
        )))
        .execute(&mut conn)
        .await
        {
            return unreachable("MySQL", &admin_url, &e);
        }
        let _ = conn.close().await;
        // Replace the database part of the URL (after the host, before any query).
        let (base, query) = match admin_url.split_once('?') {
            Some((b, q)) => (b.to_string(), format!("?{q}")),
            None => (admin_url.clone(), String::new()),
        };
        let root = match base.rfind('/') {
            Some(i) if i > base.find("://").map_or(0, |j| j + 2) => &base[..i],
            _ => base.as_str(),
        };
        let url = format!("{root}/{name}{query}");
        Some(TestDb {
            server: Server::Mysql,
            url,
            admin_url,
            name,
            dropped: false,
        })
    }

    /// Which server this is on.
    pub fn server(&self) -> Server {
        self.server
    }

    /// Drops the schema or database now (also done, best effort, on drop).
    pub async fn drop_now(mut self) {
        drop_db(self.server, &self.admin_url, &self.name).await;
        self.dropped = true;
    }
}

async fn drop_db(server: Server, admin_url: &str, name: &str) {
    match server {
        Server::Postgres => {
            if let Ok(mut c) = sqlx::PgConnection::connect(admin_url).await {
                let _ = sqlx::query(crate::ident::sql(format!(
                    "DROP SCHEMA IF EXISTS {name} CASCADE"
                )))
                .execute(&mut c)
                .await;
                let _ = c.close().await;
            }
        }
        Server::Mysql => {
            if let Ok(mut c) = sqlx::MySqlConnection::connect(admin_url).await {
                let _ = sqlx::query(crate::ident::sql(format!("DROP DATABASE IF EXISTS {name}")))
                    .execute(&mut c)
                    .await;
                let _ = c.close().await;
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (server, admin, name) = (self.server, self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which cannot block on itself: clean up on a
        // thread with its own small runtime.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(drop_db(server, &admin, &name));
            }
        })
        .join();
    }
}
