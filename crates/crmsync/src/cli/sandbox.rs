//! `crmsync sandbox`: the HubSpot (default) or Salesforce emulator as a standalone server.
//! Flags that only make sense for one flavour say so in their help; the ones that cannot be
//! silently ignored (tokens, webhooks, storms, credentials) are refused for the other flavour.

use crmsync_sandbox::{
    FaultConfig, OAuthConfig, RateLimitStorm, SalesforceConfig, SalesforceSandbox, Sandbox,
    SandboxConfig, SignatureVersion, StormPolicy, WebhookConfig,
};
use std::path::PathBuf;
use std::process::ExitCode;

/// Which CRM the sandbox emulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Flavour {
    /// HubSpot CRM v3/v4 (`/crm/v3/...`).
    Hubspot,
    /// Salesforce REST (`/services/oauth2/token`, `/services/data/vNN.N/...`).
    Salesforce,
}

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Which CRM to emulate.
    #[arg(long, value_enum, default_value = "hubspot")]
    pub flavour: Flavour,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 4010)]
    pub port: u16,
    /// HubSpot only: accept only this bearer token (default: any non-empty token).
    #[arg(long, env = "CRMSYNC_SANDBOX_TOKEN")]
    pub token: Option<String>,
    /// HubSpot only: requests allowed per interval (HubSpot Free: 100 per 10 s).
    #[arg(long, default_value_t = 100)]
    pub interval_limit: u32,
    /// HubSpot only: length of the rate-limit interval in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub interval_ms: u64,
    /// Requests allowed per day. Default: HubSpot 250,000 per UTC day (Free tier);
    /// Salesforce 100,000 per rolling 24 hours.
    #[arg(long)]
    pub daily_limit: Option<u32>,
    /// HubSpot only: search requests allowed per second (HubSpot: 5).
    #[arg(long, default_value_t = 5)]
    pub search_per_second: u32,
    /// OAuth client id: HubSpot's public app, Salesforce's connected app (consumer key)
    /// [default: crmsync-sandbox].
    #[arg(long)]
    pub client_id: Option<String>,
    /// OAuth client secret of that app [default: sandbox-secret].
    #[arg(long, env = "CRMSYNC_SANDBOX_CLIENT_SECRET")]
    pub client_secret: Option<String>,
    /// Salesforce only: the integration user's username [default: sandbox@crmsync.local].
    #[arg(long)]
    pub username: Option<String>,
    /// Salesforce only: the integration user's password [default: sandbox].
    #[arg(long, env = "CRMSYNC_SANDBOX_PASSWORD")]
    pub password: Option<String>,
    /// The refresh token the token endpoint accepts (HubSpot: `POST /oauth/v1/token`;
    /// Salesforce: always accepted) [default: sandbox-refresh-token].
    #[arg(long)]
    pub refresh_token: Option<String>,
    /// HubSpot only: lifetime of the OAuth access tokens `POST /oauth/v1/token` issues, in
    /// seconds; afterwards a token is answered 401 EXPIRED_AUTHENTICATION [default: 1800].
    #[arg(long, value_name = "SECS")]
    pub oauth_token_lifetime_secs: Option<u64>,
    /// HubSpot only: each refresh returns a new refresh token and the used one stops working
    /// (HubSpot normally keeps it; the strict case for testing clients).
    #[arg(long)]
    pub oauth_rotate_refresh_tokens: bool,
    /// HubSpot only: the portal id `GET /account-info/v3/details` reports [default: 62515].
    #[arg(long, value_name = "N")]
    pub portal_id: Option<u64>,
    /// HubSpot only: the account type it reports: SANDBOX (default), DEVELOPER_TEST,
    /// APP_DEVELOPER, or STANDARD to pose as a production account (docs/environments.md).
    #[arg(long, value_name = "TYPE", value_parser = parse_account_type)]
    pub account_type: Option<String>,
    /// Salesforce only: the org id (`00D…`) the token answer and `Organization` report
    /// [default: 00D000000000001].
    #[arg(long, value_name = "ID")]
    pub org_id: Option<String>,
    /// Salesforce only: pose as a production org (`Organization.IsSandbox = false`; the
    /// default is a sandbox org).
    #[arg(long)]
    pub production_org: bool,
    /// Turn every rate limit off (Salesforce: the daily limit).
    #[arg(long)]
    pub no_limits: bool,
    /// Keep the portal in this JSON file: loaded at start, saved after changes and on exit.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Another HubSpot user's token, as TOKEN=USER_ID (repeatable); writes made with it are
    /// reported as UI edits (changeSource CRM_UI, sourceId userId:N).
    #[arg(long = "other-token", value_name = "TOKEN=USER_ID", value_parser = parse_other_token)]
    pub other_tokens: Vec<(String, u64)>,
    /// Seed of the fault dice (same seed, same faults).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Share of API requests answered 500/502/503 (0.0–1.0).
    #[arg(long, default_value_t = 0.0)]
    pub fault_5xx_rate: f64,
    /// Latency added to every API request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Up to this many extra milliseconds of random latency.
    #[arg(long, default_value_t = 0)]
    pub latency_jitter_ms: u64,
    /// Share of API requests that hang (see --hang-ms) instead of answering.
    #[arg(long, default_value_t = 0.0)]
    pub hang_rate: f64,
    /// How long a hanging request hangs, in milliseconds.
    #[arg(long, default_value_t = 300_000)]
    pub hang_ms: u64,
    /// Share of API requests whose connection is dropped without a response.
    #[arg(long, default_value_t = 0.0)]
    pub reset_rate: f64,
    /// Answer 429 with this policy: TEN_SECONDLY_ROLLING, SECONDLY or DAILY.
    #[arg(long, value_name = "POLICY", value_parser = parse_storm_policy)]
    pub storm: Option<StormPolicy>,
    /// End the 429 storm after this many requests.
    #[arg(long, requires = "storm")]
    pub storm_requests: Option<u32>,
    /// End the 429 storm after this many milliseconds.
    #[arg(long, requires = "storm")]
    pub storm_duration_ms: Option<u64>,
    /// The token expires this many milliseconds after start (401 EXPIRED_AUTHENTICATION).
    #[arg(long)]
    pub token_expires_after_ms: Option<u64>,
    /// Apply the next N batch writes, then answer them 500/502.
    #[arg(long, default_value_t = 0)]
    pub fail_after_apply: u32,
    /// Search index lag: records appear in /search this long after their last write.
    #[arg(long, default_value_t = 0)]
    pub search_lag_ms: u64,
    /// Most filter groups per search (HubSpot's strictest published figure: 5).
    #[arg(long, default_value_t = 5)]
    pub search_max_filter_groups: usize,
    /// Most filters per search filter group (strictest: 6).
    #[arg(long, default_value_t = 6)]
    pub search_max_filters_per_group: usize,
    /// Most filters per search request (strictest: 18).
    #[arg(long, default_value_t = 18)]
    pub search_max_filters: usize,
    /// POST change notifications (webhooks) to this URL.
    #[arg(long, requires = "webhook_secret")]
    pub webhook_url: Option<String>,
    /// Client secret that signs the webhooks.
    #[arg(long, env = "CRMSYNC_SANDBOX_WEBHOOK_SECRET", requires = "webhook_url")]
    pub webhook_secret: Option<String>,
    /// Webhook signature version: v3 or v1.
    #[arg(long, default_value = "v3", value_parser = parse_signature)]
    pub webhook_signature: SignatureVersion,
    /// Most events per webhook request (1–100).
    #[arg(long, default_value_t = 100)]
    pub webhook_max_batch: usize,
}

