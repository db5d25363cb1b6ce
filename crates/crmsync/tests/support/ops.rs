//! A demo order system under `crmsync run --listen`: the sandbox CRM in-process (with a token
//! that makes requests the HubSpot UI user's), `crmsync demo` for the data, its config switched
//! to quick rounds, conflicts parked for review and a low mass-deletion guard, and the operator
//! server on a port the test reads from the line `crmsync run` prints.

use crmsync_sandbox::{Sandbox, SandboxConfig};
use sqlx::{Connection, SqliteConnection};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

pub use super::wait_for;

/// The operator token of the running server.
pub const TOKEN: &str = "0p3rator-t0ken-for-tests";
/// The CRM token whose requests are the UI user's.
pub const UI_TOKEN: &str = "ui-token";
/// Customers in the demo.
pub const CUSTOMERS: u32 = 20;

pub struct OpsRun {
    run: Child,
    pub log: Arc<Mutex<Vec<String>>>,
    pub dir: PathBuf,
    /// `http://127.0.0.1:PORT` of the operator server.
    pub url: String,
    /// The sandbox CRM's base URL.
    pub crm: String,
    pub http: reqwest::Client,
    _temp: tempfile::TempDir,
    _sandbox: Sandbox,
}

impl Drop for OpsRun {
    fn drop(&mut self) {
        let _ = self.run.kill();
        let _ = self.run.wait();
    }
}

fn crmsync() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin!("crmsync"));
    c.env("HUBSPOT_ACCESS_TOKEN", "test-token")
        .env_remove("RUST_LOG")
        .env_remove("CRMSYNC_SERVER_TOKEN");
    c
}

impl OpsRun {
    /// The demo, then `crmsync run` with the operator server (`token`: its operator token).
    pub async fn start(token: Option<&str>) -> OpsRun {
        Self::start_with(token, "", &[]).await
    }

