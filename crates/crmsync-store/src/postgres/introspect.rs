//! [`Introspect`] on PostgreSQL: relations of the schema unqualified names resolve to (the
//! source's [`PgSource::log_schema`]), foreign keys from `pg_constraint`, enum labels from
//! `pg_enum`, and distinct values read as text under the same session settings as every app
//! value. Catalog rows that do not decode are [`StoreError::Corrupt`], never a panic.

use super::source::{PgSource, app_text, catalog, no_table};
use crate::error::StoreError;
use crate::ident::{quote, quote_table, sql};
use crate::model::{DistinctValues, ForeignKey};
use crate::{Introspect, bounded_values, hidden_relation};
use std::collections::BTreeMap;

impl PgSource {
    /// A [`StoreError::Schema`] unless `table` resolves to a relation.
    async fn require_table(&self, table: &str) -> Result<(), StoreError> {
        let found: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(quote_table(table, quote))
            .fetch_one(self.pool())
            .await?;
        if found { Ok(()) } else { Err(no_table(table)) }
    }
}

impl Introspect for PgSource {
    async fn tables(&self) -> Result<Vec<String>, StoreError> {
        // Tables, partitioned tables, foreign tables, views and materialized views; a
        // partition is read through its parent.
        let rows = sqlx::query(
            "SELECT c.relname::text
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'f', 'v', 'm') AND NOT c.relispartition",
        )
        .bind(self.log_schema())
        .fetch_all(self.pool())
        .await?;
        let mut names = Vec::with_capacity(rows.len());
        for r in &rows {
            let name: String = catalog(r, 0, "pg_class", "relname")?;
            if !hidden_relation(&name) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    async fn foreign_keys(&self, table: &str) -> Result<Vec<ForeignKey>, StoreError> {
        self.require_table(table).await?;
        // One row per column pair of each key, in the key's column order.
        let rows = sqlx::query(
            "SELECT con.oid::int8, a.attname::text, ra.attname::text,
                    CASE WHEN rn.nspname = $2 THEN rc.relname::text
                         ELSE rn.nspname::text || '.' || rc.relname::text END
             FROM pg_catalog.pg_constraint con
             CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(attnum, fattnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
             JOIN pg_catalog.pg_attribute ra ON ra.attrelid = con.confrelid AND ra.attnum = k.fattnum
             JOIN pg_catalog.pg_class rc ON rc.oid = con.confrelid
             JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
             WHERE con.contype = 'f' AND con.conrelid = to_regclass($1)
             ORDER BY con.oid, k.ord",
        )
        .bind(quote_table(table, quote))
        .bind(self.log_schema())
        .fetch_all(self.pool())
        .await?;
        let t = "pg_constraint";
        let mut by_key: BTreeMap<i64, ForeignKey> = BTreeMap::new();
        for r in &rows {
            let oid: i64 = catalog(r, 0, t, "oid")?;
            let target: String = catalog(r, 3, "pg_class", "relname")?;
            let key = by_key.entry(oid).or_insert_with(|| ForeignKey {
                columns: Vec::new(),
                table: target,
                referenced: Vec::new(),
            });
            key.columns.push(catalog(r, 1, "pg_attribute", "attname")?);
            key.referenced
                .push(catalog(r, 2, "pg_attribute", "attname")?);
        }
        let mut out: Vec<ForeignKey> = by_key.into_values().collect();
        out.sort();
        Ok(out)
    }

    async fn declared_values(
        &self,
        table: &str,
    ) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        self.require_table(table).await?;
        let rows = sqlx::query(
            "SELECT a.attname::text, e.enumlabel::text
             FROM pg_catalog.pg_attribute a
             JOIN pg_catalog.pg_enum e ON e.enumtypid = a.atttypid
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum, e.enumsortorder",
        )
        .bind(quote_table(table, quote))
        .fetch_all(self.pool())
        .await?;
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in &rows {
            let column: String = catalog(r, 0, "pg_attribute", "attname")?;
            let label: String = catalog(r, 1, "pg_enum", "enumlabel")?;
            out.entry(column).or_default().push(label);
        }
        Ok(out)
    }

    async fn distinct_values(
        &self,
        table: &str,
        column: &str,
        limit: usize,
    ) -> Result<DistinctValues, StoreError> {
        self.require_table(table).await?;
        let rows = sqlx::query(sql(format!(
            "SELECT DISTINCT {} FROM {} WHERE {} IS NOT NULL ORDER BY 1 LIMIT $1",
            self.read_expr(column),
            quote_table(table, quote),
            quote(column)
        )))
        .bind(i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await?;
        let values = rows
            .iter()
            .filter_map(|r| app_text(r, 0).ok().flatten())
            .collect();
        Ok(bounded_values(values, limit))
    }
}
