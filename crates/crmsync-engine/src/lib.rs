//! The crmsync engine: find what changed in the app database ([`capture`]), decide what to send
//! ([`plan`]), queue it durably and deliver it to the CRM in full batches ([`dispatch`]), parents
//! before children ([`order`]). [`Engine::push_once`] runs one pass of all of it. Two-way sync:
//! [`pull`] polls CRM changes, [`apply`] writes them into the app, [`conflict`] decides fields
//! changed on both sides; [`inbound`] applies stored webhook events, [`reconcile`] reads every
//! linked record back ([`refresh`]), handling CRM [`deletion`]s and [`merge`]s.

pub mod apply;
pub mod budget;
pub mod capture;
pub mod check;
pub mod clock;
pub mod conflict;
pub mod deletion;
pub mod dispatch;
pub mod error;
pub mod estimate;
pub mod explain;
pub mod inbound;
pub mod merge;
pub mod order;
pub mod plan;
pub mod progress;
pub mod pull;
pub mod push;
pub mod recheck;
pub mod reconcile;
pub mod refresh;
pub mod report;
pub mod status;

pub use apply::PullReport;
pub use error::EngineError;
pub use progress::{NoProgress, Progress};
pub use push::{CallBuffer, Engine, check_source, install};
pub use report::{RunReport, SyncReport};
