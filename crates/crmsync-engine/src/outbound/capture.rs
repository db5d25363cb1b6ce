//! Capture: which rows of a sync's table to look at, read a page at a time so memory stays flat
//! however large the table. The change log (`capture = "trigger"`, read through the source's
//! commit-safe cursor) or an `updated_at` cursor narrow it to what changed; the first pass (and
//! `capture = "scan"`) reads everything. Records held in quarantine (except those waiting for a
//! parent not linked yet) and those `crmsync retry` or a settled parent asked for are looked at
//! again too, because what they wait for may have arrived without their row changing.
//!
//! Invariant: a page's cursor is handed out with the page whose rows it covers, and the caller
//! stores it in the same transaction that queues them ([`super::commit`]); a full scan's or an
//! `updated_at` pass's cursor comes with its last page. Nothing is ever skipped: a crash re-reads
//! from the last stored cursor, and re-reading is free (unchanged hashes send nothing).

use crmsync_core::config::{Capture as Mode, SyncConfig};
use crmsync_store::{
    Capture, CursorDirection, Records, Source, SourceRow, StoreError, UpdatedPage,
};
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
        /// The change-log position taken before the scan (trigger mode's first pass).
        start: Option<String>,
    },
    Log {
        cursor: Option<String>,
        done: bool,
    },
    Updated {
        ts: String,
        since: Option<String>,
        after: Option<(String, String)>,
        frontier: Option<String>,
        done: bool,
    },
}

/// One page of a capture.
#[derive(Debug, Default)]
pub struct Page {
    pub rows: Vec<SourceRow>,
    /// `(mechanism, value)` to store with this page, when it completes a cursor step.
    pub cursor: Option<(String, String)>,
}

/// A pass's reading of one sync's table, page by page.
pub struct Captured<'a, A> {
    sync: &'a SyncConfig,
    app: &'a A,
    cols: Vec<&'a str>,
    main: Main,
    /// Keys to look at again that the main reading has not met yet.
    recheck: BTreeSet<String>,
    recheck_done: bool,
    /// True when the whole table is read (a backfill).
    pub full: bool,
    /// Keys reported changed that no longer exist (deleted rows).
    pub vanished: Vec<String>,
}

/// Starts reading what `sync` must look at in this pass. With `replan` (its mapping changed,
/// or `crmsync resync`), the whole table is read as in a first pass; a trigger cursor then
/// resumes from where it was, so the log's deletions meanwhile are still seen.
pub async fn capture<'a, A: Source + Capture, S: Records>(
    app: &'a A,
    state: &S,
    sync: &'a SyncConfig,
    replan: bool,
) -> Result<Captured<'a, A>, StoreError> {
    let mut cols = columns(sync);
    let table = sync.table.as_str();
    let recheck: BTreeSet<String> = state.recheck_keys(&sync.name).await?.into_iter().collect();
    let mode = match sync.capture {
        Mode::Trigger if !app.capture_installed(table).await? => {
            tracing::warn!(sync = %sync.name, table, "no change-capture triggers on the table; reading it whole (run `crmsync install` to capture changes)");
            Mode::Scan
        }
        m => m,
    };
    let (main, full) = match mode {
        Mode::Scan => (
            Main::Scan {
                after: None,
                done: false,
                start: None,
            },
            true,
        ),
        Mode::Trigger => match state
            .cursor(&sync.name, CursorDirection::Push, "trigger")
            .await?
        {
            None => {
                // The log position *before* reading: changes made during the scan are read
                // again next time rather than missed.
                let start = app.change_position().await?;
                (
                    Main::Scan {
                        after: None,
                        done: false,
                        start: Some(start),
                    },
                    true,
                )
            }
            Some(cursor) if replan => (
                Main::Scan {
                    after: None,
                    done: false,
                    start: Some(cursor),
                },
                true,
            ),
            Some(cursor) => (
                Main::Log {
                    cursor: Some(cursor),
                    done: false,
                },
                false,
            ),
        },
        Mode::UpdatedAt => {
            let ts = sync
                .updated_at_column
                .clone()
                .unwrap_or_else(|| "updated_at".into());
            let since = match state
                .cursor(&sync.name, CursorDirection::Push, "updated_at")
                .await?
            {
                _ if replan => None,
                c => c,
            };
            let full = since.is_none();
            // The next cursor: the newest timestamp now, held back by any transaction still
            // writing (its rows may commit with older timestamps); the `>=` re-read of the
            // boundary makes rows sharing it free to see again.
            let frontier = app.updated_frontier(table, &ts).await?.or(since.clone());
            (
                Main::Updated {
                    ts,
                    since,
                    after: None,
                    frontier,
                    done: false,
                },
                full,
            )
        }
    };
    if let Main::Updated { ts, .. } = &main {
        let ts_col: &str = sync.updated_at_column.as_deref().unwrap_or("updated_at");
        if !cols.contains(&ts_col) {
            cols.push(ts_col);
        }
        let _ = ts;
    }
    Ok(Captured {
        sync,
        app,
        cols,
        main,
        recheck,
        recheck_done: false,
        full,
        vanished: vec![],
    })
}

