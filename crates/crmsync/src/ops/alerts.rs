//! Alerts: `crmsync run` tells a person when it needs one. Each alert is a log line at error
//! level and, with `[alerts] url`, a JSON POST signed the Standard Webhooks way (`webhook-id`,
//! `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`
//! keyed with the `whsec_` secret), retried with backoff on failure (the same `webhook-id`
//! each time, so a receiver drops duplicates).
//!
//! What is reported: jobs out of retries (`jobs_dead`), the daily budget pausing delivery
//! (`budget_paused`), deletions held by the mass-deletion guard (`deletions_held`), a conflict
//! open longer than `conflict_wait_minutes` (`conflicts_waiting`), the CRM failing or refusing
//! every call for `crm_down_minutes` (`crm_refusing`).
//!
//! Invariant: raising an alert never blocks or fails the sync: it is a `try_send` into a
//! bounded queue a background task drains; a full queue drops the alert (the log line stays).
//! The same kind and sync is sent at most once per `repeat_minutes`.

use super::metrics as m;
use crate::cli::common::Worker;
use base64::Engine as _;
use crmsync_engine::telemetry::{Event, Telemetry};
use crmsync_store::Lifecycle;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Alerts waiting to be sent; more are dropped (and logged).
const QUEUE: usize = 256;
/// Attempts per alert, and the longest wait between two.
const ATTEMPTS: usize = 6;
const MAX_WAIT: Duration = Duration::from_secs(60);
/// How often the conflict and CRM checks run.
const CHECK_EVERY: Duration = Duration::from_secs(30);

/// One alert, as sent.
#[derive(Debug, Clone)]
struct Alert {
    id: String,
    body: String,
}

/// What the checks remember.
#[derive(Debug, Default)]
struct Memory {
    /// (kind, sync) -> when it was last raised.
    raised: HashMap<(String, String), Instant>,
    /// Since when every CRM call failed (`None`: the last one was answered).
    failing_since: Option<Instant>,
    last_failure: Option<String>,
}

/// The alert subscriber and its sender.
pub struct Alerts {
    tx: Option<mpsc::Sender<Alert>>,
    memory: Mutex<Memory>,
    repeat: Duration,
    conflict_wait: Duration,
    crm_down: Duration,
    worker: Mutex<String>,
}

impl Alerts {
    /// The alerts of `config`; starts the sender when a URL is configured.
    pub fn new(config: &crmsync_core::config::Config) -> anyhow::Result<Arc<Alerts>> {
        let env = |name: &str| std::env::var(name).ok();
        let url = config.alert_url(&env)?;
        let secret = config.alert_secret(&env)?;
        let key = match &secret {
            Some(s) => Some(decode_secret(s)?),
            None => None,
        };
        let tx = url.map(|url| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(send_all(rx, url, key));
            tx
        });
        let a = &config.raw.alerts;
        Ok(Arc::new(Alerts {
            tx,
            memory: Mutex::new(Memory::default()),
            repeat: Duration::from_secs(a.repeat_minutes.saturating_mul(60)),
            conflict_wait: Duration::from_secs(a.conflict_wait_minutes.saturating_mul(60)),
            crm_down: Duration::from_secs(a.crm_down_minutes.saturating_mul(60)),
            worker: Mutex::new(String::new()),
        }))
    }

    /// Raises `kind` for `sync` (empty: the whole worker), unless it was raised within
    /// `repeat_minutes`; whether it was raised.
    fn raise(&self, kind: &'static str, sync: &str, message: String) -> bool {
        {
            let Ok(mut mem) = self.memory.lock() else {
                return false;
            };
            let key = (kind.to_string(), sync.to_string());
            if mem
                .raised
                .get(&key)
                .is_some_and(|at| at.elapsed() < self.repeat)
            {
                return false;
            }
            mem.raised.insert(key, Instant::now());
        }
        tracing::error!(alert = kind, sync, "{message}");
        metrics::counter!(m::ALERTS, "kind" => kind).increment(1);
        let Some(tx) = &self.tx else {
            return true;
        };
        let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
        let worker = self.worker.lock().map(|w| w.clone()).unwrap_or_default();
        let body = json!({
            "type": format!("crmsync.alert.{kind}"),
            "kind": kind,
            "sync": (!sync.is_empty()).then_some(sync),
            "message": message,
            "worker": worker,
            "at": crmsync_engine::status::rfc3339(crmsync_store::now_ms()),
        })
        .to_string();
        if tx.try_send(Alert { id, body }).is_err() {
            tracing::warn!(
                alert = kind,
                "the alert queue is full; this alert is only logged"
            );
        }
        true
    }

    /// Starts the periodic checks (conflicts waiting, the CRM refusing every call).
    pub fn watch(self: &Arc<Self>, engine: Arc<Worker>) {
        if let Ok(mut w) = self.worker.lock() {
            *w = engine.worker.clone();
        }
        let me = self.clone();
        tokio::spawn(async move {
            while !engine.cancel.is_cancelled() {
                me.check(&engine).await;
                tokio::select! {
                    _ = tokio::time::sleep(CHECK_EVERY) => {}
                    _ = engine.cancel.cancelled() => {}
                }
            }
        });
    }

    async fn check(&self, engine: &Worker) {
        if let Ok(open) = engine.state.open_conflicts(None).await {
            for (sync, n) in self.waiting(&open, crmsync_store::now_ms()) {
                self.raise(
                    "conflicts_waiting",
                    sync,
                    format!(
                        "{n} conflict{} of {sync} waiting longer than {} minutes for a person: `crmsync conflicts`, or the dashboard",
                        if n == 1 { "" } else { "s" },
                        self.conflict_wait.as_secs() / 60
                    ),
                );
            }
        }
        if let Some(last) = self.crm_down() {
            self.raise(
                "crm_refusing",
                "",
                format!(
                    "every CRM call failed for {} minutes; the last: {last}",
                    self.crm_down.as_secs() / 60
                ),
            );
        }
    }
}

