//! The dashboard: server-rendered HTML (askama templates in `crates/crmsync/templates/`) that
//! works without JavaScript. `/` shows per sync synced / pending / failed / quarantined / held
//! with the reasons, the API budget, recent errors with the CRM's message, open conflicts with a
//! resolve action, held deletions with apply / reject, pause / resume, and a record search
//! whose answer (`/records`) is what `crmsync explain` shows.
//!
//! Actions are plain form posts answered with `303 See Other` back to `/` and a one-line
//! message; the access check ([`super::auth`]) lets them through only with the operator token
//! (the cookie `/login` sets). Every value shown is escaped by the template.

use super::Ops;
use super::api::{ConflictView, parse_decision, parse_take};
use super::auth::{COOKIE, authorized, is_token};
use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use crmsync_engine::lifecycle::conflict::resolve_conflict;
use crmsync_engine::status::rfc3339;
use crmsync_store::{
    CallRow, Coordination, DeletionState, Inspect, JobProblem, Lifecycle, QuarantineKind, Records,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Failed calls shown on the page.
const RECENT_ERRORS: i64 = 10;
/// Quarantine reasons listed per sync.
const REASONS_PER_SYNC: usize = 5;

/// One sync's row.
pub struct SyncRow {
    pub sync: String,
    pub object: String,
    pub total: i64,
    pub synced: i64,
    pub pending: i64,
    pub failed: i64,
    pub quarantined: i64,
    pub held: i64,
    pub stopped: Option<String>,
    pub stuck: Vec<JobProblem>,
    /// "12 invalid: email (not an e-mail address)", most frequent first.
    pub reasons: Vec<String>,
}

/// One failed call.
pub struct CallLine {
    pub at: String,
    pub call: String,
    pub status: String,
    pub message: String,
}

impl From<&CallRow> for CallLine {
    fn from(c: &CallRow) -> Self {
        CallLine {
            at: rfc3339(c.at_ms),
            call: format!("{} {} ({})", c.method, c.endpoint, c.operation),
            status: c
                .status
                .map_or_else(|| "no answer".to_string(), |s| s.to_string()),
            message: c.error.clone().unwrap_or_default(),
        }
    }
}

/// The held deletions of one sync.
pub struct HeldRow {
    pub sync: String,
    pub count: usize,
    pub examples: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
pub struct Page {
    pub crm: String,
    pub environment: String,
    pub workers: String,
    pub done: Option<String>,
    pub can_act: bool,
    pub act_hint: String,
    pub paused: bool,
    pub syncs: Vec<SyncRow>,
    pub daily_budget: i64,
    pub daily_used: i64,
    pub daily_remaining: i64,
    pub resets_at: String,
    pub interval: String,
    pub calls_today: i64,
    pub retries_today: i64,
    pub rate_limited_today: i64,
    pub error_rate: String,
    pub eta: Option<String>,
    pub errors: Vec<CallLine>,
    pub conflicts: Vec<ConflictView>,
    pub held: Vec<HeldRow>,
}

#[derive(Template)]
#[template(path = "record.html")]
pub struct RecordPage {
    pub sync: String,
    pub key: String,
    pub error: Option<String>,
    pub has_row: bool,
    pub crm_id: String,
    pub in_sync: String,
    pub quarantine: String,
    pub row: Vec<(String, String)>,
    /// (direction, state, attempts, last error).
    pub jobs: Vec<(String, String, i64, String)>,
    pub calls: Vec<CallLine>,
    pub api: String,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub error: Option<String>,
}

/// A page, or a 500 naming what failed.
fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the page could not be rendered: {e}"),
        )
            .into_response(),
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Html(format!(
            "<!doctype html><title>crmsync</title><p>{what}: {}</p>",
            escape(&e.to_string())
        )),
    )
        .into_response()
}

/// HTML-escapes text outside a template.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `?done=...`: the message an action left.
#[derive(Debug, Deserialize)]
pub struct Done {
    pub done: Option<String>,
}

