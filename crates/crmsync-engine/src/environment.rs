//! The environment guard: which app database and which CRM account a state database belongs
//! to, and whether this config may write there. Invariants: a state database, once bound to
//! an app database and a CRM account, is never used with another (its links would point into
//! the wrong account); a `sandbox` or `staging` config never writes into an account that
//! reports itself as production unless `[crm] allow_production_account = true`. Both are
//! decided before the first write call: the guard itself only reads (one account call).

use crmsync_core::config::{Config, Environment};
use crmsync_crm::{Account, Crm, CrmError};
use crmsync_store::{Coordination, StoreError};
use std::path::Path;

/// The binding key of the app database's identity.
pub const APP_DATABASE: &str = "app_database";
/// The binding key of the CRM account's identity.
pub const CRM_ACCOUNT: &str = "crm_account";

/// What the guard found: this config's side, and what the state was bound to before.
#[derive(Debug, Clone)]
pub struct Binding {
    pub environment: Environment,
    /// The app database as this config names it ([`app_database_identity`]).
    pub app_database: String,
    /// The CRM account the credentials belong to; `None` when the CRM cannot say.
    pub account: Option<Account>,
    pub bound_app_database: Option<String>,
    pub bound_account: Option<String>,
}

impl Binding {
    /// Whether the account counts as production (an account the CRM cannot describe does:
    /// when in doubt, guard).
    pub fn production_account(&self) -> bool {
        self.account.as_ref().is_none_or(|a| a.production)
    }

    fn account_text(&self) -> String {
        self.account.as_ref().map_or_else(
            || "a CRM account that does not say what it is".into(),
            |a| a.to_string(),
        )
    }
}

/// Why the guard refused.
#[derive(Debug, thiserror::Error)]
pub enum EnvironmentError {
    #[error(
        "refusing to write: this config is `environment = \"{}\"`, but the CRM credentials belong to {}. Test data must not reach a production account: point the config at a test portal or sandbox org, or set `environment = \"production\"` if this really is production (or `[crm] allow_production_account = true` to write into it from {} on purpose)",
        environment.as_str(), account, environment.as_str()
    )]
    ProductionAccount {
        environment: Environment,
        account: String,
    },
    #[error(
        "refusing to start: this state database belongs to CRM account {bound}, but the credentials now belong to {now}. Its links point into {bound}; use a new state database for the other account (`[state] url`), or restore the credentials of {bound}"
    )]
    AccountMismatch { bound: String, now: String },
    #[error(
        "refusing to start: this state database belongs to app database {bound}, but the config now names {now}. Its links and cursors describe {bound}; use a new state database for the other one (`[state] url`), or point `[source]` back"
    )]
    DatabaseMismatch { bound: String, now: String },
    #[error("cannot tell which CRM account the credentials belong to: {0}")]
    Crm(#[from] CrmError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The identity of the app database a URL names, without credentials: scheme, host, port,
/// database and (PostgreSQL) the schema of `options=-c search_path=…`; for SQLite the file's
/// absolute path. Query parameters that do not change which data is read (TLS, timeouts) are
/// left out, so adding one does not look like another database.
pub fn app_database_identity(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
    if scheme == "sqlite" {
        let path = Path::new(location);
        let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        return format!("sqlite://{}", absolute.display());
    }
    // Credentials end at the last `@` before the path.
    let (authority, path) = location.split_once('/').unwrap_or((location, ""));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let mut identity = format!("{scheme}://{host}/{path}");
    if let Some(schema) = search_path(query) {
        identity.push_str(&format!(" (schema {schema})"));
    }
    identity
}

/// The `search_path` an `options` parameter sets, percent-decoded.
fn search_path(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        if key != "options" {
            return None;
        }
        let decoded = percent_decode(value);
        decoded
            .split("search_path")
            .nth(1)
            .map(|v| v.trim_start_matches([' ', '=']).trim().to_string())
            .filter(|v| !v.is_empty())
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads both sides without binding anything (`crmsync env`).
pub async fn inspect<C: Crm, S: Coordination>(
    config: &Config,
    crm: &C,
    state: &S,
) -> Result<Binding, EnvironmentError> {
    Ok(Binding {
        // Validation refuses a config without one; the fallback is the guarded reading.
        environment: config.raw.crm.environment.unwrap_or(Environment::Sandbox),
        app_database: app_database_identity(&config.source_url()),
        account: crm.account().await?,
        bound_app_database: state.binding(APP_DATABASE).await?,
        bound_account: state.binding(CRM_ACCOUNT).await?,
    })
}

/// Whether `binding` may write, as [`guard`] decides it (pure).
pub fn verdict(config: &Config, binding: &Binding) -> Result<(), EnvironmentError> {
    if binding.environment != Environment::Production
        && binding.production_account()
        && !config.raw.crm.allow_production_account
    {
        return Err(EnvironmentError::ProductionAccount {
            environment: binding.environment,
            account: binding.account_text(),
        });
    }
    if let Some(bound) = &binding.bound_app_database
        && *bound != binding.app_database
    {
        return Err(EnvironmentError::DatabaseMismatch {
            bound: bound.clone(),
            now: binding.app_database.clone(),
        });
    }
    if let (Some(bound), Some(account)) = (&binding.bound_account, &binding.account)
        && *bound != account.id
    {
        return Err(EnvironmentError::AccountMismatch {
            bound: bound.clone(),
            now: account.to_string(),
        });
    }
    Ok(())
}

/// The guard every command that may write runs first: refuses a production account for a
/// non-production config and a state bound elsewhere, then binds an unbound state to this
/// app database and account. Two workers binding at once agree (the first bind wins, the
/// second compares against it).
pub async fn guard<C: Crm, S: Coordination>(
    config: &Config,
    crm: &C,
    state: &S,
) -> Result<Binding, EnvironmentError> {
    let mut binding = inspect(config, crm, state).await?;
    verdict(config, &binding)?;
    if binding.bound_app_database.is_none() {
        binding.bound_app_database = state.bind(APP_DATABASE, &binding.app_database).await?;
    }
    if binding.bound_account.is_none()
        && let Some(account) = &binding.account
    {
        binding.bound_account = state.bind(CRM_ACCOUNT, &account.id).await?;
    }
    // A worker that lost the race to bind checks against the winner's values.
    verdict(config, &binding)?;
    binding
        .bound_app_database
        .get_or_insert(binding.app_database.clone());
    if let Some(account) = &binding.account {
        binding.bound_account.get_or_insert(account.id.clone());
    }
    Ok(binding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_leaves_credentials_and_connection_settings_out() {
        assert_eq!(
            app_database_identity("postgres://app:s3cret@db.internal:5432/shop?sslmode=require"),
            "postgres://db.internal:5432/shop"
        );
        assert_eq!(
            app_database_identity(
                "postgres://postgres@127.0.0.1:5432/test?options=-c%20search_path%3Dtenant_a"
            ),
            "postgres://127.0.0.1:5432/test (schema tenant_a)"
        );
        assert_eq!(
            app_database_identity("mysql://root@127.0.0.1:3306/orders"),
            "mysql://127.0.0.1:3306/orders"
        );
        assert!(!app_database_identity("mysql://u:p%40ss@h/db").contains("p%40ss"));
    }
}
