//! [`Capture`] on MySQL/MariaDB: triggers log every change of a watched table into
//! [`crate::CHANGE_LOG`], and crmsync reads the log in an order that is **commit-safe**.
//!
//! ## Why `seq` alone is not a cursor
//! `seq` is an `AUTO_INCREMENT`, assigned when the trigger inserts, not when the app commits:
//! transaction A takes seq 6, transaction B takes seq 7 and commits first; a reader that sees 7
//! and moves its cursor past it loses 6 when A commits. Holding the reader back is fragile on
//! MySQL: a locking read waits for a row only once it is physically in the index (there is a
//! window between taking the number and inserting the row), and `information_schema.innodb_trx`
//! is a copy refreshed only when nobody read it for 100 ms.
//!
//! ## Batches: an order assigned after commit
//! So the cursor does not follow `seq`. Each log row also has a `batch`, NULL when the trigger
//! writes it. Before reading a table, the reader **stamps** the committed rows that have none:
//! in one transaction it locks the single row of `_crmsync_changes_clock` (`FOR UPDATE`), takes
//! `batch = clock + 1`, selects `seq` of the table's rows with `batch IS NULL` by a consistent
//! (non-locking) read, sets their `batch` by primary key, stores the new clock, and commits.
//! Rows are read in `(batch, seq)` order and the cursor is the last `(batch, seq)` read.
//!
//! Why no change is ever skipped:
//! 1. A row gets a batch only after it committed: a consistent read does not see uncommitted
//!    rows, so an open transaction's rows stay NULL (and unread) until it commits, and a rolled
//!    back transaction's rows never exist. `seq` gaps mean nothing any more.
//! 2. Batches become visible in increasing order. Stampers queue on the clock row's lock, and
//!    InnoDB makes a commit visible to new snapshots before it releases the committer's locks
//!    (MariaDB's `trx_t::commit_in_memory` deregisters the transaction before
//!    `release_locks()`; MySQL 8's `trx_release_impl_and_expl_locks` erases it from the MVCC
//!    lists first, "before doing commit and releasing locks"), so stamper k+1 runs only after
//!    batch k is visible, and takes a larger number. A reader that sees batch k therefore sees
//!    every batch below it, whole (each is one transaction, read by one statement).
//! 3. A row is stamped once: stampers are serialized, and the `UPDATE` also says
//!    `batch IS NULL`.
//! 4. So every row that appears after a reader passed `(b, s)` appears with a batch above the
//!    clock at that time, which is at least `b`: it is after the cursor. A reader never has
//!    to wait, and nothing can appear behind it.
//!
//! A long-running transaction delays only its own changes (they are stamped when it commits);
//! everybody else's flow past it. Stamping costs one extra write per logged change, the price
//! of knowing commit order without a server-side commit sequence. The stamper touches only
//! committed rows, by primary key and under `READ COMMITTED`, so it takes no gap locks that
//! could make the app's triggers wait; pruning deletes the same way.
//!
//! Installing is window-free: each trigger exists under two names (`..._a`, `..._b`); a new
//! install creates the unused name before dropping the old one, so there is never an instant
//! without a trigger (a change logged twice in between is read twice, harmlessly). MySQL
//! cannot notify: [`Capture::subscribe`] answers `None` and the engine polls.

use super::decode::get;
use super::source::MysqlSource;
use super::{KEYS_PER_STATEMENT, schema_and_name};
use crate::error::StoreError;
use crate::ident::{literal_mysql, marks, quote_mysql, quote_table, sql};
use crate::{CHANGE_LOG, Capture, ChangePage};
use sqlx::{MySql, Transaction};
use std::collections::HashSet;

/// The one-row table holding the last batch number handed out.
const CLOCK: &str = "_crmsync_changes_clock";

/// Longest key the log holds, in characters (`row_key VARCHAR(3072)`); install refuses a key
/// column that could be longer, rather than let a trigger fail the app's write.
const KEY_CHARS: i64 = 3072;

/// Rows stamped per batch at most: a long backlog becomes several batches, none too large.
const STAMP_MAX: usize = 5000;

