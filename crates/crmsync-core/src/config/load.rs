//! Loading a config file: parse strictly, validate semantically, resolve paths and secrets.
//! Every error names the file, the line and the dotted key; the validation pass collects *all*
//! problems so a user fixes the file in one go.

use super::locate::line_of;
use super::raw::{CrmKind, HubspotAuth, RawConfig};
use super::validate::validate;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::path::{Path, PathBuf};

/// A validated config, with relative paths resolved against the config file's folder.
#[derive(Debug, Clone)]
pub struct Config {
    pub raw: RawConfig,
    /// The file it came from (for messages).
    pub path: PathBuf,
    /// The HubSpot private app's token; `None` when loaded without secrets, for another kind
    /// or for a public app (`auth = "oauth"`).
    pub token: Option<SecretString>,
    /// The HubSpot public app's secrets (`auth = "oauth"`); `None` when loaded without
    /// secrets, for another kind or for a private app.
    pub oauth: Option<OAuthSecrets>,
    /// The Salesforce OAuth secrets; `None` when loaded without secrets or for another kind.
    pub salesforce: Option<SalesforceSecrets>,
    /// The app database's URL as configured (`url`, or read from `url_env` / `url_file`): it
    /// may hold a password, so it is kept out of `Debug`.
    pub source: SecretString,
    /// The state database's URL, likewise.
    pub state: SecretString,
}

impl Config {
    /// URL of the app database, a relative SQLite path resolved against the config file.
    pub fn source_url(&self) -> String {
        self.resolve_sqlite_url(self.source.expose_secret())
    }

    /// URL of the state database, a relative SQLite path resolved against the config file.
    pub fn state_url(&self) -> String {
        self.resolve_sqlite_url(self.state.expose_secret())
    }

    fn resolve_sqlite_url(&self, url: &str) -> String {
        let Some(rest) = url.strip_prefix("sqlite://") else {
            return url.to_string();
        };
        let (file, query) = match rest.split_once('?') {
            Some((f, q)) => (f, Some(q)),
            None => (rest, None),
        };
        let p = Path::new(file);
        if p.is_absolute() || file.is_empty() || file == ":memory:" {
            return url.to_string();
        }
        let base = self.path.parent().unwrap_or(Path::new("."));
        let joined = base.join(p);
        match query {
            Some(q) => format!("sqlite://{}?{q}", joined.display()),
            None => format!("sqlite://{}", joined.display()),
        }
    }

    /// The sync named `name`.
    pub fn sync(&self, name: &str) -> Option<&super::SyncConfig> {
        self.raw.syncs.iter().find(|s| s.name == name)
    }

