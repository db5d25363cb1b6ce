//! [`Source`] on MySQL/MariaDB: the user's tables read as text (checked: a value that is not
//! text is reported with its column, see `decode.rs`), keyset paging with keys compared in the
//! key column's own type, compare-and-set writes in one transaction, and the `updated_at`
//! frontier held back by transactions still writing. The user's tables are never altered.
//!
//! Every statement looks the table's columns up in `information_schema.COLUMNS` first (one
//! indexed catalog read per page): the type decides how a column is read and how a parameter
//! is compared with it, and a missing column is a [`StoreError::Schema`] naming it rather than
//! a bare SQL error.

use super::decode::{ColumnMeta, app_text, get};
use super::{KEYS_PER_STATEMENT, SESSION_SETUP, schema_and_name};
use crate::Source;
use crate::backend::{Backend, redact_url};
use crate::error::StoreError;
use crate::ident::{quote_mysql, quote_table, sql};
use crate::model::*;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPoolOptions, MySqlRow};
use sqlx::{Connection, MySqlPool, Row};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The app database on a MySQL or MariaDB server.
#[derive(Debug, Clone)]
pub struct MysqlSource {
    pool: MySqlPool,
    /// For connections of their own, outside the pool (see [`MysqlSource::writer_bound`]);
    /// shared, as the options are large and the source is cloned freely.
    options: Arc<MySqlConnectOptions>,
    /// `DATABASE()` of the URL: where unqualified tables and our change log live.
    pub(crate) database: Option<String>,
}

/// The columns of one table, in declaration order.
pub(crate) struct Columns {
    table: String,
    list: Vec<ColumnMeta>,
}

impl Columns {
    /// The column `name` (MySQL column names are case-insensitive).
    pub(crate) fn get(&self, name: &str) -> Result<&ColumnMeta, StoreError> {
        self.list
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                StoreError::Schema(format!(
                    "the source table `{}` has no column `{name}`",
                    self.table
                ))
            })
    }
}

/// Where a value sits in a row read by [`Select`]: its text, and the round-trip check of a
/// column in a character set that is not UTF-8.
#[derive(Debug, Clone)]
struct Slot {
    value: usize,
    check: Option<(usize, String)>,
}

/// `SELECT <key>, <columns> FROM <table>` with every value read as text.
struct Select {
    sql: String,
    key: Slot,
    columns: Vec<(String, Slot)>,
}

/// The text of one slot, or why it cannot be read.
fn read_slot(row: &MySqlRow, slot: &Slot) -> Result<Option<String>, String> {
    let value = app_text(row, slot.value)?;
    if let Some((i, charset)) = &slot.check {
        match row.try_get::<Option<i64>, _>(*i) {
            Ok(Some(0)) => {
                return Err(format!(
                    "holds bytes that are not valid text in its character set `{charset}`"
                ));
            }
            Ok(_) => {}
            Err(e) => return Err(format!("cannot be checked as text: {e}")),
        }
    }
    Ok(value)
}

