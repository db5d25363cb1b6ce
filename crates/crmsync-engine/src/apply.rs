//! Applying one page of CRM changes to the app database: per record and two-way field, the
//! [`decide`] rule against the base; CRM values that win are mapped back (status maps,
//! `reverse`) and written to the linked row in one transaction; then the state records the new
//! bases and, when the row held nothing unpushed before, the hash of its new payload as
//! `pushed_hash`, so the next push pass finds it unchanged and sends nothing (no echo), however
//! the write-back was captured (trigger, `updated_at`, scan).

use crate::conflict::{Decision, decide};
use crate::error::EngineError;
use crate::plan::{PlanInput, plan};
use crate::push::Engine;
use crmsync_core::config::raw::default_conflict;
use crmsync_core::config::{ConflictPolicy, FieldConfig, SyncConfig};
use crmsync_core::mapping::{map_one, map_value_back, pulls, referenced_columns};
use crmsync_crm::{ChangedRecord, Crm};
use crmsync_store::source::sqlite::SourceRow;
use crmsync_store::{
    Conflict, NewJob, PullRecord, PullStore, QuarantineEntry, QuarantineKind, Store,
};
use std::collections::{HashMap, HashSet};

/// Counts of one poll.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullReport {
    /// Changed CRM records read.
    pub fetched: u64,
    /// App rows written.
    pub applied: u64,
    /// Records whose two-way fields already agreed (e.g. our own pushes coming back).
    pub unchanged: u64,
    /// Fields where the app's value was kept (it is pushed next).
    pub kept_app: u64,
    /// Fields parked for review.
    pub parked: u64,
    /// CRM records with no link (created in the CRM; not imported yet).
    pub unlinked: u64,
    /// CRM values that cannot be mapped back (e.g. a deal stage with no app status).
    pub unmappable: u64,
    /// Linked records read back by id (webhook events, reconciliation).
    pub checked: u64,
    /// Webhook events read (stored ones, applied now).
    pub events: u64,
    /// Webhook events that needed no read: our own writes coming back, fields we don't pull.
    pub events_skipped: u64,
    /// Linked CRM records found deleted (archived), with the sync's action done.
    pub deleted: u64,
    /// Deletions held by the mass-deletion guard.
    pub deletions_held: u64,
    /// Deleted records that came back (restored in the CRM).
    pub restored: u64,
    /// Links re-pointed to the survivor of a CRM merge.
    pub merged: u64,
    /// Merges after which two app records map to one CRM record (held, reported).
    pub shared: u64,
    /// Records pushed again because the CRM's value of a push field differed (reconcile).
    pub repushed: u64,
}

impl PullReport {
    /// What a reconciliation repaired: every difference it found and fixed.
    pub fn drift(&self) -> u64 {
        self.applied
            + self.repushed
            + self.deleted
            + self.deletions_held
            + self.restored
            + self.merged
            + self.shared
    }
}

/// The two-way fields of `sync`: (field key, config).
pub fn pulled_fields(sync: &SyncConfig) -> Vec<(&str, &FieldConfig)> {
    sync.fields
        .iter()
        .filter(|(_, f)| pulls(sync, f))
        .map(|(k, f)| (k.as_str(), f))
        .collect()
}

/// The app column a pulled field writes.
pub fn column_of<'a>(key: &'a str, field: &'a FieldConfig) -> &'a str {
    field.column.as_deref().unwrap_or(key)
}

/// A timestamp column value as ms: epoch ms, RFC 3339, or `YYYY-MM-DD HH:MM:SS[.f]` (UTC).
fn parse_ms(v: &str) -> Option<i64> {
    let v = v.trim();
    if let Ok(n) = v.parse::<i64>() {
        return Some(n);
    }
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(v) {
        return Some(d.timestamp_millis());
    }
    chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|d| d.and_utc().timestamp_millis())
}