    /// As [`OpsRun::start`], with `extra` appended to the config and `env` set for the run.
    pub async fn start_with(token: Option<&str>, extra: &str, env: &[(&str, &str)]) -> OpsRun {
        let mut sc = SandboxConfig::unlimited();
        sc.other_tokens.insert(UI_TOKEN.into(), 7);
        let sandbox = Sandbox::start("127.0.0.1:0", sc).await.expect("sandbox");
        let crm = sandbox.base_url();
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().join("demo");
        let mut demo = crmsync();
        demo.arg("demo")
            .arg("--dir")
            .arg(&dir)
            .args(["--customers", &CUSTOMERS.to_string(), "--orders", "20"])
            .args(["--crm-url", &crm]);
        let out = tokio::task::spawn_blocking(move || demo.output())
            .await
            .expect("join")
            .expect("demo runs");
        assert!(
            out.status.success(),
            "crmsync demo: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config = dir.join("crmsync.toml");
        let text = std::fs::read_to_string(&config).expect("demo config");
        let start = text.find("[run]\n").expect("the demo has a [run] table");
        let end = start
            + text[start..]
                .find("\n\n")
                .expect("a blank line after [run]")
            + 1;
        let text = format!(
            "{}[run]\npoll_interval_ms = 200\narchive_check_interval_ms = 300\nreconcile_interval_ms = 0\n\
             max_delete_share = 0.1\ndelete_guard_min = 2\n\n\
             [server]\nlisten = \"127.0.0.1:0\"\n{}\n{}",
            &text[..start],
            // Without a token, none is configured at all (an unset `token_env` is an error).
            if token.is_some() { "token_env = \"OPS_TOKEN\"" } else { "" },
            &text[end..]
        )
        .replace("conflict = \"crm_wins\"", "conflict = \"review\"");
        std::fs::write(&config, format!("{text}\n{extra}")).expect("config");

        let mut cmd = crmsync();
        cmd.arg("run")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        match token {
            Some(t) => cmd.env("OPS_TOKEN", t),
            None => cmd.env_remove("OPS_TOKEN"),
        };
        cmd.envs(env.iter().copied());
        let mut run = cmd.spawn().expect("crmsync run starts");
        let stderr = run.stderr.take().expect("stderr piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let lines = log.clone();
        // Keeps draining stderr until the process ends, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().expect("log").push(line.clone());
                let _ = tx.send(line);
            }
        });
        let url = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let line = rx.recv_timeout(left).ok()?;
                if let Some(rest) = line.strip_prefix("operator server on ") {
                    let url = rest.split_whitespace().next()?;
                    return Some(url.trim_end_matches('/').to_string());
                }
            }
        })
        .await
        .expect("join");
        let Some(url) = url else {
            panic!("no operator server: {:#?}", log.lock().expect("log"));
        };
        OpsRun {
            run,
            log,
            dir,
            url,
            crm,
            http: reqwest::Client::new(),
            _temp: temp,
            _sandbox: sandbox,
        }
    }

    /// Sends `signal` (`HUP`, `TERM`, ...) to the `crmsync run` process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.run.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal}");
    }

    /// Waits (at most `secs`) for the `crmsync run` process to end; its exit status, or
    /// `None` while it still runs.
    pub async fn exited_within(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Ok(Some(status)) = self.run.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    pub async fn app(&self) -> SqliteConnection {
        SqliteConnection::connect(&format!(
            "sqlite://{}?mode=rw",
            self.dir.join("orders.db").display()
        ))
        .await
        .expect("app db")
    }

    /// GETs `path` of the operator server as JSON.
    pub async fn json(&self, path: &str) -> serde_json::Value {
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("operator server answers");
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json().await.expect("JSON")
    }

    /// `/metrics`, checked by the strict reader.
    pub async fn metrics(&self) -> Vec<super::prom::Sample> {
        let resp = self
            .http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .expect("metrics");
        assert_eq!(resp.status(), 200);
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        let text = resp.text().await.expect("text");
        super::prom::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// A request to the sandbox CRM as the UI user.
    pub async fn as_ui_user(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.crm))
            .bearer_auth(UI_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("sandbox answers");
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
    }

    /// `(customer id, company CRM id)` of the `nth` linked customer.
    pub async fn linked_customer(&self, nth: i64) -> (i64, String) {
        let mut app = self.app().await;
        sqlx::query_as(
            "SELECT id, hubspot_company_id FROM customers WHERE hubspot_company_id IS NOT NULL \
             ORDER BY id LIMIT 1 OFFSET ?",
        )
        .bind(nth)
        .fetch_one(&mut app)
        .await
        .expect("a linked customer")
    }

    /// Pauses (with the token), edits a company name on both sides, resumes, and waits until
    /// the conflict is parked; its id.
    pub async fn make_conflict(&self, nth: i64) -> (i64, i64, String) {
        let (customer, company) = self.linked_customer(nth).await;
        self.post_ok("/api/pause", None).await;
        // The worker saw it: no batch starts until the resume, so neither edit moves alone.
        let me = self;
        wait_for(30, "the worker paused", move || async move {
            me.log()
                .contains("paused (crmsync resume continues)")
                .then_some(())
        })
        .await;
        sqlx::query("UPDATE customers SET company_name = 'App Side GmbH', updated_at = '2030-01-01T00:00:00Z' WHERE id = ?")
            .bind(customer)
            .execute(&mut self.app().await)
            .await
            .expect("app edit");
        self.as_ui_user(
            reqwest::Method::PATCH,
            &format!("/crm/v3/objects/companies/{company}"),
            Some(serde_json::json!({"properties": {"name": "CRM Side Inc"}})),
        )
        .await;
        self.post_ok("/api/resume", None).await;
        let me = self;
        let id = wait_for(30, "the conflict parked", move || async move {
            let open = me.json("/api/conflicts").await;
            open.as_array()?
                .iter()
                .find(|c| c["record"] == customer.to_string().as_str())
                .and_then(|c| c["id"].as_i64())
        })
        .await;
        (id, customer, company)
    }

    /// Archives `n` companies in the CRM as the UI user and waits until the guard holds them.
    pub async fn hold_deletions(&self, from: i64, n: i64) {
        for i in from..from + n {
            let (_, company) = self.linked_customer(i).await;
            self.as_ui_user(
                reqwest::Method::DELETE,
                &format!("/crm/v3/objects/companies/{company}"),
                None,
            )
            .await;
        }
        let me = self;
        wait_for(30, "the deletions held", move || async move {
            let all = me.json("/api/deletions").await;
            let held = all
                .as_array()?
                .iter()
                .filter(|d| d["state"] == "held")
                .count();
            (held as i64 >= n).then_some(())
        })
        .await;
    }

    /// POSTs `path` with the operator token; the JSON answer.
    pub async fn post_ok(&self, path: &str, body: Option<serde_json::Value>) -> serde_json::Value {
        let mut req = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("operator server answers");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert!(status.is_success(), "POST {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }
}
