//! One poll pass: for every sync with two-way fields, ask the CRM for the records modified since
//! the sync's pull cursor, apply them page by page ([`crate::apply`]), and move the cursor only
//! after a page is durably applied. A poll interrupted anywhere re-reads from the last stored
//! position: nothing is lost, and re-reading is free (agreeing values write nothing).
//!
//! The cursor is `"<ms>:<crm id>"`, the last applied record's modification time and id. Each
//! pass starts [`OVERLAP_MS`] before it, since a record can show up in the CRM's search later
//! than its modification time says (HubSpot's search index lags, FACTS 2.3).

use crate::apply::{PullReport, pulled_fields};
use crate::error::EngineError;
use crate::merge::{MERGED_IDS, merges_among};
use crate::push::Engine;
use crmsync_core::config::SyncConfig;
use crmsync_crm::Crm;
use crmsync_store::{PullStore, Store};

/// How far before the stored cursor each poll starts reading.
pub const OVERLAP_MS: i64 = 60_000;

/// Changed records applied per page (and per cursor move).
pub const PAGE: usize = 500;

/// Parses a stored cursor `"<ms>:<id>"` (what [`parse_pull_state`] calls the position).
pub fn parse_cursor(value: &str) -> Option<(i64, String)> {
    let (ms, id) = value.split_once(':')?;
    Some((ms.parse().ok()?, id.to_string()))
}

/// The stored pull state `"<ms>:<id>[|<started ms>]"`: the last applied record's position and
/// when the last complete poll started (our clock).
pub fn parse_pull_state(value: &str) -> (Option<(i64, String)>, Option<i64>) {
    let (position, started) = match value.split_once('|') {
        Some((p, s)) => (p, s.parse().ok()),
        None => (value, None),
    };
    (parse_cursor(position), started)
}

/// Where a poll starts: [`OVERLAP_MS`] before the last applied change, or before the start of
/// the last complete poll when that is later. Everything modified more than the overlap before
/// that poll started was visible to it, so a quiet account is not re-read every time (this
/// assumes our clock within [`OVERLAP_MS`] of the CRM's, as NTP keeps it).
pub fn poll_start(position: Option<&(i64, String)>, started: Option<i64>) -> i64 {
    let from = position.map(|p| p.0).max(started).unwrap_or(0);
    if from == 0 {
        0
    } else {
        (from - OVERLAP_MS).max(0)
    }
}

impl<C: Crm, S: Store + PullStore> Engine<C, S> {
    /// Polls every sync that pulls fields. Stops early (with what it applied) when paused or
    /// asked to stop.
    pub async fn pull_once(&self) -> Result<PullReport, EngineError> {
        let mut report = PullReport::default();
        for sync in &self.config.raw.syncs {
            if self.halted().await? {
                break;
            }
            let r = self.pull_sync(sync, &mut report).await;
            self.flush_calls().await?;
            r?;
        }
        Ok(report)
    }

    /// True when the kill switch is on or a shutdown was asked for: no new batch starts.
    pub async fn halted(&self) -> Result<bool, EngineError> {
        Ok(self.stopping() || self.store.paused().await?)
    }

