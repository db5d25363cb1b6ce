//! Test helpers for the Salesforce flavour: a sandbox on a free port, an OAuth token, and a
//! tiny JSON client for `/services/data/v59.0`.
#![allow(dead_code)]

use crmsync_sandbox::{SalesforceConfig, SalesforceSandbox};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const DATA: &str = "/services/data/v59.0";

/// A running sandbox and a client with an access token from the password grant.
pub struct Sf {
    pub sandbox: SalesforceSandbox,
    pub http: reqwest::Client,
    pub token: String,
}

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

    /// The `errorCode` of a REST error array.
    pub fn error_code(&self) -> String {
        assert!(self.body.is_array(), "errors are arrays: {}", self.body);
        self.body[0]["errorCode"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

impl Sf {
    pub async fn start(config: SalesforceConfig) -> Sf {
        let sandbox = SalesforceSandbox::start("127.0.0.1:0", config)
            .await
            .expect("sandbox starts");
        let http = reqwest::Client::new();
        let mut sf = Sf {
            sandbox,
            http,
            token: String::new(),
        };
        let reply = sf.token_grant(&password_form()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        sf.token = reply.body["access_token"]
            .as_str()
            .expect("access token")
            .to_owned();
        sf
    }

    pub async fn unlimited() -> Sf {
        Sf::start(SalesforceConfig::unlimited()).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sandbox.base_url())
    }

    pub async fn token_grant(&self, form: &[(&str, &str)]) -> Reply {
        let response = self
            .http
            .post(self.url("/services/oauth2/token"))
            .form(form)
            .send()
            .await
            .expect("token request");
        reply(response).await
    }

    /// A request with `token` (or none).
    pub async fn call_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let url = if path.starts_with('/') {
            self.url(path)
        } else {
            self.url(&format!("{DATA}/{path}"))
        };
        let mut request = self
            .http
            .request(method, url)
            .header("Content-Type", "application/json");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        reply(request.send().await.expect("request")).await
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call_as(Some(&self.token.clone()), method, path, body)
            .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    /// SOQL through `query` (or `queryAll`), `+` for spaces like simple-salesforce.
    pub async fn query(&self, resource: &str, soql: &str) -> Reply {
        let q: String = soql
            .split(' ')
            .map(|w| {
                w.replace('%', "%25")
                    .replace('\'', "%27")
                    .replace('+', "%2B")
                    .replace('=', "%3D")
            })
            .collect::<Vec<_>>()
            .join("+");
        self.get(&format!("{resource}/?q={q}")).await
    }

    /// Creates a record and returns its id.
    pub async fn create(&self, object: &str, body: Value) -> String {
        let reply = self
            .call(Method::POST, &format!("sobjects/{object}/"), Some(body))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body["id"].as_str().expect("id").to_owned()
    }

    pub async fn admin(&self, method: Method, path: &str, body: Value) -> Reply {
        let response = self
            .http
            .request(method, self.url(path))
            .json(&body)
            .send()
            .await
            .expect("admin request");
        reply(response).await
    }
}

pub fn password_form() -> Vec<(&'static str, &'static str)> {
    vec![
        ("grant_type", "password"),
        ("client_id", "crmsync-sandbox"),
        ("client_secret", "sandbox-secret"),
        ("username", "sandbox@crmsync.local"),
        ("password", "sandbox"),
    ]
}

async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text }))
    };
    Reply {
        status,
        headers,
        body,
    }
}

/// The 18-character checksum Salesforce appends (FACTS 3.11), computed independently.
pub fn is_case_safe_id(id: &str, prefix: &str) -> bool {
    if id.len() != 18 || !id.starts_with(prefix) {
        return false;
    }
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let bytes = id.as_bytes();
    (0..3).all(|chunk| {
        let bits = (0..5)
            .filter(|i| bytes[chunk * 5 + i].is_ascii_uppercase())
            .fold(0usize, |acc, i| acc | (1 << i));
        bytes[15 + chunk] == alphabet[bits]
    })
}
