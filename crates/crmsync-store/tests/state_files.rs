//! A SQLite state database crmsync creates is its owner's alone: the file, its WAL and
//! shared-memory files and the worker lock are created 0600, whatever the umask.

#![cfg(unix)]

use crmsync_store::sqlite::SqliteState;
use crmsync_store::{Records, Role};
use std::os::unix::fs::PermissionsExt;

#[tokio::test]
async fn state_files_are_created_readable_by_their_owner_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("crmsync-state.db");
    let state = SqliteState::open(&format!("sqlite://{}", path.display()), Role::Worker)
        .await
        .expect("open");
    // A read makes sure the WAL and shared-memory files exist.
    state.link_count("s").await.expect("read");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(dir.path()).expect("dir") {
        let entry = entry.expect("entry");
        let mode = entry.metadata().expect("meta").permissions().mode() & 0o777;
        seen.push(entry.file_name().to_string_lossy().into_owned());
        assert_eq!(mode, 0o600, "{:?} has mode {mode:o}", entry.file_name());
    }
    seen.sort();
    assert!(seen.contains(&"crmsync-state.db".to_string()), "{seen:?}");
    assert!(
        seen.contains(&"crmsync-state.db.lock".to_string()),
        "{seen:?}"
    );
    assert!(
        seen.contains(&"crmsync-state.db-wal".to_string()),
        "{seen:?}"
    );
}
