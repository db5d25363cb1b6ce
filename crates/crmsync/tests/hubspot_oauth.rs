//! A HubSpot public app (`auth = "oauth"`) end to end: the binary syncs with tokens it obtains
//! from the sandbox, a second process uses the token the first stored in the state database
//! instead of refreshing, a token that expired costs one refresh, and a refused refresh token
//! ends the run naming `BAD_REFRESH_TOKEN` and no secret. Clients sharing one state database
//! (SQLite, PostgreSQL) refresh once per expiry, and work across several token lifetimes
//! never fails a call.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crmsync_crm::hubspot::{HubspotClient, HubspotConfig, HubspotOAuth};
use crmsync_crm::{CallObserver, CallRecord, Crm, ObjectKind, TokenStore, UpsertInput};
use crmsync_engine::StateTokens;
use crmsync_sandbox::{OAuthConfig, Sandbox, SandboxConfig};
use crmsync_store::{AnyState, Role};
use secrecy::SecretString;
use serde_json::Value;
use sqlx::Connection;
use support::cli::run_with;

const SECRET: &str = "sandbox-secret";
const REFRESH: &str = "sandbox-refresh-token";

async fn sandbox(lifetime_secs: u64) -> Sandbox {
    Sandbox::start(
        "127.0.0.1:0",
        SandboxConfig {
            // Only the OAuth tokens the sandbox issues open the API.
            token: Some("pat-na1-not-used-by-anyone".into()),
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

async fn stats(sandbox: &Sandbox) -> Value {
    reqwest::get(format!("{}/_sandbox/stats", sandbox.base_url()))
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats json")
}

fn count(stats: &Value, endpoint: Option<&str>, status: u64) -> u64 {
    stats["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| endpoint.is_none_or(|e| c["endpoint"] == e) && c["status"] == status)
        .filter_map(|c| c["count"].as_u64())
        .sum()
}

async fn token_calls(sandbox: &Sandbox) -> u64 {
    count(&stats(sandbox).await, Some("/oauth/v1/token"), 200)
}

async fn expire_all(sandbox: &Sandbox) {
    let answer = reqwest::Client::new()
        .post(format!("{}/_sandbox/oauth/expire", sandbox.base_url()))
        .send()
        .await
        .expect("expire");
    assert!(answer.status().is_success());
}

async fn app_db(dir: &std::path::Path, customers: i64) {
    let url = format!("sqlite://{}?mode=rwc", dir.join("app.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("app db");
    sqlx::query("CREATE TABLE customers (id INTEGER PRIMARY KEY, company TEXT)")
        .execute(&mut conn)
        .await
        .expect("ddl");
    for i in 1..=customers {
        sqlx::query("INSERT INTO customers VALUES (?, ?)")
            .bind(i)
            .bind(format!("Robot Works {i}"))
            .execute(&mut conn)
            .await
            .expect("row");
    }
    conn.close().await.expect("close");
}

fn config(base: &str, state: &str) -> String {
    format!(
        r#"
[source]
url = "sqlite://app.db"
[state]
url = "sqlite://{state}"
[crm]
environment = "sandbox"
kind = "hubspot"
base_url = "{base}"
auth = "oauth"
client_id = "crmsync-sandbox"
client_secret_env = "HS_CLIENT_SECRET"
refresh_token_env = "HS_REFRESH_TOKEN"
[[sync]]
name = "companies"
table = "customers"
object = "companies"
capture = "scan"
[sync.fields]
company = {{ crm = "name" }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_syncs_as_a_public_app_and_shares_its_token_through_the_state() {
    let sandbox = sandbox(1800).await;
    let dir = tempfile::tempdir().expect("dir");
    app_db(dir.path(), 30).await;
    let cfg = dir.path().join("crmsync.toml");
    std::fs::write(&cfg, config(&sandbox.base_url(), "state.db")).expect("config");
    let cfg = cfg.display().to_string();
    let envs = [("HS_CLIENT_SECRET", SECRET), ("HS_REFRESH_TOKEN", REFRESH)];
    let mut outputs = Vec::new();

    let first = run_with(["sync", "--once", "--config", &cfg], None, &envs).await;
    assert_eq!(first.code, 0, "{first:?}");
    let s = stats(&sandbox).await;
    assert_eq!(s["objects"]["companies"], 30, "{s}");
    assert_eq!(count(&s, Some("/oauth/v1/token"), 200), 1, "{s}");
    outputs.push(first);

    // Another process on the same state: the stored token is used, not refreshed.
    let url = format!("sqlite://{}", dir.path().join("app.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("app db");
    sqlx::query("UPDATE customers SET company = 'Acme Robotics' WHERE id = 1")
        .execute(&mut conn)
        .await
        .expect("edit");
    conn.close().await.expect("close");
    let second = run_with(["sync", "--once", "--config", &cfg], None, &envs).await;
    assert_eq!(second.code, 0, "{second:?}");
    assert_eq!(token_calls(&sandbox).await, 1, "the stored token was used");
    outputs.push(second);

    // Every token expires: the next process's first call gets a 401, refreshes once, retries.
    expire_all(&sandbox).await;
    let third = run_with(["sync", "--once", "--config", &cfg], None, &envs).await;
    assert_eq!(third.code, 0, "{third:?}");
    let s = stats(&sandbox).await;
    assert_eq!(count(&s, Some("/oauth/v1/token"), 200), 2, "{s}");
    assert_eq!(count(&s, None, 401), 1, "{s}");
    outputs.push(third);

    // The state holds the token sealed, never in clear.
    let state_url = format!("sqlite://{}", dir.path().join("state.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&state_url)
        .await
        .expect("state db");
    let sealed: String = sqlx::query_scalar("SELECT sealed FROM oauth_tokens")
        .fetch_one(&mut conn)
        .await
        .expect("one stored token");
    conn.close().await.expect("close");
    assert!(sealed.starts_with("v1."), "{sealed}");

    // A refused refresh token (and no stored token to fall back on: a new state) ends the run
    // with HubSpot's words, and none of the secrets.
    let bad_cfg = dir.path().join("bad.toml");
    std::fs::write(&bad_cfg, config(&sandbox.base_url(), "state-2.db")).expect("config");
    let bad_cfg = bad_cfg.display().to_string();
    let wrong = "na1-6f1e-not-the-refresh-token-9a0d";
    let bad = run_with(
        ["sync", "--once", "--config", &bad_cfg],
        None,
        &[("HS_CLIENT_SECRET", SECRET), ("HS_REFRESH_TOKEN", wrong)],
    )
    .await;
    assert_ne!(bad.code, 0, "{bad:?}");
    assert!(
        bad.stderr
            .contains("BAD_REFRESH_TOKEN: missing or invalid refresh token"),
        "{bad:?}"
    );
    let s = stats(&sandbox).await;
    assert_eq!(
        count(&s, Some("/oauth/v1/token"), 400),
        1,
        "a refusal is not retried: {s}"
    );
    for out in outputs.iter().chain([&bad]) {
        for text in [&out.stdout, &out.stderr] {
            assert!(
                !text.contains(SECRET) && !text.contains(REFRESH) && !text.contains(wrong),
                "{text}"
            );
        }
    }
    sandbox.shutdown().await;
}

type CallLog = Arc<Mutex<Vec<CallRecord>>>;

fn shared_client(sandbox: &Sandbox, state: AnyState) -> (HubspotClient, CallLog) {
    let store: Arc<dyn TokenStore> = Arc::new(StateTokens::new(state));
    let oauth = HubspotOAuth {
        store: Some(store),
        ..HubspotOAuth::new(
            "crmsync-sandbox",
            SecretString::from(SECRET),
            SecretString::from(REFRESH),
        )
    };
    let mut config = HubspotConfig::with_oauth(sandbox.base_url(), oauth);
    config.connection = "hubspot".into();
    config.timeout = Duration::from_secs(10);
    let log: CallLog = Arc::default();
    let sink = Arc::clone(&log);
    let observer: CallObserver = Arc::new(move |r| sink.lock().expect("log").push(r));
    (
        HubspotClient::new(config, Some(observer)).expect("client"),
        log,
    )
}

fn failures(log: &CallLog) -> Vec<CallRecord> {
    log.lock()
        .expect("log")
        .iter()
        .filter(|c| c.error.is_some() && c.status != Some(404))
        .cloned()
        .collect()
}

/// Two workers, each with its own handle on the state (as two processes have): all tokens
/// expire three times and both notice at once; each time one of them refreshes.
async fn refresh_once_per_expiry(a_state: AnyState, b_state: AnyState) {
    let sandbox = sandbox(1800).await;
    let (a, _) = shared_client(&sandbox, a_state);
    let (b, _) = shared_client(&sandbox, b_state);
    let (ra, rb) = tokio::join!(
        a.property_names(ObjectKind::Contacts),
        b.property_names(ObjectKind::Contacts)
    );
    ra.expect("a");
    rb.expect("b");
    assert_eq!(token_calls(&sandbox).await, 1, "one first token for both");
    for round in 1..=3 {
        expire_all(&sandbox).await;
        let (ra, rb) = tokio::join!(
            a.property_names(ObjectKind::Contacts),
            b.property_names(ObjectKind::Contacts)
        );
        ra.expect("a");
        rb.expect("b");
        assert_eq!(
            token_calls(&sandbox).await,
            1 + round,
            "round {round}: one refresh"
        );
    }
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_on_one_sqlite_state_refresh_once_per_expiry() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("state.db").display());
    let a = crmsync_store::open_state(&url, Role::Beside)
        .await
        .expect("state");
    let b = crmsync_store::open_state(&url, Role::Beside)
        .await
        .expect("state");
    refresh_once_per_expiry(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_on_one_postgres_state_refresh_once_per_expiry() {
    let Some(db) = crmsync_store::testing::TestDb::postgres().await else {
        return;
    };
    let a = crmsync_store::open_state(&db.url, Role::Worker)
        .await
        .expect("state");
    let b = crmsync_store::open_state(&db.url, Role::Worker)
        .await
        .expect("state");
    refresh_once_per_expiry(a, b).await;
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_sharing_a_state_work_across_token_lifetimes_refreshing_once_each() {
    let lifetime = Duration::from_secs(2);
    let sandbox = sandbox(lifetime.as_secs()).await;
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("state.db").display());
    let mut workers = Vec::new();
    for _ in 0..2 {
        let state = crmsync_store::open_state(&url, Role::Beside)
            .await
            .expect("state");
        workers.push(shared_client(&sandbox, state));
    }
    workers[0]
        .0
        .ensure_id_property(ObjectKind::Companies, "crmsync_id")
        .await
        .expect("id property");

    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    // Work until more than three lifetimes have passed (the sandbox says when tokens were
    // refreshed; the clock only bounds the test).
    let work = |w: usize| {
        let client = &workers[w].0;
        async move {
            let mut pace = tokio::time::interval(Duration::from_millis(30));
            let mut round = 0;
            while started.elapsed() < lifetime * 3 + lifetime / 2 {
                assert!(Instant::now() < deadline, "worker {w} stalled");
                pace.tick().await;
                round += 1;
                let inputs: Vec<UpsertInput> = (0..20)
                    .map(|i| UpsertInput {
                        key: format!("w{w}-{i}"),
                        properties: BTreeMap::from([(
                            "name".to_string(),
                            format!("Company {i} of worker {w}, round {round}"),
                        )]),
                        links: Vec::new(),
                        new_record: false,
                    })
                    .collect();
                client
                    .upsert_batch(ObjectKind::Companies, "crmsync_id", &inputs)
                    .await
                    .unwrap_or_else(|e| panic!("worker {w} round {round}: {e}"));
            }
        }
    };
    tokio::join!(work(0), work(1));
    let elapsed = started.elapsed();
    for (w, (_, log)) in workers.iter().enumerate() {
        assert!(failures(log).is_empty(), "worker {w}: {:?}", failures(log));
    }
    let s = stats(&sandbox).await;
    let refreshes = count(&s, Some("/oauth/v1/token"), 200);
    // One token at the start, then one refresh per 5/6 of a lifetime for both workers
    // together (two workers refreshing on their own would need twice as many).
    let due_every = lifetime.as_millis() * 5 / 6;
    let most = 1 + u64::try_from(elapsed.as_millis() / due_every).unwrap_or(u64::MAX);
    assert!(
        (4..=most).contains(&refreshes),
        "{refreshes} token calls in {elapsed:?} (at most {most}): {s}"
    );
    assert_eq!(count(&s, None, 401), 0, "refreshed ahead of expiry: {s}");
    sandbox.shutdown().await;
}
