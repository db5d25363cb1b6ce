//! [`HubspotOAuth`] and its session: access tokens of a HubSpot public app, obtained with the
//! app's refresh token (`POST /oauth/v1/token`, `grant_type=refresh_token`; BRIDGES 4.1) and
//! shared by every worker of the connection through a [`TokenStore`].
//!
//! Invariants:
//! - a token is refreshed **ahead of its expiry** (when less than 5 minutes or a sixth of its
//!   lifetime remain) and when an answer said it no longer works (the transport's one renewal
//!   per call on a 401), never more often: tasks of one process wait for one refresh, and
//!   workers of one connection take the lease `oauth-refresh:<connection>` so that one of them
//!   refreshes while the others use the token it stored;
//! - while a refresh is due but the current token still works, callers keep using it and never
//!   wait for the refresh (nor fail because a refresh failed transiently);
//! - the refresh token rotates only when HubSpot returns a new one: the old one is kept
//!   otherwise, and a rotated one is shared (sealed) with the access token;
//! - tokens and secrets are [`SecretString`]s, exposed only to build the form body, the
//!   `Authorization` header (marked sensitive) and the sealed text; they never reach a log, a
//!   call record or an error message (HubSpot's refusal is quoted by its `status` and
//!   `message`, with any secret in it masked);
//! - what the store holds is sealed with AES-256-GCM under a key derived from the client
//!   secret and the connection name, and bound to its expiry: a copy of the state database
//!   yields no usable token, and a sealed token cannot be moved to another connection or
//!   given a later expiry.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::http::{BoxFuture, Credentials, Session, http_client, transport_error};
use crate::tokens::{SharedToken, TokenStore, refresh_task};
use crate::{CallObserver, CallRecord, CrmError, ErrorKind, Operation, RetryPolicy};

/// HubSpot's v1 token endpoint, below the API root. HubSpot retires it on 16 Feb 2027; its
/// successor is date-versioned (`/oauth/2026-03/token`), hence [`HubspotOAuth::token_path`].
pub const DEFAULT_TOKEN_PATH: &str = "/oauth/v1/token";

/// The lifetime assumed when a token answer gives none: HubSpot's documented 30 minutes.
const DEFAULT_LIFETIME_S: u64 = 1800;

/// The most a refresh is done ahead of expiry (and a sixth of the lifetime at most).
const REFRESH_AHEAD: Duration = Duration::from_secs(300);

/// The most a token is taken out of use before its expiry (and a tenth of the lifetime at most),
/// so a request sent with it does not arrive after it expired.
const EXPIRY_GRACE: Duration = Duration::from_secs(30);

/// How often a worker waiting for another's refresh looks into the store.
const WAIT_POLL: Duration = Duration::from_millis(100);

/// How much of a non-JSON refusal is quoted.
const RAW_QUOTE: usize = 200;

/// A HubSpot public app's credentials: the access tokens are obtained from these.
#[derive(Clone)]
pub struct HubspotOAuth {
    /// The app's client id (not a secret).
    pub client_id: String,
    pub client_secret: SecretString,
    /// The refresh token the app's installation in the account issued.
    pub refresh_token: SecretString,
    /// The token endpoint below the API root (default [`DEFAULT_TOKEN_PATH`]).
    pub token_path: String,
    /// Where the workers of the connection share the token; `None`: this client alone.
    pub store: Option<Arc<dyn TokenStore>>,
}

impl HubspotOAuth {
    /// Credentials on the default token path, shared with no other worker.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: SecretString,
        refresh_token: SecretString,
    ) -> Self {
        HubspotOAuth {
            client_id: client_id.into(),
            client_secret,
            refresh_token,
            token_path: DEFAULT_TOKEN_PATH.to_string(),
            store: None,
        }
    }
}

impl fmt::Debug for HubspotOAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubspotOAuth")
            .field("client_id", &self.client_id)
            .field("token_path", &self.token_path)
            .field("shared", &self.store.is_some())
            .finish_non_exhaustive()
    }
}

