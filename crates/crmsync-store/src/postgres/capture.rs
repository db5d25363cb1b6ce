//! [`Capture`] on PostgreSQL: row triggers log into [`crate::CHANGE_LOG`] with the writing
//! transaction's id, and the log is read **below the oldest transaction still running**.
//!
//! Why: `seq` comes from a sequence, and a sequence is not commit order. Transaction A takes
//! seq 5, transaction B takes seq 6 and commits first; a reader that moved its cursor past 6
//! would never see 5. Every row therefore records `txid_current()`, and
//! [`Capture::changes_since`] returns only rows with `txid < xmin` of the current snapshot:
//! every transaction numbered below the oldest one still running has finished, so nothing can
//! later appear below the cursor. Rows are ordered by `(txid, seq)` and the cursor is
//! `"<txid>:<seq>"` of the last row read.
//!
//! The price: **a long-running transaction delays capture** (of every table, since xmin is
//! server-wide) until it ends; it never loses a change. An open transaction that merely reads
//! holds nothing back (it has no transaction id); one that wrote, or an idle-in-transaction
//! session after a write, does.
//!
//! The change log and the one trigger function `_crmsync_capture()` live in the schema the
//! source's connection resolves unqualified names to (`current_schema()`, see
//! [`PgSource::log_schema`]): `?options=-c search_path=crmsync` puts them in a schema of
//! their own. The function and the triggers name that schema explicitly, so the app's own
//! sessions, whatever their `search_path`, log into the same table. Each trigger notifies
//! channel `crmsync_changes` with the table's name (delivered when the transaction commits).

use super::source::PgSource;
use crate::CHANGE_LOG;
use crate::error::StoreError;
use crate::ident::{literal, quote, quote_table, sql};
use crate::{Capture, ChangePage};
use sqlx::Row;
use sqlx::postgres::{PgListener, PgPoolOptions, PgRow};
use std::time::Duration;
use tokio::sync::mpsc;

/// The `LISTEN` channel the triggers notify.
pub const CHANGE_CHANNEL: &str = "crmsync_changes";

/// The trigger function's name (one for every table: the table and key come as arguments).
const FUNCTION: &str = "_crmsync_capture";

/// The triggers on a captured table, by operation.
const TRIGGERS: [(&str, &str); 3] = [
    ("_crmsync_ins", "INSERT"),
    ("_crmsync_upd", "UPDATE"),
    ("_crmsync_del", "DELETE"),
];

/// Serializes `install_capture` across processes: `CREATE TABLE IF NOT EXISTS` and
/// `CREATE OR REPLACE FUNCTION` are not safe against a concurrent twin.
const INSTALL_LOCK: i64 = 0x6372_6d73_796e_6301; // "crmsync" + 1

/// Key types (oids) whose `to_jsonb` text, what the trigger logs, is the text `scan_page`
/// reads (`CAST(key AS text)` in the source's session): smallint, integer, bigint, oid, text,
/// varchar, numeric, date, uuid. Other keys (`char(n)` pads, `timestamp` writes a `T`,
/// `timestamptz` the writer's zone) are read back through their type, see
/// [`PgSource::logged_key`].
const SAME_TEXT: [i64; 9] = [21, 23, 20, 26, 25, 1043, 1700, 1082, 2950];

/// Undefined table: the change log was never installed.
const UNDEFINED_TABLE: &str = "42P01";

/// A cursor as `(txid, seq)`; anything unreadable reads from the beginning (re-reading is
/// harmless, skipping is not).
fn position_of(cursor: Option<&str>) -> (i64, i64) {
    let Some(c) = cursor else { return (0, 0) };
    let parsed = c
        .trim()
        .split_once(':')
        .and_then(|(t, s)| Some((t.parse().ok()?, s.parse().ok()?)));
    parsed.unwrap_or_else(|| {
        tracing::warn!(
            cursor = c,
            "not a PostgreSQL change cursor; reading from the start"
        );
        (0, 0)
    })
}

fn cursor_text((txid, seq): (i64, i64)) -> String {
    format!("{txid}:{seq}")
}

/// Column `i` of a change-log row (ours: a value that does not decode is damage).
fn logged<'r, T>(row: &'r PgRow, i: usize, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(i)
        .map_err(|e| StoreError::Corrupt(format!("table `{CHANGE_LOG}`, column `{column}`: {e}")))
}

/// Whether `e` says the change log does not exist (capture never installed here).
fn no_log(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some(UNDEFINED_TABLE))
}

impl PgSource {
    /// The change log, schema-qualified and quoted.
    fn log(&self) -> String {
        format!("{}.{}", quote(self.log_schema()), quote(CHANGE_LOG))
    }

