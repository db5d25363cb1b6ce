//! Checked reads of PostgreSQL state rows. State rows are ours, so a value that does not
//! decode (a NULL where none belongs, a type someone changed by hand) is a damaged row:
//! [`StoreError::Corrupt`] naming the table and the column, never a panic.

use crate::error::StoreError;
use sqlx::postgres::PgRow;
use sqlx::{Column, Decode, Postgres, Row, Type};

/// Column `i` of a state row of `table`.
pub(crate) fn get<'r, T>(row: &'r PgRow, i: usize, table: &str) -> Result<T, StoreError>
where
    T: Decode<'r, Postgres> + Type<Postgres>,
{
    row.try_get(i).map_err(|e| {
        let column = row
            .try_column(i)
            .map_or_else(|_| format!("#{i}"), |c| c.name().to_string());
        StoreError::Corrupt(format!("table `{table}`, column `{column}`: {e}"))
    })
}

/// A count or a sum read back as a non-negative number (a negative one reads as 0).
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
