//! Settle: what the CRM said about one delivered batch becomes one [`Settlement`], applied by
//! the queue in one transaction — links with CRM ids and hashes, jobs done (or ready again when
//! their payload changed in flight), quarantine entries for refused records, retries with
//! backoff (dead after `max_attempts`), the new bases of two-way fields, and the release of
//! children waiting for these records. Only jobs still leased to this worker settle; the queue
//! reports the others as lost and they are delivered again by their new owner.

use super::deliver::{Outcome, retry_delay};
use super::plan::Payload;
use crate::error::EngineError;
use crate::inbound::decide::pulled_fields;
use crate::report::SyncReport;
use crmsync_core::config::SyncConfig;
use crmsync_crm::{ErrorKind, ObjectKind};
use crmsync_store::{Job, Queue, Retry, SettleReport, Settlement, StoreError};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The settlement of `jobs` (one delivered batch of `sync`) given the CRM's `outcome`.
pub fn settlement(
    sync: &SyncConfig,
    object: ObjectKind,
    jobs: &[Job],
    outcome: &Outcome,
    now_ms: i64,
    max_attempts: u32,
) -> Settlement {
    let by_id: HashMap<i64, &Job> = jobs.iter().map(|j| (j.id, j)).collect();
    let retry = outcome
        .failed
        .iter()
        .map(|(id, e)| {
            let attempts = by_id.get(id).map_or(1, |j| j.attempts);
            let wait = e
                .retry_after()
                .unwrap_or_default()
                .max(retry_delay(attempts));
            Retry {
                job_id: *id,
                error: e.message.clone(),
                run_at_ms: now_ms.saturating_add(i64::try_from(wait.as_millis()).unwrap_or(0)),
                // A rate limit says nothing about the record: it waits, it never dies of it.
                dead: attempts >= i64::from(max_attempts) && e.kind != ErrorKind::RateLimited,
            }
        })
        .collect();
    // The values of two-way fields the CRM accepted are the new bases.
    let pulled: Vec<&str> = pulled_fields(sync)
        .into_iter()
        .map(|(_, f)| f.crm.as_str())
        .collect();
    let mut bases = Vec::new();
    if !pulled.is_empty() {
        for d in &outcome.delivered {
            let Some(payload) = by_id
                .get(&d.job_id)
                .and_then(|j| serde_json::from_str::<Payload>(&j.payload).ok())
            else {
                continue;
            };
            for p in &pulled {
                let value = payload.properties.get(*p).cloned().unwrap_or_default();
                bases.push((d.local_id.clone(), p.to_string(), value));
            }
        }
    }
    Settlement {
        sync: sync.name.clone(),
        crm_object: object.as_str().to_string(),
        delivered: outcome.delivered.clone(),
        rejected: outcome.rejected.clone(),
        retry,
        bases,
        now_ms,
    }
}

/// How long a settle is retried when the state database fails transiently (a lost connection,
/// a lock timeout, a serialization failure) before it is kept for the next round.
const SETTLE_RETRY_FOR: Duration = Duration::from_secs(30);

/// Stores `settlement` for `owner`, retrying transient failures with a growing pause. A
/// settle is safe to repeat: one whose commit landed but whose answer was lost finds its jobs
/// settled already (reported lost, changed nothing), so the effect happens exactly once.
pub async fn store_settlement<S: Queue>(
    state: &S,
    owner: &str,
    settlement: &Settlement,
) -> Result<SettleReport, StoreError> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        match state.settle(owner, settlement).await {
            Err(e) if e.is_transient() && started.elapsed() < SETTLE_RETRY_FOR => {
                tracing::warn!(error = %e, "settling a batch failed; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            r => return r,
        }
    }
}

/// Applies `settlement` for `owner` and counts it into `report`.
pub async fn settle<S: Queue>(
    state: &S,
    owner: &str,
    settlement: &Settlement,
    outcome: &Outcome,
    report: &mut SyncReport,
) -> Result<SettleReport, EngineError> {
    let done = store_settlement(state, owner, settlement).await?;
    let lost: std::collections::HashSet<i64> = done.lost.iter().copied().collect();
    for d in outcome
        .delivered
        .iter()
        .filter(|d| !lost.contains(&d.job_id))
    {
        if outcome.created.contains(&d.job_id) {
            report.created += 1;
        } else {
            report.updated += 1;
        }
    }
    report.rejected += outcome
        .rejected
        .iter()
        .filter(|(id, _)| !lost.contains(id))
        .count() as u64;
    report.failed += outcome
        .failed
        .iter()
        .filter(|(id, _)| !lost.contains(id))
        .count() as u64;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crmsync_core::config::{Secrets, load_str};
    use crmsync_crm::CrmError;

    #[test]
    fn a_rate_limit_never_kills_a_job_out_of_attempts_but_a_server_error_does() {
        let config = load_str(
            "[source]\nurl = \"sqlite://app.db\"\n[crm]\nenvironment = \"sandbox\"\nkind = \"salesforce\"\nclient_id = \"c\"\nrefresh_token_env = \"R\"\n[[sync]]\nname = \"companies\"\ntable = \"customers\"\nobject = \"companies\"\nid_property = \"crmsync_id__c\"\n[sync.fields]\ncompany = { crm = \"Name\" }\n",
            std::path::Path::new("crmsync.toml"),
            Secrets::NotNeeded,
            &|_| None,
        )
        .expect("config valid");
        let job = |id: i64| Job {
            id,
            sync: "companies".into(),
            local_id: id.to_string(),
            payload: "{}".into(),
            hash: "h".into(),
            attempts: 8,
        };
        let jobs = [job(1), job(2)];
        let outcome = Outcome {
            failed: vec![
                (
                    1,
                    CrmError::new(ErrorKind::RateLimited, "TotalRequests Limit exceeded.")
                        .with_retry_after(Duration::from_secs(3600)),
                ),
                (2, CrmError::new(ErrorKind::Server, "502")),
            ],
            ..Outcome::default()
        };
        let s = settlement(
            &config.raw.syncs[0],
            ObjectKind::Companies,
            &jobs,
            &outcome,
            0,
            8,
        );
        let dead: Vec<(i64, bool)> = s.retry.iter().map(|r| (r.job_id, r.dead)).collect();
        assert_eq!(dead, vec![(1, false), (2, true)]);
        assert!(
            s.retry[0].run_at_ms >= 3_600_000,
            "the quota's wait is kept"
        );
    }
}
