//! The runtime of `crmsync run`: the engine's units as concurrent tasks of one worker, any
//! number of workers sharing one state database.
//!
//! - **one task per sync**, active while this worker holds the sync's leader lease: inbound
//!   hints, the poll and the archived listing when due, reconciliation when due, write-backs,
//!   capture. Only the leader of a sync writes its app rows and plans its records;
//! - **delivery**, on every worker: claims due jobs of any sync and delivers them;
//! - **webhook events to hints**, on the leader of the webhook task;
//! - **heartbeat**: renews this worker's job and leader leases, so a live worker keeps its
//!   work and a killed one's is taken over when its leases run out;
//! - **change notifications** from the app database (PostgreSQL `LISTEN`) wake the syncs of
//!   the table at once; without them each sync looks every `capture_interval_ms`.
//!
//! Cancelling the token stops new work; batches in flight finish; then the worker gives its
//! jobs back and resigns its leases, so another worker continues at once.

use crate::engine::{Engine, WEBHOOK_TASK, sync_task};
use crate::error::EngineError;
use crate::report::PullReport;
use crate::telemetry::{Event, InboundSource};
use crmsync_core::config::SyncConfig;
use crmsync_crm::Crm;
use crmsync_store::{Capture, Source, State};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How a worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
    /// Stop once every sync ran this many leader rounds and nothing is due (scripts, tests).
    pub rounds: Option<u64>,
}

/// What a sync's leader does in one round, and how it went.
struct SyncTask<'a> {
    sync: &'a SyncConfig,
    /// When the next poll is due (our clock, monotonic).
    next_poll: Instant,
    rounds: &'a AtomicU64,
}

/// Runs `engine` until its cancellation token is cancelled (or `options.rounds` are done).
pub async fn run<A, S, C>(
    engine: Arc<Engine<A, S, C>>,
    options: RunOptions,
) -> Result<(), EngineError>
where
    A: Source + Capture + 'static,
    S: State,
    C: Crm + 'static,
{
    crate::check::check_source(&engine.config, &engine.app).await?;
    engine.emit(Event::WorkerStarted {
        worker: engine.worker.clone(),
        state: engine.state.backend().to_string(),
    });
    let rounds: Arc<HashMap<String, AtomicU64>> = Arc::new(
        engine
            .config
            .raw
            .syncs
            .iter()
            .map(|s| (s.name.clone(), AtomicU64::new(0)))
            .collect(),
    );
    let mut tasks = JoinSet::new();
    tasks.spawn(heartbeat(engine.clone()));
    tasks.spawn(listen(engine.clone()));
    tasks.spawn(webhooks(engine.clone()));
    tasks.spawn(retention(engine.clone()));
    tasks.spawn(deliver(engine.clone(), rounds.clone(), options));
    for i in 0..engine.config.raw.syncs.len() {
        tasks.spawn(sync_loop(engine.clone(), i, rounds.clone()));
    }
    // A task ends only when the token is cancelled (or it failed for good): then all stop.
    let mut result = Ok(());
    while let Some(done) = tasks.join_next().await {
        if let Ok(Err(e)) = done
            && result.is_ok()
        {
            result = Err(e);
            engine.cancel.cancel();
        }
        if !engine.cancel.is_cancelled() {
            engine.cancel.cancel();
        }
    }
    let _ = engine.flush_calls().await;
    let _ = engine.settle_kept().await;
    // Give back what this worker holds, so another takes over without waiting for leases.
    let released = engine.state.release_all(&engine.worker).await;
    let resigned = engine.state.resign(&engine.worker).await;
    result?;
    released?;
    resigned?;
    Ok(())
}

/// The time between two looks at a sync without notifications.
fn capture_interval<A, S, C>(engine: &Engine<A, S, C>) -> Duration {
    Duration::from_millis(engine.config.raw.run.capture_interval_ms.max(10))
}

/// Waits `wait`, or less if `notify` fires or the worker stops.
async fn nap<A, S, C>(
    engine: &Engine<A, S, C>,
    notify: Option<&tokio::sync::Notify>,
    wait: Duration,
) {
    match notify {
        Some(n) => tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = n.notified() => {}
            _ = engine.cancel.cancelled() => {}
        },
        None => tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = engine.cancel.cancelled() => {}
        },
    }
}

/// Renews the job and leader leases this worker holds, a few times per lease.
async fn heartbeat<A, S, C>(engine: Arc<Engine<A, S, C>>) -> Result<(), EngineError>
where
    A: Source + Capture,
    S: State,
    C: Crm,
{
    engine.keep_leases().await;
    Ok(())
}

