//! Backfill benchmark: crmsync's `sync --once` (the real binary) against `crmsync sandbox` (the
//! real binary, in its own process), on loopback. Prints its figures; asserts nothing.
//!
//! ```sh
//! cargo bench -p crmsync --bench backfill                 # all scenarios (~3 min)
//! cargo bench -p crmsync --bench backfill -- free naive    # some of them
//! ```
//! Scenarios:
//! - `free`: 50,000 records under HubSpot's Free tier limit (100 requests per 10 s), as a share
//!   of the ceiling (10 requests/s x 100 records per call = 1,000 records/s), and the 429 count;
//! - `naive`: the seed's way, one call per record through the same client and limit, on a sample
//!   (its rate is limit-bound, so a sample measures it), and the speed-up of `free` over it;
//! - `unthrottled`: 100,000 records with the sandbox's limits off;
//! - `million`: `plan` and then the backfill of 1,000,000 records, unthrottled, with the peak
//!   resident memory (VmHWM) of each crmsync process;
//! - `linked`: 10,000 customers as companies, contacts linked to them and deals linked to both,
//!   at each CRM's default limits: HubSpot (the links ride in each record's batch create) and
//!   Salesforce (`--flavour salesforce`: the Account id rides in the Contact's and the
//!   Opportunity's write), with the records per write call, the association calls and the
//!   rate-limited answers, from crmsync's own pass report and the sandbox's stats.

use crmsync_crm::hubspot::{HubspotClient, HubspotConfig};
use crmsync_crm::{Crm, ObjectKind, UpsertInput};
use secrecy::SecretString;
use sqlx::{Connection, SqliteConnection};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_crmsync");

struct SandboxProcess {
    child: Child,
    url: String,
}

impl SandboxProcess {
    fn start(extra: &[&str]) -> SandboxProcess {
        let mut child = Command::new(BIN)
            .args(["sandbox", "--port", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start crmsync sandbox");
        let out = child.stdout.take().expect("sandbox stdout");
        let mut reader = BufReader::new(out);
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .expect("sandbox prints its address");
        // Keep draining its output: a closed pipe would end the sandbox at its next line.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        // "... listening on http://127.0.0.1:PORT" (HubSpot), "... on http://... (instance_url ...)" (Salesforce)
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .expect("address")
            .to_string();
        SandboxProcess { child, url }
    }

    fn stats(&self) -> serde_json::Value {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            reqwest::get(format!("{}/_sandbox/stats", self.url))
                .await
                .expect("stats")
                .json()
                .await
                .expect("json")
        })
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn make_db(dir: &Path, rows: u64) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let path = dir.join("app.db");
        let mut conn = SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .expect("db");
        sqlx::query("CREATE TABLE customers (id INTEGER PRIMARY KEY, company TEXT, city TEXT)")
            .execute(&mut conn)
            .await
            .expect("ddl");
        let mut tx = conn.begin().await.expect("tx");
        for i in 1..=rows {
            sqlx::query("INSERT INTO customers VALUES (?, ?, ?)")
                .bind(i as i64)
                .bind(format!("Robotics Company {i}"))
                .bind("Berlin")
                .execute(&mut *tx)
                .await
                .expect("insert");
        }
        tx.commit().await.expect("commit");
    });
}

fn write_config(dir: &Path, url: &str, per_interval: u32, interval_ms: u64) -> PathBuf {
    let path = dir.join("crmsync.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[source]
url = "sqlite://app.db"
[crm]
environment = "sandbox"
kind = "hubspot"
base_url = "{url}"
token_env = "HUBSPOT_ACCESS_TOKEN"
requests_per_interval = {per_interval}
interval_ms = {interval_ms}
daily_limit = 10000000
daily_budget_share = 1.0
[[sync]]
name = "companies"
table = "customers"
object = "companies"
capture = "scan"
[sync.fields]
company = {{ crm = "name" }}
city = {{ crm = "city" }}
"#
        ),
    )
    .expect("config");
    path
}

/// Runs `crmsync ARGS`, returning its wall time and peak resident memory in MiB.
fn run_crmsync(args: &[&str], config: &Path) -> (Duration, f64) {
    let started = Instant::now();
    let log = config.with_extension("log");
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .env("HUBSPOT_ACCESS_TOKEN", "bench-token")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("crmsync runs");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(v) = text.lines().find_map(|l| l.strip_prefix("VmHWM:"))
        {
            peak_kib = peak_kib.max(v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0));
        }
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.success(),
        "crmsync {args:?} failed:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    (started.elapsed(), peak_kib as f64 / 1024.0)
}

