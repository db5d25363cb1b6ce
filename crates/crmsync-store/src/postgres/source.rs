//! [`Source`] on PostgreSQL: every value is read as text by a `CAST(... AS text)` in SQL under
//! fixed session settings (so the text is stable whatever the server's defaults), keys are
//! compared in the key column's own type (`CAST($1 AS integer)`, taken from the catalog), and
//! writes are compare-and-set, all rows of a call in one transaction. The user's tables are
//! never altered here.
//!
//! Type names spliced into SQL come from the server's own `format_type()`, which quotes every
//! identifier in them. They are printed as `format_type(oid, -1)`, "no modifier" (`character
//! varying`, not `character varying(20)`): an explicit cast to a modified type truncates
//! silently, and a truncated key could match another row. `-1`, not `NULL`: without a
//! modifier `format_type` prints `character` and `bit`, which a cast reads as `char(1)` and
//! `bit(1)` (`CAST('ab' AS character)` is `'a'`); with `-1` it prints `bpchar` and `"bit"`.

use crate::Source;
use crate::backend::{Backend, redact_url};
use crate::error::StoreError;
use crate::ident::{quote, quote_table, sql};
use crate::model::*;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow, PgValueFormat};
use sqlx::{PgPool, Row, ValueRef};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Keys per `= ANY(...)` array: one statement stays small and quick to plan.
const KEYS_PER_STATEMENT: usize = 1000;

/// Type oids `updated_frontier` can compare with a transaction's start time.
const DATE_OID: i64 = 1082;
const TIMESTAMP_OID: i64 = 1114;
const TIMESTAMPTZ_OID: i64 = 1184;

/// The app database on a PostgreSQL server. Cheap to clone (clones share the pool and the
/// type cache).
#[derive(Debug, Clone)]
pub struct PgSource {
    pool: PgPool,
    meta: Arc<Meta>,
}

/// What a source learns once and shares between its clones.
#[derive(Debug)]
struct Meta {
    /// The options every pooled connection was opened with (the listener opens its own).
    options: PgConnectOptions,
    /// Where crmsync's change log and trigger function live: the schema unqualified names
    /// resolved to when the source was opened (`current_schema()`), `public` when the
    /// `search_path` names no existing schema.
    log_schema: String,
    /// The database is `SQL_ASCII`, which stores any bytes: converting them to the UTF-8 the
    /// connection speaks fails the whole statement at the first byte that is not UTF-8, so
    /// values are fetched as their raw bytes (`convert_to(..., 'SQL_ASCII')` returns them
    /// unconverted) and checked here, one value at a time. Other encodings convert to UTF-8
    /// faithfully, and are read as text.
    raw_bytes: bool,
    /// Column types per table as the config spells it, read from the catalog once. A column
    /// retyped while crmsync runs is seen after a restart (or when a column is missing).
    types: Mutex<HashMap<String, Arc<TableTypes>>>,
    /// Per captured table, the type its logged keys are read back through (see
    /// `capture.rs`), `None` when the logged text is already the key's text.
    key_casts: Mutex<HashMap<String, Option<String>>>,
    /// Whether the "cannot see other sessions" warning was given (once per source).
    warned_hidden: AtomicBool,
    /// Whether the "not a timestamp column" warning was given (once per source).
    warned_type: AtomicBool,
}

/// One column's type as the catalog states it.
#[derive(Debug, Clone)]
pub(crate) struct ColumnType {
    /// `format_type(atttypid, -1)`: the type to cast bound text to (see the file's doc).
    pub(crate) cast: String,
    /// `format_type(atttypid, atttypmod)`: the type as declared, modifier included.
    pub(crate) declared: String,
    /// The type's oid, or its base type's for a domain.
    pub(crate) base_oid: i64,
}

pub(crate) type TableTypes = HashMap<String, ColumnType>;

/// Session settings of every connection, so that values read as text are stable: timestamps
/// with time zone in UTC, ISO dates, ISO 8601 intervals (`P1D`, not `1 day`).
/// `extra_float_digits` (1: the shortest text that reads back as the same float) is set
/// through its own startup parameter, which sqlx always sends and which would override an
/// `options` entry.
const SESSION: [(&str, &str); 3] = [
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, MDY"),
    ("IntervalStyle", "iso_8601"),
];

