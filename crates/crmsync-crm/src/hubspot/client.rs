//! [`HubspotClient`]: the [`Crm`] implementation for HubSpot over its v3/v4 REST API.
//!
//! Requests are sent by the shared [`Transport`] (pacing, the shared budget gate, retries with
//! full jitter, the call log); this file only says what to send and how to read the answer.
//! Two lanes pace it: HubSpot's burst window (`interval`) and its search limit (`search`, 5 a
//! second, exempt from the burst window). Every write is an upsert by our key, so retrying one
//! whose answer was lost cannot duplicate — including the batch create that carries the links
//! of records new to the engine: a create that finds our key taken falls back to the upsert.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, Url};
use secrecy::ExposeSecret;

use super::config::HubspotConfig;
use super::dialect::HubspotDialect;
use super::error as hs_error;
use super::oauth::{OAuthSession, SessionSettings};
use super::wire;
use crate::http::{Answer, Request, Session, StaticSession, Transport, TransportConfig};
use crate::pace::Lane;
use crate::{
    AssociationInput, Batches, CallGate, CallObserver, Capabilities, ChangedRecord, Crm, CrmError,
    CrmEvent, ErrorKind, Keying, ObjectKind, Operation, ParentLink, Pipeline, PropertyInfo,
    RecordOutcome, RetryPolicy, Stage, UpdateInput, UpsertInput,
};

/// The property listing the ids a record absorbed in merges (FACTS 2.4), `;`-separated.
const MERGED_IDS: &str = "hs_merged_object_ids";

/// HubSpot's limit of inputs per batch call (FACTS 2.3).
const MAX_BATCH: usize = 100;

/// HubSpot's search limit: 5 requests a second per account (FACTS 2.5).
const SEARCH_PER_SECOND: u64 = 5;

/// Records per search page (HubSpot's maximum) and the offset search refuses to page past.
const SEARCH_PAGE: usize = 200;
const SEARCH_CAP: usize = 10_000;

/// The transport's lane of search requests; every other call goes by lane 0, HubSpot's burst
/// window.
const SEARCH_LANE: usize = 1;

/// A HubSpot account reached over its REST API. Cheap to clone: clones share the HTTP
/// connection pool, the limiter and the observer, as one CRM connection must.
#[derive(Clone)]
pub struct HubspotClient {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    base_url: String,
    max_retries: u32,
}

impl fmt::Debug for HubspotClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubspotClient")
            .field("base_url", &self.inner.base_url)
            .field("max_retries", &self.inner.max_retries)
            .finish_non_exhaustive()
    }
}

impl HubspotClient {
    /// Builds a client; fails with [`ErrorKind::Config`] for a bad base URL, a token that cannot
    /// go in a header, or a zero rate limit. Sends nothing.
    pub fn new(config: HubspotConfig, observer: Option<CallObserver>) -> Result<Self, CrmError> {
        let base_url = config.base_url.trim().trim_end_matches('/').to_string();
        match Url::parse(&base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => {
                return Err(CrmError::new(
                    ErrorKind::Config,
                    format!(
                        "hubspot base_url {base_url:?} is not an http(s) url, e.g. https://api.hubapi.com"
                    ),
                ));
            }
        }
        let retry = RetryPolicy {
            max_retries: config.max_retries,
            ..config.retry
        };
        // A public app's tokens expire and are refreshed; a private app's token is fixed.
        let session: Box<dyn Session> = match &config.oauth {
            Some(oauth) => Box::new(OAuthSession::new(
                oauth,
                SessionSettings {
                    base_url: &base_url,
                    connection: &config.connection,
                    timeout: config.timeout,
                    retry,
                    observer: observer.clone(),
                },
            )?),
            None => Box::new(StaticSession::bearer(
                &base_url,
                config.token.expose_secret(),
                "hubspot",
            )?),
        };
        let interval = Lane::rolling(
            "interval",
            config.requests_per_interval,
            config.interval,
            config.headroom_percent,
        )?;
        // 5 in any 1.2 s for the gate: HubSpot counts per second, and a request reserved at
        // the end of one second may arrive in the next; the margin absorbs that skew.
        let search = Lane::spaced(
            "search",
            u32::try_from(SEARCH_PER_SECOND).unwrap_or(5),
            Duration::from_millis(1200),
        )?;
        let transport = Transport::new(
            TransportConfig {
                connection: config.connection.clone(),
                timeout: config.timeout,
                retry,
                lanes: vec![interval, search],
            },
            Box::new(HubspotDialect {
                headroom_percent: config.headroom_percent,
                interval: config.interval,
                oauth: config.oauth.is_some(),
            }),
            session,
            observer,
        )?;
        Ok(HubspotClient {
            inner: Arc::new(Inner {
                transport,
                base_url,
                max_retries: config.max_retries,
            }),
        })
    }

