//! [`Introspect`] on MySQL/MariaDB: relations of the URL's database, foreign keys from
//! `information_schema.KEY_COLUMN_USAGE`, the labels of `ENUM(...)` columns from their
//! `COLUMN_TYPE`, and distinct values read the way every app value is read (raw bytes checked
//! as UTF-8, see `decode.rs`), so a value the server would have to replace is left out rather
//! than listed wrong.

use super::decode::{app_text, get};
use super::{MysqlSource, schema_and_name};
use crate::error::StoreError;
use crate::ident::{quote_mysql, quote_table, sql};
use crate::model::{DistinctValues, ForeignKey};
use crate::{Introspect, bounded_values, hidden_relation};
use sqlx::Row;
use std::collections::BTreeMap;

impl Introspect for MysqlSource {
    async fn tables(&self) -> Result<Vec<String>, StoreError> {
        let Some(database) = &self.database else {
            return Err(StoreError::Schema(
                "the source URL names no database, so there are no tables to list; write it as mysql://user@host/database".into(),
            ));
        };
        let rows = sqlx::query(
            "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
        )
        .bind(database)
        .fetch_all(self.pool())
        .await?;
        let mut names = Vec::with_capacity(rows.len());
        for r in &rows {
            let name: String = get(r, 0, "information_schema.TABLES")?;
            if !hidden_relation(&name) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    async fn foreign_keys(&self, table: &str) -> Result<Vec<ForeignKey>, StoreError> {
        // Checks that the table exists (a Schema error naming it otherwise).
        self.columns(table).await?;
        let (schema, name) = schema_and_name(table);
        let rows = sqlx::query(
            "SELECT CAST(CONSTRAINT_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR),
                    CAST(REFERENCED_TABLE_SCHEMA AS CHAR), CAST(REFERENCED_TABLE_NAME AS CHAR),
                    CAST(REFERENCED_COLUMN_NAME AS CHAR),
                    CAST(REFERENCED_TABLE_SCHEMA = COALESCE(?, DATABASE()) AS SIGNED)
             FROM information_schema.KEY_COLUMN_USAGE
             WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?
               AND REFERENCED_TABLE_NAME IS NOT NULL
             ORDER BY CONSTRAINT_NAME, ORDINAL_POSITION",
        )
        .bind(schema)
        .bind(schema)
        .bind(name)
        .fetch_all(self.pool())
        .await?;
        let what = "information_schema.KEY_COLUMN_USAGE";
        let mut by_name: BTreeMap<String, ForeignKey> = BTreeMap::new();
        for r in &rows {
            let constraint: String = get(r, 0, what)?;
            let target_schema: String = get(r, 2, what)?;
            let target: String = get(r, 3, what)?;
            let same_schema: Option<i64> = get(r, 5, what)?;
            let key = by_name.entry(constraint).or_insert_with(|| ForeignKey {
                columns: Vec::new(),
                table: if same_schema == Some(1) {
                    target
                } else {
                    format!("{target_schema}.{target}")
                },
                referenced: Vec::new(),
            });
            key.columns.push(get(r, 1, what)?);
            key.referenced.push(get(r, 4, what)?);
        }
        let mut out: Vec<ForeignKey> = by_name.into_values().collect();
        out.sort();
        Ok(out)
    }

    async fn declared_values(
        &self,
        table: &str,
    ) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        // Checks that the table exists (a Schema error naming it otherwise).
        self.columns(table).await?;
        let (schema, name) = schema_and_name(table);
        // `COLUMN_TYPE` as the server spells it: the labels keep their case.
        let rows = sqlx::query(
            "SELECT CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR)
             FROM information_schema.COLUMNS
             WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND DATA_TYPE = 'enum'",
        )
        .bind(schema)
        .bind(name)
        .fetch_all(self.pool())
        .await?;
        let what = "information_schema.COLUMNS";
        let mut out = BTreeMap::new();
        for r in &rows {
            let column: String = get(r, 0, what)?;
            let column_type: String = get(r, 1, what)?;
            if let Some(labels) = enum_labels(&column_type) {
                out.insert(column, labels);
            }
        }
        Ok(out)
    }

    async fn distinct_values(
        &self,
        table: &str,
        column: &str,
        limit: usize,
    ) -> Result<DistinctValues, StoreError> {
        let columns = self.columns(table).await?;
        let meta = columns.get(column)?;
        let quoted = quote_mysql(&meta.name);
        let (read, check) = meta.read_expr(&quoted);
        // A column in a character set that is not UTF-8 comes with its round-trip check: a
        // value the conversion changed is left out.
        let check = check.unwrap_or_else(|| "1".into());
        let rows = sqlx::query(sql(format!(
            "SELECT DISTINCT {read}, {check} FROM {} WHERE {quoted} IS NOT NULL ORDER BY 1 LIMIT ?",
            quote_table(table, quote_mysql)
        )))
        .bind(u64::try_from(limit.saturating_add(1)).unwrap_or(u64::MAX))
        .fetch_all(self.pool())
        .await?;
        let values = rows
            .iter()
            .filter(|r| r.try_get::<Option<i64>, _>(1).ok().flatten() != Some(0))
            .filter_map(|r| app_text(r, 0).ok().flatten())
            .collect();
        Ok(bounded_values(values, limit))
    }
}

/// The labels of an `enum('a','b''c')` column type, in order (`''` is a quote inside a
/// label); `None` when the text is not of that shape.
fn enum_labels(column_type: &str) -> Option<Vec<String>> {
    let inner = column_type
        .strip_prefix("enum(")
        .or_else(|| column_type.strip_prefix("ENUM("))?
        .strip_suffix(')')?;
    let mut labels = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        if chars.next()? != '\'' {
            return None;
        }
        let mut label = String::new();
        loop {
            match chars.next()? {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    label.push('\'');
                }
                '\'' => break,
                c => label.push(c),
            }
        }
        labels.push(label);
        match chars.next() {
            None => return Some(labels),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::enum_labels;

    #[test]
    fn enum_labels_are_read_from_the_column_type() {
        assert_eq!(
            enum_labels("enum('pending','paid','it''s')"),
            Some(vec!["pending".into(), "paid".into(), "it's".into()])
        );
        assert_eq!(enum_labels("enum('a,b')"), Some(vec!["a,b".into()]));
        assert_eq!(enum_labels("varchar(20)"), None);
        assert_eq!(enum_labels("enum('a"), None);
        assert_eq!(enum_labels("enum()"), None);
    }
}
