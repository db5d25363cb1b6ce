//! The only place SQL text is built from strings: identifiers (table and column names from the
//! user's config) are quoted here, and the composed statements are asserted safe here.
//! `grep AssertSqlSafe` finds every such statement.

use sqlx::AssertSqlSafe;

/// Quotes an identifier for SQLite and PostgreSQL: wrapped in double quotes, inner quotes
/// doubled, so any name is taken literally and cannot end the identifier.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes an identifier for MySQL/MariaDB: wrapped in backticks, inner backticks doubled.
pub fn quote_mysql(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Quotes a table name that may be schema-qualified (`shop.orders` -> `"shop"."orders"`),
/// with `quote_part` for each part. A name without a dot is one part.
pub fn quote_table(name: &str, quote_part: fn(&str) -> String) -> String {
    match name.split_once('.') {
        Some((schema, table)) if !schema.is_empty() && !table.is_empty() => {
            format!("{}.{}", quote_part(schema), quote_part(table))
        }
        _ => quote_part(name),
    }
}

/// A standard SQL text literal for DDL where parameters cannot be used (trigger bodies):
/// single quotes, inner quotes doubled (SQLite, PostgreSQL).
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A MySQL text literal: as [`literal`], and backslashes doubled (MySQL reads them as escapes).
pub fn literal_mysql(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// Wraps SQL text whose every identifier went through this module and whose values are bound
/// parameters, marking it safe for sqlx.
pub fn sql(text: String) -> AssertSqlSafe<String> {
    AssertSqlSafe(text)
}

/// `n` placeholders `?, ?, ...` (SQLite, MySQL).
pub fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(quote("orders"), "\"orders\"");
        assert_eq!(quote("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(quote_mysql("we`ird"), "`we``ird`");
        assert_eq!(quote_table("shop.orders", quote), "\"shop\".\"orders\"");
        assert_eq!(quote_table("orders", quote_mysql), "`orders`");
        assert_eq!(literal("o'k\\"), "'o''k\\'");
        assert_eq!(literal_mysql("o'k\\"), "'o''k\\\\'");
    }
}