/// What [`OAuthSession::new`] needs beyond the credentials.
pub(crate) struct SessionSettings<'a> {
    pub base_url: &'a str,
    pub connection: &'a str,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub observer: Option<CallObserver>,
}

/// The token in use, with what decides when it is renewed.
#[derive(Clone)]
struct Held {
    credentials: Credentials,
    obtained_at_ms: i64,
    expires_at_ms: i64,
    /// Its sealed text as the store holds it; `None` when it is not the stored one.
    sealed: Option<String>,
}

impl Held {
    fn generation(&self) -> u64 {
        self.credentials.generation
    }
}

/// A stored token, opened.
struct Opened {
    shared: SharedToken,
    access: SecretString,
    /// The rotated refresh token stored with it, when it descends from our configured one.
    rotated: Option<SecretString>,
}

/// When a token of this lifetime is due for refresh.
fn refresh_due(obtained_at_ms: i64, expires_at_ms: i64) -> i64 {
    let lifetime = (expires_at_ms - obtained_at_ms).max(0);
    expires_at_ms - (lifetime / 6).min(millis(REFRESH_AHEAD))
}

/// Whether a token of this lifetime may still be sent at `now`.
fn usable(obtained_at_ms: i64, expires_at_ms: i64, now: i64) -> bool {
    let lifetime = (expires_at_ms - obtained_at_ms).max(0);
    now < expires_at_ms - (lifetime / 10).min(millis(EXPIRY_GRACE))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The OAuth credentials of one HubSpot connection.
pub(crate) struct OAuthSession {
    http: reqwest::Client,
    base_url: String,
    token_url: String,
    token_path: String,
    client_id: String,
    client_secret: SecretString,
    configured_refresh: SecretString,
    /// Names the configured refresh token inside sealed tokens, so that a rotated one stored
    /// under an older configuration is not used after the operator configured a new one.
    origin: String,
    connection: String,
    retry: RetryPolicy,
    observer: Option<CallObserver>,
    store: Option<Arc<dyn TokenStore>>,
    seal_key: RandomizedNonceKey,
    /// The lease owner of this client: its own, so resigning gives up nothing else.
    owner: String,
    task: String,
    lease: Duration,
    held: Mutex<Option<Held>>,
    /// The newest refresh token when HubSpot rotated it.
    rotated: Mutex<Option<SecretString>>,
    generation: AtomicU64,
    /// One refresh at a time in this process.
    refreshing: tokio::sync::Mutex<()>,
}

/// A poisoned lock only means a panic elsewhere; the value (an `Option`) is always whole.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl OAuthSession {
    pub(crate) fn new(
        oauth: &HubspotOAuth,
        settings: SessionSettings<'_>,
    ) -> Result<Self, CrmError> {
        let path = oauth.token_path.trim();
        if !path.starts_with('/') {
            return Err(CrmError::new(
                ErrorKind::Config,
                format!(
                    "the hubspot token_path {path:?} must be a path below base_url, e.g. {DEFAULT_TOKEN_PATH}"
                ),
            ));
        }
        if oauth.client_id.trim().is_empty() {
            return Err(CrmError::new(
                ErrorKind::Config,
                "the hubspot oauth client_id is empty",
            ));
        }
        let seal_key = sealing_key(oauth.client_secret.expose_secret(), settings.connection)?;
        let base_url = settings.base_url.trim_end_matches('/').to_string();
        Ok(OAuthSession {
            http: http_client(settings.timeout, "hubspot")?,
            token_url: format!("{base_url}{path}"),
            base_url,
            token_path: path.to_string(),
            client_id: oauth.client_id.trim().to_string(),
            client_secret: oauth.client_secret.clone(),
            configured_refresh: oauth.refresh_token.clone(),
            origin: origin_of(oauth.refresh_token.expose_secret()),
            connection: settings.connection.to_string(),
            retry: settings.retry,
            observer: settings.observer,
            store: oauth.store.clone(),
            seal_key,
            owner: format!("oauth-{:016x}", rand::random::<u64>()),
            task: refresh_task(settings.connection),
            // Long enough for one token request with its timeout; a lease that runs out
            // mid-request only lets a second worker refresh too, which HubSpot allows.
            lease: settings.timeout + Duration::from_secs(5),
            held: Mutex::new(None),
            rotated: Mutex::new(None),
            generation: AtomicU64::new(0),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    fn snapshot(&self) -> Option<Held> {
        lock(&self.held).clone()
    }

    /// Makes `access` the token in use under a new generation.
    fn adopt(
        &self,
        access: &SecretString,
        obtained_at_ms: i64,
        expires_at_ms: i64,
        sealed: Option<String>,
    ) -> Result<Credentials, CrmError> {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", access.expose_secret().trim()))
            .map_err(|_| protocol("the access token of the answer cannot be sent in a header"))?;
        value.set_sensitive(true);
        let credentials = Credentials {
            base_url: self.base_url.clone(),
            authorization: Some(value),
            generation: self.generation.fetch_add(1, Ordering::Relaxed) + 1,
        };
        *lock(&self.held) = Some(Held {
            credentials: credentials.clone(),
            obtained_at_ms,
            expires_at_ms,
            sealed,
        });
        Ok(credentials)
    }

    /// Adopts a stored token (and the rotated refresh token stored with it).
    fn adopt_stored(&self, opened: &Opened) -> Result<Credentials, CrmError> {
        if let Some(rotated) = &opened.rotated {
            *lock(&self.rotated) = Some(rotated.clone());
        }
        tracing::debug!(
            connection = %self.connection,
            "using the hubspot access token another worker stored"
        );
        self.adopt(
            &opened.access,
            opened.shared.obtained_at_ms,
            opened.shared.expires_at_ms,
            Some(opened.shared.sealed.clone()),
        )
    }

    /// The token the store holds, opened; `None` when there is none, it cannot be opened (a
    /// changed client secret) or the store failed (then this worker goes on alone).
    async fn load_shared(&self) -> Option<Opened> {
        let store = self.store.as_ref()?;
        let shared = match store.load(&self.connection).await {
            Ok(shared) => shared?,
            Err(e) => {
                tracing::warn!(connection = %self.connection, error = %e, "cannot read the shared hubspot access token; refreshing without it");
                return None;
            }
        };
        let opened = self.open(&shared);
        if opened.is_none() {
            tracing::warn!(
                connection = %self.connection,
                "the stored hubspot access token cannot be opened with this client secret; obtaining a new one"
            );
        }
        opened
    }

    /// Takes the refresher's lease; without a store (or when it fails) this client leads.
    async fn lead(&self) -> bool {
        let Some(store) = &self.store else {
            return true;
        };
        match store.lead(&self.task, &self.owner, self.lease).await {
            Ok(led) => led,
            Err(e) => {
                tracing::warn!(connection = %self.connection, error = %e, "cannot take the hubspot token refresh lease; refreshing without it");
                true
            }
        }
    }

    async fn resign(&self) {
        if let Some(store) = &self.store
            && let Err(e) = store.resign(&self.owner).await
        {
            // The lease runs out on its own.
            tracing::debug!(connection = %self.connection, error = %e, "cannot give up the hubspot token refresh lease");
        }
    }

    /// Finds or obtains a token other than `refused`, under the process's refresh lock.
    async fn renew_locked(&self, refused: Option<&Held>) -> Result<Credentials, CrmError> {
        let refused_generation = refused.map(Held::generation);
        let refused_sealed = refused.and_then(|h| h.sealed.clone());
        let not_refused = |sealed: &str| refused_sealed.as_deref() != Some(sealed);
        // A leader that never stores (it died) gives up its lease after `lease`; past twice
        // that, this worker refreshes on its own rather than wait any longer.
        let give_up = tokio::time::Instant::now() + self.lease * 2;
        loop {
            let now = now_ms();
            // Another task of this process may have renewed while this one waited.
            if let Some(held) = self.snapshot()
                && Some(held.generation()) != refused_generation
                && now < refresh_due(held.obtained_at_ms, held.expires_at_ms)
            {
                return Ok(held.credentials);
            }
            let stored = self.load_shared().await;
            if let Some(s) = &stored
                && not_refused(&s.shared.sealed)
                && now < refresh_due(s.shared.obtained_at_ms, s.shared.expires_at_ms)
            {
                return self.adopt_stored(s);
            }
            let alone = tokio::time::Instant::now() >= give_up;
            if alone || self.lead().await {
                // Look once more: a leader may have stored and resigned between the look above
                // and taking the lease.
                let stored = if self.store.is_some() {
                    self.load_shared().await
                } else {
                    stored
                };
                if let Some(s) = &stored
                    && not_refused(&s.shared.sealed)
                    && now_ms() < refresh_due(s.shared.obtained_at_ms, s.shared.expires_at_ms)
                {
                    let adopted = self.adopt_stored(s);
                    self.resign().await;
                    return adopted;
                }
                let result = self
                    .refresh(stored.as_ref(), refused_sealed.as_deref())
                    .await;
                self.resign().await;
                return result;
            }
            // Another worker is refreshing: a token that still works is used meanwhile.
            if let Some(s) = &stored
                && not_refused(&s.shared.sealed)
                && usable(s.shared.obtained_at_ms, s.shared.expires_at_ms, now)
            {
                return self.adopt_stored(s);
            }
            if let Some(held) = self.snapshot()
                && Some(held.generation()) != refused_generation
                && usable(held.obtained_at_ms, held.expires_at_ms, now)
            {
                return Ok(held.credentials);
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }

    /// Obtains a new token from HubSpot and shares it, replacing `refused` in the store.
    async fn refresh(
        &self,
        stored: Option<&Opened>,
        refused: Option<&str>,
    ) -> Result<Credentials, CrmError> {
        // The newest lineage: what the store says another worker rotated to, else ours.
        let refresh_token = stored
            .and_then(|s| s.rotated.clone())
            .or_else(|| lock(&self.rotated).clone())
            .unwrap_or_else(|| self.configured_refresh.clone());
        let sent_at = now_ms();
        let answer = self.request(&refresh_token).await?;
        let lifetime_ms = i64::try_from(answer.expires_in.saturating_mul(1000)).unwrap_or(i64::MAX);
        // Counted from when the request was sent: the token may be a little younger, never older.
        let obtained_at_ms = sent_at;
        let expires_at_ms = sent_at.saturating_add(lifetime_ms);
        // Keep the refresh token unless a new one came back (BRIDGES 4.1).
        let newest = match answer.refresh_token {
            Some(new) if new.expose_secret() != refresh_token.expose_secret() => new,
            _ => refresh_token,
        };
        let rotated =
            (newest.expose_secret() != self.configured_refresh.expose_secret()).then_some(newest);
        *lock(&self.rotated) = rotated.clone();
        tracing::info!(
            connection = %self.connection,
            expires_in_s = answer.expires_in,
            rotated = rotated.is_some(),
            "hubspot oauth access token refreshed"
        );
        let mut sealed = None;
        if let Some(store) = &self.store {
            let shared = self.seal(
                &answer.access_token,
                rotated.as_ref(),
                obtained_at_ms,
                expires_at_ms,
            )?;
            match store.save(&self.connection, &shared, refused).await {
                Ok(true) => sealed = Some(shared.sealed),
                // A worker stored one that expires later: both work, ours stays in use here.
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(connection = %self.connection, error = %e, "cannot share the refreshed hubspot access token; other workers refresh on their own");
                }
            }
        }
        self.adopt(&answer.access_token, obtained_at_ms, expires_at_ms, sealed)
    }

    /// `POST <token_path>` with retries of transient failures; a refusal is returned at once.
    async fn request(&self, refresh_token: &SecretString) -> Result<TokenAnswer, CrmError> {
        let mut schedule = self.retry.schedule();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let err = match self.request_once(refresh_token, attempt).await {
                Ok(answer) => return Ok(answer),
                Err(err) => err,
            };
            if !err.is_retryable() {
                return Err(err);
            }
            let Some(wait) = schedule.next_wait(err.retry_after()) else {
                return Err(err);
            };
            tracing::info!(
                connection = %self.connection,
                attempt,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                error = %err.message,
                "retrying the hubspot token request"
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn request_once(
        &self,
        refresh_token: &SecretString,
        attempt: u32,
    ) -> Result<TokenAnswer, CrmError> {
        let what = "token refresh";
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose_secret()),
            ("refresh_token", refresh_token.expose_secret()),
        ];
        let started_at_ms = now_ms();
        let started = tokio::time::Instant::now();
        let sent = self.http.post(&self.token_url).form(&form).send().await;
        let (status, headers, answer) = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                match response.text().await {
                    Ok(body) => (Some(status), headers, Ok((status, body))),
                    Err(e) => (
                        Some(status),
                        headers,
                        Err(transport_error("hubspot", what, &e)),
                    ),
                }
            }
            Err(e) => (
                None,
                reqwest::header::HeaderMap::new(),
                Err(transport_error("hubspot", what, &e)),
            ),
        };
        let outcome = match answer {
            Ok((status, body)) if (200..300).contains(&status) => parse_answer(&body),
            Ok((status, body)) => Err(self.refusal(status, &headers, &body)),
            Err(e) => Err(e),
        };
        if let Some(observer) = &self.observer {
            observer(CallRecord {
                started_at_ms,
                connection: self.connection.clone(),
                operation: Operation::Auth.as_str(),
                method: "POST".into(),
                endpoint: self.token_path.clone(),
                status,
                attempt,
                latency: started.elapsed(),
                records: 0,
                rate_limited: status == Some(429),
                rate_limit_headers: Vec::new(),
                error: outcome.as_ref().err().map(|e| e.message.clone()),
            });
        }
        outcome
    }

    /// The error a non-2xx token answer means, in HubSpot's words, with every secret masked.
    fn refusal(&self, status: u16, headers: &reqwest::header::HeaderMap, body: &str) -> CrmError {
        let parsed: Option<Refusal> = serde_json::from_str(body).ok();
        let code = parsed.as_ref().and_then(|r| {
            r.status
                .clone()
                .filter(|s| s != "error")
                .or(r.category.clone())
        });
        let text = parsed
            .as_ref()
            .and_then(|r| r.message.clone())
            .unwrap_or_else(|| body.chars().take(RAW_QUOTE).collect());
        let text = self.mask(text.trim());
        let head = match &code {
            Some(code) => format!("{code}: {text}"),
            None => text,
        };
        let (kind, hint) = match status {
            429 => (ErrorKind::RateLimited, ""),
            500..=599 => (ErrorKind::Server, ""),
            _ if code.as_deref() == Some("BAD_REFRESH_TOKEN") => (
                ErrorKind::Auth,
                "; the refresh token ([crm] refresh_token_env or refresh_token_file) is wrong, was revoked, or belongs to another app: install the app in the account again to get a new one",
            ),
            _ => (
                ErrorKind::Auth,
                "; check [crm] client_id and the client secret (client_secret_env or client_secret_file) against the app's settings",
            ),
        };
        let message = match kind {
            ErrorKind::Auth => {
                format!("hubspot refused the oauth token refresh ({status}): {head}{hint}")
            }
            _ => format!("hubspot failed the oauth token refresh ({status}): {head}"),
        };
        let mut err = CrmError::new(kind, message).with_status(status);
        if let Some(code) = code {
            err = err.with_code(code);
        }
        if let Some(wait) = headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            err = err.with_retry_after(Duration::from_secs(wait));
        }
        err
    }

    /// `text` with every secret this session knows replaced by `***`.
    fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        let rotated = lock(&self.rotated).clone();
        let secrets = [
            Some(self.client_secret.expose_secret()),
            Some(self.configured_refresh.expose_secret()),
            rotated.as_ref().map(|r| r.expose_secret()),
        ];
        for secret in secrets.into_iter().flatten() {
            if !secret.is_empty() {
                out = out.replace(secret, "***");
            }
        }
        out
    }

    /// What authenticates a sealed token's place: its connection and its lifetime.
    fn aad(&self, obtained_at_ms: i64, expires_at_ms: i64) -> String {
        format!(
            "crmsync-oauth-token\n{}\n{obtained_at_ms}\n{expires_at_ms}",
            self.connection
        )
    }

    fn seal(
        &self,
        access: &SecretString,
        rotated: Option<&SecretString>,
        obtained_at_ms: i64,
        expires_at_ms: i64,
    ) -> Result<SharedToken, CrmError> {
        let payload = SealedPayload {
            access_token: access.expose_secret(),
            refresh_token: rotated.map(|r| r.expose_secret()),
            origin: &self.origin,
        };
        let mut bytes = serde_json::to_vec(&payload)
            .map_err(|e| CrmError::new(ErrorKind::Config, format!("cannot seal the token: {e}")))?;
        let aad = self.aad(obtained_at_ms, expires_at_ms);
        let nonce = self
            .seal_key
            .seal_in_place_append_tag(Aad::from(aad.as_bytes()), &mut bytes)
            .map_err(|_| {
                CrmError::new(ErrorKind::Config, "cannot seal the hubspot access token")
            })?;
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&bytes);
        Ok(SharedToken {
            sealed: format!("v1.{}", URL_SAFE_NO_PAD.encode(out)),
            obtained_at_ms,
            expires_at_ms,
        })
    }

    fn open(&self, shared: &SharedToken) -> Option<Opened> {
        let raw = URL_SAFE_NO_PAD
            .decode(shared.sealed.strip_prefix("v1.")?)
            .ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut sealed = sealed.to_vec();
        let aad = self.aad(shared.obtained_at_ms, shared.expires_at_ms);
        let plain = self
            .seal_key
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut sealed)
            .ok()?;
        let payload: OpenedPayload = serde_json::from_slice(plain).ok()?;
        let rotated = (payload.origin == self.origin)
            .then_some(payload.refresh_token)
            .flatten()
            .map(SecretString::from);
        Some(Opened {
            shared: shared.clone(),
            access: SecretString::from(payload.access_token),
            rotated,
        })
    }
}

