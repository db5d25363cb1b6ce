//! The contract suite of the state database: one async case per promise of [`Records`],
//! [`Queue`], [`Lifecycle`], [`Coordination`], [`Inspect`] and [`Tokens`] (as written in
//! `lib.rs`), generic
//! over the backend, so every backend is held to the same behaviour. `tests/contract.rs` runs
//! it on each backend; another crate can run it on its own state with [`run_all`].
//!
//! Invariant: every case starts from a fresh, empty state and uses fixed times (`T0` and
//! offsets from it, never the wall clock), so a case gives the same answer on every run and
//! every backend. A failed promise panics with a message naming it (these are tests).

use crate::State;
use crate::model::*;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

/// The instant the cases start at (any fixed value would do).
pub const T0: i64 = 1_700_000_000_000;

/// The job lease the cases claim with.
pub const LEASE: Duration = Duration::from_millis(1_000);

/// A budget day, in ms.
const DAY_MS: i64 = 86_400_000;

/// The CRM object the cases' settlements link to.
const OBJECT: &str = "companies";

/// Runs every case on a fresh state from `make`, naming each on stderr first (shown with a
/// failure, so the failed case is known even from an assertion deep in a helper).
pub async fn run_all<S, F, Fut>(make: F)
where
    S: State,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    macro_rules! cases {
        ($($case:ident),* $(,)?) => {
            $(
                eprintln!("state suite: {}", stringify!($case));
                $case(make().await).await;
            )*
        };
    }
    cases!(
        links_and_versions,
        commit_capture_is_one_go,
        commit_capture_knows_what_the_crm_holds,
        enqueue_latest_state_wins,
        claim_order_limit_and_due_time,
        claim_order_spans_states,
        expired_leases_are_reclaimable,
        renew_extends_own_leases,
        still_current_needs_owner_and_hash,
        settle_delivered_is_done_or_ready,
        settle_releases_waiting_children,
        settle_rejected_quarantines_and_drops_the_job,
        settle_retry_and_dead,
        job_problems_grouped_by_error,
        settle_failure_keeps_a_payload_replaced_in_flight,
        settle_needs_the_lease,
        release_all_gives_jobs_back,
        quarantine_replaces_and_drops_the_job,
        recheck_keys_rule,
        blocked_keys_by_rule,
        cursors_per_direction_and_mechanism,
        counts_of_a_sync,
        write_backs_pending_and_marked,
        crm_creates_claimed_refused_and_linked,
        conflicts_parked_and_resolved,
        deletions_recorded_and_forgotten,
        merges_logged_newest_first,
        webhook_inbox,
        retention_prunes_applied_events_and_old_calls,
        hints_dedup_and_clear_rule,
        leader_leases,
        reserve_call_window,
        reserve_call_paced,
        reserve_call_day,
        reserve_call_per_connection,
        reserve_call_several_windows,
        bindings_and_the_kill_switch,
        call_log_summary,
        inspect_reads,
        concurrent_claims_are_exclusive,
        concurrent_reservations_stay_under_the_limit,
        oauth_tokens_only_move_forward,
        concurrent_token_stores_keep_the_latest,
    );
}

// ----- helpers ---------------------------------------------------------------------------------

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A job whose payload names its record and hash.
fn new_job(sync: &str, local_id: &str, hash: &str, priority: i32) -> NewJob {
    NewJob {
        sync: sync.to_string(),
        local_id: local_id.to_string(),
        payload: format!("{{\"id\":\"{local_id}\",\"hash\":\"{hash}\"}}"),
        hash: hash.to_string(),
        priority,
    }
}

/// Queues `(local id, hash, priority)` jobs of `sync` at `now`, unconditionally.
async fn enqueue<S: State>(s: &S, sync: &str, jobs: &[(&str, &str, i32)], now: i64) {
    let jobs = jobs
        .iter()
        .map(|(l, h, p)| new_job(sync, l, h, *p))
        .collect();
    let report = s
        .commit_capture(&CaptureCommit::jobs(sync, jobs, now))
        .await
        .expect("commit_capture");
    assert!(
        report.stale.is_empty(),
        "unconditional jobs are never stale"
    );
}

/// The one job of a record, if any.
async fn the_job<S: State>(s: &S, sync: &str, local_id: &str) -> Option<JobDetail> {
    let mut jobs = s.jobs_of(sync, local_id).await.expect("jobs_of");
    assert!(
        jobs.len() <= 1,
        "at most one job per record and direction: {jobs:?}"
    );
    jobs.pop()
}

/// The one job of a record, which must exist.
async fn job<S: State>(s: &S, sync: &str, local_id: &str) -> JobDetail {
    the_job(s, sync, local_id)
        .await
        .unwrap_or_else(|| panic!("{sync}/{local_id} has a job"))
}

fn local_ids(jobs: &[Job]) -> Vec<&str> {
    jobs.iter().map(|j| j.local_id.as_str()).collect()
}

fn job_id(jobs: &[Job], local_id: &str) -> i64 {
    jobs.iter()
        .find(|j| j.local_id == local_id)
        .map(|j| j.id)
        .unwrap_or_else(|| panic!("{local_id} was claimed"))
}

fn delivered(job: &Job, crm_id: &str) -> Delivered {
    Delivered {
        job_id: job.id,
        local_id: job.local_id.clone(),
        crm_id: crm_id.to_string(),
        hash: job.hash.clone(),
    }
}

fn settlement(sync: &str, now: i64) -> Settlement {
    Settlement {
        sync: sync.to_string(),
        crm_object: OBJECT.to_string(),
        now_ms: now,
        ..Default::default()
    }
}

/// Links one record through the queue (the only way a link is made): queue, claim, deliver.
/// Only for a sync with no other job due, so nothing else is claimed along.
async fn link<S: State>(s: &S, sync: &str, local_id: &str, crm_id: &str, hash: &str, now: i64) {
    enqueue(s, sync, &[(local_id, hash, 0)], now).await;
    let claimed = s
        .claim("linker", sync, 10, LEASE, now)
        .await
        .expect("claim");
    assert_eq!(
        local_ids(&claimed),
        [local_id],
        "only the record to link is due"
    );
    let report = s
        .settle(
            "linker",
            &Settlement {
                delivered: vec![delivered(&claimed[0], crm_id)],
                ..settlement(sync, now)
            },
        )
        .await
        .expect("settle");
    assert_eq!(report.settled, 1);
}

fn entry(
    sync: &str,
    local_id: &str,
    kind: QuarantineKind,
    rule: &str,
    now: i64,
) -> QuarantineEntry {
    QuarantineEntry::new(
        sync,
        local_id,
        kind,
        Some("email".to_string()),
        rule,
        format!("{rule} failed for {local_id}"),
        now,
    )
}

fn waiting(sync: &str, local_id: &str, parent: (&str, &str), now: i64) -> QuarantineEntry {
    QuarantineEntry {
        waits_for: Some((parent.0.to_string(), parent.1.to_string())),
        ..entry(sync, local_id, QuarantineKind::Held, "parent", now)
    }
}

async fn entry_of<S: State>(s: &S, sync: &str, local_id: &str) -> QuarantineEntry {
    s.quarantine_entry(sync, local_id)
        .await
        .expect("quarantine_entry")
        .unwrap_or_else(|| panic!("{sync}/{local_id} is quarantined"))
}

async fn link_of<S: State>(s: &S, sync: &str, local_id: &str) -> Option<Link> {
    s.links_for(sync, &strings(&[local_id]))
        .await
        .expect("links_for")
        .remove(local_id)
}

// ----- Records -------------------------------------------------------------------------------

/// Links carry a version that every inbound commit bumps (record_pulls, record_merges) and
/// that unlink forgets with the link and its bases.
pub async fn links_and_versions<S: State>(s: S) {
    link(&s, "co", "c1", "crm-1", "h1", T0).await;
    link(&s, "co", "c2", "crm-2", "h2", T0).await;
    let links = s
        .links_for("co", &strings(&["c1", "c2", "nope"]))
        .await
        .expect("links_for");
    assert_eq!(links.len(), 2, "a key without a link is absent");
    assert_eq!(
        links.get("c1"),
        Some(&Link {
            crm_object: OBJECT.to_string(),
            crm_id: Some("crm-1".to_string()),
            pushed_hash: Some("h1".to_string()),
            version: 0,
        })
    );

    // An inbound commit bumps the version; a `None` pushed hash leaves it alone.
    s.record_pulls(
        "co",
        &[PullRecord {
            local_id: "c1".to_string(),
            pushed_hash: None,
            pulled_hash: Some("p1".to_string()),
            bases: vec![("name".to_string(), "Acme".to_string())],
        }],
    )
    .await
    .expect("record_pulls");
    let l = link_of(&s, "co", "c1").await.expect("linked");
    assert_eq!((l.version, l.pushed_hash.as_deref()), (1, Some("h1")));
    s.record_pulls(
        "co",
        &[PullRecord {
            local_id: "c1".to_string(),
            pushed_hash: Some("h1b".to_string()),
            pulled_hash: None,
            bases: vec![("name".to_string(), "Acme Inc".to_string())],
        }],
    )
    .await
    .expect("record_pulls");
    let l = link_of(&s, "co", "c1").await.expect("linked");
    assert_eq!((l.version, l.pushed_hash.as_deref()), (2, Some("h1b")));
    let bases = s.bases("co", &strings(&["c1", "c2"])).await.expect("bases");
    assert_eq!(
        bases,
        HashMap::from([(
            "c1".to_string(),
            HashMap::from([("name".to_string(), "Acme Inc".to_string())])
        )]),
        "a base is replaced, and a record without bases is absent"
    );
    assert_eq!(
        link_of(&s, "co", "c2").await.map(|l| l.version),
        Some(0),
        "other links do not move"
    );

    // A pull for a record without a link creates none.
    s.record_pulls(
        "co",
        &[PullRecord {
            local_id: "ghost".to_string(),
            pushed_hash: Some("x".to_string()),
            pulled_hash: None,
            bases: vec![],
        }],
    )
    .await
    .expect("record_pulls");
    assert_eq!(link_of(&s, "co", "ghost").await, None);

    // A merge re-points the link and bumps its version.
    s.record_merges(&[CrmMerge {
        sync: "co".to_string(),
        local_id: "c1".to_string(),
        from_crm_id: "crm-1".to_string(),
        to_crm_id: "crm-9".to_string(),
        shared_with: None,
        at_ms: T0,
    }])
    .await
    .expect("record_merges");
    let l = link_of(&s, "co", "c1").await.expect("linked");
    assert_eq!((l.version, l.crm_id.as_deref()), (3, Some("crm-9")));
    assert_eq!(
        s.local_ids_of("co", &strings(&["crm-9", "crm-1", "crm-2", "crm-x"]))
            .await
            .expect("local_ids_of"),
        HashMap::from([
            ("crm-9".to_string(), "c1".to_string()),
            ("crm-2".to_string(), "c2".to_string()),
        ])
    );
    assert_eq!(
        s.links_page("co", None, 1).await.expect("links_page"),
        [("c1".to_string(), "crm-9".to_string())]
    );
    assert_eq!(
        s.links_page("co", Some("c1"), 10)
            .await
            .expect("links_page"),
        [("c2".to_string(), "crm-2".to_string())]
    );
    assert_eq!(s.link_count("co").await.expect("link_count"), 2);
    assert_eq!(s.link_count("other").await.expect("link_count"), 0);

    // Unlink forgets the link and its bases: the record's version reads 0 again.
    s.unlink("co", &strings(&["c1"])).await.expect("unlink");
    assert_eq!(link_of(&s, "co", "c1").await, None);
    assert!(
        s.bases("co", &strings(&["c1"]))
            .await
            .expect("bases")
            .is_empty()
    );
    assert_eq!(s.link_count("co").await.expect("link_count"), 1);
    let report = s
        .commit_capture(&CaptureCommit {
            jobs: vec![new_job("co", "c1", "h1c", 0)],
            expect_versions: HashMap::from([("c1".to_string(), 0)]),
            ..CaptureCommit::jobs("co", vec![], T0 + 1)
        })
        .await
        .expect("commit_capture");
    assert_eq!((report.queued, report.stale.len()), (1, 0));
}

