//! [`Transport`]: the one place a CRM connector's HTTP requests are sent, whatever the CRM.
//!
//! Every request goes through [`Transport::send`], which keeps four invariants for every
//! connector alike:
//! - each attempt first takes a slot of its [`Lane`] and then, when one is set, is admitted by
//!   the [`CallGate`] that shares the account's budget with other workers (DESIGN 5);
//! - each attempt, retried or not, is reported once to the [`CallObserver`] (with the
//!   connection, the neutral operation and an endpoint template that carries no record ids)
//!   and as a `debug` tracing event;
//! - only retryable failures are retried, on the [`RetryPolicy`], never sooner than the CRM
//!   asked; a failure the [`Dialect`] says no in-call wait can outlast (a daily limit) is
//!   returned at once;
//! - an answer the dialect reads as an expired session makes the [`Session`] renew its
//!   credentials, and the request is sent again once (Salesforce's `INVALID_SESSION_ID`).
//!
//! What differs between CRMs is the [`Dialect`] (how to read an answer) and the [`Session`]
//! (where to send and with which credentials); both live in the connector's own folder.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use tokio::time::Instant;

use crate::pace::Lane;
use crate::retry::RetryPolicy;
use crate::{CallGate, CallObserver, CallRecord, CrmError, ErrorKind};

/// What a call does, in words common to every CRM, for the call log and the counts built on
/// it (records per write call, association calls). Never a CRM's URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Writes records by our key (HubSpot batch upsert, Salesforce Collections upsert).
    Upsert,
    /// Creates records (possibly with their parents linked in the same call).
    Create,
    /// Sets properties of records addressed by CRM id.
    Update,
    /// Reads records by id.
    Read,
    /// Lists changed or deleted records (search, SOQL, getDeleted, archived listings).
    Changes,
    /// Links records by separate calls.
    Associate,
    /// Reads or changes the CRM's schema (properties, describe, pipelines).
    Schema,
    /// Obtains or renews credentials.
    Auth,
    /// Reads the account's limits.
    Limits,
    /// Reads which account the credentials belong to.
    Account,
}

impl Operation {
    /// The name stored in the call log.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Upsert => "upsert",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Read => "read",
            Operation::Changes => "changes",
            Operation::Associate => "associate",
            Operation::Schema => "schema",
            Operation::Auth => "auth",
            Operation::Limits => "limits",
            Operation::Account => "account",
        }
    }
}

/// A boxed future, for the dyn-compatible [`Session`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where requests go and how they are authorized, at this moment.
#[derive(Clone)]
pub struct Credentials {
    /// API root without a trailing slash (Salesforce: the `instance_url` of the token answer).
    pub base_url: String,
    /// The `Authorization` header, marked sensitive; `None` sends none.
    pub authorization: Option<HeaderValue>,
    /// Changes whenever the credentials are renewed, so a renewal asked for by several failed
    /// requests at once happens once.
    pub generation: u64,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("base_url", &self.base_url)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// The credentials of a connection.
///
/// Contract: [`Session::current`] returns credentials that were valid when issued (obtaining
/// them first when there are none; an error is the CRM's refusal, e.g. a revoked refresh
/// token, as [`ErrorKind::Auth`]); [`Session::renew`] is called when an answer said the
/// credentials of `stale_generation` expired, and must make the next `current` return newer
/// ones (a renewal already done for that generation is not repeated). Token values never
/// appear in errors or logs.
pub trait Session: Send + Sync {
    fn current(&self) -> BoxFuture<'_, Result<Credentials, CrmError>>;
    fn renew(&self, stale_generation: u64) -> BoxFuture<'_, Result<(), CrmError>>;
}

/// A fixed base URL and bearer token (HubSpot private apps, tests). Never renews.
pub struct StaticSession {
    credentials: Credentials,
}

impl StaticSession {
    /// Fails with [`ErrorKind::Config`] when the token cannot go in a header; an empty token
    /// sends no `Authorization` header, so the CRM's own 401 explains what is missing.
    pub fn bearer(base_url: &str, token: &str, crm: &str) -> Result<Self, CrmError> {
        let token = token.trim();
        let authorization = if token.is_empty() {
            None
        } else {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                CrmError::new(
                    ErrorKind::Config,
                    format!("the {crm} token contains characters that cannot be sent in a header"),
                )
            })?;
            // Sensitive values are redacted from reqwest's and hyper's debug output.
            value.set_sensitive(true);
            Some(value)
        };
        Ok(StaticSession {
            credentials: Credentials {
                base_url: base_url.trim_end_matches('/').to_string(),
                authorization,
                generation: 0,
            },
        })
    }
}