impl PgSource {
    /// Opens the app database at `url` (a `postgres://` URL). Never creates a database: one
    /// that does not exist is an [`StoreError::Open`] error, as is an unreachable server.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            what: "source",
            url: redact_url(url),
            source,
        };
        let mut options = PgConnectOptions::from_str(url)
            .map_err(open_err)?
            .options(SESSION)
            .extra_float_digits(1);
        if options.get_application_name().is_none() {
            options = options.application_name("crmsync");
        }
        let pool = match PgPoolOptions::new()
            .max_connections(4)
            .connect_with(options.clone())
            .await
        {
            Ok(pool) => pool,
            // The pool retries until its timeout and then reports only that: one direct
            // attempt says why (connection refused, authentication failed, no such database).
            Err(sqlx::Error::PoolTimedOut) => {
                let cause =
                    match <sqlx::PgConnection as sqlx::Connection>::connect_with(&options).await {
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
        let row = sqlx::query(
            "SELECT current_schema()::text, current_setting('server_encoding') = 'SQL_ASCII'",
        )
        .fetch_one(&pool)
        .await?;
        let schema: Option<String> = catalog(&row, 0, "pg_namespace", "current_schema")?;
        let raw_bytes: bool = catalog(&row, 1, "pg_settings", "server_encoding")?;
        Ok(PgSource {
            pool,
            meta: Arc::new(Meta {
                options,
                log_schema: schema.unwrap_or_else(|| "public".to_string()),
                raw_bytes,
                types: Mutex::new(HashMap::new()),
                key_casts: Mutex::new(HashMap::new()),
                warned_hidden: AtomicBool::new(false),
                warned_type: AtomicBool::new(false),
            }),
        })
    }

    /// The underlying pool (for tests and diagnostics).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema holding the change log (see the field's doc).
    pub fn log_schema(&self) -> &str {
        &self.meta.log_schema
    }

    pub(crate) fn connect_options(&self) -> &PgConnectOptions {
        &self.meta.options
    }

    /// The types of `table`'s columns, from the cache or the catalog; `reload` reads the
    /// catalog again. A [`StoreError::Schema`] when the table does not exist.
    async fn table_types(&self, table: &str, reload: bool) -> Result<Arc<TableTypes>, StoreError> {
        if !reload && let Some(t) = self.lock_types().get(table) {
            return Ok(t.clone());
        }
        let rows = sqlx::query(
            "SELECT a.attname::text, format_type(a.atttypid, -1),
                    (CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END)::int8,
                    format_type(a.atttypid, a.atttypmod)
             FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
        )
        .bind(quote_table(table, quote))
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Err(no_table(table));
        }
        let mut types = TableTypes::new();
        for r in &rows {
            let name: String = catalog(r, 0, "pg_attribute", "attname")?;
            types.insert(
                name,
                ColumnType {
                    cast: catalog(r, 1, "pg_attribute", "format_type")?,
                    base_oid: catalog(r, 2, "pg_type", "oid")?,
                    declared: catalog(r, 3, "pg_attribute", "format_type")?,
                },
            );
        }
        let types = Arc::new(types);
        self.lock_types().insert(table.to_string(), types.clone());
        Ok(types)
    }

    /// The cache of logged keys' types (see [`Meta::key_casts`]).
    pub(crate) fn key_casts(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<String>>> {
        // As for the types: one insert or remove at a time, so a poisoned map is still whole.
        self.meta
            .key_casts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn lock_types(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<TableTypes>>> {
        // A panic while holding this lock cannot leave the map half-written (one insert), so
        // a poisoned lock is still a good cache.
        self.meta.types.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The types of `columns` of `table`, in order. A column the cache lacks makes it read
    /// the catalog again (it may have been added since); still missing, a
    /// [`StoreError::Schema`] naming it.
    pub(crate) async fn column_types(
        &self,
        table: &str,
        columns: &[&str],
    ) -> Result<Vec<ColumnType>, StoreError> {
        let mut types = self.table_types(table, false).await?;
        if columns.iter().any(|c| !types.contains_key(*c)) {
            types = self.table_types(table, true).await?;
        }
        columns
            .iter()
            .map(|c| {
                types.get(*c).cloned().ok_or_else(|| {
                    StoreError::Schema(format!("the source table `{table}` has no column `{c}`"))
                })
            })
            .collect()
    }

    /// `SELECT key, columns... FROM table`, each value as text (or its raw bytes, see
    /// [`Meta::raw_bytes`]).
    fn select(&self, table: &str, key: &str, columns: &[&str]) -> String {
        let mut s = format!("SELECT {}", self.read_expr(key));
        for c in columns {
            s.push_str(&format!(", {}", self.read_expr(c)));
        }
        s.push_str(&format!(" FROM {}", quote_table(table, quote)));
        s
    }

    /// SQL reading `column` as text (or as its raw bytes, see [`Meta::raw_bytes`]), for
    /// [`app_text`] to decode.
    pub(crate) fn read_expr(&self, column: &str) -> String {
        if self.meta.raw_bytes {
            format!("convert_to(CAST({} AS text), 'SQL_ASCII')", quote(column))
        } else {
            format!("CAST({} AS text)", quote(column))
        }
    }

    /// Rows as read by [`Self::select`]: a row whose key is NULL or unreadable cannot be
    /// addressed and is left out (with a warning); unreadable values are reported per row.
    fn to_rows(table: &str, rows: Vec<PgRow>, columns: &[&str]) -> Vec<SourceRow> {
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
}

/// `column` qualified by its table, for ORDER BY: a bare name there means the *output*
/// column of that name first, and `CAST("id" AS text)` is output as `id`, so `ORDER BY "id"`
/// would sort the text (10 before 9).
fn qualified(table: &str, column: &str) -> String {
    format!("{}.{}", quote_table(table, quote), quote(column))
}

pub(super) fn no_table(table: &str) -> StoreError {
    StoreError::Schema(format!(
        "the source database has no table or view `{table}` (a name without a schema is looked up in the connection's search_path; write `schema.table` otherwise)"
    ))
}

/// Column `i` of a catalog row: the server's own answer, so a value that does not decode is
/// reported as damaged, naming what was read.
pub(super) fn catalog<'r, T>(
    row: &'r PgRow,
    i: usize,
    table: &str,
    column: &str,
) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(i)
        .map_err(|e| StoreError::Corrupt(format!("table `{table}`, column `{column}`: {e}")))
}

/// Column `i` of an app row as text: `Ok(None)` for NULL, `Err(reason)` when its bytes are
/// not UTF-8 (a `SQL_ASCII` database holding other bytes, read as `bytea`) or it cannot be
/// read as text for another reason.
pub(crate) fn app_text(row: &PgRow, i: usize) -> Result<Option<String>, String> {
    if let Ok(v) = row.try_get::<Option<String>, _>(i) {
        return Ok(v);
    }
    // Not text: the raw bytes of a `SQL_ASCII` value (prepared statements return `bytea` in
    // binary format, i.e. the bytes themselves), or something unexpected.
    let raw = row
        .try_get_raw(i)
        .map_err(|e| format!("cannot be read as text: {e}"))?;
    if raw.is_null() {
        return Ok(None);
    }
    if raw.format() != PgValueFormat::Binary {
        return Err("cannot be read as text: it arrived in text format as a non-text type".into());
    }
    let bytes = raw
        .as_bytes()
        .map_err(|e| format!("cannot be read as text: {e}"))?;
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(Some(text.to_string())),
        Err(_) => Err(crate::any::not_utf8(bytes)),
    }
}

/// The database's current time in the form a column of type `t` holds (see
/// [`Source::insert`]). `now()` is the transaction's start, the same for every column of the
/// row; the session's time zone is UTC, so a `timestamp` gets UTC wall-clock time.
fn now_expr(t: &ColumnType) -> String {
    let cast = &t.cast;
    match t.base_oid {
        // int2, int4, int8: Unix seconds.
        20 | 21 | 23 => format!("CAST(floor(extract(epoch FROM now())) AS {cast})"),
        // float4, float8, numeric: Unix seconds with the fraction.
        700 | 701 | 1700 => format!("CAST(extract(epoch FROM now()) AS {cast})"),
        // text, varchar, bpchar, name.
        25 | 1043 | 1042 | 19 => {
            format!("CAST(to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') AS {cast})")
        }
        // timestamp, timestamptz, date, time, timetz, and whatever else takes a timestamp.
        _ => format!("CAST(now() AS {cast})"),
    }
}

/// The database's reason when `e` is PostgreSQL refusing a row for its content: data
/// exceptions (class 22: a value the type does not take, too long, out of range), integrity
/// constraint violations (class 23: NOT NULL, unique, foreign key, check) and an app trigger's
/// `RAISE EXCEPTION` (P0001). `None` for anything else.
fn refusal(e: &sqlx::Error) -> Option<String> {
    let sqlx::Error::Database(db) = e else {
        return None;
    };
    let code = db.code()?;
    (code.starts_with("22") || code.starts_with("23") || code == "P0001")
        .then(|| db.message().to_string())
}

fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl Source for PgSource {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn describe(&self, table: &str) -> Result<TableInfo, StoreError> {
        let kind: Option<String> = sqlx::query_scalar(
            "SELECT c.relkind::text FROM pg_catalog.pg_class c WHERE c.oid = to_regclass($1)",
        )
        .bind(quote_table(table, quote))
        .fetch_optional(&self.pool)
        .await?;
        let kind = match kind.as_deref() {
            None => return Err(no_table(table)),
            // Tables, partitioned tables and foreign tables hold rows; views and
            // materialized views are read the same way but cannot carry triggers.
            Some("r" | "p" | "f") => TableKind::Table,
            Some("v" | "m") => TableKind::View,
            Some(other) => {
                return Err(StoreError::Schema(format!(
                    "`{table}` is not a table or a view (pg_class.relkind `{other}`)"
                )));
            }
        };
        let rows = sqlx::query(
            "SELECT a.attname::text,
                    format_type(a.atttypid, a.atttypmod),
                    a.attnotnull,
                    a.attgenerated <> '',
                    (a.atthasdef AND a.attgenerated = '') OR a.attidentity <> '',
                    EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                            WHERE i.indrelid = a.attrelid AND i.indisprimary
                              AND a.attnum = ANY (i.indkey)),
                    format_type(a.atttypid, -1),
                    (CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END)::int8
             FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum",
        )
        .bind(quote_table(table, quote))
        .fetch_all(&self.pool)
        .await?;
        let t = "pg_attribute";
        let mut columns = Vec::with_capacity(rows.len());
        let mut types = TableTypes::new();
        for r in &rows {
            let name: String = catalog(r, 0, t, "attname")?;
            types.insert(
                name.clone(),
                ColumnType {
                    cast: catalog(r, 6, t, "format_type")?,
                    base_oid: catalog(r, 7, "pg_type", "oid")?,
                    declared: catalog(r, 1, t, "format_type")?,
                },
            );
            columns.push(ColumnInfo {
                name,
                data_type: catalog(r, 1, t, "format_type")?,
                nullable: !catalog::<bool>(r, 2, t, "attnotnull")?,
                generated: catalog(r, 3, t, "attgenerated")?,
                has_default: catalog(r, 4, t, "atthasdef")?,
                primary_key: catalog(r, 5, "pg_index", "indisprimary")?,
            });
        }
        // What describe just read is the freshest view of the types.
        self.lock_types().insert(table.to_string(), Arc::new(types));
        Ok(TableInfo {
            name: table.to_string(),
            kind,
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
        let mut q = self.select(table, key, columns);
        let k = quote(key);
        let ordered = qualified(table, key);
        if after.is_some() {
            // Compared in the key's own type: an integer key pages 9 before 10, and the
            // comparison can use the key's index.
            let kt = &self.column_types(table, &[key]).await?[0].cast;
            q.push_str(&format!(
                " WHERE {k} > CAST($1 AS {kt}) ORDER BY {ordered} LIMIT $2"
            ));
        } else {
            q.push_str(&format!(" ORDER BY {ordered} LIMIT $1"));
        }
        let mut query = sqlx::query(sql(q));
        if let Some(a) = after {
            query = query.bind(a);
        }
        let rows = query.bind(limit_of(limit)).fetch_all(&self.pool).await?;
        Ok(Self::to_rows(table, rows, columns))
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
        let kt = self.column_types(table, &[key]).await?.remove(0).cast;
        // One array parameter per chunk, cast to an array of the key's type: one statement
        // text whatever the number of keys (prepared once), and the key's index is used.
        let q = format!(
            "{} WHERE {} = ANY (CAST($1 AS {kt}[]))",
            self.select(table, key, columns),
            quote(key),
        );
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(KEYS_PER_STATEMENT) {
            let rows = sqlx::query(sql(q.clone()))
                .bind(chunk)
                .fetch_all(&self.pool)
                .await?;
            out.extend(Self::to_rows(table, rows, columns));
        }
        Ok(out)
    }

    async fn updated_page(&self, p: &UpdatedPage<'_>) -> Result<Vec<SourceRow>, StoreError> {
        let types = self.column_types(p.table, &[p.ts_column, p.key]).await?;
        let (tt, kt) = (&types[0].cast, &types[1].cast);
        let mut q = self.select(p.table, p.key, p.columns);
        let (ts, k) = (quote(p.ts_column), quote(p.key));
        let next = match (p.after, p.since) {
            (Some(_), _) => {
                q.push_str(&format!(
                    " WHERE ({ts}, {k}) > (CAST($1 AS {tt}), CAST($2 AS {kt}))"
                ));
                3
            }
            (None, Some(_)) => {
                q.push_str(&format!(" WHERE {ts} >= CAST($1 AS {tt})"));
                2
            }
            (None, None) => 1,
        };
        q.push_str(&format!(
            " ORDER BY {}, {} LIMIT ${next}",
            qualified(p.table, p.ts_column),
            qualified(p.table, p.key)
        ));
        let mut query = sqlx::query(sql(q));
        match (p.after, p.since) {
            (Some((t, key_value)), _) => query = query.bind(t).bind(key_value),
            (None, Some(s)) => query = query.bind(s),
            (None, None) => {}
        }
        let rows = query.bind(limit_of(p.limit)).fetch_all(&self.pool).await?;
        Ok(Self::to_rows(p.table, rows, p.columns))
    }

    async fn updated_frontier(
        &self,
        table: &str,
        ts_column: &str,
    ) -> Result<Option<String>, StoreError> {
        let column = self.column_types(table, &[ts_column]).await?.remove(0);
        let ts = quote(ts_column);
        let tname = quote_table(table, quote);
        // `now()` is the start of its transaction: a transaction open since T writes rows
        // stamped T that become visible only when it commits, possibly after rows stamped
        // later. So the frontier never passes the start of the oldest open transaction of
        // this database (ours excluded). Every open one counts, not only those that wrote
        // already: a transaction that has only read so far may still write rows stamped with
        // its start. A long transaction delays the cursor; it never makes a pass miss a row.
        // A `timestamp` column is compared as UTC (the session time zone), a `date` by the
        // UTC day. The start is cast to the column's declared type, so it is rounded as a
        // stored `now()` is (`timestamp(0)` rounds 10:00:00.3 down to 10:00:00, which a cap
        // of 10:00:00.3 would pass). `hidden` counts sessions of other roles whose transaction start this role
        // may not see (it needs pg_read_all_stats).
        let comparable = matches!(column.base_oid, DATE_OID | TIMESTAMP_OID | TIMESTAMPTZ_OID);
        let frontier = if comparable {
            format!(
                "CASE WHEN m.top IS NULL THEN NULL ELSE LEAST(m.top, CAST(w.oldest AS {})) END",
                column.declared
            )
        } else {
            "m.top".to_string()
        };
        let row = sqlx::query(sql(format!(
            "SELECT CAST({frontier} AS text), w.hidden
             FROM (SELECT MAX({ts}) AS top FROM {tname}) m,
                  (SELECT MIN(xact_start) FILTER (WHERE backend_type = 'client backend'
                                                   AND pid <> pg_backend_pid()) AS oldest,
                          COUNT(*) FILTER (WHERE query = '<insufficient privilege>') AS hidden
                   FROM pg_catalog.pg_stat_activity
                   WHERE datname = current_database()) w"
        )))
        .fetch_one(&self.pool)
        .await?;
        let hidden: i64 = catalog(&row, 1, "pg_stat_activity", "count")?;
        if !comparable && !self.meta.warned_type.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                table,
                column = ts_column,
                "the updated_at column is not a date or timestamp; its frontier cannot be held back by open transactions"
            );
        } else if comparable && hidden > 0 && !self.meta.warned_hidden.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                table,
                hidden,
                "sessions of other roles are hidden from this role, so an open transaction of theirs cannot hold back the updated_at frontier; grant pg_read_all_stats to crmsync's role"
            );
        }
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
        if writes.iter().all(|w| w.set.is_empty()) {
            return Ok(written);
        }
        let tname = quote_table(table, quote);
        let kt = self.column_types(table, &[key]).await?.remove(0).cast;
        let mut tx = self.pool.begin().await?;
        for w in writes {
            if w.set.is_empty() {
                continue;
            }
            let set_cols: Vec<&str> = w.set.iter().map(|(c, _)| c.as_str()).collect();
            let set_types = self.column_types(table, &set_cols).await?;
            // `$1..$n` are the set values (each used twice), then the key, then the expected
            // texts. Values differ when their text differs: a `json` column has no equality
            // operator, and the seam compares text anyway.
            let n = w.set.len();
            let mut sets = Vec::with_capacity(n);
            let mut differs = Vec::with_capacity(n);
            let mut holds = Vec::with_capacity(n);
            for (i, ((c, _), t)) in w.set.iter().zip(&set_types).enumerate() {
                let (col, value) = (quote(c), format!("CAST(${} AS {})", i + 1, t.cast));
                sets.push(format!("{col} = {value}"));
                differs.push(format!(
                    "CAST({col} AS text) IS DISTINCT FROM CAST({value} AS text)"
                ));
                holds.push(format!(
                    " AND CAST({col} AS text) IS NOT DISTINCT FROM CAST({value} AS text)"
                ));
            }
            let expect: String = w
                .expect
                .iter()
                .enumerate()
                .map(|(i, (c, _))| {
                    format!(
                        " AND CAST({} AS text) IS NOT DISTINCT FROM ${}",
                        quote(c),
                        n + 2 + i
                    )
                })
                .collect();
            let key_match = format!("{} = CAST(${} AS {kt})", quote(key), n + 1);
            let update = format!(
                "UPDATE {tname} SET {} WHERE {key_match} AND ({}){expect}",
                sets.join(", "),
                differs.join(" OR ")
            );
            let mut query = sqlx::query(sql(update));
            for (_, v) in &w.set {
                query = query.bind(v.as_deref());
            }
            query = query.bind(&w.key);
            for (_, v) in &w.expect {
                query = query.bind(v.as_deref());
            }
            if query.execute(&mut *tx).await?.rows_affected() > 0 {
                written.push(w.key.clone());
                continue;
            }
            // Nothing written: fine if the row already holds the values (and the expectation).
            let check = format!(
                "SELECT 1 FROM {tname} WHERE {key_match}{}{expect}",
                holds.concat()
            );
            let mut query = sqlx::query(sql(check));
            for (_, v) in &w.set {
                query = query.bind(v.as_deref());
            }
            query = query.bind(&w.key);
            for (_, v) in &w.expect {
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
    ) -> Result<HashMap<String, String>, StoreError> {
        let cast = self.column_types(table, &[column]).await?.remove(0).cast;
        let mut out = HashMap::new();
        for chunk in values.chunks(KEYS_PER_STATEMENT) {
            // Compared in the column's own type (its index is used).
            let q = format!(
                "SELECT CAST({} AS text), CAST({c} AS text) FROM {} WHERE {c} = ANY(CAST($1 AS {cast}[]))",
                quote(key),
                quote_table(table, quote),
                c = quote(column),
            );
            for r in sqlx::query(sql(q))
                .bind(chunk)
                .fetch_all(&self.pool)
                .await?
            {
                if let (Ok(Some(k)), Ok(Some(v))) = (app_text(&r, 0), app_text(&r, 1)) {
                    out.insert(v, k);
                }
            }
        }
        Ok(out)
    }

    async fn insert(&self, table: &str, key: &str, row: &NewRow) -> Result<Inserted, StoreError> {
        let tname = quote_table(table, quote);
        let mut named: Vec<&str> = vec![key];
        named.extend(row.values.iter().map(|(c, _)| c.as_str()));
        named.extend(row.now.iter().map(String::as_str));
        if let Some((c, _)) = &row.unless {
            named.push(c);
        }
        let types = self.column_types(table, &named).await?;
        let read_key = format!("CAST({} AS text)", quote(key));
        let mut tx = self.pool.begin().await?;
        if let Some((column, value)) = &row.unless {
            // Inserters of one value take turns (released at commit or rollback), so the
            // look below and the insert are one step even across workers.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(format!(
                    "crmsync insert\u{1f}{table}\u{1f}{column}\u{1f}{value}"
                ))
                .execute(&mut *tx)
                .await?;
            let cast = &types[named.len() - 1].cast;
            let look = format!(
                "SELECT {read_key} FROM {tname} WHERE {} = CAST($1 AS {cast}) LIMIT 1",
                quote(column)
            );
            match sqlx::query(sql(look))
                .bind(value)
                .fetch_optional(&mut *tx)
                .await
            {
                Ok(Some(r)) => {
                    if let Ok(Some(k)) = app_text(&r, 0) {
                        tx.rollback().await?;
                        return Ok(Inserted::Exists(k));
                    }
                }
                Ok(None) => {}
                // A value the guard column's type does not take could not be inserted either.
                Err(e) => {
                    return match refusal(&e) {
                        Some(why) => {
                            tx.rollback().await?;
                            Ok(Inserted::Refused(why))
                        }
                        None => Err(e.into()),
                    };
                }
            }
        }
        let mut columns = Vec::new();
        let mut exprs = Vec::new();
        for (i, (c, _)) in row.values.iter().enumerate() {
            columns.push(quote(c));
            exprs.push(format!("CAST(${} AS {})", i + 1, types[1 + i].cast));
        }
        for (j, c) in row.now.iter().enumerate() {
            columns.push(quote(c));
            exprs.push(now_expr(&types[1 + row.values.len() + j]));
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
            _ => {
                tx.rollback().await?;
                Ok(Inserted::Refused(format!(
                    "the new row's key `{key}` cannot be read as text"
                )))
            }
        }
    }

    async fn identity(&self) -> Result<String, StoreError> {
        let row = sqlx::query(
            "SELECT has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE'),
                    current_database()::text, COALESCE(current_schema()::text, '')",
        )
        .fetch_one(&self.pool)
        .await?;
        let allowed: bool = catalog(&row, 0, "pg_proc", "has_function_privilege")?;
        let database: String = catalog(&row, 1, "pg_database", "current_database")?;
        let schema: String = catalog(&row, 2, "pg_namespace", "current_schema")?;
        // The cluster's system identifier survives renames, address changes and failover to
        // a physical replica; without the privilege, the address as configured stands in.
        let server = if allowed {
            let id: String =
                sqlx::query_scalar("SELECT system_identifier::text FROM pg_control_system()")
                    .fetch_one(&self.pool)
                    .await?;
            format!("system {id}")
        } else {
            format!(
                "{}:{}",
                self.meta.options.get_host(),
                self.meta.options.get_port()
            )
        };
        // The schema is part of it: two app databases may be two schemas of one database
        // (staging and production side by side), and unqualified tables resolve there.
        Ok(format!("postgres:{server}/{database}/{schema}"))
    }
}
