//! [`Engine`]: the parts every stage draws from — the config, the app database, the state,
//! the CRM client, the clock, telemetry, this worker's owner token — and the units of work the
//! [`crate::runtime`] schedules and one-shot commands run: a sync's leader round (inbound hints,
//! polls, lifecycle checks, write-backs, capture), a delivery round, webhook events to hints.
//! The stages themselves live in [`crate::outbound`], [`crate::inbound`] and
//! [`crate::lifecycle`]; each takes only the parts it uses.
//!
//! Who writes what: only a sync's leader writes the app database and plans its records (inbound
//! commits and captures of one sync never interleave); any worker delivers. A delivery that
//! finds a CRM edit just before pushing does not write the app: it hands the record to the
//! leader as a hint.

use crate::calls::CallBuffer;
use crate::clock::{Clock, SystemClock};
use crate::error::EngineError;
use crate::telemetry::{Event, LogTelemetry, Telemetry};
use crmsync_core::config::{Config, SyncConfig};
use crmsync_crm::{Crm, ObjectKind};
use crmsync_store::{Capture, Source, State};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Timings of leases, as the runtime keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leases {
    /// How long a claimed job is this worker's before another may take it over; renewed by
    /// the runtime's heartbeat while the worker lives.
    pub job: Duration,
    /// How long a leader lease lasts without renewal.
    pub leader: Duration,
}

impl Default for Leases {
    fn default() -> Self {
        Leases {
            job: Duration::from_secs(60),
            leader: Duration::from_secs(15),
        }
    }
}

/// Wake-ups between tasks of one process (other processes find the work on their next round).
#[derive(Debug, Default)]
pub struct Wakes {
    syncs: HashMap<String, Arc<Notify>>,
    pub deliver: Arc<Notify>,
    pub webhooks: Arc<Notify>,
}

impl Wakes {
    fn new(config: &Config) -> Self {
        Wakes {
            syncs: config
                .raw
                .syncs
                .iter()
                .map(|s| (s.name.clone(), Arc::new(Notify::new())))
                .collect(),
            deliver: Arc::new(Notify::new()),
            webhooks: Arc::new(Notify::new()),
        }
    }

    /// The wake-up of one sync's leader task.
    pub fn sync(&self, name: &str) -> Option<Arc<Notify>> {
        self.syncs.get(name).cloned()
    }

    /// Wakes the leader task of `name`.
    pub fn wake_sync(&self, name: &str) {
        if let Some(n) = self.syncs.get(name) {
            n.notify_one();
        }
    }

    /// Wakes every task (after the kill switch changed, say).
    pub fn wake_all(&self) {
        for n in self.syncs.values() {
            n.notify_one();
        }
        self.deliver.notify_one();
        self.webhooks.notify_one();
    }
}

/// The parts one worker works with. `A` is the app database, `S` the state, `C` the CRM.
pub struct Engine<A, S, C> {
    pub config: Config,
    pub app: A,
    pub state: S,
    pub crm: C,
    pub calls: CallBuffer,
    pub clock: Arc<dyn Clock>,
    pub telemetry: Arc<dyn Telemetry>,
    /// This worker's owner token for job and leader leases.
    pub worker: String,
    /// The CRM connection whose budget this worker spends.
    pub connection: String,
    /// Cancelled to stop: no new batch starts, current ones finish.
    pub cancel: CancellationToken,
    pub leases: Leases,
    pub wakes: Wakes,
    /// Id properties known to exist in the CRM, checked once per process (not every round);
    /// forgotten when a pass fails, so a property deleted meanwhile is made again.
    ensured: Mutex<HashSet<(ObjectKind, String)>>,
    /// Settlements the state database refused to store (it was unreachable): applied again
    /// before the next delivery round, so their jobs never stay leased to this worker.
    pub(crate) unsettled: Mutex<Vec<crmsync_store::Settlement>>,
}

/// A fresh owner token: unique per process start, readable in `status`.
pub fn worker_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
    format!(
        "{host}:{}:{}",
        std::process::id(),
        &uuid::Uuid::now_v7().simple().to_string()[20..]
    )
}

