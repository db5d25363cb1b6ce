//! `crmsync plan`, both ways: what the next round of the sync would do, per sync and per
//! record, and what it costs, found by running the sync's own deciding code on what it would
//! read.
//!
//! The round is the one `crmsync run` makes per sync, in its order: the poll (CRM changes
//! since the stored pull cursor, decided by [`crate::inbound::decide_changes`]), the archived
//! listing when due (judged by [`crate::lifecycle::deletion::judge_gone`]), then the capture
//! ([`crate::outbound::capture::capture`], each page planned by the pure planner through
//! [`crate::outbound::plan_page`]) with the app rows and links as the inbound commit would
//! leave them. A one-way sync has only the capture, which is all `sync --once` does.
//!
//! Invariant: nothing here writes the app database, the CRM or the sync's state (links,
//! queue, cursors, conflicts, bases, quarantine, hints, deletions, leases). The CRM is only
//! read (searches, listings), and each read goes through the shared budget gate and into the
//! call log like every call, so the budget other workers see stays true. What could not be
//! known without writing is said in [`Forecast::guesses`].

use crate::budget::Budget;
use crate::calls::CallBuffer;
use crate::error::EngineError;
use crate::estimate::{Eta, eta, linked_on_create, linked_on_write};
use crate::inbound::commit::written_row;
use crate::inbound::conflict::Decision;
use crate::inbound::decide::{Decided, pulled_fields, pulled_properties};
use crate::inbound::poll::{PAGE as POLL_PAGE, POLL, parse_pull_state, poll_start};
use crate::lifecycle::deletion::{ARCHIVE_TASK, judge_gone};
use crate::outbound::capture::capture;
use crate::outbound::order::dependency_order;
use crate::outbound::plan::{Payload, reference_properties};
use crate::outbound::{PageInput, parked_keys, plan_page, planned_fingerprint, replan_due};
use crmsync_core::config::raw::OnCrmDelete;
use crmsync_core::config::{Config, OnCrmCreate, SyncConfig};
use crmsync_crm::{ChangedRecord, Crm, ObjectKind};
use crmsync_store::{
    Capture, CursorDirection, Link, QuarantineKind, Records, Source, SourceRow, State,
};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Which way a record goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// App to CRM.
    Outbound,
    /// CRM to app.
    Inbound,
}

/// What the sync does with one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Outbound: no CRM id yet, the upsert creates it. Inbound: a row is inserted.
    Create,
    /// Outbound: the CRM record gets the changed properties. Inbound: the app row gets the
    /// changed columns.
    Update,
    /// Nothing to send or write (unchanged, an echo of our own write, nothing to take).
    Skip,
    /// Outbound: a rule refuses the record (quarantined with the rule and field).
    Invalid,
    /// Waits: for a parent, a confirmation, a person (a conflict, a held deletion).
    Held,
    /// Both sides changed a two-way field since they last agreed: the field's policy decides.
    Conflict,
    /// Inbound: deleted in the CRM; the sync's `on_crm_delete` action is done.
    Delete,
}

impl Action {
    /// The word the table and `--records` print.
    pub fn word(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Skip => "skip",
            Action::Invalid => "invalid",
            Action::Held => "held",
            Action::Conflict => "conflict",
            Action::Delete => "delete",
        }
    }
}

/// One record's line of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordPlan {
    pub sync: String,
    pub direction: Direction,
    /// The app key, when the record has (or will have, outbound) a row.
    pub local_id: Option<String>,
    /// The CRM id, when the record is in the CRM.
    pub crm_id: Option<String>,
    pub action: Action,
    /// Outbound: the CRM properties that change (all of them for a create). Inbound: the app
    /// columns written; for a conflict, the CRM properties both sides changed.
    pub fields: Vec<String>,
    /// Why, for anything but a plain create or update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Outbound counts of one sync.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutboundPlan {
    /// Rows the capture reads (changed since its cursor, rechecked, or all on a first pass).
    pub read: u64,
    pub create: u64,
    pub update: u64,
    pub skip: u64,
    pub invalid: u64,
    pub held: u64,
    pub upsert_calls: u64,
    pub association_calls: u64,
    /// Reads before writing (two-way syncs read linked records back before pushing them).
    pub recheck_calls: u64,
}