/// A capture page commits jobs, quarantine entries, cleared entries and the cursor together;
/// records whose link version moved since planning are skipped and reported.
pub async fn commit_capture_is_one_go<S: State>(s: S) {
    link(&s, "co", "c1", "crm-1", "h1", T0).await;
    s.record_pulls(
        "co",
        &[PullRecord {
            local_id: "c1".to_string(),
            pushed_hash: None,
            pulled_hash: Some("p1".to_string()),
            bases: vec![],
        }],
    )
    .await
    .expect("record_pulls");
    s.quarantine(&[
        entry("co", "c6", QuarantineKind::Invalid, "email", T0),
        entry("co", "c7", QuarantineKind::Invalid, "email", T0),
    ])
    .await
    .expect("quarantine");

    let report = s
        .commit_capture(&CaptureCommit {
            sync: "co".to_string(),
            jobs: vec![
                new_job("co", "c1", "h1-new", 0),
                new_job("co", "c2", "h2", 0),
                new_job("co", "c3", "h3", 0),
            ],
            quarantine: vec![
                entry("co", "c4", QuarantineKind::Invalid, "email", T0 + 10),
                entry("co", "c1", QuarantineKind::Invalid, "email", T0 + 10),
            ],
            clear: strings(&["c6", "c7"]),
            unchanged: vec![],
            // c1 was planned at version 0 but a pull moved it to 1; c2 has no link (0);
            // c7's planner saw a version it no longer has; c3, c4 and c6 are unconditional.
            expect_versions: HashMap::from([
                ("c1".to_string(), 0),
                ("c2".to_string(), 0),
                ("c7".to_string(), 5),
            ]),
            cursor: Some(("trigger".to_string(), "42".to_string())),
            now_ms: T0 + 10,
        })
        .await
        .expect("commit_capture");
    assert_eq!(report.queued, 2, "c2 and c3 are queued");
    assert_eq!(
        report.stale,
        strings(&["c1", "c7"]),
        "stale records, sorted"
    );

    let c1 = job(&s, "co", "c1").await;
    assert_eq!(
        (c1.state.as_str(), c1.hash.as_str()),
        ("done", "h1"),
        "a stale job is not written"
    );
    assert!(
        s.quarantine_entry("co", "c1")
            .await
            .expect("quarantine_entry")
            .is_none(),
        "a stale entry is not written"
    );
    for (local, hash) in [("c2", "h2"), ("c3", "h3")] {
        let j = job(&s, "co", local).await;
        assert_eq!((j.state.as_str(), j.hash.as_str()), ("ready", hash));
    }
    let quarantined: Vec<String> = s
        .quarantined("co")
        .await
        .expect("quarantined")
        .into_iter()
        .map(|e| e.local_id)
        .collect();
    assert_eq!(
        quarantined,
        strings(&["c4", "c7"]),
        "c4 written, c6 cleared, c7's stale clear skipped"
    );
    assert_eq!(
        s.cursor("co", CursorDirection::Push, "trigger")
            .await
            .expect("cursor")
            .as_deref(),
        Some("42"),
        "the cursor is stored with its page"
    );
    assert_eq!(
        s.cursor("co", CursorDirection::Pull, "trigger")
            .await
            .expect("cursor"),
        None,
        "a capture cursor is a push cursor"
    );

    // A quarantine entry in the same commit as the record's job drops that job.
    s.commit_capture(&CaptureCommit {
        jobs: vec![new_job("co", "c8", "h8", 0)],
        quarantine: vec![entry("co", "c8", QuarantineKind::Invalid, "email", T0 + 20)],
        ..CaptureCommit::jobs("co", vec![], T0 + 20)
    })
    .await
    .expect("commit_capture");
    assert_eq!(the_job(&s, "co", "c8").await, None);
}

// ----- Queue -----------------------------------------------------------------------------------

/// Committing a job for a record with one replaces it: a running job keeps running, the same
/// hash keeps a retrying or dead job's state and attempts, a new hash starts over.
/// A job whose hash the CRM already holds (a settle landed after the planner read the link) is
/// not queued; a record planned unchanged supersedes a waiting job with another hash (the row
/// went back to what the CRM holds) and replaces the payload of one in flight.
pub async fn commit_capture_knows_what_the_crm_holds<S: State>(s: S) {
    link(&s, "co", "a", "1", "ha", T0).await;
    link(&s, "co", "b", "2", "hb", T0).await;
    link(&s, "co", "c", "3", "hc", T0).await;
    // The app edited b and c; b's edit waits, c's is in flight.
    enqueue(&s, "co", &[("b", "hb2", 0), ("c", "hc2", 0)], T0 + 1).await;
    let claimed = s.claim("w", "co", 10, LEASE, T0 + 2).await.expect("claim");
    assert_eq!(local_ids(&claimed), ["b", "c"]);
    s.release_all("w").await.expect("release");
    let claimed = s.claim("w", "co", 1, LEASE, T0 + 3).await.expect("claim");
    assert_eq!(local_ids(&claimed), ["b"]);
    s.release_all("w").await.expect("release");
    let c_running = s.claim("w2", "co", 10, LEASE, T0 + 3).await.expect("claim");
    assert_eq!(local_ids(&c_running), ["b", "c"]);
    s.settle(
        "w2",
        &Settlement {
            retry: vec![Retry {
                job_id: c_running[0].id,
                error: "later".into(),
                run_at_ms: T0 + 5,
                dead: false,
            }],
            ..settlement("co", T0 + 4)
        },
    )
    .await
    .expect("b back to waiting");
    // Both rows went back to what the CRM holds; a's job would be a repeat.
    let report = s
        .commit_capture(&CaptureCommit {
            sync: "co".into(),
            jobs: vec![new_job("co", "a", "ha", 0)],
            unchanged: vec![new_job("co", "b", "hb", 0), new_job("co", "c", "hc", 0)],
            expect_versions: HashMap::from([
                ("a".to_string(), 0),
                ("b".to_string(), 0),
                ("c".to_string(), 0),
            ]),
            now_ms: T0 + 6,
            ..Default::default()
        })
        .await
        .expect("commit");
    assert_eq!(report.already, 1, "{report:?}");
    assert_eq!(report.superseded, 2, "{report:?}");
    assert_eq!(
        job(&s, "co", "a").await.state,
        "done",
        "a is not sent again"
    );
    let b = job(&s, "co", "b").await;
    assert_eq!(
        (b.state.as_str(), b.hash.as_str()),
        ("done", "hb"),
        "b's edit is gone"
    );
    let c = job(&s, "co", "c").await;
    assert_eq!((c.state.as_str(), c.hash.as_str()), ("running", "hc"));
    // c's in-flight delivery (of hc2) settles: the job is queued again with hc.
    s.settle(
        "w2",
        &Settlement {
            delivered: vec![delivered(&c_running[1], "3")],
            ..settlement("co", T0 + 7)
        },
    )
    .await
    .expect("c settles");
    let c = job(&s, "co", "c").await;
    assert_eq!((c.state.as_str(), c.hash.as_str()), ("ready", "hc"));
}

pub async fn enqueue_latest_state_wins<S: State>(s: S) {
    let t = T0;
    enqueue(&s, "s", &[("a", "ha", 0)], t).await;
    let first = job(&s, "s", "a").await;
    assert_eq!(
        (
            first.state.as_str(),
            first.attempts,
            first.run_at_ms,
            first.created_at_ms
        ),
        ("ready", 0, t, t)
    );
    assert_eq!(first.direction, "push");
    assert_eq!(first.owner, None);

    // A new payload replaces the old one in the same row, due at its own time.
    enqueue(&s, "s", &[("a", "ha2", 0)], t + 10).await;
    let a = job(&s, "s", "a").await;
    assert_eq!(a.id, first.id, "one row per record");
    assert_eq!((a.hash.as_str(), a.run_at_ms), ("ha2", t + 10));
    assert_eq!(a.payload, new_job("s", "a", "ha2", 0).payload);
    assert_eq!(a.created_at_ms, t, "the row's creation stays");
    // The same payload again changes nothing that matters.
    enqueue(&s, "s", &[("a", "ha2", 0)], t + 20).await;
    let a = job(&s, "s", "a").await;
    assert_eq!((a.state.as_str(), a.run_at_ms), ("ready", t + 10));

    // A running job keeps running under its owner; a new hash resets its attempts.
    let claimed = s.claim("A", "s", 10, LEASE, t + 30).await.expect("claim");
    assert_eq!(local_ids(&claimed), ["a"]);
    enqueue(&s, "s", &[("a", "ha", 0)], t + 40).await;
    let a = job(&s, "s", "a").await;
    assert_eq!(
        (
            a.state.as_str(),
            a.owner.as_deref(),
            a.hash.as_str(),
            a.attempts
        ),
        ("running", Some("A"), "ha", 0)
    );
    enqueue(&s, "s", &[("b", "hb", 0)], t + 40).await;
    s.claim("A", "s", 10, LEASE, t + 40).await.expect("claim");
    enqueue(&s, "s", &[("b", "hb", 0)], t + 50).await;
    let b = job(&s, "s", "b").await;
    assert_eq!(
        (b.state.as_str(), b.attempts),
        ("running", 1),
        "the same hash keeps a running job's attempts"
    );

    // Retrying: the same hash keeps state, attempts, due time and error; a new one resets.
    let retry = |id: i64, dead: bool| Retry {
        job_id: id,
        error: "HTTP 500".to_string(),
        run_at_ms: t + 1_000,
        dead,
    };
    let report = s
        .settle(
            "A",
            &Settlement {
                retry: vec![retry(b.id, false)],
                ..settlement("s", t + 60)
            },
        )
        .await
        .expect("settle");
    assert_eq!(report.settled, 1);
    enqueue(&s, "s", &[("b", "hb", 0)], t + 70).await;
    let b = job(&s, "s", "b").await;
    assert_eq!(
        (
            b.state.as_str(),
            b.attempts,
            b.run_at_ms,
            b.last_error.as_deref()
        ),
        ("retrying", 1, t + 1_000, Some("HTTP 500"))
    );
    enqueue(&s, "s", &[("b", "hb2", 0)], t + 80).await;
    let b = job(&s, "s", "b").await;
    assert_eq!(
        (
            b.state.as_str(),
            b.attempts,
            b.run_at_ms,
            b.last_error.as_deref()
        ),
        ("ready", 0, t + 80, None)
    );

    // Dead: the same hash stays dead (it would fail the same way); a new one is ready.
    enqueue(&s, "s", &[("c", "hc", 0)], t + 90).await;
    let claimed = s.claim("A", "s", 10, LEASE, t + 90).await.expect("claim");
    let c_id = job_id(&claimed, "c");
    s.settle(
        "A",
        &Settlement {
            retry: vec![retry(c_id, true)],
            ..settlement("s", t + 95)
        },
    )
    .await
    .expect("settle");
    enqueue(&s, "s", &[("c", "hc", 0)], t + 100).await;
    let c = job(&s, "s", "c").await;
    assert_eq!((c.state.as_str(), c.attempts), ("dead", 1));
    enqueue(&s, "s", &[("c", "hc2", 0)], t + 110).await;
    let c = job(&s, "s", "c").await;
    assert_eq!(
        (c.state.as_str(), c.attempts, c.run_at_ms),
        ("ready", 0, t + 110)
    );

    // One page naming a record twice: the later job wins, in one row (a multi-row upsert
    // must not trip over its own rows, as PostgreSQL's `ON CONFLICT` does by default).
    enqueue(&s, "s", &[("e", "he1", 0), ("e", "he2", 0)], t + 115).await;
    let e = job(&s, "s", "e").await;
    assert_eq!((e.state.as_str(), e.hash.as_str()), ("ready", "he2"));

    // Done: queued again (even with the same hash) it is ready again, from zero.
    link(&s, "d-sync", "d", "crm-d", "hd", t).await;
    enqueue(&s, "d-sync", &[("d", "hd", 0)], t + 120).await;
    let d = job(&s, "d-sync", "d").await;
    assert_eq!(
        (d.state.as_str(), d.attempts, d.run_at_ms),
        ("ready", 0, t + 120)
    );
}