impl Session for OAuthSession {
    fn current(&self) -> BoxFuture<'_, Result<Credentials, CrmError>> {
        Box::pin(async move {
            let now = now_ms();
            if let Some(held) = self.snapshot() {
                if now < refresh_due(held.obtained_at_ms, held.expires_at_ms) {
                    return Ok(held.credentials);
                }
                if usable(held.obtained_at_ms, held.expires_at_ms, now) {
                    // Due, but still good: refresh ahead of expiry unless another task of this
                    // process is at it already, and keep using this token meanwhile.
                    let Ok(_guard) = self.refreshing.try_lock() else {
                        return Ok(held.credentials);
                    };
                    return match self.renew_locked(None).await {
                        Ok(credentials) => Ok(credentials),
                        Err(e) if e.is_retryable() => {
                            tracing::warn!(connection = %self.connection, error = %e, "hubspot token refresh failed; the current token is used while it lasts");
                            Ok(held.credentials)
                        }
                        Err(e) => Err(e),
                    };
                }
            }
            let _guard = self.refreshing.lock().await;
            self.renew_locked(None).await
        })
    }

    fn renew(&self, stale_generation: u64) -> BoxFuture<'_, Result<(), CrmError>> {
        Box::pin(async move {
            let _guard = self.refreshing.lock().await;
            let held = self.snapshot();
            match &held {
                // Renewed already, by another task that saw the same refusal.
                Some(h) if h.generation() != stale_generation => Ok(()),
                _ => self.renew_locked(held.as_ref()).await.map(|_| ()),
            }
        })
    }
}

