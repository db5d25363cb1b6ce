//! Deliver: one claimed batch goes to the CRM — upsert by our key (or, for records not in the
//! CRM yet, a create carrying their links where the CRM allows it), then the associations the
//! write did not carry. What the CRM said is returned as an [`Outcome`] for [`super::settle`];
//! nothing here touches a database. A batch the CRM refuses as a whole is split in halves until the bad record stands alone and is quarantined
//! with the CRM's own message; the rest is delivered. Retryable failures (after the client's own
//! retries) put the jobs back with a delay; nothing is lost and, because every write is an
//! upsert by our key, nothing is duplicated when they run again.

use super::plan::Payload;
use crate::error::EngineError;
use crmsync_core::config::SyncConfig;
use crmsync_crm::{
    AssociationInput, Crm, CrmError, ErrorKind, ObjectKind, ParentRef, RecordOutcome, UpsertInput,
};
use crmsync_store::{Delivered, Job, QuarantineEntry, QuarantineKind};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// What the dispatcher needs to know about the syncs around the one it delivers.
pub struct Target<'a> {
    pub sync: &'a SyncConfig,
    pub object: ObjectKind,
    /// Object of each association target sync, by sync name.
    pub parent_objects: &'a HashMap<String, ObjectKind>,
}

/// Result of delivering one claimed batch.
#[derive(Debug, Default)]
pub struct Outcome {
    pub delivered: Vec<Delivered>,
    /// Jobs among `delivered` whose record the CRM created (the others it updated).
    pub created: std::collections::HashSet<i64>,
    pub rejected: Vec<(i64, QuarantineEntry)>,
    /// Jobs to put back for a later retry, with the error.
    pub failed: Vec<(i64, CrmError)>,
}

/// Delivers `jobs` (one claimed batch). Returns `Err` only when the CRM refuses the connection
/// itself (auth, schema): then no further batch can succeed either.
pub async fn deliver<C: Crm>(
    crm: &C,
    target: &Target<'_>,
    jobs: &[Job],
    now_ms: i64,
) -> Result<Outcome, EngineError> {
    let mut out = Outcome::default();
    let mut payloads: HashMap<i64, Payload> = HashMap::new();
    let mut good = Vec::with_capacity(jobs.len());
    for j in jobs {
        match serde_json::from_str::<Payload>(&j.payload) {
            Ok(p) => {
                payloads.insert(j.id, p);
                good.push(j.clone());
            }
            Err(e) => out.rejected.push((
                j.id,
                reject(
                    target.sync,
                    j,
                    None,
                    format!("queued payload is unreadable: {e}"),
                    now_ms,
                ),
            )),
        }
    }
    let mut upserted: Vec<(Job, String, bool)> = Vec::new();
    upsert_split(
        crm,
        target,
        &good,
        &payloads,
        now_ms,
        &mut upserted,
        &mut out,
    )
    .await?;

    // Associations: one batch call per target object, for the pairs the write did not carry
    // already (always for `links_on_write` pairs; for a record the write created, also the
    // `links_on_create` ones — a create that found the record existing reports
    // `created: false`, and its links are made here). A failure sends the records back to the
    // queue; their upsert is repeated next time, harmlessly.
    let mut by_target: BTreeMap<&str, Vec<(i64, AssociationInput)>> = BTreeMap::new();
    for (job, crm_id, created) in &upserted {
        if let Some(p) = payloads.get(&job.id) {
            for (target_sync, parent_id) in &p.associations {
                if linked_on_write(crm, target, target_sync)
                    || (p.create && *created && linked_on_create(crm, target, target_sync))
                {
                    continue;
                }
                by_target.entry(target_sync.as_str()).or_default().push((
                    job.id,
                    AssociationInput {
                        from_id: crm_id.clone(),
                        to_id: parent_id.clone(),
                    },
                ));
            }
        }
    }
    let mut assoc_failed: HashMap<i64, CrmError> = HashMap::new();
    for (target_sync, pairs) in by_target {
        let Some(to) = target.parent_objects.get(target_sync).copied() else {
            continue;
        };
        for chunk in pairs.chunks(crm.max_batch().max(1)) {
            associate_split(
                crm,
                target.object,
                to,
                target_sync,
                chunk,
                &mut assoc_failed,
            )
            .await?;
        }
    }
    for (job, crm_id, created) in upserted {
        if let Some(e) = assoc_failed.remove(&job.id) {
            out.failed.push((job.id, e));
            continue;
        }
        if created {
            out.created.insert(job.id);
        }
        out.delivered.push(Delivered {
            job_id: job.id,
            local_id: job.local_id,
            crm_id,
            hash: job.hash,
        });
    }
    Ok(out)
}

