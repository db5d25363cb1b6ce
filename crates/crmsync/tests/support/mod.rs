//! Helpers shared by the binary's scenario tests and benchmarks.

#![allow(dead_code)]

pub mod cli;
pub mod ops;
pub mod prom;
pub mod proxy;
pub mod webdriver;

/// Polls `check` every 50 ms until it yields a value or `secs` pass.
pub async fn wait_for<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