/// The AES-256-GCM key of `connection`'s sealed tokens: HMAC-SHA256 of the connection under
/// the client secret, which every worker holds and the state database does not.
fn sealing_key(client_secret: &str, connection: &str) -> Result<RandomizedNonceKey, CrmError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(client_secret.as_bytes())
        .map_err(|_| CrmError::new(ErrorKind::Config, "the hubspot client secret is unusable"))?;
    mac.update(b"crmsync oauth token sealing v1\n");
    mac.update(connection.as_bytes());
    let key = mac.finalize().into_bytes();
    RandomizedNonceKey::new(&AES_256_GCM, &key)
        .map_err(|_| CrmError::new(ErrorKind::Config, "cannot build the token sealing key"))
}

/// A short fingerprint of the configured refresh token (inside the sealed payload only).
fn origin_of(refresh_token: &str) -> String {
    let digest = Sha256::digest(refresh_token.as_bytes());
    hex::encode(&digest[..8])
}

#[derive(serde::Serialize)]
struct SealedPayload<'a> {
    #[serde(rename = "a")]
    access_token: &'a str,
    #[serde(rename = "r", skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    #[serde(rename = "o")]
    origin: &'a str,
}

#[derive(serde::Deserialize)]
struct OpenedPayload {
    #[serde(rename = "a")]
    access_token: String,
    #[serde(rename = "r", default)]
    refresh_token: Option<String>,
    #[serde(rename = "o")]
    origin: String,
}

