//! A recording HTTP proxy between crmsync and the CRM (the sandbox), for tests and benchmarks
//! that must judge crmsync from the outside: every request is forwarded as it came and noted
//! with its arrival time, method, path and the status the CRM answered. "No 10-second window
//! above the limit" and "the share of the ceiling" are computed from these notes, not from
//! crmsync's own call log.

#![allow(dead_code)]

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One request seen by the proxy.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Arrival, ms since the proxy started.
    pub at_ms: u64,
    pub method: String,
    pub path: String,
    /// The CRM's answer; 0 when the CRM could not be reached.
    pub status: u16,
}

struct Inner {
    upstream: String,
    http: reqwest::Client,
    started: Instant,
    seen: Mutex<Vec<Seen>>,
}

/// A running proxy.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
    /// Where crmsync should send its requests.
    pub base_url: String,
}

impl Recorder {
    /// Starts a proxy on a free local port in front of `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Recorder {
        let inner = Arc::new(Inner {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .expect("http client"),
            started: Instant::now(),
            seen: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Recorder {
            inner,
            base_url: format!("http://{addr}"),
        }
    }

    /// Everything seen so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        let mut v = self
            .inner
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        v.sort_by_key(|s| s.at_ms);
        v
    }

    /// API requests seen (the sandbox's `/_sandbox/` admin calls are not API calls).
    pub fn api_calls(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| !s.path.starts_with("/_sandbox"))
            .collect()
    }

    /// The most API requests that arrived within any window of `window_ms` (counted over the
    /// calls that `keep` selects).
    pub fn max_in_window(&self, window_ms: u64, keep: impl Fn(&Seen) -> bool) -> usize {
        let times: Vec<u64> = self
            .api_calls()
            .iter()
            .filter(|s| keep(s))
            .map(|s| s.at_ms)
            .collect();
        let mut best = 0;
        let mut start = 0;
        for end in 0..times.len() {
            while times[end] - times[start] >= window_ms {
                start += 1;
            }
            best = best.max(end - start + 1);
        }
        best
    }

    /// API requests answered with `status`.
    pub fn count_status(&self, status: u16) -> usize {
        self.api_calls()
            .iter()
            .filter(|s| s.status == status)
            .count()
    }
}

async fn forward(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at_ms = u64::try_from(inner.started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let mut request = inner
        .http
        .request(
            method.clone(),
            format!("{}{path_and_query}", inner.upstream),
        )
        .body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" && name != "connection" {
            request = request.header(name, value);
        }
    }
    let (status, response) = match request.send().await {
        Ok(r) => {
            let status = r.status();
            let mut builder = Response::builder().status(status);
            for (name, value) in r.headers() {
                if name != "transfer-encoding" && name != "connection" && name != "content-length" {
                    builder = builder.header(name, value);
                }
            }
            let bytes = r.bytes().await.unwrap_or_default();
            (
                status.as_u16(),
                builder
                    .body(Body::from(bytes))
                    .unwrap_or_else(|_| Response::new(Body::empty())),
            )
        }
        Err(_) => {
            let mut r = Response::new(Body::from("upstream unreachable"));
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            (0, r)
        }
    };
    inner
        .seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Seen {
            at_ms,
            method: method.to_string(),
            path: uri.path().to_string(),
            status,
        });
    response
}
