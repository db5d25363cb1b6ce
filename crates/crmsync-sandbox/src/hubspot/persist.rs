//! `--state FILE`: the portal survives restarts. Loaded once at start; saved as JSON by a
//! background task at most every [`DEBOUNCE`] after changes, and once more on shutdown.
//!
//! Saves are atomic: the snapshot is written to `FILE.tmp` and renamed over `FILE`, so a
//! crash mid-save leaves the previous state intact.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::state::AppState;
use super::store::{Snapshot, Store};

/// Minimum time between two saves.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(500);

/// Why the state file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    /// The file system refused a read, write or rename.
    #[error("sandbox state file {path}: {source}; check the path and its permissions")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file exists but is not a sandbox snapshot.
    #[error(
        "sandbox state file {path} is not a valid snapshot ({source}); move it away to start empty"
    )]
    Format {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl From<PersistError> for std::io::Error {
    fn from(error: PersistError) -> Self {
        match error {
            PersistError::Io { source, .. } => source,
            PersistError::Format { .. } => {
                std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string())
            }
        }
    }
}

/// Reads the snapshot at `path`; `Ok(None)` if there is no file yet.
pub(crate) fn load(path: &Path) -> Result<Option<Store>, PersistError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(PersistError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let snapshot: Snapshot =
        serde_json::from_slice(&bytes).map_err(|source| PersistError::Format {
            path: path.to_owned(),
            source,
        })?;
    Ok(Some(Store::restore(snapshot)))
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Writes `bytes` to `path` atomically.
async fn write_atomically(path: &Path, bytes: Vec<u8>) -> Result<(), PersistError> {
    let io = |source| PersistError::Io {
        path: path.to_owned(),
        source,
    };
    let temp = temp_path(path);
    tokio::fs::write(&temp, bytes).await.map_err(io)?;
    tokio::fs::rename(&temp, path).await.map_err(io)
}

/// Saves if the store changed since `saved`; returns the generation now on disk.
pub(crate) async fn save_if_changed(
    state: &AppState,
    path: &Path,
    saved: Option<u64>,
) -> Result<Option<u64>, PersistError> {
    let (generation, bytes) = {
        let store = state.store();
        let generation = store.generation();
        if Some(generation) == saved {
            return Ok(saved);
        }
        let bytes =
            serde_json::to_vec(&store.snapshot()).map_err(|source| PersistError::Format {
                path: path.to_owned(),
                source,
            })?;
        (generation, bytes)
    };
    write_atomically(path, bytes).await?;
    Ok(Some(generation))
}

/// Saves after changes until the sandbox stops; spawned by `Sandbox::start`. Starts from
/// the generation loaded from disk so an unchanged portal is not rewritten.
pub(crate) async fn run(state: AppState, path: PathBuf, mut saved: Option<u64>) {
    loop {
        state.persist_wake().notified().await;
        match save_if_changed(&state, &path, saved).await {
            Ok(generation) => saved = generation,
            Err(error) => tracing::warn!(%error, "sandbox state not saved"),
        }
        tokio::time::sleep(DEBOUNCE).await;
    }
}