    /// Admits every attempt through `gate` from now on (the shared budget of several
    /// workers). Set once, before the first call; a second gate is ignored.
    pub fn set_gate(&self, gate: Arc<dyn CallGate>) {
        self.inner.transport.set_gate(gate);
    }

    /// The API root this client talks to.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    async fn property(
        &self,
        object: ObjectKind,
        name: &str,
    ) -> Result<Option<wire::Property>, CrmError> {
        let what = format!("{object} property {name} lookup");
        let answer = self
            .inner
            .transport
            .send(
                Request::new(
                    Method::GET,
                    Operation::Schema,
                    format!("/crm/v3/properties/{object}/{{propertyName}}"),
                    format!("/crm/v3/properties/{object}/{name}"),
                    &what,
                )
                .expect(&[404]),
            )
            .await?;
        if answer.status == 404 {
            return Ok(None);
        }
        serde_json::from_str(&answer.body)
            .map(Some)
            .map_err(|e| hs_error::protocol(&what, e))
    }

    /// `Ok(true)` when created, `Ok(false)` when HubSpot says it already exists (409).
    async fn create_id_property(&self, object: ObjectKind, name: &str) -> Result<bool, CrmError> {
        let what = format!("{object} property {name} creation");
        let label = format!("crmsync key ({name})");
        let body = wire::PropertyCreate {
            name,
            label: &label,
            description: "Key of the app record this object is synced from. Written by crmsync; do not edit.",
            kind: "string",
            field_type: "text",
            group_name: group_name(object),
            has_unique_value: true,
        };
        let answer = self
            .inner
            .transport
            .send(
                Request::new(
                    Method::POST,
                    Operation::Schema,
                    format!("/crm/v3/properties/{object}"),
                    format!("/crm/v3/properties/{object}"),
                    &what,
                )
                .json(to_json(&what, &body)?)
                .expect(&[409]),
            )
            .await?;
        Ok(answer.status != 409)
    }
}

impl HubspotClient {
    /// Sends one request through the connection's transport (for the other files of this
    /// folder: the schema administration).
    pub(super) async fn send(&self, request: Request<'_>) -> Result<Answer, CrmError> {
        self.inner.transport.send(request).await
    }

    /// Every property definition of `object`, as HubSpot lists them (the preflight's view and
    /// the schema export's).
    pub(super) async fn property_listing(
        &self,
        object: ObjectKind,
    ) -> Result<wire::CollectionResponseProperty, CrmError> {
        let what = format!("{object} property listing");
        self.get_json(
            Operation::Schema,
            &what,
            format!("/crm/v3/properties/{object}"),
            None,
        )
        .await
    }

    /// Every pipeline of `object` with its stages, as HubSpot lists them.
    pub(super) async fn pipeline_listing(
        &self,
        object: ObjectKind,
    ) -> Result<wire::CollectionResponsePipeline, CrmError> {
        let what = format!("{object} pipeline listing");
        self.get_json(
            Operation::Schema,
            &what,
            format!("/crm/v3/pipelines/{object}"),
            None,
        )
        .await
    }

    /// GETs `path` (default: `endpoint`; a path with a query string is logged as its endpoint)
    /// and reads the JSON answer.
    pub(super) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        operation: Operation,
        what: &str,
        endpoint: String,
        path: Option<String>,
    ) -> Result<T, CrmError> {
        let answer = self
            .inner
            .transport
            .send(Request::new(
                Method::GET,
                operation,
                endpoint.clone(),
                path.unwrap_or(endpoint),
                what,
            ))
            .await?;
        serde_json::from_str(&answer.body).map_err(|e| hs_error::protocol(what, e))
    }

    /// POSTs a JSON body to `path` (also its endpoint in the call log); `records` is how many
    /// records it carries.
    async fn post(
        &self,
        operation: Operation,
        what: &str,
        path: String,
        body: Vec<u8>,
        records: usize,
    ) -> Result<Answer, CrmError> {
        self.inner
            .transport
            .send(
                Request::new(Method::POST, operation, path.clone(), path, what)
                    .json(body)
                    .records(records),
            )
            .await
    }

    /// POSTs a batch whose answer matters only for its errors (the first one is returned).
    async fn post_batch(
        &self,
        operation: Operation,
        what: &str,
        path: String,
        body: Vec<u8>,
        records: usize,
    ) -> Result<(), CrmError> {
        let answer = self.post(operation, what, path, body, records).await?;
        let response: wire::BatchResponseDefaultAssociation =
            serde_json::from_str(&answer.body).map_err(|e| hs_error::protocol(what, e))?;
        match response.errors.first() {
            Some(first) => Err(hs_error::batch_error(what, first)),
            None => Ok(()),
        }
    }
}

