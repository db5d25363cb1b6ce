//! PostgreSQL: the state database any number of `crmsync run` workers share (one queue, one
//! API budget per CRM connection, one leader per periodic task), and an app database
//! ([`PgSource`]: [`crate::Source`] and [`crate::Capture`]; every pooled connection reads values
//! in fixed session settings — UTC, ISO dates, ISO intervals, shortest exact floats — and the
//! change log is read below the oldest running transaction, since a sequence is not commit
//! order here).
//!
//! Transactions run under PostgreSQL's default READ COMMITTED: every statement sees what was
//! committed when it started, and a row lock taken by a statement rechecks its row's latest
//! version. Nothing here relies on a snapshot spanning statements; where a method reads and
//! then writes, it first locks what its decision rests on:
//!
//! - **job rows** (`FOR UPDATE`): settles lock their jobs, captures lock the existing jobs of
//!   every record they touch; claims use `FOR UPDATE SKIP LOCKED` and never wait;
//! - **link rows**: captures lock the links whose versions they check (`FOR SHARE`), inbound
//!   commits and settles the links they write (`FOR UPDATE`);
//! - **advisory locks** for what has no row to lock yet ([`lock_names`]): the API-call
//!   reservation of one connection, and the release of children held for a parent of one sync.
//!
//! Locks are always taken in one order: jobs (by id), links (by sync and local id; field
//! bases are written only under their link's lock), advisory keys (by key, all of a
//! transaction's in one statement), then quarantine rows and cursors. A transaction holding an
//! advisory lock therefore waits only on quarantine rows and cursors, which nobody holds while
//! waiting for an advisory lock, so the common paths never wait on each other in a circle
//! (`mixed_work_on_the_same_records_never_deadlocks` in `tests/pg_state.rs` fails without
//! this order). A rarer cycle among quarantine rows written in different orders (`retry`
//! beside a settle) is a deadlock PostgreSQL breaks, an error [`StoreError::is_transient`]
//! calls transient.
//!
//! Every connection runs with a `lock_timeout` of [`LOCK_TIMEOUT`], below HubSpot's 5 s
//! webhook delivery timeout: a receiver stuck behind a lock answers in time (with an error the
//! CRM redelivers after).
//!
//! The schema is migrated by [`PgState::open`] through sqlx's migrator, which holds an advisory
//! lock while it works, so workers starting together migrate once and the others wait.

mod capture;
mod coordination;
mod creates;
mod decode;
mod inspect;
mod introspect;
mod lifecycle;
mod queue;
mod source;
mod state;
mod tokens;

pub use capture::CHANGE_CHANNEL;
pub use source::PgSource;

use crate::backend::{Backend, redact_url};
use crate::error::StoreError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use std::collections::HashMap;
use std::hash::Hash;
use std::str::FromStr;
use std::time::Duration;

/// `lock_timeout` of every pool connection: below HubSpot's 5 s webhook timeout.
pub(crate) const LOCK_TIMEOUT: &str = "4s";

/// `lock_timeout` of the connection that migrates: long enough to wait for another worker's
/// migration (the migrator's advisory lock), bounded so a stuck one does not hang a start.
const MIGRATE_LOCK_TIMEOUT: &str = "60s";

/// Connections per worker process: a worker runs a handful of tasks (capture, delivery,
/// webhooks, leases), each holding one connection at a time.
const MAX_CONNECTIONS: u32 = 10;

/// How long a caller waits for a pooled connection before giving up (transiently): like
/// [`LOCK_TIMEOUT`], an answer within a webhook's timeout beats a late one.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(4);

/// First half of the two-part advisory keys of [`lock_names`]: one namespace per purpose, so
/// a connection and a sync of the same name never share a lock (and none meets the
/// migrator's one-part key).
#[derive(Debug, Clone, Copy)]
#[repr(i32)]
pub(crate) enum LockSpace {
    /// API-call reservations of one CRM connection.
    Reservation = 0x6372_6d01,
    /// Parents of one sync: linking them vs. holding children for them.
    Parents = 0x6372_6d02,
    /// One link (sync, local id), existing or about to be inserted: see [`lock_links`].
    Link = 0x6372_6d03,
}

/// crmsync's state in a PostgreSQL database (the schema of the connection's `search_path`).
#[derive(Debug, Clone)]
pub struct PgState {
    pool: PgPool,
}

impl PgState {
    /// Connects to the state database at `url` and applies the migrations, refusing a schema
    /// a newer crmsync migrated ([`StoreError::NewerSchema`]). Several workers may open the
    /// same state at once. Unlike SQLite, opening takes no worker lock and hands no running
    /// job back: other workers may be alive, and a dead one's jobs are claimable once their
    /// lease runs out.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            what: "state",
            url: redact_url(url),
            source,
        };
        let mut base = PgConnectOptions::from_str(url).map_err(open_err)?;
        // `crmsync` in pg_stat_activity, unless the URL names the worker itself.
        if base.get_application_name().is_none() {
            base = base.application_name("crmsync");
        }

        // Migrate on a connection of its own (a pool of one): it may wait on another worker's
        // migration longer than a pool connection may wait on a lock, and closing it releases
        // the migrator's advisory lock even when migrating fails half-way.
        let migrating = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(
                base.clone()
                    .options([("lock_timeout", MIGRATE_LOCK_TIMEOUT)]),
            )
            .await
            .map_err(open_err)?;
        let migrated =
            crate::any::migrate(&sqlx::migrate!("./migrations/postgres"), &migrating).await;
        migrating.close().await;
        migrated?;

        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(base.options([("lock_timeout", LOCK_TIMEOUT)]))
            .await
            .map_err(open_err)?;
        Ok(PgState { pool })
    }

    /// The underlying pool (for tests and diagnostics).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A transaction (READ COMMITTED, see the module doc).
    pub(crate) async fn tx(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        Ok(self.pool.begin().await?)
    }
}

