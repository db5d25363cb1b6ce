//! The PostgreSQL state under several workers: each test opens its own schema on the test
//! server (`TestDb::postgres`, skipped when the server is unreachable unless `CI=true`), and
//! "workers" are separate `PgState::open`s, so separate pools and connections, as separate
//! `crmsync run` processes would have. Nothing sleeps to wait for work: workers loop until a
//! condition holds, under a deadline.
//!
//! `same_transcript_as_sqlite` runs one scripted scenario over every trait method on SQLite
//! (the reference) and on PostgreSQL and compares what they answered, line by line.
#![cfg(feature = "testing")]

use crmsync_store::postgres::PgState;
use crmsync_store::sqlite::SqliteState;
use crmsync_store::testing::TestDb;
use crmsync_store::*;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(60);

fn job(sync: &str, local: &str, hash: &str, priority: i32) -> NewJob {
    NewJob {
        sync: sync.into(),
        local_id: local.into(),
        payload: format!("{{\"id\":\"{local}\",\"h\":\"{hash}\"}}"),
        hash: hash.into(),
        priority,
    }
}

fn delivered(j: &Job, crm_id: &str) -> Delivered {
    Delivered {
        job_id: j.id,
        local_id: j.local_id.clone(),
        crm_id: crm_id.into(),
        hash: j.hash.clone(),
    }
}

fn settlement(sync: &str, delivered: Vec<Delivered>, now_ms: i64) -> Settlement {
    Settlement {
        sync: sync.into(),
        crm_object: "objects".into(),
        delivered,
        now_ms,
        ..Default::default()
    }
}

fn held_for(sync: &str, local: &str, parent: (&str, &str), now: i64) -> QuarantineEntry {
    let mut e = QuarantineEntry::new(
        sync,
        local,
        QuarantineKind::Held,
        Some("customer_id".into()),
        "parent",
        "waiting for its parent",
        now,
    );
    e.waits_for = Some((parent.0.into(), parent.1.into()));
    e
}

async fn workers(db: &TestDb, n: usize) -> Vec<PgState> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(PgState::open(&db.url).await.expect("open a worker"));
    }
    out
}

async fn done(db: TestDb, states: impl IntoIterator<Item = PgState>) {
    for s in states {
        s.pool().close().await;
    }
    db.drop_now().await;
}

#[tokio::test]
async fn open_uses_the_url_schema_and_a_lock_timeout() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let st = PgState::open(&db.url).await.expect("open");
    let schema: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(st.pool())
        .await
        .expect("schema");
    assert_eq!(schema, db.name);
    let timeout: String = sqlx::query_scalar("SHOW lock_timeout")
        .fetch_one(st.pool())
        .await
        .expect("lock_timeout");
    assert_eq!(timeout, "4s");
    assert_eq!(State::backend(&st), Backend::Postgres);
    // Through the run-time choice too.
    let any = open_state(&db.url, Role::Worker).await.expect("open_state");
    assert_eq!(any.backend(), Backend::Postgres);
    done(db, [st]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_opening_a_fresh_state_together_migrate_it_once() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let url = db.url.clone();
        tasks.push(tokio::spawn(async move { PgState::open(&url).await }));
    }
    let mut states = Vec::new();
    for t in tasks {
        states.push(
            t.await
                .expect("task")
                .expect("every concurrent open succeeds"),
        );
    }
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(states[0].pool())
        .await
        .expect("count");
    assert_eq!(applied, 4, "each migration applied once");
    done(db, states).await;
}

#[tokio::test]
async fn a_state_migrated_by_a_newer_crmsync_is_refused() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let st = PgState::open(&db.url).await.expect("open");
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (9999, 'from the future', true, '\\x00', 0)",
    )
    .execute(st.pool())
    .await
    .expect("fake a newer migration");
    match PgState::open(&db.url).await {
        Err(StoreError::NewerSchema { found, known }) => {
            assert_eq!((found, known), (9999, 4));
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    done(db, [st]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_by_several_workers_never_share_a_job_and_hand_out_every_due_one() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    const N: usize = 600;
    let now = 1_000_000;
    let ws = workers(&db, 4).await;
    let jobs: Vec<NewJob> = (0..N)
        .map(|i| {
            job(
                "orders",
                &format!("{i:04}"),
                &format!("h{i}"),
                (i % 3) as i32,
            )
        })
        .collect();
    let report = ws[0]
        .commit_capture(&CaptureCommit::jobs("orders", jobs, now))
        .await
        .expect("commit");
    assert_eq!(report.queued, N as u64);
    // Not due (another sync, and one retrying later): never handed out here.
    ws[0]
        .commit_capture(&CaptureCommit::jobs(
            "customers",
            vec![job("customers", "c1", "hc", 0)],
            now,
        ))
        .await
        .expect("commit");

    let claimed: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let total = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (w, st) in ws.iter().enumerate() {
        for t in 0..3 {
            let (st, claimed, total) = (st.clone(), claimed.clone(), total.clone());
            let owner = format!("worker-{w}-{t}");
            tasks.push(tokio::spawn(async move {
                loop {
                    assert!(start.elapsed() < DEADLINE, "jobs left unclaimed");
                    let got = st
                        .claim(&owner, "orders", 7, Duration::from_secs(60), now + 1)
                        .await
                        .expect("claim");
                    if got.is_empty() {
                        if total.load(Ordering::SeqCst) >= N {
                            return;
                        }
                        tokio::task::yield_now().await;
                        continue;
                    }
                    assert!(got.len() <= 7);
                    total.fetch_add(got.len(), Ordering::SeqCst);
                    let mut c = claimed.lock().expect("lock");
                    c.extend(got.iter().map(|j| (owner.clone(), j.id)));
                }
            }));
        }
    }
    for t in tasks {
        t.await.expect("claimer");
    }
    let claimed = claimed.lock().expect("lock").clone();
    let ids: HashSet<i64> = claimed.iter().map(|(_, id)| *id).collect();
    assert_eq!(ids.len(), claimed.len(), "a job was handed out twice");
    assert_eq!(ids.len(), N, "every due job is handed out");

    // The database agrees: each job is running under the one owner that got it, claimed once.
    let rows: Vec<(i64, Option<String>, i64, String)> =
        sqlx::query_as("SELECT id, owner, attempts, state FROM jobs WHERE sync = 'orders'")
            .fetch_all(ws[0].pool())
            .await
            .expect("jobs");
    let by_id: HashMap<i64, &String> = claimed.iter().map(|(o, id)| (*id, o)).collect();
    for (id, owner, attempts, state) in rows {
        assert_eq!(owner.as_ref(), by_id.get(&id).copied());
        assert_eq!((attempts, state.as_str()), (1, "running"));
    }
    let other = ws[0].jobs_of("customers", "c1").await.expect("jobs_of");
    assert_eq!(other[0].state, "ready");
    done(db, ws).await;
}

#[tokio::test]
async fn claims_take_the_highest_priority_then_the_oldest_and_expired_leases() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let st = PgState::open(&db.url).await.expect("open");
    let t = 1_000_000;
    st.commit_capture(&CaptureCommit::jobs("s", vec![job("s", "old", "h", 0)], t))
        .await
        .expect("commit");
    st.commit_capture(&CaptureCommit::jobs(
        "s",
        vec![job("s", "new", "h", 0), job("s", "urgent", "h", 5)],
        t + 10,
    ))
    .await
    .expect("commit");
    let first = st
        .claim("a", "s", 2, Duration::from_millis(100), t + 20)
        .await
        .expect("claim");
    let mut got: Vec<&str> = first.iter().map(|j| j.local_id.as_str()).collect();
    got.sort_unstable();
    assert_eq!(got, ["old", "urgent"]);
    // "a"'s lease runs out at t + 120: before it, "b" gets only the job left; after it, the rest.
    let second = st
        .claim("b", "s", 5, Duration::from_secs(60), t + 119)
        .await
        .expect("claim");
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].local_id, "new");
    let third = st
        .claim("b", "s", 5, Duration::from_secs(60), t + 121)
        .await
        .expect("claim");
    assert_eq!(third.len(), 2);
    assert!(third.iter().all(|j| j.attempts == 2));
    done(db, [st]).await;
}

