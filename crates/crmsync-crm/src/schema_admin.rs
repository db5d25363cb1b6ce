//! [`SchemaAdmin`]: reading and changing the CRM-side configuration a mapping relies on
//! (properties, groups, pipelines), for `crmsync schema export/diff/apply`. Separate from
//! [`crate::Crm`] because syncing never needs it: a sync reads the schema to check it, never
//! to change it (except its own id property, [`crate::Crm::ensure_id_property`]).

use crate::schema_doc::{SchemaChange, SchemaDoc};
use crate::{CrmError, ObjectKind};
use std::future::Future;

/// A CRM whose configuration can be read as a [`SchemaDoc`] and changed step by step.
///
/// Contract:
/// - [`SchemaAdmin::export_schema`] only reads; what it returns is what
///   [`SchemaAdmin::apply_change`] would write to reproduce it (custom properties only: the
///   CRM's own properties are not configuration), so export → apply → export is a fixpoint.
/// - [`SchemaAdmin::can_apply`] answers without calling the CRM; a change it refuses is never
///   sent, and its message says plainly what to do instead (for example: "in Setup").
/// - [`SchemaAdmin::apply_change`] makes exactly one change with as few calls as the API
///   allows, and the CRM's own error when it refuses.
pub trait SchemaAdmin: Send + Sync {
    /// The configuration of `objects`: their custom properties, property groups and pipelines.
    fn export_schema(
        &self,
        objects: &[ObjectKind],
    ) -> impl Future<Output = Result<SchemaDoc, CrmError>> + Send;

    /// Whether this CRM's API can make `change`; `Err` says why not and what to do instead.
    fn can_apply(&self, change: &SchemaChange) -> Result<(), String>;

    /// Makes `change` in the CRM.
    fn apply_change(
        &self,
        change: &SchemaChange,
    ) -> impl Future<Output = Result<(), CrmError>> + Send;
}
