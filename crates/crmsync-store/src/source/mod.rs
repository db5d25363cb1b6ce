//! The app database crmsync reads (and, for two-way fields and write-back columns, writes).

pub mod sqlite;

pub use sqlite::SqliteSource;

/// Name of the change-log table `crmsync install` adds to the app database.
pub const CHANGE_LOG: &str = "_crmsync_changes";
