//! The per-request log entry every CRM client reports, and the observer that receives it.

use std::sync::Arc;
use std::time::Duration;

/// One HTTP request to the CRM, as the call log stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    /// When the request was sent, as milliseconds since the Unix epoch.
    pub started_at_ms: i64,
    /// The CRM connection it went to (the config's name for it).
    pub connection: String,
    /// What it did in words common to every CRM ([`crate::http::Operation::as_str`]):
    /// `upsert`, `associate`, ... Counts are built on this, never on a CRM's URL.
    pub operation: &'static str,
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path template without ids or query, e.g. `/crm/v3/objects/contacts/batch/upsert`.
    pub endpoint: String,
    /// HTTP status; `None` when no response arrived (timeout, reset).
    pub status: Option<u16>,
    /// 1 for the first try, 2 for the first retry, ...
    pub attempt: u32,
    pub latency: Duration,
    /// Number of records the request carried (0 for schema calls).
    pub records: u32,
    /// The CRM refused it for its rate limit (HubSpot's 429, Salesforce's `REQUEST_LIMIT_EXCEEDED`).
    pub rate_limited: bool,
    /// Rate-limit headers seen on the response, lower-case name -> value.
    pub rate_limit_headers: Vec<(String, String)>,
    /// The CRM's own error message for a failed call, or the transport error.
    pub error: Option<String>,
}

/// Receives every [`CallRecord`]; must be cheap and must not block (push into a buffer/channel).
pub type CallObserver = Arc<dyn Fn(CallRecord) + Send + Sync>;

/// A rolling window one API call counts against (e.g. HubSpot's 100 requests per 10 s, less
/// the headroom), as the connector knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallWindow {
    /// Names the window within the connection: `interval`, `search`, ...
    pub name: &'static str,
    /// Calls allowed within any `length`.
    pub max: u32,
    pub length: Duration,
}

/// Admits each HTTP attempt before it is sent: where several workers share one account's
/// budget, the gate reserves the call in the shared state (and waits while every window is
/// full), so the workers together stay under the limit a single client's own limiter keeps.
///
/// Contract: `admit` returns `Ok` once the call may start (it is then counted, whether or
/// not it is sent); an `Err` means the call must not be sent (the process is stopping, or the
/// shared state is unreachable: a [`crate::ErrorKind::Transport`] error, retryable later).
/// A dyn-compatible trait with a boxed future, because the client holds it as an object
/// beside its observer.
pub trait CallGate: Send + Sync {
    fn admit<'a>(
        &'a self,
        window: &'a CallWindow,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), crate::CrmError>> + Send + 'a>>;
}
