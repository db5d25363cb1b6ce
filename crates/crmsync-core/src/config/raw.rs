//! The config file's shape, as serde reads it. Unknown keys are rejected everywhere
//! (`deny_unknown_fields`), so a typo is an error with its line, never a silently ignored setting.
//! Defaults are named functions so `docs/config-reference.toml` can state them.

use serde::Deserialize;
use std::collections::BTreeMap;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub source: SourceConfig,
    #[serde(default)]
    pub state: StateConfig,
    pub crm: CrmConfig,
    #[serde(default)]
    pub run: RunConfig,
    #[serde(default)]
    pub webhooks: WebhooksConfig,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub alerts: AlertsConfig,
    #[serde(default, rename = "sync")]
    pub syncs: Vec<SyncConfig>,
}

/// `[source]`: the app database crmsync reads (and, for two-way fields, writes). Exactly one
/// of `url`, `url_env`, `url_file`: a URL with a password goes into the environment or a file,
/// never into this file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `sqlite://path/to/app.db` (a relative path is relative to the config file),
    /// `postgres://user@host/db`, `mysql://user@host/db`; no password in it.
    pub url: Option<String>,
    /// Environment variable holding the URL (it may carry a password).
    pub url_env: Option<String>,
    /// File holding the URL (it may carry a password).
    pub url_file: Option<String>,
}

/// `[state]`: crmsync's own database (links, queue, cursors, call log, quarantine): SQLite for
/// one worker, PostgreSQL for several. As `[source]`: one of `url`, `url_env`, `url_file`;
/// none means `sqlite://crmsync-state.db` beside the config file.
/// Retention: applied webhook events and call-log rows older than their `*_retention_days`
/// are pruned in the background by `crmsync run` (pending events never are).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    pub url: Option<String>,
    pub url_env: Option<String>,
    pub url_file: Option<String>,
    /// Days an applied webhook event is kept (its dedup key with it: a redelivery older than
    /// this is stored again, and reading it back is harmless).
    #[serde(default = "default_webhook_event_retention_days")]
    pub webhook_event_retention_days: u32,
    /// Days a call-log row is kept (`status` shows the last 24 h; the budget counts the day).
    #[serde(default = "default_call_log_retention_days")]
    pub call_log_retention_days: u32,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            url: None,
            url_env: None,
            url_file: None,
            webhook_event_retention_days: default_webhook_event_retention_days(),
            call_log_retention_days: default_call_log_retention_days(),
        }
    }
}

pub fn default_webhook_event_retention_days() -> u32 {
    7
}
pub fn default_call_log_retention_days() -> u32 {
    30
}

/// `[server]`: the operator server of `crmsync run` (dashboard, JSON API, `/metrics`,
/// `/healthz`, `/readyz`; none unless `listen` or `crmsync run --listen` gives an address),
/// and the limits every HTTP surface of crmsync keeps (the webhook receiver's too).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the operator server, e.g. "127.0.0.1:9187", or a bare port ("9187") for the
    /// loopback.
    pub listen: Option<String>,
    /// Environment variable / file holding the bearer token the server asks for from any
    /// client but the loopback, and for the dashboard's actions always.
    pub token_env: Option<String>,
    pub token_file: Option<String>,
    /// Time a client has to send a request's headers, and its body, in ms; a stalled client
    /// is disconnected after it.
    #[serde(default = "default_read_timeout_ms")]
    pub read_timeout_ms: u64,
    /// Connections served at once per server; more clients wait.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

/// An operator-server address: `IP:PORT`, or a bare `PORT`, which means the loopback
/// (`127.0.0.1:PORT`): the safe default, since any other address needs a token.
pub fn parse_listen(text: &str) -> Option<std::net::SocketAddr> {
    let text = text.trim();
    match text.parse::<u16>() {
        Ok(port) => Some(std::net::SocketAddr::from(([127, 0, 0, 1], port))),
        Err(_) => text.parse().ok(),
    }
}