/// A token answer: snake_case as the official client reads it, camelCase as HubSpot's docs
/// widget shows it (BRIDGES 4.1). No `Debug`: it holds tokens.
struct TokenAnswer {
    access_token: SecretString,
    refresh_token: Option<SecretString>,
    expires_in: u64,
}

#[derive(serde::Deserialize)]
struct RawAnswer {
    #[serde(alias = "accessToken")]
    access_token: String,
    #[serde(default, alias = "refreshToken")]
    refresh_token: Option<String>,
    #[serde(default, alias = "expiresIn")]
    expires_in: Option<u64>,
}

fn parse_answer(body: &str) -> Result<TokenAnswer, CrmError> {
    // The parse error is not quoted: serde's message may quote the value it choked on.
    let raw: RawAnswer = serde_json::from_str(body)
        .map_err(|_| protocol("the token answer is not JSON with an access_token"))?;
    if raw.access_token.trim().is_empty() {
        return Err(protocol("the token answer has an empty access_token"));
    }
    Ok(TokenAnswer {
        access_token: SecretString::from(raw.access_token),
        refresh_token: raw
            .refresh_token
            .filter(|r| !r.trim().is_empty())
            .map(SecretString::from),
        expires_in: raw.expires_in.unwrap_or(DEFAULT_LIFETIME_S),
    })
}

