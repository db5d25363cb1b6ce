//! [`HubspotClient`]: the [`Crm`] implementation for HubSpot, and the one place where its HTTP
//! requests are sent.
//!
//! Every request goes through [`HubspotClient::execute`], which keeps three invariants:
//! - each attempt first takes a slot from the [`Limiter`] and then, when one is set, is admitted
//!   by the [`CallGate`] that shares the account's budget with other workers (DESIGN 5);
//! - each attempt, retried or not, is reported once to the [`CallObserver`] and as a `debug`
//!   tracing event, with an endpoint template that carries no record ids;
//! - only retryable failures (429, 5xx, timeout, reset) are retried, with exponential backoff
//!   and full jitter that never waits less than HubSpot asked (DESIGN principle 6). Every write
//!   is an upsert by our key, so retrying one whose answer was lost cannot duplicate.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, Url};
use secrecy::ExposeSecret;
use tokio::time::Instant;

use super::config::HubspotConfig;
use super::error as hs_error;
use super::limiter::Limiter;
use super::wire;
use crate::{
    AssociationInput, CallGate, CallObserver, CallRecord, CallWindow, ChangedRecord, Crm, CrmError,
    CrmEvent, ErrorKind, ObjectKind, Pipeline, PropertyInfo, RecordOutcome, Stage, UpdateInput,
    UpsertInput,
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

/// First backoff step and the longest wait between two attempts (DESIGN principle 6).
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(10);

/// A HubSpot account reached over its REST API. Cheap to clone: clones share the HTTP
/// connection pool, the limiter and the observer, as one CRM connection must.
#[derive(Clone)]
pub struct HubspotClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: String,
    limiter: Limiter,
    /// The windows each attempt counts against, for the gate.
    interval_window: CallWindow,
    search_window: CallWindow,
    gate: std::sync::OnceLock<Arc<dyn CallGate>>,
    max_retries: u32,
    observer: Option<CallObserver>,
    /// Earliest start of the next search request: search is exempt from the interval limit
    /// but has its own per-second one (FACTS 2.5), paced here.
    search_next: std::sync::Mutex<Option<Instant>>,
}

impl fmt::Debug for HubspotClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubspotClient")
            .field("base_url", &self.inner.base_url)
            .field("max_retries", &self.inner.max_retries)
            .finish_non_exhaustive()
    }
}

/// One logical request; [`HubspotClient::execute`] may send it several times.
struct Request<'a> {
    method: Method,
    /// Template for the call log, e.g. `/crm/v3/properties/contacts/{propertyName}`.
    endpoint: String,
    /// Real path, e.g. `/crm/v3/properties/contacts/crmsync_id`.
    path: String,
    body: Option<Vec<u8>>,
    records: u32,
    /// What the call does, for messages: `contacts batch upsert`.
    what: &'a str,
    /// Non-2xx statuses the caller handles itself (e.g. 404 on a lookup); never retried.
    expected: &'a [u16],
}

