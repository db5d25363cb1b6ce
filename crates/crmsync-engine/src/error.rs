//! Errors that stop a run (as opposed to record failures, which are counted and quarantined).

use crmsync_crm::CrmError;
use crmsync_store::StoreError;

/// A run could not continue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The state or source database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The CRM refused the whole connection (auth, schema) so no record can be sent.
    #[error(transparent)]
    Crm(#[from] CrmError),
    /// The config names something the engine cannot find (e.g. an unknown object).
    #[error("{0}")]
    Config(String),
    /// A person's request that cannot be done as asked (no such open conflict, say).
    #[error("{0}")]
    Refused(String),
}
