//! [`Source`] on SQLite: reading mapped columns as text (`CAST(... AS TEXT)`, checked: a value
//! that is not UTF-8 is reported with its column), keyset paging, and compare-and-set writes.
//! The user's tables are never altered.

use super::KEYS_PER_STATEMENT;
use super::decode::{app_text, get};
use crate::Source;
use crate::backend::Backend;
use crate::error::StoreError;
use crate::ident::{marks, quote, quote_table, sql};
use crate::model::*;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow};
use std::str::FromStr;
use std::time::Duration;

/// The app database in a SQLite file.
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
            .map_err(open_err)?;
        Ok(SqliteSource { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn select(table: &str, key: &str, columns: &[&str]) -> String {
        let mut s = format!("SELECT CAST({} AS TEXT)", quote(key));
        for c in columns {
            s.push_str(&format!(", CAST({} AS TEXT)", quote(c)));
        }
        s.push_str(&format!(" FROM {}", quote_table(table, quote)));
        s
    }

    /// Rows as read by [`Self::select`]: a row whose key is NULL or unreadable cannot be
    /// addressed and is left out (with a warning); unreadable values are reported per row.
    fn to_rows(table: &str, rows: Vec<SqliteRow>, columns: &[&str]) -> Vec<SourceRow> {
        rows.into_iter()
            .filter_map(|r| {
                let key = match app_text(&r, 0) {
                    Ok(Some(k)) => k,
                    Ok(None) => return None,
                    Err(why) => {
                        tracing::warn!(table, "a row's key {why}; the row is skipped");
                        return None;
                    }
                };
                let mut row = SourceRow::new(key, Default::default());
                for (i, c) in columns.iter().enumerate() {
                    match app_text(&r, i + 1) {
                        Ok(v) => {
                            row.values.insert(c.to_string(), v);
                        }
                        Err(why) => row.unreadable.push((c.to_string(), why)),
                    }
                }
                Some(row)
            })
            .collect()
    }

    /// `(schema, table)` for the pragma functions: `main` unless qualified.
    fn schema_and_name(table: &str) -> (&str, &str) {
        match table.split_once('.') {
            Some((s, t)) if !s.is_empty() && !t.is_empty() => (s, t),
            _ => ("main", table),
        }
    }
}

impl Source for SqliteSource {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn describe(&self, table: &str) -> Result<TableInfo, StoreError> {
        let (schema, name) = Self::schema_and_name(table);
        let kind: Option<String> = sqlx::query_scalar(sql(format!(
            "SELECT type FROM {}.sqlite_master WHERE name = ? AND type IN ('table', 'view')",
            quote(schema)
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        let Some(kind) = kind else {
            return Err(StoreError::Schema(format!(
                "the source database has no table `{table}`"
            )));
        };
        // `hidden` is 2 or 3 for generated columns.
        let rows = sqlx::query(
            "SELECT name, type, \"notnull\", dflt_value IS NOT NULL, pk, hidden FROM pragma_table_xinfo(?, ?)",
        )
        .bind(name)
        .bind(schema)
        .fetch_all(&self.pool)
        .await?;
        let t = "pragma_table_xinfo";
        let mut columns = Vec::with_capacity(rows.len());
        for r in &rows {
            let data_type: String = get(r, 1, t)?;
            let pk: i64 = get(r, 4, t)?;
            let hidden: i64 = get(r, 5, t)?;
            columns.push(ColumnInfo {
                name: get(r, 0, t)?,
                // An INTEGER PRIMARY KEY is the rowid: filled by SQLite when not given.
                has_default: get::<bool>(r, 3, t)?
                    || (pk == 1 && data_type.eq_ignore_ascii_case("integer")),
                nullable: get::<i64>(r, 2, t)? == 0,
                generated: hidden == 2 || hidden == 3,
                primary_key: pk > 0,
                data_type,
            });
        }
        Ok(TableInfo {
            name: table.to_string(),
            kind: if kind == "view" {
                TableKind::View
            } else {
                TableKind::Table
            },
            columns,
        })
    }

    async fn count(&self, table: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(sql(format!(
            "SELECT COUNT(*) FROM {}",
            quote_table(table, quote)
        )))
        .fetch_one(&self.pool)
        .await?)
    }

    async fn scan_page(
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
        let rows = query
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        Ok(Self::to_rows(table, rows, columns))
    }

    async fn fetch(
        &self,
        table: &str,
        key: &str,
        columns: &[&str],
        keys: &[String],
    ) -> Result<Vec<SourceRow>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(KEYS_PER_STATEMENT) {
            // No CAST on the key: SQLite's column affinity converts the text parameters, so an
            // INTEGER primary key still uses its index.
            let q = format!(
                "{} WHERE {} IN ({})",
                Self::select(table, key, columns),
                quote(key),
                marks(chunk.len())
            );
            let mut query = sqlx::query(sql(q));
            for k in chunk {
                query = query.bind(k);
            }
            out.extend(Self::to_rows(
                table,
                query.fetch_all(&self.pool).await?,
                columns,
            ));
        }
        Ok(out)
    }

    async fn updated_page(&self, p: &UpdatedPage<'_>) -> Result<Vec<SourceRow>, StoreError> {
        let mut q = Self::select(p.table, p.key, p.columns);
        let (ts, k) = (quote(p.ts_column), quote(p.key));
        match (p.after, p.since) {
            (Some(_), _) => q.push_str(&format!(" WHERE ({ts}, {k}) > (?, ?)")),
            (None, Some(_)) => q.push_str(&format!(" WHERE {ts} >= ?")),
            (None, None) => {}
        }
        q.push_str(&format!(" ORDER BY {ts}, {k} LIMIT ?"));
        let mut query = sqlx::query(sql(q));
        match (p.after, p.since) {
            (Some((t, key_value)), _) => query = query.bind(t).bind(key_value),
            (None, Some(s)) => query = query.bind(s),
            (None, None) => {}
        }
        let rows = query
            .bind(i64::try_from(p.limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        Ok(Self::to_rows(p.table, rows, p.columns))
    }

    async fn updated_frontier(
        &self,
        table: &str,
        ts_column: &str,
    ) -> Result<Option<String>, StoreError> {
        // One writer at a time: what is visible now is all that committed.
        let row = sqlx::query(sql(format!(
            "SELECT CAST(MAX({}) AS TEXT) FROM {}",
            quote(ts_column),
            quote_table(table, quote)
        )))
        .fetch_one(&self.pool)
        .await?;
        app_text(&row, 0).map_err(|why| {
            StoreError::Schema(format!(
                "the largest `{ts_column}` of `{table}` {why}; capture = \"updated_at\" needs a readable timestamp column"
            ))
        })
    }

    async fn write(
        &self,
        table: &str,
        key: &str,
        writes: &[RowWrite],
    ) -> Result<Vec<String>, StoreError> {
        let mut written = Vec::new();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for w in writes {
            if w.set.is_empty() {
                continue;
            }
            let sets: Vec<String> = w
                .set
                .iter()
                .map(|(c, _)| format!("{} = ?", quote(c)))
                .collect();
            // `IS NOT` takes the column's affinity, so '5' and 5 are the same value.
            let differs: Vec<String> = w
                .set
                .iter()
                .map(|(c, _)| format!("{} IS NOT ?", quote(c)))
                .collect();
            let mut q = format!(
                "UPDATE {} SET {} WHERE {} = ? AND ({})",
                quote_table(table, quote),
                sets.join(", "),
                quote(key),
                differs.join(" OR ")
            );
            for (c, _) in &w.expect {
                q.push_str(&format!(" AND CAST({} AS TEXT) IS ?", quote(c)));
            }
            let mut query = sqlx::query(sql(q));
            for (_, v) in &w.set {
                query = query.bind(v.as_deref());
            }
            query = query.bind(&w.key);
            for (_, v) in &w.set {
                query = query.bind(v.as_deref());
            }
            for (_, v) in &w.expect {
                query = query.bind(v.as_deref());
            }
            if query.execute(&mut *tx).await?.rows_affected() > 0 {
                written.push(w.key.clone());
                continue;
            }
            // Nothing written: fine if the row already holds the values (and the expectation).
            let mut check = format!(
                "SELECT 1 FROM {} WHERE {} = ?",
                quote_table(table, quote),
                quote(key)
            );
            for (c, _) in &w.set {
                check.push_str(&format!(" AND {} IS ?", quote(c)));
            }
            for (c, _) in &w.expect {
                check.push_str(&format!(" AND CAST({} AS TEXT) IS ?", quote(c)));
            }
            let mut query = sqlx::query(sql(check)).bind(&w.key);
            for (_, v) in w.set.iter().chain(&w.expect) {
                query = query.bind(v.as_deref());
            }
            if query.fetch_optional(&mut *tx).await?.is_some() {
                written.push(w.key.clone());
            }
        }
        tx.commit().await?;
        Ok(written)
    }

    async fn keys_by(
        &self,
        table: &str,
        key: &str,
        column: &str,
        values: &[String],
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        let mut out = std::collections::HashMap::new();
        for chunk in values.chunks(KEYS_PER_STATEMENT) {
            // Parameters take the column's affinity, as in `fetch`.
            let q = format!(
                "SELECT CAST({} AS TEXT), CAST({c} AS TEXT) FROM {} WHERE {c} IN ({})",
                quote(key),
                quote_table(table, quote),
                marks(chunk.len()),
                c = quote(column),
            );
            let mut query = sqlx::query(sql(q));
            for v in chunk {
                query = query.bind(v);
            }
            for r in query.fetch_all(&self.pool).await? {
                if let (Ok(Some(k)), Ok(Some(v))) = (app_text(&r, 0), app_text(&r, 1)) {
                    out.insert(v, k);
                }
            }
        }
        Ok(out)
    }

    async fn insert(&self, table: &str, key: &str, row: &NewRow) -> Result<Inserted, StoreError> {
        let tname = quote_table(table, quote);
        let read_key = format!("CAST({} AS TEXT)", quote(key));
        // The write lock from the first statement: the look and the insert are one step.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if let Some((column, value)) = &row.unless {
            // A parameter takes the column's affinity: '42' finds 42 in an INTEGER column.
            let look = format!(
                "SELECT {read_key} FROM {tname} WHERE {} = ? LIMIT 1",
                quote(column)
            );
            let found = sqlx::query(sql(look))
                .bind(value)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(r) = found
                && let Ok(Some(k)) = app_text(&r, 0)
            {
                tx.rollback().await?;
                return Ok(Inserted::Exists(k));
            }
        }
        let declared = if row.now.is_empty() {
            Vec::new()
        } else {
            let (schema, name) = Self::schema_and_name(table);
            let rows = sqlx::query("SELECT name, type FROM pragma_table_xinfo(?, ?)")
                .bind(name)
                .bind(schema)
                .fetch_all(&mut *tx)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push((
                    get::<String>(r, 0, "pragma_table_xinfo")?,
                    get::<String>(r, 1, "pragma_table_xinfo")?,
                ));
            }
            out
        };
        let mut columns = Vec::new();
        let mut exprs = Vec::new();
        for (c, _) in &row.values {
            columns.push(quote(c));
            exprs.push("?".to_string());
        }
        for c in &row.now {
            let t = declared
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(c))
                .map_or("", |(_, t)| t.as_str());
            columns.push(quote(c));
            exprs.push(now_expr(t).to_string());
        }
        let q = if columns.is_empty() {
            format!("INSERT INTO {tname} DEFAULT VALUES RETURNING {read_key}")
        } else {
            format!(
                "INSERT INTO {tname} ({}) VALUES ({}) RETURNING {read_key}",
                columns.join(", "),
                exprs.join(", ")
            )
        };
        let mut query = sqlx::query(sql(q));
        for (_, v) in &row.values {
            query = query.bind(v.as_deref());
        }
        let inserted = match query.fetch_one(&mut *tx).await {
            Ok(r) => r,
            Err(e) => {
                return match refusal(&e) {
                    Some(why) => {
                        tx.rollback().await?;
                        Ok(Inserted::Refused(why))
                    }
                    None => Err(e.into()),
                };
            }
        };
        match app_text(&inserted, 0) {
            Ok(Some(k)) => {
                tx.commit().await?;
                Ok(Inserted::Row(k))
            }
            // A key SQLite lets be NULL (a non-INTEGER primary key without a value): the row
            // could never be addressed, so it is not kept.
            _ => {
                tx.rollback().await?;
                Ok(Inserted::Refused(format!(
                    "the new row got no key in `{key}`: the key column needs a value the database assigns (INTEGER PRIMARY KEY, or a default)"
                )))
            }
        }
    }

    async fn identity(&self) -> Result<String, StoreError> {
        let row = sqlx::query("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_one(&self.pool)
            .await?;
        let file: String = get(&row, 0, "pragma_database_list")?;
        Ok(format!("sqlite:{file}"))
    }
}

/// The database's current time in the form a column of `declared` type holds (SQLite's type
/// affinity rules: `INT` anywhere makes an integer column; see [`Source::insert`]). `'now'` is
/// the same instant for every use within one statement.
fn now_expr(declared: &str) -> &'static str {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") {
        "CAST(strftime('%s', 'now') AS INTEGER)"
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        "((julianday('now') - 2440587.5) * 86400.0)"
    } else if t.trim() == "DATE" {
        "date('now')"
    } else {
        "strftime('%Y-%m-%d %H:%M:%f', 'now')"
    }
}

/// The database's reason when `e` is SQLite refusing a row for its content: a constraint
/// (NOT NULL, UNIQUE, CHECK, FOREIGN KEY, a trigger's `RAISE`) or a datatype mismatch (STRICT
/// tables). `None` for anything else.
fn refusal(e: &sqlx::Error) -> Option<String> {
    let sqlx::Error::Database(db) = e else {
        return None;
    };
    let code: i64 = db.code()?.parse().ok()?;
    // The primary result code is the low byte of an extended one.
    matches!(code & 0xff, 19 | 20).then(|| db.message().to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn now_follows_the_declared_types_affinity() {
        use super::now_expr;
        assert!(now_expr("INTEGER").contains("'%s'"));
        assert!(now_expr("bigint").contains("'%s'"));
        assert!(now_expr("REAL").contains("julianday"));
        assert_eq!(now_expr("date"), "date('now')");
        for text in ["datetime(6)", "TIMESTAMP", "TEXT", ""] {
            assert!(now_expr(text).contains("%H:%M:%f"), "{text}");
        }
    }
}