/// Writes of records: the plain upsert, and the create that carries associations with its
/// fallback for records that exist already.
impl HubspotClient {
    /// `POST …/batch/upsert` of `inputs` by `id_property`. Links are not written here.
    async fn upsert_only(
        &self,
        object: ObjectKind,
        id_property: &str,
        inputs: &[UpsertInput],
    ) -> Result<Vec<RecordOutcome>, CrmError> {
        let what = format!("{object} batch upsert");
        let body = wire::BatchInputUpsert {
            inputs: inputs
                .iter()
                .map(|input| wire::SimplePublicObjectBatchInputUpsert {
                    id: &input.key,
                    id_property,
                    properties: with_key(input, id_property),
                })
                .collect(),
        };
        let answer = self
            .post(
                Operation::Upsert,
                &what,
                format!("/crm/v3/objects/{object}/batch/upsert"),
                to_json(&what, &body)?,
                inputs.len(),
            )
            .await?;
        let response: wire::BatchResponseUpsert =
            serde_json::from_str(&answer.body).map_err(|e| hs_error::protocol(&what, e))?;
        match_outcomes(object, id_property, inputs, &response, &what)
    }

    /// Creates `inputs` with their links, falling back to [`Self::adopt_existing`] for the
    /// records whose key HubSpot says is taken. A whole-request refusal names one record only
    /// (FACTS 2.3: the first duplicate), so the fallback covers every input of the call; a 207
    /// that ties the refusal to records covers just those.
    async fn create_linked(
        &self,
        object: ObjectKind,
        id_property: &str,
        inputs: &[UpsertInput],
    ) -> Result<Vec<RecordOutcome>, CrmError> {
        let outcomes = match self.create_once(object, id_property, inputs).await {
            Ok(outcomes) => outcomes,
            Err(e) if hs_error::is_value_taken(&e) => {
                return self.adopt_existing(object, id_property, inputs).await;
            }
            Err(e) => return Err(e),
        };
        let taken: Vec<usize> = outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| {
                matches!(o, RecordOutcome::Rejected { error, .. } if hs_error::is_value_taken(error))
            })
            .map(|(i, _)| i)
            .collect();
        if taken.is_empty() {
            return Ok(outcomes);
        }
        let again: Vec<UpsertInput> = taken.iter().map(|&i| inputs[i].clone()).collect();
        let adopted = self.adopt_existing(object, id_property, &again).await?;
        let mut slots: Vec<Option<RecordOutcome>> = outcomes.into_iter().map(Some).collect();
        place(&mut slots, &taken, adopted);
        complete(slots, inputs, &format!("{object} batch create"))
    }

    /// After a create found a key taken: reads which of `inputs` exist by `id_property`, upserts
    /// those (reported `created: false`, so the engine associates them) and creates the others
    /// with their links. A key still taken on that create is a value held by a record that is
    /// not ours (another contact's e-mail): its refusal is returned for the engine to isolate.
    async fn adopt_existing(
        &self,
        object: ObjectKind,
        id_property: &str,
        inputs: &[UpsertInput],
    ) -> Result<Vec<RecordOutcome>, CrmError> {
        let existing = self.existing_keys(object, id_property, inputs).await?;
        let (found, missing): (Vec<usize>, Vec<usize>) =
            (0..inputs.len()).partition(|&i| existing.contains(&inputs[i].key));
        let mut outcomes: Vec<Option<RecordOutcome>> = vec![None; inputs.len()];
        if !found.is_empty() {
            let upserted = self
                .upsert_only(object, id_property, &subset(inputs, &found))
                .await?;
            place(&mut outcomes, &found, upserted);
        }
        if !missing.is_empty() {
            let created = self
                .create_once(object, id_property, &subset(inputs, &missing))
                .await?;
            place(&mut outcomes, &missing, created);
        }
        complete(outcomes, inputs, &format!("{object} batch create"))
    }

    /// `POST …/batch/create` of `inputs`, each with its associations; every record stored is
    /// `created: true`.
    async fn create_once(
        &self,
        object: ObjectKind,
        id_property: &str,
        inputs: &[UpsertInput],
    ) -> Result<Vec<RecordOutcome>, CrmError> {
        let what = format!("{object} batch create");
        let body = wire::BatchInputCreate {
            inputs: inputs
                .iter()
                .map(|input| wire::SimplePublicObjectInputForCreate {
                    // Our key is a property like any other here: the record carries it, so the
                    // next write finds it by `id_property`.
                    properties: with_key(input, id_property),
                    associations: input
                        .links
                        .iter()
                        .filter_map(|link| {
                            Some(wire::PublicAssociationsForObject {
                                to: wire::PublicObjectId { id: &link.crm_id },
                                types: vec![wire::AssociationSpec {
                                    association_category: "HUBSPOT_DEFINED",
                                    association_type_id: wire::unlabelled_type_id(
                                        object,
                                        link.object,
                                    )?,
                                }],
                            })
                        })
                        .collect(),
                })
                .collect(),
        };
        let answer = self
            .post(
                Operation::Create,
                &what,
                format!("/crm/v3/objects/{object}/batch/create"),
                to_json(&what, &body)?,
                inputs.len(),
            )
            .await?;
        let response: wire::BatchResponseUpsert =
            serde_json::from_str(&answer.body).map_err(|e| hs_error::protocol(&what, e))?;
        let outcomes = match_outcomes(object, id_property, inputs, &response, &what)?;
        Ok(outcomes
            .into_iter()
            .map(|o| match o {
                RecordOutcome::Upserted { key, crm_id, .. } => RecordOutcome::Upserted {
                    key,
                    crm_id,
                    created: true,
                },
                rejected => rejected,
            })
            .collect())
    }

    /// The keys among `inputs` a live record holds in `id_property` (`batch/read` by
    /// `idProperty`; a 207 listing the others is an answer, not a failure).
    async fn existing_keys(
        &self,
        object: ObjectKind,
        id_property: &str,
        inputs: &[UpsertInput],
    ) -> Result<std::collections::HashSet<String>, CrmError> {
        let what = format!("{object} batch read by {id_property}");
        let body = wire::BatchReadRequest {
            inputs: inputs
                .iter()
                .map(|i| wire::PublicObjectId { id: &i.key })
                .collect(),
            properties: vec![id_property],
            id_property: Some(id_property),
        };
        let answer = self
            .post(
                Operation::Read,
                &what,
                format!("/crm/v3/objects/{object}/batch/read"),
                to_json(&what, &body)?,
                inputs.len(),
            )
            .await?;
        let response: wire::BatchReadResponse =
            serde_json::from_str(&answer.body).map_err(|e| hs_error::protocol(&what, e))?;
        Ok(response
            .results
            .into_iter()
            .filter_map(|r| r.properties.get(id_property).cloned().flatten())
            .collect())
    }
}