impl Alerts {
    /// Per sync, how many of `open` have waited at least `conflict_wait` at `now_ms`.
    fn waiting<'c>(
        &self,
        open: &'c [crmsync_store::Conflict],
        now_ms: i64,
    ) -> HashMap<&'c str, usize> {
        let wait_ms = i64::try_from(self.conflict_wait.as_millis()).unwrap_or(i64::MAX);
        let mut waiting: HashMap<&str, usize> = HashMap::new();
        for c in open.iter().filter(|c| now_ms - c.created_at_ms >= wait_ms) {
            *waiting.entry(c.sync.as_str()).or_default() += 1;
        }
        waiting
    }

    /// The last failure, when every CRM call has failed for `crm_down` or longer.
    fn crm_down(&self) -> Option<String> {
        self.memory.lock().ok().and_then(|m| {
            let since = m.failing_since?;
            (since.elapsed() >= self.crm_down).then(|| m.last_failure.clone().unwrap_or_default())
        })
    }
}

impl Telemetry for Alerts {
    fn emit(&self, event: &Event) {
        match event {
            Event::Settled { sync, dead, .. } if *dead > 0 => {
                self.raise(
                "jobs_dead",
                sync,
                format!(
                    "{dead} {sync} record{} ran out of retries; `crmsync status` shows why, `crmsync retry` tries again",
                    if *dead == 1 { "" } else { "s" }
                ),
                );
            }
            Event::BudgetPaused { remaining, .. } => {
                self.raise(
                "budget_paused",
                "",
                format!(
                    "today's API budget share is spent ({remaining} calls left for others); delivery waits for the daily reset"
                ),
                );
            }
            Event::Inbound { sync, report, .. } if report.deletions_held > 0 => {
                self.raise(
                "deletions_held",
                sync,
                format!(
                    "{} deletions of {sync} in the CRM are held by the mass-deletion guard: `crmsync deletions --apply` or `--reject`, or the dashboard",
                    report.deletions_held
                ),
                );
            }
            Event::CrmCall { status, .. } => {
                // The CRM answering at all (a record refused included) is not it being down.
                let failed = match status {
                    None => Some("no answer".to_string()),
                    Some(s @ (401 | 403 | 429 | 500..)) => Some(format!("HTTP {s}")),
                    Some(_) => None,
                };
                if let Ok(mut mem) = self.memory.lock() {
                    match failed {
                        Some(why) => {
                            mem.failing_since.get_or_insert_with(Instant::now);
                            mem.last_failure = Some(why);
                        }
                        None => mem.failing_since = None,
                    }
                }
            }
            _ => {}
        }
    }
}

/// The HMAC key of a `whsec_` secret.
fn decode_secret(secret: &SecretString) -> anyhow::Result<Vec<u8>> {
    let text = secret.expose_secret();
    let b64 = text.strip_prefix("whsec_").unwrap_or(text);
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| {
            crate::exit::UsageError(
                "[alerts] secret is not a Standard Webhooks secret (`whsec_` and base64)".into(),
            )
            .into()
        })
}