/// Whether the CRM links a record of this sync to `target_sync`'s parent inside the write.
fn linked_on_write<C: Crm>(crm: &C, target: &Target<'_>, target_sync: &str) -> bool {
    target
        .parent_objects
        .get(target_sync)
        .is_some_and(|to| crm.links_on_write(target.object, *to))
}

/// Whether the CRM links a new record of this sync to `target_sync`'s parent inside its create.
fn linked_on_create<C: Crm>(crm: &C, target: &Target<'_>, target_sync: &str) -> bool {
    target
        .parent_objects
        .get(target_sync)
        .is_some_and(|to| crm.links_on_create(target.object, *to))
}

/// The parents a payload's write carries itself (see [`Crm::links_on_write`], and for a record
/// not in the CRM yet [`Crm::links_on_create`]).
fn inline_links<C: Crm>(crm: &C, target: &Target<'_>, p: &Payload) -> Vec<ParentRef> {
    p.associations
        .iter()
        .filter_map(|(target_sync, parent_id)| {
            let to = *target.parent_objects.get(target_sync.as_str())?;
            let inline = crm.links_on_write(target.object, to)
                || (p.create && crm.links_on_create(target.object, to));
            inline.then(|| ParentRef {
                object: to,
                crm_id: parent_id.clone(),
            })
        })
        .collect()
}

/// Associates `pairs` (job id, pair), splitting a refused call in halves until each refused
/// pair stands alone: HubSpot refuses a whole association batch for one pair whose parent is
/// gone, and without the split that one pair would fail (and finally kill) every job retried
/// with it. A pair refused alone fails its job with a message naming the parent record.
async fn associate_split<C: Crm>(
    crm: &C,
    from: ObjectKind,
    to: ObjectKind,
    target_sync: &str,
    pairs: &[(i64, AssociationInput)],
    failed: &mut HashMap<i64, CrmError>,
) -> Result<(), EngineError> {
    let mut stack: Vec<&[(i64, AssociationInput)]> = vec![pairs];
    while let Some(part) = stack.pop() {
        if part.is_empty() {
            continue;
        }
        let inputs: Vec<AssociationInput> = part.iter().map(|(_, a)| a.clone()).collect();
        let Err(e) = crm.associate_batch(from, to, &inputs).await else {
            continue;
        };
        if is_fatal(&e) {
            return Err(e.into());
        }
        match part {
            [(id, pair)] if e.kind == ErrorKind::Rejected => {
                failed.insert(*id, parent_refused(e, to, target_sync, pair));
            }
            // A retryable failure says nothing about which pair is bad: splitting would only
            // multiply the calls.
            _ if e.kind != ErrorKind::Rejected => {
                for (id, _) in part {
                    failed.insert(*id, e.clone());
                }
            }
            _ => {
                let (left, right) = part.split_at(part.len() / 2);
                stack.push(right);
                stack.push(left);
            }
        }
    }
    Ok(())
}

/// The error of a child whose association alone was refused: the child was just upserted, so
/// the parent is what the CRM could not find (deleted or merged away in the CRM). The message
/// starts with [`PARENT_GONE`], so `status` groups such jobs under one named reason.
fn parent_refused(
    e: CrmError,
    to: ObjectKind,
    target_sync: &str,
    pair: &AssociationInput,
) -> CrmError {
    let message = format!(
        "{PARENT_GONE}: the {to} record {} of sync {target_sync:?} cannot be associated ({})",
        pair.to_id, e.message
    );
    CrmError { message, ..e }
}

/// How the last error of a job whose parent record the CRM no longer has begins.
pub const PARENT_GONE: &str = "parent gone";

pub(crate) fn is_fatal(e: &CrmError) -> bool {
    matches!(
        e.kind,
        ErrorKind::Auth | ErrorKind::Schema | ErrorKind::Config
    )
}

fn reject(
    sync: &SyncConfig,
    job: &Job,
    rule: Option<&str>,
    message: String,
    now_ms: i64,
) -> QuarantineEntry {
    QuarantineEntry::new(
        &sync.name,
        &job.local_id,
        QuarantineKind::Rejected,
        None,
        rule.unwrap_or("crm"),
        message,
        now_ms,
    )
}

