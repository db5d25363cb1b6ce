//! [`AnyCrm`]: the one CRM type the binary runs, whichever connector the config names.
//!
//! The [`Crm`] trait returns `impl Future`, so it cannot be a trait object; this enum is the
//! closed set of connectors instead, and every method forwards to the chosen one unchanged.
//! Invariant: nothing here decides anything — a connector's behaviour is exactly its own.

use std::sync::Arc;

use crate::hubspot::HubspotClient;
use crate::salesforce::SalesforceClient;
use crate::{
    AssociationInput, CallGate, Capabilities, ChangedRecord, Crm, CrmError, CrmEvent, ObjectKind,
    Pipeline, PropertyInfo, RecordOutcome, UpdateInput, UpsertInput,
};

/// A connector chosen at run time by `[crm] kind`.
#[derive(Debug, Clone)]
pub enum AnyCrm {
    Hubspot(HubspotClient),
    Salesforce(SalesforceClient),
}

/// Forwards one call to whichever connector `self` holds.
macro_rules! each {
    ($self:ident, $c:ident => $call:expr) => {
        match $self {
            AnyCrm::Hubspot($c) => $call,
            AnyCrm::Salesforce($c) => $call,
        }
    };
}

impl AnyCrm {
    /// Admits every attempt through `gate` from now on (the shared budget of several workers).
    pub fn set_gate(&self, gate: Arc<dyn CallGate>) {
        each!(self, c => c.set_gate(gate))
    }
}

/// [`Crm::links_on_write`] of the connector `kind` names (`hubspot`, `salesforce`), without a
/// client: for estimates made from the config alone (`plan`, `status`). The clients answer the
/// same from the same functions.
pub fn links_on_write(kind: &str, from: ObjectKind, to: ObjectKind) -> bool {
    match kind {
        "salesforce" => crate::salesforce::links_on_write(from, to),
        _ => false,
    }
}

/// [`Crm::links_on_create`] of the connector `kind` names, without a client (as
/// [`links_on_write`]).
pub fn links_on_create(kind: &str, from: ObjectKind, to: ObjectKind) -> bool {
    match kind {
        "hubspot" => crate::hubspot::links_on_create(from, to),
        _ => links_on_write(kind, from, to),
    }
}

impl From<HubspotClient> for AnyCrm {
    fn from(c: HubspotClient) -> Self {
        AnyCrm::Hubspot(c)
    }
}

impl From<SalesforceClient> for AnyCrm {
    fn from(c: SalesforceClient) -> Self {
        AnyCrm::Salesforce(c)
    }
}

impl Crm for AnyCrm {
    fn capabilities(&self) -> Capabilities {
        each!(self, c => c.capabilities())
    }

    fn max_batch(&self) -> usize {
        each!(self, c => c.max_batch())
    }

    fn links_on_write(&self, from: ObjectKind, to: ObjectKind) -> bool {
        each!(self, c => c.links_on_write(from, to))
    }

    fn links_on_create(&self, from: ObjectKind, to: ObjectKind) -> bool {
        each!(self, c => c.links_on_create(from, to))
    }

    async fn account(&self) -> Result<Option<crate::Account>, CrmError> {
        each!(self, c => c.account().await)
    }

    async fn ensure_id_property(
        &self,
        object: ObjectKind,
        id_property: &str,
    ) -> Result<(), CrmError> {
        each!(self, c => c.ensure_id_property(object, id_property).await)
    }

    async fn property_names(&self, object: ObjectKind) -> Result<Vec<String>, CrmError> {
        each!(self, c => c.property_names(object).await)
    }

    async fn properties(&self, object: ObjectKind) -> Result<Vec<PropertyInfo>, CrmError> {
        each!(self, c => c.properties(object).await)
    }

    async fn pipelines(&self, object: ObjectKind) -> Result<Vec<Pipeline>, CrmError> {
        each!(self, c => c.pipelines(object).await)
    }

    async fn upsert_batch(
        &self,
        object: ObjectKind,
        id_property: &str,
        inputs: &[UpsertInput],
    ) -> Result<Vec<RecordOutcome>, CrmError> {
        each!(self, c => c.upsert_batch(object, id_property, inputs).await)
    }

    fn parse_event(&self, body: &str) -> Option<CrmEvent> {
        each!(self, c => c.parse_event(body))
    }

    async fn changes_since(
        &self,
        object: ObjectKind,
        cursor_ms: i64,
        after_id: Option<&str>,
        properties: &[String],
        limit: usize,
    ) -> Result<Vec<ChangedRecord>, CrmError> {
        each!(self, c => c.changes_since(object, cursor_ms, after_id, properties, limit).await)
    }

    async fn read_batch(
        &self,
        object: ObjectKind,
        ids: &[String],
        properties: &[String],
    ) -> Result<Vec<ChangedRecord>, CrmError> {
        each!(self, c => c.read_batch(object, ids, properties).await)
    }

    async fn archived_page(
        &self,
        object: ObjectKind,
        after: Option<&str>,
    ) -> Result<(Vec<String>, Option<String>), CrmError> {
        each!(self, c => c.archived_page(object, after).await)
    }

    async fn update_batch(
        &self,
        object: ObjectKind,
        inputs: &[UpdateInput],
    ) -> Result<(), CrmError> {
        each!(self, c => c.update_batch(object, inputs).await)
    }

    async fn associate_batch(
        &self,
        from: ObjectKind,
        to: ObjectKind,
        pairs: &[AssociationInput],
    ) -> Result<(), CrmError> {
        each!(self, c => c.associate_batch(from, to, pairs).await)
    }
}

impl crate::SchemaAdmin for AnyCrm {
    async fn export_schema(&self, objects: &[ObjectKind]) -> Result<crate::SchemaDoc, CrmError> {
        each!(self, c => c.export_schema(objects).await)
    }

    fn can_apply(&self, change: &crate::SchemaChange) -> Result<(), String> {
        each!(self, c => c.can_apply(change))
    }

    async fn apply_change(&self, change: &crate::SchemaChange) -> Result<(), CrmError> {
        each!(self, c => c.apply_change(change).await)
    }
}
