//! `/crm/v3/schemas` (also `/crm-object-schemas/v3/schemas`): custom object schemas —
//! create, list, read, update and archive. The sandbox validates and stores schemas; it does
//! **not** serve records of custom objects (`/crm/v3/objects/2-…` answers 400, docs/sandbox.md).
//!
//! Invariants: schema names are unique (archived ones included, as HubSpot keeps the name
//! until the schema is purged); `objectTypeId`s are `2-N` and never reused; the primary,
//! required, searchable and secondary display properties always name properties of the
//! schema.

use std::collections::HashSet;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::{JsonBody, Params};
use super::object_type::ObjectType;
use super::properties::{FIELD_TYPES, TYPES};
use super::record::iso;
use super::state::AppState;
use super::store::Store;
use super::store::catalog::already_exists;

/// `{singular, plural}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Labels {
    #[serde(default)]
    pub singular: Option<String>,
    #[serde(default)]
    pub plural: Option<String>,
}

/// One option of an enumeration property of a schema.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SchemaOption {
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub value: String,
    #[serde(rename = "displayOrder", default)]
    pub display_order: Option<i64>,
    #[serde(default)]
    pub hidden: bool,
}

/// `ObjectTypePropertyCreate`, stored as given.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SchemaProperty {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub label: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(rename = "fieldType", default)]
    pub field_type: String,
    #[serde(rename = "groupName", default)]
    pub group_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub options: Vec<SchemaOption>,
    #[serde(rename = "displayOrder", default)]
    pub display_order: Option<i64>,
    #[serde(rename = "hasUniqueValue", default)]
    pub has_unique_value: bool,
    #[serde(default)]
    pub hidden: bool,
}

/// One association definition of a schema.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SchemaAssociation {
    pub id: String,
    pub name: String,
    pub to_object_type_id: String,
}

/// A stored custom object schema.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ObjectSchema {
    pub id: String,
    pub object_type_id: String,
    pub fully_qualified_name: String,
    pub name: String,
    pub labels: Labels,
    pub description: Option<String>,
    pub primary_display_property: Option<String>,
    pub required_properties: Vec<String>,
    pub searchable_properties: Vec<String>,
    pub secondary_display_properties: Vec<String>,
    pub properties: Vec<SchemaProperty>,
    pub associations: Vec<SchemaAssociation>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub archived: bool,
}

/// The properties HubSpot adds to every custom object.
const BUILTIN: [(&str, &str, &str); 3] = [
    ("hs_object_id", "Record ID", "number"),
    ("hs_createdate", "Create Date", "datetime"),
    ("hs_lastmodifieddate", "Last Modified Date", "datetime"),
];

impl ObjectSchema {
    fn property_json(&self, p: &SchemaProperty) -> Value {
        let options: Vec<Value> = p
            .options
            .iter()
            .zip(0..)
            .map(|(o, order)| {
                json!({"label": o.label, "value": o.value, "hidden": o.hidden,
                       "displayOrder": o.display_order.unwrap_or(order)})
            })
            .collect();
        json!({
            "name": p.name,
            "label": p.label,
            "type": p.kind,
            "fieldType": p.field_type,
            "groupName": p.group_name.clone().unwrap_or_else(|| format!("{}_information", self.name)),
            "description": p.description.clone().unwrap_or_default(),
            "options": options,
            "displayOrder": p.display_order.unwrap_or(-1),
            "hasUniqueValue": p.has_unique_value,
            "hidden": p.hidden,
            "formField": true,
            "calculated": false,
            "externalOptions": false,
            "hubspotDefined": false,
            "archived": false,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
        })
    }