fn count(stats: &serde_json::Value, status: u64) -> u64 {
    stats["calls"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|c| c["status"].as_u64() == Some(status))
                .map(|c| c["count"].as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

fn free() -> f64 {
    let records = 50_000;
    let sandbox = SandboxProcess::start(&[]);
    let dir = tempfile::tempdir().expect("dir");
    make_db(dir.path(), records);
    let cfg = write_config(dir.path(), &sandbox.url, 100, 10_000);
    let (took, _) = run_crmsync(&["sync", "--once"], &cfg);
    let stats = sandbox.stats();
    let rate = records as f64 / took.as_secs_f64();
    println!(
        "free:        {records} records in {:.1} s = {rate:.0} records/s = {:.1}% of the 1,000 records/s ceiling; {} requests, {} answered 429; sandbox holds {} companies",
        took.as_secs_f64(),
        rate / 10.0,
        stats["total"],
        count(&stats, 429),
        stats["objects"]["companies"]
    );
    rate
}

fn naive() -> f64 {
    let sample = 150;
    let sandbox = SandboxProcess::start(&[]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let took = rt.block_on(async {
        let mut hc = HubspotConfig::new(sandbox.url.clone(), SecretString::from("bench-token"));
        hc.headroom_percent = 2;
        let client = HubspotClient::new(hc, None).expect("client");
        client
            .ensure_id_property(ObjectKind::Companies, "crmsync_id")
            .await
            .expect("property");
        let started = Instant::now();
        for i in 1..=sample {
            let input = UpsertInput {
                key: i.to_string(),
                properties: BTreeMap::from([("name".to_string(), format!("Robotics Company {i}"))]),
                links: Vec::new(),
                new_record: false,
            };
            client
                .upsert_batch(ObjectKind::Companies, "crmsync_id", &[input])
                .await
                .expect("upsert");
        }
        started.elapsed()
    });
    let rate = sample as f64 / took.as_secs_f64();
    println!(
        "naive:       {sample} records one call each in {:.1} s = {rate:.2} records/s; {} answered 429",
        took.as_secs_f64(),
        count(&sandbox.stats(), 429)
    );
    rate
}

fn unthrottled(records: u64, label: &str, with_plan: bool) {
    let sandbox = SandboxProcess::start(&["--no-limits"]);
    let dir = tempfile::tempdir().expect("dir");
    let t = Instant::now();
    make_db(dir.path(), records);
    let made = t.elapsed();
    let cfg = write_config(dir.path(), &sandbox.url, 1_000_000, 1_000);
    if with_plan {
        let (took, peak) = run_crmsync(&["plan"], &cfg);
        println!(
            "{label:<12} plan of {records} records in {:.1} s, peak memory {peak:.0} MiB",
            took.as_secs_f64()
        );
    }
    let (took, peak) = run_crmsync(&["sync", "--once"], &cfg);
    let stats = sandbox.stats();
    println!(
        "{label:<12} {records} records in {:.1} s = {:.0} records/s, peak memory {peak:.0} MiB; sandbox holds {} companies (app db made in {:.1} s)",
        took.as_secs_f64(),
        records as f64 / took.as_secs_f64(),
        stats["objects"]["companies"],
        made.as_secs_f64()
    );
}

/// The tables of `linked`: `customers` (a company and a contact per row) and `orders` (a deal
/// per row, of customer `id`).
fn make_people_db(dir: &Path, rows: u64) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let path = dir.join("app.db");
        let mut conn = SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .expect("db");
        sqlx::query("CREATE TABLE customers (id INTEGER PRIMARY KEY, company TEXT, last_name TEXT, email TEXT)")
            .execute(&mut conn)
            .await
            .expect("ddl");
        sqlx::query("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, title TEXT, status TEXT)")
            .execute(&mut conn)
            .await
            .expect("ddl");
        let mut tx = conn.begin().await.expect("tx");
        for i in 1..=rows {
            sqlx::query("INSERT INTO customers VALUES (?, ?, ?, ?)")
                .bind(i as i64)
                .bind(format!("Robotics Company {i}"))
                .bind(format!("Builder {i}"))
                .bind(format!("buyer{i}@example.com"))
                .execute(&mut *tx)
                .await
                .expect("insert");
            sqlx::query("INSERT INTO orders VALUES (?, ?, ?, ?)")
                .bind(i as i64)
                .bind(i as i64)
                .bind(format!("Order {i}"))
                .bind(if i % 2 == 0 { "paid" } else { "new" })
                .execute(&mut *tx)
                .await
                .expect("insert");
        }
        tx.commit().await.expect("commit");
    });
}