/// Claims take due jobs of one sync, highest priority first, then oldest, then first queued,
/// up to the limit, for the claiming owner.
pub async fn claim_order_limit_and_due_time<S: State>(s: S) {
    let t = T0;
    // x is queued with priority 5 and replaced with 0: a job keeps its highest priority.
    enqueue(&s, "s", &[("x", "hx", 5)], t).await;
    enqueue(
        &s,
        "s",
        &[
            ("x", "hx2", 0),
            ("q", "hq", 3),
            ("r", "hr", 3),
            ("p", "hp", 0),
        ],
        t,
    )
    .await;
    enqueue(&s, "s", &[("u", "hu", 0)], t + 5).await;
    enqueue(&s, "s", &[("w", "hw", 9)], t + 100).await;
    enqueue(&s, "other", &[("o", "ho", 9)], t).await;

    assert!(
        s.claim("A", "s", 0, LEASE, t + 50)
            .await
            .expect("claim")
            .is_empty(),
        "a limit of 0 claims nothing"
    );
    let a = s.claim("A", "s", 2, LEASE, t + 50).await.expect("claim");
    assert_eq!(local_ids(&a), ["x", "q"], "priority first; returned by id");
    assert!(a.windows(2).all(|w| w[0].id < w[1].id));
    let x = &a[0];
    assert_eq!(
        (x.sync.as_str(), x.hash.as_str(), x.attempts),
        ("s", "hx2", 1)
    );
    assert_eq!(x.payload, new_job("s", "x", "hx2", 0).payload);
    let b = s.claim("B", "s", 2, LEASE, t + 50).await.expect("claim");
    assert_eq!(
        local_ids(&b),
        ["r", "p"],
        "same priority: queued first; then older due time"
    );
    let c = s.claim("C", "s", 10, LEASE, t + 50).await.expect("claim");
    assert_eq!(local_ids(&c), ["u"], "w is not due before t + 100");
    let c = s.claim("C", "s", 10, LEASE, t + 100).await.expect("claim");
    assert_eq!(local_ids(&c), ["w"]);

    let x = job(&s, "s", "x").await;
    assert_eq!(
        (
            x.state.as_str(),
            x.owner.as_deref(),
            x.attempts,
            x.updated_at_ms
        ),
        ("running", Some("A"), 1, t + 50)
    );
    assert_eq!(
        job(&s, "s", "r").await.owner.as_deref(),
        Some("B"),
        "each job has the owner that claimed it"
    );
    let o = s
        .claim("C", "other", 10, LEASE, t + 100)
        .await
        .expect("claim");
    assert_eq!(local_ids(&o), ["o"], "claims are per sync");
}

/// The claim order (priority, then due time, then queue order) holds across ready jobs,
/// retrying jobs and jobs whose lease ran out: a limit never passes over a more urgent job
/// because of the state it is in.
pub async fn claim_order_spans_states<S: State>(s: S) {
    let t = T0;
    enqueue(&s, "s", &[("x", "hx", 9), ("y", "hy", 5)], t).await;
    let first = s.claim("A", "s", 1, LEASE, t).await.expect("claim");
    assert_eq!(local_ids(&first), ["x"]);
    s.settle(
        "A",
        &Settlement {
            retry: vec![Retry {
                job_id: first[0].id,
                error: "HTTP 503".to_string(),
                run_at_ms: t + 10,
                dead: false,
            }],
            ..settlement("s", t + 1)
        },
    )
    .await
    .expect("settle");
    // y is claimed by a worker that then dies: its lease runs out at t + 1000.
    let dying = s.claim("C", "s", 1, LEASE, t + 1).await.expect("claim");
    assert_eq!(local_ids(&dying), ["y"]);
    enqueue(&s, "s", &[("z", "hz", 0)], t + 5).await;

    let b = s.claim("B", "s", 2, LEASE, t + 2_000).await.expect("claim");
    assert_eq!(
        local_ids(&b),
        ["x", "y"],
        "retrying x (9) and run-out y (5) come before ready z (0)"
    );
    let rest = s
        .claim("B", "s", 10, LEASE, t + 2_000)
        .await
        .expect("claim");
    assert_eq!(local_ids(&rest), ["z"]);
}

/// A lease that ran out (strictly before now) can be claimed by another owner; the first
/// owner's outcome is then lost.
pub async fn expired_leases_are_reclaimable<S: State>(s: S) {
    let t = T0;
    enqueue(&s, "s", &[("a", "ha", 0)], t).await;
    let a = s.claim("A", "s", 10, LEASE, t).await.expect("claim");
    assert_eq!(local_ids(&a), ["a"]);
    assert!(
        s.claim("B", "s", 10, LEASE, t + 1_000)
            .await
            .expect("claim")
            .is_empty(),
        "a lease is held up to and including its last ms"
    );
    let b = s
        .claim("B", "s", 10, LEASE, t + 1_001)
        .await
        .expect("claim");
    assert_eq!(local_ids(&b), ["a"]);
    assert_eq!(b[0].attempts, 2, "a reclaimed delivery is a new attempt");
    assert_eq!(job(&s, "s", "a").await.owner.as_deref(), Some("B"));

    let pair = [(a[0].id, "ha".to_string())];
    assert!(
        s.still_current("A", &pair)
            .await
            .expect("still_current")
            .is_empty()
    );
    assert_eq!(
        s.still_current("B", &pair).await.expect("still_current"),
        HashSet::from([a[0].id])
    );
    let report = s
        .settle(
            "A",
            &Settlement {
                delivered: vec![delivered(&a[0], "crm-a")],
                ..settlement("s", t + 1_002)
            },
        )
        .await
        .expect("settle");
    assert_eq!((report.settled, report.lost.clone()), (0, vec![a[0].id]));
    assert_eq!(
        link_of(&s, "s", "a").await,
        None,
        "a lost outcome is dropped"
    );
    assert_eq!(job(&s, "s", "a").await.owner.as_deref(), Some("B"));
    let report = s
        .settle(
            "B",
            &Settlement {
                delivered: vec![delivered(&b[0], "crm-a")],
                ..settlement("s", t + 1_003)
            },
        )
        .await
        .expect("settle");
    assert_eq!((report.settled, report.lost.len()), (1, 0));
    assert_eq!(job(&s, "s", "a").await.state, "done");
}

/// Renewing extends the caller's running jobs only, and never shortens a lease.
pub async fn renew_extends_own_leases<S: State>(s: S) {
    let t = T0;
    enqueue(
        &s,
        "s",
        &[("a", "ha", 0), ("b", "hb", 0), ("c", "hc", 0)],
        t,
    )
    .await;
    let a = s.claim("A", "s", 2, LEASE, t).await.expect("claim");
    assert_eq!(local_ids(&a), ["a", "b"]);
    let b = s.claim("B", "s", 2, LEASE, t).await.expect("claim");
    assert_eq!(local_ids(&b), ["c"]);

    assert_eq!(s.renew_jobs("A", t + 5_000).await.expect("renew"), 2);
    let c = s
        .claim("C", "s", 10, LEASE, t + 2_000)
        .await
        .expect("claim");
    assert_eq!(
        local_ids(&c),
        ["c"],
        "only B's unrenewed lease ran out by t + 2000"
    );
    assert_eq!(
        s.renew_jobs("B", t + 9_000).await.expect("renew"),
        0,
        "B holds nothing any more"
    );
    assert_eq!(job(&s, "s", "c").await.owner.as_deref(), Some("C"));

    // A shorter renewal does not cut a lease short (c is C's, run out by now: claimable).
    assert_eq!(
        s.renew_jobs("A", t + 3_000).await.expect("renew"),
        2,
        "A still holds both: each lease lasts at least that long, so both count"
    );
    assert_eq!(
        s.renew_jobs("A", t + 5_000).await.expect("renew"),
        2,
        "a repeated renewal counts the same leases"
    );
    let d = s
        .claim("D", "s", 10, LEASE, t + 4_000)
        .await
        .expect("claim");
    assert_eq!(local_ids(&d), ["c"], "A's leases still run to t + 5000");

    // A settled job is no longer renewed.
    s.settle(
        "A",
        &Settlement {
            delivered: vec![delivered(&a[0], "crm-a")],
            ..settlement("s", t + 4_500)
        },
    )
    .await
    .expect("settle");
    assert_eq!(s.renew_jobs("A", t + 9_000).await.expect("renew"), 1);
    let d = s
        .claim("D", "s", 10, LEASE, t + 8_000)
        .await
        .expect("claim");
    assert_eq!(local_ids(&d), ["c"], "b's renewed lease runs to t + 9000");
}

/// still_current answers which jobs are still running under the owner with that payload.
pub async fn still_current_needs_owner_and_hash<S: State>(s: S) {
    let t = T0;
    enqueue(&s, "s", &[("a", "ha", 0), ("b", "hb", 0)], t).await;
    let claimed = s.claim("A", "s", 10, LEASE, t).await.expect("claim");
    let (a, b) = (job_id(&claimed, "a"), job_id(&claimed, "b"));
    let asked = [
        (a, "ha".to_string()),
        (b, "wrong".to_string()),
        (999_999, "ha".to_string()),
    ];
    assert_eq!(
        s.still_current("A", &asked).await.expect("still_current"),
        HashSet::from([a])
    );
    enqueue(&s, "s", &[("a", "ha2", 0)], t + 1).await;
    assert!(
        s.still_current("A", &[(a, "ha".to_string())])
            .await
            .expect("still_current")
            .is_empty(),
        "a job replaced in flight is not current"
    );
    assert_eq!(
        s.still_current("A", &[(a, "ha2".to_string())])
            .await
            .expect("still_current"),
        HashSet::from([a])
    );
    assert!(
        s.still_current("B", &[(a, "ha2".to_string())])
            .await
            .expect("still_current")
            .is_empty(),
        "another owner's job is not current for me"
    );
}

/// A delivered job is done when its payload did not change in flight (link, push time, bases
/// and cleared quarantine with it), and ready again with the new payload when it did.
pub async fn settle_delivered_is_done_or_ready<S: State>(s: S) {
    let t = T0;
    s.quarantine(&[entry("s", "a", QuarantineKind::Invalid, "email", t)])
        .await
        .expect("quarantine");
    enqueue(&s, "s", &[("a", "ha", 0), ("b", "hb", 0)], t).await;
    let claimed = s.claim("A", "s", 10, LEASE, t).await.expect("claim");
    assert_eq!(local_ids(&claimed), ["a", "b"]);
    enqueue(&s, "s", &[("b", "hb2", 0)], t + 10).await;

    let settle = Settlement {
        delivered: vec![
            delivered(&claimed[0], "crm-a"),
            delivered(&claimed[1], "crm-b"),
        ],
        bases: vec![
            ("a".to_string(), "name".to_string(), "Acme".to_string()),
            ("zzz".to_string(), "name".to_string(), "Nobody".to_string()),
        ],
        ..settlement("s", t + 20)
    };
    let report = s.settle("A", &settle).await.expect("settle");
    assert_eq!(
        report,
        SettleReport {
            settled: 2,
            lost: vec![],
            released: 0
        }
    );

    let a = job(&s, "s", "a").await;
    assert_eq!(
        (a.state.as_str(), a.attempts, a.owner.as_deref()),
        ("done", 1, None)
    );
    let detail = s
        .link_detail("s", "a")
        .await
        .expect("link_detail")
        .expect("a is linked");
    assert_eq!(
        detail,
        LinkDetail {
            crm_object: OBJECT.to_string(),
            crm_id: Some("crm-a".to_string()),
            pushed_hash: Some("ha".to_string()),
            pushed_at_ms: Some(t + 20),
        }
    );
    assert!(
        s.quarantine_entry("s", "a")
            .await
            .expect("quarantine_entry")
            .is_none(),
        "a delivered record leaves quarantine"
    );
    let bases = s.bases("s", &strings(&["a", "zzz"])).await.expect("bases");
    assert_eq!(
        bases,
        HashMap::from([(
            "a".to_string(),
            HashMap::from([("name".to_string(), "Acme".to_string())])
        )]),
        "bases are stored for delivered records only"
    );

    let b = job(&s, "s", "b").await;
    assert_eq!(
        (
            b.state.as_str(),
            b.hash.as_str(),
            b.attempts,
            b.owner.as_deref()
        ),
        ("ready", "hb2", 0, None),
        "changed in flight: back to ready with the new payload"
    );
    assert_eq!(
        link_of(&s, "s", "b").await.and_then(|l| l.pushed_hash),
        Some("hb".to_string()),
        "the link records what the CRM accepted"
    );
    let again = s.claim("B", "s", 10, LEASE, t + 30).await.expect("claim");
    assert_eq!(local_ids(&again), ["b"]);
    assert_eq!(again[0].payload, new_job("s", "b", "hb2", 0).payload);

    // Settling the same outcome again: the jobs are no longer the caller's.
    let report = s.settle("A", &settle).await.expect("settle");
    assert_eq!(
        (report.settled, report.lost),
        (0, vec![claimed[0].id, claimed[1].id])
    );
}

