//! Exit codes, in one place.

use crmsync_core::config::ConfigError;

/// Finished, but some records failed (invalid, rejected, or out of retries); or a runtime failure.
pub const FAILURE: u8 = 1;
/// The config or the command line is wrong, or the environment guard refused.
pub const USAGE: u8 = 2;

/// The exit code for an error that ended the command.
pub fn code_for(e: &anyhow::Error) -> u8 {
    use crmsync_engine::environment::EnvironmentError;
    let refused = |c: &(dyn std::error::Error + 'static)| {
        c.downcast_ref::<EnvironmentError>().is_some_and(|e| {
            matches!(
                e,
                EnvironmentError::ProductionAccount { .. }
                    | EnvironmentError::AccountMismatch { .. }
                    | EnvironmentError::DatabaseMismatch { .. }
            )
        })
    };
    if e.chain()
        .any(|c| c.is::<ConfigError>() || c.is::<UsageError>() || refused(c))
    {
        USAGE
    } else {
        FAILURE
    }
}

/// A problem with what the user asked for that is not in the config file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);