impl<C: Crm, S: Store + PullStore> Engine<C, S> {
    /// Payload hashes of `rows` as the push planner computes them (records it would hold or
    /// quarantine have none).
    pub(crate) async fn payload_hashes(
        &self,
        sync: &SyncConfig,
        rows: &[SourceRow],
    ) -> Result<HashMap<String, NewJob>, EngineError> {
        let mut parents = HashMap::new();
        for (column, target) in &sync.associate {
            let keys: Vec<String> = rows
                .iter()
                .filter_map(|r| r.values.get(column).cloned().flatten())
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            parents.insert(target.clone(), self.store.links_for(target, &keys).await?);
        }
        let input = PlanInput {
            sync,
            links: &HashMap::new(),
            parents: &parents,
            quarantined: &HashSet::new(),
            priority: 0,
            now_ms: self.clock.now_ms(),
            assume_parents: false,
        };
        Ok(plan(&input, rows)
            .jobs
            .into_iter()
            .map(|j| (j.local_id.clone(), j))
            .collect())
    }

    /// The jobs the push planner would make now for these records of `sync` (read from the app
    /// database), by record; records it would hold or quarantine have none.
    pub(crate) async fn current_jobs(
        &self,
        sync: &SyncConfig,
        local_ids: &[String],
    ) -> Result<HashMap<String, NewJob>, EngineError> {
        let mut columns = referenced_columns(sync);
        if let Some(c) = &sync.updated_at_column {
            columns.push(c);
        }
        let rows = self
            .source
            .fetch(&sync.table, &sync.key, &columns, local_ids)
            .await?;
        self.payload_hashes(sync, &rows).await
    }