#[tokio::test]
async fn a_settle_after_the_lease_went_to_another_owner_is_lost_and_changes_nothing() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let ws = workers(&db, 2).await;
    let t = 1_000_000;
    ws[0]
        .commit_capture(&CaptureCommit::jobs("s", vec![job("s", "r1", "h1", 0)], t))
        .await
        .expect("commit");
    let a = ws[0]
        .claim("a", "s", 10, Duration::from_millis(1_000), t)
        .await
        .expect("claim");
    assert_eq!(a.len(), 1);
    let b = ws[1]
        .claim("b", "s", 10, Duration::from_secs(60), t + 2_000)
        .await
        .expect("re-claim after expiry");
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].id, a[0].id);

    let late = ws[0]
        .settle(
            "a",
            &Settlement {
                bases: vec![("r1".into(), "name".into(), "x".into())],
                ..settlement("s", vec![delivered(&a[0], "crm-a")], t + 2_500)
            },
        )
        .await
        .expect("late settle");
    assert_eq!(late.settled, 0);
    assert_eq!(late.lost, vec![a[0].id]);
    assert!(ws[0].link_detail("s", "r1").await.expect("link").is_none());
    assert!(
        ws[0]
            .bases("s", &["r1".into()])
            .await
            .expect("bases")
            .is_empty()
    );
    let j = ws[0].jobs_of("s", "r1").await.expect("jobs_of");
    assert_eq!(
        (j[0].state.as_str(), j[0].owner.as_deref()),
        ("running", Some("b"))
    );

    let ok = ws[1]
        .settle(
            "b",
            &settlement("s", vec![delivered(&b[0], "crm-b")], t + 3_000),
        )
        .await
        .expect("settle");
    assert_eq!((ok.settled, ok.lost.len()), (1, 0));
    let link = ws[1]
        .link_detail("s", "r1")
        .await
        .expect("link")
        .expect("linked");
    assert_eq!(link.crm_id.as_deref(), Some("crm-b"));
    assert_eq!(
        ws[1].jobs_of("s", "r1").await.expect("jobs_of")[0].state,
        "done"
    );
    done(db, ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_settle_and_reclaim_apply_one_outcome_only() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let ws = workers(&db, 2).await;
    let t = 1_000_000;
    const N: usize = 40;
    let jobs = (0..N)
        .map(|i| job("s", &format!("r{i:02}"), "h", 0))
        .collect();
    ws[0]
        .commit_capture(&CaptureCommit::jobs("s", jobs, t))
        .await
        .expect("commit");
    let a = ws[0]
        .claim("a", "s", N, Duration::from_millis(10), t)
        .await
        .expect("claim");
    assert_eq!(a.len(), N);
    // "a" settles each job while "b" re-claims the expired leases: per job, exactly one of
    // them owns the outcome.
    let sa = ws[0].clone();
    let a_jobs = a.clone();
    let settling = tokio::spawn(async move {
        let mut lost = Vec::new();
        for j in &a_jobs {
            let r = sa
                .settle("a", &settlement("s", vec![delivered(j, "crm-a")], t + 50))
                .await
                .expect("settle");
            lost.extend(r.lost);
        }
        lost
    });
    let sb = ws[1].clone();
    let claiming = tokio::spawn(async move {
        let mut got = Vec::new();
        for _ in 0..N {
            got.extend(
                sb.claim("b", "s", 1, Duration::from_secs(60), t + 50)
                    .await
                    .expect("claim"),
            );
        }
        got
    });
    let lost: HashSet<i64> = settling.await.expect("settler").into_iter().collect();
    let reclaimed: HashSet<i64> = claiming
        .await
        .expect("claimer")
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(
        lost, reclaimed,
        "a settle is lost exactly when b took the job first"
    );
    for j in &a {
        let link = ws[0].link_detail("s", &j.local_id).await.expect("link");
        let detail = &ws[0].jobs_of("s", &j.local_id).await.expect("jobs_of")[0];
        if reclaimed.contains(&j.id) {
            assert!(link.is_none());
            assert_eq!(detail.owner.as_deref(), Some("b"));
        } else {
            assert_eq!(link.and_then(|l| l.crm_id).as_deref(), Some("crm-a"));
            assert_eq!(detail.state, "done");
        }
    }
    done(db, ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_child_held_while_its_parent_settles_is_always_released() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let ws = workers(&db, 2).await;
    let t = 1_000_000;
    const N: usize = 60;
    let parents = (0..N)
        .map(|i| job("companies", &format!("p{i:02}"), "h", 0))
        .collect();
    ws[0]
        .commit_capture(&CaptureCommit::jobs("companies", parents, t))
        .await
        .expect("commit");
    let claimed = ws[0]
        .claim("w", "companies", N, Duration::from_secs(60), t)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), N);
    // Per parent, at the same moment: one worker holds a deal for it, the other links it.
    let mut tasks = Vec::new();
    for (i, p) in claimed.into_iter().enumerate() {
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let (capture, settler) = (ws[0].clone(), ws[1].clone());
        let b1 = barrier.clone();
        let parent = p.local_id.clone();
        tasks.push(tokio::spawn(async move {
            b1.wait().await;
            let commit = CaptureCommit {
                unchanged: vec![],
                sync: "deals".into(),
                quarantine: vec![held_for(
                    "deals",
                    &format!("d{i:02}"),
                    ("companies", &parent),
                    t,
                )],
                now_ms: t + 1,
                ..Default::default()
            };
            capture.commit_capture(&commit).await.expect("commit");
        }));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            settler
                .settle(
                    "w",
                    &settlement("companies", vec![delivered(&p, "crm")], t + 1),
                )
                .await
                .expect("settle");
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let entries = ws[0].quarantined("deals").await.expect("quarantined");
    assert_eq!(entries.len(), N);
    let stuck: Vec<&str> = entries
        .iter()
        .filter(|e| !e.retry_requested)
        .map(|e| e.local_id.as_str())
        .collect();
    assert!(stuck.is_empty(), "children never released: {stuck:?}");
    let recheck = ws[0].recheck_keys("deals").await.expect("recheck");
    assert_eq!(recheck.len(), N);
    done(db, ws).await;
}