/// Whether `input` is written by a create carrying its links (see [`links_on_create`]).
fn creates_linked(object: ObjectKind, input: &UpsertInput) -> bool {
    input.new_record
        && input
            .links
            .iter()
            .any(|l| wire::unlabelled_type_id(object, l.object).is_some())
}

/// HubSpot's [`Crm::links_on_create`]: a create carries a link when HubSpot's unlabelled
/// association type for the pair is known (FACTS 2.6); its upsert carries none.
pub fn links_on_create(from: ObjectKind, to: ObjectKind) -> bool {
    wire::unlabelled_type_id(from, to).is_some()
}

/// The input's properties plus our key under `id_property`. Writing the key as a property also
/// makes HubSpot echo it in the result, which is how results are matched back to inputs.
fn with_key<'a>(input: &'a UpsertInput, id_property: &'a str) -> BTreeMap<&'a str, &'a str> {
    let mut properties: BTreeMap<&str, &str> = input
        .properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    properties.insert(id_property, input.key.as_str());
    properties
}

/// Puts the outcomes of a sub-call (in the order of `indices`) into their input slots.
fn place(slots: &mut [Option<RecordOutcome>], indices: &[usize], outcomes: Vec<RecordOutcome>) {
    for (&i, outcome) in indices.iter().zip(outcomes) {
        if let Some(slot) = slots.get_mut(i) {
            *slot = Some(outcome);
        }
    }
}

/// The outcomes in input order, or an error naming the first input no sub-call answered for
/// (each sub-call answers one outcome per input, so this is a safeguard, not a path).
fn complete(
    slots: Vec<Option<RecordOutcome>>,
    inputs: &[UpsertInput],
    what: &str,
) -> Result<Vec<RecordOutcome>, CrmError> {
    slots
        .into_iter()
        .zip(inputs)
        .map(|(slot, input)| {
            slot.ok_or_else(|| {
                hs_error::protocol(what, format_args!("no result for record {}", input.key))
            })
        })
        .collect()
}

impl Crm for HubspotClient {
    async fn account(&self) -> Result<Option<crate::Account>, CrmError> {
        let what = "account details";
        let details: wire::AccountDetails = self
            .get_json(
                Operation::Account,
                what,
                "/account-info/v3/details".to_string(),
                None,
            )
            .await?;
        Ok(Some(crate::Account::hubspot(
            details.portal_id,
            &details.account_type,
        )))
    }

