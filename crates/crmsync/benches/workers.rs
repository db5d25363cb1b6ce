//! Workers benchmark: several `crmsync run` processes (the real binary) sharing one PostgreSQL
//! state and one HubSpot account, judged from the outside by a recording proxy in front of the
//! sandbox (`crmsync_sandbox::Sandbox`, in this process). Prints its figures; asserts nothing.
//! Needs PostgreSQL at `postgres://postgres@127.0.0.1:5432/test` (or `CRMSYNC_TEST_POSTGRES_URL`);
//! every database is a fresh schema, dropped at the end.
//!
//! ```sh
//! cargo bench -p crmsync --bench workers                       # all scenarios (~15 min)
//! cargo bench -p crmsync --bench workers -- workers one         # some of them
//! cargo bench -p crmsync --bench workers -- workers=2000        # a scenario with its size
//! ```
//! Scenarios (size in brackets, default first):
//! - `workers` [5,000 customers, twice as many orders]: `crmsync demo --no-sync` writes the order
//!   system into PostgreSQL, the state into another PostgreSQL schema; then 3 `crmsync run`
//!   against the sandbox at HubSpot's Free-tier limits (100 requests per 10 s), each through its
//!   own proxy, all through one shared proxy. Until the backfill is done (companies, contacts and
//!   deals with associations): records, API calls, the aggregate rate from the first to the last
//!   call as a share of the 10 calls/s ceiling, the most calls in any 10 s window (HubSpot allows
//!   100), 429s, the time from start to the first call, and the same per worker;
//! - `one` [5,000]: the same with one `crmsync run`, plus the idle gaps: the sum of the pauses
//!   longer than 1.5 s between consecutive calls (time lost between parents and children);
//! - `latency` [50 edits]: app edit -> CRM latency, PostgreSQL source (trigger capture woken by
//!   LISTEN/NOTIFY, PostgreSQL state) and SQLite source (SQLite state, capture every
//!   `capture_interval_ms`): after the backfill, one `crmsync run` and K renames of a customer's
//!   `company_name`, one at a time after a seeded random 0-300 ms pause, each from the UPDATE's
//!   commit until a GET of the company shows the name (read every 5 ms). The sandbox runs
//!   UNLIMITED here, so the bench's own reads do not spend the account's budget; crmsync keeps
//!   the demo's Free-tier limits (its own limiter paces it as against HubSpot);
//! - `unthrottled` [20,000 customers and orders]: `crmsync sync --once` with source and state on
//!   PostgreSQL and the sandbox unlimited (the config's limits raised): records/s;
//! - `memory` [1,000,000 rows; at ~2,000 records/s over 8 min]: one `crmsync sync --once` over
//!   a `customers` table made with `generate_series` (one sync, companies, `capture = "scan"`),
//!   PostgreSQL source and state, sandbox unlimited: peak RSS (VmHWM) and RSS at 10 %, 50 %,
//!   90 % of the records delivered, sampled every 200 ms;
//! - `reserve` [2 s per case]: the shared budget's reservation (`Coordination::reserve_call`,
//!   one transaction under an advisory lock per CRM connection) straight against the state
//!   database: its round trip, and reservations/s by 8 tasks on one connection and on 8.

#[path = "../tests/support/proxy.rs"]
mod proxy;

use crmsync_sandbox::{Sandbox, SandboxConfig};
use crmsync_store::testing::TestDb;
use crmsync_store::{Coordination, DayLimit, Grant, Reservation, Role, WindowLimit};
use proxy::{Recorder, Seen};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The binary under test: Cargo builds it with the bench's profile and names it here.
const BIN: &str = env!("CARGO_BIN_EXE_crmsync");
const TOKEN: &str = "bench-token";
/// HubSpot Free tier: 100 requests per 10 s.
const CEILING_PER_S: f64 = 10.0;
const WINDOW_MS: u64 = 10_000;
/// A pause between two calls longer than this counts as idle.
const IDLE_GAP_MS: u64 = 1_500;
/// How often a wait looks at its condition.
const POLL: Duration = Duration::from_millis(100);
/// How often the latency scenario reads the company back.
const READ_EVERY: Duration = Duration::from_millis(5);