#[tokio::test]
async fn a_capture_planned_before_an_inbound_commit_is_stale() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let st = PgState::open(&db.url).await.expect("open");
    let t = 1_000_000;
    st.commit_capture(&CaptureCommit::jobs("s", vec![job("s", "a", "h1", 0)], t))
        .await
        .expect("commit");
    let a = st
        .claim("w", "s", 1, Duration::from_secs(60), t)
        .await
        .expect("claim");
    st.settle("w", &settlement("s", vec![delivered(&a[0], "crm-a")], t))
        .await
        .expect("settle");
    let version = st.links_for("s", &["a".into()]).await.expect("links")["a"].version;
    st.record_pulls(
        "s",
        &[PullRecord {
            local_id: "a".into(),
            pushed_hash: None,
            pulled_hash: Some("p".into()),
            bases: vec![],
        }],
    )
    .await
    .expect("pull");
    let commit = CaptureCommit {
        unchanged: vec![],
        sync: "s".into(),
        jobs: vec![job("s", "a", "h2", 0), job("s", "b", "h2", 0)],
        clear: vec!["a".into()],
        expect_versions: HashMap::from([("a".into(), version), ("b".into(), 0)]),
        cursor: Some(("trigger".into(), "7".into())),
        now_ms: t + 1,
        ..Default::default()
    };
    let report = st.commit_capture(&commit).await.expect("commit");
    assert_eq!(report.stale, vec!["a".to_string()]);
    assert_eq!(report.queued, 1);
    assert_eq!(st.jobs_of("s", "a").await.expect("jobs")[0].hash, "h1");
    assert_eq!(st.jobs_of("s", "b").await.expect("jobs")[0].state, "ready");
    assert_eq!(
        st.cursor("s", CursorDirection::Push, "trigger")
            .await
            .expect("cursor")
            .as_deref(),
        Some("7")
    );
    done(db, [st]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reservations_of_all_workers_stay_within_every_window_and_the_day() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let ws = workers(&db, 4).await;
    let windows = vec![
        WindowLimit {
            name: "burst".into(),
            max: 5,
            length_ms: 200,
            min_gap_ms: 0,
        },
        WindowLimit {
            name: "ten_seconds".into(),
            max: 12,
            length_ms: 1_000,
            min_gap_ms: 0,
        },
    ];
    let day = DayLimit {
        start_ms: 0,
        allowance: 60,
    };
    // A shared clock the workers move forward to the instant a `Wait` names: the budget is
    // what limits them, never real time. Workers read it at slightly different moments, so
    // their requests arrive out of order, as from several processes.
    let clock = Arc::new(AtomicI64::new(10_000));
    let granted: Arc<Mutex<Vec<i64>>> = Arc::default();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for st in &ws {
        for _ in 0..3 {
            let (st, clock, granted) = (st.clone(), clock.clone(), granted.clone());
            let req = Reservation {
                connection: "hubspot".into(),
                windows: windows.clone(),
                day: Some(day),
                now_ms: 0,
            };
            tasks.push(tokio::spawn(async move {
                loop {
                    assert!(start.elapsed() < DEADLINE, "reservations never ran out");
                    let now = clock.load(Ordering::SeqCst);
                    let req = Reservation {
                        now_ms: now,
                        ..req.clone()
                    };
                    match st.reserve_call(&req).await.expect("reserve") {
                        Grant::Granted => granted.lock().expect("lock").push(now),
                        Grant::Wait { until_ms, limit } => {
                            assert!(until_ms > now, "a wait ends in the future");
                            if limit == "day" {
                                assert_eq!(until_ms, day.start_ms + 86_400_000);
                                return;
                            }
                            assert!(limit == "burst" || limit == "ten_seconds", "{limit}");
                            clock.fetch_max(until_ms, Ordering::SeqCst);
                        }
                    }
                }
            }));
        }
    }
    for t in tasks {
        t.await.expect("reserver");
    }
    let mut granted = granted.lock().expect("lock").clone();
    granted.sort_unstable();
    for w in &windows {
        for (i, from) in granted.iter().enumerate() {
            let inside = granted[i..]
                .iter()
                .take_while(|t| **t < from + w.length_ms)
                .count();
            assert!(
                inside <= w.max as usize,
                "{inside} calls in {} ms from {from}, more than {} ({})",
                w.length_ms,
                w.max,
                w.name
            );
        }
    }
    assert_eq!(
        granted.len(),
        60,
        "the whole day's allowance, and not one call more"
    );
    assert_eq!(
        ws[0].calls_reserved("hubspot", 0).await.expect("reserved"),
        60
    );
    assert_eq!(ws[0].calls_reserved("other", 0).await.expect("reserved"), 0);
    done(db, ws).await;
}

