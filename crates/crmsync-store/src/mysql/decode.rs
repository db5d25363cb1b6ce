//! How a MySQL/MariaDB value becomes text, checked. Two halves that must agree:
//!
//! - the SQL that reads a column as UTF-8 bytes ([`ColumnMeta::read_expr`]) and compares a
//!   text parameter with a column in the column's own type ([`ColumnMeta::param`]);
//! - the Rust that decodes what comes back ([`app_text`]), never trusting it to be UTF-8.
//!
//! The invariant: a value that is not valid text is *reported*, never replaced. That rules out
//! the obvious `CAST(col AS CHAR)` for string columns: MariaDB turns bytes it cannot convert
//! into `?` with only a warning, so a BLOB holding `C3 28 FF` would read as `?(?`. Instead,
//! columns whose bytes are already UTF-8 candidates (utf8mb3/utf8mb4/ascii text, binary strings)
//! are read as raw bytes and validated here, and columns in another character set are converted
//! by the server with a second, round-trip column saying whether the conversion lost anything.
//! Rows of our own tables and of the catalog that do not decode are [`StoreError::Corrupt`].

use crate::error::StoreError;
use sqlx::mysql::MySqlRow;
use sqlx::{Decode, MySql, Row, Type};

/// Column `i` of one of our own rows (change log, catalog), described as `what` in errors.
pub(crate) fn get<'r, T>(row: &'r MySqlRow, i: usize, what: &str) -> Result<T, StoreError>
where
    T: Decode<'r, MySql> + Type<MySql>,
{
    row.try_get(i)
        .map_err(|e| StoreError::Corrupt(format!("`{what}`, column {i}: {e}")))
}

/// Column `i` of an app row read by a [`ColumnMeta::read_expr`]: `Ok(None)` for NULL,
/// `Err(reason)` when the bytes are not UTF-8 (or the value is of a type that is not text).
pub(crate) fn app_text(row: &MySqlRow, i: usize) -> Result<Option<String>, String> {
    match row.try_get::<Option<Vec<u8>>, _>(i) {
        Ok(None) => Ok(None),
        Ok(Some(bytes)) => match String::from_utf8(bytes) {
            Ok(s) => Ok(Some(s)),
            Err(e) => Err(crate::any::not_utf8(e.as_bytes())),
        },
        // Not a string-typed result at all (our expressions always yield strings, so this is
        // a type nobody promised): say so rather than guess.
        Err(bytes_err) => match row.try_get::<Option<String>, _>(i) {
            Ok(v) => Ok(v),
            Err(_) => Err(format!("cannot be read as text: {bytes_err}")),
        },
    }
}

/// What `information_schema.COLUMNS` says about one column, as far as reading and comparing
/// its values goes.
#[derive(Debug, Clone)]
pub(crate) struct ColumnMeta {
    /// The name as declared.
    pub name: String,
    /// `DATA_TYPE`, lower case (`int`, `varchar`, `datetime`).
    pub data_type: String,
    /// `COLUMN_TYPE`, lower case (`int(10) unsigned`, `varchar(255)`).
    pub column_type: String,
    /// `CHARACTER_SET_NAME` (`None` for numbers, dates and binary strings).
    pub charset: Option<String>,
    /// `CHARACTER_MAXIMUM_LENGTH` in characters.
    pub max_chars: Option<i64>,
    pub numeric_precision: Option<i64>,
    pub numeric_scale: Option<i64>,
    /// Fractional-second digits of a `datetime`/`timestamp`/`time`.
    pub datetime_precision: Option<i64>,
}

/// Character sets whose bytes are UTF-8 when valid: read raw, validated in Rust.
const UTF8_CHARSETS: &[&str] = &["utf8mb4", "utf8mb3", "utf8", "ascii", "binary"];

const INTEGER_TYPES: &[&str] = &[
    "tinyint",
    "smallint",
    "mediumint",
    "int",
    "integer",
    "bigint",
    "year",
];

const BINARY_TYPES: &[&str] = &[
    "binary",
    "varbinary",
    "tinyblob",
    "blob",
    "mediumblob",
    "longblob",
];

