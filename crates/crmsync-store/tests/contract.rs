//! The state contract suite (`crmsync_store::testing::state_suite`) on every state backend:
//! memory, SQLite and PostgreSQL. Plus what only SQLite promises: the
//! one-worker lock, and a worker taking back what a killed predecessor left running.
//!
//! Invariant: every case runs on a fresh, empty state (a new temporary file on SQLite), so
//! cases never see each other's rows.
//!
//! Needs the `testing` feature (the suite lives in the library, for other crates to run too).
#![cfg(feature = "testing")]

use crmsync_store::memory::MemoryState;
use crmsync_store::sqlite::SqliteState;
use crmsync_store::testing::state_suite::{self, LEASE, T0};
use crmsync_store::{CaptureCommit, Inspect, NewJob, Queue, Role, StoreError};
use std::sync::{Arc, Mutex};
use tempfile::TempDir;

#[tokio::test]
async fn memory_keeps_the_state_contract() {
    state_suite::run_all(|| async { MemoryState::new() }).await;
}

#[tokio::test]
async fn any_state_keeps_the_state_contract() {
    // Through the enum the binary uses, so every delegated method is exercised.
    state_suite::run_all(|| async {
        let state = crmsync_store::open_state("memory:", Role::Worker)
            .await
            .expect("memory: opens");
        assert_eq!(
            crmsync_store::State::backend(&state),
            crmsync_store::Backend::Memory
        );
        state
    })
    .await;
}

/// A `sqlite://` URL of a new file in `dir`.
fn sqlite_url(dir: &TempDir) -> String {
    format!("sqlite://{}", dir.path().join("state.db").display())
}

#[tokio::test]
async fn sqlite_keeps_the_state_contract() {
    // Each case's directory lives until the whole suite is done.
    let dirs: Arc<Mutex<Vec<TempDir>>> = Arc::default();
    state_suite::run_all(|| {
        let dirs = dirs.clone();
        async move {
            let dir = tempfile::tempdir().expect("temp dir");
            let state = SqliteState::open(&sqlite_url(&dir), Role::Beside)
                .await
                .expect("open the SQLite state");
            dirs.lock().unwrap_or_else(|p| p.into_inner()).push(dir);
            state
        }
    })
    .await;
}

// PostgreSQL: each case in its own schema (skipped when the test server is unreachable,
// failed under CI=true).

#[tokio::test]
async fn postgres_keeps_the_state_contract() {
    let dbs: Arc<Mutex<Vec<crmsync_store::testing::TestDb>>> = Arc::default();
    if crmsync_store::testing::TestDb::postgres().await.is_none() {
        return;
    }
    state_suite::run_all(|| {
        let dbs = dbs.clone();
        async move {
            let db = crmsync_store::testing::TestDb::postgres()
                .await
                .expect("test server");
            let state = crmsync_store::postgres::PgState::open(&db.url)
                .await
                .expect("open");
            dbs.lock().unwrap_or_else(|p| p.into_inner()).push(db);
            state
        }
    })
    .await;
}

fn job(local_id: &str) -> NewJob {
    NewJob {
        sync: "s".to_string(),
        local_id: local_id.to_string(),
        payload: "{}".to_string(),
        hash: format!("h-{local_id}"),
        priority: 0,
    }
}

#[tokio::test]
async fn sqlite_serves_one_worker_at_a_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = sqlite_url(&dir);
    let first = SqliteState::open(&url, Role::Worker)
        .await
        .expect("the first worker opens");
    match SqliteState::open(&url, Role::Worker).await {
        Err(StoreError::Busy(message)) => assert!(
            message.contains("PostgreSQL"),
            "the refusal says how to run several workers: {message}"
        ),
        Err(e) => panic!("a second worker is refused as busy, not with {e}"),
        Ok(_) => panic!("a second worker must not open the same SQLite state"),
    }
    SqliteState::open(&url, Role::Beside)
        .await
        .expect("status and the like open beside a worker");
    drop(first);
    SqliteState::open(&url, Role::Worker)
        .await
        .expect("the lock goes with its worker");
}

#[tokio::test]
async fn sqlite_worker_takes_back_a_killed_workers_jobs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = sqlite_url(&dir);
    let dead = SqliteState::open(&url, Role::Worker)
        .await
        .expect("the first worker opens");
    dead.commit_capture(&CaptureCommit::jobs("s", vec![job("a"), job("b")], T0))
        .await
        .expect("commit_capture");
    let claimed = dead
        .claim("dead-worker", "s", 10, LEASE, T0)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2);
    // Killed: it settles nothing and releases nothing; the OS frees its lock file.
    dead.pool().close().await;
    drop(dead);

    let next = SqliteState::open(&url, Role::Worker)
        .await
        .expect("the next worker opens");
    for local in ["a", "b"] {
        let jobs = next.jobs_of("s", local).await.expect("jobs_of");
        assert_eq!(jobs.len(), 1);
        assert_eq!(
            (jobs[0].state.as_str(), jobs[0].owner.as_deref()),
            ("ready", None),
            "{local} is ready again, owned by nobody"
        );
    }
    let again = next
        .claim("next-worker", "s", 10, LEASE, T0 + 1)
        .await
        .expect("claim");
    assert_eq!(
        again.len(),
        2,
        "claimable at once, without waiting for the dead worker's leases"
    );
}