    pub fn to_json(&self) -> Value {
        let mut properties: Vec<Value> = BUILTIN
            .iter()
            .map(|(name, label, kind)| {
                json!({"name": name, "label": label, "type": kind,
                       "fieldType": if *kind == "number" { "number" } else { "date" },
                       "groupName": format!("{}_information", self.name), "description": "",
                       "options": [], "displayOrder": -1, "hasUniqueValue": *name == "hs_object_id",
                       "hidden": false, "formField": false, "calculated": false,
                       "externalOptions": false, "hubspotDefined": true, "archived": false,
                       "createdAt": iso(self.created_at), "updatedAt": iso(self.updated_at)})
            })
            .collect();
        properties.extend(self.properties.iter().map(|p| self.property_json(p)));
        let associations: Vec<Value> = self
            .associations
            .iter()
            .map(|a| {
                json!({"id": a.id, "name": a.name, "fromObjectTypeId": self.object_type_id,
                       "toObjectTypeId": a.to_object_type_id,
                       "createdAt": iso(self.created_at), "updatedAt": iso(self.updated_at)})
            })
            .collect();
        let mut body = json!({
            "id": self.id,
            "objectTypeId": self.object_type_id,
            "fullyQualifiedName": self.fully_qualified_name,
            "name": self.name,
            "labels": self.labels,
            "primaryDisplayProperty": self.primary_display_property,
            "requiredProperties": self.required_properties,
            "searchableProperties": self.searchable_properties,
            "secondaryDisplayProperties": self.secondary_display_properties,
            "properties": properties,
            "associations": associations,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "archived": self.archived,
        });
        if let (Some(description), Some(map)) = (&self.description, body.as_object_mut()) {
            map.insert("description".to_owned(), json!(description));
        }
        body
    }

    /// Whether `segment` addresses this schema: its type id, fully qualified name or name.
    fn is(&self, segment: &str) -> bool {
        self.object_type_id == segment
            || self.fully_qualified_name.eq_ignore_ascii_case(segment)
            || self.name.eq_ignore_ascii_case(segment)
    }

    fn has_property(&self, name: &str) -> bool {
        self.properties.iter().any(|p| p.name == name) || BUILTIN.iter().any(|b| b.0 == name)
    }
}

/// `ObjectSchemaEgg`.
#[derive(Debug, Deserialize)]
struct SchemaCreate {
    #[serde(default)]
    name: String,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    description: Option<String>,
    #[serde(rename = "primaryDisplayProperty", default)]
    primary_display_property: Option<String>,
    #[serde(rename = "requiredProperties", default)]
    required_properties: Vec<String>,
    #[serde(rename = "searchableProperties", default)]
    searchable_properties: Vec<String>,
    #[serde(rename = "secondaryDisplayProperties", default)]
    secondary_display_properties: Vec<String>,
    #[serde(default)]
    properties: Vec<SchemaProperty>,
    #[serde(rename = "associatedObjects", default)]
    associated_objects: Vec<String>,
}

/// `ObjectTypeDefinitionPatch`.
#[derive(Debug, Deserialize)]
struct SchemaPatch {
    #[serde(default)]
    labels: Option<Labels>,
    #[serde(default)]
    description: Option<String>,
    #[serde(rename = "primaryDisplayProperty", default)]
    primary_display_property: Option<String>,
    #[serde(rename = "requiredProperties", default)]
    required_properties: Option<Vec<String>>,
    #[serde(rename = "searchableProperties", default)]
    searchable_properties: Option<Vec<String>>,
    #[serde(rename = "secondaryDisplayProperties", default)]
    secondary_display_properties: Option<Vec<String>>,
}

fn valid_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn labels_problems(labels: &Labels, problems: &mut Vec<String>) {
    for (key, value) in [("singular", &labels.singular), ("plural", &labels.plural)] {
        if value.as_deref().is_none_or(|v| v.trim().is_empty()) {
            problems.push(format!("labels.{key} is required"));
        }
    }
}

/// The display and required lists must name properties of the schema.
fn reference_problems(schema: &ObjectSchema, problems: &mut Vec<String>) {
    let lists = [
        ("requiredProperties", &schema.required_properties),
        ("searchableProperties", &schema.searchable_properties),
        (
            "secondaryDisplayProperties",
            &schema.secondary_display_properties,
        ),
    ];
    for (field, names) in lists {
        for name in names.iter().filter(|n| !schema.has_property(n)) {
            problems.push(format!("{field} names {name:?}, which is not a property"));
        }
    }
    if let Some(primary) = &schema.primary_display_property
        && !schema.has_property(primary)
    {
        problems.push(format!(
            "primaryDisplayProperty {primary:?} is not a property"
        ));
    }
}