/// How our writes to the log begin. `READ COMMITTED`, so that no statement of ours takes gap
/// locks on the log: under `REPEATABLE READ` an `UPDATE` the optimizer runs as a scan locks the
/// gap at the end of the table, and every app write (its trigger inserts there) would wait for
/// us. It also gives the stamper's read a fresh snapshot, taken after it holds the clock.
const LOG_WRITE: &str = "SET TRANSACTION ISOLATION LEVEL READ COMMITTED; START TRANSACTION";

/// Rows deleted per round of [`Capture::prune_changes`].
const PRUNE_CHUNK: i64 = 5000;

/// A position in `(batch, seq)` order: everything at or before it has been read. Text form
/// `batch` (the whole batch) or `batch:seq`; anything unreadable starts from the beginning
/// (re-reading is free, skipping is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    batch: i64,
    seq: i64,
}

impl Cursor {
    /// Before every batch (batches start at 1).
    const START: Cursor = Cursor {
        batch: 0,
        seq: i64::MAX,
    };

    fn parse(text: Option<&str>) -> Cursor {
        let Some(t) = text.map(str::trim) else {
            return Cursor::START;
        };
        let parsed = match t.split_once(':') {
            Some((b, s)) => b.parse().ok().zip(s.parse().ok()),
            None => t.parse().ok().map(|b| (b, i64::MAX)),
        };
        match parsed {
            Some((batch, seq)) if batch >= 0 => Cursor { batch, seq },
            _ => Cursor::START,
        }
    }

    fn text(self) -> String {
        if self.seq == i64::MAX {
            self.batch.to_string()
        } else {
            format!("{}:{}", self.batch, self.seq)
        }
    }
}

/// The two names of `table`'s trigger for `op` (`ins`, `upd`, `del`), at most 64 characters:
/// a long table name is shortened and made unique again with a hash of the full name.
fn trigger_names(table: &str, op: &str) -> [String; 2] {
    let base = table.replace('.', "_");
    let full = format!("_crmsync_{base}_{op}");
    let stem = if full.chars().count() + 2 <= 64 {
        full
    } else {
        let prefix: String = base.chars().take(32).collect();
        format!("_crmsync_{prefix}_{:016x}_{op}", fnv1a(table))
    };
    [format!("{stem}_a"), format!("{stem}_b")]
}

/// FNV-1a, 64 bits: a hash that stays the same across Rust versions (trigger names must).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Log rows after a cursor in `(batch, seq)` order (binds batch, batch, seq).
const AFTER: &str = "(batch > ? OR (batch = ? AND seq > ?))";

impl MysqlSource {
    /// The database named by the URL, which capture needs (the change log lives there).
    fn database(&self) -> Result<&str, StoreError> {
        self.database.as_deref().ok_or_else(|| {
            StoreError::Schema(
                "the source URL names no database; change capture needs one (mysql://HOST/DATABASE)"
                    .into(),
            )
        })
    }