#[tokio::test]
async fn a_wait_names_the_instant_a_slot_frees() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let st = PgState::open(&db.url).await.expect("open");
    let req = |now_ms: i64| Reservation {
        connection: "c".into(),
        windows: vec![WindowLimit {
            name: "w".into(),
            max: 3,
            length_ms: 1_000,
            min_gap_ms: 0,
        }],
        day: Some(DayLimit {
            start_ms: 0,
            allowance: 5,
        }),
        now_ms,
    };
    for now in [100, 200, 300] {
        assert_eq!(
            st.reserve_call(&req(now)).await.expect("reserve"),
            Grant::Granted
        );
    }
    let wait = Grant::Wait {
        until_ms: 1_100,
        limit: "w".into(),
    };
    assert_eq!(st.reserve_call(&req(400)).await.expect("reserve"), wait);
    assert_eq!(st.reserve_call(&req(1_099)).await.expect("reserve"), wait);
    assert_eq!(
        st.reserve_call(&req(1_100)).await.expect("reserve"),
        Grant::Granted
    );
    assert_eq!(
        st.reserve_call(&req(1_200)).await.expect("reserve"),
        Grant::Granted
    );
    assert_eq!(
        st.reserve_call(&req(5_000)).await.expect("reserve"),
        Grant::Wait {
            until_ms: 86_400_000,
            limit: "day".into()
        }
    );
    assert_eq!(st.calls_reserved("c", 0).await.expect("reserved"), 5);
    done(db, [st]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_lease_moves_only_after_expiry_or_resignation() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let ws = workers(&db, 2).await;
    let (a, b) = (&ws[0], &ws[1]);
    let ttl = Duration::from_millis(1_000);
    let t = 1_000_000;
    assert!(
        a.try_lead("capture:orders", "a", ttl, t)
            .await
            .expect("lead")
    );
    assert!(
        !b.try_lead("capture:orders", "b", ttl, t + 10)
            .await
            .expect("lead")
    );
    assert!(
        a.try_lead("capture:orders", "a", ttl, t + 500)
            .await
            .expect("renew")
    );
    assert!(
        !b.try_lead("capture:orders", "b", ttl, t + 1_200)
            .await
            .expect("lead")
    );
    assert!(
        b.try_lead("capture:orders", "b", ttl, t + 1_600)
            .await
            .expect("lead")
    );
    assert!(
        !a.try_lead("capture:orders", "a", ttl, t + 1_700)
            .await
            .expect("lead")
    );
    assert_eq!(
        a.leaders().await.expect("leaders"),
        vec![("capture:orders".to_string(), "b".to_string(), t + 2_600)]
    );
    b.resign("b").await.expect("resign");
    assert!(a.leaders().await.expect("leaders").is_empty());
    assert!(
        a.try_lead("capture:orders", "a", ttl, t + 1_800)
            .await
            .expect("lead")
    );

    // Many owners at the same instant on a free task: exactly one gets it.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let st = ws[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            st.try_lead("poll", &format!("o{i}"), ttl, t)
                .await
                .expect("lead")
        }));
    }
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.expect("task"));
    }
    assert_eq!(winners, 1);
    done(db, ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_binds_agree_on_the_first_value() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let ws = workers(&db, 2).await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let st = ws[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            (
                i,
                st.bind("crm_account", &format!("acct-{i}"))
                    .await
                    .expect("bind"),
            )
        }));
    }
    let mut first = Vec::new();
    let mut previous = BTreeSet::new();
    for t in tasks {
        match t.await.expect("task") {
            (i, None) => first.push(format!("acct-{i}")),
            (_, Some(v)) => {
                previous.insert(v);
            }
        }
    }
    assert_eq!(first.len(), 1, "exactly one bind wins");
    assert!(previous.iter().all(|v| *v == first[0]));
    assert_eq!(
        ws[0]
            .binding("crm_account")
            .await
            .expect("binding")
            .as_deref(),
        Some(first[0].as_str())
    );
    done(db, ws).await;
}

#[tokio::test]
async fn large_batches_go_in_one_commit() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let st = PgState::open(&db.url).await.expect("open");
    let jobs: Vec<NewJob> = (0..5_000)
        .map(|i| job("s", &format!("k{i}"), "h", 0))
        .collect();
    let quarantine: Vec<QuarantineEntry> = (0..2_000)
        .map(|i| {
            QuarantineEntry::new(
                "s",
                &format!("q{i}"),
                QuarantineKind::Invalid,
                None,
                "email",
                "bad",
                1,
            )
        })
        .collect();
    let report = st
        .commit_capture(&CaptureCommit {
            quarantine,
            ..CaptureCommit::jobs("s", jobs, 1)
        })
        .await
        .expect("commit");
    assert_eq!(report.queued, 5_000);
    let counts = st.counts("s").await.expect("counts");
    assert_eq!((counts.pending, counts.invalid), (5_000, 2_000));
    let calls: Vec<CallRow> = (0..700)
        .map(|i| CallRow {
            connection: "hubspot".into(),
            at_ms: i,
            method: "POST".into(),
            endpoint: "/crm/v3/objects/contacts/batch/upsert".into(),
            status: Some(200),
            attempt: 1,
            latency_ms: 5,
            records: 100,
            operation: "upsert".into(),
            rate_limited: false,
            rate_limits: None,
            error: None,
        })
        .collect();
    st.record_calls(&calls).await.expect("calls");
    let summary = st.call_summary(0).await.expect("summary");
    assert_eq!((summary.calls, summary.upserted), (700, 70_000));
    done(db, [st]).await;
}