fn property_problems(properties: &[SchemaProperty], problems: &mut Vec<String>) {
    let mut seen = HashSet::new();
    for p in properties {
        let ok_name = p
            .name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase())
            && p.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ok_name {
            problems.push(format!(
                "property name must start with a lowercase letter and contain only a-z, 0-9 and _, got {:?}",
                p.name
            ));
        }
        if !seen.insert(p.name.as_str()) || BUILTIN.iter().any(|b| b.0 == p.name) {
            problems.push(format!("property {:?} is defined twice", p.name));
        }
        if p.label.trim().is_empty() {
            problems.push(format!("property {:?} needs a label", p.name));
        }
        if !TYPES.contains(&p.kind.as_str()) {
            problems.push(format!(
                "property {:?}: type must be one of {TYPES:?}, got {:?}",
                p.name, p.kind
            ));
        }
        if !FIELD_TYPES.contains(&p.field_type.as_str()) {
            problems.push(format!(
                "property {:?}: fieldType must be one of {FIELD_TYPES:?}, got {:?}",
                p.name, p.field_type
            ));
        }
        let mut values = HashSet::new();
        if p.kind == "enumeration" && p.options.is_empty() {
            problems.push(format!("property {:?}: options are required", p.name));
        }
        for o in &p.options {
            if o.value.is_empty() || !values.insert(o.value.as_str()) {
                problems.push(format!(
                    "property {:?}: option values must be present and unique, got {:?}",
                    p.name, o.value
                ));
            }
        }
    }
}

/// An associated object: a standard type (`CONTACT`, `contacts`, `0-1`…) or another custom
/// schema; answers its type id.
fn associated_type(store: &Store, raw: &str) -> Option<String> {
    ObjectType::parse(raw)
        .map(|t| t.type_id().to_owned())
        .or_else(|| {
            store
                .object_schemas()
                .iter()
                .find(|s| !s.archived && s.is(raw))
                .map(|s| s.object_type_id.clone())
        })
}

fn invalid(problems: &[String]) -> ApiError {
    ApiError::validation(format!("Invalid object schema: {}", problems.join("; ")))
}

fn not_found(segment: &str) -> ApiError {
    ApiError::not_found(format!("Unable to find object schema {segment}"))
}

/// `GET /crm/v3/schemas` → `{results}`; `archived=true` lists archived schemas only.
async fn list(State(state): State<AppState>, params: Params) -> axum::Json<Value> {
    let archived = params.flag("archived");
    let store = state.store();
    let results: Vec<Value> = store
        .object_schemas()
        .iter()
        .filter(|s| s.archived == archived)
        .map(ObjectSchema::to_json)
        .collect();
    axum::Json(json!({ "results": results }))
}

/// `POST /crm/v3/schemas` → 201 with `id`, `objectTypeId` `2-N` and `fullyQualifiedName`.
async fn create(
    State(state): State<AppState>,
    JsonBody(input): JsonBody<SchemaCreate>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let portal = state.portal_id();
    let mut store = state.store();
    let mut problems = Vec::new();
    if !valid_name(&input.name) {
        problems.push(format!(
            "name must start with a letter and contain only letters, digits and _, got {:?}",
            input.name
        ));
    }
    labels_problems(&input.labels, &mut problems);
    if input.properties.is_empty() {
        problems.push("at least one property is required".to_owned());
    }
    property_problems(&input.properties, &mut problems);
    let mut targets = Vec::new();
    for raw in &input.associated_objects {
        match associated_type(&store, raw) {
            Some(type_id) => targets.push((raw.clone(), type_id)),
            None => problems.push(format!(
                "associatedObjects names {raw:?}, which is not an object type"
            )),
        }
    }
    let now = store.now();
    let mut schema = ObjectSchema {
        id: String::new(),
        object_type_id: String::new(),
        fully_qualified_name: format!("p{portal}_{}", input.name),
        name: input.name,
        labels: input.labels,
        description: input.description,
        primary_display_property: input.primary_display_property,
        required_properties: input.required_properties,
        searchable_properties: input.searchable_properties,
        secondary_display_properties: input.secondary_display_properties,
        properties: input.properties,
        associations: Vec::new(),
        created_at: now,
        updated_at: now,
        archived: false,
    };
    reference_problems(&schema, &mut problems);
    if !problems.is_empty() {
        return Err(invalid(&problems));
    }
    if store
        .object_schemas()
        .iter()
        .any(|s| s.name.eq_ignore_ascii_case(&schema.name))
    {
        return Err(already_exists(format!(
            "An object schema named '{}' already exists.",
            schema.name
        )));
    }
    schema.id = store.next_definition_id();
    schema.object_type_id = format!("2-{}", store.next_schema_number());
    for (raw, to) in targets {
        let association_id = store.next_definition_id();
        schema.associations.push(SchemaAssociation {
            id: association_id,
            name: format!("{}_to_{}", schema.name, raw.to_lowercase()),
            to_object_type_id: to,
        });
    }
    let body = schema.to_json();
    store.add_object_schema(schema);
    Ok((StatusCode::CREATED, axum::Json(body)))
}

