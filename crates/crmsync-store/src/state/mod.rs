//! State-database implementations of [`crate::Store`].

pub mod inspect;
pub mod sqlite;

pub use sqlite::SqliteStore;