impl<A: Source + Capture> Captured<'_, A> {
    /// The next page, or `None` when everything was read.
    pub async fn next_page(&mut self) -> Result<Option<Page>, StoreError> {
        let (table, key) = (self.sync.table.as_str(), self.sync.key.as_str());
        let page = match &mut self.main {
            Main::Scan { after, done, start } if !*done => {
                let rows = self
                    .app
                    .scan_page(table, key, &self.cols, after.as_deref(), PAGE)
                    .await?;
                *done = rows.len() < PAGE;
                *after = rows.last().map(|r| r.key.clone());
                let cursor = if *done {
                    start.take().map(|s| ("trigger".to_string(), s))
                } else {
                    None
                };
                Some(Page { rows, cursor })
            }
            Main::Log { cursor, done } if !*done => {
                let changes = self
                    .app
                    .changes_since(table, cursor.as_deref(), PAGE)
                    .await?;
                *done = !changes.more;
                let rows = self
                    .app
                    .fetch(table, key, &self.cols, &changes.keys)
                    .await?;
                let found: HashSet<&str> = rows.iter().map(|r| r.key.as_str()).collect();
                self.vanished.extend(
                    changes
                        .keys
                        .iter()
                        .filter(|k| !found.contains(k.as_str()))
                        .cloned(),
                );
                let moved = cursor.as_deref() != Some(changes.cursor.as_str());
                *cursor = Some(changes.cursor.clone());
                Some(Page {
                    rows,
                    cursor: moved.then(|| ("trigger".to_string(), changes.cursor)),
                })
            }
            Main::Updated {
                ts,
                since,
                after,
                frontier,
                done,
            } if !*done => {
                let page_after = after.as_ref().map(|(t, k)| (t.as_str(), k.as_str()));
                let rows = self
                    .app
                    .updated_page(&UpdatedPage {
                        table,
                        key,
                        columns: &self.cols,
                        ts_column: ts,
                        since: since.as_deref(),
                        after: page_after,
                        limit: PAGE,
                    })
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
                let cursor = if *done {
                    frontier.take().map(|f| ("updated_at".to_string(), f))
                } else {
                    None
                };
                Some(Page { rows, cursor })
            }
            _ => None,
        };
        if let Some(page) = page {
            for r in &page.rows {
                self.recheck.remove(&r.key);
            }
            return Ok(Some(page));
        }
        if !self.recheck_done {
            self.recheck_done = true;
            let keys: Vec<String> = std::mem::take(&mut self.recheck).into_iter().collect();
            if !keys.is_empty() {
                let rows = self.app.fetch(table, key, &self.cols, &keys).await?;
                return Ok(Some(Page { rows, cursor: None }));
            }
        }
        Ok(None)
    }
}