    /// The body of the trigger function. The key is read with `to_jsonb(row) ->> key`, so
    /// one function serves every table; for integer, numeric, text and uuid keys that is the
    /// same text as `CAST(key AS text)`. An update that changes the key logs the old key as
    /// deleted. A row with a NULL key cannot be addressed and is not logged.
    fn function_body(&self) -> String {
        let log = self.log();
        format!(
            "DECLARE
               new_key text;
               old_key text;
             BEGIN
               IF TG_OP <> 'DELETE' THEN new_key := to_jsonb(NEW) ->> TG_ARGV[1]; END IF;
               IF TG_OP <> 'INSERT' THEN old_key := to_jsonb(OLD) ->> TG_ARGV[1]; END IF;
               IF old_key IS NOT NULL AND old_key IS DISTINCT FROM new_key THEN
                 INSERT INTO {log} (table_name, row_key, op) VALUES (TG_ARGV[0], old_key, 'delete');
               END IF;
               IF new_key IS NOT NULL THEN
                 INSERT INTO {log} (table_name, row_key, op) VALUES (TG_ARGV[0], new_key, lower(TG_OP));
               END IF;
               PERFORM pg_notify({}, TG_ARGV[0]);
               RETURN NULL;
             END",
            literal(CHANGE_CHANNEL)
        )
    }

    /// How `changes_since` reads a logged key of `table`: `row_key` itself, or cast through
    /// the key column's type back to text, so that a key from the log is the same text as
    /// the row's key read by `scan_page` and `fetch` (the engine matches them). The key
    /// column is the one the installed trigger was given (its second argument).
    async fn logged_key(&self, table: &str) -> Result<String, StoreError> {
        let cached = self.key_casts().get(table).cloned();
        let cast = match cached {
            Some(cast) => cast,
            None => {
                let args: Option<Vec<u8>> = sqlx::query_scalar(
                    "SELECT tgargs FROM pg_catalog.pg_trigger
                     WHERE tgrelid = to_regclass($1) AND tgname = $2",
                )
                .bind(quote_table(table, quote))
                .bind(TRIGGERS[0].0)
                .fetch_optional(self.pool())
                .await?;
                // `tgargs` holds each argument followed by a NUL byte: (table, key).
                let key = args.and_then(|a| {
                    let key = a.split(|b| *b == 0).nth(1)?.to_vec();
                    String::from_utf8(key).ok()
                });
                let Some(key) = key else {
                    // Not installed (or a name this cannot read): the text as logged.
                    return Ok("row_key".to_string());
                };
                let column = self.column_types(table, &[key.as_str()]).await?.remove(0);
                let cast = (!SAME_TEXT.contains(&column.base_oid)).then_some(column.cast);
                self.key_casts().insert(table.to_string(), cast.clone());
                cast
            }
        };
        Ok(match cast {
            Some(t) => format!("CAST(CAST(row_key AS {t}) AS text)"),
            None => "row_key".to_string(),
        })
    }

    /// Table names with logged changes (a wake-up for each after notifications may have been
    /// missed). Nothing when the log does not exist.
    async fn logged_tables(pool: &sqlx::PgPool, log: &str) -> Result<Vec<String>, StoreError> {
        match sqlx::query_scalar(sql(format!("SELECT DISTINCT table_name FROM {log}")))
            .fetch_all(pool)
            .await
        {
            Ok(names) => Ok(names),
            Err(e) if no_log(&e) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }
}

impl Capture for PgSource {
    async fn capture_installed(&self, table: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_catalog.pg_trigger
             WHERE tgrelid = to_regclass($1) AND tgname = ANY ($2)",
        )
        .bind(quote_table(table, quote))
        .bind(TRIGGERS.map(|(name, _)| name).as_slice())
        .fetch_one(self.pool())
        .await?;
        Ok(n == TRIGGERS.len() as i64)
    }