fn parse_other_token(raw: &str) -> Result<(String, u64), String> {
    let (token, user) = raw
        .split_once('=')
        .ok_or_else(|| format!("expected TOKEN=USER_ID, e.g. ui-token=12345, got {raw:?}"))?;
    let user = user
        .parse::<u64>()
        .map_err(|_| format!("USER_ID must be a number, e.g. ui-token=12345, got {user:?}"))?;
    if token.is_empty() {
        return Err("TOKEN must not be empty".to_owned());
    }
    Ok((token.to_owned(), user))
}

fn parse_account_type(raw: &str) -> Result<String, String> {
    let upper = raw.to_ascii_uppercase();
    match upper.as_str() {
        "STANDARD" | "DEVELOPER_TEST" | "SANDBOX" | "APP_DEVELOPER" => Ok(upper),
        _ => Err(format!(
            "expected STANDARD, DEVELOPER_TEST, SANDBOX or APP_DEVELOPER, got {raw:?}"
        )),
    }
}

fn parse_storm_policy(raw: &str) -> Result<StormPolicy, String> {
    match raw.to_ascii_uppercase().as_str() {
        "TEN_SECONDLY_ROLLING" => Ok(StormPolicy::TenSecondlyRolling),
        "SECONDLY" => Ok(StormPolicy::Secondly),
        "DAILY" => Ok(StormPolicy::Daily),
        _ => Err(format!(
            "expected TEN_SECONDLY_ROLLING, SECONDLY or DAILY, got {raw:?}"
        )),
    }
}

