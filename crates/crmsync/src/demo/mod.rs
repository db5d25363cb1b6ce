//! The demo's sample order system: a robot maker's customers and orders in SQLite, with the
//! blemishes real data has (a few invalid e-mail addresses, some unconfirmed ones), and the
//! commented config that syncs it.

pub mod config;
pub mod data;