impl ServerConfig {
    /// The address `listen` names, when it is set.
    pub fn listen_addr(&self) -> Option<std::net::SocketAddr> {
        self.listen.as_deref().and_then(parse_listen)
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: None,
            token_env: None,
            token_file: None,
            read_timeout_ms: default_read_timeout_ms(),
            max_connections: default_max_connections(),
        }
    }
}

/// `[alerts]`: what `crmsync run` reports to a webhook (and logs at error level) when it needs
/// a person: jobs out of retries, the daily budget pausing delivery, a mass deletion held,
/// conflicts waiting too long, the CRM refusing every call for a while. No webhook unless one of
/// `url`, `url_env`, `url_file` is set (a chat webhook URL is itself a secret: env or file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    pub url: Option<String>,
    pub url_env: Option<String>,
    pub url_file: Option<String>,
    /// Environment variable / file holding a Standard Webhooks secret (`whsec_…`) that signs
    /// each alert (`webhook-id`, `webhook-timestamp`, `webhook-signature`); unsigned without.
    pub secret_env: Option<String>,
    pub secret_file: Option<String>,
    /// A conflict open longer than this many minutes is reported (once).
    #[serde(default = "default_conflict_wait_minutes")]
    pub conflict_wait_minutes: u64,
    /// The CRM refusing or failing every call for this many minutes is reported.
    #[serde(default = "default_crm_down_minutes")]
    pub crm_down_minutes: u64,
    /// The same alert (kind and sync) is sent at most once per this many minutes.
    #[serde(default = "default_alert_repeat_minutes")]
    pub repeat_minutes: u64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            url: None,
            url_env: None,
            url_file: None,
            secret_env: None,
            secret_file: None,
            conflict_wait_minutes: default_conflict_wait_minutes(),
            crm_down_minutes: default_crm_down_minutes(),
            repeat_minutes: default_alert_repeat_minutes(),
        }
    }
}

pub fn default_conflict_wait_minutes() -> u64 {
    24 * 60
}
pub fn default_crm_down_minutes() -> u64 {
    15
}
pub fn default_alert_repeat_minutes() -> u64 {
    60
}

pub fn default_read_timeout_ms() -> u64 {
    10_000
}
pub fn default_max_connections() -> usize {
    256
}
pub fn default_server_token_env() -> String {
    "CRMSYNC_SERVER_TOKEN".to_string()
}

pub fn default_state_url() -> String {
    "sqlite://crmsync-state.db".to_string()
}

/// `[run]`: the long-running loop of `crmsync run`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Time between two polls of the CRM's changed records, in ms.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Whether to poll the CRM's search for changed records (switch off when webhooks deliver
    /// every change and the search budget is better spent elsewhere).
    #[serde(default = "default_true")]
    pub poll: bool,
    /// How far before its last position each poll starts reading, in ms: the CRM's search can
    /// show a change seconds after it happened (HubSpot's index lags), and what a poll re-reads
    /// costs calls but nothing else. Reconciliation finds what even the overlap missed.
    #[serde(default = "default_poll_overlap_ms")]
    pub poll_overlap_ms: u64,
    /// Time between two reconciliation passes (every linked record read back by id: changes
    /// both mechanisms missed, deletions, merges), in ms; 0 switches them off.
    #[serde(default = "default_reconcile_interval_ms")]
    pub reconcile_interval_ms: u64,
    /// Time between two looks at the CRM's archived records (deletions, when no webhook
    /// tells), in ms; 0 switches it off. Runs with the poll (`poll = true`).
    #[serde(default = "default_archive_check_interval_ms")]
    pub archive_check_interval_ms: u64,
    /// The mass-deletion guard: when more than this share of a sync's linked records is deleted
    /// in the CRM within an hour, deletions are held until a person decides.
    #[serde(default = "default_max_delete_share")]
    pub max_delete_share: f64,
    /// ... but never for fewer deletions than this.
    #[serde(default = "default_delete_guard_min")]
    pub delete_guard_min: u64,
    /// How often each sync's leader looks for app changes, in ms, when the app database cannot
    /// notify (SQLite, MySQL); with PostgreSQL a change wakes it at once.
    #[serde(default = "default_capture_interval_ms")]
    pub capture_interval_ms: u64,
    /// How long a claimed job stays this worker's without a heartbeat, in ms: a killed
    /// worker's jobs are taken over by another after this long.
    #[serde(default = "default_job_lease_ms")]
    pub job_lease_ms: u64,
    /// How long a leader lease (capture of a sync, webhook application) lasts without renewal,
    /// in ms: another worker takes over a killed leader's tasks after this long.
    #[serde(default = "default_leader_lease_ms")]
    pub leader_lease_ms: u64,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            poll_interval_ms: default_poll_interval_ms(),
            poll: true,
            poll_overlap_ms: default_poll_overlap_ms(),
            reconcile_interval_ms: default_reconcile_interval_ms(),
            archive_check_interval_ms: default_archive_check_interval_ms(),
            max_delete_share: default_max_delete_share(),
            delete_guard_min: default_delete_guard_min(),
            capture_interval_ms: default_capture_interval_ms(),
            job_lease_ms: default_job_lease_ms(),
            leader_lease_ms: default_leader_lease_ms(),
        }
    }
}