impl MysqlSource {
    /// Connects to an existing database (`mysql://` or `mariadb://`; never creates one).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            what: "source",
            url: redact_url(url),
            source,
        };
        // sqlx knows only the `mysql://` spelling; `mariadb://` means the same server protocol.
        let sqlx_url = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("mariadb") => {
                format!("mysql://{rest}")
            }
            _ => url.to_string(),
        };
        let opts = MySqlConnectOptions::from_str(&sqlx_url)
            .map_err(open_err)?
            .pipes_as_concat(false)
            .timezone(Some("+00:00".to_string()));
        let pool = match MySqlPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    sqlx::raw_sql(SESSION_SETUP).execute(&mut *conn).await?;
                    Ok(())
                })
            })
            .connect_with(opts.clone())
            .await
        {
            Ok(pool) => pool,
            // The pool retries until its timeout and then reports only that: one direct
            // attempt says why (connection refused, authentication failed, no such database).
            Err(sqlx::Error::PoolTimedOut) => {
                let cause = match <MySqlConnection as sqlx::Connection>::connect_with(&opts).await {
                    Err(e) => e,
                    Ok(c) => {
                        let _ = sqlx::Connection::close(c).await;
                        sqlx::Error::PoolTimedOut
                    }
                };
                return Err(open_err(cause));
            }
            Err(e) => return Err(open_err(e)),
        };
        let database: Option<String> = sqlx::query_scalar("SELECT CAST(DATABASE() AS CHAR)")
            .fetch_one(&pool)
            .await
            .map_err(open_err)?;
        Ok(MysqlSource {
            pool,
            options: Arc::new(opts),
            database,
        })
    }

    /// The underlying pool (for tests and diagnostics).
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    fn no_table(&self, table: &str) -> StoreError {
        let hint = if self.database.is_none() && !table.contains('.') {
            " (the source URL names no database: qualify the table as `database.table`)"
        } else {
            ""
        };
        StoreError::Schema(format!("the source database has no table `{table}`{hint}"))
    }

    /// The columns of `table` from the catalog; a [`StoreError::Schema`] when it has none
    /// (the table does not exist).
    pub(crate) async fn columns(&self, table: &str) -> Result<Columns, StoreError> {
        let (schema, name) = schema_and_name(table);
        let rows = sqlx::query(
            "SELECT CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR), CAST(COLUMN_TYPE AS CHAR),
                    CAST(CHARACTER_SET_NAME AS CHAR), CAST(CHARACTER_MAXIMUM_LENGTH AS SIGNED),
                    CAST(NUMERIC_PRECISION AS SIGNED), CAST(NUMERIC_SCALE AS SIGNED),
                    CAST(DATETIME_PRECISION AS SIGNED)
             FROM information_schema.COLUMNS
             WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?
             ORDER BY ORDINAL_POSITION",
        )
        .bind(schema)
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        let what = "information_schema.COLUMNS";
        let mut list = Vec::with_capacity(rows.len());
        for r in &rows {
            list.push(ColumnMeta {
                name: get(r, 0, what)?,
                data_type: get::<String>(r, 1, what)?.to_ascii_lowercase(),
                column_type: get::<String>(r, 2, what)?.to_ascii_lowercase(),
                charset: get::<Option<String>>(r, 3, what)?.map(|c| c.to_ascii_lowercase()),
                max_chars: get(r, 4, what)?,
                numeric_precision: get(r, 5, what)?,
                numeric_scale: get(r, 6, what)?,
                datetime_precision: get(r, 7, what)?,
            });
        }
        if list.is_empty() {
            return Err(self.no_table(table));
        }
        Ok(Columns {
            table: table.to_string(),
            list,
        })
    }

    /// The `SELECT` reading `key` and `columns` of `table` as text.
    fn select(
        table: &str,
        meta: &Columns,
        key: &str,
        columns: &[&str],
    ) -> Result<Select, StoreError> {
        let mut exprs: Vec<String> = Vec::with_capacity(columns.len() + 1);
        let mut checks: Vec<String> = Vec::new();
        let mut slot_of = |m: &ColumnMeta, name: &str| {
            let (read, check) = m.read_expr(&quote_mysql(name));
            exprs.push(read);
            let value = exprs.len() - 1;
            let check = check.map(|c| {
                checks.push(c);
                (checks.len() - 1, m.charset.clone().unwrap_or_default())
            });
            (value, check)
        };
        let (kv, kc) = slot_of(meta.get(key)?, key);
        let mut raw = vec![(key.to_string(), kv, kc)];
        for c in columns {
            let (v, ch) = slot_of(meta.get(c)?, c);
            raw.push((c.to_string(), v, ch));
        }
        // Checks come after all values, so their positions are known only now.
        let base = exprs.len();
        let mut slots = raw.into_iter().map(|(name, value, check)| {
            (
                name,
                Slot {
                    value,
                    check: check.map(|(i, cs)| (base + i, cs)),
                },
            )
        });
        let key_slot = slots
            .next()
            .map(|(_, s)| s)
            .ok_or_else(|| StoreError::Schema("no key column".into()))?;
        let columns: Vec<(String, Slot)> = slots.collect();
        exprs.extend(checks);
        Ok(Select {
            sql: format!(
                "SELECT {} FROM {}",
                exprs.join(", "),
                quote_table(table, quote_mysql)
            ),
            key: key_slot,
            columns,
        })
    }

    /// Rows as read by a [`Select`]: a row whose key is NULL or unreadable cannot be addressed
    /// and is left out (with a warning); unreadable values are reported per row.
    fn to_rows(table: &str, select: &Select, rows: Vec<MySqlRow>) -> Vec<SourceRow> {
        rows.into_iter()
            .filter_map(|r| {
                let key = match read_slot(&r, &select.key) {
                    Ok(Some(k)) => k,
                    Ok(None) => return None,
                    Err(why) => {
                        tracing::warn!(table, "a row's key {why}; the row is skipped");
                        return None;
                    }
                };
                let mut row = SourceRow::new(key, Default::default());
                for (name, slot) in &select.columns {
                    match read_slot(&r, slot) {
                        Ok(v) => {
                            row.values.insert(name.clone(), v);
                        }
                        Err(why) => row.unreadable.push((name.clone(), why)),
                    }
                }
                Some(row)
            })
            .collect()
    }

    /// The start of the oldest transaction still writing (one that has modified rows), which
    /// holds the `updated_at` frontier back (see [`Source::updated_frontier`]); `None` when
    /// nothing does. As `(UTC, server local time, Unix seconds)`.
    ///
    /// `innodb_trx` is a copy InnoDB refreshes only when nobody read it for 100 ms, so a read
    /// may see an old copy that lacks recent transactions. We read it inside a transaction of
    /// our own, on a new connection (a thread id no older copy can hold): when that connection
    /// is listed, the copy is newer than our transaction, so it lists every writer that started
    /// before we asked. When it stays unlisted (something else keeps
    /// reading the table), the copy lacks only transactions that started after the newest one
    /// it lists, so that start is a safe bound too. `trx_started` is the server's local time
    /// (InnoDB formats it with `localtime_r`) in whole seconds, rounded down: converted to UTC,
    /// taking the earlier reading of an hour that repeats when clocks go back.
    async fn writer_bound(&self) -> Result<Option<(String, String, i64)>, StoreError> {
        let utc_of = |x: &str| {
            format!(
                "CAST(IF(CONVERT_TZ(CONVERT_TZ({x}, 'SYSTEM', '+00:00') - INTERVAL 1 HOUR, '+00:00', 'SYSTEM') = {x},
                         CONVERT_TZ({x}, 'SYSTEM', '+00:00') - INTERVAL 1 HOUR,
                         CONVERT_TZ({x}, 'SYSTEM', '+00:00')) AS DATETIME(6))"
            )
        };
        let writers = "MIN(CASE WHEN trx_rows_modified > 0 AND trx_mysql_thread_id <> CONNECTION_ID() THEN trx_started END)";
        let probe = format!(
            "SELECT CAST(COALESCE(SUM(trx_mysql_thread_id = CONNECTION_ID()), 0) AS SIGNED),
                    CAST({} AS CHAR),
                    CAST({} AS CHAR)
             FROM information_schema.INNODB_TRX",
            utc_of(writers),
            utc_of("MAX(trx_started)")
        );
        // Not from the pool: a pooled connection's thread id may be in an old copy already.
        // Closed (so rolled back) at the end, or dropped on any error.
        let mut conn = MySqlConnection::connect_with(self.options.as_ref()).await?;
        sqlx::raw_sql(SESSION_SETUP).execute(&mut conn).await?;
        sqlx::raw_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            .execute(&mut conn)
            .await?;
        let what = "information_schema.INNODB_TRX";
        let mut answer = None;
        // A few tries 150 ms apart: each lets a copy older than 100 ms be refreshed.
        for attempt in 0..8 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            let row = sqlx::query(sql(probe.clone()))
                .fetch_one(&mut conn)
                .await
                .map_err(process_privilege)?;
            let listed: i64 = get(&row, 0, what)?;
            let oldest_writer: Option<String> = get(&row, 1, what)?;
            let newest: Option<String> = get(&row, 2, what)?;
            answer = match (listed > 0, newest) {
                (true, _) => Some(oldest_writer),
                // Still an old copy after a few tries: bounded by its newest transaction too.
                (false, Some(newest)) if attempt >= 3 => {
                    Some(oldest_writer.into_iter().chain([newest]).min())
                }
                _ => continue,
            };
            break;
        }
        conn.close().await?;
        let Some(bound) = answer else {
            return Err(StoreError::Busy(
                "information_schema.innodb_trx was not refreshed for a second (something reads it more often than every 100 ms), so the updated_at frontier cannot be computed safely; try again".into(),
            ));
        };
        let Some(utc) = bound else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT CAST(CONVERT_TZ(CAST(? AS DATETIME(6)), '+00:00', 'SYSTEM') AS CHAR),
                    CAST(FLOOR(UNIX_TIMESTAMP(CAST(? AS DATETIME(6)))) AS SIGNED)",
        )
        .bind(&utc)
        .bind(&utc)
        .fetch_one(&self.pool)
        .await?;
        let local: String = get(&row, 0, "CONVERT_TZ")?;
        let unix: i64 = get(&row, 1, "UNIX_TIMESTAMP")?;
        Ok(Some((utc, local, unix)))
    }
}