/// Upserts `jobs`, splitting on a whole-batch rejection until each bad record is alone.
async fn upsert_split<C: Crm>(
    crm: &C,
    target: &Target<'_>,
    jobs: &[Job],
    payloads: &HashMap<i64, Payload>,
    now_ms: i64,
    upserted: &mut Vec<(Job, String, bool)>,
    out: &mut Outcome,
) -> Result<(), EngineError> {
    // An explicit stack instead of recursion: async recursion needs boxing, a stack does not.
    let mut stack: Vec<&[Job]> = vec![jobs];
    while let Some(part) = stack.pop() {
        if part.is_empty() {
            continue;
        }
        let inputs: Vec<UpsertInput> = part
            .iter()
            .map(|j| UpsertInput {
                key: j.local_id.clone(),
                properties: payloads
                    .get(&j.id)
                    .map(|p| p.properties.clone())
                    .unwrap_or_default(),
                links: payloads
                    .get(&j.id)
                    .map(|p| inline_links(crm, target, p))
                    .unwrap_or_default(),
                new_record: payloads.get(&j.id).is_some_and(|p| p.create),
            })
            .collect();
        match crm
            .upsert_batch(target.object, &target.sync.id_property, &inputs)
            .await
        {
            Ok(outcomes) => {
                let by_key: HashMap<&str, &Job> =
                    part.iter().map(|j| (j.local_id.as_str(), j)).collect();
                for o in outcomes {
                    match o {
                        RecordOutcome::Upserted {
                            key,
                            crm_id,
                            created,
                        } => {
                            if let Some(j) = by_key.get(key.as_str()) {
                                upserted.push(((*j).clone(), crm_id, created));
                            }
                        }
                        RecordOutcome::Rejected { key, error } => {
                            if let Some(j) = by_key.get(key.as_str()) {
                                out.rejected.push((
                                    j.id,
                                    reject(
                                        target.sync,
                                        j,
                                        error.code.as_deref(),
                                        error.message,
                                        now_ms,
                                    ),
                                ));
                            }
                        }
                    }
                }
            }
            Err(e) if e.kind == ErrorKind::Rejected => {
                if let Some(shared) =
                    shared_by_all(&e, &inputs).filter(|_| !names_a_parent(target, &e))
                {
                    return Err(shared.into());
                }
                if part.len() == 1 {
                    out.rejected.push((
                        part[0].id,
                        reject(target.sync, &part[0], e.code.as_deref(), e.message, now_ms),
                    ));
                } else {
                    let (a, b) = part.split_at(part.len() / 2);
                    stack.push(b);
                    stack.push(a);
                }
            }
            Err(e) if is_fatal(&e) => return Err(e.into()),
            Err(e) => out.failed.extend(part.iter().map(|j| (j.id, e.clone()))),
        }
    }
    Ok(())
}

/// A whole-batch refusal that names a property every record of the batch sends with the same
/// value (a constant pipeline, a mapped stage the portal lacks): splitting would only repeat it
/// for every half, so it is a schema error of the mapping. `None` when the values differ or the
/// CRM named no property: then the batch is split to find the bad records.
fn shared_by_all(e: &CrmError, inputs: &[UpsertInput]) -> Option<CrmError> {
    let property = e.property.as_deref()?;
    if inputs.len() < 2 {
        return None;
    }
    let first = inputs[0].properties.get(property)?;
    if !inputs
        .iter()
        .all(|i| i.properties.get(property) == Some(first))
    {
        return None;
    }
    let mut shared = e.clone();
    shared.kind = ErrorKind::Schema;
    shared.message = format!(
        "{}; all {} records of the batch send `{property}` = `{first}`, so every record would fail the same way: fix the value in the mapping or create it in the CRM, then start crmsync again",
        e.message,
        inputs.len()
    );
    Some(shared)
}

/// Whether the CRM's refusal is about a property that carries a parent's CRM id (a line item's
/// `hs_product_id`): a value from our links, not from the mapping, so records sharing it (lines
/// of one product deleted in the CRM) are data errors to isolate, not a reason to stop the sync.
fn names_a_parent(target: &Target<'_>, e: &CrmError) -> bool {
    e.property.as_deref().is_some_and(|property| {
        target
            .parent_objects
            .values()
            .any(|to| target.object.reference_property(*to) == Some(property))
    })
}

/// Backoff before an engine-level retry of a job that failed `attempts` times: 30 s doubling,
/// capped at one hour.
pub fn retry_delay(attempts: i64) -> Duration {
    let exp = attempts.clamp(1, 8) as u32 - 1;
    Duration::from_secs((30u64 << exp).min(3600))
}