fn default_true() -> bool {
    true
}

pub fn default_reconcile_interval_ms() -> u64 {
    6 * 3_600_000
}

pub fn default_archive_check_interval_ms() -> u64 {
    60_000
}

pub fn default_max_delete_share() -> f64 {
    0.10
}

pub fn default_delete_guard_min() -> u64 {
    10
}

pub fn default_poll_overlap_ms() -> u64 {
    15_000
}

pub fn default_capture_interval_ms() -> u64 {
    1_000
}

pub fn default_job_lease_ms() -> u64 {
    15_000
}

pub fn default_leader_lease_ms() -> u64 {
    15_000
}

pub fn default_poll_interval_ms() -> u64 {
    5_000
}

/// What a CRM deletion does on our side. Neither hard-deletes the app row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnCrmDelete {
    /// Keep the link, mark it deleted, stop pushing the record (held, rule `crm_deleted`), and
    /// write the time into `crm_deleted_column` when one is set.
    #[default]
    Flag,
    /// Forget the link: the next push creates the record in the CRM again (the app is master).
    Unlink,
}

/// `[webhooks]`: HubSpot's change notifications, received by `crmsync run` (docs/two-way.md).
/// No receiver runs unless `listen` (or `crmsync run --webhook-listen`) gives an address. The
/// client secret never goes into the file: `secret_env` or `secret_file` says where it is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Socket address the receiver binds, e.g. "127.0.0.1:8080"; absent: no receiver.
    pub listen: Option<String>,
    /// The public URL configured in HubSpot's webhook settings (what v3 signs), when it differs
    /// from `http://<Host header>/hubspot/webhooks`, e.g. behind a TLS proxy.
    pub url: Option<String>,
    /// Environment variable holding the HubSpot app's client secret; absent: the one
    /// [`default_webhook_secret_env`] names, unless `secret_file` is set.
    pub secret_env: Option<String>,
    /// Path of a file holding the client secret (alternative to `secret_env`).
    pub secret_file: Option<String>,
    /// Which signature HubSpot sends: v3 (default) or v1; requests signed otherwise get 401.
    #[serde(default)]
    pub signature: WebhookSignature,
    /// Larger request bodies are refused with 413 (HubSpot sends at most 100 events a request).
    #[serde(default = "default_webhook_max_body_bytes")]
    pub max_body_bytes: usize,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            listen: None,
            url: None,
            secret_env: None,
            secret_file: None,
            signature: WebhookSignature::default(),
            max_body_bytes: default_webhook_max_body_bytes(),
        }
    }
}

impl WebhooksConfig {
    /// The environment variable of the client secret (used when no `secret_file` is set).
    pub fn secret_env_or_default(&self) -> String {
        self.secret_env
            .clone()
            .unwrap_or_else(default_webhook_secret_env)
    }
}