    async fn pull_sync(
        &self,
        sync: &SyncConfig,
        report: &mut PullReport,
    ) -> Result<(), EngineError> {
        let fields = pulled_fields(sync);
        if fields.is_empty() {
            return Ok(());
        }
        let object = Self::object_of(sync)?;
        let mut properties: Vec<String> = fields.iter().map(|(_, f)| f.crm.clone()).collect();
        // A merge changes the survivor: its absorbed ids re-point our links (crate::merge).
        properties.push(MERGED_IDS.to_string());
        let started = self.clock.now_ms();
        let (stored, last_started) = self
            .store
            .pull_cursor(&sync.name)
            .await?
            .as_deref()
            .map(parse_pull_state)
            .unwrap_or_default();
        let mut position: (i64, Option<String>) = (poll_start(stored.as_ref(), last_started), None);
        let mut high = stored.clone();
        loop {
            if self.halted().await? {
                return Ok(());
            }
            let changes = self
                .crm
                .changes_since(object, position.0, position.1.as_deref(), &properties, PAGE)
                .await;
            self.flush_calls().await?;
            let changes = changes?;
            let Some(last) = changes.last() else { break };
            let last = (last.modified_ms, last.crm_id.clone());
            self.merges_in(sync, object, &changes, report).await?;
            self.apply_changes(sync, &changes, report).await?;
            // Durable: the cursor may move, but never backwards (the overlap re-reads).
            if high.as_ref().is_none_or(|h| h.0 < last.0) {
                self.store
                    .set_pull_cursor(&sync.name, &format!("{}:{}", last.0, last.1))
                    .await?;
                high = Some(last.clone());
            }
            if changes.len() < PAGE {
                break;
            }
            position = (last.0, Some(last.1));
        }
        // Complete: remember when this poll started, so the next one need not re-read what
        // this one saw (only reached when every page was applied).
        let (ms, id) = high.unwrap_or((0, String::new()));
        self.store
            .set_pull_cursor(&sync.name, &format!("{ms}:{id}|{started}"))
            .await?;
        Ok(())
    }
}

impl<C: Crm, S: Store + PullStore> Engine<C, S> {
    /// Re-points links of records that the changed `records` absorbed in a merge, and lets
    /// records deleted earlier and seen alive again (restored in the CRM) flow again.
    async fn merges_in(
        &self,
        sync: &SyncConfig,
        object: crmsync_crm::ObjectKind,
        records: &[crmsync_crm::ChangedRecord],
        report: &mut PullReport,
    ) -> Result<(), EngineError> {
        let seen: Vec<String> = records.iter().map(|r| r.crm_id.clone()).collect();
        let alive: std::collections::HashSet<String> = self
            .store
            .local_ids_of(&sync.name, &seen)
            .await?
            .into_values()
            .collect();
        self.record_restored(sync, &alive, report).await?;
        let absorbed: Vec<String> = records
            .iter()
            .filter_map(|r| r.properties.get(MERGED_IDS))
            .flat_map(|ids| ids.split(';').map(str::trim).filter(|s| !s.is_empty()))
            .map(str::to_string)
            .collect();
        if absorbed.is_empty() {
            return Ok(());
        }
        let linked = self.store.local_ids_of(&sync.name, &absorbed).await?;
        let asked: Vec<String> = linked.keys().cloned().collect();
        let merges = merges_among(&asked, records);
        self.record_merges(sync, object, &merges, &linked, report)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::parse_cursor;

    #[test]
    fn a_poll_starts_an_overlap_before_the_later_of_cursor_and_last_start() {
        use super::{OVERLAP_MS, parse_pull_state, poll_start};
        let (p, s) = parse_pull_state("1000000:7|5000000");
        assert_eq!(p, Some((1_000_000, "7".into())));
        assert_eq!(s, Some(5_000_000));
        assert_eq!(poll_start(p.as_ref(), s), 5_000_000 - OVERLAP_MS);
        let (p, s) = parse_pull_state("9000000:7");
        assert_eq!(poll_start(p.as_ref(), s), 9_000_000 - OVERLAP_MS);
        assert_eq!(poll_start(None, None), 0);
        // The first poll ever finished without changes: start before it.
        let (p, s) = parse_pull_state("0:|3000000");
        assert_eq!(poll_start(p.as_ref(), s), 3_000_000 - OVERLAP_MS);
    }

    #[test]
    fn cursors_round_trip() {
        assert_eq!(
            parse_cursor("1700000000000:42"),
            Some((1_700_000_000_000, "42".into()))
        );
        assert_eq!(parse_cursor("x:1"), None);
        assert_eq!(parse_cursor("17"), None);
    }
}
