//! The Salesforce emulator: one file per concept (OAuth, schema, records, SOQL, collections…)
//! plus the shared state they work on. Only [`SalesforceConfig`], [`salesforce_router`] and
//! [`SalesforceSandbox`] are public; the HTTP surface is the contract.

mod admin;
mod app;
mod auth;
mod clock;
mod collections;
mod config;
mod discovery;
mod error;
mod ids;
mod limits;
mod org;
mod persist;
mod query;
mod replication;
mod rest;
mod schema;
mod server;
mod sobjects;
mod soql;
mod state;
mod stats;
mod tooling;
mod write;

pub use config::SalesforceConfig;
pub use server::{SalesforceSandbox, salesforce_router};
