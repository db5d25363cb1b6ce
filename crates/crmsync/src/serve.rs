//! The one way crmsync serves HTTP (the webhook receiver and the operator server): an accept
//! loop over hyper's HTTP/1 connection with the limits a public socket needs, shared by both.
//!
//! Invariants, whatever the client does:
//! - at most `max_connections` connections are open; further clients wait in the kernel's
//!   backlog until one closes (nothing is accepted that cannot be served);
//! - a request's headers must arrive within `read_timeout`, else the connection is closed
//!   (a client that connects and stalls holds nothing for long);
//! - a whole request, its body included, must be read and answered within `read_timeout`
//!   plus the handler's own work, else it gets 408 and the connection is closed;
//! - a declared `Content-Length` above `max_body_bytes` gets 413 at once, before any of the
//!   body is read (and a body without a length is cut at the limit, also with 413).

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// What every connection of one server is held to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time for a request's headers, and separately for its whole body.
    pub read_timeout: Duration,
    /// Larger request bodies get 413.
    pub max_body_bytes: usize,
}

/// How long a failed `accept` (out of file descriptors, typically) waits before the next: a
/// tight loop would only spin while nothing can be accepted.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Wraps `router` in the body limit and the request timeout of `limits`.
fn harden(router: Router, limits: Limits) -> Router {
    router.layer(
        ServiceBuilder::new()
            // Outermost: a declared length over the limit is answered before anything waits.
            .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
            // Around the handler, which reads the body: a stalled body is answered 408.
            .layer(TimeoutLayer::with_status_code(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                limits.read_timeout,
            )),
    )
}

/// Serves `router` on `listener` with `limits` in a background task until `stop` is
/// cancelled (then no new connection is accepted; open ones finish their request).
pub fn spawn(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    name: &'static str,
    stop: CancellationToken,
) {
    let router = harden(router, limits);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    tokio::spawn(async move {
        loop {
            // A slot first: at the cap, clients stay in the backlog instead of being accepted
            // and starved.
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => return,
                },
                _ = stop.cancelled() => return,
            };
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(server = name, error = %e, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
                _ = stop.cancelled() => return,
            };
            let router = router.clone();
            // Handlers see the client's address as axum's `ConnectInfo`.
            let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                tower::Service::call(&mut router.clone(), req)
            });
            let stop = stop.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(limits.read_timeout)
                    .serve_connection(TokioIo::new(stream), service);
                let mut conn = std::pin::pin!(conn);
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(server = name, %peer, error = %e, "connection closed");
                        }
                    }
                    _ = stop.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = conn.await;
                    }
                }
            });
        }
    });
}