pub fn default_webhook_secret_env() -> String {
    "HUBSPOT_CLIENT_SECRET".to_string()
}
pub fn default_webhook_max_body_bytes() -> usize {
    1024 * 1024
}

/// The signature version HubSpot uses for the app's webhooks (FACTS 2.11).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookSignature {
    /// `X-HubSpot-Signature-v3`: HMAC-SHA256 of method, URL, body and timestamp; requests more
    /// than 5 minutes old are refused.
    #[default]
    V3,
    /// `X-HubSpot-Signature` (version v1): SHA-256 of secret and body. No timestamp: a replay
    /// is only caught by the `eventId` deduplication.
    V1,
}

impl WebhookSignature {
    /// "v3" or "v1", as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookSignature::V3 => "v3",
            WebhookSignature::V1 => "v1",
        }
    }
}

/// Who wins when a two-way field changed on both sides since the last value they agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// The app's value stays and is pushed.
    AppWins,
    /// The CRM's value is written into the app (the default).
    CrmWins,
    /// The later change wins: the CRM's modification time against the row's
    /// `updated_at_column` (the CRM wins when the sync has none).
    Newest,
    /// Neither: the record is parked in `crmsync conflicts` until `crmsync resolve`.
    Review,
}

pub fn default_conflict() -> ConflictPolicy {
    ConflictPolicy::CrmWins
}

/// Which CRM the `[crm]` section talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CrmKind {
    Hubspot,
    Salesforce,
}

impl CrmKind {
    /// The name in the config and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            CrmKind::Hubspot => "hubspot",
            CrmKind::Salesforce => "salesforce",
        }
    }
}

/// `[crm] auth`: how crmsync obtains the CRM's access tokens. One enum for every kind, so the
/// key parses the same everywhere; which values a kind takes is checked by validation (a
/// HubSpot flow under Salesforce is refused naming the key, and the other way round).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthFlow {
    /// HubSpot (the default): a private app's fixed token, from `token_env` / `token_file`.
    PrivateApp,
    /// HubSpot: a public app's OAuth access tokens, refreshed with the refresh token of its
    /// installation (`client_id`, `client_secret_env`, `refresh_token_env`; docs/hubspot.md).
    Oauth,
    /// Salesforce (the default): a refresh token issued to the connected app once.
    RefreshToken,
    /// Salesforce: the connected app's own run-as user (client id + secret).
    ClientCredentials,
    /// Salesforce: a JWT signed with the connected app's certificate key.
    JwtBearer,
}

impl AuthFlow {
    /// The value as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFlow::PrivateApp => "private_app",
            AuthFlow::Oauth => "oauth",
            AuthFlow::RefreshToken => "refresh_token",
            AuthFlow::ClientCredentials => "client_credentials",
            AuthFlow::JwtBearer => "jwt_bearer",
        }
    }

    /// The kind whose flow this is.
    pub fn kind(self) -> CrmKind {
        match self {
            AuthFlow::PrivateApp | AuthFlow::Oauth => CrmKind::Hubspot,
            AuthFlow::RefreshToken | AuthFlow::ClientCredentials | AuthFlow::JwtBearer => {
                CrmKind::Salesforce
            }
        }
    }
}

/// How crmsync obtains HubSpot access tokens (docs/hubspot.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubspotAuth {
    /// A private app's token (`token_env` / `token_file`).
    PrivateApp,
    /// A public app's OAuth tokens (BRIDGES 4.1).
    Oauth,
}

/// How crmsync obtains Salesforce access tokens (OAuth 2.0, FACTS 3.1; docs/salesforce.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SalesforceAuth {
    /// A refresh token issued to the connected app once, by a person (web server flow).
    RefreshToken,
    /// The connected app's own run-as user (client id + secret).
    ClientCredentials,
    /// A JWT signed with the connected app's certificate key, for a pre-authorized user.
    JwtBearer,
}

