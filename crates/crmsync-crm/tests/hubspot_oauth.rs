//! The HubSpot client as a public app (OAuth) against the sandbox over a real socket: work that
//! outlasts several token lifetimes never fails a call; a 401 costs one refresh and one retry,
//! and a refresh that does not help is not repeated; a refused refresh token is a clear auth
//! error naming HubSpot's `BAD_REFRESH_TOKEN` and never the token; clients sharing a token
//! store refresh once per expiry, and follow a rotated refresh token; the token path is
//! configurable.
//!
//! Every wait is on a condition with a deadline; the workload is paced, never slept on.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crmsync_crm::http::BoxFuture;
use crmsync_crm::hubspot::{HubspotClient, HubspotConfig, HubspotOAuth};
use crmsync_crm::{
    CallObserver, CallRecord, Crm, CrmError, ErrorKind, ObjectKind, SharedToken, TokenStore,
    UpsertInput,
};
use crmsync_sandbox::{OAuthConfig, Sandbox, SandboxConfig};
use secrecy::SecretString;
use serde_json::Value;

const ID_PROPERTY: &str = "crmsync_id";
const SECRET: &str = "sandbox-secret";
const REFRESH: &str = "sandbox-refresh-token";

type CallLog = Arc<Mutex<Vec<CallRecord>>>;

async fn sandbox(lifetime_secs: u64, rotate: bool) -> Sandbox {
    Sandbox::start(
        "127.0.0.1:0",
        SandboxConfig {
            // Only the tokens the sandbox issues (and this one, which no client here sends) pass.
            token: Some("pat-na1-static-only".into()),
            oauth: OAuthConfig {
                token_lifetime_secs: lifetime_secs,
                rotate_refresh_tokens: rotate,
                ..OAuthConfig::default()
            },
            ..SandboxConfig::unlimited()
        },
    )
    .await
    .expect("sandbox")
}

fn oauth(refresh: &str, store: Option<Arc<dyn TokenStore>>) -> HubspotOAuth {
    HubspotOAuth {
        store,
        ..HubspotOAuth::new(
            "crmsync-sandbox",
            SecretString::from(SECRET),
            SecretString::from(refresh.to_string()),
        )
    }
}

fn client(sandbox: &Sandbox, oauth: HubspotOAuth) -> (HubspotClient, CallLog) {
    let mut config = HubspotConfig::with_oauth(sandbox.base_url(), oauth);
    config.timeout = Duration::from_secs(10);
    let log: CallLog = Arc::default();
    let sink = Arc::clone(&log);
    let observer: CallObserver = Arc::new(move |record| {
        sink.lock().expect("observer lock").push(record);
    });
    (
        HubspotClient::new(config, Some(observer)).expect("client"),
        log,
    )
}

fn calls(log: &CallLog) -> Vec<CallRecord> {
    log.lock().expect("observer lock").clone()
}

fn auth_calls(log: &CallLog) -> usize {
    calls(log).iter().filter(|c| c.operation == "auth").count()
}

async fn stats(sandbox: &Sandbox) -> Value {
    reqwest::get(format!("{}/_sandbox/stats", sandbox.base_url()))
        .await
        .expect("stats request")
        .json()
        .await
        .expect("stats json")
}