    async fn has_change_log(&self) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
        )
        .bind(CHANGE_LOG)
        .fetch_one(self.pool())
        .await?;
        Ok(n > 0)
    }

    /// Which of `names` exist as triggers in `schema`.
    async fn triggers_among(
        &self,
        schema: &str,
        names: &[String],
    ) -> Result<HashSet<String>, StoreError> {
        let rows = sqlx::query(sql(format!(
            "SELECT CAST(TRIGGER_NAME AS CHAR) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? AND TRIGGER_NAME IN ({})",
            marks(names.len())
        )))
        .bind(schema)
        .bind_all(names)
        .fetch_all(self.pool())
        .await?;
        let mut found = HashSet::new();
        for r in &rows {
            found.insert(get::<String>(r, 0, "information_schema.TRIGGERS")?);
        }
        Ok(found)
    }

    /// Stamps up to `max_rows` committed, unstamped log rows of `table` (with `seq <= upto`
    /// when given) with the next batch, in one transaction (see the file doc). Returns whether
    /// more such rows were left.
    async fn stamp(
        &self,
        table: &str,
        max_rows: usize,
        upto: Option<i64>,
    ) -> Result<bool, StoreError> {
        let (log, clock) = (quote_mysql(CHANGE_LOG), quote_mysql(CLOCK));
        let mut tx = self.pool().begin_with(LOG_WRITE).await?;
        let lock_clock = sql(format!("SELECT batch FROM {clock} WHERE id = 1 FOR UPDATE"));
        let current: Option<i64> = sqlx::query_scalar(lock_clock)
            .fetch_optional(&mut *tx)
            .await?;
        let current = match current {
            Some(c) => c,
            None => {
                // The clock row is gone (someone emptied the table): start above every batch
                // handed out, so no batch number is ever reused.
                sqlx::query(sql(format!(
                    "INSERT IGNORE INTO {clock} (id, batch) SELECT 1, COALESCE(MAX(batch), 0) FROM {log}"
                )))
                .execute(&mut *tx)
                .await?;
                sqlx::query_scalar(sql(format!(
                    "SELECT batch FROM {clock} WHERE id = 1 FOR UPDATE"
                )))
                .fetch_one(&mut *tx)
                .await?
            }
        };
        // A consistent read, taken now that we hold the clock: committed rows only.
        let mut q = format!("SELECT seq FROM {log} WHERE table_name = ? AND batch IS NULL");
        if upto.is_some() {
            q.push_str(" AND seq <= ?");
        }
        q.push_str(" ORDER BY seq LIMIT ?");
        let mut query = sqlx::query_scalar::<_, i64>(sql(q)).bind(table);
        if let Some(u) = upto {
            query = query.bind(u);
        }
        let mut seqs = query
            .bind(i64::try_from(max_rows.saturating_add(1)).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await?;
        if seqs.is_empty() {
            tx.rollback().await?;
            return Ok(false);
        }
        let more = seqs.len() > max_rows;
        seqs.truncate(max_rows);
        let batch = current + 1;
        for chunk in seqs.chunks(KEYS_PER_STATEMENT) {
            sqlx::query(sql(format!(
                "UPDATE {log} SET batch = ? WHERE batch IS NULL AND seq IN ({})",
                marks(chunk.len())
            )))
            .bind(batch)
            .bind_all(chunk)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(sql(format!("UPDATE {clock} SET batch = ? WHERE id = 1")))
            .bind(batch)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(more)
    }

    /// Up to `limit` stamped log rows of `table` after `c`, in `(batch, seq)` order.
    async fn read_after(
        &self,
        table: &str,
        c: Cursor,
        limit: usize,
    ) -> Result<Vec<(Cursor, String)>, StoreError> {
        let rows = sqlx::query(sql(format!(
            "SELECT batch, seq, row_key FROM {} WHERE table_name = ? AND {AFTER} ORDER BY batch, seq LIMIT ?",
            quote_mysql(CHANGE_LOG)
        )))
        .bind(table)
        .bind(c.batch)
        .bind(c.batch)
        .bind(c.seq)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let at = Cursor {
                batch: get(r, 0, CHANGE_LOG)?,
                seq: get(r, 1, CHANGE_LOG)?,
            };
            out.push((at, get(r, 2, CHANGE_LOG)?));
        }
        Ok(out)
    }

    /// The trigger bodies for `table`, logging into `log` (qualified: a trigger's unqualified
    /// names resolve in the trigger's own database, which may not be ours).
    fn trigger_bodies(
        table: &str,
        log: &str,
        key_text: &str,
        key: &str,
        watched: &[&str],
    ) -> [(&'static str, &'static str, String); 3] {
        let lit = literal_mysql(table);
        let entry = |row: &str, op: &str| {
            let k = key_text.replace("{row}", row);
            // A NULL key cannot be addressed (and `row_key` is NOT NULL): not logged, rather
            // than failing the app's write.
            format!(
                "IF {row}.{key} IS NOT NULL THEN INSERT INTO {log} (table_name, row_key, op, changed_at) VALUES ({lit}, {k}, '{op}', UTC_TIMESTAMP(6)); END IF;"
            )
        };
        // Compared as bytes: `<=>` alone follows the column's collation, which would call
        // `abc` -> `ABC` no change in a case-insensitive column.
        let same = |c: &str| format!("CAST(OLD.{c} AS BINARY) <=> CAST(NEW.{c} AS BINARY)");
        // Without watched columns (a sync of constants) every update is a change.
        let changed = if watched.is_empty() {
            "TRUE".to_string()
        } else {
            let all: Vec<String> = watched.iter().map(|c| same(&quote_mysql(c))).collect();
            format!("NOT ({})", all.join(" AND "))
        };
        [
            (
                "ins",
                "INSERT",
                format!("BEGIN {} END", entry("NEW", "insert")),
            ),
            (
                "upd",
                "UPDATE",
                // A changed key is the old record gone and the new one changed.
                format!(
                    "BEGIN IF NOT ({}) THEN {} {} ELSEIF {changed} THEN {} END IF; END",
                    same(key),
                    entry("OLD", "delete"),
                    entry("NEW", "update"),
                    entry("NEW", "update")
                ),
            ),
            (
                "del",
                "DELETE",
                format!("BEGIN {} END", entry("OLD", "delete")),
            ),
        ]
    }
}

