//! MySQL / MariaDB as the **app database** ([`crate::Source`] and [`crate::Capture`]); it is
//! never the state database. Every pooled connection is set up the same way (UTC
//! `time_zone`, one known `sql_mode`), so the text we read and the triggers we create do not
//! depend on the server's defaults. Identifiers are quoted with backticks
//! ([`crate::ident::quote_mysql`]) and composed SQL goes through [`crate::ident::sql`].
//!
//! Needs MariaDB 10.3+ or MySQL 8.0+ (window-free trigger replacement relies on several
//! triggers per event; `updated_frontier` reads `information_schema.innodb_trx`, which needs
//! the `PROCESS` privilege).

mod capture;
mod decode;
mod introspect;
mod source;

pub use source::MysqlSource;

/// Keys per `IN (...)` list (MySQL allows 65,535 placeholders per statement).
pub(crate) const KEYS_PER_STATEMENT: usize = 500;

/// Run on every pooled connection. `time_zone` UTC, so `TIMESTAMP` text is stable whatever
/// the server's zone. The `sql_mode` is ours rather than the server's, and it is also the mode
/// of the triggers we create (a trigger runs with the mode it was created under): strict, so a
/// value that does not fit a column is an error rather than a silently truncated write; no
/// `ANSI_QUOTES` (we quote with backticks), no `NO_BACKSLASH_ESCAPES`
/// ([`crate::ident::literal_mysql`] doubles backslashes), no `PIPES_AS_CONCAT`.
pub(crate) const SESSION_SETUP: &str = "SET time_zone = '+00:00', sql_mode = 'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'";

/// `(schema, table)` of a possibly qualified table name: `None` means the connection's
/// database.
pub(crate) fn schema_and_name(table: &str) -> (Option<&str>, &str) {
    match table.split_once('.') {
        Some((s, t)) if !s.is_empty() && !t.is_empty() => (Some(s), t),
        _ => (None, table),
    }
}