impl Session for StaticSession {
    fn current(&self) -> BoxFuture<'_, Result<Credentials, CrmError>> {
        let credentials = self.credentials.clone();
        Box::pin(async move { Ok(credentials) })
    }

    fn renew(&self, _stale_generation: u64) -> BoxFuture<'_, Result<(), CrmError>> {
        Box::pin(async { Ok(()) })
    }
}

/// How long records wait after the CRM said its daily (or rolling 24 h) quota is spent and
/// gave no time of its own: an hour, then the engine's budget looks again.
pub const QUOTA_WAIT: Duration = Duration::from_secs(3600);

/// How one CRM's answers are read. The connector's only say in how requests are sent.
///
/// Contract: every method is pure and cheap (no I/O); `classify` quotes the CRM's own error
/// message and never a credential.
pub trait Dialect: Send + Sync {
    /// The CRM's name for logs and messages: `hubspot`, `salesforce`.
    fn crm(&self) -> &'static str;

    /// The error a non-2xx answer means, with the CRM's message, code and requested wait.
    fn classify(&self, what: &str, status: u16, headers: &HeaderMap, body: &str) -> CrmError;

    /// The rate-limit headers of an answer worth keeping in the call log.
    fn rate_headers(&self, headers: &HeaderMap) -> Vec<(String, String)>;

    /// A pause the lane must take before its next request, when an answer says its window is
    /// nearly spent. The default never pauses.
    fn pause_hint(&self, headers: &HeaderMap) -> Option<Duration> {
        let _ = headers;
        None
    }

    /// Whether a retryable `err` lasts longer than any in-call wait (a daily limit): it is
    /// returned at once for the engine's budget to handle. The default: never.
    fn outlasts_retries(&self, err: &CrmError) -> bool {
        let _ = err;
        false
    }

    /// Whether `err` says the session expired, so renewed credentials may succeed.
    fn session_expired(&self, err: &CrmError) -> bool {
        let _ = err;
        false
    }
}

/// A request body and its content type.
pub struct Body {
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

impl Body {
    pub fn json(bytes: Vec<u8>) -> Self {
        Body {
            content_type: "application/json",
            bytes,
        }
    }
}

/// One logical request; [`Transport::send`] may send it several times.
pub struct Request<'a> {
    pub method: Method,
    /// Template for the call log, e.g. `/crm/v3/properties/contacts/{propertyName}`.
    pub endpoint: String,
    /// Real path and query below the base URL, or an absolute URL on the same host (paging
    /// links a CRM hands out).
    pub path: String,
    pub body: Option<Body>,
    pub records: u32,
    pub operation: Operation,
    /// Index of the lane (in the order given to [`Transport::new`]) the call is paced by.
    pub lane: usize,
    /// What the call does, for messages: `contacts batch upsert`.
    pub what: &'a str,
    /// Non-2xx statuses the caller handles itself (a 404 lookup, a 300 ambiguity); never retried.
    pub expected: &'a [u16],
    /// Extra headers of this request (e.g. Salesforce's `Sforce-Query-Options`).
    pub headers: Vec<(&'static str, HeaderValue)>,
}

impl<'a> Request<'a> {
    /// A request with no body, no extra headers, paced by lane 0, expecting only 2xx.
    pub fn new(
        method: Method,
        operation: Operation,
        endpoint: impl Into<String>,
        path: impl Into<String>,
        what: &'a str,
    ) -> Self {
        Request {
            method,
            endpoint: endpoint.into(),
            path: path.into(),
            body: None,
            records: 0,
            operation,
            lane: 0,
            what,
            expected: &[],
            headers: Vec::new(),
        }
    }

    pub fn json(mut self, bytes: Vec<u8>) -> Self {
        self.body = Some(Body::json(bytes));
        self
    }

    pub fn records(mut self, records: usize) -> Self {
        self.records = u32::try_from(records).unwrap_or(u32::MAX);
        self
    }

