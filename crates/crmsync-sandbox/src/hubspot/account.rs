//! `GET /account-info/v3/details`: who the token belongs to. Integrations call it as a cheap
//! healthcheck and (crmsync) to tell a test portal from a production one; the sandbox reports
//! its configured portal id and account type and a UTC time zone (the zone its daily limit
//! resets in). `GET /account-info/v3/api-usage/daily/private-apps`: the day's calls against
//! the daily limit.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};

use super::state::AppState;

async fn details(State(state): State<AppState>) -> axum::Json<Value> {
    axum::Json(json!({
        "portalId": state.portal_id(),
        "accountType": state.account_type(),
        "timeZone": "UTC",
        "companyCurrency": "USD",
        "additionalCurrencies": [],
        "utcOffset": "+00:00",
        "utcOffsetMilliseconds": 0,
        "uiDomain": "app.hubspot.com",
        "dataHostingLocation": "na1",
    }))
}

/// The day's usage as HubSpot reports it for private apps: one `api-calls-daily` entry.
async fn daily_usage(State(state): State<AppState>) -> axum::Json<Value> {
    let (used, limit) = state.daily_usage();
    let now = chrono::Utc::now();
    let resets = (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .map(|t| {
            t.and_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        });
    axum::Json(json!({
        "results": [{
            "name": "api-calls-daily",
            "usageLimit": limit,
            "currentUsage": used,
            "collectedAt": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "fetchStatus": "SUCCESS",
            "resetsAt": resets,
        }]
    }))
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/account-info/v3/details", get(details))
        .route(
            "/account-info/v3/api-usage/daily/private-apps",
            get(daily_usage),
        )
}
