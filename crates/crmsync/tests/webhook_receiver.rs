//! The webhook receiver of `crmsync run`, over a real socket against the real binary: signed
//! deliveries are stored in the state database's `webhook_events` (a redelivery once), forged,
//! stale, malformed, oversized and wrong-method requests get 401 / 400 / 413 / 405 and store
//! nothing, a v1-configured receiver takes v1 and refuses v3, and the `crmsync run` flags override
//! the `[webhooks]` table. Events are deduplicated by their content, not by `eventId` alone;
//! a stalled request is disconnected within `[server] read_timeout_ms`, a declared body over
//! the limit answered 413 before any of it is sent. Every receiver listens on port 0; the test
//! reads the bound address from the line `crmsync run` prints, so nothing waits on a timer.

use base64::Engine;
use crmsync_sandbox::{Sandbox, SandboxConfig};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use sqlx::{Connection, SqliteConnection};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SECRET: &str = "s3cret";

/// A `crmsync run` process with a webhook receiver, killed when dropped.
struct Running {
    child: Child,
    /// `http://127.0.0.1:PORT/hubspot/webhooks`, where the receiver answers.
    url: String,
    state_db: PathBuf,
    _dir: tempfile::TempDir,
    _sandbox: Sandbox,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The config of a push-only sync of an empty table, polling only every 10 minutes, plus
/// `extra` (a `[webhooks]` table).
fn config(base: &str, extra: &str) -> String {
    format!(
        r#"
[source]
url = "sqlite://app.db"
[crm]
environment = "sandbox"
kind = "hubspot"
base_url = "{base}"
token_env = "HUBSPOT_ACCESS_TOKEN"
[run]
poll_interval_ms = 600000
[[sync]]
name = "companies"
table = "customers"
object = "companies"
capture = "scan"
[sync.fields]
company = {{ crm = "name" }}
{extra}
"#
    )
}

/// Writes the config and the app database into a temp dir and spawns `crmsync run` there.
async fn spawn(
    extra: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Child, tempfile::TempDir, Sandbox) {
    let sandbox = Sandbox::start("127.0.0.1:0", SandboxConfig::unlimited())
        .await
        .expect("sandbox");
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("app.db");
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", db.display()))
        .await
        .expect("app db");
    sqlx::query("CREATE TABLE customers (id INTEGER PRIMARY KEY, company TEXT)")
        .execute(&mut conn)
        .await
        .expect("ddl");
    conn.close().await.expect("close");
    let cfg = dir.path().join("crmsync.toml");
    std::fs::write(&cfg, config(&sandbox.base_url(), extra)).expect("config");
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("crmsync"));
    cmd.arg("run")
        .args(args)
        .arg("--config")
        .arg(&cfg)
        .env("HUBSPOT_ACCESS_TOKEN", "test-token")
        .env_remove("HUBSPOT_CLIENT_SECRET")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    (cmd.spawn().expect("crmsync run starts"), dir, sandbox)
}

/// Starts `crmsync run` and waits (30 s at most) for the line announcing its receiver.
async fn start(extra: &str, args: &[&str], env: &[(&str, &str)]) -> Running {
    let (mut child, dir, sandbox) = spawn(extra, args, env).await;
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    // Keeps draining stderr until the process ends, so it never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let url = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix("receiving HubSpot webhooks on ") {
                    break rest.split_whitespace().next().expect("url").to_string();
                }
                seen.push(line);
            }
            Err(e) => panic!("no receiver started ({e}); crmsync run said: {seen:#?}"),
        }
    };
    Running {
        child,
        url,
        state_db: dir.path().join("crmsync-state.db"),
        _dir: dir,
        _sandbox: sandbox,
    }
}