/// Inbound counts of one sync.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InboundPlan {
    /// CRM records the poll reads (changed since its cursor, with the overlap).
    pub read: u64,
    pub update: u64,
    pub create: u64,
    pub conflict: u64,
    pub skip: u64,
    pub delete: u64,
    pub held: u64,
    /// Calls the plan made to read the CRM; the sync makes the same ones again.
    pub read_calls: u64,
    /// Writes the sync makes for inbound work: our key into each created record.
    pub write_calls: u64,
}

/// One sync's plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncPlan {
    pub sync: String,
    /// The sync has fields that come back from the CRM.
    pub two_way: bool,
    /// The mapping changed since its records were last planned (or `crmsync resync` asked):
    /// the capture reads every row.
    pub replan: bool,
    pub outbound: OutboundPlan,
    /// `None` for a one-way sync, or when the CRM could not be read ([`Self::inbound_unknown`]).
    pub inbound: Option<InboundPlan>,
    /// Why the inbound side is not known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inbound_unknown: Option<String>,
    /// API calls of this sync's round.
    pub calls: u64,
}

/// Something the plan could not know without doing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Guess {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<String>,
    pub note: String,
}

/// The whole plan.
#[derive(Debug, Clone, Serialize)]
pub struct Forecast {
    pub syncs: Vec<SyncPlan>,
    /// Per record (only when asked for), in sync order: inbound first, as the round runs.
    pub records: Vec<RecordPlan>,
    pub guesses: Vec<Guess>,
    /// The kill switch is on: the sync does nothing until `crmsync resume`.
    pub paused: bool,
    pub eta: Eta,
}

/// How the plan may reach the CRM.
pub enum CrmAccess<'a, C> {
    /// Reads through this client (its gate installed), its calls reported into `calls`.
    Reads { crm: &'a C, calls: &'a CallBuffer },
    /// Not at all, and why (no token, `--offline`): the inbound side is unknown.
    Unavailable(String),
}

/// What planning reads besides the databases.
pub struct PlanOptions {
    /// Keep a line per record (`--records`); counts are always kept.
    pub records: bool,
    pub now_ms: i64,
}

/// What the inbound step leaves for the capture after it: rows as the app writes them, links
/// as the state records them, records parked by it.
#[derive(Default)]
struct Effects {
    rows: HashMap<String, SourceRow>,
    links: HashMap<String, Link>,
    parked: HashMap<String, String>,
}

struct Collector {
    keep: bool,
    records: Vec<RecordPlan>,
    guesses: Vec<Guess>,
}

impl Collector {
    fn record(&mut self, r: RecordPlan) {
        if self.keep {
            self.records.push(r);
        }
    }

    fn guess(&mut self, sync: Option<&str>, note: String) {
        self.guesses.push(Guess {
            sync: sync.map(str::to_string),
            note,
        });
    }
}

fn line(
    sync: &SyncConfig,
    direction: Direction,
    local_id: Option<&str>,
    crm_id: Option<&str>,
    action: Action,
    fields: Vec<String>,
    reason: Option<String>,
) -> RecordPlan {
    RecordPlan {
        sync: sync.name.clone(),
        direction,
        local_id: local_id.map(str::to_string),
        crm_id: crm_id.map(str::to_string),
        action,
        fields,
        reason,
    }
}

