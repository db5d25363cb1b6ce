//! Which database a URL names. The one place that reads URL schemes, so every command accepts
//! the same spellings and refuses the same way.

use crate::error::StoreError;
use std::fmt;

/// A database kind crmsync can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// `sqlite://path` or `sqlite::memory:`: app or state database, one worker.
    Sqlite,
    /// `postgres://` or `postgresql://`: app or state database, any number of workers.
    Postgres,
    /// `mysql://` or `mariadb://`: app database.
    Mysql,
    /// `memory:`: a state kept in the process (tests).
    Memory,
}

impl Backend {
    /// The backend of `url`, or an error listing what is accepted.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            "mysql" | "mariadb" => Ok(Backend::Mysql),
            "memory" => Ok(Backend::Memory),
            _ => Err(StoreError::Unsupported(format!(
                "unknown database URL scheme `{scheme}:` (use sqlite://FILE, postgres://HOST/DB or mysql://HOST/DB)"
            ))),
        }
    }

    /// The lower-case name used in messages and config (`sqlite`, `postgres`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::Mysql => "mysql",
            Backend::Memory => "memory",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `url` with any password replaced by `***`, for messages (a URL may carry credentials).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}{tail}")
            } else {
                format!("{scheme}://{user}@{host}{tail}")
            }
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_name_their_backend() {
        assert_eq!(
            Backend::from_url("sqlite://a.db").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::from_url("sqlite::memory:").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::from_url("postgresql://h/db").ok(),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::from_url("mariadb://h/db").ok(),
            Some(Backend::Mysql)
        );
        assert!(Backend::from_url("oracle://h").is_err());
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db:5432/shop"),
            "postgres://app:***@db:5432/shop"
        );
        assert_eq!(
            redact_url("postgres://app@db/shop"),
            "postgres://app@db/shop"
        );
        assert_eq!(redact_url("sqlite://a.db"), "sqlite://a.db");
    }
}