fn parse_signature(raw: &str) -> Result<SignatureVersion, String> {
    match raw {
        "v3" => Ok(SignatureVersion::V3),
        "v1" => Ok(SignatureVersion::V1),
        _ => Err(format!("expected v3 or v1, got {raw:?}")),
    }
}

impl SandboxArgs {
    /// Flags given that the chosen flavour cannot honour.
    fn misplaced(&self) -> Vec<&'static str> {
        let mut wrong = Vec::new();
        match self.flavour {
            Flavour::Hubspot => {
                for (name, given) in [
                    ("--username", self.username.is_some()),
                    ("--password", self.password.is_some()),
                    ("--org-id", self.org_id.is_some()),
                    ("--production-org", self.production_org),
                ] {
                    if given {
                        wrong.push(name);
                    }
                }
            }
            Flavour::Salesforce => {
                for (name, given) in [
                    ("--token", self.token.is_some()),
                    ("--other-token", !self.other_tokens.is_empty()),
                    ("--portal-id", self.portal_id.is_some()),
                    ("--account-type", self.account_type.is_some()),
                    ("--storm", self.storm.is_some()),
                    ("--fail-after-apply", self.fail_after_apply > 0),
                    ("--webhook-url", self.webhook_url.is_some()),
                    ("--search-lag-ms", self.search_lag_ms > 0),
                    (
                        "--oauth-token-lifetime-secs",
                        self.oauth_token_lifetime_secs.is_some(),
                    ),
                    (
                        "--oauth-rotate-refresh-tokens",
                        self.oauth_rotate_refresh_tokens,
                    ),
                ] {
                    if given {
                        wrong.push(name);
                    }
                }
            }
        }
        wrong
    }

    fn faults(&self) -> FaultConfig {
        FaultConfig {
            seed: self.seed,
            error_rate: self.fault_5xx_rate,
            latency_ms: self.latency_ms,
            latency_jitter_ms: self.latency_jitter_ms,
            hang_rate: self.hang_rate,
            hang_ms: self.hang_ms,
            reset_rate: self.reset_rate,
            storm: self.storm.map(|policy| RateLimitStorm {
                policy,
                requests: self.storm_requests,
                duration_ms: self.storm_duration_ms,
            }),
            token_expires_after_ms: self.token_expires_after_ms,
            fail_after_apply: self.fail_after_apply,
        }
    }

    fn salesforce_config(&self) -> SalesforceConfig {
        let defaults = SalesforceConfig::default();
        SalesforceConfig {
            client_id: self.client_id.clone().unwrap_or(defaults.client_id),
            client_secret: self.client_secret.clone().unwrap_or(defaults.client_secret),
            username: self.username.clone().unwrap_or(defaults.username),
            password: self.password.clone().unwrap_or(defaults.password),
            refresh_token: self.refresh_token.clone().unwrap_or(defaults.refresh_token),
            daily_limit: if self.no_limits {
                None
            } else {
                self.daily_limit.or(defaults.daily_limit)
            },
            faults: self.faults(),
            state_file: self.state.clone(),
            org_id: self.org_id.clone().unwrap_or(defaults.org_id),
            is_sandbox: !self.production_org,
        }
    }

    /// The HubSpot flavour's public app: the shared credential flags, HubSpot's lifetime.
    fn oauth_config(&self) -> OAuthConfig {
        let defaults = OAuthConfig::default();
        OAuthConfig {
            client_id: self.client_id.clone().unwrap_or(defaults.client_id),
            client_secret: self.client_secret.clone().unwrap_or(defaults.client_secret),
            refresh_token: self.refresh_token.clone().unwrap_or(defaults.refresh_token),
            token_lifetime_secs: self
                .oauth_token_lifetime_secs
                .unwrap_or(defaults.token_lifetime_secs),
            rotate_refresh_tokens: self.oauth_rotate_refresh_tokens,
        }
    }

    fn config(&self) -> SandboxConfig {
        let base = if self.no_limits {
            SandboxConfig::unlimited()
        } else {
            SandboxConfig {
                interval_limit: Some(self.interval_limit),
                interval_ms: self.interval_ms,
                daily_limit: Some(self.daily_limit.unwrap_or(250_000)),
                search_per_second: Some(self.search_per_second),
                ..SandboxConfig::default()
            }
        };
        let webhooks = match (&self.webhook_url, &self.webhook_secret) {
            (Some(url), Some(secret)) => Some(WebhookConfig {
                signature_version: self.webhook_signature,
                max_batch: self.webhook_max_batch,
                ..WebhookConfig::new(url, secret)
            }),
            _ => None,
        };
        SandboxConfig {
            token: self.token.clone(),
            oauth: self.oauth_config(),
            other_tokens: self.other_tokens.iter().cloned().collect(),
            search_max_filter_groups: self.search_max_filter_groups,
            search_max_filters_per_group: self.search_max_filters_per_group,
            search_max_filters: self.search_max_filters,
            search_lag_ms: self.search_lag_ms,
            faults: self.faults(),
            webhooks,
            state_file: self.state.clone(),
            portal_id: self.portal_id.unwrap_or(base.portal_id),
            account_type: self
                .account_type
                .clone()
                .unwrap_or_else(|| base.account_type.clone()),
            ..base
        }
    }
}

