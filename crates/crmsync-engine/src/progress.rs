//! How the engine tells a front end (progress bars, logs) what it is doing.

use crate::report::SyncReport;

/// Receives progress events; every method has a no-op default.
pub trait Progress: Send + Sync {
    /// Planning of `sync` found `to_send` records to deliver.
    fn planned(&self, _sync: &str, _to_send: u64) {}
    /// `n` more records of `sync` were settled (delivered, rejected or failed).
    fn advanced(&self, _sync: &str, _n: u64) {}
    /// `sync` is done for this pass.
    fn finished(&self, _sync: &str, _report: &SyncReport) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
