//! Warnings that outlive the log line: CRM values a pulled field has no way back for (a deal
//! stage missing from the field's `map`). Each inbound commit adds what it met to a small
//! record per sync, kept in the state database (the sync's pull cursor `unmapped`), so
//! `status` shows the problem until a person fixes the mapping; a changed mapping (or
//! `crmsync resync`) starts the record afresh, because the old values may map now.
//!
//! Invariant: the record stays small whatever the traffic: per field a count, at most
//! [`MAX_VALUES`] distinct example values, and the first and last time seen.

use crmsync_store::{CursorDirection, Records, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The pull cursor that holds a sync's warnings.
pub const UNMAPPED: &str = "unmapped";

/// Distinct example values kept per field.
pub const MAX_VALUES: usize = 5;

/// The CRM values of one pulled field that could not be mapped back into the app.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unmapped {
    /// The field's key in the config.
    pub field: String,
    /// Times a CRM value of this field was left out (one per record and inbound commit).
    pub count: u64,
    /// Distinct values met, at most [`MAX_VALUES`].
    pub values: Vec<String>,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
}

/// Adds `met` (field -> (count, distinct values)) to the warnings stored for `sync`.
pub(crate) async fn record_unmapped<S: Records>(
    state: &S,
    sync: &str,
    met: &BTreeMap<String, (u64, Vec<String>)>,
    now_ms: i64,
) -> Result<(), StoreError> {
    if met.is_empty() {
        return Ok(());
    }
    let mut by_field: BTreeMap<String, Unmapped> = read(state, sync)
        .await?
        .into_iter()
        .map(|u| (u.field.clone(), u))
        .collect();
    for (field, (count, values)) in met {
        let slot = by_field.entry(field.clone()).or_insert_with(|| Unmapped {
            field: field.clone(),
            first_seen_ms: now_ms,
            ..Default::default()
        });
        slot.count = slot.count.saturating_add(*count);
        slot.last_seen_ms = now_ms;
        for v in values {
            if slot.values.len() < MAX_VALUES && !slot.values.contains(v) {
                slot.values.push(v.clone());
            }
        }
    }
    let all: Vec<&Unmapped> = by_field.values().collect();
    let text = serde_json::to_string(&all).unwrap_or_default();
    state
        .set_cursor(sync, CursorDirection::Pull, UNMAPPED, &text)
        .await
}

/// The warnings stored for `sync`, by field. A stored value that cannot be read (a damaged or
/// foreign row) is reported as one warning saying so rather than failing `status`.
pub async fn unmapped_warnings<S: Records>(
    state: &S,
    sync: &str,
) -> Result<Vec<Unmapped>, StoreError> {
    read(state, sync).await
}

/// Forgets the warnings of `sync`: its mapping changed, so the values may map now.
pub(crate) async fn clear_unmapped<S: Records>(state: &S, sync: &str) -> Result<(), StoreError> {
    state
        .set_cursor(sync, CursorDirection::Pull, UNMAPPED, "")
        .await
}

async fn read<S: Records>(state: &S, sync: &str) -> Result<Vec<Unmapped>, StoreError> {
    let Some(text) = state
        .cursor(sync, CursorDirection::Pull, UNMAPPED)
        .await?
        .filter(|t| !t.is_empty())
    else {
        return Ok(Vec::new());
    };
    Ok(serde_json::from_str(&text).unwrap_or_else(|e| {
        vec![Unmapped {
            field: format!("(the stored warnings of sync {sync:?} cannot be read: {e})"),
            ..Default::default()
        }]
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crmsync_store::memory::MemoryState;

    #[tokio::test]
    async fn warnings_add_up_stay_small_and_clear() {
        let state = MemoryState::default();
        let mut met = BTreeMap::new();
        met.insert(
            "status".to_string(),
            (3, vec!["closedlost".to_string(), "qualified".to_string()]),
        );
        record_unmapped(&state, "deals", &met, 10)
            .await
            .expect("record");
        let many: Vec<String> = (0..20).map(|i| format!("stage{i}")).collect();
        met.insert("status".to_string(), (20, many));
        record_unmapped(&state, "deals", &met, 20)
            .await
            .expect("record");
        let w = unmapped_warnings(&state, "deals").await.expect("read");
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].count, 23);
        assert_eq!(w[0].values.len(), MAX_VALUES);
        assert_eq!(w[0].values[..2], ["closedlost", "qualified"]);
        assert_eq!((w[0].first_seen_ms, w[0].last_seen_ms), (10, 20));
        clear_unmapped(&state, "deals").await.expect("clear");
        assert!(
            unmapped_warnings(&state, "deals")
                .await
                .expect("read")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_damaged_record_is_a_warning_not_a_failure() {
        let state = MemoryState::default();
        state
            .set_cursor("deals", CursorDirection::Pull, UNMAPPED, "{not json")
            .await
            .expect("set");
        let w = unmapped_warnings(&state, "deals").await.expect("read");
        assert!(w[0].field.contains("cannot be read"), "{w:?}");
    }
}
