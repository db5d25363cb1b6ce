//! The HubSpot emulator: one file per HTTP area plus the shared state they work on.

mod account;
mod actor;
mod admin;
mod app;
mod associations;
mod auth;
mod batch;
mod error;
mod events;
mod extract;
pub(crate) mod faults;
mod gate;
mod limits;
mod links;
mod oauth;
mod object_type;
mod objects;
pub(crate) mod persist;
mod pipelines;
mod properties;
mod record;
mod schema;
mod search;
mod signature;
mod state;
mod stats;
mod store;
mod values;
pub(crate) mod webhooks;

pub(crate) use app::app;
pub use faults::{FaultConfig, RateLimitStorm, StormPolicy};
pub use oauth::OAuthConfig;
pub use persist::PersistError;
pub(crate) use state::AppState;
pub use webhooks::{SignatureVersion, WebhookConfig, WebhookRetry};
