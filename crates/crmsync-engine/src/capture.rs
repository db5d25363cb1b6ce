//! Which rows of a sync's table to look at in this pass, read a page at a time so memory stays
//! flat however large the table. Triggers or an `updated_at` cursor narrow it to what changed
//! since the last pass; the first pass (and `capture = "scan"`) reads everything. Records waiting
//! in quarantine as *held* are always looked at again, because what they wait for (a parent, a
//! confirmation) may have arrived without their row changing; so are records `crmsync retry`
//! asked for. The new cursor is known up front and stored by the caller only after every page
//! was queued.

use crmsync_core::config::{Capture, SyncConfig};
use crmsync_store::source::sqlite::SourceRow;
use crmsync_store::{SqliteSource, Store, StoreError};
use std::collections::{BTreeSet, HashSet};

/// Rows per page.
pub const PAGE: usize = 1000;

/// The columns a sync reads: field sources (a column, `concat`, `template`), confirmation
/// columns, association columns.
pub fn columns(sync: &SyncConfig) -> Vec<&str> {
    crmsync_core::mapping::referenced_columns(sync)
}

enum Main {
    Scan {
        after: Option<String>,
        done: bool,
    },
    Keys {
        keys: Vec<String>,
        pos: usize,
    },
    Updated {
        ts: String,
        since: Option<String>,
        after: Option<(String, String)>,
        done: bool,
    },
}

/// A pass's reading of one sync's table, page by page.
pub struct Captured<'a> {
    sync: &'a SyncConfig,
    source: &'a SqliteSource,
    cols: Vec<&'a str>,
    main: Main,
    /// Keys to re-check that the main reading has not met yet.
    recheck: BTreeSet<String>,
    recheck_done: bool,
    /// The cursor to store once everything read was queued.
    pub cursor: Option<(&'static str, String)>,
    /// True when the whole table is read (a backfill).
    pub full: bool,
    /// Keys reported changed that no longer exist (deleted rows).
    pub vanished: Vec<String>,
}

/// Starts reading what `sync` must look at in this pass.
pub async fn capture<'a, S: Store>(
    source: &'a SqliteSource,
    store: &S,
    sync: &'a SyncConfig,
) -> Result<Captured<'a>, StoreError> {
    let mut cols = columns(sync);
    let table = sync.table.as_str();
    let recheck: BTreeSet<String> = store.recheck_keys(&sync.name).await?.into_iter().collect();
    let mode = match sync.capture {
        Capture::Trigger if !source.triggers_installed(table).await? => {
            tracing::warn!(sync = %sync.name, table, "no change-capture triggers on the table; reading it whole (run `crmsync install` to capture changes)");
            Capture::Scan
        }
        m => m,
    };
    let (main, cursor, full) = match mode {
        Capture::Scan => (
            Main::Scan {
                after: None,
                done: false,
            },
            None,
            true,
        ),
        Capture::Trigger => match store
            .cursor(&sync.name, "trigger")
            .await?
            .and_then(|c| c.parse::<i64>().ok())
        {
            None => {
                // The log position *before* reading: changes made during the scan are read
                // again next time rather than missed.
                let seq = source.change_seq().await?;
                (
                    Main::Scan {
                        after: None,
                        done: false,
                    },
                    Some(("trigger", seq.to_string())),
                    true,
                )
            }
            Some(after) => {
                let (keys, max) = source.changed_keys(table, after).await?;
                (
                    Main::Keys { keys, pos: 0 },
                    Some(("trigger", max.to_string())),
                    false,
                )
            }
        },
        Capture::UpdatedAt => {
            let ts = sync
                .updated_at_column
                .clone()
                .unwrap_or_else(|| "updated_at".into());
            let since = store.cursor(&sync.name, "updated_at").await?;
            let full = since.is_none();
            // The new cursor is the newest timestamp now; rows written later with an older
            // timestamp are caught by the `>=` overlap only if they share it, which is why
            // reconciliation exists (see docs/decisions.md).
            let max = source.max_text(table, &ts).await?;
            let cursor = max.or(since.clone()).map(|m| ("updated_at", m));
            (
                Main::Updated {
                    ts,
                    since,
                    after: None,
                    done: false,
                },
                cursor,
                full,
            )
        }
    };
    if matches!(main, Main::Updated { .. }) {
        let ts_col: &str = sync.updated_at_column.as_deref().unwrap_or("updated_at");
        if !cols.contains(&ts_col) {
            cols.push(ts_col);
        }
    }
    Ok(Captured {
        sync,
        source,
        cols,
        main,
        recheck,
        recheck_done: false,
        cursor,
        full,
        vanished: vec![],
    })
}

impl Captured<'_> {
    /// The next page of rows, or `None` when everything was read.
    pub async fn next_page(&mut self) -> Result<Option<Vec<SourceRow>>, StoreError> {
        let (table, key) = (self.sync.table.as_str(), self.sync.key.as_str());
        let rows = match &mut self.main {
            Main::Scan { after, done } if !*done => {
                let rows = self
                    .source
                    .scan_page(table, key, &self.cols, after.as_deref(), PAGE)
                    .await?;
                *done = rows.len() < PAGE;
                *after = rows.last().map(|r| r.key.clone());
                Some(rows)
            }
            Main::Keys { keys, pos } if *pos < keys.len() => {
                let end = (*pos + PAGE).min(keys.len());
                let wanted = &keys[*pos..end];
                let rows = self.source.fetch(table, key, &self.cols, wanted).await?;
                let found: HashSet<&str> = rows.iter().map(|r| r.key.as_str()).collect();
                self.vanished.extend(
                    wanted
                        .iter()
                        .filter(|k| !found.contains(k.as_str()))
                        .cloned(),
                );
                *pos = end;
                Some(rows)
            }
            Main::Updated {
                ts,
                since,
                after,
                done,
            } if !*done => {
                let page_after = after.as_ref().map(|(t, k)| (t.as_str(), k.as_str()));
                let rows = self
                    .source
                    .updated_page(
                        table,
                        key,
                        &self.cols,
                        ts,
                        since.as_deref(),
                        page_after,
                        PAGE,
                    )
                    .await?;
                *done = rows.len() < PAGE;
                if let Some(last) = rows.last() {
                    let t = last
                        .values
                        .get(ts.as_str())
                        .cloned()
                        .flatten()
                        .unwrap_or_default();
                    *after = Some((t, last.key.clone()));
                }
                Some(rows)
            }
            _ => None,
        };
        if let Some(rows) = rows {
            for r in &rows {
                self.recheck.remove(&r.key);
            }
            return Ok(Some(rows));
        }
        if !self.recheck_done {
            self.recheck_done = true;
            let keys: Vec<String> = std::mem::take(&mut self.recheck).into_iter().collect();
            if !keys.is_empty() {
                return Ok(Some(
                    self.source.fetch(table, key, &self.cols, &keys).await?,
                ));
            }
        }
        Ok(None)
    }
}
