//! `/crm/v3/objects/{objectType}`: list, get, create, update, archive, merge and GDPR delete
//! of single records (FACTS 2.3, 2.4), plus the helpers batch and search share: object type
//! parsing, inline associations and rendering with `?associations=`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::extract::{IdValue, JsonBody, Params};
use super::links::{self, AssociationType, Node};
use super::object_type::ObjectType;
use super::record::Record;
use super::state::AppState;
use super::store::{Changes, Claims, Store};

/// Parses the `{objectType}` path segment.
pub(crate) fn object_type(segment: &str) -> Result<ObjectType, ApiError> {
    ObjectType::parse(segment)
        .ok_or_else(|| ApiError::validation(format!("Unable to infer object type from: {segment}")))
}

/// `{"id": ...}` as sent in association and batch inputs.
#[derive(Debug, Deserialize)]
pub(crate) struct IdRef {
    pub id: IdValue,
}

/// `{associationCategory, associationTypeId}`.
#[derive(Debug, Deserialize)]
pub(crate) struct AssociationSpec {
    #[serde(rename = "associationCategory", default)]
    pub category: Option<String>,
    #[serde(rename = "associationTypeId")]
    pub type_id: u32,
}

/// An inline association on create: `{to:{id}, types:[spec]}` (FACTS 2.6).
#[derive(Debug, Deserialize)]
pub(crate) struct InlineAssociation {
    pub to: IdRef,
    #[serde(default)]
    pub types: Vec<AssociationSpec>,
}

/// `SimplePublicObjectInputForCreate`.
#[derive(Debug, Deserialize)]
pub(crate) struct CreateInput {
    #[serde(default)]
    pub properties: Map<String, Value>,
    #[serde(default)]
    pub associations: Vec<InlineAssociation>,
}

