//! Errors of CRM calls, classified once: retryable or not, and why.

use std::time::Duration;

/// What kind of failure a [`CrmError`] is; the engine branches on this, not on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// 429: the CRM's rate limit was hit. Retryable, maybe after `retry_after`.
    RateLimited,
    /// 5xx from the CRM. Retryable.
    Server,
    /// No answer: connect error, reset, timeout. Retryable (the request may have been applied).
    Transport,
    /// 401/403: the token is missing, invalid, expired, or lacks scopes. Not retryable.
    Auth,
    /// Another 4xx: the CRM refused the request or a record. Not retryable as is.
    Rejected,
    /// The CRM's schema does not fit what the config needs (e.g. id property not unique).
    Schema,
    /// The CRM answered something we cannot parse.
    Protocol,
    /// The client's own configuration is unusable (bad base URL, token not a valid header value).
    /// Not retryable: fix the config.
    Config,
}

/// A failed CRM call or a refused record, with the CRM's own words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CrmError {
    pub kind: ErrorKind,
    /// HTTP status when there was a response.
    pub status: Option<u16>,
    /// The CRM's error category/code, e.g. `VALIDATION_ERROR`, `INVALID_EMAIL`, `CONFLICT`.
    pub code: Option<String>,
    /// A lowercase sentence naming the object and, for CRM errors, quoting the CRM's message.
    pub message: String,
    /// Wait the CRM asked for (Retry-After or a known policy window).
    pub retry_after: Option<Duration>,
    /// The CRM property the error is about, when the CRM named one (e.g. `email`).
    pub property: Option<String>,
}

impl CrmError {
    /// Builds an error of `kind` with only a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        CrmError {
            kind,
            status: None,
            code: None,
            message: message.into(),
            retry_after: None,
            property: None,
        }
    }

    /// Sets the HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Sets the CRM's error category/code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Sets the wait the CRM asked for.
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// Names the CRM property the error is about.
    pub fn with_property(mut self, property: impl Into<String>) -> Self {
        self.property = Some(property.into());
        self
    }

    /// Whether retrying the same request later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::RateLimited | ErrorKind::Server | ErrorKind::Transport
        )
    }

    /// The wait the CRM asked for before retrying, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}