/// How the CRM counts its daily API budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetModel {
    /// A calendar day ending at the account's midnight (HubSpot).
    CalendarDay,
    /// Any 24 hours (Salesforce's rolling limit).
    Rolling24h,
}

/// Where this config runs: its app database and CRM account hold test data (`sandbox`,
/// `staging`) or real data (`production`). A non-production config never writes into a
/// production CRM account unless `allow_production_account` says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Sandbox,
    Staging,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Sandbox => "sandbox",
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }
}

/// `[crm]`: the CRM account and how to reach it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrmConfig {
    pub kind: CrmKind,
    /// `sandbox`, `staging` or `production`; required (no default: a guess here is how
    /// test data reaches production).
    pub environment: Option<Environment>,
    /// Lets a `sandbox` or `staging` config write into a CRM account that reports itself as
    /// production (HubSpot `accountType = STANDARD`, a Salesforce org that is not a sandbox).
    #[serde(default)]
    pub allow_production_account: bool,
    /// The CRM configuration this config declares (`crmsync schema diff/apply`): a TOML file
    /// as `crmsync schema export` writes it, relative to the config file.
    pub schema: Option<String>,
    /// HubSpot: the API root (default `https://api.hubapi.com`). Salesforce takes its API
    /// address from the token answer (`instance_url`) instead.
    pub base_url: Option<String>,
    /// HubSpot (`auth = "private_app"`): name of the environment variable holding the token.
    pub token_env: Option<String>,
    /// HubSpot (`auth = "private_app"`): path of a file holding the token (alternative to
    /// `token_env`).
    pub token_file: Option<String>,
    /// HubSpot (`auth = "oauth"`): the token endpoint below `base_url` (default
    /// `/oauth/v1/token`, which HubSpot retires on 16 Feb 2027).
    pub token_path: Option<String>,
    /// HubSpot: requests per rate-limit interval the account allows (Free/Starter: 100 per 10 s).
    pub requests_per_interval: Option<u32>,
    /// HubSpot: the length of that interval, in ms (10,000).
    pub interval_ms: Option<u64>,
    /// Daily request limit of the account (HubSpot Free/Starter: 250,000 a day; Salesforce
    /// Enterprise: 100,000 per rolling 24 h plus 1,000 per user licence).
    pub daily_limit: Option<u32>,
    /// Salesforce: where OAuth tokens come from (`https://login.salesforce.com`, sandboxes
    /// `https://test.salesforce.com`, a My Domain URL, or the sandbox emulator).
    pub login_url: Option<String>,
    /// How tokens are obtained: HubSpot `private_app` (default) or `oauth`; Salesforce
    /// `refresh_token` (default), `client_credentials` or `jwt_bearer`.
    pub auth: Option<AuthFlow>,
    /// Salesforce, HubSpot `auth = "oauth"`: the app's client id / consumer key (not a secret).
    pub client_id: Option<String>,
    /// Salesforce, HubSpot `auth = "oauth"`: environment variable / file holding the app's
    /// client secret.
    pub client_secret_env: Option<String>,
    pub client_secret_file: Option<String>,
    /// Salesforce (`auth = "refresh_token"`), HubSpot (`auth = "oauth"`): environment variable
    /// / file holding the refresh token.
    pub refresh_token_env: Option<String>,
    pub refresh_token_file: Option<String>,
    /// Salesforce (`auth = "jwt_bearer"`): the user the token is issued for.
    pub username: Option<String>,
    /// Salesforce (`auth = "jwt_bearer"`): PEM file of the key the connected app's certificate holds.
    pub private_key_file: Option<String>,
    /// Salesforce: REST API version (default `59.0`).
    pub api_version: Option<String>,
    /// First wait of the retry backoff, in ms (200); it doubles up to `retry_cap_ms` (10,000).
    #[serde(default = "default_retry_base_ms")]
    pub retry_base_ms: u64,
    #[serde(default = "default_retry_cap_ms")]
    pub retry_cap_ms: u64,
    /// Share of the daily limit crmsync may use; the rest is left to other apps.
    #[serde(default = "default_daily_budget_share")]
    pub daily_budget_share: f64,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// HubSpot: share of the interval limit kept unused, in percent, as a margin for clock skew.
    pub headroom_percent: Option<u32>,
    /// Batch calls in flight at once (the rate limiter still paces them).
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
    /// Delivery attempts of a record (each with the client's own retries) before its job is dead.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// HubSpot: when the daily limit resets, as a UTC offset of the account's midnight
    /// (HubSpot resets at midnight in the account's time zone), e.g. "+01:00".
    pub daily_reset_utc_offset: Option<String>,
}