/// Calls the sandbox saw, by endpoint and status (any method).
fn stat_count(stats: &Value, endpoint: &str, status: u64) -> u64 {
    stats["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["endpoint"] == endpoint && c["status"] == status)
        .filter_map(|c| c["count"].as_u64())
        .sum()
}

/// Calls answered `status`, whatever the endpoint.
fn status_count(stats: &Value, status: u64) -> u64 {
    stats["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["status"] == status)
        .filter_map(|c| c["count"].as_u64())
        .sum()
}

async fn expire_all(sandbox: &Sandbox) {
    let answer = reqwest::Client::new()
        .post(format!("{}/_sandbox/oauth/expire", sandbox.base_url()))
        .send()
        .await
        .expect("expire");
    assert!(answer.status().is_success());
}

fn contact(i: usize, round: usize) -> UpsertInput {
    let properties: BTreeMap<String, String> = [
        ("email".to_string(), format!("customer{i}@example.com")),
        (
            "firstname".to_string(),
            format!("Customer {i} round {round}"),
        ),
    ]
    .into();
    UpsertInput {
        key: format!("cust-{i}"),
        properties,
        links: Vec::new(),
        new_record: false,
    }
}

#[tokio::test]
async fn work_across_several_token_lifetimes_never_fails_a_call() {
    let sandbox = sandbox(2, false).await;
    let (client, log) = client(&sandbox, oauth(REFRESH, None));
    client
        .ensure_id_property(ObjectKind::Contacts, ID_PROPERTY)
        .await
        .expect("id property");
    let batch: Vec<usize> = (0..50).collect();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(40);
    let mut pace = tokio::time::interval(Duration::from_millis(25));
    let mut rounds = 0;
    // Until the client refreshed four times (five tokens): more than three lifetimes of work.
    while auth_calls(&log) < 5 {
        assert!(
            Instant::now() < deadline,
            "only {} tokens in 40 s",
            auth_calls(&log)
        );
        pace.tick().await;
        rounds += 1;
        let inputs: Vec<UpsertInput> = batch.iter().map(|i| contact(*i, rounds)).collect();
        let outcomes = client
            .upsert_batch(ObjectKind::Contacts, ID_PROPERTY, &inputs)
            .await
            .unwrap_or_else(|e| panic!("round {rounds} failed: {e}"));
        assert_eq!(outcomes.len(), inputs.len());
    }
    assert!(
        started.elapsed() > Duration::from_secs(5),
        "four refreshes of 2 s tokens cannot happen sooner: {:?}",
        started.elapsed()
    );
    let stats = stats(&sandbox).await;
    assert_eq!(
        stat_count(&stats, "/oauth/v1/token", 200),
        5,
        "one token, then one refresh per lifetime: {stats}"
    );
    // Refreshed ahead of expiry: no call was ever sent with an expired token.
    assert_eq!(status_count(&stats, 401), 0, "{stats}");
    // (The id property's lookup answers 404 before it is created: an expected answer.)
    for call in calls(&log).iter().filter(|c| c.status != Some(404)) {
        assert!(
            call.error.is_none(),
            "no call failed, not even one that was retried: {call:?}"
        );
    }
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_401_costs_one_refresh_and_one_retry_and_is_not_repeated() {
    let sandbox = sandbox(1800, false).await;
    let (client, log) = client(&sandbox, oauth(REFRESH, None));
    client
        .property_names(ObjectKind::Contacts)
        .await
        .expect("first call");
    assert_eq!(auth_calls(&log), 1);

    expire_all(&sandbox).await;
    client
        .property_names(ObjectKind::Contacts)
        .await
        .expect("refreshed and retried");
    let sequence: Vec<(&str, Option<u16>)> = calls(&log)
        .iter()
        .map(|c| (c.operation, c.status))
        .collect();
    assert_eq!(
        sequence,
        [
            ("auth", Some(200)),
            ("schema", Some(200)),
            ("schema", Some(401)),
            ("auth", Some(200)),
            ("schema", Some(200)),
        ]
    );
    let expired = calls(&log)
        .into_iter()
        .find(|c| c.status == Some(401))
        .expect("the 401");
    assert!(
        expired
            .error
            .as_deref()
            .is_some_and(|e| e.contains("EXPIRED_AUTHENTICATION")),
        "{expired:?}"
    );

    // Every token refused (the sandbox's expiry fault): one refresh, one retry, then the 401.
    reqwest::Client::new()
        .put(format!("{}/_sandbox/faults", sandbox.base_url()))
        .json(&serde_json::json!({"token_expires_after_ms": 0}))
        .send()
        .await
        .expect("faults");
    let before = calls(&log).len();
    let err = client
        .property_names(ObjectKind::Contacts)
        .await
        .expect_err("refused after the refresh");
    assert_eq!(err.kind, ErrorKind::Auth, "{err}");
    assert_eq!(err.status, Some(401));
    assert!(
        err.message.contains("still installed"),
        "a public app's hint: {err}"
    );
    let after: Vec<(&str, Option<u16>)> = calls(&log)[before..]
        .iter()
        .map(|c| (c.operation, c.status))
        .collect();
    assert_eq!(
        after,
        [
            ("schema", Some(401)),
            ("auth", Some(200)),
            ("schema", Some(401))
        ]
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_refused_refresh_token_names_hubspots_error_and_never_the_token() {
    let sandbox = sandbox(1800, false).await;
    let wrong = "na1-0d1f-wrong-refresh-token-4c2b";
    let (client, log) = client(&sandbox, oauth(wrong, None));
    let err: CrmError = client
        .property_names(ObjectKind::Contacts)
        .await
        .expect_err("refused");
    assert_eq!(err.kind, ErrorKind::Auth, "{err}");
    assert!(!err.is_retryable());
    assert_eq!(err.code.as_deref(), Some("BAD_REFRESH_TOKEN"));
    assert!(
        err.message
            .contains("BAD_REFRESH_TOKEN: missing or invalid refresh token"),
        "{err}"
    );
    for text in [
        err.message.clone(),
        format!("{err:?}"),
        format!("{client:?}"),
    ] {
        assert!(!text.contains(wrong) && !text.contains(SECRET), "{text}");
    }
    // Asked once, not retried; no API call was sent without a token.
    let log = calls(&log);
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].status, Some(400));
    assert!(log[0].error.as_deref().is_some_and(|e| !e.contains(wrong)));
    let stats = stats(&sandbox).await;
    assert_eq!(stat_count(&stats, "/oauth/v1/token", 400), 1, "{stats}");
    assert_eq!(stats["total"], 1, "{stats}");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn the_token_path_is_configurable() {
    let sandbox = sandbox(1800, false).await;
    let mut credentials = oauth(REFRESH, None);
    credentials.token_path = "/oauth/2026-03/token".into();
    let (client, _) = client(&sandbox, credentials);
    client
        .property_names(ObjectKind::Contacts)
        .await
        .expect("call");
    let stats = stats(&sandbox).await;
    assert_eq!(
        stat_count(&stats, "/oauth/2026-03/token", 200),
        1,
        "{stats}"
    );
    assert_eq!(stat_count(&stats, "/oauth/v1/token", 200), 0, "{stats}");

    let mut bad = oauth(REFRESH, None);
    bad.token_path = "oauth/v1/token".into();
    let config = HubspotConfig::with_oauth(sandbox.base_url(), bad);
    let err = HubspotClient::new(config, None).expect_err("not a path");
    assert_eq!(err.kind, ErrorKind::Config);
    sandbox.shutdown().await;
}

/// A token store in memory with leases, as the state database keeps them (the store crate's
/// own contract suite checks the real ones; `crates/crmsync/tests` runs clients on them).
#[derive(Default)]
struct MemoryTokens {
    token: Mutex<Option<SharedToken>>,
    leases: Mutex<HashMap<String, (String, Instant)>>,
}

impl TokenStore for MemoryTokens {
    fn load<'a>(
        &'a self,
        _connection: &'a str,
    ) -> BoxFuture<'a, Result<Option<SharedToken>, CrmError>> {
        Box::pin(async move { Ok(self.token.lock().expect("lock").clone()) })
    }

    fn save<'a>(
        &'a self,
        _connection: &'a str,
        token: &'a SharedToken,
        refused: Option<&'a str>,
    ) -> BoxFuture<'a, Result<bool, CrmError>> {
        Box::pin(async move {
            let mut stored = self.token.lock().expect("lock");
            let replace = stored.as_ref().is_none_or(|s| {
                token.expires_at_ms > s.expires_at_ms || refused == Some(s.sealed.as_str())
            });
            if replace {
                *stored = Some(token.clone());
            }
            Ok(replace)
        })
    }

    fn lead<'a>(
        &'a self,
        task: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, CrmError>> {
        Box::pin(async move {
            let mut leases = self.leases.lock().expect("lock");
            let now = Instant::now();
            let free = leases
                .get(task)
                .is_none_or(|(holder, until)| holder == owner || *until < now);
            if free {
                leases.insert(task.to_string(), (owner.to_string(), now + ttl));
            }
            Ok(free)
        })
    }

    fn resign<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<(), CrmError>> {
        Box::pin(async move {
            self.leases
                .lock()
                .expect("lock")
                .retain(|_, (holder, _)| holder != owner);
            Ok(())
        })
    }
}

