//! Which rows of a sync's table to look at in this pass. Triggers or an `updated_at` cursor
//! narrow it to what changed since the last pass; the first pass (and `capture = "scan"`)
//! reads everything. Records waiting in quarantine as *held* are always looked at again,
//! because what they wait for (a parent, a confirmation) may have arrived without their row
//! changing. The new cursor is returned, to be stored only after the changes are queued.

use crmsync_core::config::{Capture, SyncConfig};
use crmsync_store::source::sqlite::SourceRow;
use crmsync_store::{QuarantineKind, SqliteSource, Store, StoreError};
use std::collections::BTreeSet;

/// Rows to plan, and the cursor to store once they are queued.
#[derive(Debug)]
pub struct Captured {
    pub rows: Vec<SourceRow>,
    /// Keys that were reported changed but no longer exist (deleted rows).
    pub vanished: Vec<String>,
    pub cursor: Option<(&'static str, String)>,
    /// True when the whole table was read.
    pub full: bool,
}

/// The columns a sync reads: mapped fields, confirmation columns, association columns.
pub fn columns(sync: &SyncConfig) -> Vec<&str> {
    let mut cols: BTreeSet<&str> = sync.fields.keys().map(String::as_str).collect();
    cols.extend(
        sync.fields
            .values()
            .filter_map(|f| f.confirmed_by.as_deref()),
    );
    cols.extend(sync.associate.keys().map(String::as_str));
    cols.into_iter().collect()
}

/// Reads what `sync` must look at in this pass.
pub async fn capture<S: Store>(
    source: &SqliteSource,
    store: &S,
    sync: &SyncConfig,
) -> Result<Captured, StoreError> {
    let cols = columns(sync);
    let table = sync.table.as_str();
    let key = sync.key.as_str();
    let held: Vec<String> = store
        .quarantined(&sync.name)
        .await?
        .into_iter()
        .filter(|q| q.kind == QuarantineKind::Held)
        .map(|q| q.local_id)
        .collect();
    let mode = match sync.capture {
        Capture::Trigger if !source.triggers_installed(table).await? => {
            tracing::warn!(sync = %sync.name, table, "no change-capture triggers on the table; reading it whole (run `crmsync install` to capture changes)");
            Capture::Scan
        }
        m => m,
    };
    match mode {
        Capture::Scan => Ok(Captured {
            rows: source.scan(table, key, &cols).await?,
            vanished: vec![],
            cursor: None,
            full: true,
        }),
        Capture::Trigger => {
            let cursor = store
                .cursor(&sync.name, "trigger")
                .await?
                .and_then(|c| c.parse::<i64>().ok());
            match cursor {
                None => {
                    // Remember the log position *before* reading, so changes made during the
                    // scan are read again next time rather than missed.
                    let seq = source.change_seq().await?;
                    let rows = source.scan(table, key, &cols).await?;
                    Ok(Captured {
                        rows,
                        vanished: vec![],
                        cursor: Some(("trigger", seq.to_string())),
                        full: true,
                    })
                }
                Some(after) => {
                    let (mut keys, max) = source.changed_keys(table, after).await?;
                    let changed: BTreeSet<String> = keys.iter().cloned().collect();
                    keys.extend(held.into_iter().filter(|h| !changed.contains(h)));
                    let rows = source.fetch(table, key, &cols, &keys).await?;
                    let found: BTreeSet<&str> = rows.iter().map(|r| r.key.as_str()).collect();
                    let vanished = changed
                        .iter()
                        .filter(|k| !found.contains(k.as_str()))
                        .cloned()
                        .collect();
                    Ok(Captured {
                        rows,
                        vanished,
                        cursor: Some(("trigger", max.to_string())),
                        full: false,
                    })
                }
            }
        }
        Capture::UpdatedAt => {
            let ts = sync.updated_at_column.as_deref().unwrap_or("updated_at");
            let since = store.cursor(&sync.name, "updated_at").await?;
            let full = since.is_none();
            let (mut rows, max) = source
                .updated_since(table, key, &cols, ts, since.as_deref())
                .await?;
            let seen: BTreeSet<String> = rows.iter().map(|r| r.key.clone()).collect();
            let extra: Vec<String> = held.into_iter().filter(|h| !seen.contains(h)).collect();
            if !extra.is_empty() {
                rows.extend(source.fetch(table, key, &cols, &extra).await?);
            }
            let cursor = max.or(since).map(|m| ("updated_at", m));
            Ok(Captured {
                rows,
                vanished: vec![],
                cursor,
                full,
            })
        }
    }
}