impl<A, S, C> Engine<A, S, C>
where
    A: Source + Capture,
    S: State,
    C: Crm,
{
    /// Renews this worker's job and leader leases every third of the shorter lease until the
    /// cancellation token is cancelled. `run` keeps it as a task; `sync --once` beside its
    /// pass, so a batch that waits long for the budget keeps its jobs.
    pub(crate) async fn keep_leases(&self) {
        let every = self.leases.job.min(self.leases.leader) / 3;
        while !self.cancel.is_cancelled() {
            nap(self, None, every).await;
            if self.cancel.is_cancelled() {
                break;
            }
            let until = self
                .clock
                .now_ms()
                .saturating_add(i64::try_from(self.leases.job.as_millis()).unwrap_or(i64::MAX));
            if let Err(e) = self.state.renew_jobs(&self.worker, until).await {
                self.emit(Event::TaskFailed {
                    task: "heartbeat".into(),
                    error: e.to_string(),
                });
            }
            // Leader leases are renewed by their tasks' rounds, and here between long rounds.
            if let Ok(leaders) = self.state.leaders().await {
                for (task, owner, _) in leaders {
                    if owner == self.worker {
                        let _ = self.lead(&task).await;
                    }
                }
            }
        }
    }
}

/// Forwards the app database's change notifications to the syncs of each table.
async fn listen<A, S, C>(engine: Arc<Engine<A, S, C>>) -> Result<(), EngineError>
where
    A: Source + Capture,
    S: State,
    C: Crm,
{
    let Some(mut changes) = engine.app.subscribe().await? else {
        engine.cancel.cancelled().await;
        return Ok(());
    };
    loop {
        tokio::select! {
            _ = engine.cancel.cancelled() => break,
            table = changes.recv() => match table {
                Some(table) => {
                    for s in engine.config.raw.syncs.iter().filter(|s| s.table == table || s.table.ends_with(&format!(".{table}"))) {
                        engine.wakes.wake_sync(&s.name);
                    }
                }
                None => {
                    // The listener ended: syncs fall back to their interval.
                    engine.cancel.cancelled().await;
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Turns stored webhook events into hints, on the leader of the webhook task.
async fn webhooks<A, S, C>(engine: Arc<Engine<A, S, C>>) -> Result<(), EngineError>
where
    A: Source + Capture,
    S: State,
    C: Crm,
{
    let wake = engine.wakes.webhooks.clone();
    while !engine.cancel.is_cancelled() {
        let step = async {
            if engine.halted().await? || !engine.lead(WEBHOOK_TASK).await? {
                return Ok::<(), EngineError>(());
            }
            let (report, _) = engine.webhooks_to_hints().await?;
            if report.events > 0 {
                engine.emit(Event::WebhooksApplied {
                    applied: report.events - report.events_skipped,
                    skipped: report.events_skipped,
                });
            }
            Ok(())
        };
        if let Err(e) = step.await {
            engine.emit(Event::TaskFailed {
                task: WEBHOOK_TASK.into(),
                error: e.to_string(),
            });
        }
        nap(&engine, Some(&wake), capture_interval(&engine)).await;
    }
    Ok(())
}

/// How often retention runs: rows expire by the day, so an hour is precise enough.
const RETENTION_EVERY: Duration = Duration::from_secs(60 * 60);

/// Prunes the state database past its retention, at start and then hourly, on the leader of
/// the retention task (any worker would do; one avoids racing deletes).
async fn retention<A, S, C>(engine: Arc<Engine<A, S, C>>) -> Result<(), EngineError>
where
    A: Source + Capture,
    S: State,
    C: Crm,
{
    while !engine.cancel.is_cancelled() {
        let step = async {
            if engine.lead(RETENTION_TASK).await? {
                engine.prune_retained(engine.clock.now_ms()).await?;
            }
            Ok::<(), EngineError>(())
        };
        if let Err(e) = step.await {
            engine.emit(Event::TaskFailed {
                task: RETENTION_TASK.into(),
                error: e.to_string(),
            });
        }
        nap(&engine, None, RETENTION_EVERY).await;
    }
    Ok(())
}

/// The leader task of retention.
const RETENTION_TASK: &str = "retention";

/// Delivers due jobs of every sync, whenever there are some.
async fn deliver<A, S, C>(
    engine: Arc<Engine<A, S, C>>,
    rounds: Arc<HashMap<String, AtomicU64>>,
    options: RunOptions,
) -> Result<(), EngineError>
where
    A: Source + Capture,
    S: State,
    C: Crm,
{
    let wake = engine.wakes.deliver.clone();
    let mut was_paused = false;
    while !engine.cancel.is_cancelled() {
        let paused = engine.state.paused().await.unwrap_or(false);
        if paused != was_paused {
            engine.emit(Event::Paused { paused });
            was_paused = paused;
        }
        let mut idle = true;
        if !paused {
            let step = async {
                engine.ensure_id_properties().await?;
                engine.deliver_round(false).await
            };
            match step.await {
                Ok(d) => idle = d.batches == 0,
                Err(e) => {
                    engine.forget_ensured();
                    engine.emit(Event::TaskFailed {
                        task: "deliver".into(),
                        error: e.to_string(),
                    });
                }
            }
        }
        if let Some(n) = options.rounds
            && idle
            && rounds.values().all(|r| r.load(Ordering::SeqCst) >= n)
        {
            engine.cancel.cancel();
            break;
        }
        nap(&engine, Some(&wake), capture_interval(&engine)).await;
    }
    Ok(())
}

/// One sync's leader loop.
async fn sync_loop<A, S, C>(
    engine: Arc<Engine<A, S, C>>,
    index: usize,
    rounds: Arc<HashMap<String, AtomicU64>>,
) -> Result<(), EngineError>
where
    A: Source + Capture,
    S: State,
    C: Crm,
{
    let Some(sync) = engine.config.raw.syncs.get(index) else {
        return Ok(());
    };
    let Some(counter) = rounds.get(&sync.name) else {
        return Ok(());
    };
    let wake = engine.wakes.sync(&sync.name);
    let mut task = SyncTask {
        sync,
        next_poll: Instant::now(),
        rounds: counter,
    };
    let mut leading = false;
    while !engine.cancel.is_cancelled() {
        let lead = engine.lead(&sync_task(&sync.name)).await;
        match lead {
            Ok(held) => {
                if held != leading {
                    engine.emit(Event::Leader {
                        task: sync_task(&sync.name),
                        held,
                    });
                    leading = held;
                    // A new leader polls at once: the old one may have died mid-interval.
                    task.next_poll = Instant::now();
                }
                if held && !engine.halted().await.unwrap_or(true) {
                    sync_round(&engine, &mut task).await;
                }
            }
            Err(e) => engine.emit(Event::TaskFailed {
                task: sync_task(&sync.name),
                error: e.to_string(),
            }),
        }
        task.rounds.fetch_add(1, Ordering::SeqCst);
        let wait = capture_interval(&engine).min(
            task.next_poll
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        );
        nap(&engine, wake.as_deref(), wait).await;
    }
    Ok(())
}

/// One leader round of a sync. Each step's failure is reported and the next steps still run
/// (a CRM outage must not stop capture, a capture error must not stop the poll).
async fn sync_round<A, S, C>(engine: &Engine<A, S, C>, task: &mut SyncTask<'_>)
where
    A: Source + Capture,
    S: State,
    C: Crm,
{
    let sync = task.sync;
    let name = &sync.name;
    let failed = |what: &str, e: EngineError| {
        engine.emit(Event::TaskFailed {
            task: format!("{what}:{name}"),
            error: e.to_string(),
        });
    };
    if let Err(e) = engine.apply_hints(sync).await {
        failed("hints", e);
    }
    let run = &engine.config.raw.run;
    if run.poll && Instant::now() >= task.next_poll {
        task.next_poll = Instant::now() + Duration::from_millis(run.poll_interval_ms.max(1));
        let mut r = PullReport::default();
        match engine.poll_sync(sync, &mut r).await {
            Ok(()) => engine.emit(Event::Inbound {
                source: InboundSource::Poll,
                sync: name.clone(),
                report: r,
            }),
            Err(e) => failed("poll", e),
        }
        match engine.archive_check_due(sync).await {
            Ok(true) => {
                let mut r = PullReport::default();
                match engine.check_archived(sync, &mut r).await {
                    Ok(()) => engine.emit(Event::Inbound {
                        source: InboundSource::Archive,
                        sync: name.clone(),
                        report: r,
                    }),
                    Err(e) => failed("archived", e),
                }
            }
            Ok(false) => {}
            Err(e) => failed("archived", e),
        }
    }
    match engine.reconcile_due(sync).await {
        Ok(true) => {
            let mut r = PullReport::default();
            match engine.reconcile_sync(sync, &mut r).await {
                Ok(_) => {
                    engine.emit(Event::Reconciled {
                        checked: r.checked,
                        drift: r.drift(),
                    });
                    engine.emit(Event::Inbound {
                        source: InboundSource::Reconcile,
                        sync: name.clone(),
                        report: r,
                    });
                }
                Err(e) => failed("reconcile", e),
            }
        }
        Ok(false) => {}
        Err(e) => failed("reconcile", e),
    }
    if let Err(e) = engine.write_back(sync).await {
        failed("write-back", e);
    }
    if let Err(e) = engine.capture_sync(sync).await {
        failed("capture", e);
    }
    if let Err(e) = engine.flush_calls().await {
        failed("call-log", e);
    }
}