/// Settling a parent releases the records (of any sync) held for it; a record held for a
/// parent that is linked already is released at once.
pub async fn settle_releases_waiting_children<S: State>(s: S) {
    let t = T0;
    s.quarantine(&[
        waiting("contacts", "k1", ("companies", "c1"), t),
        entry("contacts", "k2", QuarantineKind::Held, "confirmation", t),
        waiting("contacts", "k4", ("companies", "c2"), t),
    ])
    .await
    .expect("quarantine");
    assert_eq!(
        s.recheck_keys("contacts").await.expect("recheck_keys"),
        strings(&["k2"]),
        "a record waiting for an unlinked parent is not rechecked"
    );

    enqueue(&s, "companies", &[("c1", "h1", 0)], t).await;
    let claimed = s
        .claim("A", "companies", 10, LEASE, t)
        .await
        .expect("claim");
    let report = s
        .settle(
            "A",
            &Settlement {
                delivered: vec![delivered(&claimed[0], "crm-c1")],
                ..settlement("companies", t + 1)
            },
        )
        .await
        .expect("settle");
    assert_eq!((report.settled, report.released), (1, 1));
    assert_eq!(
        s.recheck_keys("contacts").await.expect("recheck_keys"),
        strings(&["k1", "k2"])
    );
    assert!(entry_of(&s, "contacts", "k1").await.retry_requested);
    assert!(!entry_of(&s, "contacts", "k4").await.retry_requested);

    // Held for a parent that is linked by now: released as it is written.
    s.quarantine(&[waiting("contacts", "k3", ("companies", "c1"), t + 2)])
        .await
        .expect("quarantine");
    assert_eq!(
        s.recheck_keys("contacts").await.expect("recheck_keys"),
        strings(&["k1", "k2", "k3"])
    );
    assert_eq!(
        entry_of(&s, "contacts", "k3").await.waits_for,
        Some(("companies".to_string(), "c1".to_string()))
    );

    // A capture that held records for a parent linked meanwhile says how many it released, so
    // the caller captures again instead of leaving them for a later pass.
    let report = s
        .commit_capture(&CaptureCommit {
            quarantine: vec![
                waiting("contacts", "k5", ("companies", "c1"), t + 3),
                waiting("contacts", "k6", ("companies", "c2"), t + 3),
            ],
            ..CaptureCommit::jobs("contacts", vec![], t + 3)
        })
        .await
        .expect("commit_capture");
    assert_eq!(report.released, 1, "only k5's parent is linked");
    assert!(entry_of(&s, "contacts", "k5").await.retry_requested);
    assert!(!entry_of(&s, "contacts", "k6").await.retry_requested);
}

/// A rejected job puts its record into quarantine and leaves the queue.
pub async fn settle_rejected_quarantines_and_drops_the_job<S: State>(s: S) {
    let t = T0;
    enqueue(&s, "s", &[("a", "ha", 0), ("b", "hb", 0)], t).await;
    let claimed = s.claim("A", "s", 10, LEASE, t).await.expect("claim");
    let report = s
        .settle(
            "A",
            &Settlement {
                rejected: vec![(
                    job_id(&claimed, "a"),
                    entry("s", "a", QuarantineKind::Rejected, "INVALID_EMAIL", t + 5),
                )],
                ..settlement("s", t + 5)
            },
        )
        .await
        .expect("settle");
    assert_eq!((report.settled, report.lost.len()), (1, 0));
    assert_eq!(the_job(&s, "s", "a").await, None, "the job is dropped");
    let e = entry_of(&s, "s", "a").await;
    assert_eq!(
        (e.kind, e.rule.as_str(), e.first_seen_ms),
        (QuarantineKind::Rejected, "INVALID_EMAIL", t + 5)
    );
    assert_eq!(link_of(&s, "s", "a").await, None);
    assert_eq!(
        job(&s, "s", "b").await.owner.as_deref(),
        Some("A"),
        "other jobs are untouched"
    );
    let counts = s.counts("s").await.expect("counts");
    assert_eq!((counts.pending, counts.rejected), (1, 1));
    assert!(
        s.recheck_keys("s").await.expect("recheck_keys").is_empty(),
        "the payload the CRM refused is the record's latest: nothing to look at again"
    );
}

/// A retried job waits until its due time (keeping its attempts and error); a dead one is
/// never claimed again.
/// Retrying and dead jobs are grouped by state and last error, largest group first.
pub async fn job_problems_grouped_by_error<S: State>(s: S) {
    let t = T0;
    enqueue(
        &s,
        "s",
        &[
            ("a", "ha", 0),
            ("b", "hb", 0),
            ("c", "hc", 0),
            ("d", "hd", 0),
        ],
        t,
    )
    .await;
    enqueue(&s, "other", &[("x", "hx", 0)], t).await;
    let claimed = s.claim("A", "s", 10, LEASE, t).await.expect("claim");
    let other = s.claim("A", "other", 10, LEASE, t).await.expect("claim");
    let retry = |id: i64, error: &str, dead: bool| Retry {
        job_id: id,
        error: error.to_string(),
        run_at_ms: t + 500,
        dead,
    };
    s.settle(
        "A",
        &Settlement {
            retry: vec![
                retry(job_id(&claimed, "a"), "parent gone", false),
                retry(job_id(&claimed, "b"), "parent gone", false),
                retry(job_id(&claimed, "c"), "HTTP 500", true),
            ],
            ..settlement("s", t + 1)
        },
    )
    .await
    .expect("settle");
    s.settle(
        "A",
        &Settlement {
            retry: vec![retry(job_id(&other, "x"), "elsewhere", false)],
            ..settlement("other", t + 1)
        },
    )
    .await
    .expect("settle");
    let problems = s.job_problems("s", 10).await.expect("job_problems");
    assert_eq!(
        problems,
        vec![
            JobProblem {
                state: "retrying".into(),
                error: "parent gone".into(),
                jobs: 2
            },
            JobProblem {
                state: "dead".into(),
                error: "HTTP 500".into(),
                jobs: 1
            },
        ],
        "the running job d is not a problem; another sync's are not listed"
    );
    assert_eq!(s.job_problems("s", 1).await.expect("limit").len(), 1);
}

pub async fn settle_retry_and_dead<S: State>(s: S) {
    let t = T0;
    enqueue(&s, "s", &[("a", "ha", 0), ("b", "hb", 0)], t).await;
    let claimed = s.claim("A", "s", 10, LEASE, t).await.expect("claim");
    let report = s
        .settle(
            "A",
            &Settlement {
                retry: vec![
                    Retry {
                        job_id: job_id(&claimed, "a"),
                        error: "HTTP 429".to_string(),
                        run_at_ms: t + 500,
                        dead: false,
                    },
                    Retry {
                        job_id: job_id(&claimed, "b"),
                        error: "HTTP 500 five times".to_string(),
                        run_at_ms: t + 500,
                        dead: true,
                    },
                ],
                ..settlement("s", t + 1)
            },
        )
        .await
        .expect("settle");
    assert_eq!(report.settled, 2);
    let a = job(&s, "s", "a").await;
    assert_eq!(
        (
            a.state.as_str(),
            a.run_at_ms,
            a.attempts,
            a.last_error.as_deref(),
            a.owner.as_deref()
        ),
        ("retrying", t + 500, 1, Some("HTTP 429"), None)
    );
    let b = job(&s, "s", "b").await;
    assert_eq!(
        (b.state.as_str(), b.last_error.as_deref()),
        ("dead", Some("HTTP 500 five times"))
    );
    let counts = s.counts("s").await.expect("counts");
    assert_eq!((counts.pending, counts.dead), (1, 1));

    assert!(
        s.claim("B", "s", 10, LEASE, t + 499)
            .await
            .expect("claim")
            .is_empty(),
        "not before its due time"
    );
    let again = s.claim("B", "s", 10, LEASE, t + 500).await.expect("claim");
    assert_eq!(local_ids(&again), ["a"], "a dead job is not claimed");
    assert_eq!(again[0].attempts, 2);
    assert!(
        s.claim("B", "s", 10, LEASE, t + 100_000)
            .await
            .expect("claim")
            .iter()
            .all(|j| j.local_id != "b")
    );
}

/// A failure outcome is about the payload that was sent. When the record changed while it
/// was in flight, the newer payload is not lost with it: a rejected record is quarantined
/// (the CRM's reason is shown) and looked at again in the next capture, and a job out of
/// retries is retried with its new payload instead of dying.
pub async fn settle_failure_keeps_a_payload_replaced_in_flight<S: State>(s: S) {
    let t = T0;
    enqueue(&s, "s", &[("a", "ha", 0), ("b", "hb", 0)], t).await;
    let claimed = s.claim("A", "s", 10, LEASE, t).await.expect("claim");
    enqueue(&s, "s", &[("a", "ha2", 0), ("b", "hb2", 0)], t + 1).await;
    let report = s
        .settle(
            "A",
            &Settlement {
                rejected: vec![(
                    job_id(&claimed, "a"),
                    entry("s", "a", QuarantineKind::Rejected, "INVALID_EMAIL", t + 2),
                )],
                retry: vec![Retry {
                    job_id: job_id(&claimed, "b"),
                    error: "HTTP 500, the last try".to_string(),
                    run_at_ms: t + 100,
                    dead: true,
                }],
                ..settlement("s", t + 2)
            },
        )
        .await
        .expect("settle");
    assert_eq!((report.settled, report.lost.len()), (2, 0));

    assert_eq!(the_job(&s, "s", "a").await, None, "rejected: the job goes");
    let a = entry_of(&s, "s", "a").await;
    assert_eq!(a.kind, QuarantineKind::Rejected);
    assert!(a.retry_requested, "but the newer row is looked at again");
    assert_eq!(
        s.recheck_keys("s").await.expect("recheck_keys"),
        strings(&["a"])
    );

    let b = job(&s, "s", "b").await;
    assert_eq!(
        (
            b.state.as_str(),
            b.hash.as_str(),
            b.attempts,
            b.run_at_ms,
            b.last_error.as_deref()
        ),
        (
            "retrying",
            "hb2",
            0,
            t + 100,
            Some("HTTP 500, the last try")
        ),
        "the new payload has had no try yet: it is not dead"
    );
    let again = s.claim("B", "s", 10, LEASE, t + 100).await.expect("claim");
    assert_eq!(local_ids(&again), ["b"]);
    assert_eq!((again[0].hash.as_str(), again[0].attempts), ("hb2", 1));
}

/// Only the owner of a running job can settle it; others' outcomes are reported lost.
pub async fn settle_needs_the_lease<S: State>(s: S) {
    let t = T0;
    assert_eq!(
        s.settle("A", &settlement("s", t)).await.expect("settle"),
        SettleReport::default(),
        "an empty settlement does nothing"
    );
    enqueue(&s, "s", &[("a", "ha", 0)], t).await;
    let claimed = s.claim("A", "s", 10, LEASE, t).await.expect("claim");
    let id = claimed[0].id;
    let report = s
        .settle(
            "B",
            &Settlement {
                delivered: vec![delivered(&claimed[0], "crm-a")],
                rejected: vec![(id, entry("s", "a", QuarantineKind::Rejected, "X", t))],
                retry: vec![Retry {
                    job_id: id,
                    error: "e".to_string(),
                    run_at_ms: t,
                    dead: true,
                }],
                ..settlement("s", t + 1)
            },
        )
        .await
        .expect("settle");
    assert_eq!(
        report,
        SettleReport {
            settled: 0,
            lost: vec![id],
            released: 0
        },
        "lost once, however often named"
    );
    let a = job(&s, "s", "a").await;
    assert_eq!(
        (a.state.as_str(), a.owner.as_deref()),
        ("running", Some("A"))
    );
    assert_eq!(link_of(&s, "s", "a").await, None);
    assert!(
        s.quarantine_entry("s", "a")
            .await
            .expect("quarantine_entry")
            .is_none()
    );
    let report = s
        .settle(
            "A",
            &Settlement {
                retry: vec![Retry {
                    job_id: 999_999,
                    error: "e".to_string(),
                    run_at_ms: t,
                    dead: false,
                }],
                ..settlement("s", t + 1)
            },
        )
        .await
        .expect("settle");
    assert_eq!(report.lost, [999_999], "an unknown job is lost");
}