async fn get_one(
    State(state): State<AppState>,
    Path(segment): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let store = state.store();
    store
        .object_schemas()
        .iter()
        .find(|s| !s.archived && s.is(&segment))
        .map(|s| axum::Json(s.to_json()))
        .ok_or_else(|| not_found(&segment))
}

/// `PATCH /crm/v3/schemas/{objectType}` → 200.
async fn update(
    State(state): State<AppState>,
    Path(segment): Path<String>,
    JsonBody(input): JsonBody<SchemaPatch>,
) -> Result<axum::Json<Value>, ApiError> {
    let mut store = state.store();
    let mut schema = store
        .object_schemas()
        .iter()
        .find(|s| !s.archived && s.is(&segment))
        .cloned()
        .ok_or_else(|| not_found(&segment))?;
    let mut problems = Vec::new();
    if let Some(labels) = input.labels {
        let merged = Labels {
            singular: labels.singular.or(schema.labels.singular.clone()),
            plural: labels.plural.or(schema.labels.plural.clone()),
        };
        labels_problems(&merged, &mut problems);
        schema.labels = merged;
    }
    if input.description.is_some() {
        schema.description = input.description;
    }
    if input.primary_display_property.is_some() {
        schema.primary_display_property = input.primary_display_property;
    }
    if let Some(v) = input.required_properties {
        schema.required_properties = v;
    }
    if let Some(v) = input.searchable_properties {
        schema.searchable_properties = v;
    }
    if let Some(v) = input.secondary_display_properties {
        schema.secondary_display_properties = v;
    }
    reference_problems(&schema, &mut problems);
    if !problems.is_empty() {
        return Err(invalid(&problems));
    }
    schema.updated_at = store.now();
    let body = schema.to_json();
    store.replace_object_schema(schema);
    Ok(axum::Json(body))
}

/// `DELETE /crm/v3/schemas/{objectType}` → 204: archives; with `archived=true` an archived
/// schema is purged, which frees its name.
async fn remove(
    State(state): State<AppState>,
    Path(segment): Path<String>,
    params: Params,
) -> Result<StatusCode, ApiError> {
    let purge = params.flag("archived");
    let mut store = state.store();
    let mut schema = store
        .object_schemas()
        .iter()
        .find(|s| s.archived == purge && s.is(&segment))
        .cloned()
        .ok_or_else(|| not_found(&segment))?;
    if purge {
        store.purge_object_schema(&schema.object_type_id);
    } else {
        schema.archived = true;
        schema.updated_at = store.now();
        store.replace_object_schema(schema);
    }
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) fn router() -> Router<AppState> {
    let mut router = Router::new();
    for prefix in ["/crm/v3/schemas", "/crm-object-schemas/v3/schemas"] {
        router = router.route(prefix, get(list).post(create)).route(
            &format!("{prefix}/{{object_type}}"),
            get(get_one).patch(update).delete(remove),
        );
    }
    router
}