/// A response read to the end.
struct Answer {
    status: u16,
    body: String,
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
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let token = config.token.expose_secret().trim();
        // An empty token sends no header, so HubSpot's (or the sandbox's) own 401 explains it.
        if !token.is_empty() {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                CrmError::new(
                    ErrorKind::Config,
                    "hubspot token contains characters that cannot be sent in a header",
                )
            })?;
            // Sensitive values are redacted from reqwest's and hyper's debug output.
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .default_headers(headers)
            .user_agent(concat!("crmsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                CrmError::new(
                    ErrorKind::Config,
                    format!("hubspot http client cannot be built: {e}"),
                )
            })?;
        let limiter = Limiter::new(
            config.requests_per_interval,
            config.interval,
            config.headroom_percent,
        )?;
        let budget = (u64::from(config.requests_per_interval)
            * u64::from(100 - config.headroom_percent.min(99))
            / 100)
            .max(1);
        Ok(HubspotClient {
            inner: Arc::new(Inner {
                http,
                base_url,
                limiter,
                interval_window: CallWindow {
                    name: "interval",
                    max: u32::try_from(budget).unwrap_or(u32::MAX),
                    length: config.interval,
                },
                // 5 in any 1.2 s: HubSpot counts per second, and a request reserved at the end of
                // one second may arrive in the next; the margin absorbs that skew.
                search_window: CallWindow {
                    name: "search",
                    max: u32::try_from(SEARCH_PER_SECOND).unwrap_or(5),
                    length: Duration::from_millis(1200),
                },
                gate: std::sync::OnceLock::new(),
                max_retries: config.max_retries,
                observer,
                search_next: std::sync::Mutex::new(None),
            }),
        })
    }

    /// Admits every attempt through `gate` from now on (the shared budget of several
    /// workers). Set once, before the first call; a second gate is ignored.
    pub fn set_gate(&self, gate: Arc<dyn CallGate>) {
        let _ = self.inner.gate.set(gate);
    }

    /// The API root this client talks to.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// Sends `req`, retrying retryable failures. Returns the answer for a 2xx or an `expected`
    /// status, the classified error otherwise.
    async fn execute(&self, req: Request<'_>) -> Result<Answer, CrmError> {
        let inner = &*self.inner;
        let url = format!("{}{}", inner.base_url, req.path);
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let search = req.endpoint.ends_with("/search");
            if search {
                self.search_slot().await;
            } else {
                inner.limiter.acquire().await;
            }
            if let Some(gate) = inner.gate.get() {
                let window = if search {
                    &inner.search_window
                } else {
                    &inner.interval_window
                };
                gate.admit(window).await?;
            }
            let started_at_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                .unwrap_or(0);
            let started = Instant::now();
            let mut builder = inner.http.request(req.method.clone(), &url);
            if let Some(body) = &req.body {
                builder = builder
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let (status, headers, result) = match builder.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let headers = response.headers().clone();
                    match response.text().await {
                        Ok(body) => (Some(status), headers, Ok(Answer { status, body })),
                        Err(e) => (
                            Some(status),
                            headers,
                            Err(hs_error::transport(req.what, &e)),
                        ),
                    }
                }
                Err(e) => (
                    None,
                    HeaderMap::new(),
                    Err(hs_error::transport(req.what, &e)),
                ),
            };
            let latency = started.elapsed();

            // Classify: 2xx and expected statuses are answers, the rest errors. An expected
            // non-2xx (a 404 lookup) still logs HubSpot's message.
            let (result, logged_error) = match result {
                Ok(answer) if (200..300).contains(&answer.status) => (Ok(answer), None),
                Ok(answer) => {
                    let err =
                        hs_error::from_response(req.what, answer.status, &headers, &answer.body);
                    if req.expected.contains(&answer.status) {
                        let message = err.message;
                        (Ok(answer), Some(message))
                    } else {
                        let message = err.message.clone();
                        (Err(err), Some(message))
                    }
                }
                Err(err) => {
                    let message = err.message.clone();
                    (Err(err), Some(message))
                }
            };

            tracing::debug!(
                crm = "hubspot",
                method = %req.method,
                endpoint = %req.endpoint,
                status,
                attempt,
                latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
                records = req.records,
                "hubspot call finished"
            );
            if let Some(observer) = &inner.observer {
                observer(CallRecord {
                    started_at_ms,
                    method: req.method.to_string(),
                    endpoint: req.endpoint.clone(),
                    status,
                    attempt,
                    latency,
                    records: req.records,
                    rate_limit_headers: rate_limit_headers(&headers),
                    error: logged_error,
                });
            }
            if let Some(pause) = inner.limiter.observe(&headers) {
                tracing::info!(
                    crm = "hubspot",
                    pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                    "hubspot rate-limit window nearly spent, slowing down"
                );
            }

            let err = match result {
                Ok(answer) => return Ok(answer),
                Err(err) => err,
            };
            // A daily limit lasts until midnight in the account's time zone: no point waiting here.
            if !err.is_retryable() || hs_error::is_daily_limit(&err) || attempt > inner.max_retries
            {
                return Err(err);
            }
            let wait = backoff(attempt, err.retry_after());
            if err.kind == ErrorKind::RateLimited {
                // Hold back every caller of this connection, not only this one.
                inner.limiter.pause_for(wait);
            }
            tracing::info!(
                crm = "hubspot",
                endpoint = %req.endpoint,
                attempt,
                kind = ?err.kind,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                error = %err.message,
                "retrying hubspot call"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Waits for a search slot: at most [`SEARCH_PER_SECOND`] search requests a second.
    async fn search_slot(&self) {
        let spacing = Duration::from_millis(1000 / SEARCH_PER_SECOND);
        let wait = {
            let mut next = self
                .inner
                .search_next
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let start = next.map_or(now, |n| n.max(now));
            *next = Some(start + spacing);
            start.saturating_duration_since(now)
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    async fn property(
        &self,
        object: ObjectKind,
        name: &str,
    ) -> Result<Option<wire::Property>, CrmError> {
        let what = format!("{object} property {name} lookup");
        let answer = self
            .execute(Request {
                method: Method::GET,
                endpoint: format!("/crm/v3/properties/{object}/{{propertyName}}"),
                path: format!("/crm/v3/properties/{object}/{name}"),
                body: None,
                records: 0,
                what: &what,
                expected: &[404],
            })
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
            .execute(Request {
                method: Method::POST,
                endpoint: format!("/crm/v3/properties/{object}"),
                path: format!("/crm/v3/properties/{object}"),
                body: Some(to_json(&what, &body)?),
                records: 0,
                what: &what,
                expected: &[409],
            })
            .await?;
        Ok(answer.status != 409)
    }
}

impl HubspotClient {
    /// GETs `path` (default: `endpoint`; a path with a query string is logged as its endpoint)
    /// and reads the JSON answer.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        endpoint: String,
        path: Option<String>,
    ) -> Result<T, CrmError> {
        let answer = self
            .execute(Request {
                method: Method::GET,
                path: path.unwrap_or_else(|| endpoint.clone()),
                endpoint,
                body: None,
                records: 0,
                what,
                expected: &[],
            })
            .await?;
        serde_json::from_str(&answer.body).map_err(|e| hs_error::protocol(what, e))
    }

    /// POSTs a JSON body to `path` (also its endpoint in the call log); `records` is how many
    /// records it carries.
    async fn post(
        &self,
        what: &str,
        path: String,
        body: Vec<u8>,
        records: usize,
    ) -> Result<Answer, CrmError> {
        self.execute(Request {
            method: Method::POST,
            endpoint: path.clone(),
            path,
            body: Some(body),
            records: count(records),
            what,
            expected: &[],
        })
        .await
    }

    /// POSTs a batch whose answer matters only for its errors (the first one is returned).
    async fn post_batch(
        &self,
        what: &str,
        path: String,
        body: Vec<u8>,
        records: usize,
    ) -> Result<(), CrmError> {
        let answer = self.post(what, path, body, records).await?;
        let response: wire::BatchResponseDefaultAssociation =
            serde_json::from_str(&answer.body).map_err(|e| hs_error::protocol(what, e))?;
        match response.errors.first() {
            Some(first) => Err(hs_error::batch_error(what, first)),
            None => Ok(()),
        }
    }
}

impl Crm for HubspotClient {
    fn parse_event(&self, body: &str) -> Option<CrmEvent> {
        super::events::parse_event(body)
    }

    fn max_batch(&self) -> usize {
        MAX_BATCH
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
        let what = format!("{object} property listing");
        let listing: wire::CollectionResponseProperty = self
            .get_json(&what, format!("/crm/v3/properties/{object}"), None)
            .await?;
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
            })
            .collect())
    }

    async fn pipelines(&self, object: ObjectKind) -> Result<Vec<Pipeline>, CrmError> {
        // Only deals (and tickets, which we do not sync) have pipelines in HubSpot.
        if object != ObjectKind::Deals {
            return Ok(Vec::new());
        }
        let what = format!("{object} pipeline listing");
        let listing: wire::CollectionResponsePipeline = self
            .get_json(&what, format!("/crm/v3/pipelines/{object}"), None)
            .await?;
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
        let what = format!("{object} batch upsert");
        check_batch_size(&what, inputs.len())?;
        let body = wire::BatchInputUpsert {
            inputs: inputs
                .iter()
                .map(|input| {
                    let mut properties: BTreeMap<&str, &str> = input
                        .properties
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    // Writing the key as a property too makes HubSpot echo it in the result,
                    // which is how results are matched back to inputs.
                    properties.insert(id_property, input.key.as_str());
                    wire::SimplePublicObjectBatchInputUpsert {
                        id: &input.key,
                        id_property,
                        properties,
                    }
                })
                .collect(),
        };
        let answer = self
            .post(
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
                .execute(Request {
                    method: Method::POST,
                    endpoint: format!("/crm/v3/objects/{object}/search"),
                    path: format!("/crm/v3/objects/{object}/search"),
                    body: Some(to_json(&what, &body)?),
                    records: 0,
                    what: &what,
                    expected: &[],
                })
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
        };
        let answer = self
            .post(
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
            .get_json(&what, format!("/crm/v3/objects/{object}"), Some(path))
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

/// Exponential backoff with full jitter: a uniform wait in `[0, min(cap, base·2^(n-1))]`, but
/// never less than the wait HubSpot asked for.
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

fn backoff(failed_attempts: u32, retry_after: Option<Duration>) -> Duration {
    let exp = BACKOFF_BASE
        .saturating_mul(2u32.saturating_pow(failed_attempts.saturating_sub(1)))
        .min(BACKOFF_CAP);
    let max_ms = u64::try_from(exp.as_millis()).unwrap_or(u64::MAX);
    let jitter = Duration::from_millis(rand::rng().random_range(0..=max_ms));
    retry_after.map_or(jitter, |asked| asked.max(jitter))
}

/// The `x-hubspot-ratelimit-*` headers of an answer, for the call log (FACTS 2.10).
fn rate_limit_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-hubspot-ratelimit-"))
        .filter_map(|(name, value)| {
            Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
        })
        .collect()
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

/// HubSpot's default property group per object (FACTS 2.7).
fn group_name(object: ObjectKind) -> &'static str {
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

fn to_json(what: &str, body: &impl serde::Serialize) -> Result<Vec<u8>, CrmError> {
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
