//! The public-app OAuth surface over HTTP (BRIDGES 4.1): the refresh grant answers HubSpot's
//! token shape, issued tokens open the API until their lifetime ends and are then refused
//! with `EXPIRED_AUTHENTICATION`, refusals have HubSpot's v1 shape, and the static `--token`
//! keeps working beside them.

use crmsync_sandbox::{OAuthConfig, Sandbox, SandboxConfig};
use reqwest::StatusCode;
use serde_json::Value;

async fn start(lifetime_secs: u64) -> Sandbox {
    Sandbox::start(
        "127.0.0.1:0",
        SandboxConfig {
            token: Some("pat-na1-static".into()),
            oauth: OAuthConfig {
                token_lifetime_secs: lifetime_secs,
                ..OAuthConfig::default()
            },
            ..SandboxConfig::unlimited()
        },
    )
    .await
    .expect("sandbox")
}

async fn refresh(sandbox: &Sandbox, refresh_token: &str) -> (StatusCode, Value) {
    let answer = reqwest::Client::new()
        .post(format!("{}/oauth/v1/token", sandbox.base_url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "crmsync-sandbox"),
            ("client_secret", "sandbox-secret"),
            ("refresh_token", refresh_token),
        ])
        .send()
        .await
        .expect("token request");
    let status = answer.status();
    (status, answer.json().await.expect("json"))
}

async fn contacts(sandbox: &Sandbox, token: &str) -> (StatusCode, Value) {
    let answer = reqwest::Client::new()
        .get(format!("{}/crm/v3/objects/contacts", sandbox.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .expect("api request");
    let status = answer.status();
    (status, answer.json().await.expect("json"))
}

#[tokio::test]
async fn a_refreshed_token_opens_the_api_until_it_expires() {
    let sandbox = start(1800).await;
    let (status, body) = refresh(&sandbox, "sandbox-refresh-token").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 1800);
    assert_eq!(
        body["refresh_token"], "sandbox-refresh-token",
        "not rotated"
    );
    let first = body["access_token"].as_str().expect("token").to_owned();
    let (_, body) = refresh(&sandbox, "sandbox-refresh-token").await;
    let second = body["access_token"].as_str().expect("token").to_owned();
    assert_ne!(first, second);

    // Both live side by side, and the static token still works.
    for token in [first.as_str(), second.as_str(), "pat-na1-static"] {
        assert_eq!(contacts(&sandbox, token).await.0, StatusCode::OK, "{token}");
    }
    let (status, body) = contacts(&sandbox, "CO-never-issued").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["category"], "INVALID_AUTHENTICATION", "{body}");

    let expired: Value = reqwest::Client::new()
        .post(format!("{}/_sandbox/oauth/expire", sandbox.base_url()))
        .send()
        .await
        .expect("expire")
        .json()
        .await
        .expect("json");
    assert_eq!(expired["expired"], 2);
    let (status, body) = contacts(&sandbox, &first).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["status"], "error");
    assert_eq!(body["category"], "EXPIRED_AUTHENTICATION", "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("The OAuth token used to make this call expired ")
            && message.ends_with(" second(s) ago."),
        "{message}"
    );
    assert_eq!(contacts(&sandbox, "pat-na1-static").await.0, StatusCode::OK);

    let stats: Value = reqwest::get(format!("{}/_sandbox/stats", sandbox.base_url()))
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    let token_calls: u64 = stats["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["endpoint"] == "/oauth/v1/token")
        .filter_map(|c| c["count"].as_u64())
        .sum();
    assert_eq!(token_calls, 2, "the token endpoint is counted: {stats}");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn refusals_have_hubspots_shape() {
    let sandbox = start(1800).await;
    let (status, body) = refresh(&sandbox, "na1-not-issued").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["status"], "BAD_REFRESH_TOKEN", "{body}");
    assert_eq!(body["message"], "missing or invalid refresh token");
    assert_eq!(
        body["correlationId"].as_str().map(str::len),
        Some(36),
        "{body}"
    );

    // A JSON body carries no form fields.
    let answer = reqwest::Client::new()
        .post(format!("{}/oauth/v1/token", sandbox.base_url()))
        .json(&serde_json::json!({"grant_type": "refresh_token"}))
        .send()
        .await
        .expect("token request");
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    let body: Value = answer.json().await.expect("json");
    assert_eq!(
        body["message"],
        "Any of the listed authentication credentials are missing"
    );

    // No bearer token is needed (nor looked at) on the token endpoint.
    let answer = reqwest::Client::new()
        .post(format!("{}/oauth/2026-03/token", sandbox.base_url()))
        .bearer_auth("CO-never-issued")
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "crmsync-sandbox"),
            ("client_secret", "sandbox-secret"),
            ("refresh_token", "sandbox-refresh-token"),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(answer.status(), StatusCode::OK);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn an_issued_token_expires_after_its_lifetime() {
    let sandbox = start(1).await;
    let (_, body) = refresh(&sandbox, "sandbox-refresh-token").await;
    let token = body["access_token"].as_str().expect("token").to_owned();
    assert_eq!(contacts(&sandbox, &token).await.0, StatusCode::OK);
    // Waits on the condition (the token's end), with a deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut pace = tokio::time::interval(std::time::Duration::from_millis(100));
    loop {
        pace.tick().await;
        let (status, body) = contacts(&sandbox, &token).await;
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(body["category"], "EXPIRED_AUTHENTICATION", "{body}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a 1 s token still works"
        );
    }
    sandbox.shutdown().await;
}
