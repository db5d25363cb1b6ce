//! The only place SQL text is built from strings: identifiers (table and column names from the
//! user's config) are quoted here, and the composed statements are asserted safe here.

use sqlx::AssertSqlSafe;

/// Quotes an identifier for SQLite and PostgreSQL: wrapped in double quotes, inner quotes
/// doubled, so any name is taken literally and cannot end the identifier.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Wraps SQL text whose every identifier went through [`quote`] and whose values are bound
/// parameters, marking it safe for sqlx.
pub fn sql(text: String) -> AssertSqlSafe<String> {
    AssertSqlSafe(text)
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(quote("orders"), "\"orders\"");
        assert_eq!(quote("we\"ird"), "\"we\"\"ird\"");
    }
}
