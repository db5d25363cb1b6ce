//! `crmsync init`'s proposal: from the app database's schema ([`schema`], read by the
//! command) to a commented config ([`propose`] decides, [`render`] writes), by the naming
//! rules of [`names`]. No I/O here: the same schema always gives the same text.

pub mod names;
pub mod propose;
pub mod render;
pub mod schema;
