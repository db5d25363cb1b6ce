//! OAuth grants, 401s for tokens the sandbox did not issue, `Sforce-Limit-Info` on every
//! answer and the rolling daily limit's 403 `REQUEST_LIMIT_EXCEEDED`.

mod sf_support;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use crmsync_sandbox::SalesforceConfig;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sf_support::{Sf, password_form};

#[tokio::test]
async fn every_grant_answers_a_working_token_and_bad_ones_are_400() {
    let sf = Sf::unlimited().await;
    let base = sf.sandbox.base_url();
    let answer = sf.token_grant(&password_form()).await;
    assert_eq!(answer.body["instance_url"], base.as_str());
    assert_eq!(answer.body["token_type"], "Bearer");
    let id = answer.body["id"].as_str().expect("identity url");
    assert!(id.contains("/id/00D") && id.contains("/005"), "{id}");
    assert!(
        answer.body["issued_at"]
            .as_str()
            .expect("issued_at")
            .parse::<u64>()
            .is_ok()
    );
    let refresh = answer.body["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();

    let cc = sf
        .token_grant(&[
            ("grant_type", "client_credentials"),
            ("client_id", "crmsync-sandbox"),
            ("client_secret", "sandbox-secret"),
        ])
        .await;
    assert_eq!(cc.status, StatusCode::OK, "{}", cc.body);
    for token in [refresh.as_str(), "sandbox-refresh-token"] {
        let r = sf
            .token_grant(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", token),
                ("client_id", "crmsync-sandbox"),
            ])
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let fresh = r.body["access_token"].as_str().expect("token");
        let limits = sf.call_as(Some(fresh), Method::GET, "limits/", None).await;
        assert_eq!(limits.status, StatusCode::OK);
    }

    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#);
    let claims = URL_SAFE_NO_PAD.encode(json!({"iss": "crmsync-sandbox", "sub": "sandbox@crmsync.local", "aud": "https://login.salesforce.com"}).to_string());
    let assertion = format!("{header}.{claims}.c2lnbmF0dXJl");
    let jwt = sf
        .token_grant(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &assertion),
        ])
        .await;
    assert_eq!(jwt.status, StatusCode::OK, "{}", jwt.body);
    let wrong_sub = URL_SAFE_NO_PAD
        .encode(json!({"iss": "crmsync-sandbox", "sub": "someone@else"}).to_string());
    let jwt = sf
        .token_grant(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &format!("{header}.{wrong_sub}.x")),
        ])
        .await;
    assert_eq!(
        (jwt.status, jwt.body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    let bad = sf
        .token_grant(&[("grant_type", "refresh_token"), ("refresh_token", "nope")])
        .await;
    assert_eq!(
        (bad.status, bad.body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let mut wrong_password = password_form();
    wrong_password[4] = ("password", "guess");
    let bad = sf.token_grant(&wrong_password).await;
    assert_eq!(bad.body["error"], "invalid_grant");
    let bad = sf
        .token_grant(&[("grant_type", "authorization_code_x")])
        .await;
    assert_eq!(bad.body["error"], "unsupported_grant_type");
    let bad = sf
        .token_grant(&[
            ("grant_type", "client_credentials"),
            ("client_id", "crmsync-sandbox"),
            ("client_secret", "wrong"),
        ])
        .await;
    assert_eq!(bad.body["error"], "invalid_client");
    sf.sandbox.shutdown().await;
}

#[tokio::test]
async fn tokens_not_issued_by_the_sandbox_are_401_invalid_session_id() {
    let sf = Sf::unlimited().await;
    for token in [Some("00D000000000001!made-up"), None] {
        let reply = sf.call_as(token, Method::GET, "limits/", None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(reply.error_code(), "INVALID_SESSION_ID");
        assert_eq!(reply.body[0]["message"], "Session expired or invalid");
    }
    let versions = sf.call_as(None, Method::GET, "/services/data/", None).await;
    assert_eq!(
        versions.status,
        StatusCode::OK,
        "the version list needs no session"
    );
    assert!(
        versions
            .body
            .as_array()
            .expect("list")
            .iter()
            .any(|v| v["version"] == "59.0")
    );
    sf.sandbox.shutdown().await;
}

#[tokio::test]
async fn the_rolling_limit_refuses_with_403_and_every_answer_reports_usage() {
    let sf = Sf::start(SalesforceConfig {
        daily_limit: Some(1000),
        ..SalesforceConfig::default()
    })
    .await;
    let first = sf.get("limits/").await;
    assert_eq!(first.header("sforce-limit-info"), Some("api-usage=1/1000"));
    assert_eq!(
        first.body["DailyApiRequests"],
        json!({"Max": 1000, "Remaining": 999})
    );
    let set = sf
        .admin(Method::PUT, "/_sandbox/limits", json!({"used": 998}))
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let created = sf
        .call(
            Method::POST,
            "sobjects/Account/",
            Some(json!({"Name": "Last one"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(
        created.header("sforce-limit-info"),
        Some("api-usage=999/1000")
    );
    let id = created.body["id"].as_str().expect("id").to_owned();
    let last = sf
        .call(Method::DELETE, &format!("sobjects/Account/{id}"), None)
        .await;
    assert_eq!(last.status, StatusCode::NO_CONTENT);
    assert_eq!(
        last.header("sforce-limit-info"),
        Some("api-usage=1000/1000")
    );
    let refused = sf.get("limits/").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.error_code(), "REQUEST_LIMIT_EXCEEDED");
    assert_eq!(refused.body[0]["message"], "TotalRequests Limit exceeded.");
    assert_eq!(
        refused.header("sforce-limit-info"),
        Some("api-usage=1000/1000")
    );
    sf.admin(
        Method::PUT,
        "/_sandbox/limits",
        json!({"daily_limit": 2000}),
    )
    .await;
    assert_eq!(
        sf.get("limits/").await.status,
        StatusCode::OK,
        "a higher limit admits again"
    );
    sf.sandbox.shutdown().await;
}