/// release_all gives the owner's running jobs back, due at once, the attempt not counted.
pub async fn release_all_gives_jobs_back<S: State>(s: S) {
    let t = T0;
    enqueue(
        &s,
        "s",
        &[("a", "ha", 0), ("b", "hb", 0), ("c", "hc", 0)],
        t,
    )
    .await;
    assert_eq!(
        local_ids(&s.claim("A", "s", 2, LEASE, t).await.expect("claim")),
        ["a", "b"]
    );
    assert_eq!(
        local_ids(&s.claim("B", "s", 2, LEASE, t).await.expect("claim")),
        ["c"]
    );
    assert_eq!(s.release_all("A").await.expect("release_all"), 2);
    let a = job(&s, "s", "a").await;
    assert_eq!(
        (a.state.as_str(), a.owner.as_deref(), a.attempts),
        ("ready", None, 0)
    );
    let c = s.claim("C", "s", 10, LEASE, t).await.expect("claim");
    assert_eq!(
        local_ids(&c),
        ["a", "b"],
        "released jobs are due at once; B's are not"
    );
    assert_eq!(c[0].attempts, 1);
    assert_eq!(s.release_all("A").await.expect("release_all"), 0);
    assert_eq!(job(&s, "s", "c").await.owner.as_deref(), Some("B"));
}

/// A quarantine entry replaces the record's previous one (first sighting kept, attempts
/// counted) and drops its job; entries are read by sync, in local-id order.
pub async fn quarantine_replaces_and_drops_the_job<S: State>(s: S) {
    let t = T0;
    enqueue(&s, "s", &[("a", "ha", 0)], t).await;
    s.quarantine(&[entry("s", "b", QuarantineKind::Held, "confirmation", t)])
        .await
        .expect("quarantine");
    s.quarantine(&[entry("s", "a", QuarantineKind::Invalid, "email", t)])
        .await
        .expect("quarantine");
    assert_eq!(
        the_job(&s, "s", "a").await,
        None,
        "a quarantined record has no job"
    );
    let first = entry_of(&s, "s", "a").await;
    assert_eq!(first, entry("s", "a", QuarantineKind::Invalid, "email", t));

    let mut again = entry("s", "a", QuarantineKind::Rejected, "INVALID_EMAIL", t + 10);
    again.field = None;
    s.quarantine(&[again]).await.expect("quarantine");
    let e = entry_of(&s, "s", "a").await;
    assert_eq!(
        (
            e.kind,
            e.rule.as_str(),
            e.field.clone(),
            e.first_seen_ms,
            e.last_seen_ms,
            e.attempts
        ),
        (
            QuarantineKind::Rejected,
            "INVALID_EMAIL",
            None,
            t,
            t + 10,
            2
        )
    );
    assert_eq!(e.message, "INVALID_EMAIL failed for a");

    s.quarantine(&[entry("other", "a", QuarantineKind::Invalid, "email", t)])
        .await
        .expect("quarantine");
    let listed: Vec<String> = s
        .quarantined("s")
        .await
        .expect("quarantined")
        .into_iter()
        .map(|e| e.local_id)
        .collect();
    assert_eq!(listed, strings(&["a", "b"]));
    assert_eq!(
        s.quarantined_among("s", &strings(&["a", "zz"]))
            .await
            .expect("quarantined_among"),
        HashSet::from(["a".to_string()])
    );
    s.clear_quarantine("s", &strings(&["a", "zz"]))
        .await
        .expect("clear_quarantine");
    assert!(
        s.quarantine_entry("s", "a")
            .await
            .expect("quarantine_entry")
            .is_none()
    );
    assert!(
        s.quarantine_entry("other", "a")
            .await
            .expect("quarantine_entry")
            .is_some(),
        "clearing is per sync"
    );
}

/// recheck_keys: held records without a parent, and records a retry or a released parent
/// asked for; a new sighting answers the request.
pub async fn recheck_keys_rule<S: State>(s: S) {
    let t = T0;
    s.quarantine(&[
        entry("s", "h1", QuarantineKind::Held, "confirmation", t),
        waiting("s", "h2", ("parents", "p1"), t),
        entry("s", "i1", QuarantineKind::Invalid, "email", t),
        entry("s", "r1", QuarantineKind::Rejected, "INVALID", t),
        entry("other", "h9", QuarantineKind::Held, "confirmation", t),
    ])
    .await
    .expect("quarantine");
    assert_eq!(
        s.recheck_keys("s").await.expect("recheck_keys"),
        strings(&["h1"])
    );
    let flagged = s
        .request_retry(Some("s"), &[QuarantineKind::Invalid])
        .await
        .expect("request_retry");
    assert_eq!(flagged, [("s".to_string(), "i1".to_string())]);
    assert_eq!(
        s.recheck_keys("s").await.expect("recheck_keys"),
        strings(&["h1", "i1"])
    );
    s.quarantine(&[entry("s", "i1", QuarantineKind::Invalid, "email", t + 1)])
        .await
        .expect("quarantine");
    assert_eq!(
        s.recheck_keys("s").await.expect("recheck_keys"),
        strings(&["h1"]),
        "seen invalid again: the retry is answered"
    );
}

/// blocked_keys: records of the sync held with one of the rules.
pub async fn blocked_keys_by_rule<S: State>(s: S) {
    let t = T0;
    s.quarantine(&[
        entry("s", "a", QuarantineKind::Held, "conflict", t),
        entry("s", "b", QuarantineKind::Invalid, "email", t),
        waiting("s", "c", ("p", "1"), t),
        entry("other", "d", QuarantineKind::Held, "conflict", t),
    ])
    .await
    .expect("quarantine");
    assert_eq!(
        s.blocked_keys("s", &["conflict", "parent"])
            .await
            .expect("blocked_keys"),
        HashSet::from(["a".to_string(), "c".to_string()])
    );
    assert!(
        s.blocked_keys("s", &[])
            .await
            .expect("blocked_keys")
            .is_empty()
    );
}

/// Cursors are kept per sync, direction and mechanism, and overwritten.
pub async fn cursors_per_direction_and_mechanism<S: State>(s: S) {
    let get = |sync: &'static str, d: CursorDirection, m: &'static str| {
        let s = s.clone();
        async move { s.cursor(sync, d, m).await.expect("cursor") }
    };
    assert_eq!(get("s", CursorDirection::Push, "trigger").await, None);
    s.set_cursor("s", CursorDirection::Push, "trigger", "10")
        .await
        .expect("set_cursor");
    s.set_cursor("s", CursorDirection::Pull, "trigger", "p5")
        .await
        .expect("set_cursor");
    s.set_cursor("s", CursorDirection::Push, "updated_at", "2024")
        .await
        .expect("set_cursor");
    s.set_cursor("s", CursorDirection::Push, "trigger", "11")
        .await
        .expect("set_cursor");
    assert_eq!(
        get("s", CursorDirection::Push, "trigger").await.as_deref(),
        Some("11")
    );
    assert_eq!(
        get("s", CursorDirection::Pull, "trigger").await.as_deref(),
        Some("p5")
    );
    assert_eq!(
        get("s", CursorDirection::Push, "updated_at")
            .await
            .as_deref(),
        Some("2024")
    );
    assert_eq!(get("other", CursorDirection::Push, "trigger").await, None);
}

/// counts: pending jobs (ready, running, retrying), dead ones, quarantine by kind, links.
pub async fn counts_of_a_sync<S: State>(s: S) {
    let t = T0;
    link(&s, "s", "e", "crm-e", "he", t).await;
    enqueue(
        &s,
        "s",
        &[("b", "hb", 0), ("c", "hc", 0), ("d", "hd", 0)],
        t,
    )
    .await;
    let claimed = s.claim("A", "s", 10, LEASE, t).await.expect("claim");
    s.settle(
        "A",
        &Settlement {
            retry: vec![
                Retry {
                    job_id: job_id(&claimed, "c"),
                    error: "e".to_string(),
                    run_at_ms: t + 100,
                    dead: false,
                },
                Retry {
                    job_id: job_id(&claimed, "d"),
                    error: "e".to_string(),
                    run_at_ms: t + 100,
                    dead: true,
                },
            ],
            ..settlement("s", t)
        },
    )
    .await
    .expect("settle");
    enqueue(&s, "s", &[("a", "ha", 0)], t).await;
    s.quarantine(&[
        entry("s", "q1", QuarantineKind::Invalid, "email", t),
        entry("s", "q2", QuarantineKind::Rejected, "X", t),
        entry("s", "q3", QuarantineKind::Held, "confirmation", t),
        entry("s", "q4", QuarantineKind::Held, "confirmation", t),
        entry("other", "q5", QuarantineKind::Invalid, "email", t),
    ])
    .await
    .expect("quarantine");
    enqueue(&s, "other", &[("z", "hz", 0)], t).await;
    assert_eq!(
        s.counts("s").await.expect("counts"),
        QueueCounts {
            pending: 3,
            dead: 1,
            invalid: 1,
            rejected: 1,
            held: 2,
            linked: 1,
            oldest_pending_at_ms: Some(t),
        }
    );
    assert_eq!(
        s.counts("nothing").await.expect("counts"),
        QueueCounts::default()
    );
}

/// Write-backs: linked records whose CRM id is not in the app yet; a pair marked after its
/// link moved stays pending.
/// A CRM record on its way into the app: claimed, refused with a reason (attempts counted, a
/// claim keeps the history), flagged for retry, and linked in one go (the link holds the CRM
/// id, the hashes and the bases; the entry is gone; nothing is pending to write back).
pub async fn crm_creates_claimed_refused_and_linked<S: State>(s: S) {
    let t = T0;
    s.claim_creates("s", &[("c1".into(), 5), ("c2".into(), 6)], "f1", t)
        .await
        .expect("claim");
    s.claim_creates("other", &[("c1".into(), 5)], "f1", t)
        .await
        .expect("claim");
    let all = s.creates(Some("s")).await.expect("creates");
    assert_eq!(
        all.iter()
            .map(|c| (c.crm_id.as_str(), c.state, c.attempts))
            .collect::<Vec<_>>(),
        [
            ("c1", CreateState::Claimed, 0),
            ("c2", CreateState::Claimed, 0)
        ]
    );
    assert_eq!(s.creates(None).await.expect("creates").len(), 3);
    let refusal = |at: i64, message: &str| CrmCreate {
        sync: "s".into(),
        crm_id: "c1".into(),
        state: CreateState::Refused,
        rule: "database".into(),
        message: message.into(),
        modified_ms: 7,
        fingerprint: "f2".into(),
        first_seen_ms: at,
        last_seen_ms: at,
        attempts: 0,
        retry_requested: false,
    };
    s.refuse_creates(&[refusal(
        t + 1,
        "NOT NULL constraint failed: users.created_at",
    )])
    .await
    .expect("refuse");
    let c1 = s
        .creates_among("s", &strings(&["c1", "nope"]))
        .await
        .expect("among")
        .remove("c1")
        .expect("c1 has an entry");
    assert_eq!(
        (c1.state, c1.attempts, c1.first_seen_ms, c1.last_seen_ms),
        (CreateState::Refused, 1, t, t + 1),
        "first seen at the claim, one refusal: {c1:?}"
    );
    assert_eq!((c1.modified_ms, c1.fingerprint.as_str()), (7, "f2"));
    assert!(c1.message.contains("created_at"));

    assert_eq!(
        s.request_create_retry(Some("s")).await.expect("retry"),
        [("s".to_string(), "c1".to_string())],
        "only refused entries of the sync are flagged"
    );
    assert!(
        s.creates_among("s", &strings(&["c1"]))
            .await
            .expect("among")["c1"]
            .retry_requested
    );
    // Tried again: claimed (history kept), refused again (one more attempt, flag cleared).
    s.claim_creates("s", &[("c1".into(), 8)], "f2", t + 2)
        .await
        .expect("claim");
    let c1 = &s
        .creates_among("s", &strings(&["c1"]))
        .await
        .expect("among")["c1"];
    assert_eq!((c1.state, c1.attempts), (CreateState::Claimed, 1));
    s.refuse_creates(&[refusal(t + 3, "again")])
        .await
        .expect("refuse");
    let c1 = &s
        .creates_among("s", &strings(&["c1"]))
        .await
        .expect("among")["c1"];
    assert_eq!(
        (c1.state, c1.attempts, c1.retry_requested, c1.first_seen_ms),
        (CreateState::Refused, 2, false, t)
    );

    s.record_creates(
        "s",
        OBJECT,
        &[CreatedLink {
            local_id: "7".into(),
            crm_id: "c2".into(),
            pushed_hash: Some("h7".into()),
            pulled_hash: Some("h7".into()),
            bases: vec![("email".into(), "ada@example.com".into())],
            written_back: true,
        }],
        t + 4,
    )
    .await
    .expect("record_creates");
    let link = s.link("s", "7").await.expect("link").expect("linked");
    assert_eq!(
        (link.crm_id.as_deref(), link.pushed_hash.as_deref()),
        (Some("c2"), Some("h7"))
    );
    assert!(
        link.version >= 1,
        "a new link has a version a stale plan sees"
    );
    assert_eq!(
        s.local_ids_of("s", &strings(&["c2"]))
            .await
            .expect("local ids")["c2"],
        "7"
    );
    assert_eq!(
        s.bases("s", &strings(&["7"])).await.expect("bases")["7"]["email"],
        "ada@example.com"
    );
    assert!(
        s.pending_write_backs("s", 10)
            .await
            .expect("pending")
            .is_empty(),
        "the row holds its CRM id already"
    );
    assert_eq!(
        s.creates(Some("s"))
            .await
            .expect("creates")
            .iter()
            .map(|c| c.crm_id.as_str())
            .collect::<Vec<_>>(),
        ["c1"],
        "the linked record's entry is gone"
    );
    s.forget_creates("s", &strings(&["c1"]))
        .await
        .expect("forget");
    assert!(s.creates(Some("s")).await.expect("creates").is_empty());
    assert_eq!(
        s.creates(None).await.expect("creates").len(),
        1,
        "other syncs keep theirs"
    );
}

