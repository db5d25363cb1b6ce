//! [`Records`] in memory: links, field bases, quarantine, cursors, with the SQLite backend's
//! rules (a re-quarantined record keeps its first sighting and counts one more attempt; a
//! quarantined record loses its jobs; a record held for a parent that is linked already is
//! released at once). Each method is one locked step, so a multi-row write is all or nothing.

use super::{Inner, JobRow, MemoryState, RecordKey, key};
use crate::Records;
use crate::error::StoreError;
use crate::model::*;
use std::collections::{HashMap, HashSet};

impl Inner {
    /// Writes quarantine entries and drops the records' jobs (SQLite's `put_quarantine`).
    /// Returns how many held records it released at once (their parent is linked already).
    pub(super) fn put_quarantine(&mut self, entries: &[QuarantineEntry]) -> u64 {
        let mut released = 0;
        for e in entries {
            let k = key(&e.sync, &e.local_id);
            let entry = self
                .quarantine
                .entry(k.clone())
                .and_modify(|old| {
                    // A repeat sighting: the reason is replaced, the first sighting kept, and
                    // a pending retry request is answered by this very sighting.
                    old.kind = e.kind;
                    old.field = e.field.clone();
                    old.rule = e.rule.clone();
                    old.message = e.message.clone();
                    old.last_seen_ms = e.last_seen_ms;
                    old.attempts += 1;
                    old.retry_requested = false;
                    old.waits_for = e.waits_for.clone();
                })
                .or_insert_with(|| QuarantineEntry {
                    attempts: 1,
                    retry_requested: false,
                    ..e.clone()
                });
            // A parent linked meanwhile releases the record at once (its settle found no entry).
            if let Some((s, p)) = &entry.waits_for {
                let parent_linked = self
                    .links
                    .get(&key(s, p))
                    .is_some_and(|l| l.crm_id.is_some());
                if parent_linked {
                    entry.retry_requested = true;
                    released += 1;
                }
            }
            self.drop_jobs_of(&k);
        }
        released
    }

    /// Removes every job (all directions) of one record.
    pub(super) fn drop_jobs_of(&mut self, record: &RecordKey) {
        let ids: Vec<i64> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.sync == record.0 && j.local_id == record.1)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(JobRow {
                sync,
                local_id,
                direction,
                ..
            }) = self.jobs.remove(&id)
            {
                self.job_ids.remove(&(sync, local_id, direction));
            }
        }
    }

    /// Stores one base value.
    pub(super) fn set_base(&mut self, sync: &str, local_id: &str, field: &str, value: &str) {
        self.bases
            .entry(key(sync, local_id))
            .or_default()
            .insert(field.to_string(), value.to_string());
    }

    /// Stores a cursor.
    pub(super) fn put_cursor(
        &mut self,
        sync: &str,
        direction: CursorDirection,
        mechanism: &str,
        value: &str,
    ) {
        self.cursors.insert(
            (sync.to_string(), direction.as_str(), mechanism.to_string()),
            value.to_string(),
        );
    }

    /// Removes the quarantine entries of these records of `sync`.
    pub(super) fn clear_quarantine(&mut self, sync: &str, local_ids: &[String]) {
        for id in local_ids {
            self.quarantine.remove(&key(sync, id));
        }
    }

    /// Links of `sync` with a CRM id.
    pub(super) fn linked(&self, sync: &str) -> impl Iterator<Item = (&str, &str)> {
        self.links
            .iter()
            .filter(move |((s, _), _)| s == sync)
            .filter_map(|((_, local), l)| l.crm_id.as_deref().map(|c| (local.as_str(), c)))
    }
}

impl Records for MemoryState {
    async fn links_for(
        &self,
        sync: &str,
        keys: &[String],
    ) -> Result<HashMap<String, Link>, StoreError> {
        let inner = self.lock();
        Ok(keys
            .iter()
            .filter_map(|k| {
                inner.links.get(&key(sync, k)).map(|l| {
                    (
                        k.clone(),
                        Link {
                            crm_object: l.crm_object.clone(),
                            crm_id: l.crm_id.clone(),
                            pushed_hash: l.pushed_hash.clone(),
                            version: l.version,
                        },
                    )
                })
            })
            .collect())
    }

    async fn local_ids_of(
        &self,
        sync: &str,
        crm_ids: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        let inner = self.lock();
        let wanted: HashSet<&str> = crm_ids.iter().map(String::as_str).collect();
        // Two records linked to one CRM id (a merge): the last in local-id order wins, as
        // SQLite's rows overwrite each other in the map.
        Ok(inner
            .linked(sync)
            .filter(|(_, crm)| wanted.contains(crm))
            .map(|(local, crm)| (crm.to_string(), local.to_string()))
            .collect())
    }

    async fn links_page(
        &self,
        sync: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let inner = self.lock();
        let after = after.unwrap_or("");
        Ok(inner
            .linked(sync)
            .filter(|(local, _)| *local > after)
            .take(limit)
            .map(|(local, crm)| (local.to_string(), crm.to_string()))
            .collect())
    }

    async fn link_count(&self, sync: &str) -> Result<u64, StoreError> {
        Ok(self.lock().linked(sync).count() as u64)
    }