/// `SimplePublicObjectInput`.
#[derive(Debug, Deserialize)]
struct UpdateInput {
    #[serde(default)]
    properties: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
struct MergeInput {
    #[serde(rename = "primaryObjectId")]
    primary: IdValue,
    #[serde(rename = "objectIdToMerge")]
    absorbed: IdValue,
}

#[derive(Debug, Deserialize)]
struct GdprInput {
    #[serde(rename = "objectId")]
    object_id: IdValue,
    #[serde(rename = "idProperty", default)]
    id_property: Option<String>,
}

/// Checks an association type sent by a client for `from` and returns it with the object type
/// it points to: a HUBSPOT_DEFINED type, or a USER_DEFINED label the portal defined
/// (`/crm/v4/associations/{from}/{to}/labels`). Anything else is refused.
pub(crate) fn association_kind(
    store: &Store,
    from: ObjectType,
    to: Option<ObjectType>,
    spec: &AssociationSpec,
) -> Result<AssociationType, ApiError> {
    let category = spec.category.as_deref().unwrap_or("HUBSPOT_DEFINED");
    store
        .association_type(from, to, category, spec.type_id)
        .ok_or_else(|| {
            ApiError::validation(format!(
                "association type {category}/{} is not defined from {}{}",
                spec.type_id,
                from.name(),
                to.map(|t| format!(" to {}", t.name())).unwrap_or_default()
            ))
        })
}

/// Resolves inline associations before anything is written, so a bad target fails the whole
/// request.
pub(crate) fn resolve_inline(
    store: &Store,
    from: ObjectType,
    inputs: &[InlineAssociation],
) -> Result<Vec<(Node, AssociationType)>, ApiError> {
    let mut resolved = Vec::new();
    for input in inputs {
        for spec in &input.types {
            let kind = association_kind(store, from, None, spec)?;
            let target = input.to.id.text();
            let id = store
                .resolve(kind.to, &target, None)?
                .filter(|&id| store.live(kind.to, id).is_some())
                .ok_or_else(|| {
                    ApiError::validation(format!(
                        "association target {} {target} does not exist",
                        kind.to.singular()
                    ))
                })?;
            resolved.push(((kind.to, id), kind));
        }
    }
    Ok(resolved)
}

/// The properties to return after a write: the default set plus everything written.
pub(crate) fn written_selection(object: ObjectType, changes: &Changes) -> Vec<String> {
    let mut names: Vec<String> = object
        .default_properties()
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    names.extend(changes.keys().cloned());
    names
}

/// A record with the requested properties and, if asked, its v3-style associations
/// (`associations.companies.results[{id, type}]`, FACTS 2.6).
pub(crate) fn render(
    store: &Store,
    object: ObjectType,
    record: &Record,
    selection: Option<&[String]>,
    associations: Option<&[String]>,
) -> Map<String, Value> {
    let mut body = record.render(object, store.schema(object), selection);
    let Some(wanted) = associations else {
        return body;
    };
    let mut map = Map::new();
    for to in wanted.iter().filter_map(|w| ObjectType::parse(w)) {
        let mut results = Vec::new();
        for ((_, id), types) in store.links.targets((object, record.id), to) {
            if store.live(to, id).is_none() {
                continue;
            }
            for type_id in types {
                if let Some(kind) = links::find_type(object, to, type_id) {
                    results.push(json!({"id": id.to_string(), "type": kind.v3_name}));
                }
            }
        }
        // HubSpot omits object types without associations.
        if !results.is_empty() {
            map.insert(to.name().to_owned(), json!({ "results": results }));
        }
    }
    if !map.is_empty() {
        body.insert("associations".to_owned(), Value::Object(map));
    }
    body
}

/// Adds `propertiesWithHistory` when the request names properties for it (FACTS 2.2).
pub(crate) fn with_history(
    body: &mut Map<String, Value>,
    record: &Record,
    names: Option<&[String]>,
    app_id: u64,
) {
    if let Some(names) = names.filter(|n| !n.is_empty()) {
        body.insert(
            "propertiesWithHistory".to_owned(),
            Value::Object(record.history_json(names, app_id)),
        );
    }
}

fn not_found(object: ObjectType, id: &str) -> ApiError {
    ApiError::not_found(format!(
        "Object not found. {} {id} does not exist or is archived.",
        object.singular()
    ))
}

/// `GET /crm/v3/objects/{objectType}`: pages by id ascending; `after` is the next id.
async fn list(
    State(state): State<AppState>,
    Path(object_type_segment): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Result<axum::Json<Value>, ApiError> {
    let object = object_type(&object_type_segment)?;
    let limit = params.limit(10, 100)?;
    let after = match params.get("after") {
        None | Some("") => 0,
        Some(raw) => raw.parse::<u64>().map_err(|_| {
            ApiError::validation(format!(
                "after must be a cursor from paging.next.after, got {raw}"
            ))
        })?,
    };
    // `archived=true` returns only archived records (FACTS 2.3).
    let archived = params.flag("archived");
    let selection = params.list("properties");
    let associations = params.list("associations");
    let history = params.list("propertiesWithHistory");
    let store = state.store();
    let mut page = store
        .table(object)
        .records
        .range(after..)
        .map(|(_, r)| r)
        .filter(|r| r.is_archived() == archived);
    let mut results = Vec::with_capacity(limit);
    for record in page.by_ref().take(limit) {
        let mut body = render(
            &store,
            object,
            record,
            selection.as_deref(),
            associations.as_deref(),
        );
        with_history(&mut body, record, history.as_deref(), state.app_id());
        results.push(Value::Object(body));
    }
    let mut body = json!({ "results": results });
    if let Some(next) = page.next() {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        body["paging"] = json!({
            "next": {
                "after": next.id.to_string(),
                "link": format!("http://{host}/crm/v3/objects/{}?after={}", object.name(), next.id),
            }
        });
    }
    Ok(axum::Json(body))
}

/// `GET /crm/v3/objects/{objectType}/{id}` (also by `idProperty`).
async fn get_one(
    State(state): State<AppState>,
    Path((object_type_segment, id)): Path<(String, String)>,
    params: Params,
) -> Result<axum::Json<Value>, ApiError> {
    let object = object_type(&object_type_segment)?;
    let store = state.store();
    let record = store
        .resolve(object, &id, params.get("idProperty"))?
        .and_then(|rid| store.table(object).records.get(&rid))
        // An archived record is only visible with `archived=true` (FACTS 2.3).
        .filter(|r| !r.is_archived() || params.flag("archived"))
        .ok_or_else(|| not_found(object, &id))?;
    let selection = params.list("properties");
    let associations = params.list("associations");
    let mut body = render(
        &store,
        object,
        record,
        selection.as_deref(),
        associations.as_deref(),
    );
    let history = params.list("propertiesWithHistory");
    with_history(&mut body, record, history.as_deref(), state.app_id());
    Ok(axum::Json(Value::Object(body)))
}

/// `POST /crm/v3/objects/{objectType}` → 201 (FACTS 2.3).
async fn create(
    State(state): State<AppState>,
    Path(object_type_segment): Path<String>,
    JsonBody(input): JsonBody<CreateInput>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let object = object_type(&object_type_segment)?;
    let mut store = state.store();
    let changes = store.validate(object, &input.properties, None)?;
    store.check_unique(object, &changes, None, &mut Claims::new())?;
    let targets = resolve_inline(&store, object, &input.associations)?;
    let selection = written_selection(object, &changes);
    let id = store.create(object, changes);
    for (target, kind) in targets {
        store.associate((object, id), target, &kind);
    }
    let record = store
        .live(object, id)
        .ok_or_else(|| not_found(object, &id.to_string()))?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Value::Object(record.render(
            object,
            store.schema(object),
            Some(&selection),
        ))),
    ))
}