    /// Applies `changes` (one page of a poll) of `sync` to the app database and records the
    /// outcome. Returns when everything is durable, so the caller may move the cursor.
    pub(crate) async fn apply_changes(
        &self,
        sync: &SyncConfig,
        changes: &[ChangedRecord],
        report: &mut PullReport,
    ) -> Result<(), EngineError> {
        let fields = pulled_fields(sync);
        report.fetched += changes.len() as u64;
        let crm_ids: Vec<String> = changes.iter().map(|c| c.crm_id.clone()).collect();
        let local_of = self.store.local_ids_of(&sync.name, &crm_ids).await?;
        let local_ids: Vec<String> = local_of.values().cloned().collect();
        let mut columns = referenced_columns(sync);
        if let Some(c) = &sync.updated_at_column {
            columns.push(c);
        }
        let rows: HashMap<String, SourceRow> = self
            .source
            .fetch(&sync.table, &sync.key, &columns, &local_ids)
            .await?
            .into_iter()
            .map(|r| (r.key.clone(), r))
            .collect();
        let bases = self.store.bases(&sync.name, &local_ids).await?;
        let parked: HashSet<String> = self
            .store
            .open_conflicts(Some(&sync.name))
            .await?
            .into_iter()
            .map(|c| c.local_id)
            .collect();
        let links = self.store.links_for(&sync.name, &local_ids).await?;
        let now = self.clock.now_ms();

        let mut updates: Vec<(String, Vec<(String, String)>)> = Vec::new();
        let mut new_rows: Vec<SourceRow> = Vec::new();
        let mut old_rows: Vec<SourceRow> = Vec::new();
        let mut records: HashMap<String, PullRecord> = HashMap::new();
        let mut conflicts = Vec::new();
        for change in changes {
            let Some(local_id) = local_of.get(&change.crm_id) else {
                report.unlinked += 1;
                continue;
            };
            let Some(row) = rows.get(local_id) else {
                continue; // deleted in the app meanwhile
            };
            if parked.contains(local_id) {
                continue;
            }
            let base = bases.get(local_id);
            let app_ms = sync
                .updated_at_column
                .as_ref()
                .and_then(|c| row.values.get(c).cloned().flatten())
                .and_then(|v| parse_ms(&v));
            let crm_newer = app_ms.is_none_or(|a| change.modified_ms >= a);
            let mut writes = Vec::new();
            let mut new_bases = Vec::new();
            for (key, field) in &fields {
                let crm_value = change
                    .properties
                    .get(&field.crm)
                    .cloned()
                    .unwrap_or_default();
                let app_value = map_one(key, field, &row.values).unwrap_or_default();
                let policy: ConflictPolicy = field.conflict.unwrap_or_else(default_conflict);
                let base_value = base.and_then(|b| b.get(&field.crm)).map(String::as_str);
                match decide(&app_value, &crm_value, base_value, policy, crm_newer) {
                    Decision::Agree => new_bases.push((field.crm.clone(), crm_value)),
                    Decision::KeepApp => report.kept_app += 1,
                    Decision::TakeCrm => match map_value_back(field, &crm_value) {
                        Ok(app) => {
                            writes.push((column_of(key, field).to_string(), app));
                            new_bases.push((field.crm.clone(), crm_value));
                        }
                        Err(why) => {
                            report.unmappable += 1;
                            tracing::warn!(sync = %sync.name, record = %local_id, crm_id = %change.crm_id, "{why}");
                        }
                    },
                    Decision::Park => {
                        report.parked += 1;
                        conflicts.push(Conflict {
                            id: 0,
                            sync: sync.name.clone(),
                            local_id: local_id.clone(),
                            crm_id: change.crm_id.clone(),
                            field: field.crm.clone(),
                            column: column_of(key, field).to_string(),
                            app_value,
                            crm_value,
                            base_value: base_value.map(str::to_string),
                            created_at_ms: now,
                        });
                    }
                }
            }
            if writes.is_empty() {
                report.unchanged += u64::from(new_bases.len() == fields.len());
            } else {
                let mut new_row = row.clone();
                for (column, value) in &writes {
                    new_row
                        .values
                        .insert(column.clone(), (!value.is_empty()).then(|| value.clone()));
                }
                old_rows.push(row.clone());
                new_rows.push(new_row);
                updates.push((local_id.clone(), writes));
            }
            records.insert(
                local_id.clone(),
                PullRecord {
                    local_id: local_id.clone(),
                    pushed_hash: None,
                    pulled_hash: None,
                    bases: new_bases,
                },
            );
        }

        // Hashes before and after: a row that held nothing unpushed now maps to exactly what
        // the CRM holds, so its new hash becomes the pushed hash.
        let before = self.payload_hashes(sync, &old_rows).await?;
        let after = self.payload_hashes(sync, &new_rows).await?;
        let mut requeue = Vec::new();
        for row in &new_rows {
            let Some(rec) = records.get_mut(&row.key) else {
                continue;
            };
            let clean = before.get(&row.key).is_some_and(|j| {
                links.get(&row.key).and_then(|l| l.pushed_hash.as_ref()) == Some(&j.hash)
            });
            let job = after.get(&row.key);
            rec.pulled_hash = job.map(|j| j.hash.clone());
            if clean {
                rec.pushed_hash = rec.pulled_hash.clone();
            } else if let Some(job) = job {
                // The row also holds app changes not pushed yet: a queued job may carry the
                // field's old value, so it is replaced by the row's new payload.
                requeue.push(job.clone());
            }
        }
        if !updates.is_empty() {
            report.applied += self
                .source
                .apply_pulled(&sync.table, &sync.key, &updates)
                .await?;
        }
        let records: Vec<PullRecord> = records.into_values().collect();
        self.store.record_pulls(&sync.name, &records).await?;
        self.store.enqueue(&requeue, now).await?;
        if !conflicts.is_empty() {
            // Held while parked: its pending push (if any) is dropped so it cannot overwrite
            // the CRM's value, and every pass looks at it again once it is resolved.
            let held: Vec<QuarantineEntry> = conflicts
                .iter()
                .map(|c| QuarantineEntry {
                    sync: c.sync.clone(),
                    local_id: c.local_id.clone(),
                    kind: QuarantineKind::Held,
                    field: Some(c.column.clone()),
                    rule: "conflict".into(),
                    message: format!(
                        "`{}` changed on both sides (app `{}`, CRM `{}`); see `crmsync conflicts`",
                        c.column, c.app_value, c.crm_value
                    ),
                    first_seen_ms: now,
                    last_seen_ms: now,
                    attempts: 1,
                    retry_requested: false,
                })
                .collect();
            self.store.add_conflicts(&conflicts).await?;
            self.store.quarantine(&held).await?;
        }
        Ok(())
    }
}