/// A missing `PROCESS` privilege, said with the fix; other errors as they are.
fn process_privilege(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .is_some_and(|m| m.number() == 1227)
    {
        return StoreError::Schema(format!(
            "the source database user cannot read information_schema.innodb_trx ({}); capture = \"updated_at\" on MySQL needs it to hold the cursor behind transactions still writing: GRANT PROCESS ON *.* TO the crmsync user",
            db.message()
        ));
    }
    StoreError::Sql(e)
}

impl Source for MysqlSource {
    fn backend(&self) -> Backend {
        Backend::Mysql
    }

    async fn describe(&self, table: &str) -> Result<TableInfo, StoreError> {
        let (schema, name) = schema_and_name(table);
        let kind: Option<String> = sqlx::query_scalar(
            "SELECT CAST(TABLE_TYPE AS CHAR) FROM information_schema.TABLES
             WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?",
        )
        .bind(schema)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        let Some(kind) = kind else {
            return Err(self.no_table(table));
        };
        let rows = sqlx::query(
            "SELECT CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR), CAST(IS_NULLABLE AS CHAR),
                    CAST(COLUMN_DEFAULT AS CHAR), CAST(EXTRA AS CHAR), CAST(COLUMN_KEY AS CHAR)
             FROM information_schema.COLUMNS
             WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?
             ORDER BY ORDINAL_POSITION",
        )
        .bind(schema)
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        let what = "information_schema.COLUMNS";
        let mut columns = Vec::with_capacity(rows.len());
        for r in &rows {
            let extra = get::<Option<String>>(r, 4, what)?
                .unwrap_or_default()
                .to_ascii_lowercase();
            // `DEFAULT_GENERATED` (MySQL: an expression default) is a default, not a generated
            // column; MariaDB says `PERSISTENT` for `STORED` in older versions.
            let generated = [
                "virtual generated",
                "stored generated",
                "persistent generated",
            ]
            .iter()
            .any(|g| extra.contains(g));
            // MariaDB spells "no default" of a nullable column as the text `NULL` (a string
            // default is quoted there: `'NULL'`); MySQL as SQL NULL. Both mean none.
            let default = get::<Option<String>>(r, 3, what)?.filter(|d| d != "NULL");
            columns.push(ColumnInfo {
                name: get(r, 0, what)?,
                data_type: get(r, 1, what)?,
                nullable: get::<String>(r, 2, what)?.eq_ignore_ascii_case("yes"),
                generated,
                has_default: default.is_some() || extra.contains("auto_increment"),
                primary_key: get::<Option<String>>(r, 5, what)?.as_deref() == Some("PRI"),
            });
        }
        Ok(TableInfo {
            name: table.to_string(),
            kind: if kind.to_ascii_uppercase().contains("VIEW") {
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
            quote_table(table, quote_mysql)
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
        let meta = self.columns(table).await?;
        let select = Self::select(table, &meta, key, columns)?;
        let k = quote_mysql(key);
        // NULL keys are left out in SQL, not after: a page must hold `limit` addressable rows
        // or be the last one.
        let mut q = format!("{} WHERE {k} IS NOT NULL", select.sql);
        if after.is_some() {
            q.push_str(&format!(" AND {k} > {}", meta.get(key)?.param()));
        }
        q.push_str(&format!(" ORDER BY {k} LIMIT ?"));
        let mut query = sqlx::query(sql(q));
        if let Some(a) = after {
            query = query.bind(a);
        }
        let rows = query
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        Ok(Self::to_rows(table, &select, rows))
    }

    async fn fetch(
        &self,
        table: &str,
        key: &str,
        columns: &[&str],
        keys: &[String],
    ) -> Result<Vec<SourceRow>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let meta = self.columns(table).await?;
        let select = Self::select(table, &meta, key, columns)?;
        let param = meta.get(key)?.param();
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(KEYS_PER_STATEMENT) {
            let list = vec![param.as_str(); chunk.len()].join(", ");
            let q = format!("{} WHERE {} IN ({list})", select.sql, quote_mysql(key));
            let mut query = sqlx::query(sql(q));
            for k in chunk {
                query = query.bind(k);
            }
            out.extend(Self::to_rows(
                table,
                &select,
                query.fetch_all(&self.pool).await?,
            ));
        }
        Ok(out)
    }

    async fn updated_page(&self, p: &UpdatedPage<'_>) -> Result<Vec<SourceRow>, StoreError> {
        let meta = self.columns(p.table).await?;
        let select = Self::select(p.table, &meta, p.key, p.columns)?;
        let (ts, k) = (quote_mysql(p.ts_column), quote_mysql(p.key));
        let (tp, kp) = (meta.get(p.ts_column)?.param(), meta.get(p.key)?.param());
        let mut q = format!("{} WHERE {k} IS NOT NULL", select.sql);
        match (p.after, p.since) {
            // Expanded rather than `(ts, k) > (?, ?)`, which older optimizers do not turn into
            // an index range.
            (Some(_), _) => q.push_str(&format!(
                " AND ({ts} > {tp} OR ({ts} = {tp} AND {k} > {kp}))"
            )),
            (None, Some(_)) => q.push_str(&format!(" AND {ts} >= {tp}")),
            (None, None) => {}
        }
        q.push_str(&format!(" ORDER BY {ts}, {k} LIMIT ?"));
        let mut query = sqlx::query(sql(q));
        match (p.after, p.since) {
            (Some((t, key_value)), _) => query = query.bind(t).bind(t).bind(key_value),
            (None, Some(s)) => query = query.bind(s),
            (None, None) => {}
        }
        let rows = query
            .bind(i64::try_from(p.limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        Ok(Self::to_rows(p.table, &select, rows))
    }

    async fn updated_frontier(
        &self,
        table: &str,
        ts_column: &str,
    ) -> Result<Option<String>, StoreError> {
        let meta = self.columns(table).await?;
        let ts_meta = meta.get(ts_column)?;
        // The bound first, the maximum after: a writer that commits in between is then either
        // seen by the maximum or listed in the bound.
        let bound = self.writer_bound().await?;
        let held = bound.map(|(utc, local, unix)| ts_meta.instant_text(&utc, &local, unix));
        let t = quote_mysql(ts_column);
        let (max_text, _) = ts_meta.read_expr(&format!("MAX({t})"));
        let row = sqlx::query(sql(format!(
            "SELECT {max_text}, CAST(MAX({t}) > {} AS SIGNED) FROM {}",
            ts_meta.param(),
            quote_table(table, quote_mysql)
        )))
        .bind(held.as_deref())
        .fetch_one(&self.pool)
        .await?;
        let max = app_text(&row, 0).map_err(|why| {
            StoreError::Schema(format!(
                "the largest `{ts_column}` of `{table}` {why}; capture = \"updated_at\" needs a readable timestamp column"
            ))
        })?;
        let later: Option<i64> = get(&row, 1, "updated_frontier")?;
        Ok(match (max, later, held) {
            (None, _, _) => None,
            (Some(_), Some(1), Some(h)) => Some(h),
            (Some(m), _, _) => Some(m),
        })
    }

    async fn write(
        &self,
        table: &str,
        key: &str,
        writes: &[RowWrite],
    ) -> Result<Vec<String>, StoreError> {
        if writes.iter().all(|w| w.set.is_empty()) {
            return Ok(Vec::new());
        }
        let meta = self.columns(table).await?;
        let kp = meta.get(key)?.param();
        let (tname, k) = (quote_table(table, quote_mysql), quote_mysql(key));
        let mut written = Vec::new();
        let mut tx = self.pool.begin().await?;
        for w in writes {
            if w.set.is_empty() {
                continue;
            }
            let mut sets = Vec::with_capacity(w.set.len());
            let mut differs = Vec::with_capacity(w.set.len());
            let mut holds = Vec::with_capacity(w.set.len() + w.expect.len());
            for (c, _) in &w.set {
                let m = meta.get(c)?;
                let q = quote_mysql(c);
                sets.push(format!("{q} = ?"));
                // Compared as exact text, not in the column's collation: `abc` -> `ABC` in a
                // case-insensitive column is a change to write.
                differs.push(format!("NOT ({})", m.same_text(&q)));
                holds.push(m.same_text(&q));
            }
            let mut expects = Vec::with_capacity(w.expect.len());
            for (c, _) in &w.expect {
                expects.push(meta.get(c)?.same_text(&quote_mysql(c)));
            }
            holds.extend(expects.iter().cloned());
            let mut q = format!(
                "UPDATE {tname} SET {} WHERE {k} = {kp} AND ({})",
                sets.join(", "),
                differs.join(" OR ")
            );
            for e in &expects {
                q.push_str(&format!(" AND {e}"));
            }
            let mut query = sqlx::query(sql(q));
            for (_, v) in &w.set {
                query = query.bind(v.as_deref());
            }
            query = query.bind(&w.key);
            for (_, v) in w.set.iter().chain(&w.expect) {
                query = query.bind(v.as_deref());
            }
            // sqlx asks for "found rows", so this counts the rows matched: exactly those with
            // a differing value under the expectation.
            if query.execute(&mut *tx).await?.rows_affected() > 0 {
                written.push(w.key.clone());
                continue;
            }
            // Nothing written: fine if the row already holds the values (and the expectation).
            // A locking read, so it sees the row as the update did, not an older snapshot.
            let check = format!(
                "SELECT 1 FROM {tname} WHERE {k} = {kp} AND {} LOCK IN SHARE MODE",
                holds.join(" AND ")
            );
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
        let meta = self.columns(table).await?;
        let (k, c) = (quote_mysql(key), quote_mysql(column));
        let (read_key, _) = meta.get(key)?.read_expr(&k);
        let (read_value, _) = meta.get(column)?.read_expr(&c);
        let param = meta.get(column)?.param();
        let mut out = std::collections::HashMap::new();
        for chunk in values.chunks(KEYS_PER_STATEMENT) {
            let q = format!(
                "SELECT {read_key}, {read_value} FROM {} WHERE {c} IN ({})",
                quote_table(table, quote_mysql),
                vec![param.as_str(); chunk.len()].join(", ")
            );
            let mut query = sqlx::query(sql(q));
            for v in chunk {
                query = query.bind(v);
            }
            for r in query.fetch_all(&self.pool).await? {
                if let (Ok(Some(key_text)), Ok(Some(v))) = (app_text(&r, 0), app_text(&r, 1)) {
                    out.insert(v, key_text);
                }
            }
        }
        Ok(out)
    }

    async fn insert(&self, table: &str, key: &str, row: &NewRow) -> Result<Inserted, StoreError> {
        let meta = self.columns(table).await?;
        let (tname, k) = (quote_table(table, quote_mysql), quote_mysql(key));
        let (read_key, _) = meta.get(key)?.read_expr(&k);
        let mut tx = self.pool.begin().await?;
        // The guard's row, read with a locking read: InnoDB locks what it scanned (and the
        // gaps between), so a second inserter of the same value waits here until this one
        // commits, and then finds the row.
        let look = match &row.unless {
            Some((column, _)) => Some(format!(
                "SELECT {read_key} FROM {tname} WHERE {} = {} LIMIT 1 FOR UPDATE",
                quote_mysql(column),
                meta.get(column)?.param()
            )),
            None => None,
        };
        if let (Some(look), Some((_, value))) = (&look, &row.unless) {
            let found = match sqlx::query(sql(look.clone()))
                .bind(value)
                .fetch_optional(&mut *tx)
                .await
            {
                Ok(found) => found,
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
            if let Some(r) = found
                && let Ok(Some(key_text)) = app_text(&r, 0)
            {
                tx.rollback().await?;
                return Ok(Inserted::Exists(key_text));
            }
        }
        let mut columns = Vec::new();
        let mut exprs = Vec::new();
        for (c, _) in &row.values {
            meta.get(c)?;
            columns.push(quote_mysql(c));
            exprs.push("?".to_string());
        }
        for c in &row.now {
            columns.push(quote_mysql(c));
            exprs.push(now_expr(meta.get(c)?).to_string());
        }
        let q = format!(
            "INSERT INTO {tname} ({}) VALUES ({})",
            columns.join(", "),
            exprs.join(", ")
        );
        let mut query = sqlx::query(sql(q));
        for (_, v) in &row.values {
            query = query.bind(v.as_deref());
        }
        let done = match query.execute(&mut *tx).await {
            Ok(done) => done,
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
        // MySQL has no RETURNING: the AUTO_INCREMENT value, else the key given, else the row
        // found again by the guard.
        let given = row
            .values
            .iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(key))
            .and_then(|(_, v)| v.clone());
        let assigned = match (done.last_insert_id(), given, &look) {
            (id, _, _) if id > 0 => Some(id.to_string()),
            (_, Some(given), _) => Some(given),
            (_, None, Some(look)) => {
                let value = row.unless.as_ref().map(|(_, v)| v.as_str());
                sqlx::query(sql(look.clone()))
                    .bind(value)
                    .fetch_optional(&mut *tx)
                    .await?
                    .and_then(|r| app_text(&r, 0).ok().flatten())
            }
            _ => None,
        };
        match assigned {
            Some(key_text) => {
                tx.commit().await?;
                Ok(Inserted::Row(key_text))
            }
            None => {
                tx.rollback().await?;
                Err(StoreError::Schema(format!(
                    "a row inserted into `{table}` cannot be found again: its key `{key}` is not AUTO_INCREMENT and no guard column was given"
                )))
            }
        }
    }

    async fn identity(&self) -> Result<String, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(@@hostname AS CHAR), CAST(@@port AS SIGNED), CAST(DATABASE() AS CHAR)",
        )
        .fetch_one(&self.pool)
        .await?;
        let host: String = get(&row, 0, "@@hostname")?;
        let port: i64 = get(&row, 1, "@@port")?;
        let db: Option<String> = get(&row, 2, "DATABASE()")?;
        // MySQL has a server UUID that survives renaming the host; MariaDB does not (the
        // variable is unknown there, which is not an error for us).
        let uuid: Option<String> = sqlx::query_scalar("SELECT CAST(@@server_uuid AS CHAR)")
            .fetch_one(&self.pool)
            .await
            .ok()
            .flatten();
        let mut id = format!("mysql://{host}:{port}/{}", db.unwrap_or_default());
        if let Some(u) = uuid {
            id.push_str(&format!("?server_uuid={u}"));
        }
        Ok(id)
    }
}

/// The database's current time in the form a column of `m`'s type holds (see
/// [`Source::insert`]); our sessions run in UTC, so `NOW()` is UTC wall-clock time.
fn now_expr(m: &ColumnMeta) -> &'static str {
    match m.data_type.as_str() {
        "date" => "CURDATE()",
        "time" => "CURTIME(6)",
        "year" => "YEAR(NOW())",
        "decimal" | "numeric" | "float" | "double" | "real" => "UNIX_TIMESTAMP(NOW(6))",
        _ if m.is_integer() => "UNIX_TIMESTAMP()",
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => {
            "DATE_FORMAT(NOW(6), '%Y-%m-%d %H:%i:%s.%f')"
        }
        // datetime, timestamp, and whatever else takes a point in time.
        _ => "NOW(6)",
    }
}

/// The database's reason when `e` is MySQL/MariaDB refusing a row for its content: integrity
/// constraints (SQLSTATE 23000: NULL, duplicate, foreign key; MariaDB's CHECK), data
/// exceptions (22xxx: too long, out of range, a bad date), an app trigger's `SIGNAL` (45000),
/// and the strict-mode errors reported as `HY000` (1364 no default, 1366 an incorrect value,
/// 3819 MySQL's CHECK). `None` for anything else.
fn refusal(e: &sqlx::Error) -> Option<String> {
    let sqlx::Error::Database(db) = e else {
        return None;
    };
    let state = db.code().map(|c| c.to_string()).unwrap_or_default();
    let number = db
        .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .map(|m| m.number());
    let refused = state.starts_with("22")
        || state.starts_with("23")
        || state == "45000"
        || matches!(number, Some(1364 | 1366 | 1292 | 3819 | 4025));
    refused.then(|| db.message().to_string())
}
