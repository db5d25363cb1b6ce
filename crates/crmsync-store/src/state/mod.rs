//! State-database implementations of [`crate::Store`] and [`PullStore`].

pub mod inspect;
pub mod lifecycle;
pub mod sqlite;
pub mod two_way;

pub use lifecycle::LifecycleStore;
pub use sqlite::SqliteStore;
pub use two_way::PullStore;
