//! Time as the engine sees it, injectable so tests can move to tomorrow (a new budget day)
//! without waiting for it.

/// Milliseconds since the Unix epoch.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crmsync_store::now_ms()
    }
}