    pub fn lane(mut self, lane: usize) -> Self {
        self.lane = lane;
        self
    }

    pub fn expect(mut self, statuses: &'a [u16]) -> Self {
        self.expected = statuses;
        self
    }

    pub fn header(mut self, name: &'static str, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// A response read to the end.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

/// The settings of a [`Transport`].
pub struct TransportConfig {
    /// Names the connection in the call log and the shared budget (the config's CRM name).
    pub connection: String,
    /// Timeout of one HTTP attempt (connect + response), not of all retries together.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// The connection's pacing lanes; a request names its lane by index. At least one.
    pub lanes: Vec<Lane>,
}

/// One CRM connection's HTTP: cheap to clone, clones share the connection pool, the lanes,
/// the session, the gate and the observer, as one connection must.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    connection: String,
    dialect: Box<dyn Dialect>,
    session: Box<dyn Session>,
    lanes: Vec<Lane>,
    retry: RetryPolicy,
    gate: OnceLock<Arc<dyn CallGate>>,
    observer: Option<CallObserver>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("crm", &self.inner.dialect.crm())
            .field("connection", &self.inner.connection)
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// Builds the transport; sends nothing. Fails with [`ErrorKind::Config`] when there is no
    /// lane or the HTTP client cannot be built.
    pub fn new(
        config: TransportConfig,
        dialect: Box<dyn Dialect>,
        session: Box<dyn Session>,
        observer: Option<CallObserver>,
    ) -> Result<Self, CrmError> {
        let crm = dialect.crm();
        if config.lanes.is_empty() {
            return Err(CrmError::new(
                ErrorKind::Config,
                format!("the {crm} connection has no rate-limit lane"),
            ));
        }
        let http = http_client(config.timeout, crm)?;
        Ok(Transport {
            inner: Arc::new(Inner {
                http,
                connection: config.connection,
                dialect,
                session,
                lanes: config.lanes,
                retry: config.retry,
                gate: OnceLock::new(),
                observer,
            }),
        })
    }

    /// Admits every attempt through `gate` from now on (the shared budget of several
    /// workers). Set once, before the first call; a second gate is ignored.
    pub fn set_gate(&self, gate: Arc<dyn CallGate>) {
        let _ = self.inner.gate.set(gate);
    }

    /// The connection's current credentials (obtaining them when there are none).
    pub async fn credentials(&self) -> Result<Credentials, CrmError> {
        self.inner.session.current().await
    }

    /// Sends `req`, retrying retryable failures. Returns the answer for a 2xx or an `expected`
    /// status, the classified error otherwise.
    pub async fn send(&self, req: Request<'_>) -> Result<Answer, CrmError> {
        let inner = &*self.inner;
        let crm = inner.dialect.crm();
        let lane = inner
            .lanes
            .get(req.lane)
            .or_else(|| inner.lanes.first())
            .ok_or_else(|| CrmError::new(ErrorKind::Config, format!("{crm} has no lane")))?;
        let mut schedule = inner.retry.schedule();
        let mut renewed = false;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let credentials = inner.session.current().await?;
            lane.acquire().await;
            if let Some(gate) = inner.gate.get() {
                gate.admit(lane.window()).await?;
            }
            let url = if req.path.starts_with("http://") || req.path.starts_with("https://") {
                req.path.clone()
            } else {
                format!("{}{}", credentials.base_url, req.path)
            };
            let started_at_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                .unwrap_or(0);
            let started = Instant::now();
            let mut builder = inner.http.request(req.method.clone(), &url);
            if let Some(auth) = &credentials.authorization {
                builder = builder.header(reqwest::header::AUTHORIZATION, auth.clone());
            }
            for (name, value) in &req.headers {
                builder = builder.header(*name, value.clone());
            }
            if let Some(body) = &req.body {
                builder = builder
                    .header(CONTENT_TYPE, body.content_type)
                    .body(body.bytes.clone());
            }
            let (status, headers, result) = match builder.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let headers = response.headers().clone();
                    match response.text().await {
                        Ok(body) => (Some(status), headers, Ok((status, body))),
                        Err(e) => (
                            Some(status),
                            headers,
                            Err(transport_error(crm, req.what, &e)),
                        ),
                    }
                }
                Err(e) => (
                    None,
                    HeaderMap::new(),
                    Err(transport_error(crm, req.what, &e)),
                ),
            };
            let latency = started.elapsed();

