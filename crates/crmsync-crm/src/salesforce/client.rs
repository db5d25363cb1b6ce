//! [`SalesforceClient`]: the [`Crm`] implementation for Salesforce over its REST API.
//!
//! Requests go through the shared [`Transport`] (pacing, the shared budget gate, retries, the
//! call log) with an OAuth session; this file says what to send and how to read the answer:
//! - writes are sObject Collections upserts by the External ID field holding our key (200 per
//!   call, `allOrNone=false`, one result per record in request order), so a retried batch never
//!   duplicates; an external id two records share fails that record only;
//! - values are typed by the object's describe (numbers, booleans, `null` for an empty value),
//!   because Salesforce refuses a JSON string for a number or a checkbox;
//! - changes are read by SOQL on `SystemModstamp` with an `Id` tie-break, following
//!   `nextRecordsUrl`; merges by `MasterRecordId` on the absorbed (deleted) records; deletions
//!   by `queryAll` on `IsDeleted`, with an id cursor (FACTS 3.6, 3.7, 3.11).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;

use super::auth::OAuthSession;
use super::config::SalesforceConfig;
use super::dialect::SalesforceDialect;
use super::error as sf_error;
use super::objects::{self, Link, is_field_name, is_record_id, sobject, soql_string};
use super::wire;
use crate::http::{Answer, Request, Transport, TransportConfig};
use crate::pace::Lane;
use crate::{
    AssociationInput, Batches, CallGate, CallObserver, Capabilities, ChangedRecord, Crm, CrmError,
    ErrorKind, Keying, ObjectKind, Operation, ParentLink, PropertyInfo, RecordOutcome, UpdateInput,
    UpsertInput,
};

/// Salesforce's limit of records per collection call (FACTS 3.5).
const MAX_BATCH: usize = 200;

/// Ids per SOQL `IN (...)` list: 200 18-character ids keep the URL well under 16 KB.
const IDS_PER_QUERY: usize = 200;

/// Rows of one deletion listing page.
const DELETED_PAGE: usize = 2000;

/// Field-name suffix of custom fields: only those can be created through the Tooling API.
const CUSTOM_SUFFIX: &str = "__c";

/// A Salesforce org reached over its REST API. Cheap to clone.
#[derive(Clone)]
pub struct SalesforceClient {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    /// `/services/data/vXX.X`.
    api: String,
    /// Describe results by sObject, so a batch's values are typed without a call each time.
    describes: Mutex<HashMap<&'static str, Arc<Vec<wire::Field>>>>,
}

impl fmt::Debug for SalesforceClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SalesforceClient")
            .field("api", &self.inner.api)
            .finish_non_exhaustive()
    }
}