const SPATIAL_TYPES: &[&str] = &[
    "geometry",
    "point",
    "linestring",
    "polygon",
    "multipoint",
    "multilinestring",
    "multipolygon",
    "geometrycollection",
];

/// A character-set name from the catalog, safe to write into SQL as a bare word.
fn bare_word(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl ColumnMeta {
    /// A column this module knows nothing about (read with a plain `CAST(... AS CHAR)`).
    #[cfg(test)]
    pub(crate) fn plain(name: &str, data_type: &str) -> Self {
        ColumnMeta {
            name: name.into(),
            data_type: data_type.into(),
            column_type: data_type.into(),
            charset: None,
            max_chars: None,
            numeric_precision: None,
            numeric_scale: None,
            datetime_precision: None,
        }
    }

    /// A binary string type (its bytes are the value).
    pub(crate) fn is_binary(&self) -> bool {
        BINARY_TYPES.contains(&self.data_type.as_str())
    }

    /// A whole-number type (`year` included).
    pub(crate) fn is_integer(&self) -> bool {
        INTEGER_TYPES.contains(&self.data_type.as_str())
    }

    /// SQL reading `col` (an already quoted column, or an expression over one) as text, and
    /// the check expression (1 when the text is faithful, 0 when the server had to replace
    /// bytes) for character sets that are not UTF-8 themselves.
    pub(crate) fn read_expr(&self, col: &str) -> (String, Option<String>) {
        let t = self.data_type.as_str();
        if BINARY_TYPES.contains(&t) {
            return (col.to_string(), None);
        }
        if SPATIAL_TYPES.contains(&t) {
            return (format!("ST_AsText({col})"), None);
        }
        if t == "bit" {
            // `CAST(b'101' AS CHAR)` is the raw byte 0x05; the number is what people mean.
            return (format!("CAST({col} + 0 AS CHAR)"), None);
        }
        match self.charset.as_deref() {
            Some(cs) if UTF8_CHARSETS.contains(&cs) => (format!("CAST({col} AS BINARY)"), None),
            Some(cs) if bare_word(cs) => (
                format!("CONVERT({col} USING utf8mb4)"),
                Some(format!(
                    "CAST(CAST(CONVERT(CONVERT({col} USING utf8mb4) USING {cs}) AS BINARY) <=> CAST({col} AS BINARY) AS SIGNED)"
                )),
            ),
            _ => (format!("CAST({col} AS CHAR)"), None),
        }
    }

    /// SQL comparing `col` with a text parameter as text, byte for byte (no collation: a
    /// case-insensitive column must still see `abc` -> `ABC` as a change), NULL-safe.
    pub(crate) fn same_text(&self, col: &str) -> String {
        let (read, _) = self.read_expr(col);
        format!("CAST({read} AS BINARY) <=> CAST(? AS BINARY)")
    }

    /// A placeholder for a text parameter compared with this column in the column's own type,
    /// so an integer key pages 9 before 10 and uses its index (without the cast MySQL would
    /// compare a `BIGINT` with a string as floating point, which loses keys above 2^53).
    pub(crate) fn param(&self) -> String {
        let t = self.data_type.as_str();
        if INTEGER_TYPES.contains(&t) {
            return if self.column_type.contains("unsigned") {
                "CAST(? AS UNSIGNED)".into()
            } else {
                "CAST(? AS SIGNED)".into()
            };
        }
        match t {
            "decimal" | "numeric" => {
                let p = self.numeric_precision.unwrap_or(65).clamp(1, 65);
                // MariaDB allows 38 decimals, MySQL 30: a column's own scale is always valid there.
                let s = self.numeric_scale.unwrap_or(0).clamp(0, p.min(38));
                format!("CAST(? AS DECIMAL({p}, {s}))")
            }
            "date" => "CAST(? AS DATE)".into(),
            "datetime" | "timestamp" => "CAST(? AS DATETIME(6))".into(),
            "time" => "CAST(? AS TIME(6))".into(),
            _ => "?".into(),
        }
    }

    /// A point in time, given as UTC and as the server's local wall-clock time (both
    /// `YYYY-MM-DD HH:MM:SS.ffffff`) and as Unix seconds, in this column's text form and never
    /// later than that instant in either reading of the column:
    /// - `timestamp` is absolute: the UTC text (our sessions use `+00:00`);
    /// - `datetime` holds whatever clock the app wrote: the earlier of UTC and server time;
    /// - `date`: the date of that earlier one; numbers: Unix seconds; text: the earlier one.
    ///
    /// Fractions are truncated to the column's precision, never rounded up.
    pub(crate) fn instant_text(&self, utc: &str, local: &str, unix_seconds: i64) -> String {
        let earlier = if local < utc { local } else { utc };
        let digits = usize::try_from(self.datetime_precision.unwrap_or(0).clamp(0, 6)).unwrap_or(0);
        let upto = |s: &str, len: usize| s.get(..len).unwrap_or(s).to_string();
        match self.data_type.as_str() {
            "timestamp" => upto(utc, if digits == 0 { 19 } else { 20 + digits }),
            "datetime" => upto(earlier, if digits == 0 { 19 } else { 20 + digits }),
            "date" => upto(earlier, 10),
            _ if self.is_integer()
                || matches!(
                    self.data_type.as_str(),
                    "decimal" | "numeric" | "float" | "double"
                ) =>
            {
                unix_seconds.to_string()
            }
            _ => upto(earlier, 19),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_columns_are_read_as_bytes_or_checked() {
        let mut c = ColumnMeta::plain("n", "varchar");
        c.charset = Some("utf8mb4".into());
        assert_eq!(c.read_expr("`n`"), ("CAST(`n` AS BINARY)".into(), None));
        c.charset = Some("sjis".into());
        let (read, check) = c.read_expr("`n`");
        assert_eq!(read, "CONVERT(`n` USING utf8mb4)");
        assert!(check.is_some_and(|c| c.contains("USING sjis")));
        // A name that is not a bare word never reaches the SQL.
        c.charset = Some("x) OR (1".into());
        assert_eq!(c.read_expr("`n`").0, "CAST(`n` AS CHAR)");
        assert_eq!(ColumnMeta::plain("b", "blob").read_expr("`b`").0, "`b`");
        assert_eq!(
            ColumnMeta::plain("i", "int").read_expr("`i`").0,
            "CAST(`i` AS CHAR)"
        );
    }

    #[test]
    fn parameters_take_the_column_type() {
        let mut c = ColumnMeta::plain("id", "bigint");
        assert_eq!(c.param(), "CAST(? AS SIGNED)");
        c.column_type = "bigint(20) unsigned".into();
        assert_eq!(c.param(), "CAST(? AS UNSIGNED)");
        let mut d = ColumnMeta::plain("p", "decimal");
        d.numeric_precision = Some(10);
        d.numeric_scale = Some(2);
        assert_eq!(d.param(), "CAST(? AS DECIMAL(10, 2))");
        assert_eq!(ColumnMeta::plain("s", "varchar").param(), "?");
        assert_eq!(
            ColumnMeta::plain("t", "timestamp").param(),
            "CAST(? AS DATETIME(6))"
        );
    }

    #[test]
    fn instants_never_round_up() {
        let utc = "2024-05-05 10:00:00.987654";
        let local = "2024-05-05 12:00:00.987654";
        let mut dt = ColumnMeta::plain("u", "datetime");
        assert_eq!(dt.instant_text(utc, local, 1), "2024-05-05 10:00:00");
        dt.datetime_precision = Some(3);
        assert_eq!(dt.instant_text(utc, local, 1), "2024-05-05 10:00:00.987");
        // Local time behind UTC: the app may have written either clock.
        assert_eq!(
            dt.instant_text(utc, "2024-05-05 05:00:00.987654", 1),
            "2024-05-05 05:00:00.987"
        );
        assert_eq!(
            ColumnMeta::plain("d", "date").instant_text(utc, local, 1),
            "2024-05-05"
        );
        assert_eq!(
            ColumnMeta::plain("e", "bigint").instant_text(utc, local, 1714903200),
            "1714903200"
        );
    }
}
