//! [`Lifecycle`] in memory: conflicts parked for review, CRM deletions and merges, the webhook
//! inbox and the inbound hints it turns into, with the SQLite backend's orders and rules (a
//! webhook event is stored once per dedup key; re-adding a hint refreshes its `added_at`, which
//! is what lets [`Lifecycle::clear_hints`] keep a hint added again while it was being applied).

use super::{ConflictRow, Inner, MemoryState, WebhookRow, key};
use crate::Lifecycle;
use crate::error::StoreError;
use crate::model::*;
use std::collections::HashSet;

impl Inner {
    /// Adds hints, or refreshes the reason and time of pending ones (SQLite's `put_hints`).
    fn put_hints(&mut self, hints: &[Hint], now_ms: i64) {
        for h in hints {
            self.hints.insert(
                (h.sync.clone(), h.crm_id.clone()),
                (h.reason.clone(), now_ms),
            );
        }
    }
}

impl Lifecycle for MemoryState {
    async fn add_conflicts(&self, conflicts: &[Conflict]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for c in conflicts {
            // An open conflict for the same field is replaced (and gets a new id).
            inner.conflicts.retain(|_, row| {
                !(row.resolved_at.is_none()
                    && row.conflict.sync == c.sync
                    && row.conflict.local_id == c.local_id
                    && row.conflict.field == c.field)
            });
            inner.last_conflict_id += 1;
            let id = inner.last_conflict_id;
            inner.conflicts.insert(
                id,
                ConflictRow {
                    conflict: Conflict { id, ..c.clone() },
                    resolved_at: None,
                    resolution: None,
                },
            );
        }
        Ok(())
    }

    async fn open_conflicts(&self, sync: Option<&str>) -> Result<Vec<Conflict>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .conflicts
            .values()
            .filter(|row| row.resolved_at.is_none())
            .filter(|row| sync.is_none_or(|s| row.conflict.sync == s))
            .map(|row| row.conflict.clone())
            .collect())
    }

    async fn resolve_conflict(&self, id: i64, resolution: &str) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        match inner.conflicts.get_mut(&id) {
            Some(row) if row.resolved_at.is_none() => {
                row.resolved_at = Some(crate::now_ms());
                row.resolution = Some(resolution.to_string());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn record_deletions(&self, deletions: &[CrmDeletion]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for d in deletions {
            inner.deletions.insert(key(&d.sync, &d.local_id), d.clone());
        }
        Ok(())
    }

    async fn deletions(
        &self,
        sync: Option<&str>,
        state: Option<DeletionState>,
    ) -> Result<Vec<CrmDeletion>, StoreError> {
        let inner = self.lock();
        let mut out: Vec<CrmDeletion> = inner
            .deletions
            .values()
            .filter(|d| sync.is_none_or(|s| d.sync == s))
            .filter(|d| state.is_none_or(|st| d.state == st))
            .cloned()
            .collect();
        // SQLite orders by (seen_at, local_id) only; the sort is stable, so records of several
        // syncs that tie on both keep the sync order the map gave them.
        out.sort_by(|a, b| (a.seen_at_ms, &a.local_id).cmp(&(b.seen_at_ms, &b.local_id)));
        Ok(out)
    }

    async fn forget_deletions(&self, sync: &str, local_ids: &[String]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for id in local_ids {
            inner.deletions.remove(&key(sync, id));
        }
        Ok(())
    }

    async fn deletions_since(&self, sync: &str, since_ms: i64) -> Result<u64, StoreError> {
        let inner = self.lock();
        Ok(inner
            .deletions
            .values()
            .filter(|d| d.sync == sync && d.seen_at_ms >= since_ms)
            .count() as u64)
    }

    async fn record_merges(&self, merges: &[CrmMerge]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for m in merges {
            if let Some(l) = inner.links.get_mut(&key(&m.sync, &m.local_id)) {
                l.crm_id = Some(m.to_crm_id.clone());
                l.version += 1;
            }
            inner.merges.push(m.clone());
        }
        Ok(())
    }

    async fn merges(&self, sync: Option<&str>) -> Result<Vec<CrmMerge>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .merges
            .iter()
            .rev()
            .filter(|m| sync.is_none_or(|s| m.sync == s))
            .cloned()
            .collect())
    }

    async fn record_webhook_events(
        &self,
        events: &[(String, String)],
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let mut new = 0;
        for (dedup_key, body) in events {
            if !inner.webhook_events.contains_key(dedup_key) {
                inner.webhook_events.insert(
                    dedup_key.clone(),
                    WebhookRow {
                        received_at: now_ms,
                        body: body.clone(),
                        applied_at: None,
                    },
                );
                new += 1;
            }
        }
        Ok(new)
    }

    async fn pending_webhook_events(
        &self,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let inner = self.lock();
        let mut pending: Vec<(&String, &WebhookRow)> = inner
            .webhook_events
            .iter()
            .filter(|(_, e)| e.applied_at.is_none())
            .collect();
        // By (received_at, dedup key): the map iterates by key, the stable sort keeps that
        // order among events received together.
        pending.sort_by_key(|(_, e)| e.received_at);
        Ok(pending
            .into_iter()
            .take(limit)
            .map(|(k, e)| (k.clone(), e.body.clone()))
            .collect())
    }

    async fn prune_webhook_events(&self, before_ms: i64, limit: u64) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let old: Vec<String> = inner
            .webhook_events
            .iter()
            .filter(|(_, e)| e.applied_at.is_some() && e.received_at < before_ms)
            .map(|(k, _)| k.clone())
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect();
        for key in &old {
            inner.webhook_events.remove(key);
        }
        Ok(old.len() as u64)
    }

    async fn pending_webhook_count(&self) -> Result<u64, StoreError> {
        let inner = self.lock();
        Ok(inner
            .webhook_events
            .values()
            .filter(|e| e.applied_at.is_none())
            .count() as u64)
    }

    async fn webhook_events_to_hints(
        &self,
        event_keys: &[String],
        hints: &[Hint],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.put_hints(hints, now_ms);
        for k in event_keys {
            if let Some(e) = inner.webhook_events.get_mut(k) {
                e.applied_at = Some(now_ms);
            }
        }
        Ok(())
    }

    async fn add_hints(&self, hints: &[Hint], now_ms: i64) -> Result<(), StoreError> {
        self.lock().put_hints(hints, now_ms);
        Ok(())
    }

    async fn pending_hints(&self, sync: &str, limit: usize) -> Result<Vec<Hint>, StoreError> {
        let inner = self.lock();
        let mut pending: Vec<Hint> = inner
            .hints
            .iter()
            .filter(|((s, _), _)| s == sync)
            .map(|((s, crm_id), (reason, added_at))| Hint {
                sync: s.clone(),
                crm_id: crm_id.clone(),
                reason: reason.clone(),
                added_at_ms: *added_at,
            })
            .collect();
        // By (added_at, crm_id): the map iterates by crm id, the stable sort keeps that order.
        pending.sort_by_key(|h| h.added_at_ms);
        pending.truncate(limit);
        Ok(pending)
    }

    async fn clear_hints(
        &self,
        sync: &str,
        crm_ids: &[String],
        added_before_ms: i64,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let ids: HashSet<&String> = crm_ids.iter().collect();
        // A hint added again after the caller read it stays: it announces a newer change.
        inner.hints.retain(|(s, crm_id), (_, added_at)| {
            !(s == sync && ids.contains(crm_id) && *added_at <= added_before_ms)
        });
        Ok(())
    }
}
