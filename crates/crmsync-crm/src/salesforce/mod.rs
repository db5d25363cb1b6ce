//! The Salesforce client: [`SalesforceClient`] implements [`crate::Crm`] over Salesforce's REST
//! API (facts in `shared/crm-api/FACTS.md` section 3), on the shared [`crate::http::Transport`].
//! Module declarations and re-exports only.

mod auth;
mod client;
mod config;
mod dialect;
mod error;
mod objects;
mod schema;
mod wire;

pub use client::SalesforceClient;

/// Whether a `from` record's write carries its link to a `to` parent (a lookup field).
pub fn links_on_write(from: crate::ObjectKind, to: crate::ObjectKind) -> bool {
    matches!(objects::link(from, to), Some(objects::Link::Lookup { .. }))
}
pub use config::{OAuthFlow, SalesforceConfig};
