//! Test helpers: a sandbox on a free port and a tiny JSON client for it.
#![allow(dead_code)]

use crmsync_sandbox::{Sandbox, SandboxConfig};
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub const TOKEN: &str = "pat-na1-test";

/// A running sandbox plus an HTTP client authenticated with [`TOKEN`].
pub struct Harness {
    pub sandbox: Sandbox,
    pub http: reqwest::Client,
}

/// A response reduced to what tests assert on.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the HubSpot error shape (FACTS 2.9) and returns the category.
    pub fn error_category(&self) -> String {
        assert_eq!(self.body["status"], "error", "body: {}", self.body);
        assert!(
            self.body["message"].is_string(),
            "message missing: {}",
            self.body
        );
        let correlation = self.body["correlationId"].as_str().unwrap_or_default();
        assert_eq!(
            correlation.len(),
            36,
            "correlationId must be a uuid: {}",
            self.body
        );
        assert_eq!(self.header("x-hubspot-correlation-id"), Some(correlation));
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "errors are JSON: {:?}",
            self.headers
        );
        self.body["category"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

impl Harness {
    pub async fn start(config: SandboxConfig) -> Harness {
        let sandbox = Sandbox::start("127.0.0.1:0", config)
            .await
            .expect("sandbox starts");
        Harness {
            sandbox,
            http: reqwest::Client::new(),
        }
    }

    /// Unlimited, token-checking sandbox.
    pub async fn unlimited() -> Harness {
        Harness::start(SandboxConfig {
            token: Some(TOKEN.to_owned()),
            ..SandboxConfig::unlimited()
        })
        .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sandbox.base_url())
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Reply {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request reaches the sandbox");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body is readable");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("body is JSON")
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None, Some(TOKEN)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(body), Some(TOKEN)).await
    }

    pub async fn put(&self, path: &str, body: Option<Value>) -> Reply {
        self.send(Method::PUT, path, body, Some(TOKEN)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PATCH, path, Some(body), Some(TOKEN))
            .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None, Some(TOKEN)).await
    }

    /// Creates a record and returns its id.
    pub async fn create(&self, object: &str, properties: Value) -> String {
        let reply = self
            .post(
                &format!("/crm/v3/objects/{object}"),
                serde_json::json!({ "properties": properties }),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "create {object}: {}",
            reply.body
        );
        reply.body["id"]
            .as_str()
            .expect("id is a string")
            .to_owned()
    }
}

/// Polls `probe` until it returns `Some`, failing the test after `deadline`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: std::time::Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