    fn parse_event(&self, body: &str) -> Option<CrmEvent> {
        super::events::parse_event(body)
    }

    fn links_on_create(&self, from: ObjectKind, to: ObjectKind) -> bool {
        links_on_create(from, to)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            name: "HubSpot",
            batches: Batches {
                write: MAX_BATCH,
                read: MAX_BATCH,
                associate: MAX_BATCH,
            },
            keying: Keying::UniqueProperty,
            parents: ParentLink::OnCreate,
            // HubSpot dedups contacts by e-mail on top of our unique key (FACTS 2.4).
            unique_email: Some(ObjectKind::Contacts),
            deal_currency: Some("deal_currency_code"),
        }
    }

    async fn ensure_id_property(
        &self,
        object: ObjectKind,
        id_property: &str,
    ) -> Result<(), CrmError> {
        check_property_name(id_property)?;
        // Two rounds: a 409 on create means someone created it between our GET and POST;
        // the second GET then judges what they created.
        for _ in 0..2 {
            match self.property(object, id_property).await? {
                Some(property) if property.has_unique_value => return Ok(()),
                Some(_) => return Err(not_unique(object, id_property)),
                None => {
                    if self.create_id_property(object, id_property).await? {
                        tracing::info!(crm = "hubspot", %object, property = id_property, "created hubspot id property");
                        return Ok(());
                    }
                }
            }
        }
        Err(CrmError::new(
            ErrorKind::Protocol,
            format!(
                "hubspot says {object} property {id_property} already exists but does not return it; \
                 check it in hubspot's property settings"
            ),
        ))
    }

    async fn property_names(&self, object: ObjectKind) -> Result<Vec<String>, CrmError> {
        Ok(self
            .properties(object)
            .await?
            .into_iter()
            .map(|p| p.name)
            .collect())
    }

    async fn properties(&self, object: ObjectKind) -> Result<Vec<PropertyInfo>, CrmError> {
        let listing = self.property_listing(object).await?;
        Ok(listing
            .results
            .into_iter()
            .filter(|p| !p.archived)
            .map(|p| PropertyInfo {
                read_only: p.calculated
                    || p.modification_metadata
                        .as_ref()
                        .is_some_and(|m| m.read_only_value),
                options: p.options.into_iter().map(|o| o.value).collect(),
                kind: p.kind.unwrap_or_default(),
                field_type: p.field_type.unwrap_or_default(),
                has_unique_value: p.has_unique_value,
                name: p.name,
                required: false,
                max_length: None,
            })
            .collect())
    }

    async fn pipelines(&self, object: ObjectKind) -> Result<Vec<Pipeline>, CrmError> {
        // Only deals (and tickets, which we do not sync) have pipelines in HubSpot.
        if object != ObjectKind::Deals {
            return Ok(Vec::new());
        }
        let listing = self.pipeline_listing(object).await?;
        Ok(listing
            .results
            .into_iter()
            .filter(|p| !p.archived)
            .map(|p| Pipeline {
                id: p.id,
                label: p.label,
                stages: p
                    .stages
                    .into_iter()
                    .filter(|s| !s.archived)
                    .map(|s| Stage {
                        id: s.id,
                        label: s.label,
                    })
                    .collect(),
            })
            .collect())
    }

    async fn upsert_batch(
        &self,
        object: ObjectKind,
        id_property: &str,
        inputs: &[UpsertInput],
    ) -> Result<Vec<RecordOutcome>, CrmError> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        check_property_name(id_property)?;
        check_batch_size(&format!("{object} batch upsert"), inputs.len())?;
        // Records new to the engine with parents to link are created with their associations
        // in one call (FACTS 2.3), instead of an upsert plus an association call per parent
        // type: HubSpot's upsert takes no associations.
        let (create, upsert): (Vec<usize>, Vec<usize>) =
            (0..inputs.len()).partition(|&i| creates_linked(object, &inputs[i]));
        if create.is_empty() {
            return self.upsert_only(object, id_property, inputs).await;
        }
        let mut outcomes: Vec<Option<RecordOutcome>> = vec![None; inputs.len()];
        let created = self
            .create_linked(object, id_property, &subset(inputs, &create))
            .await?;
        place(&mut outcomes, &create, created);
        if !upsert.is_empty() {
            let upserted = self
                .upsert_only(object, id_property, &subset(inputs, &upsert))
                .await?;
            place(&mut outcomes, &upsert, upserted);
        }
        complete(outcomes, inputs, &format!("{object} batch upsert"))
    }

    async fn changes_since(
        &self,
        object: ObjectKind,
        cursor_ms: i64,
        after_id: Option<&str>,
        properties: &[String],
        limit: usize,
    ) -> Result<Vec<ChangedRecord>, CrmError> {
        for p in properties {
            check_property_name(p)?;
        }
        let modified_prop = last_modified_property(object);
        let what = format!("{object} search for changes");
        let mut wanted: Vec<&str> = properties.iter().map(String::as_str).collect();
        wanted.extend([modified_prop, "hs_object_id", MERGED_IDS]);
        wanted.sort_unstable();
        wanted.dedup();
        // Position already handled: (ms, id). Records at or before it are skipped.
        let start = (cursor_ms, after_id.map(id_order));
        let mut floor = cursor_ms;
        let mut offset = 0usize;
        let mut out: Vec<ChangedRecord> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        loop {
            let body = wire::SearchRequest {
                filter_groups: vec![wire::FilterGroup {
                    filters: vec![wire::Filter {
                        property_name: modified_prop,
                        operator: "GTE",
                        value: floor.to_string(),
                    }],
                }],
                sorts: vec![wire::Sort {
                    property_name: modified_prop,
                    direction: "ASCENDING",
                }],
                properties: wanted.clone(),
                limit: count(SEARCH_PAGE),
                after: (offset > 0).then(|| offset.to_string()),
            };
            let answer = self
                .inner
                .transport
                .send(
                    Request::new(
                        Method::POST,
                        Operation::Changes,
                        format!("/crm/v3/objects/{object}/search"),
                        format!("/crm/v3/objects/{object}/search"),
                        &what,
                    )
                    .json(to_json(&what, &body)?)
                    .lane(SEARCH_LANE),
                )
                .await?;
            let page: wire::SearchResponse =
                serde_json::from_str(&answer.body).map_err(|e| hs_error::protocol(&what, e))?;
            let page_len = page.results.len();
            let mut last_ms = floor;
            for record in page.results {
                let modified_ms = record
                    .properties
                    .get(modified_prop)
                    .and_then(|v| v.as_deref())
                    .and_then(parse_ms)
                    .ok_or_else(|| {
                        hs_error::protocol(
                            &what,
                            format_args!("record {} has no readable {modified_prop}", record.id),
                        )
                    })?;
                last_ms = last_ms.max(modified_ms);
                let position = (modified_ms, Some(id_order(&record.id)));
                if position <= start || !seen.insert(record.id.clone()) {
                    continue;
                }
                out.push(ChangedRecord {
                    properties: properties
                        .iter()
                        .map(|p| {
                            let v = record.properties.get(p).cloned().flatten();
                            (p.clone(), v.unwrap_or_default())
                        })
                        .collect(),
                    merged_ids: merged_ids(&record.properties),
                    crm_id: record.id,
                    modified_ms,
                });
            }
            let next = page
                .paging
                .and_then(|p| p.next)
                .and_then(|n| n.after)
                .and_then(|a| a.parse::<usize>().ok());
            let Some(next) = next else { break };
            if out.len() >= limit || page_len == 0 {
                break;
            }
            if next + SEARCH_PAGE > SEARCH_CAP {
                // Search refuses to page past 10,000: start again from the last timestamp seen;
                // records already returned are skipped by id.
                if last_ms == floor {
                    return Err(hs_error::protocol(
                        &what,
                        format_args!(
                            "more than {SEARCH_CAP} records share the modification time {floor}"
                        ),
                    ));
                }
                floor = last_ms;
                offset = 0;
            } else {
                offset = next;
            }
        }
        out.sort_by_key(|r| (r.modified_ms, id_order(&r.crm_id)));
        Ok(out)
    }

    async fn read_batch(
        &self,
        object: ObjectKind,
        ids: &[String],
        properties: &[String],
    ) -> Result<Vec<ChangedRecord>, CrmError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        for p in properties {
            check_property_name(p)?;
        }
        let what = format!("{object} batch read");
        check_batch_size(&what, ids.len())?;
        let modified_prop = last_modified_property(object);
        let mut wanted: Vec<&str> = properties.iter().map(String::as_str).collect();
        wanted.extend([modified_prop, MERGED_IDS]);
        wanted.sort_unstable();
        wanted.dedup();
        let body = wire::BatchReadRequest {
            inputs: ids.iter().map(|id| wire::PublicObjectId { id }).collect(),
            properties: wanted,
            id_property: None,
        };
        let answer = self
            .post(
                Operation::Read,
                &what,
                format!("/crm/v3/objects/{object}/batch/read"),
                to_json(&what, &body)?,
                ids.len(),
            )
            .await?;
        let response: wire::BatchReadResponse =
            serde_json::from_str(&answer.body).map_err(|e| hs_error::protocol(&what, e))?;
        // A 207 lists the ids that no longer exist; that is an answer, not a failure.
        if let Some(other) = response
            .errors
            .iter()
            .find(|e| e.category.as_deref() != Some("OBJECT_NOT_FOUND"))
        {
            return Err(hs_error::batch_error(&what, other));
        }
        Ok(response
            .results
            .into_iter()
            .map(|record| ChangedRecord {
                modified_ms: record
                    .properties
                    .get(modified_prop)
                    .and_then(|v| v.as_deref())
                    .and_then(parse_ms)
                    .unwrap_or(0),
                properties: properties
                    .iter()
                    .map(|p| {
                        let v = record.properties.get(p).cloned().flatten();
                        (p.clone(), v.unwrap_or_default())
                    })
                    .collect(),
                merged_ids: merged_ids(&record.properties),
                crm_id: record.id,
            })
            .collect())
    }

    async fn archived_page(
        &self,
        object: ObjectKind,
        after: Option<&str>,
    ) -> Result<(Vec<String>, Option<String>), CrmError> {
        let what = format!("{object} archived listing");
        let mut path =
            format!("/crm/v3/objects/{object}?archived=true&limit=100&properties=hs_object_id");
        if let Some(a) = after {
            if !a
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(hs_error::protocol(
                    &what,
                    format_args!("unexpected paging cursor `{a}`"),
                ));
            }
            path.push_str("&after=");
            path.push_str(a);
        }
        let page: wire::SearchResponse = self
            .get_json(
                Operation::Changes,
                &what,
                format!("/crm/v3/objects/{object}"),
                Some(path),
            )
            .await?;
        let next = page.paging.and_then(|p| p.next).and_then(|n| n.after);
        Ok((page.results.into_iter().map(|r| r.id).collect(), next))
    }

    async fn update_batch(
        &self,
        object: ObjectKind,
        inputs: &[UpdateInput],
    ) -> Result<(), CrmError> {
        if inputs.is_empty() {
            return Ok(());
        }
        let what = format!("{object} batch update");
        check_batch_size(&what, inputs.len())?;
        let body = wire::BatchUpdateRequest {
            inputs: inputs
                .iter()
                .map(|i| wire::BatchUpdateItem {
                    id: &i.crm_id,
                    properties: i
                        .properties
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect(),
                })
                .collect(),
        };
        self.post_batch(
            Operation::Update,
            &what,
            format!("/crm/v3/objects/{object}/batch/update"),
            to_json(&what, &body)?,
            inputs.len(),
        )
        .await
    }

    async fn associate_batch(
        &self,
        from: ObjectKind,
        to: ObjectKind,
        pairs: &[AssociationInput],
    ) -> Result<(), CrmError> {
        if pairs.is_empty() {
            return Ok(());
        }
        let what = format!("{from} to {to} batch association");
        check_batch_size(&what, pairs.len())?;
        let body = wire::BatchInputDefaultAssociation {
            inputs: pairs
                .iter()
                .map(|p| wire::PublicDefaultAssociationMultiPost {
                    from: wire::PublicObjectId { id: &p.from_id },
                    to: wire::PublicObjectId { id: &p.to_id },
                })
                .collect(),
        };
        // 200 is the documented answer (FACTS 2.6); a 207 would list the pairs that failed.
        self.post_batch(
            Operation::Associate,
            &what,
            format!("/crm/v4/associations/{from}/{to}/batch/associate/default"),
            to_json(&what, &body)?,
            pairs.len(),
        )
        .await
    }
}