pub async fn write_backs_pending_and_marked<S: State>(s: S) {
    let t = T0;
    link(&s, "s", "a", "crm-a", "ha", t).await;
    link(&s, "s", "b", "crm-b", "hb", t).await;
    link(&s, "s", "c", "crm-c", "hc", t).await;
    let pair = |l: &str, c: &str| (l.to_string(), c.to_string());
    assert_eq!(
        s.pending_write_backs("s", 2).await.expect("pending"),
        [pair("a", "crm-a"), pair("b", "crm-b")]
    );
    s.mark_written_back("s", &[pair("a", "crm-a"), pair("b", "crm-wrong")])
        .await
        .expect("mark");
    assert_eq!(
        s.pending_write_backs("s", 10).await.expect("pending"),
        [pair("b", "crm-b"), pair("c", "crm-c")]
    );
    s.record_merges(&[CrmMerge {
        sync: "s".to_string(),
        local_id: "a".to_string(),
        from_crm_id: "crm-a".to_string(),
        to_crm_id: "crm-a2".to_string(),
        shared_with: None,
        at_ms: t,
    }])
    .await
    .expect("record_merges");
    s.mark_written_back("s", &[pair("a", "crm-a")])
        .await
        .expect("mark");
    assert_eq!(
        s.pending_write_backs("s", 10).await.expect("pending"),
        [pair("a", "crm-a2"), pair("b", "crm-b"), pair("c", "crm-c")],
        "a re-pointed link is pending again, and an old pair does not mark it"
    );
    s.mark_written_back("s", &[pair("a", "crm-a2"), pair("c", "crm-c")])
        .await
        .expect("mark");
    assert_eq!(
        s.pending_write_backs("s", 10).await.expect("pending"),
        [pair("b", "crm-b")]
    );
    assert!(
        s.pending_write_backs("other", 10)
            .await
            .expect("pending")
            .is_empty()
    );
}

// ----- Lifecycle -------------------------------------------------------------------------------

fn conflict(sync: &str, local_id: &str, field: &str, app_value: &str, at: i64) -> Conflict {
    Conflict {
        id: 0,
        sync: sync.to_string(),
        local_id: local_id.to_string(),
        crm_id: format!("crm-{local_id}"),
        field: field.to_string(),
        column: format!("{field}_col"),
        app_value: app_value.to_string(),
        crm_value: "crm value".to_string(),
        base_value: Some("base".to_string()),
        created_at_ms: at,
    }
}

/// Conflicts: parked oldest first, an open one for the same field replaced, resolved once.
pub async fn conflicts_parked_and_resolved<S: State>(s: S) {
    let t = T0;
    s.add_conflicts(&[
        conflict("s", "r1", "email", "a@x", t),
        conflict("s", "r1", "phone", "+1", t + 1),
        conflict("other", "r2", "email", "b@x", t + 2),
    ])
    .await
    .expect("add_conflicts");
    let all = s.open_conflicts(None).await.expect("open_conflicts");
    assert_eq!(
        all.iter()
            .map(|c| (c.sync.as_str(), c.field.as_str()))
            .collect::<Vec<_>>(),
        [("s", "email"), ("s", "phone"), ("other", "email")]
    );
    assert_eq!(
        all[0],
        Conflict {
            id: all[0].id,
            ..conflict("s", "r1", "email", "a@x", t)
        }
    );
    s.add_conflicts(&[conflict("s", "r1", "email", "c@x", t + 3)])
        .await
        .expect("add_conflicts");
    let open = s.open_conflicts(Some("s")).await.expect("open_conflicts");
    assert_eq!(
        open.iter()
            .map(|c| (c.field.as_str(), c.app_value.as_str()))
            .collect::<Vec<_>>(),
        [("phone", "+1"), ("email", "c@x")],
        "the replaced conflict is the newest"
    );
    let phone = open[0].id;
    assert!(s.resolve_conflict(phone, "app").await.expect("resolve"));
    assert!(
        !s.resolve_conflict(phone, "crm").await.expect("resolve"),
        "resolved once"
    );
    assert!(!s.resolve_conflict(999_999, "app").await.expect("resolve"));
    let open = s.open_conflicts(Some("s")).await.expect("open_conflicts");
    assert_eq!(
        open.iter().map(|c| c.field.as_str()).collect::<Vec<_>>(),
        ["email"]
    );
}

fn deletion(sync: &str, local_id: &str, seen: i64, state: DeletionState) -> CrmDeletion {
    CrmDeletion {
        sync: sync.to_string(),
        local_id: local_id.to_string(),
        crm_id: format!("crm-{local_id}"),
        seen_at_ms: seen,
        state,
        action: (state == DeletionState::Applied).then(|| "flag".to_string()),
    }
}

/// Deletions: one per record (replaced), listed by time, filtered, counted since, forgotten.
pub async fn deletions_recorded_and_forgotten<S: State>(s: S) {
    let t = T0;
    s.record_deletions(&[
        deletion("s", "a", t + 5, DeletionState::Held),
        deletion("s", "b", t, DeletionState::Applied),
        deletion("other", "c", t + 1, DeletionState::Held),
    ])
    .await
    .expect("record_deletions");
    let locals = |v: Vec<CrmDeletion>| v.into_iter().map(|d| d.local_id).collect::<Vec<_>>();
    assert_eq!(
        locals(s.deletions(None, None).await.expect("deletions")),
        strings(&["b", "c", "a"])
    );
    assert_eq!(
        s.deletions(Some("s"), Some(DeletionState::Held))
            .await
            .expect("deletions"),
        [deletion("s", "a", t + 5, DeletionState::Held)]
    );
    s.record_deletions(&[CrmDeletion {
        action: Some("unlink".to_string()),
        ..deletion("s", "a", t + 6, DeletionState::Applied)
    }])
    .await
    .expect("record_deletions");
    let applied = s
        .deletions(Some("s"), Some(DeletionState::Applied))
        .await
        .expect("deletions");
    assert_eq!(
        applied
            .iter()
            .map(|d| (d.local_id.as_str(), d.action.as_deref()))
            .collect::<Vec<_>>(),
        [("b", Some("flag")), ("a", Some("unlink"))]
    );
    assert_eq!(s.deletions_since("s", t + 5).await.expect("since"), 1);
    assert_eq!(s.deletions_since("s", t).await.expect("since"), 2);
    s.forget_deletions("s", &strings(&["a"]))
        .await
        .expect("forget");
    assert_eq!(
        locals(s.deletions(Some("s"), None).await.expect("deletions")),
        strings(&["b"])
    );
    assert_eq!(
        locals(s.deletions(Some("other"), None).await.expect("deletions")),
        strings(&["c"])
    );
}

/// Merges: logged (with or without a link to re-point), listed newest first.
pub async fn merges_logged_newest_first<S: State>(s: S) {
    let merge = |sync: &str, local: &str, shared: Option<&str>, at: i64| CrmMerge {
        sync: sync.to_string(),
        local_id: local.to_string(),
        from_crm_id: format!("crm-{local}"),
        to_crm_id: "crm-survivor".to_string(),
        shared_with: shared.map(str::to_string),
        at_ms: at,
    };
    s.record_merges(&[merge("s", "a", None, T0), merge("other", "b", None, T0 + 1)])
        .await
        .expect("record_merges");
    s.record_merges(&[merge("s", "c", Some("a"), T0 + 2)])
        .await
        .expect("record_merges");
    assert_eq!(
        s.merges(None).await.expect("merges"),
        [
            merge("s", "c", Some("a"), T0 + 2),
            merge("other", "b", None, T0 + 1),
            merge("s", "a", None, T0),
        ]
    );
    assert_eq!(
        s.merges(Some("s")).await.expect("merges"),
        [
            merge("s", "c", Some("a"), T0 + 2),
            merge("s", "a", None, T0)
        ]
    );
}

fn hint(sync: &str, crm_id: &str, reason: &str) -> Hint {
    Hint {
        sync: sync.to_string(),
        crm_id: crm_id.to_string(),
        reason: reason.to_string(),
        // The store stamps a hint with the time it is added; this is ignored.
        added_at_ms: 0,
    }
}

/// The webhook inbox: one event per dedup key, pending oldest first, turned into hints and
/// marked applied together.
pub async fn webhook_inbox<S: State>(s: S) {
    let t = T0;
    let ev = |k: &str, b: &str| (k.to_string(), b.to_string());
    assert_eq!(
        s.record_webhook_events(&[ev("k2", "b2"), ev("k1", "b1"), ev("k2", "dup")], t)
            .await
            .expect("record"),
        2,
        "a key repeated in one call is stored once"
    );
    assert_eq!(
        s.record_webhook_events(&[ev("k1", "again"), ev("k3", "b3")], t + 1)
            .await
            .expect("record"),
        1
    );
    assert_eq!(
        s.pending_webhook_events(10).await.expect("pending"),
        [ev("k1", "b1"), ev("k2", "b2"), ev("k3", "b3")],
        "received first, then by key; the first body of a key is kept"
    );
    assert_eq!(
        s.pending_webhook_events(2).await.expect("pending"),
        [ev("k1", "b1"), ev("k2", "b2")]
    );
    assert_eq!(s.pending_webhook_count().await.expect("count"), 3);

    s.webhook_events_to_hints(
        &strings(&["k1", "k2"]),
        &[hint("s", "crm-1", "webhook")],
        t + 2,
    )
    .await
    .expect("to_hints");
    assert_eq!(
        s.pending_webhook_events(10).await.expect("pending"),
        [ev("k3", "b3")]
    );
    assert_eq!(s.pending_webhook_count().await.expect("count"), 1);
    assert_eq!(
        s.pending_hints("s", 10).await.expect("hints"),
        [Hint {
            added_at_ms: t + 2,
            ..hint("s", "crm-1", "webhook")
        }]
    );
    assert_eq!(
        s.record_webhook_events(&[ev("k1", "redelivered")], t + 3)
            .await
            .expect("record"),
        0,
        "an applied event is still recognised"
    );
}