pub async fn run(args: SandboxArgs) -> anyhow::Result<ExitCode> {
    let addr = format!("{}:{}", args.host, args.port);
    for (name, rate) in [
        ("--fault-5xx-rate", args.fault_5xx_rate),
        ("--hang-rate", args.hang_rate),
        ("--reset-rate", args.reset_rate),
    ] {
        if !(0.0..=1.0).contains(&rate) {
            anyhow::bail!("{name} must be between 0.0 and 1.0, e.g. {name} 0.05; got {rate}");
        }
    }
    let misplaced = args.misplaced();
    if !misplaced.is_empty() {
        let other = match args.flavour {
            Flavour::Hubspot => "salesforce",
            Flavour::Salesforce => "hubspot",
        };
        anyhow::bail!(
            "{} only apply to --flavour {other}; drop them or add --flavour {other}",
            misplaced.join(", ")
        );
    }
    if args.flavour == Flavour::Salesforce {
        return run_salesforce(&args, &addr).await;
    }
    if args.oauth_token_lifetime_secs == Some(0) {
        anyhow::bail!(
            "--oauth-token-lifetime-secs must be at least 1, e.g. --oauth-token-lifetime-secs 1800"
        );
    }
    let config = args.config();
    let sandbox = Sandbox::start(&addr, config)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    println!("HubSpot sandbox listening on {}", sandbox.base_url());
    let oauth = args.oauth_config();
    println!(
        "OAuth (public app): POST {}/oauth/v1/token · client_id={} client_secret={} refresh_token={} · access tokens live {} s{}",
        sandbox.base_url(),
        oauth.client_id,
        oauth.client_secret,
        oauth.refresh_token,
        oauth.token_lifetime_secs,
        if oauth.rotate_refresh_tokens {
            ", refresh tokens rotate"
        } else {
            ""
        }
    );
    println!(
        "admin: {}/_sandbox/stats · reset: POST {}/_sandbox/reset · stop with Ctrl-C",
        sandbox.base_url(),
        sandbox.base_url()
    );
    if let Some(path) = &args.state {
        println!("state file: {}", path.display());
    }
    wait_for_stop().await?;
    sandbox.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

async fn run_salesforce(args: &SandboxArgs, addr: &str) -> anyhow::Result<ExitCode> {
    let config = args.salesforce_config();
    let sandbox = SalesforceSandbox::start(addr, config.clone())
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let url = sandbox.base_url();
    println!("Salesforce sandbox listening on {url} (instance_url and login URL)");
    println!(
        "OAuth: POST {url}/services/oauth2/token · client_id={} client_secret={} username={} password={} refresh_token={}",
        config.client_id,
        config.client_secret,
        config.username,
        config.password,
        config.refresh_token
    );
    match config.daily_limit {
        Some(limit) => println!("daily API limit: {limit} requests per rolling 24 h"),
        None => println!("daily API limit: off"),
    }
    println!(
        "admin: {url}/_sandbox/stats · UI user token: POST {url}/_sandbox/ui-token · stop with Ctrl-C"
    );
    if let Some(path) = &args.state {
        println!("state file: {}", path.display());
    }
    wait_for_stop().await?;
    sandbox.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C, or SIGTERM on Unix (scripts and process managers), so the state file is saved.
async fn wait_for_stop() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
