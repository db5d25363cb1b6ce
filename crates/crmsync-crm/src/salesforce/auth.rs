//! [`OAuthSession`]: Salesforce access tokens for the shared transport (FACTS 3.1).
//!
//! Invariants: a token is obtained on first use and renewed only when an answer said the
//! session of *that* token expired (several requests failing together renew once); the API
//! host is the `instance_url` of the token answer, never configured; tokens, secrets and the
//! signed assertion never reach a log or an error message (the OAuth error is quoted by its
//! `error` and `error_description` only).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderValue;
use secrecy::ExposeSecret;
use tokio::sync::Mutex;

use super::config::{OAuthFlow, SalesforceConfig};
use super::error as sf_error;
use super::wire;
use crate::http::{BoxFuture, Credentials, Session, http_client, transport_error};
use crate::{CallObserver, CallRecord, CrmError, ErrorKind, Operation};

/// How long a JWT assertion is valid: Salesforce accepts at most 3 minutes.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(170);

/// The OAuth credentials of one Salesforce connection.
pub(crate) struct OAuthSession {
    http: reqwest::Client,
    token_url: String,
    login_url: String,
    client_id: String,
    flow: OAuthFlow,
    connection: String,
    observer: Option<CallObserver>,
    current: Mutex<Option<Credentials>>,
}

impl OAuthSession {
    pub(crate) fn new(
        config: &SalesforceConfig,
        observer: Option<CallObserver>,
    ) -> Result<Self, CrmError> {
        let login_url = config.login_url.trim().trim_end_matches('/').to_string();
        if !(login_url.starts_with("http://") || login_url.starts_with("https://")) {
            return Err(CrmError::new(
                ErrorKind::Config,
                format!(
                    "salesforce login_url {login_url:?} is not an http(s) url, e.g. https://login.salesforce.com"
                ),
            ));
        }
        Ok(OAuthSession {
            http: http_client(config.timeout, "salesforce")?,
            token_url: format!("{login_url}/services/oauth2/token"),
            login_url,
            client_id: config.client_id.clone(),
            flow: config.flow.clone(),
            connection: config.connection.clone(),
            observer,
            current: Mutex::new(None),
        })
    }

    /// The form of this flow's token request.
    fn form(&self) -> Result<Vec<(&'static str, String)>, CrmError> {
        let mut form = vec![("client_id", self.client_id.clone())];
        match &self.flow {
            OAuthFlow::RefreshToken {
                client_secret,
                refresh_token,
            } => {
                form.push(("grant_type", "refresh_token".into()));
                form.push(("refresh_token", refresh_token.expose_secret().to_string()));
                if let Some(secret) = client_secret {
                    form.push(("client_secret", secret.expose_secret().to_string()));
                }
            }
            OAuthFlow::ClientCredentials { client_secret } => {
                form.push(("grant_type", "client_credentials".into()));
                form.push(("client_secret", client_secret.expose_secret().to_string()));
            }
            OAuthFlow::JwtBearer {
                username,
                private_key_pem,
            } => {
                form.push((
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
                ));
                form.push(("assertion", self.assertion(username, private_key_pem)?));
            }
        }
        Ok(form)
    }

    /// The RS256-signed JWT of the bearer flow: issued by the connected app for `username`,
    /// for the login host.
    fn assertion(
        &self,
        username: &str,
        private_key_pem: &secrecy::SecretString,
    ) -> Result<String, CrmError> {
        #[derive(serde::Serialize)]
        struct Claims<'a> {
            iss: &'a str,
            sub: &'a str,
            aud: &'a str,
            exp: u64,
        }
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d + ASSERTION_LIFETIME)
            .unwrap_or(ASSERTION_LIFETIME)
            .as_secs();
        let key =
            jsonwebtoken::EncodingKey::from_rsa_pem(private_key_pem.expose_secret().as_bytes())
                .map_err(|e| {
                    CrmError::new(
                        ErrorKind::Config,
                        format!("the salesforce private key is not an RSA key in PEM form: {e}"),
                    )
                })?;
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &Claims {
                iss: &self.client_id,
                sub: username,
                aud: &self.login_url,
                exp,
            },
            &key,
        )
        .map_err(|e| {
            CrmError::new(
                ErrorKind::Config,
                format!("cannot sign the salesforce JWT assertion: {e}"),
            )
        })
    }

    /// Asks the token endpoint for a new access token.
    async fn obtain(&self, generation: u64) -> Result<Credentials, CrmError> {
        let what = "token request";
        let form = self.form()?;
        let started_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let started = tokio::time::Instant::now();
        let result = self.http.post(&self.token_url).form(&form).send().await;
        let (status, answer) = match result {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.text().await {
                    Ok(body) => (Some(status), Ok((status, body))),
                    Err(e) => (Some(status), Err(transport_error("salesforce", what, &e))),
                }
            }
            Err(e) => (None, Err(transport_error("salesforce", what, &e))),
        };
        let outcome = match answer {
            Ok((status, body)) if (200..300).contains(&status) => {
                serde_json::from_str::<wire::TokenAnswer>(&body)
                    .map_err(|e| sf_error::protocol(what, e))
                    .and_then(|t| credentials(t, generation))
            }
            Ok((status, body)) => Err(sf_error::from_response(what, status, &body)),
            Err(e) => Err(e),
        };
        if let Some(observer) = &self.observer {
            observer(CallRecord {
                started_at_ms,
                connection: self.connection.clone(),
                operation: Operation::Auth.as_str(),
                method: "POST".into(),
                endpoint: "/services/oauth2/token".into(),
                status,
                attempt: 1,
                latency: started.elapsed(),
                records: 0,
                rate_limited: false,
                rate_limit_headers: Vec::new(),
                error: outcome.as_ref().err().map(|e| e.message.clone()),
            });
        }
        outcome
    }
}

/// Credentials from a token answer: the API host is its `instance_url`.
fn credentials(answer: wire::TokenAnswer, generation: u64) -> Result<Credentials, CrmError> {
    let base_url = answer.instance_url.trim().trim_end_matches('/').to_string();
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        return Err(sf_error::protocol(
            "token request",
            format!("instance_url {base_url:?} is not an http(s) url"),
        ));
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {}", answer.access_token.trim()))
        .map_err(|_| {
            sf_error::protocol("token request", "the access token cannot go in a header")
        })?;
    value.set_sensitive(true);
    Ok(Credentials {
        base_url,
        authorization: Some(value),
        generation,
    })
}

impl Session for OAuthSession {
    fn current(&self) -> BoxFuture<'_, Result<Credentials, CrmError>> {
        Box::pin(async move {
            // Held across the request: concurrent first calls wait for one token.
            let mut guard = self.current.lock().await;
            if let Some(c) = guard.as_ref() {
                return Ok(c.clone());
            }
            let fresh = self.obtain(1).await?;
            *guard = Some(fresh.clone());
            Ok(fresh)
        })
    }

    fn renew(&self, stale_generation: u64) -> BoxFuture<'_, Result<(), CrmError>> {
        Box::pin(async move {
            let mut guard = self.current.lock().await;
            let next = match guard.as_ref() {
                // Someone renewed it already.
                Some(c) if c.generation != stale_generation => return Ok(()),
                Some(c) => c.generation + 1,
                None => 1,
            };
            let fresh = self.obtain(next).await?;
            *guard = Some(fresh);
            Ok(())
        })
    }
}