/// `PATCH /crm/v3/objects/{objectType}/{id}` (also by `idProperty`).
async fn update(
    State(state): State<AppState>,
    Path((object_type_segment, id)): Path<(String, String)>,
    params: Params,
    JsonBody(input): JsonBody<UpdateInput>,
) -> Result<axum::Json<Value>, ApiError> {
    let object = object_type(&object_type_segment)?;
    let mut store = state.store();
    let rid = store
        .resolve(object, &id, params.get("idProperty"))?
        .filter(|&rid| store.live(object, rid).is_some())
        .ok_or_else(|| not_found(object, &id))?;
    let changes = store.validate(object, &input.properties, store.live(object, rid))?;
    store.check_unique(object, &changes, Some(rid), &mut Claims::new())?;
    let selection = written_selection(object, &changes);
    store.update(object, rid, changes);
    let record = store
        .live(object, rid)
        .ok_or_else(|| not_found(object, &id))?;
    Ok(axum::Json(Value::Object(record.render(
        object,
        store.schema(object),
        Some(&selection),
    ))))
}

/// `DELETE /crm/v3/objects/{objectType}/{id}` → 204; archiving twice is fine.
async fn archive(
    State(state): State<AppState>,
    Path((object_type_segment, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let object = object_type(&object_type_segment)?;
    let mut store = state.store();
    let rid = store
        .resolve(object, &id, None)?
        .ok_or_else(|| not_found(object, &id))?;
    store.archive(object, rid);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /crm/v3/objects/{objectType}/merge` → 200 with the survivor (FACTS 2.4). The
/// sandbox keeps the primary id rather than minting a new one.
async fn merge(
    State(state): State<AppState>,
    Path(object_type_segment): Path<String>,
    JsonBody(input): JsonBody<MergeInput>,
) -> Result<axum::Json<Value>, ApiError> {
    let object = object_type(&object_type_segment)?;
    let mut store = state.store();
    let primary_text = input.primary.text();
    let absorbed_text = input.absorbed.text();
    let primary = store
        .resolve(object, &primary_text, None)?
        .ok_or_else(|| not_found(object, &primary_text))?;
    let absorbed = store
        .resolve(object, &absorbed_text, None)?
        .ok_or_else(|| not_found(object, &absorbed_text))?;
    store.merge(object, primary, absorbed)?;
    let record = store
        .live(object, primary)
        .ok_or_else(|| not_found(object, &primary_text))?;
    Ok(axum::Json(Value::Object(record.render(
        object,
        store.schema(object),
        None,
    ))))
}

/// `POST /crm/v3/objects/contacts/gdpr-delete` → 204, permanent (FACTS 2.3).
async fn gdpr_delete(
    State(state): State<AppState>,
    Path(object_type_segment): Path<String>,
    JsonBody(input): JsonBody<GdprInput>,
) -> Result<StatusCode, ApiError> {
    let object = object_type(&object_type_segment)?;
    if object != ObjectType::Contacts {
        return Err(ApiError::validation(
            "GDPR delete is only available for contacts",
        ));
    }
    let mut store = state.store();
    let id = input.object_id.text();
    let rid = store
        .resolve(object, &id, input.id_property.as_deref())?
        .ok_or_else(|| not_found(object, &id))?;
    store.purge(object, rid);
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/crm/v3/objects/{object_type}", get(list).post(create))
        .route(
            "/crm/v3/objects/{object_type}/{id}",
            get(get_one).patch(update).delete(archive),
        )
        .route("/crm/v3/objects/{object_type}/merge", post(merge))
        .route(
            "/crm/v3/objects/{object_type}/gdpr-delete",
            post(gdpr_delete),
        )
}
