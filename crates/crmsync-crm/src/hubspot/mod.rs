//! The HubSpot CRM client: [`HubspotClient`] implements [`crate::Crm`] over HubSpot's v3/v4 REST
//! API (facts in `shared/crm-api/FACTS.md` section 2). Module declarations and re-exports only.

mod client;
mod config;
mod dialect;
mod error;
mod events;
mod oauth;
mod schema;
pub mod webhook;
mod wire;

#[cfg(test)]
mod tests;

pub use client::{HubspotClient, links_on_create};
pub use config::{
    DEFAULT_BASE_URL, HubspotConfig, default_headroom_percent, default_interval,
    default_max_retries, default_requests_per_interval, default_timeout,
};
pub use oauth::{DEFAULT_TOKEN_PATH, HubspotOAuth};
