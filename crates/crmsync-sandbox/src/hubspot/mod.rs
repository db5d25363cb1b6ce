//! The HubSpot emulator: one file per HTTP area plus the shared state they work on.

mod account;
mod admin;
mod app;
mod associations;
mod auth;
mod batch;
mod error;
mod extract;
mod gate;
mod limits;
mod links;
mod object_type;
mod objects;
mod pipelines;
mod properties;
mod record;
mod schema;
mod search;
mod state;
mod stats;
mod store;
mod values;

pub(crate) use app::app;
