//! [`Capture`] on SQLite: triggers log into [`crate::CHANGE_LOG`]. SQLite has one writer at a
//! time and `seq` is assigned inside the writing transaction, so `seq` order is commit order
//! and the cursor is simply the last `seq` read. SQLite cannot notify another process:
//! [`Capture::subscribe`] answers `None` and the engine polls the log (one indexed query).

use super::decode::get;
use super::source::SqliteSource;
use crate::CHANGE_LOG;
use crate::Capture;
use crate::error::StoreError;
use crate::ident::{literal, quote, quote_table, sql};

fn trigger_name(table: &str, suffix: &str) -> String {
    format!("_crmsync_{}_{suffix}", table.replace('.', "_"))
}

/// A cursor as a sequence number; anything unreadable starts from the beginning (re-reading
/// is free, skipping is not).
fn seq_of(cursor: Option<&str>) -> i64 {
    cursor.and_then(|c| c.trim().parse().ok()).unwrap_or(0)
}

impl SqliteSource {
    async fn has_change_log(&self) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
        )
        .bind(CHANGE_LOG)
        .fetch_one(self.pool())
        .await?;
        Ok(n > 0)
    }
}

impl Capture for SqliteSource {
    async fn capture_installed(&self, table: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND name = ?",
        )
        .bind(trigger_name(table, "ins"))
        .fetch_one(self.pool())
        .await?;
        Ok(n > 0)
    }

    async fn install_capture(
        &self,
        table: &str,
        key: &str,
        watched: &[&str],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let log = quote(CHANGE_LOG);
        sqlx::query(sql(format!(
            "CREATE TABLE IF NOT EXISTS {log} (
               seq INTEGER PRIMARY KEY AUTOINCREMENT,
               table_name TEXT NOT NULL,
               row_key TEXT NOT NULL,
               op TEXT NOT NULL,
               changed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
        )))
        .execute(&mut *tx)
        .await?;
        sqlx::query(sql(format!(
            "CREATE INDEX IF NOT EXISTS {} ON {log} (table_name, seq)",
            quote(&format!("{CHANGE_LOG}_table"))
        )))
        .execute(&mut *tx)
        .await?;
        let tname = quote_table(table, quote);
        let k = quote(key);
        let lit = literal(table);
        // Without watched columns (a sync of constants) every update is a change.
        let update_of = if watched.is_empty() {
            String::new()
        } else {
            let cols: Vec<String> = watched.iter().map(|c| quote(c)).collect();
            format!(" OF {}", cols.join(", "))
        };
        // Only a value that really changed is logged: `UPDATE OF` alone fires on every
        // assignment, including our own no-op writes.
        let changed = if watched.is_empty() {
            "1".to_string()
        } else {
            watched
                .iter()
                .map(|c| format!("OLD.{0} IS NOT NEW.{0}", quote(c)))
                .collect::<Vec<_>>()
                .join(" OR ")
        };
        for (suffix, ddl) in [
            (
                "ins",
                format!(
                    "AFTER INSERT ON {tname} BEGIN INSERT INTO {log} (table_name, row_key, op) VALUES ({lit}, CAST(NEW.{k} AS TEXT), 'insert'); END"
                ),
            ),
            (
                "upd",
                format!(
                    "AFTER UPDATE{update_of} ON {tname} WHEN {changed} BEGIN INSERT INTO {log} (table_name, row_key, op) VALUES ({lit}, CAST(NEW.{k} AS TEXT), 'update'); END"
                ),
            ),
            (
                "del",
                format!(
                    "AFTER DELETE ON {tname} BEGIN INSERT INTO {log} (table_name, row_key, op) VALUES ({lit}, CAST(OLD.{k} AS TEXT), 'delete'); END"
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

    async fn change_position(&self) -> Result<String, StoreError> {
        if !self.has_change_log().await? {
            return Ok("0".into());
        }
        let seq: i64 = sqlx::query_scalar(sql(format!(
            "SELECT COALESCE(MAX(seq), 0) FROM {}",
            quote(CHANGE_LOG)
        )))
        .fetch_one(self.pool())
        .await?;
        Ok(seq.to_string())
    }

    async fn changes_since(
        &self,
        table: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<crate::ChangePage, StoreError> {
        let after = seq_of(cursor);
        if !self.has_change_log().await? {
            return Ok(crate::ChangePage {
                keys: vec![],
                cursor: after.to_string(),
                more: false,
            });
        }
        // Raw log rows in order, at most `limit`: each page costs one index range, however
        // long the backlog; a key logged twice in the page is read once.
        let rows = sqlx::query(sql(format!(
            "SELECT seq, row_key FROM {} WHERE table_name = ? AND seq > ? ORDER BY seq LIMIT ?",
            quote(CHANGE_LOG)
        )))
        .bind(table)
        .bind(after)
        .bind(i64::try_from(limit.max(1)).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await?;
        let more = rows.len() >= limit.max(1);
        let mut last = after;
        let mut seen = std::collections::HashSet::new();
        let mut keys = Vec::new();
        for r in &rows {
            last = get(r, 0, CHANGE_LOG)?;
            let key: String = get(r, 1, CHANGE_LOG)?;
            if seen.insert(key.clone()) {
                keys.push(key);
            }
        }
        Ok(crate::ChangePage {
            keys,
            cursor: last.to_string(),
            more,
        })
    }

    async fn changes_pending(&self, table: &str, cursor: Option<&str>) -> Result<u64, StoreError> {
        if !self.has_change_log().await? {
            return Ok(0);
        }
        let n: i64 = sqlx::query_scalar(sql(format!(
            "SELECT COUNT(DISTINCT row_key) FROM {} WHERE table_name = ? AND seq > ?",
            quote(CHANGE_LOG)
        )))
        .bind(table)
        .bind(seq_of(cursor))
        .fetch_one(self.pool())
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn earliest_cursor(&self, cursors: &[String]) -> Option<String> {
        cursors
            .iter()
            .map(|c| seq_of(Some(c)))
            .min()
            .map(|s| s.to_string())
    }

    async fn prune_changes(&self, table: &str, cursor: &str) -> Result<u64, StoreError> {
        if !self.has_change_log().await? {
            return Ok(0);
        }
        Ok(sqlx::query(sql(format!(
            "DELETE FROM {} WHERE table_name = ? AND seq <= ?",
            quote(CHANGE_LOG)
        )))
        .bind(table)
        .bind(seq_of(Some(cursor)))
        .execute(self.pool())
        .await?
        .rows_affected())
    }

    async fn subscribe(&self) -> Result<Option<tokio::sync::mpsc::Receiver<String>>, StoreError> {
        Ok(None)
    }
}
