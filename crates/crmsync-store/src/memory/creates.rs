//! [`Creates`] in memory: the `crm_creates` rows as a map, with SQLite's upsert rules (a
//! claim keeps the history, a refusal counts an attempt and clears the retry flag).

use super::{LinkRow, MemoryState, key};
use crate::Creates;
use crate::error::StoreError;
use crate::model::*;
use std::collections::HashMap;

impl Creates for MemoryState {
    async fn claim_creates(
        &self,
        sync: &str,
        claims: &[(String, i64)],
        fingerprint: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for (crm_id, modified_ms) in claims {
            let e = inner
                .creates
                .entry(key(sync, crm_id))
                .or_insert_with(|| CrmCreate {
                    sync: sync.to_string(),
                    crm_id: crm_id.clone(),
                    state: CreateState::Claimed,
                    rule: String::new(),
                    message: String::new(),
                    modified_ms: *modified_ms,
                    fingerprint: fingerprint.to_string(),
                    first_seen_ms: now_ms,
                    last_seen_ms: now_ms,
                    attempts: 0,
                    retry_requested: false,
                });
            e.state = CreateState::Claimed;
            e.modified_ms = *modified_ms;
            e.fingerprint = fingerprint.to_string();
            e.last_seen_ms = now_ms;
        }
        Ok(())
    }

    async fn refuse_creates(&self, refusals: &[CrmCreate]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for r in refusals {
            let k = key(&r.sync, &r.crm_id);
            let (first_seen_ms, attempts) = match inner.creates.get(&k) {
                Some(old) => (old.first_seen_ms, old.attempts + 1),
                None => (r.first_seen_ms, 1),
            };
            inner.creates.insert(
                k,
                CrmCreate {
                    state: CreateState::Refused,
                    first_seen_ms,
                    attempts,
                    retry_requested: false,
                    ..r.clone()
                },
            );
        }
        Ok(())
    }

    async fn record_creates(
        &self,
        sync: &str,
        crm_object: &str,
        created: &[CreatedLink],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for c in created {
            let version = inner
                .links
                .get(&key(sync, &c.local_id))
                .map_or(1, |l| l.version + 1);
            inner.links.insert(
                key(sync, &c.local_id),
                LinkRow {
                    crm_object: crm_object.to_string(),
                    crm_id: Some(c.crm_id.clone()),
                    pushed_hash: c.pushed_hash.clone(),
                    pushed_at: Some(now_ms),
                    pulled_hash: c.pulled_hash.clone(),
                    version,
                    written_back_id: c.written_back.then(|| c.crm_id.clone()),
                },
            );
            for (field, value) in &c.bases {
                inner.set_base(sync, &c.local_id, field, value);
            }
            inner.creates.remove(&key(sync, &c.crm_id));
        }
        Ok(())
    }

    async fn forget_creates(&self, sync: &str, crm_ids: &[String]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for id in crm_ids {
            inner.creates.remove(&key(sync, id));
        }
        Ok(())
    }

    async fn creates(&self, sync: Option<&str>) -> Result<Vec<CrmCreate>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .creates
            .values()
            .filter(|c| sync.is_none_or(|s| c.sync == s))
            .cloned()
            .collect())
    }

    async fn creates_among(
        &self,
        sync: &str,
        crm_ids: &[String],
    ) -> Result<HashMap<String, CrmCreate>, StoreError> {
        let inner = self.lock();
        Ok(crm_ids
            .iter()
            .filter_map(|id| inner.creates.get(&key(sync, id)))
            .map(|c| (c.crm_id.clone(), c.clone()))
            .collect())
    }

    async fn request_create_retry(
        &self,
        sync: Option<&str>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut inner = self.lock();
        let mut out = Vec::new();
        for c in inner.creates.values_mut() {
            if c.state == CreateState::Refused && sync.is_none_or(|s| c.sync == s) {
                c.retry_requested = true;
                out.push((c.sync.clone(), c.crm_id.clone()));
            }
        }
        out.sort();
        Ok(out)
    }
}
