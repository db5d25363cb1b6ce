//! State-database implementations of [`crate::Store`].

pub mod sqlite;

pub use sqlite::SqliteStore;