/// The `webhook-signature` of `body`.
fn sign(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// Sends every alert, each retried with exponential backoff (full jitter) until answered 2xx.
async fn send_all(mut rx: mpsc::Receiver<Alert>, url: SecretString, key: Option<Vec<u8>>) {
    use backon::{ExponentialBuilder, Retryable};
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "alerts cannot be sent: no HTTP client");
            return;
        }
    };
    while let Some(alert) = rx.recv().await {
        let send = || async {
            let ts = chrono::Utc::now().timestamp();
            let mut req = http
                .post(url.expose_secret())
                .header("content-type", "application/json")
                .header("webhook-id", &alert.id)
                .header("webhook-timestamp", ts.to_string());
            if let Some(key) = &key {
                req = req.header("webhook-signature", sign(key, &alert.id, ts, &alert.body));
            }
            let resp = req.body(alert.body.clone()).send().await?;
            resp.error_for_status().map(|_| ())
        };
        let sent = send
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(MAX_WAIT)
                    .with_max_times(ATTEMPTS)
                    .with_jitter(),
            )
            .await;
        if let Err(e) = sent {
            // Neither the URL (it may hold a token) nor the body's values beyond the kind.
            let status = e
                .status()
                .map_or_else(|| "no answer".into(), |s| s.to_string());
            tracing::error!(id = %alert.id, status, "an alert could not be delivered");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alerts(crm_down: Duration, conflict_wait: Duration) -> Alerts {
        Alerts {
            tx: None,
            memory: Mutex::new(Memory::default()),
            repeat: Duration::from_secs(3600),
            conflict_wait,
            crm_down,
            worker: Mutex::new(String::new()),
        }
    }

    fn call(status: Option<u16>) -> Event {
        Event::CrmCall {
            connection: "hubspot".into(),
            operation: "upsert".into(),
            status,
            rate_limited: status == Some(429),
            latency_ms: 1,
        }
    }

    #[test]
    fn the_crm_is_down_only_while_every_call_fails_and_a_refused_record_is_not_a_failure() {
        let a = alerts(Duration::ZERO, Duration::ZERO);
        assert_eq!(a.crm_down(), None, "no call yet");
        a.emit(&call(None));
        a.emit(&call(Some(503)));
        assert_eq!(a.crm_down().as_deref(), Some("HTTP 503"));
        // A batch of invalid records is the CRM answering.
        a.emit(&call(Some(400)));
        assert_eq!(a.crm_down(), None);
        a.emit(&call(Some(401)));
        assert_eq!(a.crm_down().as_deref(), Some("HTTP 401"));
        let later = alerts(Duration::from_secs(3600), Duration::ZERO);
        later.emit(&call(None));
        assert_eq!(later.crm_down(), None, "not for long enough yet");
    }

    #[test]
    fn conflicts_count_once_they_waited_and_an_alert_repeats_only_after_the_pause() {
        let a = alerts(Duration::ZERO, Duration::from_secs(60));
        let conflict = |sync: &str, at: i64| crmsync_store::Conflict {
            id: 1,
            sync: sync.into(),
            local_id: "1".into(),
            crm_id: "9".into(),
            field: "name".into(),
            column: "name".into(),
            app_value: "a".into(),
            crm_value: "b".into(),
            base_value: None,
            created_at_ms: at,
        };
        let open = [
            conflict("companies", 0),
            conflict("companies", 1_000),
            conflict("deals", 50_000),
        ];
        let waiting = a.waiting(&open, 61_000);
        assert_eq!(waiting.get("companies"), Some(&2));
        assert_eq!(waiting.get("deals"), None);
        assert!(a.raise("conflicts_waiting", "companies", "x".into()));
        assert!(
            !a.raise("conflicts_waiting", "companies", "x".into()),
            "within repeat_minutes"
        );
        assert!(
            a.raise("conflicts_waiting", "deals", "x".into()),
            "another sync is another alert"
        );
    }

    /// The Standard Webhooks spec's own example (BRIDGES.md).
    #[test]
    fn the_signature_is_the_specs() {
        let key = decode_secret(&SecretString::from(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string(),
        ))
        .expect("secret");
        assert_eq!(
            sign(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1674087231,
                r#"{"test": 2432232314}"#
            ),
            "v1,AQG81rX2n4rTN1fkXoqILSHO9gAOcwya9dP41rhrQDI="
        );
    }
}