/// A refusal of the token endpoint: `{"status":"BAD_REFRESH_TOKEN","message":…}` (v1), or the
/// standard error shape with a `category` (the date-versioned API).
#[derive(serde::Deserialize)]
struct Refusal {
    status: Option<String>,
    message: Option<String>,
    category: Option<String>,
}

fn protocol(detail: &str) -> CrmError {
    CrmError::new(
        ErrorKind::Protocol,
        format!(
            "hubspot answered the oauth token refresh with a body crmsync cannot read: {detail}"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(secret: &str, connection: &str) -> OAuthSession {
        let oauth = HubspotOAuth::new(
            "client",
            SecretString::from(secret.to_string()),
            SecretString::from("refresh-1".to_string()),
        );
        OAuthSession::new(
            &oauth,
            SessionSettings {
                base_url: "http://127.0.0.1:1",
                connection,
                timeout: Duration::from_secs(1),
                retry: RetryPolicy::default(),
                observer: None,
            },
        )
        .expect("session")
    }

    #[test]
    fn refresh_is_due_at_a_sixth_or_five_minutes_before_expiry() {
        // 30 minutes: five minutes ahead.
        assert_eq!(refresh_due(0, 1_800_000), 1_500_000);
        // 2 s: a sixth ahead.
        assert_eq!(refresh_due(0, 2_000), 2_000 - 333);
        // A day: still five minutes.
        assert_eq!(refresh_due(0, 86_400_000), 86_100_000);
        assert!(usable(0, 1_800_000, 1_769_999));
        assert!(!usable(0, 1_800_000, 1_770_000));
        assert!(usable(0, 2_000, 1_799) && !usable(0, 2_000, 1_800));
    }

    #[test]
    fn a_sealed_token_opens_only_with_its_secret_connection_and_expiry() {
        let a = session("secret-a", "hubspot");
        let access = SecretString::from("CN-access-token".to_string());
        let sealed = a.seal(&access, None, 1_000, 1_801_000).expect("seal");
        assert!(!sealed.sealed.contains("CN-access-token"));
        let opened = a.open(&sealed).expect("opens");
        assert_eq!(opened.access.expose_secret(), "CN-access-token");
        assert!(opened.rotated.is_none());

        assert!(
            session("secret-b", "hubspot").open(&sealed).is_none(),
            "another secret"
        );
        assert!(
            session("secret-a", "other").open(&sealed).is_none(),
            "another connection"
        );
        let later = SharedToken {
            expires_at_ms: 9_999_999,
            ..sealed.clone()
        };
        assert!(a.open(&later).is_none(), "a forged expiry");
        let garbage = SharedToken {
            sealed: "v1.AAAA".into(),
            ..sealed
        };
        assert!(a.open(&garbage).is_none());
    }

    #[test]
    fn a_rotated_refresh_token_is_shared_within_its_lineage_only() {
        let a = session("secret", "hubspot");
        let rotated = SecretString::from("refresh-2".to_string());
        let access = SecretString::from("tok".to_string());
        let sealed = a.seal(&access, Some(&rotated), 0, 1_000).expect("seal");
        let opened = a.open(&sealed).expect("opens");
        assert_eq!(
            opened.rotated.map(|r| r.expose_secret().to_string()),
            Some("refresh-2".to_string())
        );
        // The operator configured another refresh token since: the stored rotation is stale.
        let reconfigured = OAuthSession {
            origin: origin_of("refresh-new"),
            ..session("secret", "hubspot")
        };
        let opened = reconfigured.open(&sealed).expect("opens");
        assert!(opened.rotated.is_none());
    }

    #[test]
    fn answers_are_read_in_both_spellings() {
        let snake = parse_answer(
            r#"{"token_type":"bearer","refresh_token":"r","access_token":"a","expires_in":1800}"#,
        )
        .expect("snake");
        assert_eq!(snake.expires_in, 1800);
        let camel = parse_answer(r#"{"accessToken":"a","expiresIn":60}"#).expect("camel");
        assert_eq!(camel.expires_in, 60);
        assert!(camel.refresh_token.is_none());
        let err = parse_answer(r#"{"access_token":""}"#).err().expect("empty");
        assert_eq!(err.kind, ErrorKind::Protocol);
    }

    #[test]
    fn refusals_name_hubspots_error_and_mask_secrets() {
        let s = session("very-secret", "hubspot");
        let err = s.refusal(
            400,
            &reqwest::header::HeaderMap::new(),
            r#"{"status":"BAD_REFRESH_TOKEN","message":"missing or invalid refresh token","correlationId":"x"}"#,
        );
        assert_eq!(err.kind, ErrorKind::Auth);
        assert_eq!(err.code.as_deref(), Some("BAD_REFRESH_TOKEN"));
        assert!(
            err.message
                .contains("BAD_REFRESH_TOKEN: missing or invalid refresh token"),
            "{}",
            err.message
        );
        let echoed = s.refusal(
            400,
            &reqwest::header::HeaderMap::new(),
            "bad refresh-1 with very-secret",
        );
        assert!(
            !echoed.message.contains("refresh-1") && !echoed.message.contains("very-secret"),
            "{}",
            echoed.message
        );
        assert!(
            s.refusal(503, &reqwest::header::HeaderMap::new(), "")
                .is_retryable()
        );
    }
}