    async fn install_capture(
        &self,
        table: &str,
        key: &str,
        watched: &[&str],
    ) -> Result<(), StoreError> {
        let kind: Option<String> = sqlx::query_scalar(
            "SELECT relkind::text FROM pg_catalog.pg_class WHERE oid = to_regclass($1)",
        )
        .bind(quote_table(table, quote))
        .fetch_optional(self.pool())
        .await?;
        match kind.as_deref() {
            Some("r" | "p") => {}
            None => {
                return Err(StoreError::Schema(format!(
                    "the source database has no table `{table}` to capture"
                )));
            }
            Some(_) => {
                return Err(StoreError::Schema(format!(
                    "`{table}` is a view or another relation without rows of its own, so triggers cannot capture it; use capture = \"updated_at\" for it, or capture its table"
                )));
            }
        }
        // Every named column must exist (a clear error now, not a trigger error later).
        let mut columns = vec![key];
        columns.extend(watched.iter().filter(|c| **c != key));
        self.column_types(table, &columns).await?;

        let log = self.log();
        let function = format!("{}.{}", quote(self.log_schema()), quote(FUNCTION));
        let tname = quote_table(table, quote);
        let mut tx = self.pool().begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(INSTALL_LOCK)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql(format!(
            "CREATE TABLE IF NOT EXISTS {log} (
               seq BIGSERIAL PRIMARY KEY,
               txid BIGINT NOT NULL DEFAULT txid_current(),
               table_name TEXT NOT NULL,
               row_key TEXT NOT NULL,
               op TEXT NOT NULL,
               changed_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )))
        .execute(&mut *tx)
        .await?;
        sqlx::query(sql(format!(
            "CREATE INDEX IF NOT EXISTS {} ON {log} (table_name, txid, seq)",
            quote(&format!("{CHANGE_LOG}_table_txid"))
        )))
        .execute(&mut *tx)
        .await?;
        // The body as an ordinary literal, not dollar-quoted: a schema name could contain
        // any dollar tag, but not an unescaped quote.
        sqlx::query(sql(format!(
            "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS {}",
            literal(&self.function_body())
        )))
        .execute(&mut *tx)
        .await?;
        // Updates are logged when a watched column (or the key) really changed: an UPDATE
        // that assigns the same values (our own write-backs included) fires no log row. The
        // values are compared as text: every type has one (`json` has no equality).
        let mut compared: Vec<&str> = vec![key];
        compared.extend(watched.iter().filter(|c| **c != key));
        let when = if watched.is_empty() {
            // A sync of constants: every update is a change, as on SQLite.
            String::new()
        } else {
            let side = |row: &str| {
                compared
                    .iter()
                    .map(|c| format!("CAST({row}.{} AS text)", quote(c)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                " WHEN (ROW({}) IS DISTINCT FROM ROW({}))",
                side("OLD"),
                side("NEW")
            )
        };
        let args = format!("{}, {}", literal(table), literal(key));
        for (name, op) in TRIGGERS {
            let name = quote(name);
            let when = if op == "UPDATE" { when.as_str() } else { "" };
            sqlx::query(sql(format!("DROP TRIGGER IF EXISTS {name} ON {tname}")))
                .execute(&mut *tx)
                .await?;
            sqlx::query(sql(format!(
                "CREATE TRIGGER {name} AFTER {op} ON {tname} FOR EACH ROW{when} EXECUTE FUNCTION {function}({args})"
            )))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        // The key may be another column now.
        self.key_casts().remove(table);
        Ok(())
    }

    async fn change_position(&self) -> Result<String, StoreError> {
        // Every transaction below xmin has finished: a scan starting now sees all they wrote,
        // and the first change it might not see has a txid of at least xmin.
        let xmin: i64 = sqlx::query_scalar("SELECT txid_snapshot_xmin(txid_current_snapshot())")
            .fetch_one(self.pool())
            .await?;
        Ok(cursor_text((xmin, 0)))
    }

    async fn changes_since(
        &self,
        table: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<ChangePage, StoreError> {
        let after = position_of(cursor);
        let limit = limit.max(1);
        // The xmin filter and the rows come from one statement, so from one snapshot: a
        // transaction below that xmin is finished in the snapshot the rows are read in.
        let row_key = self.logged_key(table).await?;
        let rows = sqlx::query(sql(format!(
            "SELECT txid, seq, {row_key} FROM {}
             WHERE table_name = $1 AND (txid, seq) > ($2, $3)
               AND txid < txid_snapshot_xmin(txid_current_snapshot())
             ORDER BY txid, seq LIMIT $4",
            self.log()
        )))
        .bind(table)
        .bind(after.0)
        .bind(after.1)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) if no_log(&e) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let more = rows.len() >= limit;
        let mut last = after;
        let mut seen = std::collections::HashSet::new();
        let mut keys = Vec::new();
        for r in &rows {
            last = (logged(r, 0, "txid")?, logged(r, 1, "seq")?);
            let key: String = logged(r, 2, "row_key")?;
            if seen.insert(key.clone()) {
                keys.push(key);
            }
        }
        Ok(ChangePage {
            keys,
            cursor: cursor_text(last),
            more,
        })
    }

    async fn changes_pending(&self, table: &str, cursor: Option<&str>) -> Result<u64, StoreError> {
        let after = position_of(cursor);
        let n = sqlx::query_scalar::<_, i64>(sql(format!(
            "SELECT COUNT(DISTINCT row_key) FROM {} WHERE table_name = $1 AND (txid, seq) > ($2, $3)",
            self.log()
        )))
        .bind(table)
        .bind(after.0)
        .bind(after.1)
        .fetch_one(self.pool())
        .await;
        match n {
            Ok(n) => Ok(u64::try_from(n).unwrap_or(0)),
            Err(e) if no_log(&e) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    fn earliest_cursor(&self, cursors: &[String]) -> Option<String> {
        cursors
            .iter()
            .map(|c| position_of(Some(c)))
            .min()
            .map(cursor_text)
    }

    async fn prune_changes(&self, table: &str, cursor: &str) -> Result<u64, StoreError> {
        // A cursor from changes_since or change_position lies below the xmin it was read
        // under, so every row at or before it belongs to a finished transaction. An
        // unreadable cursor is (0, 0): nothing is removed.
        let at = position_of(Some(cursor));
        let done = sqlx::query(sql(format!(
            "DELETE FROM {} WHERE table_name = $1 AND (txid, seq) <= ($2, $3)",
            self.log()
        )))
        .bind(table)
        .bind(at.0)
        .bind(at.1)
        .execute(self.pool())
        .await;
        match done {
            Ok(r) => Ok(r.rows_affected()),
            Err(e) if no_log(&e) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    async fn subscribe(&self) -> Result<Option<mpsc::Receiver<String>>, StoreError> {
        // A pool of its own, never timed out: the listener holds one connection for as long
        // as the receiver lives and reconnects through the pool. Two slots, because a lost
        // connection keeps its slot while it is being closed, and a reconnect waiting for
        // that slot would wait out the acquire timeout (30 s) with nobody listening.
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .min_connections(0)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(self.connect_options().clone())
            .await?;
        // Listening before returning: a change committed after `subscribe` returns is
        // delivered.
        let listener = listen(&pool).await?;
        let (tx, rx) = mpsc::channel(256);
        let log = self.log();
        tokio::spawn(forward(pool, listener, tx, log));
        Ok(Some(rx))
    }
}

async fn listen(pool: &sqlx::PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANGE_CHANNEL).await?;
    Ok(listener)
}

/// Forwards notified table names to `tx` until the receiver is dropped. After a lost
/// connection it listens again (waiting longer after each failure, up to 30 s) and then sends
/// every table with logged changes, since notifications sent meanwhile are gone: a spurious
/// wake-up costs one read, a missed one a whole poll interval.
async fn forward(pool: sqlx::PgPool, listener: PgListener, tx: mpsc::Sender<String>, log: String) {
    relay(&pool, listener, &tx, &log).await;
    // The listener is dropped by now: close its connection, so the server stops queueing
    // notifications for a session nobody reads.
    pool.close().await;
}

async fn relay(pool: &sqlx::PgPool, listener: PgListener, tx: &mpsc::Sender<String>, log: &str) {
    let mut listener = Some(listener);
    let mut backoff = Duration::from_millis(200);
    loop {
        let Some(l) = listener.as_mut() else {
            tokio::select! {
                () = tx.closed() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            match listen(pool).await {
                Ok(l) => {
                    listener = Some(l);
                    backoff = Duration::from_millis(200);
                    if !wake_all(pool, log, tx).await {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for changes again; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
            continue;
        };
        let received = tokio::select! {
            () = tx.closed() => return,
            r = l.try_recv() => r,
        };
        match received {
            Ok(Some(n)) => {
                if tx.send(n.payload().to_string()).await.is_err() {
                    return;
                }
            }
            // The connection was lost and is listening again (sqlx reconnects eagerly).
            Ok(None) => {
                if !wake_all(pool, log, tx).await {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "listening for changes failed; reconnecting");
                listener = None;
            }
        }
    }
}

/// Sends every table with logged changes; false when the receiver is gone.
async fn wake_all(pool: &sqlx::PgPool, log: &str, tx: &mpsc::Sender<String>) -> bool {
    let tables = match PgSource::logged_tables(pool, log).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list tables with changes after reconnecting");
            return !tx.is_closed();
        }
    };
    for t in tables {
        if tx.send(t).await.is_err() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_and_bad_ones_start_over() {
        assert_eq!(position_of(Some("42:7")), (42, 7));
        assert_eq!(cursor_text(position_of(Some("42:7"))), "42:7");
        assert_eq!(position_of(None), (0, 0));
        assert_eq!(position_of(Some("17")), (0, 0));
        assert_eq!(position_of(Some("a:b")), (0, 0));
    }
}