#[tokio::test]
async fn clients_sharing_a_store_refresh_once_per_expiry() {
    let sandbox = sandbox(1800, false).await;
    let store: Arc<dyn TokenStore> = Arc::new(MemoryTokens::default());
    let (a, log_a) = client(&sandbox, oauth(REFRESH, Some(store.clone())));
    let (b, log_b) = client(&sandbox, oauth(REFRESH, Some(store.clone())));
    // Both start without a token at the same instant: one obtains it, the other uses it.
    let (ra, rb) = tokio::join!(
        a.property_names(ObjectKind::Contacts),
        b.property_names(ObjectKind::Contacts)
    );
    ra.expect("a");
    rb.expect("b");
    assert_eq!(auth_calls(&log_a) + auth_calls(&log_b), 1);
    for round in 1..=3 {
        // Every token expires; both find out at once from their 401s.
        expire_all(&sandbox).await;
        let (ra, rb) = tokio::join!(
            a.property_names(ObjectKind::Contacts),
            b.property_names(ObjectKind::Contacts)
        );
        ra.expect("a");
        rb.expect("b");
        assert_eq!(
            auth_calls(&log_a) + auth_calls(&log_b),
            1 + round,
            "one refresh per expiry"
        );
    }
    let stats = stats(&sandbox).await;
    assert_eq!(stat_count(&stats, "/oauth/v1/token", 200), 4, "{stats}");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn clients_sharing_a_store_follow_a_rotated_refresh_token() {
    let sandbox = sandbox(1800, true).await;
    let store: Arc<dyn TokenStore> = Arc::new(MemoryTokens::default());
    let (a, log_a) = client(&sandbox, oauth(REFRESH, Some(store.clone())));
    let (b, log_b) = client(&sandbox, oauth(REFRESH, Some(store.clone())));
    a.property_names(ObjectKind::Contacts).await.expect("a");
    b.property_names(ObjectKind::Contacts)
        .await
        .expect("b uses a's token");
    assert_eq!(auth_calls(&log_b), 0);
    // The configured refresh token stopped working with the first refresh; each refresh
    // below must use the one the previous refresh returned, whichever client made it.
    for (round, first) in [(1, &b), (2, &a), (3, &b)] {
        expire_all(&sandbox).await;
        first
            .property_names(ObjectKind::Contacts)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        a.property_names(ObjectKind::Contacts).await.expect("a");
        b.property_names(ObjectKind::Contacts).await.expect("b");
        assert_eq!(auth_calls(&log_a) + auth_calls(&log_b), 1 + round);
    }
    let stats = stats(&sandbox).await;
    assert_eq!(stat_count(&stats, "/oauth/v1/token", 400), 0, "{stats}");
    sandbox.shutdown().await;
}