#[tokio::test]
async fn a_damaged_state_row_is_an_error_naming_table_and_column() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let st = PgState::open(&db.url).await.expect("open");
    assert!(
        st.try_lead("t", "o", Duration::from_secs(1), 1)
            .await
            .expect("lead")
    );
    // Someone changed the column's type by hand.
    sqlx::query("ALTER TABLE leases ALTER COLUMN until_ms TYPE text")
        .execute(st.pool())
        .await
        .expect("alter");
    match st.leaders().await {
        Err(StoreError::Corrupt(msg)) => {
            assert!(
                msg.contains("`leases`") && msg.contains("`until_ms`"),
                "{msg}"
            );
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    done(db, [st]).await;
}

// ---------------------------------------------------------------------------------------------
// The same scenario on SQLite (the reference) and on PostgreSQL
// ---------------------------------------------------------------------------------------------

/// Runs every trait method in a scripted scenario and writes down what it answered, with
/// generated ids (which legitimately differ between backends) replaced by record keys.
async fn transcript<S: State>(s: &S) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    macro_rules! log {
        ($label:expr, $value:expr) => {
            out.push(format!("{}: {:?}", $label, $value))
        };
    }
    let sorted = |set: HashSet<String>| set.into_iter().collect::<BTreeSet<_>>();
    let t = 1_000_000_i64;
    let lease = Duration::from_secs(60);

    // Bindings and the kill switch.
    log!("bind", s.bind("account", "a1").await.expect("bind"));
    log!("bind again", s.bind("account", "a2").await.expect("bind"));
    log!("binding", s.binding("account").await.expect("binding"));
    log!("no binding", s.binding("nothing").await.expect("binding"));
    log!("paused", s.paused().await.expect("paused"));
    s.set_paused(true).await.expect("pause");
    log!("paused", s.paused().await.expect("paused"));
    s.set_paused(false).await.expect("resume");
    log!("paused", s.paused().await.expect("paused"));

    // A capture page: jobs, an invalid record, a child held for a parent not linked yet.
    let invalid = QuarantineEntry::new(
        "deals",
        "d",
        QuarantineKind::Invalid,
        Some("email".into()),
        "email",
        "not an address",
        t,
    );
    let commit = CaptureCommit {
        unchanged: vec![],
        sync: "deals".into(),
        jobs: vec![
            job("deals", "a", "ha", 0),
            job("deals", "b", "hb", 1),
            job("deals", "c", "hc", 0),
        ],
        quarantine: vec![
            invalid.clone(),
            held_for("deals", "e", ("companies", "p1"), t),
        ],
        cursor: Some(("trigger".into(), "42".into())),
        now_ms: t,
        ..Default::default()
    };
    log!("commit", s.commit_capture(&commit).await.expect("commit"));
    log!(
        "cursor",
        s.cursor("deals", CursorDirection::Push, "trigger")
            .await
            .expect("cursor")
    );
    log!(
        "no cursor",
        s.cursor("deals", CursorDirection::Pull, "trigger")
            .await
            .expect("cursor")
    );
    s.set_cursor("deals", CursorDirection::Pull, "poll", "p-1")
        .await
        .expect("set");
    s.set_cursor("deals", CursorDirection::Pull, "poll", "p-2")
        .await
        .expect("set");
    log!(
        "cursor",
        s.cursor("deals", CursorDirection::Pull, "poll")
            .await
            .expect("cursor")
    );
    log!("counts", s.counts("deals").await.expect("counts"));
    log!(
        "quarantined",
        s.quarantined("deals").await.expect("quarantined")
    );
    log!("recheck", s.recheck_keys("deals").await.expect("recheck"));
    log!(
        "among",
        sorted(
            s.quarantined_among("deals", &["d".into(), "x".into()])
                .await
                .expect("among")
        )
    );
    log!(
        "blocked",
        sorted(
            s.blocked_keys("deals", &["email", "parent"])
                .await
                .expect("blocked")
        )
    );
    log!(
        "blocked none",
        sorted(s.blocked_keys("deals", &[]).await.expect("blocked"))
    );

    // Claims, a payload replaced in flight, settling.
    let claimed = s
        .claim("w1", "deals", 2, lease, t + 1)
        .await
        .expect("claim");
    let ids: HashMap<i64, String> = claimed.iter().map(|j| (j.id, j.local_id.clone())).collect();
    let by_key: HashMap<String, Job> = claimed
        .iter()
        .map(|j| (j.local_id.clone(), j.clone()))
        .collect();
    log!(
        "claim",
        claimed
            .iter()
            .map(|j| (&j.local_id, &j.hash, j.attempts, &j.payload))
            .collect::<Vec<_>>()
    );
    let (ja, jb) = (&by_key["b"], &by_key["a"]);
    let current = s
        .still_current("w1", &[(ja.id, ja.hash.clone()), (jb.id, "wrong".into())])
        .await
        .expect("still_current");
    log!(
        "still current",
        current.iter().map(|i| &ids[i]).collect::<BTreeSet<_>>()
    );
    log!(
        "renew",
        s.renew_jobs("w1", t + 120_000).await.expect("renew")
    );
    log!(
        "renew again",
        s.renew_jobs("w1", t + 120_000).await.expect("renew")
    );
    s.commit_capture(&CaptureCommit::jobs(
        "deals",
        vec![job("deals", "b", "hb2", 0)],
        t + 2,
    ))
    .await
    .expect("commit");
    let show_jobs = |jobs: Vec<JobDetail>| {
        jobs.into_iter()
            .map(|j| {
                (
                    j.direction,
                    j.state,
                    j.hash,
                    j.attempts,
                    j.run_at_ms,
                    j.last_error,
                    j.created_at_ms,
                    j.updated_at_ms,
                    j.owner,
                )
            })
            .collect::<Vec<_>>()
    };
    log!(
        "b in flight",
        show_jobs(s.jobs_of("deals", "b").await.expect("jobs"))
    );
    let settled = s
        .settle(
            "w1",
            &Settlement {
                bases: vec![
                    ("a".into(), "amount".into(), "10".into()),
                    ("zz".into(), "amount".into(), "1".into()),
                ],
                ..settlement(
                    "deals",
                    vec![
                        delivered(&by_key["a"], "crm-a"),
                        delivered(&by_key["b"], "crm-b"),
                    ],
                    t + 3,
                )
            },
        )
        .await
        .expect("settle");
    log!(
        "settle",
        (settled.settled, settled.lost.len(), settled.released)
    );
    log!("a", show_jobs(s.jobs_of("deals", "a").await.expect("jobs")));
    log!("b", show_jobs(s.jobs_of("deals", "b").await.expect("jobs")));
    log!("bases", {
        let b = s
            .bases("deals", &["a".into(), "zz".into()])
            .await
            .expect("bases");
        b.into_iter()
            .map(|(k, v)| (k, v.into_iter().collect::<BTreeMap<_, _>>()))
            .collect::<BTreeMap<_, _>>()
    });

    let rest = s
        .claim("w1", "deals", 5, lease, t + 4)
        .await
        .expect("claim");
    log!(
        "claim rest",
        rest.iter()
            .map(|j| (&j.local_id, &j.hash, j.attempts))
            .collect::<Vec<_>>()
    );
    let by_key: HashMap<String, Job> = rest
        .iter()
        .map(|j| (j.local_id.clone(), j.clone()))
        .collect();
    let retry = Retry {
        job_id: by_key["c"].id,
        error: "429".into(),
        run_at_ms: t + 5_000,
        dead: false,
    };
    let rejected = QuarantineEntry::new(
        "deals",
        "b",
        QuarantineKind::Rejected,
        Some("amount".into()),
        "INVALID_OPTION",
        "the CRM said no",
        t + 5,
    );
    let r = s
        .settle(
            "w1",
            &Settlement {
                retry: vec![retry],
                rejected: vec![(by_key["b"].id, rejected)],
                ..settlement("deals", vec![], t + 5)
            },
        )
        .await
        .expect("settle");
    log!(
        "settle retry and reject",
        (r.settled, r.lost.len(), r.released)
    );
    log!("c", show_jobs(s.jobs_of("deals", "c").await.expect("jobs")));
    log!("b", show_jobs(s.jobs_of("deals", "b").await.expect("jobs")));
    log!(
        "b entry",
        s.quarantine_entry("deals", "b").await.expect("entry")
    );
    log!(
        "not due",
        s.claim("w1", "deals", 5, lease, t + 6)
            .await
            .expect("claim")
            .len()
    );
    let c = s
        .claim("w2", "deals", 5, lease, t + 5_000)
        .await
        .expect("claim");
    log!(
        "due again",
        c.iter()
            .map(|j| (&j.local_id, j.attempts))
            .collect::<Vec<_>>()
    );
    log!("release", s.release_all("w2").await.expect("release"));
    log!(
        "c released",
        show_jobs(s.jobs_of("deals", "c").await.expect("jobs"))
    );
    let c = s
        .claim("w2", "deals", 5, lease, t + 5_001)
        .await
        .expect("claim");
    let dead = Retry {
        job_id: c[0].id,
        error: "gone".into(),
        run_at_ms: t + 6_000,
        dead: true,
    };
    s.settle(
        "w2",
        &Settlement {
            retry: vec![dead],
            ..settlement("deals", vec![], t + 5_002)
        },
    )
    .await
    .expect("settle");
    log!("counts", s.counts("deals").await.expect("counts"));
    log!(
        "lost",
        s.settle(
            "w1",
            &settlement("deals", vec![delivered(&c[0], "x")], t + 5_003)
        )
        .await
        .expect("settle")
        .lost
        .len()
    );

    // Links.
    log!("link a", s.link_detail("deals", "a").await.expect("link"));
    log!(
        "link none",
        s.link_detail("deals", "zz").await.expect("link")
    );
    log!("links_for", {
        let l = s
            .links_for("deals", &["a".into(), "b".into(), "zz".into()])
            .await
            .expect("links");
        l.into_iter().collect::<BTreeMap<_, _>>()
    });
    log!(
        "links_for none",
        s.links_for("deals", &[]).await.expect("links").len()
    );
    log!("local ids", {
        let l = s
            .local_ids_of("deals", &["crm-a".into(), "crm-b".into(), "nope".into()])
            .await
            .expect("ids");
        l.into_iter().collect::<BTreeMap<_, _>>()
    });
    log!(
        "links page",
        s.links_page("deals", None, 10).await.expect("page")
    );
    log!(
        "links page after a",
        s.links_page("deals", Some("a"), 10).await.expect("page")
    );
    log!("link count", s.link_count("deals").await.expect("count"));
    log!(
        "write-backs",
        s.pending_write_backs("deals", 10).await.expect("pending")
    );
    s.mark_written_back(
        "deals",
        &[
            ("a".into(), "crm-a".into()),
            ("b".into(), "elsewhere".into()),
        ],
    )
    .await
    .expect("mark");
    log!(
        "write-backs",
        s.pending_write_backs("deals", 10).await.expect("pending")
    );

    // A parent linked releases its waiting child; a child held after that is released at once.
    s.commit_capture(&CaptureCommit::jobs(
        "companies",
        vec![job("companies", "p1", "hp", 0)],
        t,
    ))
    .await
    .expect("commit");
    let p = s
        .claim("w3", "companies", 1, lease, t + 10)
        .await
        .expect("claim");
    let r = s
        .settle(
            "w3",
            &settlement("companies", vec![delivered(&p[0], "crm-p1")], t + 11),
        )
        .await
        .expect("settle");
    log!("parent settled", (r.settled, r.lost.len(), r.released));
    log!("recheck", s.recheck_keys("deals").await.expect("recheck"));
    s.quarantine(&[
        held_for("deals", "f", ("companies", "p1"), t + 12),
        held_for("deals", "g", ("companies", "p2"), t + 12),
    ])
    .await
    .expect("quarantine");
    log!("f", s.quarantine_entry("deals", "f").await.expect("entry"));
    log!("g", s.quarantine_entry("deals", "g").await.expect("entry"));

    // Inbound commits, stale captures, unlinking.
    s.record_pulls(
        "deals",
        &[
            PullRecord {
                local_id: "a".into(),
                pushed_hash: Some("ha2".into()),
                pulled_hash: Some("pa".into()),
                bases: vec![
                    ("amount".into(), "11".into()),
                    ("stage".into(), "won".into()),
                ],
            },
            PullRecord {
                local_id: "a".into(),
                pushed_hash: None,
                pulled_hash: Some("pa2".into()),
                bases: vec![("amount".into(), "12".into())],
            },
        ],
    )
    .await
    .expect("pulls");
    log!(
        "a after pulls",
        s.links_for("deals", &["a".into()]).await.expect("links")
    );
    log!("bases after pulls", {
        let b = s.bases("deals", &["a".into()]).await.expect("bases");
        b.into_iter()
            .map(|(k, v)| (k, v.into_iter().collect::<BTreeMap<_, _>>()))
            .collect::<BTreeMap<_, _>>()
    });
    let stale = CaptureCommit {
        unchanged: vec![],
        sync: "deals".into(),
        jobs: vec![job("deals", "a", "ha3", 0), job("deals", "h", "hh", 0)],
        quarantine: vec![QuarantineEntry::new(
            "deals",
            "a",
            QuarantineKind::Invalid,
            None,
            "r",
            "m",
            t + 20,
        )],
        clear: vec!["a".into(), "d".into()],
        expect_versions: HashMap::from([("a".into(), 0), ("h".into(), 0), ("d".into(), 0)]),
        now_ms: t + 20,
        ..Default::default()
    };
    log!(
        "stale commit",
        s.commit_capture(&stale).await.expect("commit")
    );
    log!(
        "quarantined",
        s.quarantined("deals").await.expect("quarantined")
    );
    s.unlink("deals", &["a".into()]).await.expect("unlink");
    log!(
        "unlinked",
        s.links_for("deals", &["a".into()])
            .await
            .expect("links")
            .len()
    );
    log!(
        "unlinked bases",
        s.bases("deals", &["a".into()]).await.expect("bases").len()
    );

    // `crmsync retry`, clearing.
    log!(
        "retry",
        s.request_retry(
            Some("deals"),
            &[QuarantineKind::Rejected, QuarantineKind::Held]
        )
        .await
        .expect("retry")
    );
    log!(
        "retry all",
        s.request_retry(None, &[QuarantineKind::Invalid])
            .await
            .expect("retry")
    );
    log!(
        "retry none",
        s.request_retry(None, &[]).await.expect("retry")
    );
    s.clear_quarantine("deals", &["b".into(), "f".into()])
        .await
        .expect("clear");
    log!(
        "quarantined",
        s.quarantined("deals").await.expect("quarantined")
    );

    // Conflicts.
    let conflict = |local: &str, field: &str, app: &str, at: i64| Conflict {
        id: 0,
        sync: "deals".into(),
        local_id: local.into(),
        crm_id: format!("crm-{local}"),
        field: field.into(),
        column: format!("col_{field}"),
        app_value: app.into(),
        crm_value: "crm".into(),
        base_value: None,
        created_at_ms: at,
    };
    s.add_conflicts(&[conflict("x", "f1", "v1", t), conflict("x", "f2", "v1", t)])
        .await
        .expect("conflicts");
    s.add_conflicts(&[
        conflict("x", "f1", "v2", t + 1),
        conflict("x", "f1", "v3", t + 2),
    ])
    .await
    .expect("conflicts");
    let open = s.open_conflicts(None).await.expect("open");
    log!(
        "open",
        open.iter()
            .map(|c| (
                &c.local_id,
                &c.field,
                &c.app_value,
                c.created_at_ms,
                &c.column
            ))
            .collect::<Vec<_>>()
    );
    log!(
        "resolve",
        s.resolve_conflict(open[0].id, "app")
            .await
            .expect("resolve")
    );
    log!(
        "resolve again",
        s.resolve_conflict(open[0].id, "crm")
            .await
            .expect("resolve")
    );
    log!(
        "open deals",
        s.open_conflicts(Some("deals")).await.expect("open").len()
    );
    log!(
        "open other",
        s.open_conflicts(Some("other")).await.expect("open").len()
    );

    // Deletions and merges.
    let deletion = |local: &str, state: DeletionState, at: i64| CrmDeletion {
        sync: "deals".into(),
        local_id: local.into(),
        crm_id: format!("crm-{local}"),
        seen_at_ms: at,
        state,
        action: (state == DeletionState::Applied).then(|| "flag".to_string()),
    };
    s.record_deletions(&[
        deletion("k1", DeletionState::Held, t),
        deletion("k2", DeletionState::Applied, t + 1),
    ])
    .await
    .expect("deletions");
    s.record_deletions(&[deletion("k1", DeletionState::Applied, t + 2)])
        .await
        .expect("deletions");
    log!(
        "deletions",
        s.deletions(None, None).await.expect("deletions")
    );
    log!(
        "held",
        s.deletions(Some("deals"), Some(DeletionState::Held))
            .await
            .expect("deletions")
    );
    log!(
        "since",
        s.deletions_since("deals", t + 1).await.expect("since")
    );
    s.forget_deletions("deals", &["k1".into()])
        .await
        .expect("forget");
    log!(
        "deletions",
        s.deletions(Some("deals"), None).await.expect("deletions")
    );
    s.record_merges(&[CrmMerge {
        sync: "deals".into(),
        local_id: "b".into(),
        from_crm_id: "crm-b".into(),
        to_crm_id: "crm-survivor".into(),
        shared_with: Some("c".into()),
        at_ms: t + 30,
    }])
    .await
    .expect("merges");
    log!("merges", s.merges(None).await.expect("merges"));
    log!(
        "merges other",
        s.merges(Some("other")).await.expect("merges")
    );
    log!(
        "b merged",
        s.links_for("deals", &["b".into()]).await.expect("links")
    );

    // The webhook inbox and hints.
    let events = vec![
        ("k1".to_string(), "{1}".to_string()),
        ("k2".into(), "{2}".into()),
        ("k1".into(), "{1b}".into()),
    ];
    log!(
        "events",
        s.record_webhook_events(&events, t).await.expect("events")
    );
    log!(
        "events again",
        s.record_webhook_events(&events[1..2], t + 1)
            .await
            .expect("events")
    );
    log!(
        "pending events",
        s.pending_webhook_events(10).await.expect("pending")
    );
    log!(
        "pending count",
        s.pending_webhook_count().await.expect("count")
    );
    let hint = |id: &str, at: i64| Hint {
        sync: "deals".into(),
        crm_id: id.into(),
        reason: "webhook".into(),
        added_at_ms: at,
    };
    s.webhook_events_to_hints(&["k1".into()], &[hint("h1", 0), hint("h2", 0)], t + 2)
        .await
        .expect("to hints");
    log!(
        "pending count",
        s.pending_webhook_count().await.expect("count")
    );
    s.add_hints(&[hint("h2", 0), hint("h3", 0)], t + 3)
        .await
        .expect("hints");
    log!("hints", s.pending_hints("deals", 10).await.expect("hints"));
    log!(
        "hints limited",
        s.pending_hints("deals", 1).await.expect("hints")
    );
    s.clear_hints("deals", &["h1".into(), "h2".into(), "h3".into()], t + 2)
        .await
        .expect("clear");
    log!("hints", s.pending_hints("deals", 10).await.expect("hints"));

    // Leases and the call budget.
    let ttl = Duration::from_secs(10);
    log!(
        "lead",
        s.try_lead("poll", "w1", ttl, t).await.expect("lead")
    );
    log!(
        "lead other",
        s.try_lead("poll", "w2", ttl, t + 1).await.expect("lead")
    );
    log!(
        "lead expired",
        s.try_lead("poll", "w2", ttl, t + 10_001)
            .await
            .expect("lead")
    );
    log!(
        "lead",
        s.try_lead("capture", "w1", ttl, t).await.expect("lead")
    );
    log!("leaders", s.leaders().await.expect("leaders"));
    s.resign("w2").await.expect("resign");
    log!("leaders", s.leaders().await.expect("leaders"));
    let req = |now_ms: i64| Reservation {
        connection: "hubspot".into(),
        windows: vec![
            WindowLimit {
                name: "burst".into(),
                max: 2,
                length_ms: 100,
                min_gap_ms: 0,
            },
            WindowLimit {
                name: "long".into(),
                max: 3,
                length_ms: 1_000,
                min_gap_ms: 0,
            },
        ],
        day: Some(DayLimit {
            start_ms: t,
            allowance: 4,
        }),
        now_ms,
    };
    for now in [
        t,
        t + 1,
        t + 2,
        t + 150,
        t + 200,
        t + 1_001,
        t + 1_050,
        t + 1_060,
        t + 3_000,
    ] {
        log!(
            format!("reserve {}", now - t),
            s.reserve_call(&req(now)).await.expect("reserve")
        );
    }
    log!(
        "no windows",
        s.reserve_call(&Reservation {
            connection: "other".into(),
            windows: vec![],
            day: None,
            now_ms: t
        })
        .await
        .expect("reserve")
    );
    log!(
        "reserved",
        s.calls_reserved("hubspot", t).await.expect("reserved")
    );

    // The call log.
    let call =
        |at_ms: i64, method: &str, endpoint: &str, status: Option<u16>, attempt: u32| CallRow {
            connection: "hubspot".into(),
            at_ms,
            method: method.into(),
            endpoint: endpoint.into(),
            status,
            attempt,
            latency_ms: 12,
            records: 3,
            operation: crmsync_store::testing::state_suite::operation_of(endpoint).into(),
            rate_limited: status == Some(429),
            rate_limits: Some("{\"remaining\":9}".into()),
            error: status.is_none().then(|| "timeout".to_string()),
        };
    s.record_calls(&[
        call(
            t,
            "POST",
            "/crm/v3/objects/deals/batch/upsert",
            Some(200),
            1,
        ),
        call(
            t + 1,
            "POST",
            "/crm/v3/objects/deals/batch/upsert",
            Some(429),
            2,
        ),
        call(t + 2, "GET", "/crm/v3/objects/deals/7", Some(404), 1),
        call(
            t + 3,
            "PUT",
            "/crm/v4/associations/deals/companies",
            Some(201),
            1,
        ),
        call(t + 4, "POST", "/crm/v3/objects/deals/batch/read", None, 3),
    ])
    .await
    .expect("calls");
    log!("summary", s.call_summary(t).await.expect("summary"));
    log!(
        "summary later",
        s.call_summary(t + 3).await.expect("summary")
    );
    log!(
        "calls",
        s.calls_between(t, t + 3, "batch", 10).await.expect("calls")
    );
    log!(
        "calls unlimited",
        s.calls_between(t, t + 10, "", -1)
            .await
            .expect("calls")
            .len()
    );
    log!(
        "calls limited",
        s.calls_between(t, t + 10, "", 2)
            .await
            .expect("calls")
            .len()
    );
    out
}