    /// The HubSpot app's client secret that signs webhooks: the content of `[webhooks]
    /// secret_file`, or the environment variable `secret_env` names (default
    /// `HUBSPOT_CLIENT_SECRET`), looked up through `env`. Not resolved by [`load`]: only a
    /// running receiver needs it, so commands that receive no webhooks (even those that need
    /// the CRM token) never ask for it.
    pub fn webhook_secret(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SecretString, ConfigError> {
        let hooks = &self.raw.webhooks;
        let var = hooks.secret_env_or_default();
        let source = SecretSource {
            section: "webhooks",
            env_key: "secret_env",
            file_key: "secret_file",
            env_var: hooks.secret_file.is_none().then_some(var.as_str()),
            file: hooks.secret_file.as_deref(),
            noun: "secret",
            what: "the HubSpot app's client secret (the app's Auth settings)",
            example: "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
        };
        self.secret_of(&source, env)
    }

    /// The operator server's bearer token: the content of `[server] token_file`, or the
    /// variable `token_env` names (default `CRMSYNC_SERVER_TOKEN`). `Ok(None)` when neither is
    /// configured and the default variable is unset: the server then serves the loopback only
    /// and offers no actions.
    pub fn server_token(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<SecretString>, ConfigError> {
        let server = &self.raw.server;
        let default = super::raw::default_server_token_env();
        if server.token_env.is_none()
            && server.token_file.is_none()
            && env(&default).is_none_or(|v| v.trim().is_empty())
        {
            return Ok(None);
        }
        let var = server.token_env.clone().unwrap_or(default);
        let source = SecretSource {
            section: "server",
            env_key: "token_env",
            file_key: "token_file",
            env_var: server.token_file.is_none().then_some(var.as_str()),
            file: server.token_file.as_deref(),
            noun: "token",
            what: "the operator token (any long random string, e.g. `openssl rand -hex 32`)",
            example: "3f9c…",
        };
        self.secret_of(&source, env).map(Some)
    }

    /// Where alerts go: `[alerts] url`, or the content of `url_file`, or the variable `url_env`
    /// names; `Ok(None)` when none is set.
    pub fn alert_url(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<SecretString>, ConfigError> {
        let a = &self.raw.alerts;
        if let Some(url) = &a.url {
            return Ok(Some(SecretString::from(url.clone())));
        }
        if a.url_env.is_none() && a.url_file.is_none() {
            return Ok(None);
        }
        self.secret_of(
            &SecretSource {
                section: "alerts",
                env_key: "url_env",
                file_key: "url_file",
                env_var: a.url_env.as_deref(),
                file: a.url_file.as_deref(),
                noun: "URL",
                what: "the alert webhook's URL",
                example: "https://hooks.example.com/…",
            },
            env,
        )
        .map(Some)
    }

    /// The Standard Webhooks secret (`whsec_…`) that signs alerts; `Ok(None)` when none is set.
    pub fn alert_secret(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<SecretString>, ConfigError> {
        let a = &self.raw.alerts;
        if a.secret_env.is_none() && a.secret_file.is_none() {
            return Ok(None);
        }
        self.secret_of(
            &SecretSource {
                section: "alerts",
                env_key: "secret_env",
                file_key: "secret_file",
                env_var: a.secret_env.as_deref(),
                file: a.secret_file.as_deref(),
                noun: "secret",
                what: "the alert webhook's signing secret",
                example: "whsec_…",
            },
            env,
        )
        .map(Some)
    }

    /// Reads a secret of this config's file, its problem located at its key's line.
    fn secret_of(
        &self,
        source: &SecretSource<'_>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SecretString, ConfigError> {
        resolve_secret(source, &self.path, env).map_err(|mut problem| {
            problem.line = std::fs::read_to_string(&self.path)
                .ok()
                .and_then(|text| line_of(&text, &problem.path));
            ConfigError::Invalid {
                path: self.path.clone(),
                problems: vec![problem],
            }
        })
    }
}

/// One thing wrong with a config, located as precisely as the file allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `sync[1].fields.email.validate`.
    pub path: String,
    /// 1-based line in the file, when the key is present in it.
    pub line: Option<usize>,
    /// What is wrong, and how to fix it.
    pub message: String,
}

/// A config that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the config's shape (unknown key, wrong type).
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// The file parsed but has semantic problems; all of them are listed.
    #[error("{}", render_problems(.path, .problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The semantic problems (empty for read and parse errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

fn render_problems(path: &Path, problems: &[Problem]) -> String {
    let mut out = format!(
        "{} has {} problem{}:",
        path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        out.push('\n');
        out.push_str(&p.to_string_in(path));
    }
    out
}

impl Problem {
    fn to_string_in(&self, file: &Path) -> String {
        match self.line {
            Some(line) => format!(
                "  {}:{line}: `{}`: {}",
                file.display(),
                self.path,
                self.message
            ),
            None => format!("  {}: `{}`: {}", file.display(), self.path, self.message),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: `{}`: {}", self.path, self.message),
            None => write!(f, "`{}`: {}", self.path, self.message),
        }
    }
}

/// Whether [`load`] must resolve the CRM token (commands that never call the CRM skip it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    Required,
    NotNeeded,
}

/// Reads, parses and validates the config file at `path`.
pub fn load(path: &Path, secrets: Secrets) -> Result<Config, ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_error)?.len();
    if size > super::redact::MAX_CONFIG_BYTES {
        return Err(ConfigError::Parse {
            path: path.to_path_buf(),
            message: format!(
                "the file is {size} bytes; a config may be at most {} bytes (is this the right file?)",
                super::redact::MAX_CONFIG_BYTES
            ),
        });
    }
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    load_str(&text, path, secrets, &|name| std::env::var(name).ok())
}