/// Plans the next round of every sync both ways (see the file's doc). Reads only.
pub async fn plan_both_ways<A, S, C>(
    config: &Config,
    app: &A,
    state: &S,
    crm: CrmAccess<'_, C>,
    options: &PlanOptions,
) -> Result<Forecast, EngineError>
where
    A: Source + Capture,
    S: State,
    C: Crm,
{
    crate::check::check_source(config, app).await?;
    let now = options.now_ms;
    let connection = crate::engine::connection_of(config);
    let mut out = Collector {
        keep: options.records,
        records: vec![],
        guesses: vec![],
    };
    let paused = state.paused().await?;
    if paused {
        out.guess(
            None,
            "the kill switch is on: nothing is sent or applied until `crmsync resume`; this is what the round does then".into(),
        );
    }
    let batch = config.raw.crm.write_batch().max(1);
    let read_batch = match &crm {
        CrmAccess::Reads { crm, .. } => crm.max_batch().max(1) as u64,
        CrmAccess::Unavailable(_) => batch,
    };
    // Records each sync creates in this round, for the children waiting for them.
    let mut creating: HashMap<String, HashSet<String>> = HashMap::new();
    let mut syncs = Vec::new();
    let mut calls = 0;
    let mut unreachable: Option<String> = None;
    for i in dependency_order(&config.raw.syncs) {
        let sync = &config.raw.syncs[i];
        let mut sp = SyncPlan {
            sync: sync.name.clone(),
            two_way: !pulled_fields(sync).is_empty(),
            ..Default::default()
        };
        let mut effects = Effects::default();
        if sp.two_way {
            if !config.raw.run.poll {
                sp.inbound_unknown =
                    Some("`[run] poll = false`: CRM changes arrive only by webhooks".into());
            } else {
                match &crm {
                    CrmAccess::Unavailable(why) => sp.inbound_unknown = Some(why.clone()),
                    // One failed read is enough: the other syncs do not wait out its retries.
                    CrmAccess::Reads { .. } if unreachable.is_some() => {
                        sp.inbound_unknown = unreachable.clone();
                    }
                    CrmAccess::Reads { crm, calls: buffer } => {
                        // What a failed read added is taken back: the side is unknown then.
                        let (records, guesses) = (out.records.len(), out.guesses.len());
                        let r = inbound(
                            config,
                            app,
                            state,
                            *crm,
                            buffer,
                            &connection,
                            sync,
                            now,
                            &mut out,
                            &mut effects,
                        )
                        .await;
                        match r {
                            Ok(mut ip) => {
                                ip.write_calls = ip.create.div_ceil(batch);
                                sp.inbound = Some(ip);
                            }
                            Err(EngineError::Crm(e)) => {
                                out.records.truncate(records);
                                out.guesses.truncate(guesses);
                                effects = Effects::default();
                                let why = format!("the CRM could not be read: {e}");
                                unreachable = Some(why.clone());
                                sp.inbound_unknown = Some(why);
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
            }
            if let Some(why) = &sp.inbound_unknown {
                out.guess(
                    Some(&sync.name),
                    format!(
                        "inbound unknown ({why}); the outbound side is planned without the CRM's edits, and a record changed in the CRM too may turn out a conflict"
                    ),
                );
            }
        }
        let (op, assoc) = outbound(
            config,
            app,
            state,
            sync,
            now,
            &effects,
            &mut creating,
            &mut out,
        )
        .await?;
        sp.replan = op.1;
        sp.outbound = op.0;
        let ob = &mut sp.outbound;
        ob.upsert_calls = (ob.create + ob.update).div_ceil(batch);
        ob.association_calls = assoc
            .iter()
            .filter(|(t, _)| {
                !linked_on_write(config.raw.crm.kind.as_str(), &config.raw.syncs, sync, t)
            })
            .map(|(_, n)| n.div_ceil(batch))
            .sum();
        if sp.two_way {
            ob.recheck_calls = ob.update.div_ceil(read_batch);
        }
        sp.calls = ob.upsert_calls
            + ob.association_calls
            + ob.recheck_calls
            + sp.inbound
                .as_ref()
                .map_or(0, |i| i.read_calls + i.write_calls);
        calls += sp.calls;
        notes(config, state, sync, &sp, now, &mut out).await?;
        syncs.push(sp);
    }
    let mut budget = Budget::new(&config.raw.crm, now);
    budget.used = state
        .calls_reserved(&connection, budget.day_start_ms)
        .await?;
    Ok(Forecast {
        syncs,
        records: out.records,
        guesses: out.guesses,
        paused,
        eta: eta(config, &budget, calls, now),
    })
}

/// The poll and the archived listing of one two-way sync, read-only, decided as the sync
/// decides them.
#[allow(clippy::too_many_arguments)]
async fn inbound<A, S, C>(
    config: &Config,
    app: &A,
    state: &S,
    crm: &C,
    buffer: &CallBuffer,
    connection: &str,
    sync: &SyncConfig,
    now: i64,
    out: &mut Collector,
    effects: &mut Effects,
) -> Result<InboundPlan, EngineError>
where
    A: Source + Capture,
    S: State,
    C: Crm,
{
    let mut ip = InboundPlan::default();
    let object = object_of(sync)?;
    let properties = pulled_properties(&config.raw.syncs, sync);
    let (stored, last_started) = state
        .cursor(&sync.name, CursorDirection::Pull, POLL)
        .await?
        .as_deref()
        .map(parse_pull_state)
        .unwrap_or_default();
    let overlap = i64::try_from(config.raw.run.poll_overlap_ms).unwrap_or(i64::MAX);
    let mut position: (i64, Option<String>) =
        (poll_start(stored.as_ref(), last_started, overlap), None);
    let mut lines: BTreeMap<String, RecordPlan> = BTreeMap::new();
    let references = reference_properties(&config.raw.syncs, sync);
    loop {
        let changes = crm
            .changes_since(
                object,
                position.0,
                position.1.as_deref(),
                &properties,
                POLL_PAGE,
            )
            .await;
        ip.read_calls += flush(buffer, state, connection).await?;
        let changes = changes?;
        let Some(last) = changes.last() else { break };
        let last = (last.modified_ms, last.crm_id.clone());
        ip.read += changes.len() as u64;
        merges_seen(state, sync, &changes, out).await?;
        let decisions =
            crate::inbound::decide_changes(config, app, state, sync, &changes, now).await?;
        let parked: HashMap<&str, Vec<String>> =
            decisions.conflicts.iter().fold(HashMap::new(), |mut m, c| {
                m.entry(c.local_id.as_str())
                    .or_default()
                    .push(c.field.clone());
                m
            });
        for d in &decisions.records {
            if !d.writes.is_empty() {
                inbound_write(state, sync, d, &references, now, effects).await?;
            }
            let (action, fields, reason) = match parked.get(d.local_id.as_str()) {
                Some(fields) => {
                    effects.parked.insert(
                        d.local_id.clone(),
                        "an open conflict (parked by this round's poll)".into(),
                    );
                    (
                        Action::Conflict,
                        fields.clone(),
                        Some(
                            "changed on both sides; `conflict = \"review\"`: parked for `crmsync conflicts`, the record is held from pushing".into(),
                        ),
                    )
                }
                None => describe(d),
            };
            lines.insert(
                d.crm_id.clone(),
                line(
                    sync,
                    Direction::Inbound,
                    Some(&d.local_id),
                    Some(&d.crm_id),
                    action,
                    fields,
                    reason,
                ),
            );
        }
        for c in &decisions.creates {
            lines.insert(
                c.crm_id.clone(),
                line(
                    sync,
                    Direction::Inbound,
                    None,
                    Some(&c.crm_id),
                    Action::Create,
                    c.values.iter().map(|(col, _)| col.clone()).collect(),
                    Some("created in the CRM: a row is inserted and linked, our key written into the record".into()),
                ),
            );
        }
        for c in &changes {
            lines.entry(c.crm_id.clone()).or_insert_with(|| {
                line(
                    sync,
                    Direction::Inbound,
                    None,
                    Some(&c.crm_id),
                    Action::Skip,
                    vec![],
                    Some(match sync.on_crm_create {
                        OnCrmCreate::Insert => "not taken: crmsync's own record not linked here, a refused insert not due again, a row gone from the app, or a record parked".into(),
                        _ => "not linked to a row (`on_crm_create` does not insert CRM records), or its row is gone or parked".into(),
                    }),
                )
            });
        }
        if changes.len() < POLL_PAGE {
            break;
        }
        position = (last.0, Some(last.1));
    }
    // The archived listing, when the round does it.
    if crate::lifecycle::reconcile::task_due(
        state,
        sync,
        ARCHIVE_TASK,
        config.raw.run.archive_check_interval_ms,
        now,
    )
    .await?
    {
        let mut after: Option<String> = None;
        let mut gone = Vec::new();
        loop {
            let page = crm.archived_page(object, after.as_deref()).await;
            ip.read_calls += flush(buffer, state, connection).await?;
            let (ids, next) = page?;
            let linked = state.local_ids_of(&sync.name, &ids).await?;
            gone.extend(linked.into_iter().map(|(crm, local)| (local, crm)));
            match next {
                Some(n) if !ids.is_empty() => after = Some(n),
                _ => break,
            }
        }
        let verdict = judge_gone(config, state, sync, &gone, now).await?;
        for d in &verdict.deletions {
            let (action, reason) = if verdict.hold {
                (
                    Action::Held,
                    format!(
                        "deleted in the CRM, one of {} deletions within an hour: held by the mass-deletion guard (`crmsync deletions`)",
                        verdict.total
                    ),
                )
            } else {
                (
                    Action::Delete,
                    match sync.on_crm_delete {
                        OnCrmDelete::Flag => match &sync.crm_deleted_column {
                            Some(c) => format!(
                                "deleted in the CRM: `{c}` gets the time, the record is no longer pushed"
                            ),
                            None => "deleted in the CRM: the record is no longer pushed".into(),
                        },
                        OnCrmDelete::Unlink => {
                            "deleted in the CRM: unlinked, the next push creates it again".into()
                        }
                    },
                )
            };
            if action == Action::Held || sync.on_crm_delete == OnCrmDelete::Flag {
                effects
                    .parked
                    .insert(d.local_id.clone(), "deleted in the CRM (this round)".into());
            }
            lines.insert(
                d.crm_id.clone(),
                line(
                    sync,
                    Direction::Inbound,
                    Some(&d.local_id),
                    Some(&d.crm_id),
                    action,
                    vec![],
                    Some(reason),
                ),
            );
        }
    }
    for l in lines.into_values() {
        match l.action {
            Action::Update => ip.update += 1,
            Action::Create => ip.create += 1,
            Action::Conflict => ip.conflict += 1,
            Action::Delete => ip.delete += 1,
            Action::Held => ip.held += 1,
            _ => ip.skip += 1,
        }
        out.record(l);
    }
    Ok(ip)
}

/// The inbound action of a decided linked record that is not parked.
fn describe(d: &Decided) -> (Action, Vec<String>, Option<String>) {
    let columns: Vec<String> = d.writes.iter().map(|(c, _)| c.clone()).collect();
    let contested: Vec<String> = d.contested.iter().map(|(f, _)| f.clone()).collect();
    let outcome = |d: &Decided| {
        d.contested
            .iter()
            .map(|(f, how)| match how {
                Decision::TakeCrm => format!("`{f}`: the CRM's value is written"),
                Decision::KeepApp => format!("`{f}`: the app's value is kept and pushed"),
                _ => format!("`{f}`"),
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    if !contested.is_empty() {
        let fields = if columns.is_empty() {
            contested
        } else {
            columns
        };
        return (
            Action::Conflict,
            fields,
            Some(format!(
                "changed on both sides, settled by the field's conflict policy: {}",
                outcome(d)
            )),
        );
    }
    if !columns.is_empty() {
        return (Action::Update, columns, None);
    }
    (
        Action::Skip,
        vec![],
        Some("nothing to write: the values agree (our own write coming back) or only the app changed".into()),
    )
}

/// The state an inbound write leaves: the row with its new values, and, when the row held
/// nothing unpushed before, its new payload's hash as the pushed hash (no echo), as the
/// inbound commit records them.
async fn inbound_write<S: Records>(
    state: &S,
    sync: &SyncConfig,
    d: &Decided,
    references: &BTreeMap<String, String>,
    now: i64,
    effects: &mut Effects,
) -> Result<(), EngineError> {
    let new_row = written_row(d);
    let hash_of = |p: &crate::outbound::plan::Plan| {
        p.jobs
            .iter()
            .chain(&p.unchanged_jobs)
            .next()
            .map(|j| j.hash.clone())
    };
    let input = PageInput {
        sync,
        references,
        priority: 0,
        now_ms: now,
        assume_parents: false,
        links: None,
    };
    let (links, before) = plan_page(state, &input, std::slice::from_ref(&d.row)).await?;
    let (_, after) = plan_page(state, &input, std::slice::from_ref(&new_row)).await?;
    let link = links.get(&d.local_id).cloned();
    let clean = hash_of(&before).is_some()
        && link.as_ref().and_then(|l| l.pushed_hash.clone()) == hash_of(&before);
    if clean && let (Some(mut link), Some(hash)) = (link, hash_of(&after)) {
        link.pushed_hash = Some(hash);
        effects.links.insert(d.local_id.clone(), link);
    }
    effects.rows.insert(d.local_id.clone(), new_row);
    Ok(())
}

/// Merges the poll meets: the sync re-points links of absorbed records (not planned record by
/// record).
async fn merges_seen<S: Records>(
    state: &S,
    sync: &SyncConfig,
    changes: &[ChangedRecord],
    out: &mut Collector,
) -> Result<(), EngineError> {
    let absorbed: Vec<String> = changes
        .iter()
        .flat_map(|r| r.merged_ids.iter().cloned())
        .collect();
    if absorbed.is_empty() {
        return Ok(());
    }
    let linked = state.local_ids_of(&sync.name, &absorbed).await?;
    if !linked.is_empty() {
        out.guess(
            Some(&sync.name),
            format!(
                "{} linked record(s) were merged into others in the CRM: the sync re-points their links (or holds them when two app records meet); not planned record by record",
                linked.len()
            ),
        );
    }
    Ok(())
}

/// The capture of one sync and its pages planned, after the inbound `effects`. Returns the
/// counts and whether the mapping changed, and the records per association target.
#[allow(clippy::too_many_arguments)]
async fn outbound<A, S>(
    config: &Config,
    app: &A,
    state: &S,
    sync: &SyncConfig,
    now: i64,
    effects: &Effects,
    creating: &mut HashMap<String, HashSet<String>>,
    out: &mut Collector,
) -> Result<((OutboundPlan, bool), BTreeMap<String, u64>), EngineError>
where
    A: Source + Capture,
    S: State,
{
    let mut ob = OutboundPlan::default();
    let stored = planned_fingerprint(state, &sync.name).await?;
    let replan = replan_due(stored.as_deref(), sync);
    let mut captured = capture(app, state, sync, replan).await?;
    let mut parked: HashMap<String, String> = parked_keys(state, sync)
        .await?
        .into_iter()
        .map(|k| {
            (
                k,
                "parked for a person (an open conflict, a CRM deletion or a shared merge)"
                    .to_string(),
            )
        })
        .collect();
    let (_, claimed) = crate::inbound::create::creates_to_revisit(app, state, sync, now).await?;
    for k in claimed {
        parked.insert(
            k,
            "inserted for a CRM record whose link is not recorded yet".into(),
        );
    }
    parked.extend(effects.parked.clone());
    let references = reference_properties(&config.raw.syncs, sync);
    let mut assoc: BTreeMap<String, u64> = BTreeMap::new();
    let mut estimated_parents = 0u64;
    let mut made: HashSet<String> = HashSet::new();
    let mut seen = HashSet::new();
    while let Some(page) = captured.next_page().await? {
        let mut rows = Vec::new();
        for r in page.rows {
            // A change log may name a key on two pages; a full scan never does (and is not
            // remembered key by key, so a plan of a large backfill stays flat in memory).
            if !captured.full && !seen.insert(r.key.clone()) {
                continue;
            }
            ob.read += 1;
            if let Some(why) = parked.get(&r.key) {
                ob.held += 1;
                out.record(line(
                    sync,
                    Direction::Outbound,
                    Some(&r.key),
                    None,
                    Action::Held,
                    vec![],
                    Some(why.clone()),
                ));
                continue;
            }
            rows.push(effects.rows.get(&r.key).cloned().unwrap_or(r));
        }
        let input = PageInput {
            sync,
            references: &references,
            priority: 0,
            now_ms: now,
            assume_parents: false,
            links: Some(&effects.links),
        };
        let (links, mut p) = plan_page(state, &input, &rows).await?;
        // Children waiting for a parent this round creates: the settle of that parent releases
        // them and the same round sends them, associated once the parent's id is known.
        let release: HashSet<String> = p
            .quarantine
            .iter()
            .filter(|q| {
                q.waits_for.as_ref().is_some_and(|(target, key)| {
                    creating.get(target).is_some_and(|c| c.contains(key))
                })
            })
            .map(|q| q.local_id.clone())
            .collect();
        if !release.is_empty() {
            let again: Vec<SourceRow> = rows
                .iter()
                .filter(|r| release.contains(&r.key))
                .cloned()
                .collect();
            let (_, q) = plan_page(
                state,
                &PageInput {
                    assume_parents: true,
                    ..input
                },
                &again,
            )
            .await?;
            p.quarantine.retain(|e| !release.contains(&e.local_id));
            p.held -= release.len() as u64;
            estimated_parents += q.jobs.len() as u64;
            p.jobs.extend(q.jobs);
            p.unchanged_jobs.extend(q.unchanged_jobs);
            p.quarantine.extend(q.quarantine);
            p.invalid += q.invalid;
            p.held += q.held;
        }
        let updates: Vec<String> = p
            .jobs
            .iter()
            .filter(|j| links.get(&j.local_id).is_some_and(|l| l.crm_id.is_some()))
            .map(|j| j.local_id.clone())
            .collect();
        let bases = if out.keep {
            state.bases(&sync.name, &updates).await?
        } else {
            HashMap::new()
        };
        for j in &p.jobs {
            let crm_id = links.get(&j.local_id).and_then(|l| l.crm_id.clone());
            let payload: Option<Payload> = serde_json::from_str(&j.payload).ok();
            if let Some(payload) = &payload {
                for t in payload.associations.keys() {
                    // A record created with its links inline (HubSpot batch create) needs no
                    // association call for them.
                    if payload.create
                        && linked_on_create(
                            config.raw.crm.kind.as_str(),
                            &config.raw.syncs,
                            sync,
                            t,
                        )
                    {
                        continue;
                    }
                    *assoc.entry(t.clone()).or_default() += 1;
                }
            }
            let (action, fields) = match &crm_id {
                None => {
                    ob.create += 1;
                    made.insert(j.local_id.clone());
                    let fields = payload
                        .as_ref()
                        .map(|p| p.properties.keys().cloned().collect())
                        .unwrap_or_default();
                    (Action::Create, fields)
                }
                Some(_) => {
                    ob.update += 1;
                    let fields = if out.keep {
                        changed_fields(
                            state,
                            sync,
                            &j.local_id,
                            payload.as_ref(),
                            bases.get(&j.local_id),
                        )
                        .await?
                    } else {
                        vec![]
                    };
                    (Action::Update, fields)
                }
            };
            out.record(line(
                sync,
                Direction::Outbound,
                Some(&j.local_id),
                crm_id.as_deref(),
                action,
                fields,
                None,
            ));
        }
        for j in &p.unchanged_jobs {
            ob.skip += 1;
            out.record(line(
                sync,
                Direction::Outbound,
                Some(&j.local_id),
                links.get(&j.local_id).and_then(|l| l.crm_id.as_deref()),
                Action::Skip,
                vec![],
                Some("unchanged: its payload is what the CRM last accepted".into()),
            ));
        }
        for q in &p.quarantine {
            let action = match q.kind {
                QuarantineKind::Invalid => {
                    ob.invalid += 1;
                    Action::Invalid
                }
                _ => {
                    ob.held += 1;
                    Action::Held
                }
            };
            out.record(line(
                sync,
                Direction::Outbound,
                Some(&q.local_id),
                links.get(&q.local_id).and_then(|l| l.crm_id.as_deref()),
                action,
                q.field.iter().cloned().collect(),
                Some(format!("{} ({})", q.message, q.rule)),
            ));
        }
    }
    for key in &captured.vanished {
        ob.skip += 1;
        out.record(line(
            sync,
            Direction::Outbound,
            Some(key),
            None,
            Action::Skip,
            vec![],
            Some(
                "deleted in the app: its CRM record is kept (deletions are not synced to the CRM)"
                    .into(),
            ),
        ));
    }
    creating.insert(sync.name.clone(), made);
    if estimated_parents > 0 {
        out.guess(
            Some(&sync.name),
            format!(
                "{estimated_parents} record(s) wait for a parent this round creates: they go out once it is in the CRM, and their association calls are estimated (the parent's CRM id is not known yet)"
            ),
        );
    }
    if ob.create > 0 {
        out.guess(
            Some(&sync.name),
            format!(
                "{} create(s) are upserts by `{}`: a CRM record that already holds the key (left by a run cut short) is updated instead of created",
                ob.create, sync.id_property
            ),
        );
    }
    Ok(((ob, replan), assoc))
}

/// The CRM properties `payload` changes on the record `local_id`: against the base (what both
/// sides last agreed on) for two-way fields, else against the last payload delivered.
async fn changed_fields<S: State>(
    state: &S,
    sync: &SyncConfig,
    local_id: &str,
    payload: Option<&Payload>,
    bases: Option<&HashMap<String, String>>,
) -> Result<Vec<String>, EngineError> {
    let Some(payload) = payload else {
        return Ok(vec![]);
    };
    let last: Option<Payload> = state
        .jobs_of(&sync.name, local_id)
        .await?
        .into_iter()
        .find(|j| j.direction == "push" && j.state == "done")
        .and_then(|j| serde_json::from_str(&j.payload).ok());
    let mut fields: BTreeSet<String> = BTreeSet::new();
    for (property, value) in &payload.properties {
        let known = bases
            .and_then(|b| b.get(property))
            .or_else(|| last.as_ref().and_then(|l| l.properties.get(property)));
        if known.is_none_or(|k| !crate::inbound::read_back::same_value(value, k)) {
            fields.insert(property.clone());
        }
    }
    for (target, id) in &payload.associations {
        if last
            .as_ref()
            .is_none_or(|l| l.associations.get(target) != Some(id))
        {
            fields.insert(format!("association:{target}"));
        }
    }
    Ok(fields.into_iter().collect())
}

/// Notes about one sync the plan cannot settle: work queued before, hints waiting, a due
/// reconciliation.
async fn notes<S: State>(
    config: &Config,
    state: &S,
    sync: &SyncConfig,
    sp: &SyncPlan,
    now: i64,
    out: &mut Collector,
) -> Result<(), EngineError> {
    let counts = state.counts(&sync.name).await?;
    if counts.pending > 0 {
        out.guess(
            Some(&sync.name),
            format!(
                "{} change(s) queued before go out too (not listed unless captured again)",
                counts.pending
            ),
        );
    }
    if sp.two_way && !state.pending_hints(&sync.name, 1).await?.is_empty() {
        out.guess(
            Some(&sync.name),
            "records announced by webhooks (or found changed before a push) are read back by the round: not in this plan".into(),
        );
    }
    if sp.two_way
        && crate::lifecycle::reconcile::task_due(
            state,
            sync,
            crate::lifecycle::reconcile::RECONCILE_TASK,
            config.raw.run.reconcile_interval_ms,
            now,
        )
        .await?
    {
        out.guess(
            Some(&sync.name),
            "a reconciliation is due: `crmsync run` reads every linked record back and repairs drift it finds (not planned)".into(),
        );
    }
    Ok(())
}

fn object_of(sync: &SyncConfig) -> Result<ObjectKind, EngineError> {
    ObjectKind::parse(&sync.object).ok_or_else(|| {
        EngineError::Config(format!(
            "sync `{}`: unknown CRM object `{}`",
            sync.name, sync.object
        ))
    })
}

/// Logs the buffered calls (the plan's reads count like every call); returns how many.
async fn flush<S: State>(
    buffer: &CallBuffer,
    state: &S,
    connection: &str,
) -> Result<u64, EngineError> {
    let (rows, written) = buffer.flush(state, connection).await;
    written?;
    Ok(rows.len() as u64)
}