impl Running {
    /// The `eventId`s of the stored events, in order (one per stored event: two events
    /// sharing an id are listed twice).
    async fn stored(&self) -> Vec<String> {
        let mut conn =
            SqliteConnection::connect(&format!("sqlite://{}?mode=ro", self.state_db.display()))
                .await
                .expect("state db");
        let bodies: Vec<String> = sqlx::query_scalar("SELECT body FROM webhook_events")
            .fetch_all(&mut conn)
            .await
            .expect("webhook_events");
        let mut ids: Vec<(u64, String)> = bodies
            .iter()
            .map(|b| {
                let event: serde_json::Value = serde_json::from_str(b).expect("stored JSON");
                let id = event["eventId"].as_u64().expect("numeric eventId");
                (id, id.to_string())
            })
            .collect();
        ids.sort();
        ids.into_iter().map(|(_, id)| id).collect()
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn v3_signature(secret: &str, url: &str, body: &[u8], ts: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(b"POST");
    mac.update(url.as_bytes());
    mac.update(body);
    mac.update(ts.to_string().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn v1_signature(secret: &str, body: &[u8]) -> String {
    hex::encode(
        Sha256::new()
            .chain_update(secret)
            .chain_update(body)
            .finalize(),
    )
}

/// A delivery of HubSpot's shape (FACTS 2.11) with these event ids.
fn delivery(ids: &[u64]) -> Vec<u8> {
    let events: Vec<_> = ids
        .iter()
        .map(|id| {
            serde_json::json!({
                "eventId": id, "subscriptionId": 1234, "portalId": 62515, "appId": 54321,
                "occurredAt": 1_564_113_600_000_i64, "subscriptionType": "company.propertyChange",
                "attemptNumber": 0, "objectId": 123, "changeSource": "CRM_UI",
                "propertyName": "name", "propertyValue": "Acme"
            })
        })
        .collect();
    serde_json::to_vec(&events).expect("json")
}

/// POSTs `body` with `headers`; the answer's status.
async fn post(url: &str, body: Vec<u8>, headers: &[(&str, String)]) -> u16 {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    req.send()
        .await
        .expect("receiver answers")
        .status()
        .as_u16()
}

/// The headers HubSpot sends with a v3 signature over `signed_url`, at `ts`.
fn v3_headers(secret: &str, signed_url: &str, body: &[u8], ts: i64) -> Vec<(&'static str, String)> {
    vec![
        (
            "x-hubspot-signature-v3",
            v3_signature(secret, signed_url, body, ts),
        ),
        ("x-hubspot-request-timestamp", ts.to_string()),
        ("x-hubspot-signature-version", "v3".into()),
    ]
}

fn v1_headers(secret: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        ("x-hubspot-signature", v1_signature(secret, body)),
        ("x-hubspot-signature-version", "v1".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_v3_delivery_is_stored_and_a_redelivery_only_once() {
    // The flags alone, as before the `[webhooks]` table existed.
    let r = start(
        "",
        &["--webhook-listen", "127.0.0.1:0"],
        &[("HUBSPOT_CLIENT_SECRET", SECRET)],
    )
    .await;
    let body = delivery(&[101, 102]);
    let status = post(
        &r.url,
        body.clone(),
        &v3_headers(SECRET, &r.url, &body, now_ms()),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(r.stored().await, ["101", "102"]);

    // HubSpot delivers the same events again (a lost answer), then one of them with a new one.
    let status = post(
        &r.url,
        body.clone(),
        &v3_headers(SECRET, &r.url, &body, now_ms()),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(r.stored().await, ["101", "102"]);
    let body = delivery(&[102, 103]);
    let status = post(
        &r.url,
        body.clone(),
        &v3_headers(SECRET, &r.url, &body, now_ms()),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(r.stored().await, ["101", "102", "103"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_and_unsigned_v3_requests_get_401_and_store_nothing() {
    // Configured in the file, with the public URL HubSpot signs: its `%3A` is decoded before
    // hashing, as HubSpot does.
    let public = "https://hooks.example.com/hubspot/webhooks?portal=62515%3Aeu";
    let signed = "https://hooks.example.com/hubspot/webhooks?portal=62515:eu";
    let r = start(
        &format!(
            "[webhooks]\nlisten = \"127.0.0.1:0\"\nurl = \"{public}\"\nsecret_env = \"HOOK_SECRET\"\n"
        ),
        &[],
        &[("HOOK_SECRET", SECRET)],
    )
    .await;
    let body = delivery(&[201]);
    let six_minutes_ago = now_ms() - 6 * 60 * 1000;
    for (what, headers) in [
        (
            "forged",
            v3_headers("not-the-secret", signed, &body, now_ms()),
        ),
        (
            "replayed",
            v3_headers(SECRET, signed, &body, six_minutes_ago),
        ),
        (
            "signed for another URL",
            v3_headers(SECRET, &r.url, &body, now_ms()),
        ),
        ("unsigned", vec![]),
        ("v1 to a v3 receiver", v1_headers(SECRET, &body)),
    ] {
        assert_eq!(post(&r.url, body.clone(), &headers).await, 401, "{what}");
    }
    assert!(r.stored().await.is_empty());

    let status = post(
        &r.url,
        body.clone(),
        &v3_headers(SECRET, signed, &body, now_ms()),
    )
    .await;
    assert_eq!(status, 204, "the genuine request");
    assert_eq!(r.stored().await, ["201"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_malformed_and_wrong_method_requests_get_413_400_405_and_store_nothing() {
    let r = start(
        "[webhooks]\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = 4096\n",
        &[],
        &[("HUBSPOT_CLIENT_SECRET", SECRET)],
    )
    .await;
    let signed = |body: &[u8]| v3_headers(SECRET, &r.url, body, now_ms());

    let big = delivery(&(1..=40).collect::<Vec<_>>());
    assert!(big.len() > 4096, "{}", big.len());
    assert_eq!(post(&r.url, big.clone(), &signed(&big)).await, 413);

    for (what, body) in [
        ("not JSON", b"eventId=1".to_vec()),
        ("not an array", br#"{"eventId":1,"subscriptionType":"company.creation","objectId":1}"#.to_vec()),
        (
            "an event without objectId",
            br#"[{"eventId":301,"subscriptionType":"company.creation","objectId":1},{"eventId":302,"subscriptionType":"company.creation"}]"#.to_vec(),
        ),
        ("an event without eventId", br#"[{"subscriptionType":"company.creation","objectId":1}]"#.to_vec()),
        ("an event without subscriptionType", br#"[{"eventId":303,"objectId":1}]"#.to_vec()),
    ] {
        assert_eq!(post(&r.url, body.clone(), &signed(&body)).await, 400, "{what}");
    }

    let http = reqwest::Client::new();
    for method in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let status = http
            .request(method.clone(), &r.url)
            .send()
            .await
            .expect("receiver answers")
            .status();
        assert_eq!(status.as_u16(), 405, "{method}");
    }
    assert!(r.stored().await.is_empty());

    // Just under the limit is fine.
    let body = delivery(&(1..=15).collect::<Vec<_>>());
    assert!(body.len() <= 4096, "{}", body.len());
    assert_eq!(post(&r.url, body.clone(), &signed(&body)).await, 204);
    assert_eq!(r.stored().await.len(), 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_receiver_accepts_v1_deliveries_and_refuses_v3_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let secret_file = dir.path().join("client-secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("secret file");
    let r = start(
        &format!(
            "[webhooks]\nlisten = \"127.0.0.1:0\"\nsignature = \"v1\"\nsecret_file = \"{}\"\n",
            secret_file.display()
        ),
        &[],
        &[],
    )
    .await;
    let body = delivery(&[401]);
    for (what, headers) in [
        ("v3", v3_headers(SECRET, &r.url, &body, now_ms())),
        ("forged v1", v1_headers("not-the-secret", &body)),
        (
            "v1 header, v2 version",
            vec![
                ("x-hubspot-signature", v1_signature(SECRET, &body)),
                ("x-hubspot-signature-version", "v2".into()),
            ],
        ),
    ] {
        assert_eq!(post(&r.url, body.clone(), &headers).await, 401, "{what}");
    }
    assert!(r.stored().await.is_empty());

    assert_eq!(
        post(&r.url, body.clone(), &v1_headers(SECRET, &body)).await,
        204
    );
    assert_eq!(r.stored().await, ["401"]);
    // v1 has no timestamp: a replay passes the check, and the eventId keeps it from counting twice.
    assert_eq!(
        post(&r.url, body.clone(), &v1_headers(SECRET, &body)).await,
        204
    );
    assert_eq!(r.stored().await, ["401"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_flags_override_the_webhooks_table() {
    // The file's address is not bindable and its secret is another one: only the flags work.
    let r = start(
        "[webhooks]\nlisten = \"192.0.2.1:9\"\nsecret_env = \"FILE_SECRET\"\nurl = \"https://old.example.com/hubspot/webhooks\"\n",
        &[
            "--webhook-listen",
            "127.0.0.1:0",
            "--webhook-secret-env",
            "CLI_SECRET",
            "--webhook-url",
            "https://new.example.com/hubspot/webhooks",
        ],
        &[("FILE_SECRET", "file-secret"), ("CLI_SECRET", SECRET)],
    )
    .await;
    let body = delivery(&[501]);
    let old = "https://old.example.com/hubspot/webhooks";
    let new = "https://new.example.com/hubspot/webhooks";
    let file_signed = v3_headers("file-secret", new, &body, now_ms());
    assert_eq!(post(&r.url, body.clone(), &file_signed).await, 401);
    let old_url = v3_headers(SECRET, old, &body, now_ms());
    assert_eq!(post(&r.url, body.clone(), &old_url).await, 401);
    let good = v3_headers(SECRET, new, &body, now_ms());
    assert_eq!(post(&r.url, body.clone(), &good).await, 204);
    assert_eq!(r.stored().await, ["501"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_without_its_client_secret_is_a_config_error() {
    let (child, _dir, _sandbox) = spawn("[webhooks]\nlisten = \"127.0.0.1:0\"\n", &[], &[]).await;
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(out) = rx.recv_timeout(Duration::from_secs(30)) else {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        panic!("crmsync run did not stop without its webhook secret");
    };
    let out = out.expect("crmsync run ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("webhooks.secret_env"), "{stderr}");
    assert!(stderr.contains("HUBSPOT_CLIENT_SECRET"), "{stderr}");
}

/// Two distinct events that share one `eventId` (HubSpot does not promise unique ids) are
/// both stored; a redelivery of one of them (another `attemptNumber`) is not stored again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_distinct_events_sharing_an_event_id_are_both_stored() {
    let r = start(
        "",
        &["--webhook-listen", "127.0.0.1:0"],
        &[("HUBSPOT_CLIENT_SECRET", SECRET)],
    )
    .await;
    let event = |object: u64, value: &str, attempt: u64| {
        serde_json::json!({
            "eventId": 500, "subscriptionId": 1234, "portalId": 62515, "appId": 54321,
            "occurredAt": 1_564_113_600_000_i64, "subscriptionType": "company.propertyChange",
            "attemptNumber": attempt, "objectId": object, "changeSource": "CRM_UI",
            "propertyName": "name", "propertyValue": value
        })
    };
    let body = serde_json::to_vec(&[event(123, "Acme", 0), event(124, "Globex", 0)]).expect("json");
    let status = post(
        &r.url,
        body.clone(),
        &v3_headers(SECRET, &r.url, &body, now_ms()),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(r.stored().await, ["500", "500"]);

    let body = serde_json::to_vec(&[event(124, "Globex", 1)]).expect("json");
    let status = post(
        &r.url,
        body.clone(),
        &v3_headers(SECRET, &r.url, &body, now_ms()),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(r.stored().await, ["500", "500"]);
}

/// The `host:port` of a receiver URL.
fn authority(url: &str) -> String {
    url.trim_start_matches("http://")
        .split('/')
        .next()
        .expect("authority")
        .to_string()
}

/// Reads from `stream` until the server closes it, at most `within`; what it sent, or a
/// panic when it did not close in time.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, within: Duration) -> String {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let read = tokio::time::timeout(within, stream.read_to_end(&mut got)).await;
    match read {
        Ok(_) => String::from_utf8_lossy(&got).into_owned(),
        Err(_) => panic!(
            "the receiver kept the connection open for {within:?}; it had sent {:?}",
            String::from_utf8_lossy(&got)
        ),
    }
}

/// A client that sends half its headers, or its headers and half the body, and stalls, is
/// disconnected once the read timeout passes (a body gets 408 first); one that stays within
/// it is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_half_request_is_closed_within_the_read_timeout() {
    use tokio::io::AsyncWriteExt;
    let r = start(
        "[webhooks]\nlisten = \"127.0.0.1:0\"\n[server]\nread_timeout_ms = 300\n",
        &[],
        &[("HUBSPOT_CLIENT_SECRET", SECRET)],
    )
    .await;
    let addr = authority(&r.url);
    // Far longer than the timeout, far shorter than "forever".
    let within = Duration::from_secs(10);

    let mut half_headers = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    half_headers
        .write_all(b"POST /hubspot/webhooks HTTP/1.1\r\nHost: x\r\nContent-Type: appl")
        .await
        .expect("write");
    let started = Instant::now();
    read_until_closed(&mut half_headers, within).await;
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed before the timeout"
    );

    let mut half_body = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    half_body
        .write_all(
            b"POST /hubspot/webhooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[{\"eventId\"",
        )
        .await
        .expect("write");
    let answer = read_until_closed(&mut half_body, within).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    let mut idle = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    read_until_closed(&mut idle, within).await;

    // A prompt client is still served.
    let body = delivery(&[601]);
    let status = post(
        &r.url,
        body.clone(),
        &v3_headers(SECRET, &r.url, &body, now_ms()),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(r.stored().await, ["601"]);
}

/// `Content-Length: 10^12` with no body: 413 at once, not a wait for a terabyte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_declared_body_gets_413_before_any_body_is_sent() {
    use tokio::io::AsyncWriteExt;
    let r = start(
        "[webhooks]\nlisten = \"127.0.0.1:0\"\n",
        &[],
        &[("HUBSPOT_CLIENT_SECRET", SECRET)],
    )
    .await;
    let mut stream = tokio::net::TcpStream::connect(authority(&r.url))
        .await
        .expect("connect");
    stream
        .write_all(
            b"POST /hubspot/webhooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n",
        )
        .await
        .expect("write");
    // The default read timeout is 10 s: an answer well within it was not a timeout's.
    let answer = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(r.stored().await.is_empty());
}

/// At `max_connections`, a further client is not served (it waits in the backlog) until a
/// connection closes; then it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_until_one_closes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let r = start(
        "[webhooks]\nlisten = \"127.0.0.1:0\"\n[server]\nmax_connections = 2\n",
        &[],
        &[("HUBSPOT_CLIENT_SECRET", SECRET)],
    )
    .await;
    let addr = authority(&r.url);
    // Two clients hold both slots (each is served: a GET gets 405 on a kept-alive connection).
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        s.write_all(b"GET /hubspot/webhooks HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).await.expect("answer");
        assert_eq!(&buf, b"HTTP/1.1 405");
        held.push(s);
    }
    let mut third = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    third
        .write_all(b"GET /hubspot/webhooks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 12];
    let early = tokio::time::timeout(Duration::from_millis(300), third.read_exact(&mut buf)).await;
    assert!(early.is_err(), "a third connection was served at the cap");
    drop(held.pop());
    tokio::time::timeout(Duration::from_secs(10), third.read_exact(&mut buf))
        .await
        .expect("served once a slot is free")
        .expect("answer");
    assert_eq!(&buf, b"HTTP/1.1 405");
}