/// Binding a list of values in order (a small convenience over repeated `.bind`).
trait BindAll<'q>: Sized {
    fn bind_all<T>(self, values: &'q [T]) -> Self
    where
        T: 'q + sqlx::Encode<'q, MySql> + sqlx::Type<MySql> + Send + Sync;
}

impl<'q> BindAll<'q> for sqlx::query::Query<'q, MySql, sqlx::mysql::MySqlArguments> {
    fn bind_all<T>(mut self, values: &'q [T]) -> Self
    where
        T: 'q + sqlx::Encode<'q, MySql> + sqlx::Type<MySql> + Send + Sync,
    {
        for v in values {
            self = self.bind(v);
        }
        self
    }
}

/// Deletes `seqs` from the log in `tx`; returns how many rows went.
async fn delete_seqs(
    tx: &mut Transaction<'static, MySql>,
    seqs: &[i64],
) -> Result<u64, StoreError> {
    let mut n = 0;
    for chunk in seqs.chunks(KEYS_PER_STATEMENT) {
        n += sqlx::query(sql(format!(
            "DELETE FROM {} WHERE seq IN ({})",
            quote_mysql(CHANGE_LOG),
            marks(chunk.len())
        )))
        .bind_all(chunk)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    }
    Ok(n)
}

impl Capture for MysqlSource {
    async fn capture_installed(&self, table: &str) -> Result<bool, StoreError> {
        let (schema, _) = schema_and_name(table);
        let schema = match schema {
            Some(s) => s.to_string(),
            None => self.database()?.to_string(),
        };
        Ok(!self
            .triggers_among(&schema, &trigger_names(table, "ins"))
            .await?
            .is_empty())
    }