/// Parses and validates config `text` as if read from `path`; `env` looks up environment
/// variables (injected so tests do not depend on the process environment).
pub fn load_str(
    text: &str,
    path: &Path,
    secrets: Secrets,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        // Rebuilt from position and message: the parser's own text quotes the line, and a
        // malformed line is where a pasted token is most likely to be.
        message: super::redact::parse_error(text, &e),
    })?;
    let mut problems = validate(&raw);
    let source = resolve_db_url(
        "source",
        raw.source.url.as_deref(),
        raw.source.url_env.as_deref(),
        raw.source.url_file.as_deref(),
        path,
        env,
        &mut problems,
    );
    let state = resolve_db_url(
        "state",
        raw.state.url.as_deref(),
        raw.state.url_env.as_deref(),
        raw.state.url_file.as_deref(),
        path,
        env,
        &mut problems,
    );
    let (mut token, mut oauth, mut salesforce) = (None, None, None);
    match (secrets, raw.crm.kind) {
        (Secrets::NotNeeded, _) => {}
        (Secrets::Required, CrmKind::Hubspot) => match raw.crm.hubspot_auth() {
            HubspotAuth::PrivateApp => token = resolve_token(&raw, path, env, &mut problems),
            HubspotAuth::Oauth => oauth = resolve_hubspot_oauth(&raw, path, env, &mut problems),
        },
        (Secrets::Required, CrmKind::Salesforce) => {
            salesforce = Some(resolve_salesforce(&raw, path, env, &mut problems));
        }
    }
    if !problems.is_empty() {
        for p in &mut problems {
            p.line = line_of(text, &p.path);
        }
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            problems,
        });
    }
    Ok(Config {
        raw,
        path: path.to_path_buf(),
        token,
        oauth,
        salesforce,
        source,
        state,
    })
}

/// The URL of `[section]`: `url` as written, or read from `url_env` / `url_file` (checked for
/// a known scheme there, since validation could not see it). The state database defaults to
/// `sqlite://crmsync-state.db`.
fn resolve_db_url(
    section: &'static str,
    url: Option<&str>,
    url_env: Option<&str>,
    url_file: Option<&str>,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) -> SecretString {
    if let Some(u) = url {
        return SecretString::from(u.to_string());
    }
    if url_env.is_none() && url_file.is_none() {
        return SecretString::from(if section == "state" {
            super::raw::default_state_url()
        } else {
            String::new()
        });
    }
    let source = SecretSource {
        section,
        env_key: "url_env",
        file_key: "url_file",
        env_var: url_env,
        file: url_file,
        noun: "database URL",
        what: "the database URL",
        example: "postgres://user:password@host/db",
    };
    match resolve_secret(&source, path, env) {
        Ok(u) => {
            let schemes = if section == "state" {
                super::validate::STATE_SCHEMES
            } else {
                super::validate::SOURCE_SCHEMES
            };
            if let Err(message) = super::validate::check_db_url(u.expose_secret(), schemes) {
                problems.push(Problem {
                    path: format!(
                        "{section}.{}",
                        if url_env.is_some() {
                            "url_env"
                        } else {
                            "url_file"
                        }
                    ),
                    line: None,
                    message,
                });
            }
            u
        }
        Err(p) => {
            problems.push(p);
            SecretString::from(String::new())
        }
    }
}

fn resolve_token(
    raw: &RawConfig,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) -> Option<SecretString> {
    let crm = &raw.crm;
    if crm.token_env.is_none() && crm.token_file.is_none() {
        problems.push(Problem {
            path: "crm.token_env".into(),
            line: None,
            message: "no access token configured; add `token_env = \"HUBSPOT_ACCESS_TOKEN\"` (the token itself never goes into this file)".to_string(),
        });
        return None;
    }
    let source = SecretSource {
        section: "crm",
        env_key: "token_env",
        file_key: "token_file",
        env_var: crm.token_env.as_deref(),
        file: crm.token_file.as_deref(),
        noun: "token",
        what: "the CRM access token",
        example: "pat-na1-...",
    };
    resolve_secret(&source, path, env)
        .map_err(|p| problems.push(p))
        .ok()
}

/// The secrets of a HubSpot public app (`auth = "oauth"`): both are needed to obtain tokens.
#[derive(Debug, Clone)]
pub struct OAuthSecrets {
    pub client_secret: SecretString,
    pub refresh_token: SecretString,
}

/// Reads a HubSpot public app's secrets; `None` (with the problems pushed) unless both are
/// read. Validation already said which keys are missing.
fn resolve_hubspot_oauth(
    raw: &RawConfig,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) -> Option<OAuthSecrets> {
    let crm = &raw.crm;
    let mut read = |source: SecretSource<'_>| {
        if source.env_var.is_none() && source.file.is_none() {
            return None;
        }
        resolve_secret(&source, path, env)
            .map_err(|p| problems.push(p))
            .ok()
    };
    let client_secret = read(SecretSource {
        section: "crm",
        env_key: "client_secret_env",
        file_key: "client_secret_file",
        env_var: crm.client_secret_env.as_deref(),
        file: crm.client_secret_file.as_deref(),
        noun: "secret",
        what: "the HubSpot app's client secret",
        example: "...",
    });
    let refresh_token = read(SecretSource {
        section: "crm",
        env_key: "refresh_token_env",
        file_key: "refresh_token_file",
        env_var: crm.refresh_token_env.as_deref(),
        file: crm.refresh_token_file.as_deref(),
        noun: "token",
        what: "the refresh token of the HubSpot app's installation",
        example: "na1-...",
    });
    Some(OAuthSecrets {
        client_secret: client_secret?,
        refresh_token: refresh_token?,
    })
}

