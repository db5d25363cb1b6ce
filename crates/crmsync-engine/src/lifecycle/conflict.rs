//! Settling a parked conflict (a two-way field changed on both sides, `conflict = "review"`)
//! with one side's value, for `crmsync resolve` and the dashboard alike. Taking the CRM's value
//! writes it into the app row; taking the app's makes the CRM's value the agreed base, so the
//! next push sends the app's. Either way the record flows again once none of its conflicts is
//! open.
//!
//! Invariant: the conflict is marked resolved only after the app row and the base are written,
//! so a failure leaves it open (and settling it again is harmless).

use crate::error::EngineError;
use crate::inbound::decide::column_of;
use crmsync_core::config::Config;
use crmsync_core::mapping::map_value_back;
use crmsync_store::{Conflict, Lifecycle, PullRecord, Records, RowWrite, Source};

/// Which side's value settles a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    App,
    Crm,
}

impl Take {
    pub fn as_str(self) -> &'static str {
        match self {
            Take::App => "app",
            Take::Crm => "crm",
        }
    }
}

/// Settles open conflict `id` with `take`'s value; returns the conflict as it was.
/// [`EngineError::Refused`] when no such conflict is open or the config no longer maps it.
pub async fn resolve_conflict<S: Lifecycle + Records, A: Source>(
    config: &Config,
    store: &S,
    source: &A,
    id: i64,
    take: Take,
) -> Result<Conflict, EngineError> {
    let Some(c) = store
        .open_conflicts(None)
        .await?
        .into_iter()
        .find(|c| c.id == id)
    else {
        return Err(EngineError::Refused(format!(
            "no open conflict {id}; `crmsync conflicts` lists them"
        )));
    };
    let sync = config.sync(&c.sync).ok_or_else(|| {
        EngineError::Refused(format!(
            "conflict {} belongs to sync `{}`, which the config no longer has",
            c.id, c.sync
        ))
    })?;
    let base = match take {
        // The CRM's value becomes the base: it has been seen, and the app's value is the newer
        // change, which the next push sends (and the read before writing lets through).
        Take::App => c.crm_value.clone(),
        Take::Crm => {
            let (key, field) = sync
                .fields
                .iter()
                .find(|(_, f)| f.crm == c.field)
                .ok_or_else(|| {
                    EngineError::Refused(format!(
                        "sync `{}` no longer maps the CRM property `{}`",
                        c.sync, c.field
                    ))
                })?;
            let app = map_value_back(field, &c.crm_value).map_err(EngineError::Refused)?;
            source
                .write(
                    &sync.table,
                    &sync.key,
                    &[RowWrite {
                        key: c.local_id.clone(),
                        set: vec![(
                            column_of(key, field).to_string(),
                            (!app.is_empty()).then_some(app),
                        )],
                        expect: vec![],
                    }],
                )
                .await?;
            c.crm_value.clone()
        }
    };
    store
        .record_pulls(
            &c.sync,
            &[PullRecord {
                local_id: c.local_id.clone(),
                pushed_hash: None,
                pulled_hash: None,
                bases: vec![(c.field.clone(), base)],
            }],
        )
        .await?;
    store.resolve_conflict(c.id, take.as_str()).await?;
    Ok(c)
}