/// Pairs HubSpot's batch answer with our inputs, in input order.
///
/// Results are matched by the id property's value they echo; errors by the ids in their
/// `context.ids` / `id` (FACTS 2.3). When HubSpot echoes no key at all and reports no error, the
/// results are taken in input order. An input that can be matched to neither means we cannot
/// tell which record failed: the whole call is then an error, so the engine splits the batch.
fn match_outcomes(
    object: ObjectKind,
    id_property: &str,
    inputs: &[UpsertInput],
    response: &wire::BatchResponseUpsert,
    what: &str,
) -> Result<Vec<RecordOutcome>, CrmError> {
    let by_key: HashMap<&str, &wire::SimplePublicUpsertObject> = response
        .results
        .iter()
        .filter_map(|r| Some((r.properties.get(id_property)?.as_deref()?, r)))
        .collect();
    let mut errors_by_key: HashMap<String, &wire::StandardError> = HashMap::new();
    let mut unattributed: Vec<&wire::StandardError> = Vec::new();
    for err in &response.errors {
        let mut ids = wire::context_strings(&err.context, "ids");
        ids.extend(wire::context_strings(&err.context, "id"));
        ids.extend(err.id.clone());
        let mut attributed = false;
        for id in ids {
            if inputs.iter().any(|i| i.key == id) {
                errors_by_key.insert(id, err);
                attributed = true;
            }
        }
        if !attributed {
            unattributed.push(err);
        }
    }

    let by_order =
        by_key.is_empty() && response.errors.is_empty() && response.results.len() == inputs.len();
    let mut outcomes = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.iter().enumerate() {
        let result = if by_order {
            response.results.get(index)
        } else {
            by_key.get(input.key.as_str()).copied()
        };
        if let Some(result) = result {
            outcomes.push(RecordOutcome::Upserted {
                key: input.key.clone(),
                crm_id: result.id.clone(),
                created: result.new,
            });
        } else if let Some(err) = errors_by_key.get(&input.key) {
            outcomes.push(RecordOutcome::Rejected {
                key: input.key.clone(),
                error: hs_error::record_error(object, &input.key, err),
            });
        } else if let Some(err) = unattributed.first() {
            return Err(hs_error::batch_error(what, err));
        } else {
            return Err(hs_error::protocol(
                what,
                format_args!("no result for record {}", input.key),
            ));
        }
    }
    Ok(outcomes)
}

