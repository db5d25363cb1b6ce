//! Read before write, for syncs with two-way fields. An upsert carries the app's value of every
//! pushed field, including the two-way ones, so a CRM edit made since the last poll or webhook
//! would be overwritten without ever being seen as a conflict. Before a claimed batch is sent,
//! its linked records are read back (one batch read per `max_batch`); a record whose CRM value
//! of a two-way field moved away from the base is **not** pushed: it is handed to the sync's
//! leader as an inbound hint (the leader applies the edit by the field's conflict policy and
//! plans the record again), and its job is put back for a moment. Delivery never writes the
//! app database. Records whose CRM values still equal their bases go out with the batch.

use crate::error::EngineError;
use crate::inbound::decide::pulled_fields;
use crmsync_core::config::SyncConfig;
use crmsync_crm::{Crm, ObjectKind};
use crmsync_store::{Job, Records};
use std::collections::HashMap;

/// What the read before write found.
#[derive(Debug, Default)]
pub struct Rechecked {
    /// Jobs to send now.
    pub keep: Vec<Job>,
    /// Jobs whose record the CRM changed: not sent; their CRM ids go to the leader as hints.
    pub moved: Vec<(Job, String)>,
}

/// Reads the linked records of `jobs` back and sorts the jobs into [`Rechecked`]. Every CRM
/// call is reported to the client's observer as usual; the caller flushes the call log.
pub async fn recheck<C: Crm, S: Records>(
    crm: &C,
    state: &S,
    sync: &SyncConfig,
    object: ObjectKind,
    jobs: Vec<Job>,
) -> Result<Rechecked, EngineError> {
    let fields = pulled_fields(sync);
    if fields.is_empty() {
        return Ok(Rechecked {
            keep: jobs,
            moved: vec![],
        });
    }
    let locals: Vec<String> = jobs.iter().map(|j| j.local_id.clone()).collect();
    let links = state.links_for(&sync.name, &locals).await?;
    let bases = state.bases(&sync.name, &locals).await?;
    // Only records with a base can be checked against it (others were never agreed on).
    let crm_of: HashMap<String, String> = links
        .iter()
        .filter(|(local, _)| bases.contains_key(*local))
        .filter_map(|(local, l)| l.crm_id.clone().map(|c| (c, local.clone())))
        .collect();
    if crm_of.is_empty() {
        return Ok(Rechecked {
            keep: jobs,
            moved: vec![],
        });
    }
    let properties: Vec<String> = fields.iter().map(|(_, f)| f.crm.clone()).collect();
    let ids: Vec<String> = crm_of.keys().cloned().collect();
    let mut moved: HashMap<String, String> = HashMap::new();
    for chunk in ids.chunks(crm.max_batch().max(1)) {
        for record in crm.read_batch(object, chunk, &properties).await? {
            let Some(local) = crm_of.get(&record.crm_id) else {
                continue;
            };
            let Some(base) = bases.get(local) else {
                continue;
            };
            let differs = properties.iter().any(|p| {
                let crm = record.properties.get(p).map_or("", String::as_str);
                base.get(p).map_or(!crm.is_empty(), |b| b != crm)
            });
            if differs {
                moved.insert(local.clone(), record.crm_id.clone());
            }
        }
    }
    let mut out = Rechecked::default();
    for job in jobs {
        match moved.get(&job.local_id) {
            Some(crm_id) => {
                let crm_id = crm_id.clone();
                out.moved.push((job, crm_id));
            }
            None => out.keep.push(job),
        }
    }
    Ok(out)
}