impl SalesforceClient {
    /// Builds a client; sends nothing (the first call obtains a token). Fails with
    /// [`ErrorKind::Config`] for a bad login URL or API version.
    pub fn new(config: SalesforceConfig, observer: Option<CallObserver>) -> Result<Self, CrmError> {
        let version = config.api_version.trim();
        if !version
            .split_once('.')
            .is_some_and(|(a, b)| a.parse::<u32>().is_ok_and(|n| n >= 46) && b == "0")
        {
            return Err(CrmError::new(
                ErrorKind::Config,
                format!(
                    "salesforce api_version {version:?} is not usable: collection upserts need 46.0 or later, e.g. \"59.0\""
                ),
            ));
        }
        let session = OAuthSession::new(&config, observer.clone())?;
        let lane = Lane::spaced(
            "interval",
            config.requests_per_second.max(1),
            std::time::Duration::from_secs(1),
        )?;
        let transport = Transport::new(
            TransportConfig {
                connection: config.connection.clone(),
                timeout: config.timeout,
                retry: config.retry,
                lanes: vec![lane],
            },
            Box::new(SalesforceDialect),
            Box::new(session),
            observer,
        )?;
        Ok(SalesforceClient {
            inner: Arc::new(Inner {
                transport,
                api: format!("/services/data/v{version}"),
                describes: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Admits every attempt through `gate` from now on (the shared budget of several workers).
    pub fn set_gate(&self, gate: Arc<dyn CallGate>) {
        self.inner.transport.set_gate(gate);
    }

    /// The API host the token answer named (obtaining a token when there is none).
    pub async fn instance_url(&self) -> Result<String, CrmError> {
        Ok(self.inner.transport.credentials().await?.base_url)
    }

    /// `/services/data/vXX.X`, the root of this client's REST paths.
    pub(super) fn api(&self) -> &str {
        &self.inner.api
    }

    pub(super) async fn send(&self, req: Request<'_>) -> Result<Answer, CrmError> {
        self.inner.transport.send(req).await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        operation: Operation,
        what: &str,
        endpoint: String,
        path: String,
    ) -> Result<T, CrmError> {
        let answer = self
            .send(Request::new(Method::GET, operation, endpoint, path, what))
            .await?;
        serde_json::from_str(&answer.body).map_err(|e| sf_error::protocol(what, e))
    }

    /// The fields of `object` (cached after the first call).
    pub(super) async fn describe(
        &self,
        object: ObjectKind,
    ) -> Result<Arc<Vec<wire::Field>>, CrmError> {
        let name = sobject(object);
        if let Some(found) = self.cached(name) {
            return Ok(found);
        }
        let what = format!("{name} describe");
        let described: wire::Describe = self
            .get_json(
                Operation::Schema,
                &what,
                format!("{}/sobjects/{{sobject}}/describe", self.inner.api),
                format!("{}/sobjects/{name}/describe", self.inner.api),
            )
            .await?;
        let fields = Arc::new(described.fields);
        if let Ok(mut cache) = self.inner.describes.lock() {
            cache.insert(name, fields.clone());
        }
        Ok(fields)
    }

    fn cached(&self, name: &str) -> Option<Arc<Vec<wire::Field>>> {
        self.inner
            .describes
            .lock()
            .ok()
            .and_then(|c| c.get(name).cloned())
    }

    pub(super) fn forget_describe(&self, object: ObjectKind) {
        if let Ok(mut cache) = self.inner.describes.lock() {
            cache.remove(sobject(object));
        }
    }

    /// Every row of `soql` (following `nextRecordsUrl`), at most `limit` of them when given.
    async fn query(
        &self,
        soql: &str,
        all: bool,
        limit: Option<usize>,
        what: &str,
    ) -> Result<Vec<BTreeMap<String, serde_json::Value>>, CrmError> {
        let resource = if all { "queryAll" } else { "query" };
        let mut rows = Vec::new();
        let mut path = format!(
            "{}/{resource}?q={}",
            self.inner.api,
            utf8_percent_encode(soql, NON_ALPHANUMERIC)
        );
        loop {
            let page: wire::QueryPage = self
                .get_json(
                    Operation::Changes,
                    what,
                    format!("{}/{resource}", self.inner.api),
                    path,
                )
                .await?;
            rows.extend(page.records);
            if limit.is_some_and(|l| rows.len() >= l) {
                break;
            }
            match page.next_records_url {
                Some(next) if !page.done => {
                    if !next.starts_with("/services/data/") {
                        return Err(sf_error::protocol(
                            what,
                            format!("nextRecordsUrl {next:?} is not a path of the API"),
                        ));
                    }
                    path = next;
                }
                _ => break,
            }
        }
        Ok(rows)
    }

    /// Sends a collection write and pairs its results with `keys`, in order.
    async fn collection(
        &self,
        method: Method,
        endpoint: String,
        path: String,
        records: &[serde_json::Value],
        what: &str,
    ) -> Result<Vec<wire::SaveResult>, CrmError> {
        let body = serde_json::to_vec(&wire::CollectionRequest {
            all_or_none: false,
            records,
        })
        .map_err(|e| CrmError::new(ErrorKind::Protocol, format!("cannot encode {what}: {e}")))?;
        let operation = if method == Method::POST {
            Operation::Create
        } else {
            Operation::Upsert
        };
        let answer = self
            .send(
                Request::new(method, operation, endpoint, path, what)
                    .json(body)
                    .records(records.len()),
            )
            .await?;
        let results: Vec<wire::SaveResult> =
            serde_json::from_str(&answer.body).map_err(|e| sf_error::protocol(what, e))?;
        if results.len() != records.len() {
            return Err(sf_error::protocol(
                what,
                format!("{} results for {} records", results.len(), records.len()),
            ));
        }
        Ok(results)
    }

    /// The JSON body of one record: `attributes.type` and each property typed by describe.
    fn record_body(
        object: ObjectKind,
        fields: &[wire::Field],
        properties: &BTreeMap<String, String>,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut body = serde_json::Map::new();
        body.insert(
            "attributes".into(),
            serde_json::json!({ "type": sobject(object) }),
        );
        for (name, value) in properties {
            let kind = fields
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(name))
                .map(|f| f.kind.as_str())
                .unwrap_or("string");
            body.insert(name.clone(), typed(kind, value));
        }
        body
    }

    /// The survivors of merges among `rows`: absorbed record id -> survivor id, read from the
    /// deleted records whose `MasterRecordId` is one of `survivors` (Account and Contact only).
    async fn absorbed_by(
        &self,
        object: ObjectKind,
        survivors: &[String],
    ) -> Result<HashMap<String, Vec<String>>, CrmError> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        if !matches!(object, ObjectKind::Companies | ObjectKind::Contacts) {
            return Ok(out);
        }
        let name = sobject(object);
        for chunk in survivors.chunks(IDS_PER_QUERY) {
            let ids = id_list(chunk);
            if ids.is_empty() {
                continue;
            }
            let soql = format!(
                "SELECT Id, MasterRecordId FROM {name} WHERE IsDeleted = true AND MasterRecordId IN ({ids})"
            );
            for row in self
                .query(&soql, true, None, &format!("{name} merge lookup"))
                .await?
            {
                if let (Some(id), Some(master)) = (text(&row, "Id"), text(&row, "MasterRecordId")) {
                    out.entry(master).or_default().push(id);
                }
            }
        }
        Ok(out)
    }

    fn changed(
        row: &BTreeMap<String, serde_json::Value>,
        properties: &[String],
    ) -> Option<ChangedRecord> {
        let crm_id = text(row, "Id")?;
        let modified_ms = text(row, "SystemModstamp").and_then(|s| parse_datetime_ms(&s))?;
        let properties = properties
            .iter()
            .map(|p| (p.clone(), row.get(p).map(untyped).unwrap_or_default()))
            .collect();
        Some(ChangedRecord {
            crm_id,
            properties,
            modified_ms,
            merged_ids: Vec::new(),
        })
    }

    /// Creates `object.name` as a unique External ID text field through the Tooling API.
    async fn create_id_field(&self, object: ObjectKind, name: &str) -> Result<(), CrmError> {
        let sobject = sobject(object);
        let what = format!("{sobject}.{name} field creation");
        let body = serde_json::json!({
            "FullName": format!("{sobject}.{name}"),
            "Metadata": {
                "type": "Text",
                "length": 255,
                "externalId": true,
                "unique": true,
                "caseSensitive": false,
                "label": "crmsync key",
                "description": "Key of the app record this object is synced from. Written by crmsync; do not edit."
            }
        });
        let bytes = serde_json::to_vec(&body).map_err(|e| {
            CrmError::new(ErrorKind::Protocol, format!("cannot encode {what}: {e}"))
        })?;
        self.send(
            Request::new(
                Method::POST,
                Operation::Schema,
                format!("{}/tooling/sobjects/CustomField", self.inner.api),
                format!("{}/tooling/sobjects/CustomField", self.inner.api),
                &what,
            )
            .json(bytes),
        )
        .await?;
        self.forget_describe(object);
        Ok(())
    }
}

impl Crm for SalesforceClient {
    async fn account(&self) -> Result<Option<crate::Account>, CrmError> {
        let what = "organization";
        let soql = "SELECT Id, IsSandbox FROM Organization";
        let page: wire::QueryPage = self
            .get_json(
                Operation::Account,
                what,
                format!("{}/query", self.inner.api),
                format!(
                    "{}/query?q={}",
                    self.inner.api,
                    utf8_percent_encode(soql, NON_ALPHANUMERIC)
                ),
            )
            .await?;
        let row = page
            .records
            .first()
            .ok_or_else(|| sf_error::protocol(what, "the Organization query returned no row"))?;
        let id = row
            .get("Id")
            .and_then(|v| v.as_str())
            .ok_or_else(|| sf_error::protocol(what, "the Organization row has no Id"))?;
        // Absent or not a boolean reads as production: when in doubt, guard.
        let sandbox = row
            .get("IsSandbox")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        Ok(Some(crate::Account::salesforce(id, sandbox)))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            name: "Salesforce",
            batches: Batches {
                write: MAX_BATCH,
                read: MAX_BATCH,
                associate: MAX_BATCH,
            },
            keying: Keying::ExternalIdField,
            parents: ParentLink::OnWrite,
            unique_email: None,
            // CurrencyIsoCode exists only in multi-currency orgs: no general rule to check.
            deal_currency: None,
        }
    }

    fn links_on_write(&self, from: ObjectKind, to: ObjectKind) -> bool {
        super::links_on_write(from, to)
    }

    async fn ensure_id_property(
        &self,
        object: ObjectKind,
        id_property: &str,
    ) -> Result<(), CrmError> {
        let sobject = sobject(object);
        if !is_field_name(id_property) || id_property.contains('.') {
            return Err(CrmError::new(
                ErrorKind::Config,
                format!("{id_property:?} is not a Salesforce field name"),
            ));
        }
        let fields = self.describe(object).await?;
        match fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(id_property))
        {
            Some(f) if f.external_id && f.unique => Ok(()),
            Some(_) => Err(CrmError::new(
                ErrorKind::Schema,
                format!(
                    "salesforce field {sobject}.{id_property} exists but is not an External ID with unique values, so upserts by it could match several records; mark it External ID and Unique in Setup, or set the sync's `id_property` to another field"
                ),
            )),
            None if !id_property.ends_with(CUSTOM_SUFFIX) => Err(CrmError::new(
                ErrorKind::Schema,
                format!(
                    "salesforce {sobject} has no field {id_property}, and only custom fields (ending in __c) can be created: set the sync's `id_property` to e.g. \"crmsync_id__c\""
                ),
            )),
            None => {
                self.create_id_field(object, id_property).await?;
                let fields = self.describe(object).await?;
                if fields
                    .iter()
                    .any(|f| f.name.eq_ignore_ascii_case(id_property))
                {
                    Ok(())
                } else {
                    Err(CrmError::new(
                        ErrorKind::Schema,
                        format!(
                            "salesforce created {sobject}.{id_property} but describe does not show it: grant the integration user field-level security on it (Setup > Object Manager > {sobject} > Fields > {id_property} > Set Field-Level Security)"
                        ),
                    ))
                }
            }
        }
    }

    async fn property_names(&self, object: ObjectKind) -> Result<Vec<String>, CrmError> {
        Ok(self
            .describe(object)
            .await?
            .iter()
            .map(|f| f.name.clone())
            .collect())
    }

    async fn properties(&self, object: ObjectKind) -> Result<Vec<PropertyInfo>, CrmError> {
        Ok(self
            .describe(object)
            .await?
            .iter()
            .map(|f| PropertyInfo {
                name: f.name.clone(),
                kind: neutral_kind(&f.kind).to_string(),
                field_type: f.kind.clone(),
                has_unique_value: f.unique,
                read_only: !f.createable && !f.updateable,
                required: f.createable
                    && !f.nillable
                    && !f.defaulted_on_create
                    && f.kind != "boolean",
                max_length: (f.length > 0
                    && matches!(
                        f.kind.as_str(),
                        "string" | "textarea" | "email" | "phone" | "url" | "picklist"
                    ))
                .then_some(f.length),
                options: if f.kind == "picklist" || f.kind == "multipicklist" {
                    f.picklist_values
                        .iter()
                        .filter(|p| p.active)
                        .map(|p| p.value.clone())
                        .collect()
                } else {
                    Vec::new()
                },
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
        let name = sobject(object);
        let what = format!("{name} collection upsert");
        check_batch(&what, inputs.len())?;
        if !is_field_name(id_property) || id_property.contains('.') {
            return Err(CrmError::new(
                ErrorKind::Config,
                format!("{id_property:?} is not a Salesforce field name"),
            ));
        }
        let fields = self.describe(object).await?;
        let records: Vec<serde_json::Value> = inputs
            .iter()
            .map(|input| {
                let mut body = Self::record_body(object, &fields, &input.properties);
                body.insert(id_property.to_string(), input.key.clone().into());
                // Parents ride along as lookup ids: no association call for them.
                for parent in &input.links {
                    if let Some(Link::Lookup { field, .. }) = objects::link(object, parent.object) {
                        body.insert(field.to_string(), parent.crm_id.clone().into());
                    }
                }
                serde_json::Value::Object(body)
            })
            .collect();
        let results = self
            .collection(
                Method::PATCH,
                format!(
                    "{}/composite/sobjects/{{sobject}}/{{externalIdField}}",
                    self.inner.api
                ),
                format!("{}/composite/sobjects/{name}/{id_property}", self.inner.api),
                &records,
                &what,
            )
            .await?;
        Ok(inputs
            .iter()
            .zip(results)
            .map(|(input, result)| match (result.success, result.id) {
                (true, Some(crm_id)) => RecordOutcome::Upserted {
                    key: input.key.clone(),
                    crm_id,
                    created: result.created.unwrap_or(false),
                },
                _ => RecordOutcome::Rejected {
                    key: input.key.clone(),
                    error: sf_error::record_error(object, &input.key, &result.errors),
                },
            })
            .collect())
    }

    async fn changes_since(
        &self,
        object: ObjectKind,
        cursor_ms: i64,
        after_id: Option<&str>,
        properties: &[String],
        limit: usize,
    ) -> Result<Vec<ChangedRecord>, CrmError> {
        let name = sobject(object);
        let what = format!("{name} changes");
        let select = field_list(properties, &what)?;
        // Salesforce keeps datetimes to the second: the cursor's second, and a tie-break by Id
        // within it, page exactly.
        let second = cursor_ms.div_euclid(1000);
        let literal = datetime_literal(second * 1000);
        let after = after_id.filter(|id| is_record_id(id));
        let filter = match (after, cursor_ms % 1000 == 0) {
            (Some(id), true) => format!(
                "SystemModstamp > {literal} OR (SystemModstamp = {literal} AND Id > '{id}')"
            ),
            _ => format!("SystemModstamp >= {literal}"),
        };
        let soql = format!(
            "SELECT {select} FROM {name} WHERE {filter} ORDER BY SystemModstamp, Id LIMIT {}",
            limit.clamp(1, 2000)
        );
        let rows = self.query(&soql, false, Some(limit), &what).await?;
        let mut out: Vec<ChangedRecord> = rows
            .iter()
            .filter_map(|r| Self::changed(r, properties))
            // A cursor within a second (or an odd id): drop what is at or before it.
            .filter(|r| {
                r.modified_ms > cursor_ms
                    || (r.modified_ms == cursor_ms && after.is_none_or(|a| r.crm_id.as_str() > a))
            })
            .collect();
        let ids: Vec<String> = out.iter().map(|r| r.crm_id.clone()).collect();
        let absorbed = self.absorbed_by(object, &ids).await?;
        for record in &mut out {
            if let Some(ids) = absorbed.get(&record.crm_id) {
                record.merged_ids = ids.clone();
            }
        }
        Ok(out)
    }

    async fn read_batch(
        &self,
        object: ObjectKind,
        ids: &[String],
        properties: &[String],
    ) -> Result<Vec<ChangedRecord>, CrmError> {
        let name = sobject(object);
        let what = format!("{name} read");
        let select = field_list(properties, &what)?;
        let mut found: Vec<ChangedRecord> = Vec::new();
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let list = id_list(chunk);
            if list.is_empty() {
                continue;
            }
            let soql = format!("SELECT {select} FROM {name} WHERE Id IN ({list})");
            found.extend(
                self.query(&soql, false, None, &what)
                    .await?
                    .iter()
                    .filter_map(|r| Self::changed(r, properties)),
            );
        }
        // Ids not found may have been merged into another record: that record answers for them.
        let live: BTreeSet<&str> = found.iter().map(|r| r.crm_id.as_str()).collect();
        let missing: Vec<String> = ids
            .iter()
            .filter(|id| !live.contains(id.as_str()))
            .cloned()
            .collect();
        if missing.is_empty() || !matches!(object, ObjectKind::Companies | ObjectKind::Contacts) {
            return Ok(found);
        }
        let mut survivor_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for chunk in missing.chunks(IDS_PER_QUERY) {
            let list = id_list(chunk);
            if list.is_empty() {
                continue;
            }
            let soql = format!(
                "SELECT Id, MasterRecordId FROM {name} WHERE IsDeleted = true AND MasterRecordId != null AND Id IN ({list})"
            );
            for row in self.query(&soql, true, None, &what).await? {
                if let (Some(id), Some(master)) = (text(&row, "Id"), text(&row, "MasterRecordId")) {
                    survivor_of.entry(master).or_default().push(id);
                }
            }
        }
        let survivors: Vec<String> = survivor_of.keys().cloned().collect();
        for chunk in survivors.chunks(IDS_PER_QUERY) {
            let list = id_list(chunk);
            let soql = format!("SELECT {select} FROM {name} WHERE Id IN ({list})");
            for row in self.query(&soql, false, None, &what).await? {
                if let Some(mut record) = Self::changed(&row, properties) {
                    record.merged_ids = survivor_of.remove(&record.crm_id).unwrap_or_default();
                    found.retain(|r| r.crm_id != record.crm_id);
                    found.push(record);
                }
            }
        }
        Ok(found)
    }

    async fn archived_page(
        &self,
        object: ObjectKind,
        after: Option<&str>,
    ) -> Result<(Vec<String>, Option<String>), CrmError> {
        let name = sobject(object);
        let what = format!("{name} deletions");
        // Records a merge absorbed are deleted too, but they are merges, not deletions.
        let merged = if matches!(object, ObjectKind::Companies | ObjectKind::Contacts) {
            " AND MasterRecordId = null"
        } else {
            ""
        };
        let after = after
            .filter(|a| is_record_id(a))
            .map(|a| format!(" AND Id > '{a}'"))
            .unwrap_or_default();
        let soql = format!(
            "SELECT Id FROM {name} WHERE IsDeleted = true{merged}{after} ORDER BY Id LIMIT {DELETED_PAGE}"
        );
        let ids: Vec<String> = self
            .query(&soql, true, Some(DELETED_PAGE), &what)
            .await?
            .iter()
            .filter_map(|r| text(r, "Id"))
            .collect();
        let next = (ids.len() >= DELETED_PAGE)
            .then(|| ids.last().cloned())
            .flatten();
        Ok((ids, next))
    }

    async fn update_batch(
        &self,
        object: ObjectKind,
        inputs: &[UpdateInput],
    ) -> Result<(), CrmError> {
        if inputs.is_empty() {
            return Ok(());
        }
        let name = sobject(object);
        let what = format!("{name} collection update");
        check_batch(&what, inputs.len())?;
        let fields = self.describe(object).await?;
        let records: Vec<serde_json::Value> = inputs
            .iter()
            .map(|input| {
                let mut body = Self::record_body(object, &fields, &input.properties);
                body.insert("id".into(), input.crm_id.clone().into());
                serde_json::Value::Object(body)
            })
            .collect();
        let results = self
            .collection(
                Method::PATCH,
                format!("{}/composite/sobjects", self.inner.api),
                format!("{}/composite/sobjects", self.inner.api),
                &records,
                &what,
            )
            .await?;
        first_failure(object, inputs.iter().map(|i| i.crm_id.as_str()), results)
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
        let what = format!("{} to {} link", sobject(from), sobject(to));
        check_batch(&what, pairs.len())?;
        match objects::link(from, to) {
            None => Err(CrmError::new(
                ErrorKind::Config,
                format!(
                    "salesforce has no link from {} to {}: remove that `associate` entry",
                    sobject(from),
                    sobject(to)
                ),
            )),
            Some(Link::Lookup { field, .. }) => {
                let records: Vec<serde_json::Value> = pairs
                    .iter()
                    .map(|p| {
                        serde_json::json!({
                            "attributes": { "type": sobject(from) },
                            "id": p.from_id,
                            field: p.to_id,
                        })
                    })
                    .collect();
                let results = self
                    .collection(
                        Method::PATCH,
                        format!("{}/composite/sobjects", self.inner.api),
                        format!("{}/composite/sobjects", self.inner.api),
                        &records,
                        &what,
                    )
                    .await?;
                first_failure(from, pairs.iter().map(|p| p.from_id.as_str()), results)
            }
            Some(Link::Junction {
                sobject: junction,
                from_field,
                to_field,
            }) => {
                // A junction record per pair, unless one exists: creating a link twice is not
                // an error, and must not make two roles.
                let from_ids: Vec<String> = pairs.iter().map(|p| p.from_id.clone()).collect();
                let mut existing: BTreeSet<(String, String)> = BTreeSet::new();
                for chunk in from_ids.chunks(IDS_PER_QUERY) {
                    let list = id_list(chunk);
                    if list.is_empty() {
                        continue;
                    }
                    let soql = format!(
                        "SELECT {from_field}, {to_field} FROM {junction} WHERE {from_field} IN ({list})"
                    );
                    for row in self.query(&soql, false, None, &what).await? {
                        if let (Some(a), Some(b)) = (text(&row, from_field), text(&row, to_field)) {
                            existing.insert((a, b));
                        }
                    }
                }
                let records: Vec<serde_json::Value> = pairs
                    .iter()
                    .filter(|p| !existing.contains(&(p.from_id.clone(), p.to_id.clone())))
                    .map(|p| {
                        serde_json::json!({
                            "attributes": { "type": junction },
                            from_field: p.from_id,
                            to_field: p.to_id,
                        })
                    })
                    .collect();
                if records.is_empty() {
                    return Ok(());
                }
                let ids: Vec<String> = pairs
                    .iter()
                    .filter(|p| !existing.contains(&(p.from_id.clone(), p.to_id.clone())))
                    .map(|p| p.from_id.clone())
                    .collect();
                let results = self
                    .collection(
                        Method::POST,
                        format!("{}/composite/sobjects", self.inner.api),
                        format!("{}/composite/sobjects", self.inner.api),
                        &records,
                        &what,
                    )
                    .await?;
                first_failure(from, ids.iter().map(String::as_str), results)
            }
        }
    }
}

/// The first refused record of a collection write whose per-record answers the trait cannot
/// return, as the call's error.
fn first_failure<'a>(
    object: ObjectKind,
    ids: impl Iterator<Item = &'a str>,
    results: Vec<wire::SaveResult>,
) -> Result<(), CrmError> {
    for (id, result) in ids.zip(results) {
        if !result.success {
            return Err(sf_error::record_error(object, id, &result.errors));
        }
    }
    Ok(())
}

/// Salesforce's field type in the neutral vocabulary of [`PropertyInfo::kind`].
fn neutral_kind(kind: &str) -> &'static str {
    match kind {
        "double" | "currency" | "percent" | "int" | "long" => "number",
        "boolean" => "bool",
        "date" => "date",
        "datetime" => "datetime",
        "picklist" | "multipicklist" => "enumeration",
        _ => "string",
    }
}

fn check_batch(what: &str, len: usize) -> Result<(), CrmError> {
    if len > MAX_BATCH {
        return Err(CrmError::new(
            ErrorKind::Config,
            format!("{what} of {len} records is over salesforce's {MAX_BATCH} per call"),
        ));
    }
    Ok(())
}

/// `Id, SystemModstamp` and the requested fields, checked to be plain field names.
fn field_list(properties: &[String], what: &str) -> Result<String, CrmError> {
    let mut names: Vec<&str> = vec!["Id", "SystemModstamp"];
    for p in properties {
        if !is_field_name(p) {
            return Err(CrmError::new(
                ErrorKind::Config,
                format!("{what}: {p:?} is not a Salesforce field name"),
            ));
        }
        if !names.iter().any(|n| n.eq_ignore_ascii_case(p)) {
            names.push(p);
        }
    }
    Ok(names.join(", "))
}

/// `'id1', 'id2'` of the well-formed ids among `ids` (others cannot exist).
fn id_list(ids: &[String]) -> String {
    ids.iter()
        .filter(|id| is_record_id(id))
        .map(|id| soql_string(id))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A text value of a query row (`None` for null or absent).
fn text(row: &BTreeMap<String, serde_json::Value>, field: &str) -> Option<String> {
    match row.get(field)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// A record value as the engine compares it: text, numbers and booleans in their JSON form,
/// `""` for null.
fn untyped(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// A value typed for a field of describe type `kind`: an empty value is `null` (only sent
/// when the mapping asked to clear), numbers and booleans as JSON numbers and booleans when
/// they read as such (otherwise as text, so Salesforce's own error names the field).
fn typed(kind: &str, value: &str) -> serde_json::Value {
    if value.is_empty() {
        return serde_json::Value::Null;
    }
    match kind {
        "double" | "currency" | "percent" | "int" | "long" => value
            .trim()
            .parse::<serde_json::Number>()
            .map(serde_json::Value::Number)
            .unwrap_or_else(|_| value.into()),
        "boolean" => match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => true.into(),
            "false" | "0" | "no" => false.into(),
            _ => value.into(),
        },
        _ => value.into(),
    }
}

/// An unquoted SOQL datetime literal of `ms` (whole seconds, UTC).
fn datetime_literal(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A Salesforce datetime (`2024-01-15T10:20:30.000+0000`, or RFC 3339) as ms since the epoch.
fn parse_datetime_ms(value: &str) -> Option<i64> {
    chrono::DateTime::parse_from_str(value.trim(), "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(value.trim()))
        .ok()
        .map(|d| d.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_typed_by_the_field() {
        assert_eq!(typed("currency", "1299.00"), serde_json::json!(1299.00));
        assert_eq!(typed("boolean", "true"), serde_json::json!(true));
        assert_eq!(typed("string", "007"), serde_json::json!("007"));
        assert_eq!(typed("double", ""), serde_json::Value::Null);
        assert_eq!(typed("double", "n/a"), serde_json::json!("n/a"));
    }

    #[test]
    fn datetimes_round_trip_at_second_precision() {
        let ms = parse_datetime_ms("2024-01-15T10:20:30.000+0000");
        assert_eq!(ms, Some(1_705_314_030_000));
        assert_eq!(datetime_literal(1_705_314_030_000), "2024-01-15T10:20:30Z");
    }
}