/// The ids a record absorbed, from its `hs_merged_object_ids` (`;`-separated).
fn merged_ids(properties: &BTreeMap<String, Option<String>>) -> Vec<String> {
    properties
        .get(MERGED_IDS)
        .and_then(|v| v.as_deref())
        .map(|ids| {
            ids.split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The last-modified property search filters and sorts on (FACTS 2.5).
fn last_modified_property(object: ObjectKind) -> &'static str {
    match object {
        ObjectKind::Contacts => "lastmodifieddate",
        ObjectKind::Companies
        | ObjectKind::Deals
        | ObjectKind::LineItems
        | ObjectKind::Products => "hs_lastmodifieddate",
    }
}

/// Orders record ids numerically (HubSpot ids are numbers sent as strings), longer first by
/// length so "10" sorts after "9" even if an id is not a number.
fn id_order(id: &str) -> (usize, String) {
    let digits = id.trim_start_matches('0');
    (digits.len(), digits.to_string())
}

/// A HubSpot date-time value as ms since the epoch: epoch ms, or ISO-8601 / RFC 3339.
fn parse_ms(value: &str) -> Option<i64> {
    let v = value.trim();
    if let Ok(ms) = v.parse::<i64>() {
        return Some(ms);
    }
    chrono::DateTime::parse_from_rfc3339(v)
        .ok()
        .map(|d| d.timestamp_millis())
}

/// The inputs at `indices`, in that order (one half of a batch split between two calls).
fn subset(inputs: &[UpsertInput], indices: &[usize]) -> Vec<UpsertInput> {
    indices.iter().map(|&i| inputs[i].clone()).collect()
}

/// HubSpot's default property group per object (FACTS 2.7).
pub(super) fn group_name(object: ObjectKind) -> &'static str {
    match object {
        ObjectKind::Contacts => "contactinformation",
        ObjectKind::Companies => "companyinformation",
        ObjectKind::Deals => "dealinformation",
        ObjectKind::LineItems => "lineiteminformation",
        ObjectKind::Products => "productinformation",
    }
}

fn not_unique(object: ObjectKind, name: &str) -> CrmError {
    CrmError::new(
        ErrorKind::Schema,
        format!(
            "hubspot {object} property {name} exists but is not unique-valued, so upserts cannot use it \
             as their id property; hubspot cannot make an existing property unique: archive {name} in \
             hubspot's property settings and run again so crmsync creates it, or choose another id property"
        ),
    )
    .with_property(name)
}

/// HubSpot internal names are lowercase letters, digits and underscores; checking also keeps
/// the name from altering the request path.
fn check_property_name(name: &str) -> Result<(), CrmError> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(CrmError::new(
            ErrorKind::Config,
            format!(
                "{name:?} is not a valid hubspot property name: use lowercase letters, digits and underscores, \
                 starting with a letter (e.g. crmsync_id)"
            ),
        ))
    }
}

fn check_batch_size(what: &str, len: usize) -> Result<(), CrmError> {
    if len > MAX_BATCH {
        return Err(CrmError::new(
            ErrorKind::Rejected,
            format!("{what} of {len} records not sent: hubspot takes at most {MAX_BATCH} per call"),
        ));
    }
    Ok(())
}

pub(super) fn to_json(what: &str, body: &impl serde::Serialize) -> Result<Vec<u8>, CrmError> {
    serde_json::to_vec(body).map_err(|e| {
        CrmError::new(
            ErrorKind::Protocol,
            format!("{what} body cannot be encoded as json: {e}"),
        )
    })
}

fn count(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}