/// "12 invalid, email on email: not an e-mail address (record 7)": the records of one sync
/// grouped by kind, rule and field, most frequent first, with one record's message.
fn reasons(entries: &[crmsync_store::QuarantineEntry]) -> Vec<String> {
    let mut by: BTreeMap<(&str, &str, &str), (usize, String)> = BTreeMap::new();
    for q in entries {
        let kind = match q.kind {
            QuarantineKind::Invalid => "invalid",
            QuarantineKind::Rejected => "rejected",
            QuarantineKind::Held => "held",
        };
        let field = q.field.as_deref().unwrap_or("");
        let group = by
            .entry((kind, q.rule.as_str(), field))
            .or_insert_with(|| (0, format!("{} (record {})", q.message, q.local_id)));
        group.0 += 1;
    }
    let mut list: Vec<_> = by.into_iter().collect();
    list.sort_by_key(|entry| std::cmp::Reverse(entry.1.0));
    list.into_iter()
        .take(REASONS_PER_SYNC)
        .map(|((kind, rule, field), (n, example))| {
            let on = if field.is_empty() {
                String::new()
            } else {
                format!(" on {field}")
            };
            let e_g = if n > 1 { "e.g. " } else { "" };
            format!("{n} {kind}, {rule}{on}: {e_g}{example}")
        })
        .collect()
}

pub async fn page(
    State(ops): State<Arc<Ops>>,
    headers: HeaderMap,
    Query(q): Query<Done>,
) -> Response {
    let e = &ops.engine;
    let st = match crmsync_engine::status::status(&e.config, &e.state, &e.app).await {
        Ok(st) => st,
        Err(err) => return failed("the status could not be read", err),
    };
    let mut syncs = Vec::new();
    for s in st.syncs {
        let entries = e.state.quarantined(&s.sync).await.unwrap_or_default();
        syncs.push(SyncRow {
            reasons: reasons(&entries),
            sync: s.sync,
            object: s.object,
            total: s.total,
            synced: s.synced,
            pending: s.pending,
            failed: s.failed,
            quarantined: s.quarantined,
            held: s.held,
            stopped: s.stopped,
            stuck: s.stuck,
        });
    }
    let errors = e
        .state
        .recent_call_errors(RECENT_ERRORS)
        .await
        .unwrap_or_default();
    let conflicts = e.state.open_conflicts(None).await.unwrap_or_default();
    let deletions = e.state.deletions(None, None).await.unwrap_or_default();
    let mut held: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in deletions.iter().filter(|d| d.state == DeletionState::Held) {
        held.entry(d.sync.clone())
            .or_default()
            .push(format!("{} ({})", d.local_id, d.crm_id));
    }
    let can_act = ops.token.is_some() && authorized(&ops, &headers);
    let act_hint = if ops.token.is_none() {
        "Read-only: resolving conflicts, settling deletions and pausing need an operator token. Export CRMSYNC_SERVER_TOKEN (or set [server] token_env) before `crmsync run`.".to_string()
    } else {
        "Log in at /login with the operator token to resolve conflicts, settle deletions or pause."
            .to_string()
    };
    let crm = &e.config.raw.crm;
    let page = Page {
        crm: st.crm.kind.clone(),
        environment: st.crm.environment.clone(),
        workers: match st.leaders.len() {
            0 => "no task leader yet".to_string(),
            n => format!(
                "{n} task{} led by {} worker{}",
                if n == 1 { "" } else { "s" },
                {
                    let mut w: Vec<&str> = st.leaders.iter().map(|l| l.worker.as_str()).collect();
                    w.sort_unstable();
                    w.dedup();
                    w.len()
                },
                if st
                    .leaders
                    .iter()
                    .map(|l| &l.worker)
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
                    == 1
                {
                    ""
                } else {
                    "s"
                }
            ),
        },
        done: q.done,
        can_act,
        act_hint,
        paused: st.two_way.paused,
        syncs,
        daily_budget: st.crm.daily_budget,
        daily_used: (st.crm.daily_budget - st.crm.daily_budget_remaining).max(0),
        daily_remaining: st.crm.daily_budget_remaining,
        resets_at: st.crm.budget_resets_at.clone(),
        interval: {
            let used = super::api::interval_use(e, crmsync_store::now_ms())
                .await
                .map(|i| i.used)
                .unwrap_or(0);
            format!(
                "{used} calls in the last {} s, of at most {} (paced by crmsync)",
                crm.interval_ms() as f64 / 1000.0,
                crm.requests_per_interval()
            )
        },
        calls_today: st.crm.calls_today,
        retries_today: st.crm.retries_today,
        rate_limited_today: st.crm.rate_limited_today,
        error_rate: format!("{:.1} %", st.crm.error_rate_today * 100.0),
        eta: st.crm.queued_eta.as_ref().map(|q| {
            format!(
                "{} calls queued; done by {} ({} day{})",
                q.calls,
                q.finishes_at,
                q.days,
                if q.days == 1 { "" } else { "s" }
            )
        }),
        errors: errors.iter().map(CallLine::from).collect(),
        conflicts: conflicts.iter().map(ConflictView::from).collect(),
        held: held
            .into_iter()
            .map(|(sync, records)| HeldRow {
                count: records.len(),
                examples: {
                    let mut shown: Vec<String> = records.iter().take(10).cloned().collect();
                    if records.len() > 10 {
                        shown.push(format!("and {} more", records.len() - 10));
                    }
                    shown.join(", ")
                },
                sync,
            })
            .collect(),
    };
    render(&page)
}

