//! Applying stored HubSpot webhook events. The receiver stores each signed event before it
//! answers 2xx; here they are turned into the CRM ids they concern, per object, and those
//! records are read back ([`crate::refresh`]) and applied, then the events are marked applied.
//! Reading the current state instead of replaying event values makes delivery order, duplicates
//! and missed intermediate events irrelevant. A crash before the mark re-applies the same
//! events, which is free (agreeing values write nothing).
//!
//! Events that need no read are skipped: property changes of fields no sync pulls, and a
//! property change whose value equals the field's base (our own push coming back as an event).

use crate::apply::{PullReport, pulled_fields};
use crate::error::EngineError;
use crate::push::Engine;
use crmsync_crm::{Crm, ObjectKind};
use crmsync_store::{PullStore, Store};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Events applied per round trip to the state database.
const EVENTS_PER_PASS: usize = 500;

/// What one event says, as far as syncing cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub object: ObjectKind,
    /// `creation`, `propertyChange`, `deletion`, `merge`, `restore`, `privacyDeletion`, …
    pub kind: String,
    /// The records it concerns (for a merge: survivor, absorbed ones and a new id if minted).
    pub ids: Vec<String>,
    pub property: Option<(String, String)>,
}

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads one stored event; `None` for objects we don't sync (tickets, conversations, …).
pub fn parse_event(body: &str) -> Option<Event> {
    let v: Value = serde_json::from_str(body).ok()?;
    let (prefix, kind) = v["subscriptionType"].as_str()?.split_once('.')?;
    let object = match prefix {
        "contact" => ObjectKind::Contacts,
        "company" => ObjectKind::Companies,
        "deal" => ObjectKind::Deals,
        "object" => match v["objectTypeId"].as_str()? {
            "0-1" => ObjectKind::Contacts,
            "0-2" => ObjectKind::Companies,
            "0-3" => ObjectKind::Deals,
            _ => return None,
        },
        _ => return None,
    };
    let mut ids: Vec<String> = ["objectId", "primaryObjectId", "newObjectId"]
        .iter()
        .filter_map(|k| id_text(&v[*k]))
        .collect();
    if let Some(merged) = v["mergedObjectIds"].as_array() {
        ids.extend(merged.iter().filter_map(id_text));
    }
    ids.sort();
    ids.dedup();
    let property = match (v["propertyName"].as_str(), &v["propertyValue"]) {
        (Some(name), Value::String(value)) => Some((name.to_string(), value.clone())),
        (Some(name), Value::Null) => Some((name.to_string(), String::new())),
        (Some(name), other) => Some((name.to_string(), other.to_string())),
        _ => None,
    };
    Some(Event {
        object,
        kind: kind.to_string(),
        ids,
        property,
    })
}

impl<C: Crm, S: Store + PullStore> Engine<C, S> {
    /// Applies every stored webhook event not applied yet. Stops early (leaving the rest
    /// stored) when paused or asked to stop.
    pub async fn apply_webhook_events(&self) -> Result<PullReport, EngineError> {
        let mut report = PullReport::default();
        loop {
            if self.halted().await? {
                break;
            }
            let stored = self.store.pending_webhook_events(EVENTS_PER_PASS).await?;
            if stored.is_empty() {
                break;
            }
            report.events += stored.len() as u64;
            let events: Vec<Event> = stored.iter().filter_map(|(_, b)| parse_event(b)).collect();
            report.events_skipped += (stored.len() - events.len()) as u64;
            let mut complete = true;
            for sync in &self.config.raw.syncs {
                let object = Self::object_of(sync)?;
                let ids = self.ids_to_read(sync, object, &events, &mut report).await?;
                if ids.is_empty() {
                    continue;
                }
                let ids: Vec<String> = ids.into_iter().collect();
                if !self
                    .refresh_ids(sync, &ids, crate::refresh::Depth::Changes, &mut report)
                    .await?
                {
                    complete = false;
                    break;
                }
            }
            if !complete {
                break;
            }
            let ids: Vec<String> = stored.into_iter().map(|(id, _)| id).collect();
            self.store
                .mark_webhook_events_applied(&ids, self.clock.now_ms())
                .await?;
        }
        Ok(report)
    }

    /// The CRM ids of `events` worth reading for `sync`.
    async fn ids_to_read(
        &self,
        sync: &crmsync_core::config::SyncConfig,
        object: ObjectKind,
        events: &[Event],
        report: &mut PullReport,
    ) -> Result<BTreeSet<String>, EngineError> {
        let pulled: BTreeSet<&str> = pulled_fields(sync)
            .iter()
            .map(|(_, f)| f.crm.as_str())
            .collect();
        let mine: Vec<&Event> = events.iter().filter(|e| e.object == object).collect();
        // Property changes: only pulled fields, and not when the value is the base already.
        let changed: Vec<String> = mine
            .iter()
            .filter(|e| e.kind == "propertyChange")
            .flat_map(|e| e.ids.iter().cloned())
            .collect();
        let local_of = self.store.local_ids_of(&sync.name, &changed).await?;
        let locals: Vec<String> = local_of.values().cloned().collect();
        let bases = self.store.bases(&sync.name, &locals).await?;
        let mut out = BTreeSet::new();
        // Delivery order is not guaranteed: a record is read when any of its events differs
        // from the base, not only the last one received.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_name_their_object_and_records() {
        let e = parse_event(
            r#"{"eventId":1,"subscriptionType":"contact.propertyChange","objectId":12,"propertyName":"email","propertyValue":"a@b.com"}"#,
        )
        .expect("a contact event");
        assert_eq!(e.object, ObjectKind::Contacts);
        assert_eq!(e.kind, "propertyChange");
        assert_eq!(e.ids, vec!["12".to_string()]);
        assert_eq!(e.property, Some(("email".into(), "a@b.com".into())));

        let m = parse_event(
            r#"{"eventId":2,"subscriptionType":"company.merge","objectId":5,"primaryObjectId":5,"mergedObjectIds":[7,8],"newObjectId":5}"#,
        )
        .expect("a merge");
        assert_eq!(m.ids, vec!["5".to_string(), "7".into(), "8".into()]);

        let g = parse_event(
            r#"{"subscriptionType":"object.deletion","objectTypeId":"0-3","objectId":"9"}"#,
        )
        .expect("a generic deal event");
        assert_eq!(g.object, ObjectKind::Deals);
        assert!(parse_event(r#"{"subscriptionType":"ticket.creation","objectId":1}"#).is_none());
        assert!(parse_event("not json").is_none());
    }
}