impl CrmConfig {
    /// The HubSpot API root.
    pub fn base_url(&self) -> &str {
        self.base_url.as_deref().unwrap_or(DEFAULT_HUBSPOT_URL)
    }
    pub fn requests_per_interval(&self) -> u32 {
        self.requests_per_interval.unwrap_or(100)
    }
    pub fn interval_ms(&self) -> u64 {
        self.interval_ms.unwrap_or(10_000)
    }
    pub fn headroom_percent(&self) -> u32 {
        self.headroom_percent.unwrap_or(2)
    }
    pub fn daily_reset_utc_offset(&self) -> &str {
        self.daily_reset_utc_offset.as_deref().unwrap_or("+00:00")
    }
    /// Records per batch write of this kind's API, for estimates made without a client
    /// (HubSpot 100, Salesforce collections 200); the connector states the same.
    pub fn write_batch(&self) -> u64 {
        match self.kind {
            CrmKind::Hubspot => 100,
            CrmKind::Salesforce => 200,
        }
    }
    /// The account's daily limit: as configured, else the kind's documented default.
    pub fn daily_limit(&self) -> u32 {
        self.daily_limit.unwrap_or(match self.kind {
            CrmKind::Hubspot => 250_000,
            CrmKind::Salesforce => 100_000,
        })
    }
    /// The request rate crmsync keeps to, for estimates: HubSpot's interval limit less the
    /// headroom; Salesforce has no short-term rate limit (only the 24 h one and 25
    /// concurrent long requests), so its pace is what `max_in_flight` batch calls of about
    /// a second each give.
    pub fn requests_per_second(&self) -> f64 {
        match self.kind {
            CrmKind::Hubspot => {
                let per_interval = f64::from(self.requests_per_interval())
                    * f64::from(100 - self.headroom_percent().min(99))
                    / 100.0;
                per_interval * 1000.0 / self.interval_ms().max(1) as f64
            }
            CrmKind::Salesforce => f64::from(self.max_in_flight.max(1)),
        }
    }

    /// How the daily limit is counted.
    pub fn budget_model(&self) -> BudgetModel {
        match self.kind {
            CrmKind::Hubspot => BudgetModel::CalendarDay,
            CrmKind::Salesforce => BudgetModel::Rolling24h,
        }
    }
    /// The Salesforce OAuth host.
    pub fn login_url(&self) -> &str {
        self.login_url
            .as_deref()
            .unwrap_or("https://login.salesforce.com")
    }
    pub fn api_version(&self) -> &str {
        self.api_version.as_deref().unwrap_or("59.0")
    }
    /// The Salesforce flow `auth` names (a HubSpot value, refused by validation, reads as the
    /// default).
    pub fn salesforce_auth(&self) -> SalesforceAuth {
        match self.auth {
            Some(AuthFlow::ClientCredentials) => SalesforceAuth::ClientCredentials,
            Some(AuthFlow::JwtBearer) => SalesforceAuth::JwtBearer,
            _ => SalesforceAuth::RefreshToken,
        }
    }
    /// The HubSpot flow `auth` names (a Salesforce value, refused by validation, reads as the
    /// default).
    pub fn hubspot_auth(&self) -> HubspotAuth {
        match self.auth {
            Some(AuthFlow::Oauth) => HubspotAuth::Oauth,
            _ => HubspotAuth::PrivateApp,
        }
    }
    /// The HubSpot OAuth token endpoint below `base_url`.
    pub fn token_path(&self) -> &str {
        self.token_path
            .as_deref()
            .unwrap_or(DEFAULT_HUBSPOT_TOKEN_PATH)
    }
}