    async fn install_capture(
        &self,
        table: &str,
        key: &str,
        watched: &[&str],
    ) -> Result<(), StoreError> {
        let db = self.database()?.to_string();
        let meta = self.columns(table).await?;
        let key_meta = meta.get(key)?;
        if key_meta.is_binary() {
            return Err(StoreError::Schema(format!(
                "the key `{key}` of `{table}` is a binary column ({}); change capture needs a key that reads as text",
                key_meta.column_type
            )));
        }
        if key_meta.max_chars.is_some_and(|n| n > KEY_CHARS) {
            return Err(StoreError::Schema(format!(
                "the key `{key}` of `{table}` may be longer than the {KEY_CHARS} characters the change log holds ({})",
                key_meta.column_type
            )));
        }
        for w in watched {
            meta.get(w)?;
        }
        let (log, clock) = (quote_mysql(CHANGE_LOG), quote_mysql(CLOCK));
        // DDL commits implicitly in MySQL, so these are separate steps, each idempotent.
        sqlx::raw_sql(sql(format!(
            "CREATE TABLE IF NOT EXISTS {log} (
               seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
               table_name VARCHAR(255) NOT NULL,
               row_key VARCHAR({KEY_CHARS}) NOT NULL,
               op VARCHAR(16) NOT NULL,
               changed_at DATETIME(6) NOT NULL,
               batch BIGINT NULL,
               KEY {} (table_name, batch, seq)
             ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin",
            quote_mysql(&format!("{CHANGE_LOG}_table"))
        )))
        .execute(self.pool())
        .await?;
        sqlx::raw_sql(sql(format!(
            "CREATE TABLE IF NOT EXISTS {clock} (id TINYINT NOT NULL PRIMARY KEY, batch BIGINT NOT NULL) ENGINE = InnoDB"
        )))
        .execute(self.pool())
        .await?;
        sqlx::raw_sql(sql(format!(
            "INSERT IGNORE INTO {clock} (id, batch) VALUES (1, 0)"
        )))
        .execute(self.pool())
        .await?;

        let schema = schema_and_name(table).0.unwrap_or(&db).to_string();
        let qschema = quote_mysql(&schema);
        let qlog = format!("{}.{log}", quote_mysql(&db));
        let k = quote_mysql(key);
        // The key as the text `Source` reads it (`bit` reads as its number).
        let key_text = if key_meta.data_type == "bit" {
            format!("CAST({{row}}.{k} + 0 AS CHAR)")
        } else {
            format!("CAST({{row}}.{k} AS CHAR)")
        };
        let tname = quote_table(table, quote_mysql);
        for (op, event, body) in Self::trigger_bodies(table, &qlog, &key_text, &k, watched) {
            let names = trigger_names(table, op);
            let existing = self.triggers_among(&schema, &names).await?;
            let [a, b] = names;
            let (new, old) = if existing.contains(&a) {
                (b, a)
            } else {
                (a, b)
            };
            // Both present means an install was interrupted: the old one still fires while
            // the new one is replaced.
            if existing.contains(&new) {
                sqlx::raw_sql(sql(format!(
                    "DROP TRIGGER IF EXISTS {qschema}.{}",
                    quote_mysql(&new)
                )))
                .execute(self.pool())
                .await?;
            }
            sqlx::raw_sql(sql(format!(
                "CREATE TRIGGER {qschema}.{} AFTER {event} ON {tname} FOR EACH ROW {body}",
                quote_mysql(&new)
            )))
            .execute(self.pool())
            .await?;
            sqlx::raw_sql(sql(format!(
                "DROP TRIGGER IF EXISTS {qschema}.{}",
                quote_mysql(&old)
            )))
            .execute(self.pool())
            .await?;
        }
        Ok(())
    }

    async fn change_position(&self) -> Result<String, StoreError> {
        if !self.has_change_log().await? {
            return Ok(Cursor::START.text());
        }
        let log = quote_mysql(CHANGE_LOG);
        // Stamp what has committed so far (of every table), so the position covers it; rows
        // committing from now on get later batches and are read after it.
        let upto: i64 = sqlx::query_scalar(sql(format!(
            "SELECT CAST(COALESCE(MAX(seq), 0) AS SIGNED) FROM {log}"
        )))
        .fetch_one(self.pool())
        .await?;
        let tables: Vec<String> = sqlx::query_scalar(sql(format!(
            "SELECT DISTINCT table_name FROM {log} WHERE batch IS NULL AND seq <= ?"
        )))
        .bind(upto)
        .fetch_all(self.pool())
        .await?;
        for t in &tables {
            while self.stamp(t, STAMP_MAX, Some(upto)).await? {}
        }
        let batch: Option<i64> = sqlx::query_scalar(sql(format!(
            "SELECT batch FROM {} WHERE id = 1",
            quote_mysql(CLOCK)
        )))
        .fetch_optional(self.pool())
        .await?;
        Ok(Cursor {
            batch: batch.unwrap_or(0),
            seq: i64::MAX,
        }
        .text())
    }

