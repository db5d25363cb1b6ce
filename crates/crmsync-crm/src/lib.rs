//! The boundary between the engine and a CRM: the [`Crm`] trait, the records that cross it, and
//! the per-call log every implementation reports. One folder per CRM (`hubspot/`,
//! `salesforce/`) with the same file names inside, on the shared transport (`http.rs`).
//!
//! Contract shared by every implementation:
//! - Writes are **upserts by our own key** (a unique property on the CRM side holding the app's
//!   record key), so a retried batch never duplicates: delivery is at-least-once, effects exactly-once.
//!   A connector may *create* a record the engine has never seen in the CRM
//!   ([`UpsertInput::new_record`]) to carry its links in the same call, but a create that finds
//!   our key taken (the answer of an earlier write was lost) must fall back to the upsert, so
//!   the promise holds for creates too.
//! - A batch answer is per record: one bad record yields a [`RecordOutcome::Rejected`] for it and
//!   does not hide the others' results, when the CRM tells them apart.
//! - Every HTTP request, including retries, is reported to the [`CallObserver`] exactly once.

pub mod account;
pub mod any;
pub mod call;
pub mod capabilities;
pub mod error;
pub mod http;
pub mod hubspot;
pub mod object;
pub mod pace;
pub mod retry;
pub mod salesforce;
pub mod schema;
pub mod schema_admin;
pub mod schema_doc;
pub mod tokens;

pub use account::Account;
pub use any::AnyCrm;
pub use call::{CallGate, CallObserver, CallRecord, CallWindow};
pub use capabilities::{Batches, Capabilities, Keying, ParentLink};
pub use error::{CrmError, ErrorKind};
pub use http::Operation;
pub use object::ObjectKind;
pub use retry::RetryPolicy;
pub use schema::{Pipeline, PropertyInfo, Stage};
pub use schema_admin::SchemaAdmin;
pub use schema_doc::{SchemaChange, SchemaDoc, SchemaItem};
pub use tokens::{SharedToken, TokenStore};

use std::collections::BTreeMap;
use std::future::Future;

/// One record to upsert: our key (value of the unique id property) and the CRM property values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpsertInput {
    /// Value of the unique id property: the app's record key as a string.
    pub key: String,
    /// CRM property name -> value. HubSpot takes every value as a string.
    pub properties: BTreeMap<String, String>,
    /// Parents to link in this same write: the pairs [`Crm::links_on_write`] covers, and for a
    /// [`UpsertInput::new_record`] also those [`Crm::links_on_create`] covers.
    pub links: Vec<ParentRef>,
    /// The engine holds no CRM id for this key: as far as it knows, the record is not in the CRM
    /// yet (a first import). Only a hint — the record may exist after all (a crash between the
    /// CRM's answer and our link), and the connector must then not duplicate it.
    pub new_record: bool,
}

/// A parent record a write links to: its object and CRM id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentRef {
    pub object: ObjectKind,
    pub crm_id: String,
}

/// Properties to set on an existing CRM record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateInput {
    pub crm_id: String,
    pub properties: BTreeMap<String, String>,
}

/// What the CRM said about one record of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// The CRM stored it under `crm_id`; `created` is true when it did not exist before.
    Upserted {
        key: String,
        crm_id: String,
        created: bool,
    },
    /// The CRM refused this record for a reason that retrying will not fix.
    Rejected { key: String, error: CrmError },
}

/// An association to create from one CRM record to another (unlabelled, the CRM's default type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociationInput {
    pub from_id: String,
    pub to_id: String,
}

/// A record the CRM reports as modified at or after a cursor (see [`Crm::changes_since`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedRecord {
    pub crm_id: String,
    /// The requested properties; a cleared (null) value is `""`.
    pub properties: BTreeMap<String, String>,
    /// The CRM's last-modified time of the record, ms since the Unix epoch.
    pub modified_ms: i64,
    /// Ids of other records this one absorbed in a merge (they now resolve to it).
    pub merged_ids: Vec<String>,
}

/// What a CRM's change notification (a webhook event) says, as far as syncing cares. Events
/// are hints: the engine reads the records back instead of trusting the values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmEvent {
    pub object: ObjectKind,
    /// `creation`, `propertyChange`, `deletion`, `merge`, `restore`, `privacyDeletion`, ...
    pub kind: String,
    /// The records it concerns (for a merge: the survivor, the absorbed ones, a new id).
    pub ids: Vec<String>,
    /// For a property change: the property and its new value (`""` for a cleared one).
    pub property: Option<(String, String)>,
}

/// A CRM the engine can push records to and poll changes from.
///
/// Implementations are cheap to clone-share behind an `Arc` and safe to call concurrently.
pub trait Crm: Send + Sync {
    /// What this CRM's API is like (batch sizes, keying, linking, its own rules).
    fn capabilities(&self) -> Capabilities;

    /// Largest number of records one write call may carry (HubSpot 100, Salesforce 200).
    fn max_batch(&self) -> usize {
        self.capabilities().batches.write
    }

    /// Whether a `from` record's write can carry its link to a `to` parent
    /// ([`UpsertInput::links`]), so no association call is needed for that pair. The default
    /// is false: links go through [`Crm::associate_batch`].
    fn links_on_write(&self, from: ObjectKind, to: ObjectKind) -> bool {
        let _ = (from, to);
        false
    }