/// HubSpot's production API root.
pub const DEFAULT_HUBSPOT_URL: &str = "https://api.hubapi.com";

/// HubSpot's OAuth token endpoint (v1) below the API root.
pub const DEFAULT_HUBSPOT_TOKEN_PATH: &str = "/oauth/v1/token";

pub fn default_daily_budget_share() -> f64 {
    0.8
}
pub fn default_timeout_ms() -> u64 {
    30_000
}
pub fn default_max_in_flight() -> u32 {
    8
}
pub fn default_max_attempts() -> u32 {
    8
}
pub fn default_retry_base_ms() -> u64 {
    200
}
pub fn default_retry_cap_ms() -> u64 {
    10_000
}
pub fn default_max_retries() -> u32 {
    5
}

/// How changes in the source table are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capture {
    /// Triggers installed by `crmsync install` write every change into a change-log table.
    Trigger,
    /// Rows whose `updated_at` column moved past the cursor (with an overlap window).
    UpdatedAt,
    /// Read the whole table each time; unchanged rows still cost no API call.
    Scan,
}

/// Which way a field flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// App -> CRM only.
    Push,
    /// CRM -> app only.
    Pull,
    /// Both ways (`two-way` is accepted as a synonym).
    #[serde(alias = "two-way")]
    Both,
}

/// One `[[sync]]`: a table of the app mapped to a CRM object.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    pub name: String,
    pub table: String,
    #[serde(default = "default_key")]
    pub key: String,
    pub object: String,
    /// CRM property with unique values that holds our key; upserts go by it.
    #[serde(default = "default_id_property")]
    pub id_property: String,
    #[serde(default = "default_direction")]
    pub direction: Direction,
    #[serde(default = "default_capture")]
    pub capture: Capture,
    /// Column compared with the cursor when `capture = "updated_at"`.
    pub updated_at_column: Option<String>,
    /// Column of the app table that receives the CRM id, e.g. `hubspot_id`.
    pub write_back_column: Option<String>,
    /// Column -> the sync whose records it references (creates CRM associations); a target
    /// may be optional (`{ sync = "contacts", required = false }`).
    #[serde(default)]
    pub associate: super::associate::Associations,
    /// What a record deleted (archived) in the CRM does to its app row.
    #[serde(default)]
    pub on_crm_delete: OnCrmDelete,
    /// With `on_crm_delete = "flag"`: the app column that receives the deletion time (RFC 3339
    /// UTC); cleared when the record is restored in the CRM.
    pub crm_deleted_column: Option<String>,
    /// What a record created in the CRM (not by crmsync) does here: `ignore` (default) or
    /// `insert` (it becomes a row; docs/mapping.md, "Records created in the CRM").
    #[serde(default)]
    pub on_crm_create: super::crm_create::OnCrmCreate,
    /// With `on_crm_create = "insert"`: column -> `"now"` or a constant, for the columns a new
    /// row needs that no pulled field fills (`created_at`, `updated_at`).
    #[serde(default)]
    pub insert_values: BTreeMap<String, super::crm_create::InsertValue>,
    #[serde(default)]
    pub fields: BTreeMap<String, FieldConfig>,
}

pub fn default_key() -> String {
    "id".to_string()
}
pub fn default_id_property() -> String {
    "crmsync_id".to_string()
}
pub fn default_direction() -> Direction {
    Direction::Push
}
pub fn default_capture() -> Capture {
    Capture::Trigger
}