    async fn changes_since(
        &self,
        table: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<ChangePage, StoreError> {
        let from = Cursor::parse(cursor);
        let given = cursor.map_or_else(|| from.text(), str::to_string);
        if !self.has_change_log().await? {
            return Ok(ChangePage {
                keys: vec![],
                cursor: given,
                more: false,
            });
        }
        let limit = limit.max(1);
        // What is stamped already first; stamp only when it does not fill the page, so a long
        // backlog is stamped as it is read, not all at once.
        let mut rows = self.read_after(table, from, limit).await?;
        let mut more = rows.len() >= limit;
        if !more {
            let unstamped_left = self.stamp(table, STAMP_MAX.max(limit), None).await?;
            let last = rows.last().map_or(from, |(c, _)| *c);
            let rest = self.read_after(table, last, limit - rows.len()).await?;
            rows.extend(rest);
            more = rows.len() >= limit || unstamped_left;
        }
        let mut seen = HashSet::new();
        let mut keys = Vec::new();
        for (_, key) in &rows {
            if seen.insert(key.as_str()) {
                keys.push(key.clone());
            }
        }
        Ok(ChangePage {
            keys,
            cursor: rows.last().map_or(given, |(c, _)| c.text()),
            more,
        })
    }

    async fn changes_pending(&self, table: &str, cursor: Option<&str>) -> Result<u64, StoreError> {
        if !self.has_change_log().await? {
            return Ok(0);
        }
        let c = Cursor::parse(cursor);
        // Unstamped rows count too: committed, just not ordered yet.
        let n: i64 = sqlx::query_scalar(sql(format!(
            "SELECT COUNT(DISTINCT row_key) FROM {} WHERE table_name = ? AND (batch IS NULL OR {AFTER})",
            quote_mysql(CHANGE_LOG)
        )))
        .bind(table)
        .bind(c.batch)
        .bind(c.batch)
        .bind(c.seq)
        .fetch_one(self.pool())
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn earliest_cursor(&self, cursors: &[String]) -> Option<String> {
        cursors
            .iter()
            .map(|c| {
                let c = Cursor::parse(Some(c));
                (c.batch, c.seq)
            })
            .min()
            .map(|(batch, seq)| Cursor { batch, seq }.text())
    }

    async fn prune_changes(&self, table: &str, cursor: &str) -> Result<u64, StoreError> {
        if !self.has_change_log().await? {
            return Ok(0);
        }
        let c = Cursor::parse(Some(cursor));
        let select = format!(
            "SELECT seq FROM {} WHERE table_name = ? AND (batch < ? OR (batch = ? AND seq <= ?)) ORDER BY seq LIMIT ?",
            quote_mysql(CHANGE_LOG)
        );
        let mut tx = self.pool().begin_with(LOG_WRITE).await?;
        let mut removed = 0;
        // By primary key, in rounds, under `READ COMMITTED`: a range `DELETE` under
        // `REPEATABLE READ` would take next-key locks on the table's index range, blocking the
        // app's triggers until we commit.
        loop {
            let seqs: Vec<i64> = sqlx::query_scalar(sql(select.clone()))
                .bind(table)
                .bind(c.batch)
                .bind(c.batch)
                .bind(c.seq)
                .bind(PRUNE_CHUNK)
                .fetch_all(&mut *tx)
                .await?;
            removed += delete_seqs(&mut tx, &seqs).await?;
            if i64::try_from(seqs.len()).unwrap_or(i64::MAX) < PRUNE_CHUNK {
                break;
            }
        }
        tx.commit().await?;
        Ok(removed)
    }

    async fn subscribe(&self) -> Result<Option<tokio::sync::mpsc::Receiver<String>>, StoreError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_starts_over() {
        for c in [
            Cursor::START,
            Cursor {
                batch: 7,
                seq: i64::MAX,
            },
            Cursor { batch: 7, seq: 42 },
        ] {
            assert_eq!(Cursor::parse(Some(&c.text())), c);
        }
        assert_eq!(Cursor::parse(None), Cursor::START);
        assert_eq!(Cursor::parse(Some("x:1")), Cursor::START);
        assert_eq!(Cursor::parse(Some("-3")), Cursor::START);
        assert_eq!(Cursor::START.text(), "0");
    }

    #[test]
    fn trigger_names_fit_and_stay_distinct() {
        let long_a = format!("{}a", "x".repeat(70));
        let long_b = format!("{}b", "x".repeat(70));
        let a = trigger_names(&long_a, "upd");
        let b = trigger_names(&long_b, "upd");
        assert!(a.iter().chain(&b).all(|n| n.chars().count() <= 64));
        assert_ne!(a, b);
        assert_eq!(
            trigger_names("shop.orders", "ins")[0],
            "_crmsync_shop_orders_ins_a"
        );
    }
}
