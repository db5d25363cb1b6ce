//! State-database implementations of [`crate::Store`] and [`PullStore`].

pub mod inspect;
pub mod sqlite;
pub mod two_way;

pub use sqlite::SqliteStore;
pub use two_way::PullStore;
