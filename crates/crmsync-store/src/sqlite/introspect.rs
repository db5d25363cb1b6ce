//! [`Introspect`] on SQLite: tables and views from `sqlite_master`, foreign keys from
//! `pragma_foreign_key_list`, distinct values read as text like every app value. Reads only
//! the `main` schema (the app file itself); SQLite has no enumerated types.

use super::SqliteSource;
use super::decode::{app_text, get};
use crate::error::StoreError;
use crate::ident::{quote, sql};
use crate::model::{DistinctValues, ForeignKey};
use crate::{Introspect, Source, bounded_values, hidden_relation};
use std::collections::BTreeMap;

/// One foreign key as `pragma_foreign_key_list` lists it: the referenced table, our columns,
/// and the referenced columns (`None` where the key names none: the primary key).
type PragmaKey = (String, Vec<String>, Vec<Option<String>>);

impl SqliteSource {
    /// A [`StoreError::Schema`] unless `table` is a table or view of `main`.
    async fn require_table(&self, table: &str) -> Result<(), StoreError> {
        let found: Option<String> = sqlx::query_scalar(
            "SELECT name FROM main.sqlite_master WHERE name = ? AND type IN ('table', 'view')",
        )
        .bind(table)
        .fetch_optional(self.pool())
        .await?;
        match found {
            Some(_) => Ok(()),
            None => Err(StoreError::Schema(format!(
                "the source database has no table `{table}`"
            ))),
        }
    }
}

impl Introspect for SqliteSource {
    async fn tables(&self) -> Result<Vec<String>, StoreError> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM main.sqlite_master WHERE type IN ('table', 'view') ORDER BY name",
        )
        .fetch_all(self.pool())
        .await?;
        let mut names: Vec<String> = names.into_iter().filter(|n| !hidden_relation(n)).collect();
        names.sort();
        Ok(names)
    }

    async fn foreign_keys(&self, table: &str) -> Result<Vec<ForeignKey>, StoreError> {
        self.require_table(table).await?;
        // One row per column of each key (`id` numbers the keys, `seq` the columns); `to` is
        // NULL when the key references the other table's primary key implicitly.
        let rows = sqlx::query(
            "SELECT id, seq, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?) ORDER BY id, seq",
        )
        .bind(table)
        .fetch_all(self.pool())
        .await?;
        let t = "pragma_foreign_key_list";
        let mut by_id: BTreeMap<i64, PragmaKey> = BTreeMap::new();
        for r in &rows {
            let id: i64 = get(r, 0, t)?;
            let entry = by_id
                .entry(id)
                .or_insert_with(|| (String::new(), Vec::new(), Vec::new()));
            entry.0 = get(r, 2, t)?;
            entry.1.push(get(r, 3, t)?);
            entry.2.push(get(r, 4, t)?);
        }
        let mut out = Vec::with_capacity(by_id.len());
        for (_, (target, columns, to)) in by_id {
            let referenced = if to.iter().all(Option::is_some) {
                to.into_iter().flatten().collect()
            } else {
                // `REFERENCES users` without columns: the primary key of `users`, in order.
                match self.describe(&target).await {
                    Ok(info) => info
                        .columns
                        .into_iter()
                        .filter(|c| c.primary_key)
                        .map(|c| c.name)
                        .collect(),
                    // A key pointing at a table that does not exist (SQLite allows it).
                    Err(StoreError::Schema(_)) => Vec::new(),
                    Err(e) => return Err(e),
                }
            };
            out.push(ForeignKey {
                columns,
                table: target,
                referenced,
            });
        }
        out.sort();
        Ok(out)
    }

    async fn declared_values(
        &self,
        table: &str,
    ) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        self.require_table(table).await?;
        Ok(BTreeMap::new())
    }

    async fn distinct_values(
        &self,
        table: &str,
        column: &str,
        limit: usize,
    ) -> Result<DistinctValues, StoreError> {
        self.require_table(table).await?;
        let c = quote(column);
        let rows = sqlx::query(sql(format!(
            "SELECT DISTINCT CAST({c} AS TEXT) FROM main.{} WHERE {c} IS NOT NULL ORDER BY 1 LIMIT ?",
            quote(table)
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
