//! Poll: for a sync with two-way fields, ask the CRM for the records modified since the sync's
//! pull cursor, decide and commit them page by page ([`super::decide`], [`super::commit`]), and
//! move the cursor only after a page is durably applied. A poll interrupted anywhere re-reads from the last stored
//! position: nothing is lost, and re-reading is free (agreeing values write nothing).
//!
//! The cursor is `"<ms>:<crm id>"`, the last applied record's modification time and id. Each
//! pass starts `[run] poll_overlap_ms` before it, since a record can show up in the CRM's search later
//! than its modification time says (HubSpot's search index lags, FACTS 2.3).

use crate::engine::Engine;
use crate::error::EngineError;
use crate::inbound::decide::{pulled_fields, pulled_properties};
use crate::lifecycle::merge::merges_among;
use crate::report::PullReport;
use crmsync_core::config::SyncConfig;
use crmsync_crm::Crm;
use crmsync_store::{Capture, CursorDirection, Source, State};

/// Changed records applied per page (and per cursor move).
pub const PAGE: usize = 500;

/// The pull cursor's mechanism name.
pub(crate) const POLL: &str = "poll";

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

/// Where a poll starts: `overlap_ms` before the last applied change, or before the start of
/// the last complete poll when that is later. Everything modified more than the overlap before
/// that poll started was visible to it, so a quiet account is not re-read every time (this
/// assumes our clock within the overlap of the CRM's, as NTP keeps it).
pub fn poll_start(position: Option<&(i64, String)>, started: Option<i64>, overlap_ms: i64) -> i64 {
    let from = position.map(|p| p.0).max(started).unwrap_or(0);
    if from == 0 {
        0
    } else {
        (from - overlap_ms).max(0)
    }
}

impl<A, S, C> Engine<A, S, C>
where
    A: Source + Capture,
    S: State,
    C: Crm,
{
    /// Polls one sync's CRM changes and applies them page by page (the caller leads the sync).
    /// Stops early (with what it applied) when paused or asked to stop.
    pub async fn poll_sync(
        &self,
        sync: &SyncConfig,
        report: &mut PullReport,
    ) -> Result<(), EngineError> {
        let fields = pulled_fields(sync);
        if fields.is_empty() {
            return Ok(());
        }
        let object = Self::object_of(sync)?;
        let properties = pulled_properties(&self.config.raw.syncs, sync);
        let started = self.clock.now_ms();
        let (stored, last_started) = self
            .state
            .cursor(&sync.name, CursorDirection::Pull, POLL)
            .await?
            .as_deref()
            .map(parse_pull_state)
            .unwrap_or_default();
        let overlap = i64::try_from(self.config.raw.run.poll_overlap_ms).unwrap_or(i64::MAX);
        let mut position: (i64, Option<String>) =
            (poll_start(stored.as_ref(), last_started, overlap), None);
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
                self.state
                    .set_cursor(
                        &sync.name,
                        CursorDirection::Pull,
                        POLL,
                        &format!("{}:{}", last.0, last.1),
                    )
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
        self.state
            .set_cursor(
                &sync.name,
                CursorDirection::Pull,
                POLL,
                &format!("{ms}:{id}|{started}"),
            )
            .await?;
        Ok(())
    }

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
            .state
            .local_ids_of(&sync.name, &seen)
            .await?
            .into_values()
            .collect();
        self.record_restored(sync, &alive, report).await?;
        let absorbed: Vec<String> = records
            .iter()
            .flat_map(|r| r.merged_ids.iter().cloned())
            .collect();
        if absorbed.is_empty() {
            return Ok(());
        }
        let linked = self.state.local_ids_of(&sync.name, &absorbed).await?;
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
        use super::{parse_pull_state, poll_start};
        const OVERLAP_MS: i64 = 15_000;
        let (p, s) = parse_pull_state("1000000:7|5000000");
        assert_eq!(p, Some((1_000_000, "7".into())));
        assert_eq!(s, Some(5_000_000));
        assert_eq!(
            poll_start(p.as_ref(), s, OVERLAP_MS),
            5_000_000 - OVERLAP_MS
        );
        let (p, s) = parse_pull_state("9000000:7");
        assert_eq!(
            poll_start(p.as_ref(), s, OVERLAP_MS),
            9_000_000 - OVERLAP_MS
        );
        assert_eq!(poll_start(None, None, OVERLAP_MS), 0);
        // The first poll ever finished without changes: start before it.
        let (p, s) = parse_pull_state("0:|3000000");
        assert_eq!(
            poll_start(p.as_ref(), s, OVERLAP_MS),
            3_000_000 - OVERLAP_MS
        );
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