/// A child process killed when dropped.
struct Proc {
    child: Child,
    /// When it was spawned.
    spawned: Instant,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// SIGTERM, then waits for the exit; returns how long the exit took.
    async fn stop(mut self) -> Duration {
        let asked = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        while self.child.try_wait().ok().flatten().is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        asked.elapsed()
    }
}

/// `crmsync ARGS` in the background, with `HUBSPOT_ACCESS_TOKEN` set and its stderr in `log`.
fn spawn(args: &[&str], config: &Path, log: &Path) -> Proc {
    let child = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .env("HUBSPOT_ACCESS_TOKEN", TOKEN)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("crmsync runs");
    Proc {
        child,
        spawned: Instant::now(),
    }
}

/// Waits for `proc` to exit (without blocking the runtime the sandbox runs on), calling `each`
/// every `every`; panics with its log when it failed (exit 1, "finished with record failures",
/// is the demo's broken e-mail addresses, quarantined by design).
async fn finish(mut proc: Proc, log: &Path, every: Duration, mut each: impl AsyncFnMut(u32)) {
    let status = loop {
        each(proc.child.id()).await;
        if let Some(s) = proc.child.try_wait().expect("wait") {
            break s;
        }
        tokio::time::sleep(every).await;
    };
    assert!(
        matches!(status.code(), Some(0 | 1)),
        "crmsync failed ({status}):\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// A fresh PostgreSQL schema; the bench cannot run without one.
async fn schema() -> TestDb {
    TestDb::postgres()
        .await
        .expect("PostgreSQL at postgres://postgres@127.0.0.1:5432/test (CRMSYNC_TEST_POSTGRES_URL)")
}

/// What `crmsync demo --no-sync` prepared.
struct Demo {
    dir: PathBuf,
    config: PathBuf,
    customers: u64,
    orders: u64,
    /// The state database's URL (SQLite beside the config when the demo chose it).
    state_url: String,
}

/// `crmsync demo --dir DIR --no-sync --crm-url URL` with the given databases and sizes.
async fn demo(
    dir: &Path,
    source: Option<&str>,
    state: Option<&str>,
    crm_url: &str,
    customers: u64,
    orders: u64,
) -> Demo {
    let mut cmd = Command::new(BIN);
    cmd.arg("demo")
        .arg("--dir")
        .arg(dir)
        .arg("--no-sync")
        .args(["--crm-url", crm_url])
        .args(["--customers", &customers.to_string()])
        .args(["--orders", &orders.to_string()]);
    if let Some(s) = source {
        cmd.args(["--source", s]);
    }
    if let Some(s) = state {
        cmd.args(["--state", s]);
    }
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("crmsync demo"))
        .await
        .expect("demo");
    assert!(
        out.status.success(),
        "crmsync demo failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "  (crmsync demo --no-sync: {customers} customers, {orders} orders in {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    Demo {
        dir: dir.to_path_buf(),
        config: dir.join("crmsync.toml"),
        customers,
        orders,
        state_url: state.map_or_else(
            || format!("sqlite://{}", dir.join("crmsync-state.db").display()),
            str::to_string,
        ),
    }
}

/// The demo's config with its CRM URL replaced, written to `name` beside it.
fn config_with(demo: &Demo, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(&demo.config).expect("demo config");
    let path = demo.dir.join(name);
    std::fs::write(&path, edit(text)).expect("config");
    path
}

/// The demo's config with limits no sandbox of this bench reaches.
fn unthrottled_config(text: String) -> String {
    text.replace(
        "requests_per_interval = 100",
        "requests_per_interval = 1000000",
    )
    .replace("interval_ms = 10000", "interval_ms = 1000")
    .replace("daily_limit = 250000", "daily_limit = 10000000")
}

/// The state database, read from the outside (either backend).
enum Db {
    Pg(sqlx::PgPool),
    Lite(sqlx::SqlitePool),
}

impl Db {
    async fn open(url: &str) -> Db {
        if url.starts_with("postgres") {
            Db::Pg(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(2)
                    .connect(url)
                    .await
                    .expect("postgres"),
            )
        } else {
            Db::Lite(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect(&format!("{url}?mode=ro"))
                    .await
                    .expect("sqlite"),
            )
        }
    }

    async fn count(&self, sql: &'static str) -> i64 {
        match self {
            Db::Pg(p) => sqlx::query_scalar(sql).fetch_one(p).await,
            Db::Lite(p) => sqlx::query_scalar(sql).fetch_one(p).await,
        }
        .expect("count")
    }

    /// (customer id, CRM company id) of every linked company.
    async fn companies(&self) -> Vec<(i64, String)> {
        let sql =
            "SELECT local_id, crm_id FROM links WHERE sync = 'companies' AND crm_id IS NOT NULL";
        let rows: Vec<(String, String)> = match self {
            Db::Pg(p) => sqlx::query_as(sql).fetch_all(p).await,
            Db::Lite(p) => sqlx::query_as(sql).fetch_all(p).await,
        }
        .expect("links");
        rows.into_iter()
            .map(|(k, id)| (k.parse().expect("numeric customer id"), id))
            .collect()
    }
}

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    http.get(url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json")
}

/// The sandbox's object counts: (companies, contacts, deals).
async fn objects(http: &reqwest::Client, sandbox: &str) -> (u64, u64, u64) {
    let s = get_json(http, &format!("{sandbox}/_sandbox/stats")).await;
    let n = |k: &str| s["objects"][k].as_u64().unwrap_or(0);
    (n("companies"), n("contacts"), n("deals"))
}

/// Waits until the demo's backfill is done: every company and deal in the CRM, no job left to
/// run and no record held for a parent. Returns the CRM's record count.
async fn backfill_done(
    http: &reqwest::Client,
    sandbox: &str,
    demo: &Demo,
    give_up: Duration,
) -> u64 {
    let state = Db::open(&demo.state_url).await;
    let started = Instant::now();
    loop {
        let (companies, contacts, deals) = objects(http, sandbox).await;
        if companies == demo.customers && deals == demo.orders {
            let pending = state
                .count("SELECT COUNT(*) FROM jobs WHERE state IN ('ready', 'running', 'retrying')")
                .await;
            let held = state
                .count("SELECT COUNT(*) FROM quarantine WHERE waits_sync IS NOT NULL")
                .await;
            if pending == 0 && held == 0 {
                return companies + contacts + deals;
            }
        }
        assert!(
            started.elapsed() < give_up,
            "backfill not done after {give_up:?}: {companies} companies, {contacts} contacts, {deals} deals; logs in {}",
            demo.dir.display()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Whether the CRM counts a call against its rolling interval: HubSpot's search endpoints have
/// a budget of their own (5 a second) and are exempt from it.
fn counted(s: &Seen) -> bool {
    !s.path.ends_with("/search")
}

/// The calls one proxy saw, judged.
struct Calls {
    /// Calls counted against the interval limit (all but searches).
    calls: usize,
    searches: usize,
    /// Arrival of the first and last counted call, ms on the proxy's clock.
    first_ms: u64,
    last_ms: u64,
    /// Most counted calls in any 10 s window, and of all calls.
    max_window: usize,
    max_window_all: usize,
    too_many: usize,
    /// Sum, count and longest of the pauses > IDLE_GAP_MS between consecutive counted calls.
    idle_ms: u64,
    idle_gaps: usize,
    longest_gap_ms: u64,
}

impl Calls {
    fn of(proxy: &Recorder) -> Calls {
        let all: Vec<Seen> = proxy.api_calls();
        let seen: Vec<&Seen> = all.iter().filter(|s| counted(s)).collect();
        let gaps: Vec<u64> = seen
            .windows(2)
            .map(|w| w[1].at_ms - w[0].at_ms)
            .filter(|g| *g > IDLE_GAP_MS)
            .collect();
        Calls {
            calls: seen.len(),
            searches: all.len() - seen.len(),
            first_ms: seen.first().map_or(0, |s| s.at_ms),
            last_ms: seen.last().map_or(0, |s| s.at_ms),
            max_window: proxy.max_in_window(WINDOW_MS, counted),
            max_window_all: proxy.max_in_window(WINDOW_MS, |_| true),
            too_many: proxy.count_status(429),
            idle_ms: gaps.iter().sum(),
            idle_gaps: gaps.len(),
            longest_gap_ms: gaps.iter().copied().max().unwrap_or(0),
        }
    }

    /// Calls per second from the first to the last call.
    fn rate(&self) -> f64 {
        let span = (self.last_ms - self.first_ms) as f64 / 1000.0;
        if span > 0.0 {
            (self.calls.saturating_sub(1)) as f64 / span
        } else {
            0.0
        }
    }
}

/// With `CRMSYNC_BENCH_CALLS=DIR`, every call the proxy saw goes to `DIR/LABEL-calls.tsv`
/// (arrival ms, method, path, status), for a closer look; the state's reservations and call
/// log go to `LABEL-slots.tsv` and `LABEL-log.tsv`, on the proxy's clock.
async fn dump(proxy: &Recorder, zero: Instant, label: &str, state_url: &str) {
    let Ok(dir) = std::env::var("CRMSYNC_BENCH_CALLS") else {
        return;
    };
    let lines: String = proxy
        .seen()
        .iter()
        .map(|s| format!("{}\t{}\t{}\t{}\n", s.at_ms, s.method, s.path, s.status))
        .collect();
    let path = Path::new(&dir).join(format!("{label}-calls.tsv"));
    std::fs::write(&path, lines).expect("calls file");
    // The proxy's zero on the wall clock the workers stamp with.
    let epoch = crmsync_store::now_ms() - i64::try_from(zero.elapsed().as_millis()).unwrap_or(0);
    if let Db::Pg(p) = Db::open(state_url).await {
        let slots: Vec<(String, i64)> =
            sqlx::query_as("SELECT limit_name, at_ms FROM call_slots ORDER BY at_ms")
                .fetch_all(&p)
                .await
                .expect("call_slots");
        let text: String = slots
            .iter()
            .map(|(n, at)| format!("{}\t{n}\n", at - epoch))
            .collect();
        std::fs::write(Path::new(&dir).join(format!("{label}-slots.tsv")), text).expect("slots");
        let log: Vec<(i64, String, String, Option<i32>, i64)> = sqlx::query_as(
            "SELECT at_ms, method, endpoint, status, latency_ms FROM calls ORDER BY at_ms",
        )
        .fetch_all(&p)
        .await
        .expect("calls");
        let text: String = log
            .iter()
            .map(|(at, m, e, s, l)| format!("{}\t{m}\t{e}\t{s:?}\t{l}\n", at - epoch))
            .collect();
        std::fs::write(Path::new(&dir).join(format!("{label}-log.tsv")), text).expect("log");
    }
    println!("  calls, reservations and call log written to {dir}/{label}-*.tsv");
}

/// A proxy and the instant its clock starts (a few microseconds before its own).
async fn proxy(upstream: &str) -> (Recorder, Instant) {
    let zero = Instant::now();
    (Recorder::start(upstream).await, zero)
}

fn ms_since(zero: Instant, t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(zero).as_millis()).unwrap_or(u64::MAX)
}

/// `workers` and `one`: the demo's backfill by `n` workers at the Free tier's limits.
async fn backfill(label: &str, n: usize, customers: u64) {
    let orders = customers * 2;
    println!(
        "{label}: {n} x crmsync run, {customers} customers and {orders} orders on PostgreSQL, sandbox at the Free tier's 100 requests / 10 s"
    );
    let sandbox = Sandbox::start("127.0.0.1:0", SandboxConfig::default())
        .await
        .expect("sandbox");
    let (shared, zero) = proxy(&sandbox.base_url()).await;
    let (source, state) = (schema().await, schema().await);
    let temp = tempfile::tempdir().expect("temp dir");
    let d = demo(
        temp.path(),
        Some(&source.url),
        Some(&state.url),
        &shared.base_url,
        customers,
        orders,
    )
    .await;
    // Each worker talks to its own proxy, which forwards to the shared one.
    let mut own = Vec::new();
    let mut procs = Vec::new();
    for i in 1..=n {
        let (p, p_zero) = proxy(&shared.base_url).await;
        let cfg = config_with(&d, &format!("worker-{i}.toml"), |t| {
            t.replace(&shared.base_url, &p.base_url)
        });
        own.push((p, p_zero));
        procs.push(spawn(
            &["run"],
            &cfg,
            &d.dir.join(format!("worker-{i}.log")),
        ));
    }
    let started = procs[0].spawned;
    let spawned: Vec<Instant> = procs.iter().map(|p| p.spawned).collect();
    let http = reqwest::Client::new();
    // At ~1,000 records/s of companies and ~500/s of associated records, with room to spare.
    let give_up = Duration::from_secs(120 + (customers * 5 + orders * 2) / 300);
    let records = backfill_done(&http, &sandbox.base_url(), &d, give_up).await;
    let took = started.elapsed();
    let all = Calls::of(&shared);
    dump(&shared, zero, label, &d.state_url).await;
    let mut stops = Vec::new();
    for p in procs {
        stops.push(p.stop().await);
    }
    let start_ms = ms_since(zero, started);
    let rate = all.rate();
    println!(
        "  {records} records in {:.1} s ({:.0} records/s); {} API calls + {} searches (searches have their own 5/s and do not count against the interval); {rate:.2} calls/s from the first to the last call = {:.1} % of the {CEILING_PER_S} calls/s ceiling",
        took.as_secs_f64(),
        records as f64 / took.as_secs_f64(),
        all.calls,
        all.searches,
        rate / CEILING_PER_S * 100.0,
    );
    println!(
        "  most calls in any 10 s window: {} (HubSpot allows 100; {} with the searches); {} answered 429; first call {} ms after the start",
        all.max_window,
        all.max_window_all,
        all.too_many,
        all.first_ms.saturating_sub(start_ms),
    );
    println!(
        "  idle: {} pauses > {:.1} s between consecutive calls, {:.1} s in all, the longest {:.1} s",
        all.idle_gaps,
        IDLE_GAP_MS as f64 / 1000.0,
        all.idle_ms as f64 / 1000.0,
        all.longest_gap_ms as f64 / 1000.0
    );
    if n > 1 {
        for (i, ((p, p_zero), stop)) in own.iter().zip(&stops).enumerate() {
            let c = Calls::of(p);
            let own_start = ms_since(*p_zero, spawned[i]);
            println!(
                "  worker {}: {} calls + {} searches, first {} ms after its start, at most {} in a 10 s window, {} answered 429; exited {} ms after SIGTERM",
                i + 1,
                c.calls,
                c.searches,
                c.first_ms.saturating_sub(own_start),
                c.max_window,
                c.too_many,
                stop.as_millis()
            );
        }
    } else {
        println!("  exited {} ms after SIGTERM", stops[0].as_millis());
    }
    sandbox.shutdown().await;
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// Renames a customer's company in the app database.
async fn rename(app: &Db, customer: i64, name: &str) {
    let done = match app {
        Db::Pg(p) => sqlx::query("UPDATE customers SET company_name = $1 WHERE id = $2")
            .bind(name)
            .bind(customer)
            .execute(p)
            .await
            .map(|r| r.rows_affected()),
        Db::Lite(p) => sqlx::query("UPDATE customers SET company_name = ? WHERE id = ?")
            .bind(name)
            .bind(customer)
            .execute(p)
            .await
            .map(|r| r.rows_affected()),
    };
    assert_eq!(done.expect("update"), 1, "customer {customer}");
}

/// One source for `latency`: K renames, each from its commit until the CRM shows it.
async fn latency_of(label: &str, pg: bool, edits: usize) -> Vec<Duration> {
    let sandbox = Sandbox::start("127.0.0.1:0", SandboxConfig::unlimited())
        .await
        .expect("sandbox");
    let url = sandbox.base_url();
    let temp = tempfile::tempdir().expect("temp dir");
    let customers = (edits as u64 * 2).max(100);
    let (source, state) = if pg {
        (Some(schema().await), Some(schema().await))
    } else {
        (None, None)
    };
    let d = demo(
        temp.path(),
        source.as_ref().map(|s| s.url.as_str()),
        state.as_ref().map(|s| s.url.as_str()),
        &url,
        customers,
        customers,
    )
    .await;
    // crmsync keeps the demo's Free-tier limits; only the sandbox does not count.
    let log = d.dir.join("run.log");
    let run = spawn(&["run"], &d.config, &log);
    let http = reqwest::Client::new();
    backfill_done(&http, &url, &d, Duration::from_secs(300)).await;
    let app = match &source {
        Some(s) => Db::open(&s.url).await,
        None => Db::Lite(
            sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect(&format!("sqlite://{}", d.dir.join("orders.db").display()))
                .await
                .expect("orders.db"),
        ),
    };
    let mut targets = Db::open(&d.state_url).await.companies().await;
    targets.sort();
    let mut rng = StdRng::seed_from_u64(42);
    targets.shuffle(&mut rng);
    let mut took = Vec::with_capacity(edits);
    for (i, (customer, crm_id)) in targets.iter().cycle().take(edits).enumerate() {
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..=300))).await;
        let name = format!("{label} edit {i}");
        rename(&app, *customer, &name).await;
        let committed = Instant::now();
        let read = format!("{url}/crm/v3/objects/companies/{crm_id}?properties=name");
        loop {
            let got = get_json(&http, &read).await;
            if got["properties"]["name"].as_str() == Some(name.as_str()) {
                took.push(committed.elapsed());
                break;
            }
            assert!(
                committed.elapsed() < Duration::from_secs(60),
                "{label}: customer {customer} not renamed in the CRM after 60 s; log {}",
                log.display()
            );
            tokio::time::sleep(READ_EVERY).await;
        }
    }
    run.stop().await;
    sandbox.shutdown().await;
    took.sort();
    took
}

async fn latency(edits: usize) {
    println!(
        "latency: {edits} app edits -> CRM, one crmsync run after its backfill, sandbox UNLIMITED (the bench reads the company every {} ms)",
        READ_EVERY.as_millis()
    );
    for (label, pg) in [("postgres", true), ("sqlite", false)] {
        let v = latency_of(label, pg, edits).await;
        let how = if pg {
            "trigger capture woken by LISTEN/NOTIFY, PostgreSQL state"
        } else {
            "trigger capture every capture_interval_ms (1000), SQLite state"
        };
        println!(
            "  {label:<9} p50 {:>7}  p99 {:>7}  max {:>7}  ({how})",
            ms(pct(&v, 0.5)),
            ms(pct(&v, 0.99)),
            ms(v[v.len() - 1])
        );
    }
}

async fn unthrottled(customers: u64) {
    println!(
        "unthrottled: crmsync sync --once, {customers} customers and {customers} orders, source and state on PostgreSQL, sandbox unlimited"
    );
    let sandbox = Sandbox::start("127.0.0.1:0", SandboxConfig::unlimited())
        .await
        .expect("sandbox");
    let url = sandbox.base_url();
    let (source, state) = (schema().await, schema().await);
    let temp = tempfile::tempdir().expect("temp dir");
    let d = demo(
        temp.path(),
        Some(&source.url),
        Some(&state.url),
        &url,
        customers,
        customers,
    )
    .await;
    let cfg = config_with(&d, "unthrottled.toml", unthrottled_config);
    let log = d.dir.join("sync.log");
    let started = Instant::now();
    let proc = spawn(&["sync", "--once"], &cfg, &log);
    finish(proc, &log, Duration::from_millis(20), async |_| {}).await;
    let took = started.elapsed();
    let http = reqwest::Client::new();
    let (companies, contacts, deals) = objects(&http, &url).await;
    let records = companies + contacts + deals;
    let calls = get_json(&http, &format!("{url}/_sandbox/stats")).await["total"].clone();
    println!(
        "  {records} records ({companies} companies, {contacts} contacts, {deals} deals) in {:.1} s = {:.0} records/s; {calls} API calls",
        took.as_secs_f64(),
        records as f64 / took.as_secs_f64()
    );
    sandbox.shutdown().await;
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let v = text.lines().find_map(|l| l.strip_prefix(key))?;
    v.trim().trim_end_matches("kB").trim().parse().ok()
}

async fn memory(rows: u64) {
    println!(
        "memory: crmsync sync --once over {rows} rows, one sync (companies, capture = \"scan\"), source and state on PostgreSQL, sandbox unlimited"
    );
    let sandbox = Sandbox::start("127.0.0.1:0", SandboxConfig::unlimited())
        .await
        .expect("sandbox");
    let url = sandbox.base_url();
    let (source, state) = (schema().await, schema().await);
    let made = Instant::now();
    {
        let app = Db::open(&source.url).await;
        let Db::Pg(pool) = &app else { unreachable!() };
        sqlx::query(
            "CREATE TABLE customers (id BIGINT PRIMARY KEY, company_name TEXT NOT NULL, city TEXT)",
        )
        .execute(pool)
        .await
        .expect("ddl");
        sqlx::query(
            "INSERT INTO customers SELECT g, 'Robotics Company ' || g, 'Berlin' FROM generate_series(1, $1) g",
        )
        .bind(i64::try_from(rows).expect("rows"))
        .execute(pool)
        .await
        .expect("rows");
    }
    let made = made.elapsed();
    let temp = tempfile::tempdir().expect("temp dir");
    let cfg = temp.path().join("crmsync.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[source]
url = "{}"
[state]
url = "{}"
[crm]
environment = "sandbox"
kind = "hubspot"
base_url = "{url}"
token_env = "HUBSPOT_ACCESS_TOKEN"
requests_per_interval = 1000000
interval_ms = 1000
daily_limit = 10000000
daily_budget_share = 1.0
[[sync]]
name = "companies"
table = "customers"
object = "companies"
capture = "scan"
[sync.fields]
company_name = {{ crm = "name" }}
city = {{ crm = "city" }}
"#,
            source.url, state.url
        ),
    )
    .expect("config");
    let log = temp.path().join("sync.log");
    let http = reqwest::Client::new();
    let started = Instant::now();
    let proc = spawn(&["sync", "--once"], &cfg, &log);
    let (mut peak, mut at) = (0u64, [None::<u64>; 3]);
    let marks = [0.1, 0.5, 0.9];
    finish(proc, &log, Duration::from_millis(200), async |pid| {
        let rss = status_kib(pid, "VmRSS:");
        peak = peak.max(status_kib(pid, "VmHWM:").unwrap_or(0));
        let done = objects(&http, &url).await.0 as f64 / rows as f64;
        for (slot, mark) in at.iter_mut().zip(marks) {
            if slot.is_none() && done >= mark {
                *slot = rss;
            }
        }
    })
    .await;
    let took = started.elapsed();
    let mib =
        |k: Option<u64>| k.map_or("-".to_string(), |k| format!("{:.0} MiB", k as f64 / 1024.0));
    println!(
        "  {rows} records in {:.1} s = {:.0} records/s (table made in {:.1} s); peak RSS (VmHWM) {}; RSS at 10 % {}, 50 % {}, 90 % {}",
        took.as_secs_f64(),
        rows as f64 / took.as_secs_f64(),
        made.as_secs_f64(),
        mib(Some(peak)),
        mib(at[0]),
        mib(at[1]),
        mib(at[2]),
    );
    sandbox.shutdown().await;
}

/// One reservation on `connection`, as the engine's gate asks for it (98 per 10 s would stop
/// this bench, so the window's limit is out of reach; the counting is the same).
fn reservation(connection: &str) -> Reservation {
    let now = crmsync_store::now_ms();
    Reservation {
        connection: connection.to_string(),
        windows: vec![WindowLimit {
            name: "interval".to_string(),
            max: u32::MAX,
            length_ms: 10_000,
            min_gap_ms: 0,
        }],
        day: Some(DayLimit {
            start_ms: now - now % 86_400_000,
            allowance: i64::MAX,
        }),
        now_ms: now,
    }
}

/// Reservations per second by `tasks` tasks spread over `connections` connections, for `span`.
async fn reserve_rate(
    state: &crmsync_store::AnyState,
    case: &str,
    tasks: usize,
    connections: usize,
    span: Duration,
) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let (state, stop, done) = (state.clone(), stop.clone(), done.clone());
        let connection = format!("{case}-{}", t % connections);
        set.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let g = state.reserve_call(&reservation(&connection)).await;
                assert_eq!(g.expect("reserve"), Grant::Granted);
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    tokio::time::sleep(span).await;
    stop.store(true, Ordering::Relaxed);
    while set.join_next().await.is_some() {}
    done.load(Ordering::Relaxed) as f64 / span.as_secs_f64()
}

async fn reserve(span: Duration) {
    println!(
        "reserve: the shared budget's reservation (one transaction per API call) against a PostgreSQL state"
    );
    let db = schema().await;
    let state = crmsync_store::open_state(&db.url, Role::Beside)
        .await
        .expect("state");
    let mut one = Vec::new();
    let started = Instant::now();
    while started.elapsed() < span {
        let t = Instant::now();
        let g = state.reserve_call(&reservation("alone")).await;
        assert_eq!(g.expect("reserve"), Grant::Granted);
        one.push(t.elapsed());
    }
    one.sort();
    println!(
        "  round trip, one caller: p50 {:.2} ms, p99 {:.2} ms ({} reservations)",
        pct(&one, 0.5).as_secs_f64() * 1000.0,
        pct(&one, 0.99).as_secs_f64() * 1000.0,
        one.len()
    );
    for connections in [1, 8] {
        let rate = reserve_rate(&state, &format!("c{connections}"), 8, connections, span).await;
        println!(
            "  8 callers on {connections} connection(s): {rate:.0} reservations/s in all ({:.0} per connection)",
            rate / connections as f64
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    // `name` or `name=size`.
    let want = |name: &str, default: u64| -> Option<u64> {
        if args.is_empty() || args.iter().any(|a| a == "all") {
            return Some(default);
        }
        args.iter().find_map(|a| match a.split_once('=') {
            Some((n, size)) if n == name => Some(size.parse().expect("a number after =")),
            None if a == name => Some(default),
            _ => None,
        })
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "crmsync workers benchmark ({} cores, load {})",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    rt.block_on(async {
        if let Some(n) = want("workers", 5_000) {
            backfill("workers", 3, n).await;
        }
        if let Some(n) = want("one", 5_000) {
            backfill("one", 1, n).await;
        }
        if let Some(n) = want("latency", 50) {
            latency(n as usize).await;
        }
        if let Some(n) = want("unthrottled", 20_000) {
            unthrottled(n).await;
        }
        if let Some(n) = want("memory", 1_000_000) {
            memory(n).await;
        }
        if let Some(s) = want("reserve", 2) {
            reserve(Duration::from_secs(s)).await;
        }
    });
}
