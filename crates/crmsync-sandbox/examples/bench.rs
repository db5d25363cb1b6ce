//! Small-request throughput of the sandbox over real loopback sockets.
//!
//! `cargo run --release -p crmsync-sandbox --example bench -- [CLIENTS] [SECONDS] [MAX_REQUESTS]`
//! (defaults 16 clients, 5 s, 200,000 requests per scenario). Each client is a keep-alive
//! connection issuing requests back to back; two scenarios run one after the other: GET of
//! one contact by id, and a batch upsert of one contact by email. Prints requests per second
//! for each.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crmsync_sandbox::{Sandbox, SandboxConfig};
use serde_json::json;

#[derive(Clone, Copy)]
enum Scenario {
    GetById,
    UpsertOne,
}

async fn run(
    base: &str,
    id: &str,
    scenario: Scenario,
    clients: usize,
    seconds: u64,
    cap: u64,
) -> (u64, u64, Duration) {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client_no in 0..clients {
        let (done, failed) = (Arc::clone(&done), Arc::clone(&failed));
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .unwrap_or_default();
        let get_url = format!("{base}/crm/v3/objects/contacts/{id}");
        let upsert_url = format!("{base}/crm/v3/objects/contacts/batch/upsert");
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline && done.load(Ordering::Relaxed) < cap {
                let request = match scenario {
                    Scenario::GetById => http.get(&get_url),
                    Scenario::UpsertOne => http.post(&upsert_url).json(&json!({"inputs": [{
                        "idProperty": "email",
                        "id": format!("bench-{client_no}-{}@x.io", n % 100),
                        "properties": {"firstname": format!("n{n}")},
                    }]})),
                };
                let ok = match request.bearer_auth("bench").send().await {
                    Ok(response) => {
                        let ok = response.status().is_success();
                        ok && response.bytes().await.is_ok()
                    }
                    Err(_) => false,
                };
                if ok {
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    (
        done.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        started.elapsed(),
    )
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let clients: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let cap: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let sandbox = Sandbox::start("127.0.0.1:0", SandboxConfig::unlimited()).await?;
    let base = sandbox.base_url();
    let created: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/crm/v3/objects/contacts"))
        .bearer_auth("bench")
        .json(&json!({"properties": {"email": "bench@x.io"}}))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(std::io::Error::other)?
        .json()
        .await
        .map_err(std::io::Error::other)?;
    let id = created["id"].as_str().unwrap_or("0").to_owned();
    println!(
        "sandbox bench: {clients} keep-alive clients, {seconds} s or {cap} requests per scenario, loopback"
    );
    for (name, scenario) in [
        ("GET /crm/v3/objects/contacts/{id}", Scenario::GetById),
        ("POST batch/upsert (1 record)", Scenario::UpsertOne),
    ] {
        let (ok, failed, elapsed) = run(&base, &id, scenario, clients, seconds, cap).await;
        let rate = ok as f64 / elapsed.as_secs_f64();
        println!("{name:<40} {ok:>8} ok {failed:>4} failed in {elapsed:>6.2?}  {rate:>8.0} req/s");
    }
    sandbox.shutdown().await;
    Ok(())
}