/// Retention: applied events received before the cut and calls made before it go, at most
/// `limit` a call; pending events stay whatever their age.
pub async fn retention_prunes_applied_events_and_old_calls<S: State>(s: S) {
    let t = T0;
    let ev = |k: &str| (k.to_string(), format!("body {k}"));
    s.record_webhook_events(
        &[ev("old-applied-1"), ev("old-applied-2"), ev("old-pending")],
        t,
    )
    .await
    .expect("record");
    s.record_webhook_events(&[ev("new-applied")], t + 100)
        .await
        .expect("record");
    s.webhook_events_to_hints(
        &strings(&["old-applied-1", "old-applied-2", "new-applied"]),
        &[],
        t + 200,
    )
    .await
    .expect("applied");
    assert_eq!(
        s.prune_webhook_events(t + 50, 1).await.expect("prune"),
        1,
        "the limit holds"
    );
    assert_eq!(s.prune_webhook_events(t + 50, 100).await.expect("prune"), 1);
    assert_eq!(s.prune_webhook_events(t + 50, 100).await.expect("prune"), 0);
    assert_eq!(
        s.pending_webhook_events(10).await.expect("pending"),
        [ev("old-pending")],
        "a pending event is never pruned"
    );
    // The applied, newer one is kept: its redelivery is still recognised.
    assert_eq!(
        s.record_webhook_events(&[ev("new-applied")], t + 300)
            .await
            .expect("record"),
        0
    );
    // A pruned one would be stored again (then read back: harmless).
    assert_eq!(
        s.record_webhook_events(&[ev("old-applied-1")], t + 300)
            .await
            .expect("record"),
        1
    );

    let calls: Vec<CallRow> = (0..5)
        .map(|i| {
            call(
                t + i * 10,
                "POST",
                "/crm/v3/objects/contacts/batch/upsert",
                Some(200),
                1,
                1,
            )
        })
        .collect();
    s.record_calls(&calls).await.expect("calls");
    assert_eq!(
        s.prune_calls(t + 25, 2).await.expect("prune"),
        2,
        "the limit holds"
    );
    assert_eq!(s.prune_calls(t + 25, 100).await.expect("prune"), 1);
    assert_eq!(
        s.call_summary(0).await.expect("summary").calls,
        2,
        "the newer calls stay"
    );

    let failed = |at: i64, error: &str| CallRow {
        error: Some(error.to_string()),
        ..call(
            at,
            "POST",
            "/crm/v3/objects/contacts/batch/upsert",
            Some(400),
            1,
            1,
        )
    };
    s.record_calls(&[
        failed(t + 100, "first"),
        failed(t + 200, "second"),
        failed(t + 300, "third"),
        CallRow {
            error: Some("a lookup of something not made yet".to_string()),
            ..call(
                t + 400,
                "GET",
                "/crm/v3/properties/contacts/x",
                Some(404),
                1,
                0,
            )
        },
    ])
    .await
    .expect("calls");
    let recent: Vec<Option<String>> = s
        .recent_call_errors(2)
        .await
        .expect("recent")
        .into_iter()
        .map(|c| c.error)
        .collect();
    assert_eq!(
        recent,
        [Some("third".to_string()), Some("second".to_string())],
        "newest first, failures only (a lookup's 404 is an answer)"
    );
}

/// Hints: one per CRM id (re-adding refreshes reason and time), pending oldest first; clearing
/// keeps a hint added again after the caller read it.
pub async fn hints_dedup_and_clear_rule<S: State>(s: S) {
    let t = T0;
    s.add_hints(
        &[
            hint("s", "crm-2", "webhook"),
            hint("s", "crm-1", "webhook"),
            hint("other", "crm-1", "webhook"),
        ],
        t,
    )
    .await
    .expect("add_hints");
    s.add_hints(&[hint("s", "crm-1", "recheck")], t)
        .await
        .expect("add_hints");
    s.add_hints(&[hint("s", "crm-3", "webhook")], t + 10)
        .await
        .expect("add_hints");
    let pending = |v: Vec<Hint>| {
        v.into_iter()
            .map(|h| (h.crm_id, h.reason, h.added_at_ms))
            .collect::<Vec<_>>()
    };
    let row = |c: &str, r: &str, at: i64| (c.to_string(), r.to_string(), at);
    assert_eq!(
        pending(s.pending_hints("s", 10).await.expect("hints")),
        [
            row("crm-1", "recheck", t),
            row("crm-2", "webhook", t),
            row("crm-3", "webhook", t + 10)
        ]
    );
    assert_eq!(
        pending(s.pending_hints("s", 2).await.expect("hints")),
        [row("crm-1", "recheck", t), row("crm-2", "webhook", t)]
    );

    // Read at t + 10, then crm-1 announced again at t + 20 while being applied.
    s.add_hints(&[hint("s", "crm-1", "webhook")], t + 20)
        .await
        .expect("add_hints");
    assert_eq!(
        pending(s.pending_hints("s", 10).await.expect("hints")),
        [
            row("crm-2", "webhook", t),
            row("crm-3", "webhook", t + 10),
            row("crm-1", "webhook", t + 20)
        ]
    );
    s.clear_hints("s", &strings(&["crm-1", "crm-2", "crm-3"]), t + 10)
        .await
        .expect("clear_hints");
    assert_eq!(
        pending(s.pending_hints("s", 10).await.expect("hints")),
        [row("crm-1", "webhook", t + 20)],
        "added at or before t + 10: cleared; added after: kept"
    );
    assert_eq!(
        pending(s.pending_hints("other", 10).await.expect("hints")),
        [row("crm-1", "webhook", t)]
    );
}

// ----- Coordination ----------------------------------------------------------------------------

/// Leader leases: one owner at a time, kept by renewing, taken over once run out, given up.
pub async fn leader_leases<S: State>(s: S) {
    let t = T0;
    let ttl = Duration::from_millis(1_000);
    let lead = |task: &'static str, owner: &'static str, now: i64| {
        let s = s.clone();
        async move { s.try_lead(task, owner, ttl, now).await.expect("try_lead") }
    };
    assert!(lead("capture:s", "A", t).await);
    assert!(!lead("capture:s", "B", t + 500).await, "held by A");
    assert!(lead("capture:s", "A", t + 500).await, "renewed by A");
    assert!(
        !lead("capture:s", "B", t + 1_500).await,
        "A holds it up to and including t + 1500"
    );
    assert!(
        lead("capture:s", "B", t + 1_501).await,
        "run out: taken over"
    );
    assert!(!lead("capture:s", "A", t + 1_502).await);
    assert!(lead("poll", "A", t).await);
    assert_eq!(
        s.leaders().await.expect("leaders"),
        [
            ("capture:s".to_string(), "B".to_string(), t + 2_501),
            ("poll".to_string(), "A".to_string(), t + 1_000)
        ]
    );
    s.resign("B").await.expect("resign");
    assert_eq!(
        s.leaders().await.expect("leaders"),
        [("poll".to_string(), "A".to_string(), t + 1_000)]
    );
    assert!(
        lead("capture:s", "A", t + 1_600).await,
        "a resigned lease is free at once"
    );
}

fn window(name: &str, max: u32, length_ms: i64) -> WindowLimit {
    WindowLimit {
        name: name.to_string(),
        max,
        length_ms,
        min_gap_ms: 0,
    }
}

fn reservation(
    connection: &str,
    windows: Vec<WindowLimit>,
    day: Option<DayLimit>,
    now: i64,
) -> Reservation {
    Reservation {
        connection: connection.to_string(),
        windows,
        day,
        now_ms: now,
    }
}

fn wait(until_ms: i64, limit: &str) -> Grant {
    Grant::Wait {
        until_ms,
        limit: limit.to_string(),
    }
}

/// A rolling window grants `max` calls within its length; a refused call waits until the
/// oldest counted call leaves the window.
pub async fn reserve_call_window<S: State>(s: S) {
    let t = T0;
    let ask = |now: i64| {
        let s = s.clone();
        async move {
            s.reserve_call(&reservation(
                "crm",
                vec![window("10s", 3, 1_000)],
                None,
                now,
            ))
            .await
            .expect("reserve_call")
        }
    };
    assert_eq!(ask(t).await, Grant::Granted);
    assert_eq!(ask(t + 100).await, Grant::Granted);
    assert_eq!(ask(t + 200).await, Grant::Granted);
    assert_eq!(ask(t + 300).await, wait(t + 1_000, "10s"));
    assert_eq!(
        ask(t + 999).await,
        wait(t + 1_000, "10s"),
        "a refusal reserves nothing"
    );
    assert_eq!(
        ask(t + 1_000).await,
        Grant::Granted,
        "the call at t left the window"
    );
    assert_eq!(ask(t + 1_001).await, wait(t + 1_100, "10s"));
}

/// A window with `min_gap_ms` grants no call sooner than that after its latest grant, whoever
/// asks: all workers together send at an even pace, never a burst.
pub async fn reserve_call_paced<S: State>(s: S) {
    let t = T0;
    let ask = |now: i64| {
        let s = s.clone();
        async move {
            let mut w = window("10s", 4, 1_000);
            w.min_gap_ms = 250;
            s.reserve_call(&reservation("crm", vec![w], None, now))
                .await
                .expect("reserve_call")
        }
    };
    assert_eq!(ask(t).await, Grant::Granted);
    assert_eq!(
        ask(t + 10).await,
        wait(t + 250, "10s"),
        "too soon after the last grant"
    );
    assert_eq!(ask(t + 250).await, Grant::Granted);
    assert_eq!(ask(t + 499).await, wait(t + 500, "10s"));
    assert_eq!(ask(t + 500).await, Grant::Granted);
    assert_eq!(ask(t + 750).await, Grant::Granted);
    assert_eq!(
        ask(t + 1_000).await,
        Grant::Granted,
        "paced calls never fill the window early"
    );
}

/// The day's allowance: refused once used up, until the next budget day starts.
pub async fn reserve_call_day<S: State>(s: S) {
    let day = T0;
    let ask = |start_ms: i64, now: i64| {
        let s = s.clone();
        async move {
            let limit = DayLimit {
                start_ms,
                allowance: 2,
            };
            s.reserve_call(&reservation("crm", vec![], Some(limit), now))
                .await
                .expect("reserve_call")
        }
    };
    assert_eq!(ask(day, day + 1).await, Grant::Granted);
    assert_eq!(ask(day, day + 2).await, Grant::Granted);
    assert_eq!(ask(day, day + 3).await, wait(day + DAY_MS, "day"));
    assert_eq!(s.calls_reserved("crm", day).await.expect("reserved"), 2);
    assert_eq!(
        ask(day + DAY_MS, day + DAY_MS).await,
        Grant::Granted,
        "a new day has its own allowance"
    );
    assert_eq!(
        s.calls_reserved("crm", day + DAY_MS)
            .await
            .expect("reserved"),
        1
    );
    assert_eq!(s.calls_reserved("crm", day).await.expect("reserved"), 2);
    assert_eq!(s.calls_reserved("other", day).await.expect("reserved"), 0);
}

/// Each connection has its own windows and days.
pub async fn reserve_call_per_connection<S: State>(s: S) {
    let t = T0;
    let ask = |connection: &'static str, now: i64| {
        let s = s.clone();
        async move {
            let day = DayLimit {
                start_ms: t,
                allowance: 10,
            };
            s.reserve_call(&reservation(
                connection,
                vec![window("burst", 1, 1_000)],
                Some(day),
                now,
            ))
            .await
            .expect("reserve_call")
        }
    };
    assert_eq!(ask("a", t).await, Grant::Granted);
    assert_eq!(ask("a", t + 1).await, wait(t + 1_000, "burst"));
    assert_eq!(
        ask("b", t + 1).await,
        Grant::Granted,
        "b's window is its own"
    );
    assert_eq!(s.calls_reserved("a", t).await.expect("reserved"), 1);
    assert_eq!(s.calls_reserved("b", t).await.expect("reserved"), 1);
}

/// Several windows: a call needs room in all; a refusal names the limit that frees last and
/// reserves nothing in any window or day.
pub async fn reserve_call_several_windows<S: State>(s: S) {
    let t = T0;
    let ask = |now: i64| {
        let s = s.clone();
        async move {
            let day = DayLimit {
                start_ms: t,
                allowance: 100,
            };
            s.reserve_call(&reservation(
                "crm",
                vec![window("short", 2, 1_000), window("long", 3, 10_000)],
                Some(day),
                now,
            ))
            .await
            .expect("reserve_call")
        }
    };
    assert_eq!(ask(t).await, Grant::Granted);
    assert_eq!(ask(t + 10).await, Grant::Granted);
    assert_eq!(ask(t + 20).await, wait(t + 1_000, "short"));
    // Had the refusal at t + 20 counted in `long`, it would be full now.
    assert_eq!(ask(t + 1_000).await, Grant::Granted);
    assert_eq!(
        ask(t + 1_001).await,
        wait(t + 10_000, "long"),
        "short frees at t + 1010, long only at t + 10000"
    );
    assert_eq!(s.calls_reserved("crm", t).await.expect("reserved"), 3);
}

