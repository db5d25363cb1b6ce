//! [`SalesforceDialect`]: how the shared transport reads Salesforce's answers: error arrays,
//! `Sforce-Limit-Info`, the rolling 24 h limit that no in-call retry outlasts, and the expired
//! session that a renewed token fixes (FACTS 3.1, 3.9, 3.10).

use reqwest::header::HeaderMap;

use super::error as sf_error;
use crate::CrmError;
use crate::http::Dialect;

pub(crate) struct SalesforceDialect;

impl Dialect for SalesforceDialect {
    fn crm(&self) -> &'static str {
        "salesforce"
    }

    fn classify(&self, what: &str, status: u16, _headers: &HeaderMap, body: &str) -> CrmError {
        sf_error::from_response(what, status, body)
    }

    fn rate_headers(&self, headers: &HeaderMap) -> Vec<(String, String)> {
        headers
            .get("sforce-limit-info")
            .and_then(|v| v.to_str().ok())
            .map(|v| vec![("sforce-limit-info".to_string(), v.to_string())])
            .unwrap_or_default()
    }

    fn outlasts_retries(&self, err: &CrmError) -> bool {
        sf_error::is_daily_limit(err)
    }

    fn session_expired(&self, err: &CrmError) -> bool {
        sf_error::is_expired_session(err)
    }
}