/// `/records?sync=&key=`.
#[derive(Debug, Deserialize)]
pub struct RecordQuery {
    pub sync: String,
    pub key: String,
}

pub async fn record(State(ops): State<Arc<Ops>>, Query(q): Query<RecordQuery>) -> Response {
    let e = &ops.engine;
    let api = format!(
        "/api/records/{}/{}",
        percent_encoding::utf8_percent_encode(&q.sync, percent_encoding::NON_ALPHANUMERIC),
        percent_encoding::utf8_percent_encode(&q.key, percent_encoding::NON_ALPHANUMERIC)
    );
    let mut page = RecordPage {
        sync: q.sync.clone(),
        key: q.key.clone(),
        error: None,
        has_row: false,
        crm_id: "not linked".into(),
        in_sync: "—".into(),
        quarantine: "none".into(),
        row: Vec::new(),
        jobs: Vec::new(),
        calls: Vec::new(),
        api,
    };
    match crmsync_engine::explain::explain(&e.config, &e.state, &e.app, &q.sync, &q.key).await {
        Err(err) => page.error = Some(err.to_string()),
        Ok(x) => {
            page.has_row = x.source.is_some();
            page.row = x
                .source
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.unwrap_or_else(|| "NULL".into())))
                .collect();
            if let Some(crm_id) = x.link.and_then(|l| l.crm_id) {
                page.crm_id = crm_id;
            }
            page.in_sync = match x.in_sync {
                Some(true) => "yes: the CRM holds what the app has".into(),
                Some(false) => "no: a change is on its way".into(),
                None => "—".into(),
            };
            if let Some(qv) = x.quarantine {
                page.quarantine = format!(
                    "{}: {}{} (rule {}, {} attempts)",
                    qv.kind,
                    qv.field.map(|f| format!("{f}: ")).unwrap_or_default(),
                    qv.message,
                    qv.rule,
                    qv.attempts
                );
            }
            page.jobs = x
                .jobs
                .into_iter()
                .map(|j| {
                    (
                        j.direction,
                        j.state,
                        j.attempts,
                        j.last_error.unwrap_or_default(),
                    )
                })
                .collect();
            page.calls = x
                .calls
                .into_iter()
                .map(|c| CallLine {
                    at: rfc3339(c.at_ms),
                    call: format!("{} {}", c.method, c.endpoint),
                    status: c
                        .status
                        .map_or_else(|| "no answer".to_string(), |s| s.to_string()),
                    message: c.error.unwrap_or_default(),
                })
                .collect();
        }
    }
    render(&page)
}

