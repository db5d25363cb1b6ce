//! Checked reads of SQLite rows. State rows are ours, so a value that does not decode is a
//! damaged row ([`StoreError::Corrupt`], naming table and column), never a panic. App values
//! are the user's: one that is not text is reported with its column and the rest of the row
//! is still read.

use crate::error::StoreError;
use sqlx::sqlite::SqliteRow;
use sqlx::{Decode, Row, Sqlite, Type};

/// Column `i` of a state row of `table`.
pub(crate) fn get<'r, T>(row: &'r SqliteRow, i: usize, table: &str) -> Result<T, StoreError>
where
    T: Decode<'r, Sqlite> + Type<Sqlite>,
{
    row.try_get(i)
        .map_err(|e| StoreError::Corrupt(format!("table `{table}`, column {i}: {e}")))
}

/// Column `i` of an app row as text: `Ok(None)` for NULL, `Err(reason)` when it is not
/// readable as text (bytes that are not UTF-8).
pub(crate) fn app_text(row: &SqliteRow, i: usize) -> Result<Option<String>, String> {
    match row.try_get::<Option<String>, _>(i) {
        Ok(v) => Ok(v),
        Err(text_err) => match row.try_get::<Option<Vec<u8>>, _>(i) {
            Ok(Some(bytes)) => Err(crate::any::not_utf8(&bytes)),
            Ok(None) => Ok(None),
            Err(_) => Err(format!("cannot be read as text: {text_err}")),
        },
    }
}