/// `[crm]` and the three syncs of `linked` for one CRM, at the connector's default limits
/// (nothing about rates in the config). Deals link to their company and, on HubSpot, to the
/// buyer's contact too (Salesforce links a deal to a contact through a junction record, a
/// separate call; the company lookup is what the figure is about there).
fn linked_config(dir: &Path, crm: &str, url: &str) -> PathBuf {
    let salesforce = crm == "salesforce";
    let crm_block = if salesforce {
        format!(
            "kind = \"salesforce\"\nlogin_url = \"{url}\"\nclient_id = \"crmsync-sandbox\"\nclient_secret_env = \"SF_CLIENT_SECRET\"\nrefresh_token_env = \"SF_REFRESH_TOKEN\""
        )
    } else {
        format!("kind = \"hubspot\"\nbase_url = \"{url}\"\ntoken_env = \"HUBSPOT_ACCESS_TOKEN\"")
    };
    let (id, name, last, email) = if salesforce {
        ("crmsync_id__c", "Name", "LastName", "Email")
    } else {
        ("crmsync_id", "name", "lastname", "email")
    };
    let deal_links = if salesforce {
        "associate = { customer_id = \"companies\" }"
    } else {
        "associate = { customer_id = \"companies\", buyer = \"contacts\" }"
    };
    let deal_fields = if salesforce {
        r#"title = { crm = "Name" }
status = { crm = "StageName", map = { new = "Prospecting", paid = "Closed Won" } }
closes = { crm = "CloseDate", constant = "2027-01-31" }"#
    } else {
        r#"title = { crm = "dealname" }
status = { crm = "dealstage", map = { new = "appointmentscheduled", paid = "closedwon" } }"#
    };
    let path = dir.join("crmsync.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[source]
url = "sqlite://app.db"
[crm]
environment = "sandbox"
{crm_block}
[[sync]]
name = "companies"
table = "customers"
object = "companies"
id_property = "{id}"
capture = "scan"
[sync.fields]
company = {{ crm = "{name}" }}
[[sync]]
name = "contacts"
table = "customers"
object = "contacts"
id_property = "{id}"
capture = "scan"
associate = {{ id = "companies" }}
[sync.fields]
last_name = {{ crm = "{last}" }}
email = {{ crm = "{email}" }}
[[sync]]
name = "deals"
table = "v_orders"
key = "id"
object = "deals"
id_property = "{id}"
capture = "scan"
{deal_links}
[sync.fields]
{deal_fields}
"#
        ),
    )
    .expect("config");
    path
}

/// `sync --once` of `config`, returning its wall time and the pass report's call line.
fn sync_report(config: &Path) -> (Duration, String) {
    let started = Instant::now();
    let out = Command::new(BIN)
        .args(["sync", "--once", "--config"])
        .arg(config)
        .env("HUBSPOT_ACCESS_TOKEN", "bench-token")
        .env("SF_CLIENT_SECRET", "sandbox-secret")
        .env("SF_REFRESH_TOKEN", "sandbox-refresh-token")
        .output()
        .expect("crmsync runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "crmsync sync failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.contains("API calls"))
        .unwrap_or("no call line")
        .to_string();
    (started.elapsed(), line)
}

/// The number in `line` just before `marker` (`"(100.0 per call)"` -> 100.0).
fn number_before(line: &str, marker: &str) -> f64 {
    line.split(marker)
        .next()
        .and_then(|head| head.split([' ', '(']).rev().find(|w| !w.is_empty()))
        .and_then(|w| w.parse().ok())
        .unwrap_or(0.0)
}

fn linked() {
    let rows = 10_000;
    for (crm, flags) in [
        ("hubspot", vec![]),
        ("salesforce", vec!["--flavour", "salesforce"]),
    ] {
        // The sandbox's default limits: HubSpot's 100 requests per 10 s and 250,000 a day;
        // Salesforce's daily allowance (no per-second limit).
        let sandbox = SandboxProcess::start(&flags);
        let dir = tempfile::tempdir().expect("dir");
        make_people_db(dir.path(), rows);
        // Deals name their buyer's contact by the customer's key, in a column of its own.
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let path = dir.path().join("app.db");
            let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                .await
                .expect("db");
            sqlx::query("CREATE VIEW v_orders AS SELECT id, customer_id, customer_id AS buyer, title, status FROM orders")
                .execute(&mut conn)
                .await
                .expect("view");
        });
        let cfg = linked_config(dir.path(), crm, &sandbox.url);
        let (took, line) = sync_report(&cfg);
        let records = 3 * rows;
        let rate = records as f64 / took.as_secs_f64();
        let per_call = number_before(&line, " per call)");
        let ceiling = if crm == "hubspot" {
            // 10 requests/s x 100 records per call.
            format!("{:.1}% of the 1,000 records/s ceiling", rate / 10.0)
        } else {
            "no per-second ceiling (a daily allowance only)".to_string()
        };
        let stats = sandbox.stats();
        println!(
            "linked:      {crm:<10} {records} records ({rows} companies, {rows} contacts, {rows} deals, linked) in {:.1} s = {rate:.0} records/s, {ceiling}; {per_call:.1} records per write call; {} answered 429 by the sandbox\n             {line}",
            took.as_secs_f64(),
            count(&stats, 429),
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |name: &str| args.is_empty() || args.iter().any(|a| a == name || a == "all");
    println!(
        "crmsync backfill benchmark ({} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let free_rate = want("free").then(free);
    let naive_rate = want("naive").then(naive);
    if let (Some(f), Some(n)) = (free_rate, naive_rate) {
        println!("speed-up:    {:.0}x over one call per record", f / n);
    }
    if want("unthrottled") {
        unthrottled(100_000, "unthrottled:", false);
    }
    if want("million") {
        unthrottled(1_000_000, "million:", true);
    }
    if want("linked") {
        linked();
    }
}
