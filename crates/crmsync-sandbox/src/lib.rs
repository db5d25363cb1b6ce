//! crmsync-sandbox: a local, in-memory emulator of the HubSpot CRM REST API.
//!
//! Users and tests develop against it instead of a real portal, and HubSpot's official SDKs
//! work against it unchanged. It is an independent implementation derived from
//! `shared/crm-api/FACTS.md` (section 2) and shares no types with `crmsync-crm`, so a
//! misunderstanding of the wire format cannot hide in both places at once.

mod hubspot;
mod server;

pub use server::{Sandbox, SandboxConfig, router};
