//! The config file: its shape ([`raw`]), loading with file/line/key errors ([`load`]), the
//! semantic validation pass that reports every problem at once ([`validate`]), and locating a
//! dotted key path back to its line ([`locate`]).

pub mod associate;
pub mod crm_create;
pub mod load;
pub mod locate;
pub mod raw;
pub mod redact;
pub mod validate;

pub use crm_create::{InsertValue, OnCrmCreate};
pub use load::{Config, ConfigError, OAuthSecrets, Problem, Secrets, load, load_str};
pub use raw::{
    AlertsConfig, AuthFlow, Capture, ConflictPolicy, CrmConfig, CrmKind, Direction, Environment,
    FieldConfig, HubspotAuth, Item, OnEmpty, OnInvalid, OneOrMany, RunConfig, SalesforceAuth,
    ServerConfig, SourceConfig, StateConfig, SyncConfig, WebhookSignature, WebhooksConfig,
    WriteMode,
};