/// The secrets of a Salesforce connected app, each present when configured.
#[derive(Debug, Clone, Default)]
pub struct SalesforceSecrets {
    pub client_secret: Option<SecretString>,
    pub refresh_token: Option<SecretString>,
    /// The PEM text of the JWT signing key.
    pub private_key: Option<SecretString>,
}

/// Reads the Salesforce secrets the config names (validation said which the flow needs).
fn resolve_salesforce(
    raw: &RawConfig,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) -> SalesforceSecrets {
    let crm = &raw.crm;
    let mut read =
        |env_key, file_key, env_var: Option<&str>, file: Option<&str>, noun, what, example| {
            if env_var.is_none() && file.is_none() {
                return None;
            }
            let source = SecretSource {
                section: "crm",
                env_key,
                file_key,
                env_var,
                file,
                noun,
                what,
                example,
            };
            resolve_secret(&source, path, env)
                .map_err(|p| problems.push(p))
                .ok()
        };
    SalesforceSecrets {
        client_secret: read(
            "client_secret_env",
            "client_secret_file",
            crm.client_secret_env.as_deref(),
            crm.client_secret_file.as_deref(),
            "secret",
            "the connected app's consumer secret",
            "...",
        ),
        refresh_token: read(
            "refresh_token_env",
            "refresh_token_file",
            crm.refresh_token_env.as_deref(),
            crm.refresh_token_file.as_deref(),
            "token",
            "the OAuth refresh token",
            "5Aep861...",
        ),
        private_key: read(
            "private_key_file",
            "private_key_file",
            None,
            crm.private_key_file.as_deref(),
            "key",
            "the connected app's private key",
            "",
        ),
    }
}

/// Where a secret is configured: `<section>.<env_key>` names an environment variable,
/// `<section>.<file_key>` a file (relative to the config file). Set exactly one of them.
struct SecretSource<'a> {
    section: &'static str,
    env_key: &'static str,
    file_key: &'static str,
    env_var: Option<&'a str>,
    file: Option<&'a str>,
    /// "token", "secret": what the file holds, for messages.
    noun: &'static str,
    /// What to export, for messages.
    what: &'static str,
    /// A recognisable shape of the value, for messages.
    example: &'static str,
}

/// Reads the secret `source` points at, trimmed; a problem at its dotted key otherwise.
fn resolve_secret(
    source: &SecretSource<'_>,
    config_path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SecretString, Problem> {
    let problem = |key: &str, message: String| Problem {
        path: format!("{}.{key}", source.section),
        line: None,
        message,
    };
    let noun = source.noun;
    match (source.env_var, source.file) {
        (Some(var), None) => match env(var) {
            Some(v) if !v.trim().is_empty() => Ok(SecretString::from(v.trim().to_string())),
            _ => Err(problem(
                source.env_key,
                format!(
                    "environment variable {var} is not set (or empty); export it with {}, e.g. `export {var}={}`",
                    source.what, source.example
                ),
            )),
        },
        (None, Some(file)) => {
            let p = Path::new(file);
            let p = if p.is_absolute() {
                p.to_path_buf()
            } else {
                config_path.parent().unwrap_or(Path::new(".")).join(p)
            };
            match std::fs::read_to_string(&p) {
                Ok(v) if !v.trim().is_empty() => Ok(SecretString::from(v.trim().to_string())),
                Ok(_) => Err(problem(
                    source.file_key,
                    format!("{noun} file {} is empty", p.display()),
                )),
                Err(e) => Err(problem(
                    source.file_key,
                    format!("cannot read {noun} file {}: {e}", p.display()),
                )),
            }
        }
        (Some(_), Some(_)) => Err(problem(
            source.file_key,
            format!(
                "set either `{}` or `{}`, not both",
                source.env_key, source.file_key
            ),
        )),
        (None, None) => Err(problem(
            source.env_key,
            format!("no {noun} configured; set `{}`", source.env_key),
        )),
    }
}