impl crate::State for PgState {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }
}

/// `n` as a SQL `LIMIT` (saturating).
pub(crate) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The items of `items` with distinct keys, the last one of each key winning (as when the
/// rows were written one by one), sorted by key: a multi-row upsert must not touch a row twice,
/// and rows locked in key order never wait on each other in a circle.
pub(crate) fn last_by_key<T, K, F>(items: impl IntoIterator<Item = T>, key: F) -> Vec<T>
where
    K: Hash + Eq + Ord,
    F: Fn(&T) -> K,
{
    let mut by_key: HashMap<K, T> = HashMap::new();
    for item in items {
        by_key.insert(key(&item), item);
    }
    let mut out: Vec<(K, T)> = by_key.into_iter().collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter().map(|(_, t)| t).collect()
}

/// Takes the transaction-scoped advisory locks of `names` in `space`, in key order (see the
/// module doc), released at commit or rollback. Its own statement, on purpose: under READ
/// COMMITTED a statement's snapshot is taken when it starts, so a read in the same statement
/// as the lock would not see what the previous holder committed while this one waited.
pub(crate) async fn lock_names(
    tx: &mut Transaction<'static, Postgres>,
    space: LockSpace,
    names: &[&str],
) -> Result<(), StoreError> {
    lock_names_as(tx, space, names, false).await
}

/// [`lock_names`], shared (readers among themselves do not wait) when `shared`.
pub(crate) async fn lock_names_as(
    tx: &mut Transaction<'static, Postgres>,
    space: LockSpace,
    names: &[&str],
    shared: bool,
) -> Result<(), StoreError> {
    if names.is_empty() {
        return Ok(());
    }
    let q = if shared {
        "SELECT pg_advisory_xact_lock_shared($1, k.h)
         FROM (SELECT DISTINCT hashtext(n) AS h FROM unnest($2::text[]) AS n ORDER BY h) AS k"
    } else {
        "SELECT pg_advisory_xact_lock($1, k.h)
         FROM (SELECT DISTINCT hashtext(n) AS h FROM unnest($2::text[]) AS n ORDER BY h) AS k"
    };
    sqlx::query(q)
        .bind(space as i32)
        .bind(names)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Locks the existing jobs of these records (pairs of sync and local id, any direction)
/// `FOR UPDATE`, in id order: the first lock a transaction that writes jobs takes.
pub(crate) async fn lock_jobs_of(
    tx: &mut Transaction<'static, Postgres>,
    syncs: &[&str],
    local_ids: &[&str],
) -> Result<(), StoreError> {
    if local_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "SELECT j.id FROM jobs j
         JOIN unnest($1::text[], $2::text[]) AS k (sync, local_id)
           ON j.sync = k.sync AND j.local_id = k.local_id
         ORDER BY j.id FOR UPDATE OF j",
    )
    .bind(syncs)
    .bind(local_ids)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// How [`lock_links`] locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkLock {
    /// The rows will be read only (a version check): others may read-lock them too.
    Share,
    /// The rows will be written.
    Update,
}

/// Locks the existing links of `local_ids` in `sync`, in local-id order, and returns their
/// versions.
pub(crate) async fn lock_links(
    tx: &mut Transaction<'static, Postgres>,
    sync: &str,
    local_ids: &[&str],
    mode: LinkLock,
) -> Result<HashMap<String, (i64, Option<String>)>, StoreError> {
    if local_ids.is_empty() {
        return Ok(HashMap::new());
    }
    // Row locks cover only links that exist: two settles inserting the same new links in
    // different orders, or a pull updating a row a settle is inserting, wait on each other's
    // transactions and can deadlock. Advisory locks on the keys, taken first and in one global
    // order (shared for readers), cover the links about to be inserted too.
    let names: Vec<String> = local_ids
        .iter()
        .map(|l| format!("{sync}\u{1f}{l}"))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    lock_names_as(tx, LockSpace::Link, &names, mode == LinkLock::Share).await?;
    let q = match mode {
        LinkLock::Share => {
            "SELECT local_id, version, pushed_hash FROM links WHERE sync = $1 AND local_id = ANY($2)
             ORDER BY local_id FOR SHARE"
        }
        LinkLock::Update => {
            "SELECT local_id, version, pushed_hash FROM links WHERE sync = $1 AND local_id = ANY($2)
             ORDER BY local_id FOR UPDATE"
        }
    };
    let rows = sqlx::query(q)
        .bind(sync)
        .bind(local_ids)
        .fetch_all(&mut **tx)
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                decode::get(r, 0, "links")?,
                (decode::get(r, 1, "links")?, decode::get(r, 2, "links")?),
            ))
        })
        .collect()
}
