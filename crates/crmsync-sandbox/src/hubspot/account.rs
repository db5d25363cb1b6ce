//! `GET /account-info/v3/details`: who the token belongs to. Integrations call it as a cheap
//! healthcheck; the sandbox reports its configured portal id and a UTC time zone (the zone
//! its daily limit resets in).

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};

use super::state::AppState;

async fn details(State(state): State<AppState>) -> axum::Json<Value> {
    axum::Json(json!({
        "portalId": state.portal_id(),
        "accountType": "SANDBOX",
        "timeZone": "UTC",
        "companyCurrency": "USD",
        "additionalCurrencies": [],
        "utcOffset": "+00:00",
        "utcOffsetMilliseconds": 0,
        "uiDomain": "app.hubspot.com",
        "dataHostingLocation": "na1",
    }))
}

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/account-info/v3/details", get(details))
}
