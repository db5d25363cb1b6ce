//! [`SalesforceConfig`]: how the emulated org behaves. `Default` is a production-like org with
//! a 100,000-request rolling 24 h allocation, no faults and no persistence; every credential
//! has a documented default so clients and the conformance harness work out of the box.

use std::path::PathBuf;

use crate::hubspot::FaultConfig;

/// Configuration of the Salesforce flavour of the sandbox.
#[derive(Clone, Debug)]
pub struct SalesforceConfig {
    /// OAuth connected-app consumer key accepted by the token endpoint.
    pub client_id: String,
    /// OAuth consumer secret.
    pub client_secret: String,
    /// The integration user's username (password grant, JWT `sub`).
    pub username: String,
    /// The integration user's password (password grant).
    pub password: String,
    /// A refresh token that is always accepted (besides the ones the sandbox issues).
    pub refresh_token: String,
    /// API requests allowed per rolling 24 hours; `None` = unlimited.
    pub daily_limit: Option<u32>,
    /// Injected failure modes (the HubSpot flavour's knobs; storms answer 403
    /// `REQUEST_LIMIT_EXCEEDED`, token expiry 401 `INVALID_SESSION_ID`).
    pub faults: FaultConfig,
    /// Load the org from this JSON file at start (if it exists) and save it after changes.
    pub state_file: Option<PathBuf>,
    /// The org id (`00D…`, 15 or 18 characters).
    pub org_id: String,
    /// What `SELECT IsSandbox FROM Organization` answers: a sandbox org by default, `false`
    /// poses as a production org (for testing the environment guard).
    pub is_sandbox: bool,
}

impl Default for SalesforceConfig {
    fn default() -> Self {
        Self {
            client_id: "crmsync-sandbox".to_owned(),
            client_secret: "sandbox-secret".to_owned(),
            username: "sandbox@crmsync.local".to_owned(),
            password: "sandbox".to_owned(),
            refresh_token: "sandbox-refresh-token".to_owned(),
            daily_limit: Some(100_000),
            faults: FaultConfig::default(),
            state_file: None,
            org_id: "00D000000000001".to_owned(),
            is_sandbox: true,
        }
    }
}

impl SalesforceConfig {
    /// A configuration without the daily request limit.
    pub fn unlimited() -> Self {
        Self {
            daily_limit: None,
            ..Self::default()
        }
    }
}
