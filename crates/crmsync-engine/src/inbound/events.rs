//! Hints from webhook events. The receiver stores each signed event before it answers 2xx;
//! the webhook leader turns stored events into inbound hints — per sync, the CRM ids worth
//! reading back — and marks the events applied in the same transaction, so a crash loses
//! neither. Each sync's leader then reads its hinted records back and applies them
//! ([`super::Engine::apply_hints`]). Reading the current state instead of replaying event
//! values makes delivery order, duplicates and missed intermediate events irrelevant.
//!
//! Events that need no read are dropped here: creations (except of records a sync with
//! `on_crm_create = "insert"` has no link to) and association changes, property
//! changes of fields no sync pulls, and a property change whose value equals the field's base
//! (our own push coming back as an event). A record is read when *any* of its events differs
//! from the base, since delivery order is not guaranteed.

use crate::engine::Engine;
use crate::error::EngineError;
use crate::inbound::decide::pulled_fields;
use crate::report::PullReport;
use crmsync_core::config::{OnCrmCreate, SyncConfig};
use crmsync_crm::{Crm, CrmEvent, ObjectKind};
use crmsync_store::{Capture, Hint, Source, State};
use std::collections::{BTreeMap, BTreeSet};

/// Events turned into hints per round trip to the state database.
const EVENTS_PER_PASS: usize = 500;

impl<A, S, C> Engine<A, S, C>
where
    A: Source + Capture,
    S: State,
    C: Crm,
{
    /// Turns every stored webhook event into hints (the caller leads the webhook task);
    /// returns the counts and the syncs that got hints.
    pub async fn webhooks_to_hints(&self) -> Result<(PullReport, BTreeSet<String>), EngineError> {
        let mut report = PullReport::default();
        let mut hinted = BTreeSet::new();
        loop {
            if self.halted().await? {
                break;
            }
            let stored = self.state.pending_webhook_events(EVENTS_PER_PASS).await?;
            if stored.is_empty() {
                break;
            }
            report.events += stored.len() as u64;
            let events: Vec<CrmEvent> = stored
                .iter()
                .filter_map(|(_, b)| self.crm.parse_event(b))
                .collect();
            report.events_skipped += (stored.len() - events.len()) as u64;
            let now = self.clock.now_ms();
            let mut hints = Vec::new();
            for sync in &self.config.raw.syncs {
                let object = Self::object_of(sync)?;
                for id in self.ids_to_read(sync, object, &events, &mut report).await? {
                    hinted.insert(sync.name.clone());
                    hints.push(Hint {
                        sync: sync.name.clone(),
                        crm_id: id,
                        reason: "webhook".into(),
                        added_at_ms: now,
                    });
                }
            }
            let keys: Vec<String> = stored.into_iter().map(|(k, _)| k).collect();
            self.state
                .webhook_events_to_hints(&keys, &hints, now)
                .await?;
        }
        for sync in &hinted {
            self.wakes.wake_sync(sync);
        }
        Ok((report, hinted))
    }

    /// The CRM ids of `events` worth reading for `sync`.
    async fn ids_to_read(
        &self,
        sync: &SyncConfig,
        object: ObjectKind,
        events: &[CrmEvent],
        report: &mut PullReport,
    ) -> Result<BTreeSet<String>, EngineError> {
        let pulled: BTreeSet<&str> = pulled_fields(sync)
            .iter()
            .map(|(_, f)| f.crm.as_str())
            .collect();
        let mine: Vec<&CrmEvent> = events.iter().filter(|e| e.object == object).collect();
        // Property changes: only pulled fields, and not when the value is the base already.
        let changed: Vec<String> = mine
            .iter()
            .filter(|e| e.kind == "propertyChange")
            .flat_map(|e| e.ids.iter().cloned())
            .collect();
        // A sync that inserts CRM records reads the new ones it has no link to (the others
        // are our own creations, already linked by their settle).
        let created: Vec<String> = if sync.on_crm_create == OnCrmCreate::Insert {
            mine.iter()
                .filter(|e| e.kind == "creation")
                .flat_map(|e| e.ids.iter().cloned())
                .collect()
        } else {
            Vec::new()
        };
        let created_linked = self.state.local_ids_of(&sync.name, &created).await?;
        let local_of = self.state.local_ids_of(&sync.name, &changed).await?;
        let locals: Vec<String> = local_of.values().cloned().collect();
        let bases = self.state.bases(&sync.name, &locals).await?;
        let mut out = BTreeSet::new();
        let mut differs: BTreeMap<&str, bool> = BTreeMap::new();
        for e in &mine {
            match (e.kind.as_str(), &e.property) {
                ("propertyChange", Some((name, value))) => {
                    if !pulled.contains(name.as_str()) {
                        report.events_skipped += 1;
                        continue;
                    }
                    for id in &e.ids {
                        let base = local_of
                            .get(id)
                            .and_then(|l| bases.get(l))
                            .and_then(|b| b.get(name));
                        *differs.entry(id.as_str()).or_default() |= base != Some(value);
                    }
                }
                ("creation", _) if !created.is_empty() => {
                    for id in &e.ids {
                        if created_linked.contains_key(id) {
                            report.events_skipped += 1;
                        } else {
                            out.insert(id.clone());
                        }
                    }
                }
                ("creation" | "associationChange", _) => report.events_skipped += 1,
                _ => out.extend(e.ids.iter().cloned()),
            }
        }
        for (id, differs) in differs {
            if differs {
                out.insert(id.to_string());
            } else {
                report.events_skipped += 1; // our own write coming back, or already applied
            }
        }
        Ok(out)
    }
}