/// Bindings are set once; the kill switch is a plain shared flag.
pub async fn bindings_and_the_kill_switch<S: State>(s: S) {
    assert_eq!(s.binding("crm_account").await.expect("binding"), None);
    assert_eq!(s.bind("crm_account", "hub-1").await.expect("bind"), None);
    assert_eq!(
        s.bind("crm_account", "hub-2").await.expect("bind"),
        Some("hub-1".to_string()),
        "the value bound before is returned"
    );
    assert_eq!(
        s.binding("crm_account").await.expect("binding").as_deref(),
        Some("hub-1"),
        "and kept"
    );
    assert!(!s.paused().await.expect("paused"));
    s.set_paused(true).await.expect("set_paused");
    assert!(s.paused().await.expect("paused"));
    assert!(
        s.clone().paused().await.expect("paused"),
        "clones share the state"
    );
    s.set_paused(false).await.expect("set_paused");
    assert!(!s.paused().await.expect("paused"));
}

fn call(
    at: i64,
    method: &str,
    endpoint: &str,
    status: Option<u16>,
    attempt: u32,
    records: u32,
) -> CallRow {
    CallRow {
        connection: "crm".to_string(),
        at_ms: at,
        method: method.to_string(),
        endpoint: endpoint.to_string(),
        status,
        attempt,
        latency_ms: 12,
        records,
        operation: operation_of(endpoint).to_string(),
        rate_limited: status == Some(429),
        rate_limits: Some("{\"remaining\":\"99\"}".to_string()),
        error: None,
    }
}

/// The operation a HubSpot-shaped test endpoint stands for, as a client would report it.
pub fn operation_of(endpoint: &str) -> &'static str {
    if endpoint.ends_with("/batch/upsert") {
        "upsert"
    } else if endpoint.contains("/associations/") {
        "associate"
    } else {
        "read"
    }
}

const UPSERT: &str = "/crm/v3/objects/companies/batch/upsert";
const ASSOCIATE: &str = "/crm/v4/objects/contacts/1/associations/companies/2";

/// The call log's totals: calls, retries, 429s, errors (a lookup's 404 is not one), upserted
/// records and calls, association calls; since a time.
pub async fn call_log_summary<S: State>(s: S) {
    let t = T0;
    s.record_calls(&[
        call(t - 1, "POST", UPSERT, Some(200), 1, 50),
        call(t, "POST", UPSERT, Some(200), 1, 10),
        call(t + 1, "POST", UPSERT, Some(429), 2, 10),
        call(t + 2, "POST", UPSERT, Some(500), 3, 10),
        call(
            t + 3,
            "GET",
            "/crm/v3/objects/companies/42",
            Some(404),
            1,
            0,
        ),
        call(t + 4, "POST", "/crm/v3/objects/companies", Some(404), 1, 1),
        call(t + 5, "POST", UPSERT, None, 1, 10),
        call(t + 6, "PUT", ASSOCIATE, Some(200), 1, 1),
        call(t + 7, "POST", UPSERT, Some(201), 1, 5),
    ])
    .await
    .expect("record_calls");
    assert_eq!(
        s.call_summary(t).await.expect("call_summary"),
        CallSummary {
            calls: 8,
            retries: 2,
            rate_limited: 1,
            errors: 4,
            upserted: 15,
            upsert_calls: 2,
            association_calls: 1,
        }
    );
    assert_eq!(
        s.call_summary(t + 100).await.expect("call_summary"),
        CallSummary::default()
    );
}

// ----- Inspect ---------------------------------------------------------------------------------

/// What explain, retry and status read: retry requests by kind and sync, one entry, one link
/// with its push time, a record's jobs, calls in a time range.
pub async fn inspect_reads<S: State>(s: S) {
    let t = T0;
    s.quarantine(&[
        entry("s", "a", QuarantineKind::Invalid, "email", t),
        entry("s", "b", QuarantineKind::Rejected, "X", t),
        entry("s", "c", QuarantineKind::Held, "confirmation", t),
        entry("other", "d", QuarantineKind::Invalid, "email", t),
    ])
    .await
    .expect("quarantine");
    let pair = |s: &str, l: &str| (s.to_string(), l.to_string());
    assert_eq!(
        s.request_retry(None, &[QuarantineKind::Invalid])
            .await
            .expect("request_retry"),
        [pair("other", "d"), pair("s", "a")]
    );
    assert_eq!(
        s.request_retry(Some("s"), &[QuarantineKind::Held, QuarantineKind::Rejected])
            .await
            .expect("request_retry"),
        [pair("s", "b"), pair("s", "c")]
    );
    assert!(entry_of(&s, "s", "b").await.retry_requested);
    assert!(
        s.quarantine_entry("s", "zz")
            .await
            .expect("quarantine_entry")
            .is_none()
    );

    enqueue(&s, "s", &[("x", "hx", 0)], t).await;
    let claimed = s.claim("A", "s", 10, LEASE, t + 1).await.expect("claim");
    let running = job(&s, "s", "x").await;
    assert_eq!(running.owner.as_deref(), Some("A"));
    s.settle(
        "A",
        &Settlement {
            delivered: vec![delivered(&claimed[0], "crm-x")],
            ..settlement("s", t + 5)
        },
    )
    .await
    .expect("settle");
    assert_eq!(
        s.jobs_of("s", "x").await.expect("jobs_of"),
        [JobDetail {
            id: claimed[0].id,
            direction: "push".to_string(),
            state: "done".to_string(),
            hash: "hx".to_string(),
            payload: new_job("s", "x", "hx", 0).payload,
            attempts: 1,
            run_at_ms: t,
            last_error: None,
            created_at_ms: t,
            updated_at_ms: t + 5,
            owner: None,
        }]
    );
    assert_eq!(
        s.link_detail("s", "x")
            .await
            .expect("link_detail")
            .and_then(|l| l.pushed_at_ms),
        Some(t + 5)
    );
    assert_eq!(s.link_detail("s", "nope").await.expect("link_detail"), None);
    assert!(s.jobs_of("s", "nope").await.expect("jobs_of").is_empty());

    s.record_calls(&[
        call(t + 2, "POST", UPSERT, Some(200), 1, 1),
        call(t, "POST", UPSERT, Some(200), 1, 2),
        call(t + 1, "PUT", ASSOCIATE, Some(200), 1, 1),
        call(t + 1, "POST", UPSERT, Some(200), 1, 3),
        call(t + 3, "POST", UPSERT, Some(200), 1, 4),
    ])
    .await
    .expect("record_calls");
    let records = |v: Vec<CallRow>| v.into_iter().map(|c| c.records).collect::<Vec<_>>();
    assert_eq!(
        records(
            s.calls_between(t, t + 2, "batch/upsert", 10)
                .await
                .expect("calls_between")
        ),
        [2, 3, 1],
        "in time order, both ends included, by endpoint part"
    );
    assert_eq!(
        records(
            s.calls_between(t, t + 3, "batch/upsert", 2)
                .await
                .expect("calls_between")
        ),
        [2, 3]
    );
    let all = s
        .calls_between(t, t + 3, "", 10)
        .await
        .expect("calls_between");
    assert_eq!(all.len(), 5);
    assert_eq!(
        all[1],
        call(t + 1, "PUT", ASSOCIATE, Some(200), 1, 1),
        "a call reads back whole"
    );
}

// ----- concurrency -----------------------------------------------------------------------------

/// Workers claiming at the same time never get the same job, and together get every job.
pub async fn concurrent_claims_are_exclusive<S: State>(s: S) {
    let t = T0;
    let records: Vec<String> = (0..40).map(|i| format!("r{i:02}")).collect();
    let jobs: Vec<(&str, &str, i32)> = records.iter().map(|r| (r.as_str(), "h", 0)).collect();
    enqueue(&s, "s", &jobs, t).await;
    let workers = (0..4).map(|w| {
        let s = s.clone();
        async move {
            let owner = format!("worker-{w}");
            let mut mine = Vec::new();
            loop {
                let got = s.claim(&owner, "s", 3, LEASE, t).await.expect("claim");
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|j| j.id));
            }
        }
    });
    let claimed: Vec<i64> = futures::future::join_all(workers)
        .await
        .into_iter()
        .flatten()
        .collect();
    let distinct: HashSet<i64> = claimed.iter().copied().collect();
    assert_eq!(claimed.len(), 40, "every job is claimed once: {claimed:?}");
    assert_eq!(distinct.len(), 40, "no job is claimed twice: {claimed:?}");
}

/// Callers reserving at the same instant are granted exactly the window's `max` together.
pub async fn concurrent_reservations_stay_under_the_limit<S: State>(s: S) {
    let t = T0;
    let callers = (0..4).map(|_| {
        let s = s.clone();
        async move {
            let mut granted = 0;
            for _ in 0..10 {
                let grant = s
                    .reserve_call(&reservation(
                        "crm",
                        vec![window("10s", 7, 10_000)],
                        Some(DayLimit {
                            start_ms: t,
                            allowance: 1_000,
                        }),
                        t,
                    ))
                    .await
                    .expect("reserve_call");
                granted += i64::from(grant == Grant::Granted);
            }
            granted
        }
    });
    let granted: i64 = futures::future::join_all(callers).await.into_iter().sum();
    assert_eq!(granted, 7, "the window's max, shared by all callers");
    assert_eq!(s.calls_reserved("crm", t).await.expect("reserved"), 7);
}

// ----- shared OAuth tokens -----------------------------------------------------------------------

fn stored(sealed: &str, obtained_at_ms: i64, expires_at_ms: i64) -> StoredToken {
    StoredToken {
        sealed: sealed.to_string(),
        obtained_at_ms,
        expires_at_ms,
    }
}

/// [`Tokens`]: one token per connection, replaced only by a later expiry or in place of the
/// token the caller says was refused.
pub async fn oauth_tokens_only_move_forward<S: State>(s: S) {
    let t = T0;
    assert_eq!(s.token("hubspot").await.expect("token"), None);
    let first = stored("sealed-1", t, t + 1_800_000);
    assert!(s.store_token("hubspot", &first, None).await.expect("store"));
    assert_eq!(
        s.token("hubspot").await.expect("token"),
        Some(first.clone())
    );
    assert_eq!(
        s.token("other").await.expect("token"),
        None,
        "per connection"
    );

    // A slow refresher's older token does not replace a newer one, nor does one that
    // expires at the same instant.
    let older = stored("sealed-0", t - 60_000, t + 1_740_000);
    assert!(!s.store_token("hubspot", &older, None).await.expect("store"));
    let same = stored("sealed-same", t, t + 1_800_000);
    assert!(!s.store_token("hubspot", &same, None).await.expect("store"));
    assert_eq!(
        s.token("hubspot").await.expect("token"),
        Some(first.clone())
    );

    // A later one does.
    let second = stored("sealed-2", t + 1_500_000, t + 3_300_000);
    assert!(
        s.store_token("hubspot", &second, Some("not-the-stored-one"))
            .await
            .expect("store")
    );
    assert_eq!(
        s.token("hubspot").await.expect("token"),
        Some(second.clone())
    );

    // The CRM refused the stored token: a replacement is stored even if a clock behind the
    // others makes it expire earlier.
    let skewed = stored("sealed-3", t + 1_000_000, t + 2_800_000);
    assert!(
        !s.store_token("hubspot", &skewed, Some("sealed-1"))
            .await
            .expect("store"),
        "only the stored token can be named refused"
    );
    assert!(
        s.store_token("hubspot", &skewed, Some("sealed-2"))
            .await
            .expect("store")
    );
    assert_eq!(s.token("hubspot").await.expect("token"), Some(skewed));
    assert_eq!(
        s.clone().token("other").await.expect("token"),
        None,
        "clones share the state"
    );
}

/// Workers storing at once: the token that expires last is the one kept, whatever the order.
pub async fn concurrent_token_stores_keep_the_latest<S: State>(s: S) {
    let t = T0;
    let writers = (0..8_i64).map(|i| {
        let s = s.clone();
        async move {
            let token = stored(&format!("sealed-{i}"), t + i, t + 1_800_000 + i);
            s.store_token("hubspot", &token, None).await.expect("store")
        }
    });
    let stored_any = futures::future::join_all(writers).await;
    assert!(
        stored_any.iter().any(|s| *s),
        "at least the first is stored"
    );
    let kept = s.token("hubspot").await.expect("token").expect("a token");
    assert_eq!(kept.sealed, "sealed-7", "the latest expiry wins");
    assert_eq!(kept.expires_at_ms, t + 1_800_007);
}
