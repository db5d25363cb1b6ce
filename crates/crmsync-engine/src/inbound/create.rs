//! Records created in the CRM becoming app rows (`on_crm_create = "insert"`), on the sync's
//! leader, after the page's linked records are committed:
//!
//! ```text
//!  claim (state) ──▶ insert (app, guarded by the write-back column) ──▶ our key into the
//!  CRM record's id property ──▶ link + bases + pushed hash (state, one transaction)
//! ```
//!
//! Invariants (decision 39 in docs/decisions.md):
//! - **Never two rows for one CRM record.** Every insert carries the CRM id in the sync's
//!   `write_back_column` and is guarded by it ([`crmsync_store::Source::insert`]): an insert
//!   repeated after a crash, a failed step or by a second leader finds the row it made.
//! - **Never a second CRM record.** Upserts go by the id property, which a record created in
//!   the CRM does not hold: our key is written into it before the link is recorded. Until the
//!   link is recorded the record stays *claimed*, and capture does not push its row as new
//!   ([`Engine::revisit_creates`] parks it and hints the record, so the next read back
//!   finishes the job).
//! - **No echo.** The link's pushed hash is the row's payload when that is exactly what the
//!   CRM holds, so the insert's own change-capture event sends nothing. A row the database
//!   filled with more (a default of a push field) is queued, and that push updates the same
//!   record by our key.
//! - **A refusal is reported once.** A row the database refuses is recorded with the reason
//!   and tried again only when the CRM record or the sync's config changes, or on `crmsync
//!   retry`.

use super::decide::{NewRecord, pulled_fields};
use super::read_back::same_value;
use crate::engine::Engine;
use crate::error::EngineError;
use crate::outbound::plan::Payload;
use crate::report::PullReport;
use crate::telemetry::Event;
use crmsync_core::config::{InsertValue, OnCrmCreate, SyncConfig};
use crmsync_core::hash::mapping_fingerprint;
use crmsync_core::mapping::map_one;
use crmsync_crm::{Crm, ErrorKind, ObjectKind, UpdateInput};
use crmsync_store::{
    Capture, CaptureCommit, CreateState, CreatedLink, CrmCreate, Hint, Inserted, Link, NewRow,
    Source, State,
};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The rule of a refusal by the app database.
pub const REFUSED_BY_DATABASE: &str = "database";

/// The hint reason of a CRM record whose insert is to be finished or tried again.
const HINT_REASON: &str = "insert";