    /// Whether the write of a [`UpsertInput::new_record`] `from` record can carry its link to a
    /// `to` parent (HubSpot's batch create takes associations with each input; its upsert does
    /// not). The default is [`Crm::links_on_write`].
    ///
    /// The promise that goes with it, per outcome of such an input in [`Crm::upsert_batch`]:
    /// `Upserted { created: true }` means the links in [`UpsertInput::links`] were made with the
    /// record; `created: false` (the record existed: a create that found our key taken fell back
    /// to the upsert) means only the pairs [`Crm::links_on_write`] covers were, and the caller
    /// associates the others as for any existing record.
    fn links_on_create(&self, from: ObjectKind, to: ObjectKind) -> bool {
        self.links_on_write(from, to)
    }

    /// The account the credentials belong to, as the CRM reports it (a read, never a write).
    /// `None`: this CRM cannot say (the environment guard then treats it as production).
    fn account(&self) -> impl Future<Output = Result<Option<Account>, CrmError>> + Send {
        async { Ok(None) }
    }

    /// Checks that `id_property` exists on `object` as a unique-valued property and creates it
    /// when missing. Fails with [`ErrorKind::Schema`] when it exists but is not unique.
    fn ensure_id_property(
        &self,
        object: ObjectKind,
        id_property: &str,
    ) -> impl Future<Output = Result<(), CrmError>> + Send;

    /// Names of the properties defined on `object` (for preflight checks of the mapping).
    fn property_names(
        &self,
        object: ObjectKind,
    ) -> impl Future<Output = Result<Vec<String>, CrmError>> + Send;

    /// Every (non-archived) property of `object` with its type and options, for preflight
    /// checks. The default describes only names, from [`Crm::property_names`].
    fn properties(
        &self,
        object: ObjectKind,
    ) -> impl Future<Output = Result<Vec<PropertyInfo>, CrmError>> + Send {
        async move {
            Ok(self
                .property_names(object)
                .await?
                .into_iter()
                .map(|name| PropertyInfo {
                    name,
                    kind: String::new(),
                    field_type: String::new(),
                    has_unique_value: false,
                    read_only: false,
                    options: Vec::new(),
                    required: false,
                    max_length: None,
                })
                .collect())
        }
    }

    /// The pipelines of `object` and their stages (HubSpot: deals). The default has none,
    /// for CRMs without pipelines.
    fn pipelines(
        &self,
        object: ObjectKind,
    ) -> impl Future<Output = Result<Vec<Pipeline>, CrmError>> + Send {
        let _ = object;
        async { Ok(Vec::new()) }
    }

    /// Upserts up to [`Crm::max_batch`] records by `id_property`. Returns one outcome per input,
    /// in input order. A connector may create the [`UpsertInput::new_record`] inputs instead
    /// (see [`Crm::links_on_create`]); a record that turns out to exist by our key is then
    /// upserted in this same call and reported `created: false`, never created twice. An `Err` means the whole call failed and nothing can be said per record
    /// (for a transport error or a 5xx the CRM may or may not have applied it: upserting again is safe).
    fn upsert_batch(
        &self,
        object: ObjectKind,
        id_property: &str,
        inputs: &[UpsertInput],
    ) -> impl Future<Output = Result<Vec<RecordOutcome>, CrmError>> + Send;

    /// Reads one stored webhook event body of this CRM; `None` for events of objects or
    /// kinds crmsync does not sync, and for bodies it cannot read. CRMs without webhooks keep
    /// the default.
    fn parse_event(&self, body: &str) -> Option<CrmEvent> {
        let _ = body;
        None
    }

    /// Records of `object` modified after the position `(cursor_ms, after_id)`, oldest first
    /// (ties by id), with `properties`; at least `limit` of them when there are that many (a
    /// page may add a few more). A record modified exactly at `cursor_ms` with an id at or
    /// below `after_id` is left out; `after_id = None` includes every record at `cursor_ms`.
    /// The caller stores the last returned `(modified_ms, crm_id)` as its next position.
    fn changes_since(
        &self,
        object: ObjectKind,
        cursor_ms: i64,
        after_id: Option<&str>,
        properties: &[String],
        limit: usize,
    ) -> impl Future<Output = Result<Vec<ChangedRecord>, CrmError>> + Send;

    /// The current state of up to [`Crm::max_batch`] records by CRM id: the records found, with
    /// `properties` and their modification time, in no particular order. An id the CRM resolves
    /// to another record (a merge absorbed it) comes back as the survivor, whose
    /// [`ChangedRecord::merged_ids`] lists it; an id that is gone (archived, deleted) is simply
    /// absent.
    fn read_batch(
        &self,
        object: ObjectKind,
        ids: &[String],
        properties: &[String],
    ) -> impl Future<Output = Result<Vec<ChangedRecord>, CrmError>> + Send;

    /// One page of the ids of archived (deleted) records, oldest id first, and the cursor of
    /// the next page. HubSpot keeps archived records listable for 90 days.
    fn archived_page(
        &self,
        object: ObjectKind,
        after: Option<&str>,
    ) -> impl Future<Output = Result<(Vec<String>, Option<String>), CrmError>> + Send;

    /// Sets properties of up to [`Crm::max_batch`] existing records, addressed by CRM id.
    fn update_batch(
        &self,
        object: ObjectKind,
        inputs: &[UpdateInput],
    ) -> impl Future<Output = Result<(), CrmError>> + Send;

    /// Creates default (unlabelled) associations `from` -> `to`, up to [`Crm::max_batch`] per call.
    /// Creating an association that already exists is not an error.
    fn associate_batch(
        &self,
        from: ObjectKind,
        to: ObjectKind,
        pairs: &[AssociationInput],
    ) -> impl Future<Output = Result<(), CrmError>> + Send;
}
