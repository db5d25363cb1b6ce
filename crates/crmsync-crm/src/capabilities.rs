//! [`Capabilities`]: what a connector states about its CRM, so the engine asks instead of
//! branching on which CRM it talks to (batch sizes, how records are keyed and linked, which
//! of the CRM's own rules a preflight should warn about).
//!
//! Invariant: every field is a fact of the CRM's API, not a setting; settings live in the config.

use crate::ObjectKind;

/// How the CRM finds our record again on a retried write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keying {
    /// A property with unique values holding our key (HubSpot `hasUniqueValue`).
    UniqueProperty,
    /// An External ID field flagged unique (Salesforce), upserted through `/{field}/{value}`.
    ExternalIdField,
}

/// How a child record is tied to its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParentLink {
    /// Separate association calls after both records exist (HubSpot v4 associations).
    Associations,
    /// The parent's id goes into the child's own write (a Salesforce lookup field); pairs
    /// [`crate::Crm::links_on_write`] does not cover still use association calls.
    OnWrite,
    /// The parent's id goes into the create of a record the engine has not linked yet (HubSpot
    /// batch create's `associations`); a record that exists already is linked by association
    /// calls. See [`crate::Crm::links_on_create`].
    OnCreate,
}

/// Largest number of records one call of each kind may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batches {
    /// Upserts, creates and updates.
    pub write: usize,
    /// Reads by id.
    pub read: usize,
    /// Association (or link) calls.
    pub associate: usize,
}

/// What a connector states about its CRM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// The CRM's name as people know it, for messages ("HubSpot", "Salesforce").
    pub name: &'static str,
    pub batches: Batches,
    pub keying: Keying,
    pub parents: ParentLink,
    /// An object whose records the CRM also keys by e-mail, so two records sharing an address
    /// collide (HubSpot contacts); `None` when e-mail is an ordinary field.
    pub unique_email: Option<ObjectKind>,
    /// The deal property that carries an amount's currency, when the CRM has one per record.
    pub deal_currency: Option<&'static str>,
}