/// One mapped field: `[sync.fields] email = { crm = "email", ... }`. The key names the field;
/// its value comes from the column of the same name unless `column`, `concat`, `template` or
/// `constant` says otherwise (at most one of them).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldConfig {
    /// The CRM property the field maps to.
    pub crm: String,
    /// Overrides the sync's direction for this field.
    pub direction: Option<Direction>,
    /// The app column to read, when it differs from the field's key (two fields from one column).
    pub column: Option<String>,
    /// Columns joined with `separator` (default one space); empty parts are skipped.
    pub concat: Option<Vec<String>>,
    /// Separator of `concat`.
    pub separator: Option<String>,
    /// Columns filled into a text: `"{contact_first_name} {contact_last_name}"` (`{{` is a brace).
    pub template: Option<String>,
    /// A fixed value, reading no column (e.g. the deal `pipeline`).
    pub constant: Option<String>,
    /// Transforms applied in order before validation: names (`"trim"`) or one-key tables with
    /// an argument (`{ e164 = "DE" }`); see `docs/mapping.md`.
    #[serde(default)]
    pub transform: Vec<Item>,
    /// Validation rules: `"email"`, `["required", { max_length = 40 }]`.
    #[serde(default)]
    pub validate: OneOrMany,
    /// A column that must be non-empty for this field's value to be sent (e.g. `email_confirmed_at`).
    pub confirmed_by: Option<String>,
    /// App value -> CRM value (e.g. order status -> deal stage); several app values may share
    /// one CRM value. Unmapped values are record errors.
    pub map: Option<BTreeMap<String, String>>,
    /// CRM value -> app value, choosing the app value a shared CRM value pulls back as.
    pub reverse: Option<BTreeMap<String, String>>,
    /// Value sent when the column is empty.
    pub default: Option<String>,
    /// For a field pulled from the CRM: who wins when both sides changed it (default `crm_wins`).
    pub conflict: Option<ConflictPolicy>,
    /// What an empty (or NULL) app value does: `skip` (default) leaves the CRM's value as it
    /// is; `clear` empties it.
    #[serde(default)]
    pub on_empty: OnEmpty,
    /// When the value is written: `always` (default), or `create_only` (set when the CRM record
    /// is created, never overwritten: lead source, first order date).
    #[serde(default)]
    pub write: WriteMode,
    /// What a value failing its transforms or rules does: `quarantine` (default: the record is
    /// held back with the reason) or `skip_field` (the record is sent without this value).
    #[serde(default)]
    pub on_invalid: OnInvalid,
}

/// `on_empty` of a field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnEmpty {
    /// An empty app value is not sent: the CRM keeps what it has.
    #[default]
    Skip,
    /// An empty app value empties the CRM's.
    Clear,
}

/// `write` of a field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    #[default]
    Always,
    /// Only when the record is created in the CRM.
    CreateOnly,
}

/// `on_invalid` of a field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnInvalid {
    /// The record is quarantined with the field, the rule and the value.
    #[default]
    Quarantine,
    /// The record goes out without the field; `crmsync explain` says why.
    SkipField,
}

/// One entry of a `transform` or `validate` list: a bare name, or a table naming one
/// transform or rule with its argument (`{ max_length = 40 }`). Checked by the validation pass,
/// so a wrong name or argument is reported with its dotted path like every other problem.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Item {
    Name(String),
    Table(BTreeMap<String, toml::Value>),
}

impl Item {
    /// The transform or rule name: the string, or the table's first key.
    pub fn name(&self) -> &str {
        match self {
            Item::Name(n) => n,
            Item::Table(t) => t.keys().next().map(String::as_str).unwrap_or(""),
        }
    }
}

impl From<&str> for Item {
    fn from(s: &str) -> Self {
        Item::Name(s.to_string())
    }
}

/// One item or a list of them (`validate = "email"` or `validate = ["required", "email"]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    #[default]
    None,
    One(Item),
    Many(Vec<Item>),
}

impl OneOrMany {
    pub fn items(&self) -> Vec<&Item> {
        match self {
            OneOrMany::None => vec![],
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v.iter().collect(),
        }
    }
}