/// Back to the dashboard with a message.
fn back(message: &str) -> Response {
    let encoded =
        percent_encoding::utf8_percent_encode(message, percent_encoding::NON_ALPHANUMERIC);
    Redirect::to(&format!("/?done={encoded}")).into_response()
}

#[derive(Debug, Deserialize)]
pub struct ResolveForm {
    pub id: i64,
    pub take: String,
}

pub async fn resolve(State(ops): State<Arc<Ops>>, Form(f): Form<ResolveForm>) -> Response {
    let take = match parse_take(&f.take) {
        Ok(t) => t,
        Err(e) => return back(&e.1),
    };
    let e = &ops.engine;
    match resolve_conflict(&e.config, &e.state, &e.app, f.id, take).await {
        Ok(c) => {
            e.wakes.wake_sync(&c.sync);
            back(&format!(
                "Conflict {} settled with the {} value ({} record {}).",
                c.id,
                if take.as_str() == "app" {
                    "app's"
                } else {
                    "CRM's"
                },
                c.sync,
                c.local_id
            ))
        }
        Err(err) => back(&format!("Conflict {} was not settled: {err}", f.id)),
    }
}

#[derive(Debug, Deserialize)]
pub struct DeletionsForm {
    pub sync: Option<String>,
    pub decision: String,
}

pub async fn deletions(State(ops): State<Arc<Ops>>, Form(f): Form<DeletionsForm>) -> Response {
    let decision = match parse_decision(&f.decision) {
        Ok(d) => d,
        Err(e) => return back(&e.1),
    };
    let sync = f.sync.filter(|s| !s.is_empty());
    match ops.engine.decide_deletions(sync.as_deref(), decision).await {
        Ok(n) => back(&match f.decision.as_str() {
            "apply" => format!("{n} held deletions applied."),
            _ => format!("{n} held deletions rejected; the records are pushed again."),
        }),
        Err(err) => back(&format!("The held deletions were not settled: {err}")),
    }
}

#[derive(Debug, Deserialize)]
pub struct PauseForm {
    pub paused: bool,
}

pub async fn pause(State(ops): State<Arc<Ops>>, Form(f): Form<PauseForm>) -> Response {
    match ops.engine.state.set_paused(f.paused).await {
        Ok(()) => {
            ops.engine.wakes.wake_all();
            back(if f.paused {
                "Paused: no batch starts until you resume."
            } else {
                "Resumed."
            })
        }
        Err(err) => back(&format!("The kill switch could not be set: {err}")),
    }
}

pub async fn login_form() -> Response {
    render(&LoginPage { error: None })
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    pub token: String,
}

pub async fn login(State(ops): State<Arc<Ops>>, Form(f): Form<LoginForm>) -> Response {
    let token = f.token.trim();
    if ops.token.is_none() || !is_token(&ops, token) {
        let page = LoginPage {
            error: Some(if ops.token.is_none() {
                "No operator token is configured, so there is nothing to log in with.".into()
            } else {
                "That is not the operator token.".into()
            }),
        };
        let mut resp = render(&page);
        *resp.status_mut() = StatusCode::UNAUTHORIZED;
        return resp;
    }
    if !token
        .chars()
        .all(|c| c.is_ascii_graphic() && c != ';' && c != ',' && c != '"' && c != '\\')
    {
        return back(
            "The token holds characters a cookie cannot carry; use a hex or base64url token (e.g. `openssl rand -hex 32`) or send it as a bearer header.",
        );
    }
    // HttpOnly: no script reads it; SameSite=Strict: no other site's form can act with it.
    let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, "/?done=Logged%20in.".to_string()),
        ],
    )
        .into_response()
}
