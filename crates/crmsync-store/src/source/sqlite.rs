//! A SQLite app database: reading mapped columns as text, change capture through triggers
//! that log into [`super::CHANGE_LOG`] (or an `updated_at` cursor), and the optional write-back
//! of CRM ids. The user's tables are never altered; triggers and the change log are ours.

use super::CHANGE_LOG;
use crate::error::StoreError;
use crate::ident::{quote, sql};
use crmsync_core::mapping::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Row as _, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

/// A row as read for a sync: its key and mapped columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRow {
    pub key: String,
    pub values: Row,
}

/// The app database.
#[derive(Debug, Clone)]
pub struct SqliteSource {
    pool: SqlitePool,
}

impl SqliteSource {
    /// Opens an existing app database (never creates one: a wrong path must be an error).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            what: "source",
            url: url.to_string(),
            source,
        };
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(open_err)?
            .create_if_missing(false)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(opts)
            .await
            .map_err(|source| StoreError::Open {
                what: "source",
                url: url.to_string(),
                source,
            })?;
        Ok(SqliteSource { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Column names of `table`; a schema error naming the table when it does not exist.
    pub async fn columns(&self, table: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT name FROM pragma_table_info(?)")
            .bind(table)
            .fetch_all(&self.pool)
            .await?;
        if rows.is_empty() {
            return Err(StoreError::Schema(format!(
                "the source database has no table `{table}`"
            )));
        }
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    /// Checks that `table` has every column in `needed`, naming the missing ones.
    pub async fn check_columns(&self, table: &str, needed: &[&str]) -> Result<(), StoreError> {
        let have = self.columns(table).await?;
        let missing: Vec<&str> = needed
            .iter()
            .copied()
            .filter(|c| !have.iter().any(|h| h == c))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Schema(format!(
                "table `{table}` has no column{} {}; it has: {}",
                if missing.len() == 1 { "" } else { "s" },
                missing
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                have.join(", ")
            )))
        }
    }

    /// Number of rows in `table`.
    pub async fn count(&self, table: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar(sql(format!("SELECT COUNT(*) FROM {}", quote(table))))
                .fetch_one(&self.pool)
                .await?,
        )
    }

    fn select(table: &str, key: &str, columns: &[&str]) -> String {
        let mut s = format!("SELECT CAST({} AS TEXT)", quote(key));
        for c in columns {
            s.push_str(&format!(", CAST({} AS TEXT)", quote(c)));
        }
        s.push_str(&format!(" FROM {}", quote(table)));
        s
    }

    fn to_rows(rows: Vec<sqlx::sqlite::SqliteRow>, columns: &[&str]) -> Vec<SourceRow> {
        rows.into_iter()
            .filter_map(|r| {
                let key: Option<String> = r.get(0);
                let values = columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.to_string(), r.get::<Option<String>, _>(i + 1)))
                    .collect();
                key.map(|key| SourceRow { key, values })
            })
            .collect()
    }

    /// Up to `limit` rows of `table` with a key above `after` (from the start when `None`), in
    /// key order. Keyset paging: no read transaction stays open between pages, and memory is
    /// bounded by one page however large the table.
    pub async fn scan_page(
        &self,
        table: &str,
        key: &str,
        columns: &[&str],
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SourceRow>, StoreError> {
        let mut q = Self::select(table, key, columns);
        if after.is_some() {
            // A parameter has no affinity and takes the column's: '999' compares as 999 against
            // an INTEGER key, so text keys and integer keys page alike.
            q.push_str(&format!(" WHERE {} > ?", quote(key)));
        }
        q.push_str(&format!(" ORDER BY {} LIMIT ?", quote(key)));
        let mut query = sqlx::query(sql(q));
        if let Some(a) = after {
            query = query.bind(a);
        }
        let rows = query.bind(limit as i64).fetch_all(&self.pool).await?;
        Ok(Self::to_rows(rows, columns))
    }

    /// The rows of `table` whose key is in `keys` (missing keys were deleted).
    pub async fn fetch(
        &self,
        table: &str,
        key: &str,
        columns: &[&str],
        keys: &[String],
    ) -> Result<Vec<SourceRow>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(", ");
            // No CAST on the key: SQLite's column affinity converts the text parameters, so an
            // INTEGER primary key still uses its index.
            let q = format!(
                "{} WHERE {} IN ({marks})",
                Self::select(table, key, columns),
                quote(key)
            );
            let mut query = sqlx::query(sql(q));
            for k in chunk {
                query = query.bind(k);
            }
            out.extend(Self::to_rows(query.fetch_all(&self.pool).await?, columns));
        }
        Ok(out)
    }

    /// Up to `limit` rows ordered by (`ts_column`, key): those at or after `since` for the first
    /// page, then those after the `(ts, key)` position `after`. `>=` on the first page re-reads
    /// rows sharing the boundary timestamp (and rows committed late with it); their unchanged
    /// hash makes that free. `columns` must include `ts_column`.
    #[allow(clippy::too_many_arguments)]
    pub async fn updated_page(
        &self,
        table: &str,
        key: &str,
        columns: &[&str],
        ts_column: &str,
        since: Option<&str>,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<SourceRow>, StoreError> {
        let mut q = Self::select(table, key, columns);
        let (ts, k) = (quote(ts_column), quote(key));
        match (after, since) {
            (Some(_), _) => q.push_str(&format!(" WHERE ({ts}, {k}) > (?, ?)")),
            (None, Some(_)) => q.push_str(&format!(" WHERE {ts} >= ?")),
            (None, None) => {}
        }
        q.push_str(&format!(" ORDER BY {ts}, {k} LIMIT ?"));
        let mut query = sqlx::query(sql(q));
        match (after, since) {
            (Some((t, key_value)), _) => query = query.bind(t).bind(key_value),
            (None, Some(s)) => query = query.bind(s),
            (None, None) => {}
        }
        let rows = query.bind(limit as i64).fetch_all(&self.pool).await?;
        Ok(Self::to_rows(rows, columns))
    }

    /// The largest value of `column` in `table` as text (`None` for an empty table).
    pub async fn max_text(&self, table: &str, column: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(sql(format!(
            "SELECT CAST(MAX({}) AS TEXT) FROM {}",
            quote(column),
            quote(table)
        )))
        .fetch_one(&self.pool)
        .await?)
    }

    /// Whether `crmsync install` put triggers on `table`.
    pub async fn triggers_installed(&self, table: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND name = ?",
        )
        .bind(trigger_name(table, "ins"))
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// Creates the change log and the insert/update/delete triggers on `table` (idempotent).
    /// Updates are logged only when one of `watched` columns changes, so writing a CRM id back
    /// into the table does not look like a change.
    pub async fn install_triggers(
        &self,
        table: &str,
        key: &str,
        watched: &[&str],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(sql(format!(
            "CREATE TABLE IF NOT EXISTS {} (
               seq INTEGER PRIMARY KEY AUTOINCREMENT,
               table_name TEXT NOT NULL,
               row_key TEXT NOT NULL,
               op TEXT NOT NULL,
               changed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))",
            quote(CHANGE_LOG)
        )))
        .execute(&mut *tx)
        .await?;
        let log = quote(CHANGE_LOG);
        let tname = quote(table);
        let k = quote(key);
        let lit = table.replace('\'', "''");
        let cols = watched
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", ");
        for (suffix, ddl) in [
            (
                "ins",
                format!(
                    "AFTER INSERT ON {tname} BEGIN INSERT INTO {log} (table_name, row_key, op) VALUES ('{lit}', CAST(NEW.{k} AS TEXT), 'insert'); END"
                ),
            ),
            (
                "upd",
                format!(
                    "AFTER UPDATE OF {cols} ON {tname} BEGIN INSERT INTO {log} (table_name, row_key, op) VALUES ('{lit}', CAST(NEW.{k} AS TEXT), 'update'); END"
                ),
            ),
            (
                "del",
                format!(
                    "AFTER DELETE ON {tname} BEGIN INSERT INTO {log} (table_name, row_key, op) VALUES ('{lit}', CAST(OLD.{k} AS TEXT), 'delete'); END"
                ),
            ),
        ] {
            let name = quote(&trigger_name(table, suffix));
            sqlx::query(sql(format!("DROP TRIGGER IF EXISTS {name}")))
                .execute(&mut *tx)
                .await?;
            sqlx::query(sql(format!("CREATE TRIGGER {name} {ddl}")))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Highest change-log sequence number (0 when empty or absent).
    pub async fn change_seq(&self) -> Result<i64, StoreError> {
        if !self.has_change_log().await? {
            return Ok(0);
        }
        Ok(sqlx::query_scalar(sql(format!(
            "SELECT COALESCE(MAX(seq), 0) FROM {}",
            quote(CHANGE_LOG)
        )))
        .fetch_one(&self.pool)
        .await?)
    }

    async fn has_change_log(&self) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
        )
        .bind(CHANGE_LOG)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// Distinct keys of `table` changed after `after_seq`, and the highest sequence seen.
    pub async fn changed_keys(
        &self,
        table: &str,
        after_seq: i64,
    ) -> Result<(Vec<String>, i64), StoreError> {
        let rows = sqlx::query(sql(format!(
            "SELECT row_key, MAX(seq) FROM {} WHERE table_name = ? AND seq > ? GROUP BY row_key ORDER BY MAX(seq)",
            quote(CHANGE_LOG)
        )))
        .bind(table)
        .bind(after_seq)
        .fetch_all(&self.pool)
        .await?;
        let max = rows
            .iter()
            .map(|r| r.get::<i64, _>(1))
            .max()
            .unwrap_or(after_seq);
        Ok((rows.into_iter().map(|r| r.get(0)).collect(), max))
    }

    /// Writes pulled CRM values into the app: per `(key, [(column, value)])`, one `UPDATE` of
    /// the row; an empty value is written as NULL. All rows in one transaction, so a crash
    /// leaves either every value or none. Returns the number of rows updated (a key whose row
    /// was deleted meanwhile updates nothing).
    pub async fn apply_pulled(
        &self,
        table: &str,
        key: &str,
        updates: &[(String, Vec<(String, String)>)],
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut updated = 0;
        for (k, values) in updates {
            if values.is_empty() {
                continue;
            }
            let sets: Vec<String> = values
                .iter()
                .map(|(c, _)| format!("{} = ?", quote(c)))
                .collect();
            let q = format!(
                "UPDATE {} SET {} WHERE {} = ?",
                quote(table),
                sets.join(", "),
                quote(key)
            );
            let mut query = sqlx::query(sql(q));
            for (_, v) in values {
                query = query.bind((!v.is_empty()).then_some(v.as_str()));
            }
            updated += query.bind(k).execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(updated)
    }

    /// Writes CRM ids into `column` of `table` for the given `(key, crm_id)` pairs.
    pub async fn write_back(
        &self,
        table: &str,
        key: &str,
        column: &str,
        pairs: &[(String, String)],
    ) -> Result<(), StoreError> {
        let q = format!(
            "UPDATE {} SET {} = ? WHERE {} = ? AND {} IS NOT ?",
            quote(table),
            quote(column),
            quote(key),
            quote(column)
        );
        let mut tx = self.pool.begin().await?;
        for (k, id) in pairs {
            sqlx::query(sql(q.clone()))
                .bind(id)
                .bind(k)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn trigger_name(table: &str, suffix: &str) -> String {
    format!("_crmsync_{table}_{suffix}")
}