            // Classify: 2xx and expected statuses are answers, the rest errors. An expected
            // non-2xx (a 404 lookup) still logs the CRM's message.
            let (result, logged_error) = match result {
                Ok((status, body)) if (200..300).contains(&status) => (Ok((status, body)), None),
                Ok((status, body)) => {
                    let err = inner.dialect.classify(req.what, status, &headers, &body);
                    let message = err.message.clone();
                    if req.expected.contains(&status) {
                        (Ok((status, body)), Some(message))
                    } else {
                        (Err(err), Some(message))
                    }
                }
                Err(err) => {
                    let message = err.message.clone();
                    (Err(err), Some(message))
                }
            };
            let rate_limited = matches!(&result, Err(e) if e.kind == ErrorKind::RateLimited);

            tracing::debug!(
                crm,
                connection = %inner.connection,
                operation = req.operation.as_str(),
                method = %req.method,
                endpoint = %req.endpoint,
                status,
                attempt,
                latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
                records = req.records,
                "crm call finished"
            );
            if let Some(observer) = &inner.observer {
                observer(CallRecord {
                    started_at_ms,
                    connection: inner.connection.clone(),
                    operation: req.operation.as_str(),
                    method: req.method.to_string(),
                    endpoint: req.endpoint.clone(),
                    status,
                    attempt,
                    latency,
                    records: req.records,
                    rate_limited,
                    rate_limit_headers: inner.dialect.rate_headers(&headers),
                    error: logged_error,
                });
            }
            if let Some(pause) = inner.dialect.pause_hint(&headers) {
                lane.pause_for(pause);
                // Routine during a backfill: debug, or an info log would be mostly this.
                tracing::debug!(
                    crm,
                    pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                    "{crm} rate-limit window nearly spent, slowing down"
                );
            }

            let err = match result {
                Ok((status, body)) => {
                    return Ok(Answer {
                        status,
                        headers,
                        body,
                    });
                }
                Err(err) => err,
            };
            if inner.dialect.session_expired(&err) && !renewed {
                // Renew once per call: a second expiry right after a renewal is a real refusal.
                renewed = true;
                inner.session.renew(credentials.generation).await?;
                tracing::info!(crm, "{crm} session expired, renewed its credentials");
                continue;
            }
            if inner.dialect.outlasts_retries(&err) {
                // A spent daily (or 24 h) quota: the records wait an hour, not seconds.
                return Err(match err.retry_after() {
                    Some(_) => err,
                    None => err.with_retry_after(QUOTA_WAIT),
                });
            }
            if !err.is_retryable() {
                return Err(err);
            }
            let Some(wait) = schedule.next_wait(err.retry_after()) else {
                return Err(err);
            };
            if err.kind == ErrorKind::RateLimited {
                // Hold back every caller of this lane, not only this one.
                lane.pause_for(wait);
            }
            tracing::info!(
                crm,
                endpoint = %req.endpoint,
                attempt,
                kind = ?err.kind,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                error = %err.message,
                "retrying {crm} call"
            );
            tokio::time::sleep(wait).await;
        }
    }
}

/// The HTTP client every connector uses: rustls, JSON by default, our user agent.
pub fn http_client(timeout: Duration, crm: &str) -> Result<reqwest::Client, CrmError> {
    let mut headers = HeaderMap::new();
    headers.insert(
        reqwest::header::ACCEPT,
        HeaderValue::from_static("application/json"),
    );
    reqwest::Client::builder()
        .timeout(timeout)
        .default_headers(headers)
        .user_agent(concat!("crmsync/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            CrmError::new(
                ErrorKind::Config,
                format!("the {crm} http client cannot be built: {e}"),
            )
        })
}

/// A failure with no HTTP answer: connect error, reset, timeout. Always retryable.
pub fn transport_error(crm: &str, what: &str, err: &reqwest::Error) -> CrmError {
    let reason = if err.is_timeout() {
        "the request timed out".to_string()
    } else if err.is_connect() {
        format!("could not connect: {}", error_chain(err))
    } else {
        error_chain(err)
    };
    CrmError::new(
        ErrorKind::Transport,
        format!("{crm} {what} failed: {reason}"),
    )
}

/// The error and its causes, each said once.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}