    async fn bases(
        &self,
        sync: &str,
        local_ids: &[String],
    ) -> Result<HashMap<String, HashMap<String, String>>, StoreError> {
        let inner = self.lock();
        Ok(local_ids
            .iter()
            .filter_map(|id| {
                inner
                    .bases
                    .get(&key(sync, id))
                    .filter(|fields| !fields.is_empty())
                    .map(|fields| {
                        let fields = fields.iter().map(|(f, v)| (f.clone(), v.clone()));
                        (id.clone(), fields.collect())
                    })
            })
            .collect())
    }

    async fn record_pulls(&self, sync: &str, pulls: &[PullRecord]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for p in pulls {
            // Only an existing link moves; the bases are stored either way.
            if let Some(l) = inner.links.get_mut(&key(sync, &p.local_id)) {
                l.version += 1;
                if let Some(h) = &p.pushed_hash {
                    l.pushed_hash = Some(h.clone());
                }
                if let Some(h) = &p.pulled_hash {
                    l.pulled_hash = Some(h.clone());
                }
            }
            for (field, value) in &p.bases {
                inner.set_base(sync, &p.local_id, field, value);
            }
        }
        Ok(())
    }

    async fn unlink(&self, sync: &str, local_ids: &[String]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for id in local_ids {
            let k = key(sync, id);
            inner.links.remove(&k);
            inner.bases.remove(&k);
        }
        Ok(())
    }

    async fn pending_write_backs(
        &self,
        sync: &str,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .links
            .iter()
            .filter(|((s, _), _)| s == sync)
            .filter_map(|((_, local), l)| {
                let crm = l.crm_id.as_ref()?;
                (l.written_back_id.as_ref() != Some(crm)).then(|| (local.clone(), crm.clone()))
            })
            .take(limit)
            .collect())
    }

    async fn mark_written_back(
        &self,
        sync: &str,
        pairs: &[(String, String)],
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for (local, crm) in pairs {
            // Only while the link still points there: a re-pointed link stays pending.
            if let Some(l) = inner.links.get_mut(&key(sync, local))
                && l.crm_id.as_ref() == Some(crm)
            {
                l.written_back_id = Some(crm.clone());
            }
        }
        Ok(())
    }

    async fn quarantine(&self, entries: &[QuarantineEntry]) -> Result<(), StoreError> {
        self.lock().put_quarantine(entries);
        Ok(())
    }

    async fn clear_quarantine(&self, sync: &str, local_ids: &[String]) -> Result<(), StoreError> {
        self.lock().clear_quarantine(sync, local_ids);
        Ok(())
    }

    async fn quarantined(&self, sync: &str) -> Result<Vec<QuarantineEntry>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .quarantine
            .iter()
            .filter(|((s, _), _)| s == sync)
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn quarantined_among(
        &self,
        sync: &str,
        keys: &[String],
    ) -> Result<HashSet<String>, StoreError> {
        let inner = self.lock();
        Ok(keys
            .iter()
            .filter(|k| inner.quarantine.contains_key(&key(sync, k)))
            .cloned()
            .collect())
    }

    async fn recheck_keys(&self, sync: &str) -> Result<Vec<String>, StoreError> {
        let inner = self.lock();
        // Held records not waiting for a parent, and whatever `retry` or a parent's settle
        // released (a parent-held record is flagged when its parent gets linked).
        Ok(inner
            .quarantine
            .iter()
            .filter(|((s, _), e)| {
                s == sync
                    && ((e.kind == QuarantineKind::Held && e.waits_for.is_none())
                        || e.retry_requested)
            })
            .map(|((_, local), _)| local.clone())
            .collect())
    }

    async fn blocked_keys(
        &self,
        sync: &str,
        rules: &[&str],
    ) -> Result<HashSet<String>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .quarantine
            .iter()
            .filter(|((s, _), e)| s == sync && rules.contains(&e.rule.as_str()))
            .map(|((_, local), _)| local.clone())
            .collect())
    }

    async fn cursor(
        &self,
        sync: &str,
        direction: CursorDirection,
        mechanism: &str,
    ) -> Result<Option<String>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .cursors
            .get(&(sync.to_string(), direction.as_str(), mechanism.to_string()))
            .cloned())
    }

    async fn set_cursor(
        &self,
        sync: &str,
        direction: CursorDirection,
        mechanism: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        self.lock().put_cursor(sync, direction, mechanism, value);
        Ok(())
    }

    async fn counts(&self, sync: &str) -> Result<QueueCounts, StoreError> {
        use super::JobState::*;
        let inner = self.lock();
        let mut c = QueueCounts::default();
        for j in inner.jobs.values().filter(|j| j.sync == sync) {
            match j.state {
                Ready | Running | Retrying => {
                    c.pending += 1;
                    c.oldest_pending_at_ms = Some(
                        c.oldest_pending_at_ms
                            .map_or(j.created_at, |o| o.min(j.created_at)),
                    );
                }
                Dead => c.dead += 1,
                Done => {}
            }
        }
        for ((s, _), e) in &inner.quarantine {
            if s == sync {
                match e.kind {
                    QuarantineKind::Invalid => c.invalid += 1,
                    QuarantineKind::Rejected => c.rejected += 1,
                    QuarantineKind::Held => c.held += 1,
                }
            }
        }
        c.linked = inner.linked(sync).count() as i64;
        Ok(c)
    }
}