#[tokio::test]
async fn same_transcript_as_sqlite() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = SqliteState::open(
        &format!("sqlite://{}/state.db", dir.path().display()),
        Role::Worker,
    )
    .await
    .expect("open sqlite");
    let pg = PgState::open(&db.url).await.expect("open postgres");
    let want = transcript(&sqlite).await;
    let got = transcript(&pg).await;
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        assert_eq!(g, w, "line {i} differs (left: postgres, right: sqlite)");
    }
    assert_eq!(got.len(), want.len());
    done(db, [pg]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mixed_work_on_the_same_records_never_deadlocks() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let ws = workers(&db, 3).await;
    const KEYS: usize = 30;
    const ROUNDS: usize = 60;
    let keys: Vec<String> = (0..KEYS).map(|i| format!("k{i:02}")).collect();
    let t = 1_000_000;
    let mut tasks: Vec<tokio::task::JoinHandle<()>> = Vec::new();

    // The capture: re-queues every record (most of them in flight), holds some for parents,
    // clears others, checking the versions it read.
    let (st, ks) = (ws[0].clone(), keys.clone());
    tasks.push(tokio::spawn(async move {
        for round in 0..ROUNDS {
            let links = st.links_for("s", &ks).await.expect("links");
            let held: Vec<QuarantineEntry> = ks
                .iter()
                .step_by(7)
                .map(|k| held_for("s", k, ("s", &ks[(round + 1) % KEYS]), t))
                .collect();
            let commit = CaptureCommit {
                unchanged: vec![],
                sync: "s".into(),
                jobs: ks
                    .iter()
                    .rev()
                    .map(|k| job("s", k, &format!("h{round}"), 0))
                    .collect(),
                quarantine: held,
                clear: ks.iter().skip(3).step_by(5).cloned().collect(),
                expect_versions: ks
                    .iter()
                    .map(|k| (k.clone(), links.get(k).map_or(0, |l| l.version)))
                    .collect(),
                cursor: Some(("trigger".into(), round.to_string())),
                now_ms: t + round as i64,
            };
            st.commit_capture(&commit).await.expect("commit");
        }
    }));
    // Deliverers on two workers: claim, renew, settle (some rejected, some retried).
    for (w, st) in ws.iter().enumerate().take(2) {
        let st = st.clone();
        tasks.push(tokio::spawn(async move {
            let owner = format!("d{w}");
            for round in 0..ROUNDS {
                let now = t + round as i64;
                let jobs = st
                    .claim(&owner, "s", 8, Duration::from_secs(60), now)
                    .await
                    .expect("claim");
                st.renew_jobs(&owner, now + 120_000).await.expect("renew");
                let mut s = settlement("s", vec![], now);
                for (i, j) in jobs.iter().rev().enumerate() {
                    match i % 4 {
                        0 => s.retry.push(Retry {
                            job_id: j.id,
                            error: "503".into(),
                            run_at_ms: now,
                            dead: false,
                        }),
                        1 => s.rejected.push((
                            j.id,
                            QuarantineEntry::new(
                                "s",
                                &j.local_id,
                                QuarantineKind::Rejected,
                                None,
                                "x",
                                "no",
                                now,
                            ),
                        )),
                        _ => {
                            s.delivered
                                .push(delivered(j, &format!("crm-{}", j.local_id)));
                            s.bases
                                .push((j.local_id.clone(), "f".into(), round.to_string()));
                        }
                    }
                }
                st.settle(&owner, &s).await.expect("settle");
            }
            st.release_all(&owner).await.expect("release");
        }));
    }
    // Inbound commits in scrambled order, merges and unlinks.
    let (st, ks) = (ws[2].clone(), keys.clone());
    tasks.push(tokio::spawn(async move {
        for round in 0..ROUNDS {
            let pulls: Vec<PullRecord> = (0..10)
                .map(|i| PullRecord {
                    local_id: ks[(round * 7 + i * 11) % KEYS].clone(),
                    pushed_hash: Some(format!("p{round}")),
                    pulled_hash: None,
                    bases: vec![("f".into(), "pulled".into())],
                })
                .collect();
            st.record_pulls("s", &pulls).await.expect("pulls");
            let merges: Vec<CrmMerge> = (0..3)
                .map(|i| CrmMerge {
                    sync: "s".into(),
                    local_id: ks[(round * 5 + i * 13) % KEYS].clone(),
                    from_crm_id: "old".into(),
                    to_crm_id: format!("m{round}"),
                    shared_with: None,
                    at_ms: t,
                })
                .collect();
            st.record_merges(&merges).await.expect("merges");
            st.mark_written_back("s", &[(ks[round % KEYS].clone(), format!("m{round}"))])
                .await
                .expect("write-back");
            if round % 10 == 0 {
                st.unlink("s", &[ks[(round * 3) % KEYS].clone()])
                    .await
                    .expect("unlink");
                st.quarantine(&[held_for("s", &ks[(round * 3 + 1) % KEYS], ("s", &ks[0]), t)])
                    .await
                    .expect("quarantine");
            }
        }
    }));
    for task in tasks {
        task.await.expect("no call failed");
    }
    let counts = ws[0].counts("s").await.expect("counts");
    assert!(counts.linked > 0, "{counts:?}");
    done(db, ws).await;
}
