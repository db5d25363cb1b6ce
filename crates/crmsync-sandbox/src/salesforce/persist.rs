//! The org in a JSON file (`SalesforceConfig::state_file`): loaded at start, written after
//! every successful change. Invariant: the file is replaced atomically (write to a temporary
//! file, then rename), so a crash leaves either the old or the new org, never half of one.

use std::io;
use std::path::Path;

use super::org::Org;
use super::state::SfState;

/// The saved org, or `None` when the file does not exist.
pub(crate) fn load(path: &Path) -> io::Result<Option<Org>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    serde_json::from_str::<Org>(&text)
        .map(|mut org| {
            org.reindex();
            Some(org)
        })
        .map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is not a Salesforce sandbox state file: {e}",
                    path.display()
                ),
            )
        })
}

fn save(state: &SfState, path: &Path) -> io::Result<()> {
    let _order = state.save_lock();
    let text = serde_json::to_string(&*state.org()).map_err(io::Error::other)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Saves the org when a state file is configured; failures are logged, not answered.
pub(crate) fn save_if_configured(state: &SfState) {
    if let Some(path) = &state.config().state_file
        && let Err(error) = save(state, path)
    {
        tracing::warn!(%error, path = %path.display(), "salesforce sandbox state not saved");
    }
}
