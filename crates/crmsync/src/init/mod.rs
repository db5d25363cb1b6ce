//! `crmsync init`'s proposal: from the app database's schema ([`schema`], read by the
//! command) to a commented config ([`propose`] decides, [`render`] writes), by the naming
//! rules of [`names`]. No I/O here: the same schema always gives the same text.

pub mod names;
pub mod propose;
pub mod render;
pub mod schema;

/// Whether tables such as `order_lines` are proposed as active `line_items` syncs. Off while
/// this crmsync has no `line_items` object kind (the loader would refuse it): they are written
/// commented out, ready to be switched on with this constant once the kind exists.
pub const EMIT_LINE_ITEMS: bool = false;
