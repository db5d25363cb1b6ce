//! crmsync-sandbox: a local emulator of the HubSpot CRM REST API and of the Salesforce REST
//! API ([`SalesforceSandbox`], FACTS section 3).
//!
//! Users and tests develop against it instead of a real portal, and HubSpot's official SDKs
//! work against it unchanged. It is an independent implementation derived from
//! `shared/crm-api/FACTS.md` (section 2) and shares no types with `crmsync-crm`, so a
//! misunderstanding of the wire format cannot hide in both places at once.
//!
//! Beyond the API it can misbehave on demand ([`FaultConfig`]), push signed change
//! notifications ([`WebhookConfig`]) and keep its data in a file
//! ([`SandboxConfig::state_file`]); see `docs/sandbox.md`.

mod hubspot;
mod salesforce;
mod server;

pub use hubspot::{
    FaultConfig, OAuthConfig, PersistError, RateLimitStorm, SignatureVersion, StormPolicy,
    WebhookConfig, WebhookRetry,
};
pub use salesforce::{SalesforceConfig, SalesforceSandbox, salesforce_router};
pub use server::{Sandbox, SandboxConfig, router};
