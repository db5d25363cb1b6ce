//! `/healthz` (the process answers) and `/readyz` (it can do its work: the state database
//! answers within [`STATE_TIMEOUT`], and the CRM's latest answer was not a failure to reach it
//! or to authenticate). The CRM is judged by the calls the engine makes anyway ([`Health`]
//! subscribes to them), so a probe never spends API budget.

use super::Ops;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use crmsync_engine::telemetry::{Event, Telemetry};
use crmsync_store::Coordination;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long readiness waits for the state database.
const STATE_TIMEOUT: Duration = Duration::from_secs(2);

/// The CRM's latest answer, as the engine's calls saw it.
#[derive(Debug, Default)]
pub struct Health {
    last: Mutex<Option<CrmSeen>>,
}

#[derive(Debug, Clone)]
struct CrmSeen {
    status: Option<u16>,
    at_ms: i64,
}

impl Health {
    /// `Ok(what)` when the CRM is reachable as far as is known, `Err(why)` otherwise.
    fn crm(&self) -> Result<String, String> {
        let seen = self.last.lock().ok().and_then(|l| l.clone());
        match seen {
            None => Ok("no call yet".into()),
            Some(CrmSeen {
                status: None,
                at_ms,
            }) => Err(format!(
                "the last call got no answer (at {})",
                crmsync_engine::status::rfc3339(at_ms)
            )),
            Some(CrmSeen {
                status: Some(s @ (401 | 403)),
                ..
            }) => Err(format!("the CRM refuses our credentials (HTTP {s})")),
            Some(CrmSeen {
                status: Some(s @ 500..),
                ..
            }) => Err(format!("the CRM fails (HTTP {s})")),
            Some(CrmSeen {
                status: Some(s), ..
            }) => Ok(format!("last answer HTTP {s}")),
        }
    }
}

impl Telemetry for Health {
    fn emit(&self, event: &Event) {
        if let Event::CrmCall { status, .. } = event
            && let Ok(mut last) = self.last.lock()
        {
            *last = Some(CrmSeen {
                status: *status,
                at_ms: crmsync_store::now_ms(),
            });
        }
    }
}

pub async fn healthz() -> &'static str {
    "ok\n"
}

pub async fn readyz(State(ops): State<Arc<Ops>>) -> (StatusCode, Json<serde_json::Value>) {
    let state = match tokio::time::timeout(STATE_TIMEOUT, ops.engine.state.paused()).await {
        Ok(Ok(_)) => Ok("ok".to_string()),
        Ok(Err(e)) => Err(format!("the state database fails: {e}")),
        Err(_) => Err(format!(
            "the state database did not answer within {} s",
            STATE_TIMEOUT.as_secs()
        )),
    };
    let crm = ops.health.crm();
    let ready = state.is_ok() && crm.is_ok();
    let show = |r: Result<String, String>| match r {
        Ok(s) => json!({"ok": true, "detail": s}),
        Err(s) => json!({"ok": false, "detail": s}),
    };
    (
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(json!({"ready": ready, "state": show(state), "crm": show(crm)})),
    )
}
