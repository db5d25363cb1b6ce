//! [`SalesforceConfig`]: where the org's OAuth endpoint is, which flow obtains tokens, and the
//! pace the client keeps. Secrets are [`SecretString`]s: `Debug` prints them redacted and they
//! only leave the process in the token request's form body.

use std::time::Duration;

use secrecy::SecretString;

use crate::RetryPolicy;

/// How access tokens are obtained (FACTS 3.1). Each variant holds what its grant sends.
#[derive(Debug, Clone)]
pub enum OAuthFlow {
    /// `grant_type=refresh_token`: a refresh token a person issued to the connected app once.
    RefreshToken {
        client_secret: Option<SecretString>,
        refresh_token: SecretString,
    },
    /// `grant_type=client_credentials`: the connected app's run-as user.
    ClientCredentials { client_secret: SecretString },
    /// `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`: an RS256 JWT for `username`
    /// signed with the key of the connected app's certificate (PEM).
    JwtBearer {
        username: String,
        private_key_pem: SecretString,
    },
}

/// How to reach one Salesforce org.
#[derive(Debug, Clone)]
pub struct SalesforceConfig {
    /// The OAuth host: `https://login.salesforce.com`, `https://test.salesforce.com`, a My
    /// Domain URL, or the sandbox emulator. The API host comes from the token answer.
    pub login_url: String,
    /// The connected app's consumer key.
    pub client_id: String,
    pub flow: OAuthFlow,
    /// REST API version, e.g. `59.0` (collection upsert needs at least 46.0).
    pub api_version: String,
    /// Timeout of one HTTP attempt.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Requests started per second at most: Salesforce has no short-term rate limit, only the
    /// rolling 24 h one (counted by the engine's budget) and 25 concurrent long requests.
    pub requests_per_second: u32,
    /// Names this connection in the call log and the shared budget.
    pub connection: String,
}

impl SalesforceConfig {
    /// A config with every optional field at its default.
    pub fn new(
        login_url: impl Into<String>,
        client_id: impl Into<String>,
        flow: OAuthFlow,
    ) -> Self {
        SalesforceConfig {
            login_url: login_url.into(),
            client_id: client_id.into(),
            flow,
            api_version: "59.0".to_string(),
            timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            requests_per_second: 20,
            connection: "salesforce".to_string(),
        }
    }
}