impl<A, S, C> Engine<A, S, C>
where
    A: Source + Capture,
    S: State,
    C: Crm,
{
    /// An engine on the system clock, logging its events.
    pub fn new(config: Config, app: A, state: S, crm: C, calls: CallBuffer) -> Self {
        let wakes = Wakes::new(&config);
        let connection = connection_of(&config);
        Engine {
            config,
            app,
            state,
            crm,
            calls,
            clock: Arc::new(SystemClock),
            telemetry: Arc::new(LogTelemetry),
            worker: worker_id(),
            connection,
            cancel: CancellationToken::new(),
            leases: Leases::default(),
            wakes,
            ensured: Mutex::new(HashSet::new()),
            unsettled: Mutex::new(Vec::new()),
        }
    }

    /// Sends `event` to the subscriber.
    pub fn emit(&self, event: Event) {
        self.telemetry.emit(&event);
    }

    /// Whether a shutdown was asked for.
    pub fn stopping(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// True when the kill switch is on or a shutdown was asked for: no new batch starts.
    pub async fn halted(&self) -> Result<bool, EngineError> {
        Ok(self.stopping() || self.state.paused().await?)
    }

    /// Writes the buffered call records to the call log; returns how many there were.
    pub async fn flush_calls(&self) -> Result<u64, EngineError> {
        let (rows, written) = self.calls.flush(&self.state, &self.connection).await;
        for row in &rows {
            self.emit(Event::CrmCall {
                connection: row.connection.clone(),
                operation: row.operation.clone(),
                status: row.status,
                rate_limited: row.rate_limited,
                latency_ms: u64::try_from(row.latency_ms).unwrap_or(0),
            });
        }
        written?;
        Ok(rows.len() as u64)
    }

    /// The CRM object a sync writes.
    pub fn object_of(sync: &SyncConfig) -> Result<ObjectKind, EngineError> {
        ObjectKind::parse(&sync.object).ok_or_else(|| {
            EngineError::Config(format!(
                "sync `{}`: unknown CRM object `{}`",
                sync.name, sync.object
            ))
        })
    }

    /// Today's daily budget, with the calls every worker reserved today counted.
    pub async fn budget(&self) -> Result<crate::budget::Budget, EngineError> {
        let mut b = crate::budget::Budget::new(&self.config.raw.crm, self.clock.now_ms());
        b.used = self
            .state
            .calls_reserved(&self.connection, b.day_start_ms)
            .await?;
        Ok(b)
    }

    /// Makes sure every sync's id property exists in the CRM (once per process).
    pub async fn ensure_id_properties(&self) -> Result<(), EngineError> {
        for s in &self.config.raw.syncs {
            let key = (Self::object_of(s)?, s.id_property.clone());
            let known = self.ensured.lock().is_ok_and(|set| set.contains(&key));
            if !known {
                let r = self.crm.ensure_id_property(key.0, &s.id_property).await;
                self.flush_calls().await?;
                r?;
                if let Ok(mut set) = self.ensured.lock() {
                    set.insert(key);
                }
            }
        }
        Ok(())
    }

    /// Forgets which id properties exist (after a failed pass: one may have been deleted).
    pub(crate) fn forget_ensured(&self) {
        if let Ok(mut set) = self.ensured.lock() {
            set.clear();
        }
    }

    /// A gate that admits this engine's CRM calls through the shared budget in the state
    /// (install it into the CRM client), on the engine's clock and cancellation token.
    pub fn budget_gate(&self) -> crate::gate::BudgetGate<S> {
        crate::gate::BudgetGate::new(
            self.state.clone(),
            self.connection.clone(),
            self.config.raw.crm.clone(),
            self.clock.clone(),
            self.cancel.clone(),
        )
    }

    /// Takes or renews the lead of `task` for this worker.
    pub async fn lead(&self, task: &str) -> Result<bool, EngineError> {
        Ok(self
            .state
            .try_lead(task, &self.worker, self.leases.leader, self.clock.now_ms())
            .await?)
    }
}

/// The name budgets and the call log know this CRM connection by.
pub fn connection_of(config: &Config) -> String {
    format!("{:?}", config.raw.crm.kind).to_lowercase()
}

/// The leader task of one sync's capture and inbound work.
pub fn sync_task(sync: &str) -> String {
    format!("sync:{sync}")
}

/// The leader task turning webhook events into hints.
pub const WEBHOOK_TASK: &str = "webhooks";