impl<A, S, C> Engine<A, S, C>
where
    A: Source + Capture,
    S: State,
    C: Crm,
{
    /// Inserts rows for `records` (unlinked CRM records of `sync` decided to become rows) and
    /// links them (the caller leads the sync).
    pub(crate) async fn create_rows(
        &self,
        sync: &SyncConfig,
        records: Vec<NewRecord>,
        report: &mut PullReport,
    ) -> Result<(), EngineError> {
        if records.is_empty() {
            return Ok(());
        }
        let column = write_back_column(sync)?;
        let fingerprint = mapping_fingerprint(sync);
        let now = self.clock.now_ms();
        // Claimed before the inserts: after a crash, the records that may have a row without
        // a link are known.
        let claims: Vec<(String, i64)> = records
            .iter()
            .map(|r| (r.crm_id.clone(), r.modified_ms))
            .collect();
        self.state
            .claim_creates(&sync.name, &claims, &fingerprint, now)
            .await?;
        let mut now_columns = Vec::new();
        let mut constants = Vec::new();
        for (c, v) in &sync.insert_values {
            match v {
                InsertValue::Now => now_columns.push(c.clone()),
                InsertValue::Constant(x) => constants.push((c.clone(), Some(x.clone()))),
            }
        }
        let mut made = Vec::new();
        let mut refused = Vec::new();
        for r in records {
            let mut values: Vec<(String, Option<String>)> = r
                .values
                .iter()
                .map(|(c, v)| (c.clone(), Some(v.clone())))
                .collect();
            values.extend(constants.iter().cloned());
            values.push((column.to_string(), Some(r.crm_id.clone())));
            let row = NewRow {
                values,
                now: now_columns.clone(),
                unless: Some((column.to_string(), r.crm_id.clone())),
            };
            match self.app.insert(&sync.table, &sync.key, &row).await? {
                Inserted::Row(key) => {
                    report.inserted += 1;
                    made.push((r, key));
                }
                // Inserted before (a crash or a failed step came between): finished now.
                Inserted::Exists(key) => made.push((r, key)),
                Inserted::Refused(reason) => {
                    report.insert_refused += 1;
                    self.emit(Event::InsertRefused {
                        sync: sync.name.clone(),
                        crm_id: r.crm_id.clone(),
                        reason: reason.clone(),
                    });
                    refused.push(CrmCreate {
                        sync: sync.name.clone(),
                        crm_id: r.crm_id.clone(),
                        state: CreateState::Refused,
                        rule: REFUSED_BY_DATABASE.to_string(),
                        message: reason,
                        modified_ms: r.modified_ms,
                        fingerprint: fingerprint.clone(),
                        first_seen_ms: now,
                        last_seen_ms: now,
                        attempts: 0,
                        retry_requested: false,
                    });
                }
            }
        }
        self.state.refuse_creates(&refused).await?;
        self.link_created(sync, made).await
    }

    /// Writes our key into each made row's CRM record, then records the links with the bases
    /// and hashes the rows now hold (see the file's invariants).
    async fn link_created(
        &self,
        sync: &SyncConfig,
        made: Vec<(NewRecord, String)>,
    ) -> Result<(), EngineError> {
        if made.is_empty() {
            return Ok(());
        }
        let object = Self::object_of(sync)?;
        let keyed = self.write_keys(sync, object, &made).await?;
        let made: Vec<(NewRecord, String)> = made
            .into_iter()
            .filter(|(r, _)| keyed.contains(&r.crm_id))
            .collect();
        if made.is_empty() {
            return Ok(());
        }
        let locals: Vec<String> = made.iter().map(|(_, k)| k.clone()).collect();
        let mut columns = crmsync_core::mapping::referenced_columns(sync);
        if let Some(c) = &sync.updated_at_column {
            columns.push(c);
        }
        let rows: HashMap<String, crmsync_store::SourceRow> = self
            .app
            .fetch(&sync.table, &sync.key, &columns, &locals)
            .await?
            .into_iter()
            .map(|r| (r.key.clone(), r))
            .collect();
        // Planned as linked records (a link decides whether `create_only` values belong in
        // the payload: they do not, the CRM made the record).
        let links: HashMap<String, Link> = made
            .iter()
            .map(|(r, k)| {
                (
                    k.clone(),
                    Link {
                        crm_object: sync.object.clone(),
                        crm_id: Some(r.crm_id.clone()),
                        pushed_hash: None,
                        version: 0,
                    },
                )
            })
            .collect();
        let found: Vec<crmsync_store::SourceRow> = rows.values().cloned().collect();
        let jobs = self.jobs_for_linked_rows(sync, &found, &links).await?;
        let fields = pulled_fields(sync);
        let mut created = Vec::new();
        let mut requeue = Vec::new();
        for (r, key) in &made {
            let mut bases = Vec::new();
            if let Some(row) = rows.get(key) {
                for (name, field) in &fields {
                    let app = map_one(name, field, &row.values).unwrap_or_default();
                    let crm = r.crm.get(&field.crm).map_or("", String::as_str);
                    if app == crm || same_value(&app, crm) {
                        bases.push((field.crm.clone(), crm.to_string()));
                    }
                }
            }
            let job = jobs.get(key);
            let clean = job.is_some_and(|j| holds_payload(&j.payload, &r.crm));
            if !clean && let Some(j) = job {
                requeue.push(j.clone());
            }
            created.push(CreatedLink {
                local_id: key.clone(),
                crm_id: r.crm_id.clone(),
                pushed_hash: job.filter(|_| clean).map(|j| j.hash.clone()),
                pulled_hash: job.map(|j| j.hash.clone()),
                bases,
                written_back: true,
            });
        }
        let now = self.clock.now_ms();
        self.state
            .record_creates(&sync.name, &sync.object, &created, now)
            .await?;
        if !requeue.is_empty() {
            self.state
                .commit_capture(&CaptureCommit::jobs(&sync.name, requeue, now))
                .await?;
            self.wakes.deliver.notify_one();
        }
        Ok(())
    }

    /// Writes each row's key into its CRM record's id property, so upserts by our key find
    /// the record from now on; returns the CRM ids that hold it. A batch the CRM refuses as a
    /// whole is tried record by record; a record refused alone stays claimed (its row is not
    /// pushed, and the next read back tries again) and the refusal is reported. Any other
    /// failure stops the step: the records stay claimed and are finished later.
    async fn write_keys(
        &self,
        sync: &SyncConfig,
        object: ObjectKind,
        made: &[(NewRecord, String)],
    ) -> Result<HashSet<String>, EngineError> {
        let inputs: Vec<UpdateInput> = made
            .iter()
            .map(|(r, key)| UpdateInput {
                crm_id: r.crm_id.clone(),
                properties: BTreeMap::from([(sync.id_property.clone(), key.clone())]),
            })
            .collect();
        let mut keyed = HashSet::new();
        for chunk in inputs.chunks(self.crm.max_batch().max(1)) {
            let r = self.crm.update_batch(object, chunk).await;
            self.flush_calls().await?;
            match r {
                Ok(()) => keyed.extend(chunk.iter().map(|u| u.crm_id.clone())),
                Err(e) if e.kind == ErrorKind::Rejected => {
                    for one in chunk {
                        let r = self
                            .crm
                            .update_batch(object, std::slice::from_ref(one))
                            .await;
                        self.flush_calls().await?;
                        match r {
                            Ok(()) => {
                                keyed.insert(one.crm_id.clone());
                            }
                            Err(e) if e.kind == ErrorKind::Rejected => {
                                self.emit(Event::TaskFailed {
                                    task: format!("insert:{}", sync.name),
                                    error: format!(
                                        "the CRM refused to store key {} in `{}` of record {}: {}",
                                        one.properties
                                            .get(&sync.id_property)
                                            .map_or("", String::as_str),
                                        sync.id_property,
                                        one.crm_id,
                                        e.message
                                    ),
                                });
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(keyed)
    }

    /// The CRM records of `sync` whose insert is unfinished (claimed) or due again (refused,
    /// and `crmsync retry` asked or the config changed since) get hints, so the next read
    /// back finishes or repeats their inserts. Returns the app keys of rows that exist for
    /// claimed records: capture must not push them as new (they are not linked yet). The
    /// caller leads the sync.
    pub(crate) async fn revisit_creates(
        &self,
        sync: &SyncConfig,
    ) -> Result<HashSet<String>, EngineError> {
        let now = self.clock.now_ms();
        let (hints, keys) = creates_to_revisit(&self.app, &self.state, sync, now).await?;
        if !hints.is_empty() {
            self.state.add_hints(&hints, now).await?;
        }
        Ok(keys)
    }
}

/// What [`Engine::revisit_creates`] does, without writing: the hints to add (claimed records,
/// refusals due again) and the app keys of rows that exist for claimed records.
pub(crate) async fn creates_to_revisit<A: Source, S: State>(
    app: &A,
    state: &S,
    sync: &SyncConfig,
    now_ms: i64,
) -> Result<(Vec<Hint>, HashSet<String>), EngineError> {
    if sync.on_crm_create != OnCrmCreate::Insert {
        return Ok((vec![], HashSet::new()));
    }
    let entries = state.creates(Some(&sync.name)).await?;
    if entries.is_empty() {
        return Ok((vec![], HashSet::new()));
    }
    let fingerprint = mapping_fingerprint(sync);
    let mut claimed = Vec::new();
    let mut hints = Vec::new();
    for e in &entries {
        let due = match e.state {
            CreateState::Claimed => {
                claimed.push(e.crm_id.clone());
                true
            }
            CreateState::Refused => e.retry_requested || e.fingerprint != fingerprint,
        };
        if due {
            hints.push(Hint {
                sync: sync.name.clone(),
                crm_id: e.crm_id.clone(),
                reason: HINT_REASON.to_string(),
                added_at_ms: now_ms,
            });
        }
    }
    if claimed.is_empty() {
        return Ok((hints, HashSet::new()));
    }
    let column = write_back_column(sync)?;
    let keys = app
        .keys_by(&sync.table, &sync.key, column, &claimed)
        .await?
        .into_values()
        .collect();
    Ok((hints, keys))
}

/// The sync's `write_back_column`, which `on_crm_create = "insert"` requires (the config's
/// validation says so too).
fn write_back_column(sync: &SyncConfig) -> Result<&str, EngineError> {
    sync.write_back_column.as_deref().ok_or_else(|| {
        EngineError::Config(format!(
            "sync `{}`: on_crm_create = \"insert\" needs a write_back_column",
            sync.name
        ))
    })
}

/// Whether the CRM holds exactly `payload` (a job's JSON): every property the same as in
/// `crm`, and no association to make. Then nothing is to be pushed.
fn holds_payload(payload: &str, crm: &BTreeMap<String, String>) -> bool {
    let Ok(p) = serde_json::from_str::<Payload>(payload) else {
        return false;
    };
    p.associations.is_empty()
        && p.properties
            .iter()
            .all(|(k, v)| crm.get(k).is_some_and(|c| c == v || same_value(v, c)))
}

#[cfg(test)]
mod tests {
    use super::holds_payload;
    use std::collections::BTreeMap;

    #[test]
    fn a_payload_is_held_when_every_property_is_the_crms() {
        let crm = BTreeMap::from([
            ("email".to_string(), "a@example.com".to_string()),
            ("score".to_string(), "5.0".to_string()),
        ]);
        let p = |props: &str, assoc: &str| {
            format!(r#"{{"properties":{{{props}}},"associations":{{{assoc}}}}}"#)
        };
        assert!(holds_payload(
            &p(r#""email":"a@example.com","score":"5""#, ""),
            &crm
        ));
        assert!(
            !holds_payload(&p(r#""email":"a@example.com","plan":"free""#, ""), &crm),
            "a value the CRM lacks is to be pushed"
        );
        assert!(
            !holds_payload(&p(r#""email":"a@example.com""#, r#""companies":"9""#), &crm),
            "an association is to be made"
        );
        assert!(!holds_payload("not json", &crm));
    }
}
