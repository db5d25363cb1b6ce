//! The in-memory portal: records per object type, property definitions and associations.
//!
//! Invariants kept here and nowhere else:
//! - `unique` indexes every *live* record by each unique-key property value (contact `email`,
//!   lower-cased, and every `hasUniqueValue` property), so get/upsert by `idProperty` is a
//!   hash lookup, never a scan;
//! - ids are numeric, increasing and never reused, across all object types;
//! - timestamps never go backwards, so sorting by the modification date is stable;
//! - every mutation bumps `generation` (what persistence watches) and, while webhooks are
//!   on, appends its [`Change`]s to the outbox, attributed to the current [`actor`];
//! - the options of the pipeline and stage properties always list the stored pipelines and
//!   stages (property definitions, groups and pipelines are kept in [`catalog`]).

pub(crate) mod catalog;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use serde::{Deserialize, Serialize};

use super::actor;
use super::error::{ApiError, PropertyProblem};
use super::events::{Change, Outbox, What};
use super::links::{AssociationType, Links, Node, UserLabel};
use super::object_schemas::ObjectSchema;
use super::object_type::ObjectType;
use super::owners::{self, Owner};
use super::pipeline_defs::{self, Pipeline};
use super::record::{Record, iso};
use super::schema::{self, PropertyDef, PropertyGroup};
use super::values::{normalize, raw_value};

/// Property changes of one write: `None` clears the property.
pub(crate) type Changes = BTreeMap<String, Option<String>>;

/// Unique values claimed by earlier inputs of the same batch: `(property, key) → target id`.
pub(crate) type Claims = HashMap<(String, String), Option<u64>>;

/// Records of one object type.
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub records: BTreeMap<u64, Record>,
    unique: HashMap<String, HashMap<String, u64>>,
    merged_into: HashMap<u64, u64>,
}

/// The whole emulated portal.
#[derive(Debug)]
pub(crate) struct Store {
    tables: [Table; ObjectType::ALL.len()],
    schemas: [BTreeMap<String, PropertyDef>; ObjectType::ALL.len()],
    /// Archived (recycled) custom properties: no longer writable or readable on records.
    archived_properties: [BTreeMap<String, PropertyDef>; ObjectType::ALL.len()],
    groups: [BTreeMap<String, PropertyGroup>; ObjectType::ALL.len()],
    pipelines: [Vec<Pipeline>; ObjectType::ALL.len()],
    /// USER_DEFINED association labels.
    labels: Vec<UserLabel>,
    /// Next user-defined association type id.
    next_label_id: u32,
    owners: Vec<Owner>,
    /// Custom object schemas (validated and stored; their records are not served).
    object_schemas: Vec<ObjectSchema>,
    /// The `N` of the next custom object type id `2-N`.
    next_schema_number: u64,
    pub links: Links,
    next_id: u64,
    /// Next generated pipeline or stage id (HubSpot's are numeric strings).
    next_definition_id: u64,
    last_now: DateTime<Utc>,
    pub outbox: Outbox,
    generation: u64,
}

/// The persisted form of a [`Store`]: everything but the derived unique index.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    next_id: u64,
    last_now: DateTime<Utc>,
    records: BTreeMap<ObjectType, Vec<Record>>,
    merged_into: BTreeMap<ObjectType, Vec<(u64, u64)>>,
    custom_properties: BTreeMap<ObjectType, Vec<PropertyDef>>,
    links: Vec<(Node, Node, Vec<u32>)>,
    // The fields below came with the second fidelity pass; a snapshot written before it
    // lacks them and loads with the defaults (an object type absent from a map keeps its
    // default groups and pipelines).
    #[serde(default)]
    archived_properties: BTreeMap<ObjectType, Vec<PropertyDef>>,
    #[serde(default)]
    groups: BTreeMap<ObjectType, Vec<PropertyGroup>>,
    #[serde(default)]
    pipelines: BTreeMap<ObjectType, Vec<Pipeline>>,
    #[serde(default)]
    next_definition_id: u64,
    #[serde(default)]
    labels: Vec<UserLabel>,
    #[serde(default)]
    next_label_id: u32,
    /// `None` in a snapshot from before owners existed: the seeded ones.
    #[serde(default)]
    owners: Option<Vec<Owner>>,
    #[serde(default)]
    object_schemas: Vec<ObjectSchema>,
    #[serde(default)]
    next_schema_number: u64,
}

/// First generated pipeline/stage id: as long as HubSpot's, far from the built-in ones.
const FIRST_DEFINITION_ID: u64 = 100_000_001;
/// First user-defined association type id: clear of every HUBSPOT_DEFINED id served.
const FIRST_LABEL_ID: u32 = 1001;

impl Store {
    pub fn new() -> Self {
        let schemas = ObjectType::ALL.map(|object| {
            schema::builtin(object)
                .into_iter()
                .map(|def| (def.name.clone(), def))
                .collect()
        });
        let groups = ObjectType::ALL.map(|object| {
            schema::default_groups(object)
                .into_iter()
                .map(|group| (group.name.clone(), group))
                .collect()
        });
        let mut store = Self {
            tables: Default::default(),
            schemas,
            archived_properties: Default::default(),
            groups,
            pipelines: ObjectType::ALL.map(pipeline_defs::defaults),
            labels: Vec::new(),
            next_label_id: FIRST_LABEL_ID,
            owners: owners::seeded(),
            object_schemas: Vec::new(),
            next_schema_number: 1,
            links: Links::default(),
            // Start well above zero so ids look like HubSpot's and never collide with "0".
            next_id: 1001,
            next_definition_id: FIRST_DEFINITION_ID,
            last_now: DateTime::<Utc>::UNIX_EPOCH,
            outbox: Outbox::default(),
            generation: 0,
        };
        for object in ObjectType::ALL {
            store.sync_pipeline_options(object);
        }
        store
    }

    /// An empty portal that keeps this one's webhook switch (admin reset).
    pub fn emptied(&self) -> Self {
        let mut store = Self::new();
        store.outbox.enabled = self.outbox.enabled;
        store.generation = self.generation + 1;
        store
    }

    /// Increases on every mutation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn record_change(&mut self, object: ObjectType, id: u64, at: DateTime<Utc>, what: What) {
        self.outbox.push(Change {
            at,
            actor: actor::current(),
            object,
            id,
            what,
        });
    }

    /// The persisted form.
    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot {
            next_id: self.next_id,
            last_now: self.last_now,
            records: BTreeMap::new(),
            merged_into: BTreeMap::new(),
            custom_properties: BTreeMap::new(),
            links: self.links.edges(),
            archived_properties: BTreeMap::new(),
            groups: BTreeMap::new(),
            pipelines: BTreeMap::new(),
            next_definition_id: self.next_definition_id,
            labels: self.labels.clone(),
            next_label_id: self.next_label_id,
            owners: Some(self.owners.clone()),
            object_schemas: self.object_schemas.clone(),
            next_schema_number: self.next_schema_number,
        };
        for object in ObjectType::ALL {
            let table = self.table(object);
            snapshot
                .records
                .insert(object, table.records.values().cloned().collect());
            snapshot.merged_into.insert(
                object,
                table.merged_into.iter().map(|(&a, &b)| (a, b)).collect(),
            );
            snapshot.custom_properties.insert(
                object,
                self.schema(object)
                    .values()
                    .filter(|d| !d.hubspot_defined)
                    .cloned()
                    .collect(),
            );
            snapshot.archived_properties.insert(
                object,
                self.archived_properties[object.index()]
                    .values()
                    .cloned()
                    .collect(),
            );
            snapshot.groups.insert(
                object,
                self.groups[object.index()].values().cloned().collect(),
            );
            snapshot
                .pipelines
                .insert(object, self.pipelines[object.index()].clone());
        }
        snapshot
    }

    /// Rebuilds a store (and its unique index) from a snapshot.
    pub fn restore(snapshot: Snapshot) -> Self {
        let mut store = Self::new();
        store.next_id = snapshot.next_id.max(store.next_id);
        store.next_definition_id = snapshot.next_definition_id.max(store.next_definition_id);
        store.last_now = snapshot.last_now;
        store.labels = snapshot.labels;
        if let Some(owners) = snapshot.owners {
            store.owners = owners;
        }
        store.object_schemas = snapshot.object_schemas;
        store.next_schema_number = snapshot.next_schema_number.max(store.next_schema_number);
        store.next_label_id = snapshot.next_label_id.max(store.next_label_id);
        for (object, defs) in snapshot.custom_properties {
            for def in defs {
                store.schemas[object.index()].insert(def.name.clone(), def);
            }
        }
        for (object, defs) in snapshot.archived_properties {
            for def in defs {
                store.archived_properties[object.index()].insert(def.name.clone(), def);
            }
        }
        for (object, groups) in snapshot.groups {
            store.groups[object.index()] = groups
                .into_iter()
                .map(|group| (group.name.clone(), group))
                .collect();
        }
        for (object, pipelines) in snapshot.pipelines {
            store.pipelines[object.index()] = pipelines;
            store.sync_pipeline_options(object);
        }
        for (object, records) in snapshot.records {
            let schema = &store.schemas[object.index()];
            let table = &mut store.tables[object.index()];
            for record in records {
                if !record.is_archived() {
                    index_record(table, object, schema, &record, true);
                }
                table.records.insert(record.id, record);
            }
        }
        for (object, pairs) in snapshot.merged_into {
            store.tables[object.index()].merged_into.extend(pairs);
        }
        for (from, to, types) in snapshot.links {
            store.links.restore(from, to, &types);
        }
        store
    }

    /// Adds an association (both ways) and records one change per direction if it is new.
    pub fn associate(&mut self, from: Node, to: Node, kind: &AssociationType) {
        let before = self.links.types_between(from, to);
        self.links.add(from, to, kind);
        if self.links.types_between(from, to) != before {
            self.generation += 1;
            let primary = kind.is_primary();
            self.record_association(from, to, primary, false);
        }
    }

    /// Removes every association between the pair, recording the removal.
    pub fn dissociate(&mut self, a: Node, b: Node) {
        if self.links.remove_pair(a, b) {
            self.generation += 1;
            self.record_association(a, b, false, true);
        }
    }

    /// Removes labels between the pair (FACTS 2.6), recording a change if any went away.
    pub fn remove_labels(&mut self, from: Node, to: Node, kinds: &[AssociationType]) {
        let before = self.links.types_between(from, to);
        self.links.remove_labels(from, to, kinds);
        let after = self.links.types_between(from, to);
        if after != before {
            self.generation += 1;
            let primary = kinds.iter().any(|k| k.is_primary());
            self.record_association(from, to, primary, true);
        }
    }

    fn record_association(&mut self, a: Node, b: Node, primary: bool, removed: bool) {
        let now = self.now();
        for (from, to) in [(a, b), (b, a)] {
            self.record_change(
                from.0,
                from.1,
                now,
                What::Association {
                    to,
                    primary,
                    removed,
                },
            );
        }
    }

    /// A clock that never goes backwards.
    pub fn now(&mut self) -> DateTime<Utc> {
        let now = Utc::now().max(self.last_now);
        self.last_now = now;
        now
    }

    pub fn table(&self, object: ObjectType) -> &Table {
        &self.tables[object.index()]
    }

    pub fn schema(&self, object: ObjectType) -> &BTreeMap<String, PropertyDef> {
        &self.schemas[object.index()]
    }

    /// Adds a custom property; 409 `OBJECT_ALREADY_EXISTS` if the name is taken (FACTS 2.7).
    pub fn add_property(&mut self, object: ObjectType, def: PropertyDef) -> Result<(), ApiError> {
        let schema = &mut self.schemas[object.index()];
        if schema.contains_key(&def.name) {
            return Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "OBJECT_ALREADY_EXISTS",
                format!(
                    "A property named '{}' already exists for object type {}.",
                    def.name,
                    object.type_id()
                ),
            ));
        }
        // A new property may take an archived one's name; the archived one then cannot be
        // restored any more (HubSpot's knowledge base on restoring deleted properties).
        self.archived_properties[object.index()].remove(&def.name);
        schema.insert(def.name.clone(), def);
        self.generation += 1;
        Ok(())
    }

    /// The portal's owners.
    pub fn owners(&self) -> &[Owner] {
        &self.owners
    }

    pub fn add_owner(&mut self, owner: Owner) {
        self.owners.push(owner);
        self.generation += 1;
    }

    fn is_active_owner(&self, raw: &str) -> bool {
        raw.parse::<u64>()
            .is_ok_and(|id| self.owners.iter().any(|o| o.id == id && !o.archived))
    }

    /// Live (non-archived) record counts per object type.
    pub fn live_count(&self, object: ObjectType) -> usize {
        self.table(object)
            .records
            .values()
            .filter(|r| !r.is_archived())
            .count()
    }

    /// Whether `name` identifies records uniquely: `hasUniqueValue` properties and contact
    /// `email` (FACTS 2.3, 2.7).
    pub fn is_unique_key(&self, object: ObjectType, name: &str) -> bool {
        (object == ObjectType::Contacts && name == "email")
            || self
                .schema(object)
                .get(name)
                .is_some_and(|d| d.has_unique_value)
    }

    fn index_key(name: &str, value: &str) -> String {
        // HubSpot treats e-mail addresses case-insensitively.
        if name == "email" {
            value.to_lowercase()
        } else {
            value.to_owned()
        }
    }

    /// Resolves a path/input id to a record id. Without `id_property` (or with
    /// `hs_object_id`) `id` is the record id, following merges; otherwise it is a value of a
    /// unique property. `Ok(None)` means "no such record".
    pub fn resolve(
        &self,
        object: ObjectType,
        id: &str,
        id_property: Option<&str>,
    ) -> Result<Option<u64>, ApiError> {
        match id_property {
            None | Some("hs_object_id") | Some("") => {
                let Ok(mut id) = id.trim().parse::<u64>() else {
                    return Ok(None);
                };
                let table = self.table(object);
                // Requests for an absorbed id resolve to the survivor (FACTS 2.4).
                while let Some(&into) = table.merged_into.get(&id) {
                    id = into;
                }
                Ok(table.records.contains_key(&id).then_some(id))
            }
            Some(name) => {
                if !self.is_unique_key(object, name) {
                    return Err(ApiError::validation(format!(
                        "Property {name} is not a unique identifier for {}; use a property with hasUniqueValue=true",
                        object.name()
                    )));
                }
                Ok(self
                    .table(object)
                    .unique
                    .get(name)
                    .and_then(|index| index.get(&Self::index_key(name, id)))
                    .copied())
            }
        }
    }

    /// A live record by id.
    pub fn live(&self, object: ObjectType, id: u64) -> Option<&Record> {
        self.table(object)
            .records
            .get(&id)
            .filter(|r| !r.is_archived())
    }

    /// Validates a `properties` object against the schema and returns the normalised
    /// changes, or a 400 listing every invalid value (FACTS 2.9).
    pub fn validate(
        &self,
        object: ObjectType,
        input: &Map<String, Value>,
        target: Option<&Record>,
    ) -> Result<Changes, ApiError> {
        let schema = self.schema(object);
        let mut problems = Vec::new();
        let mut changes = Changes::new();
        for (name, value) in input {
            let Some(def) = schema.get(name) else {
                problems.push(PropertyProblem {
                    name: name.clone(),
                    error: "PROPERTY_DOESNT_EXIST",
                    message: format!("Property \"{name}\" does not exist"),
                });
                continue;
            };
            if def.read_only_value {
                problems.push(PropertyProblem {
                    name: name.clone(),
                    error: "READ_ONLY_VALUE",
                    message: format!("{name} is a read only property; its value cannot be set."),
                });
                continue;
            }
            if def.is_owner() {
                // HubSpot checks an owner id against the portal's owners [MEM: the code].
                match raw_value(value) {
                    None => {
                        changes.insert(name.clone(), None);
                    }
                    Some(raw) if self.is_active_owner(&raw) => {
                        changes.insert(name.clone(), Some(raw));
                    }
                    Some(raw) => problems.push(PropertyProblem {
                        name: name.clone(),
                        error: "INVALID_OWNER_ID",
                        message: format!("{raw} is not a valid owner id"),
                    }),
                }
                continue;
            }
            let is_email = object == ObjectType::Contacts && name == "email";
            match raw_value(value) {
                None => {
                    changes.insert(name.clone(), None);
                }
                Some(raw) => match normalize(def, is_email, &raw) {
                    Ok(stored) => {
                        changes.insert(name.clone(), Some(stored));
                    }
                    Err(problem) => problems.push(problem),
                },
            }
        }
        self.check_stage(object, &changes, target, &mut problems);
        if object == ObjectType::LineItems {
            self.check_line_item(&changes, &mut problems);
        }
        if problems.is_empty() {
            Ok(changes)
        } else {
            Err(ApiError::property_values(&problems))
        }
    }

    /// Rejects unique values held by another live record (409 for a contact's e-mail, 400
    /// otherwise) or claimed twice within one batch (400). Successful claims are recorded in `claims`.
    pub fn check_unique(
        &self,
        object: ObjectType,
        changes: &Changes,
        target: Option<u64>,
        claims: &mut Claims,
    ) -> Result<(), ApiError> {
        for (name, value) in changes {
            let Some(value) = value else { continue };
            if !self.is_unique_key(object, name) {
                continue;
            }
            let key = Self::index_key(name, value);
            if let Some(&existing) = self
                .table(object)
                .unique
                .get(name)
                .and_then(|index| index.get(&key))
                && Some(existing) != target
            {
                // A contact's e-mail answers 409 CONFLICT (FACTS 2.3); any other unique
                // property the 400 HubSpot sends for a taken value (see
                // `ApiError::unique_value_taken` for the source).
                if object == ObjectType::Contacts && name == "email" {
                    return Err(ApiError::conflict(format!(
                        "Contact already exists. Existing ID: {existing}"
                    )));
                }
                return Err(ApiError::unique_value_taken(
                    object.type_id(),
                    name,
                    value,
                    target.unwrap_or(self.next_id),
                    existing,
                ));
            }
            let claim = (name.clone(), key);
            match claims.get(&claim) {
                Some(previous) if previous.is_none() || *previous != target => {
                    return Err(ApiError::validation(format!(
                        "Duplicate value \"{value}\" for unique property {name} in batch input"
                    )));
                }
                _ => {
                    claims.insert(claim, target);
                }
            }
        }
        Ok(())
    }

    /// Creates a record from validated changes and returns its id.
    pub fn create(&mut self, object: ObjectType, changes: Changes) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let now = self.now();
        let mut props: BTreeMap<String, String> = changes
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        props.insert("hs_object_id".to_owned(), id.to_string());
        props
            .entry("createdate".to_owned())
            .or_insert_with(|| iso(now));
        props.insert(object.last_modified_property().to_owned(), iso(now));
        if let Some((pipeline, stage)) = pipeline_defs::pipeline_properties(object)
            && props.contains_key(stage)
            && !props.contains_key(pipeline)
            && let Some(default) = self.default_pipeline(object)
        {
            props.insert(pipeline.to_owned(), default.to_owned());
        }
        if object == ObjectType::LineItems {
            self.inherit_from_product(&mut props);
            if let Some(amount) = line_item_amount(&props) {
                props.insert("amount".to_owned(), amount);
            }
        }
        let author = actor::current();
        let mut record = Record {
            id,
            props,
            created_at: now,
            updated_at: now,
            archived_at: None,
            history: BTreeMap::new(),
        };
        let written: Vec<(String, String)> = record
            .props
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (name, value) in written {
            record.remember(&name, Some(&value), now, author);
        }
        let table = &mut self.tables[object.index()];
        index_record(table, object, &self.schemas[object.index()], &record, true);
        table.records.insert(id, record);
        self.generation += 1;
        self.record_change(object, id, now, What::Creation);
        id
    }

    /// Applies validated changes to a live record.
    pub fn update(&mut self, object: ObjectType, id: u64, changes: Changes) {
        let now = self.now();
        let schema = &self.schemas[object.index()];
        let table = &mut self.tables[object.index()];
        let Some(mut record) = table.records.remove(&id) else {
            return;
        };
        index_record(table, object, schema, &record, false);
        let author = actor::current();
        let mut changed = Vec::new();
        for (name, value) in changes {
            record.remember(&name, value.as_deref(), now, author);
            let previous = match &value {
                Some(v) => record.props.insert(name.clone(), v.clone()),
                None => record.props.remove(&name),
            };
            if previous != value {
                changed.push((name, value.unwrap_or_default()));
            }
        }
        if object == ObjectType::LineItems {
            // HubSpot recomputes the net price whenever one of its inputs changes.
            let amount = line_item_amount(&record.props);
            if record.props.get("amount") != amount.as_ref() {
                record.remember("amount", amount.as_deref(), now, author);
                match &amount {
                    Some(a) => record.props.insert("amount".to_owned(), a.clone()),
                    None => record.props.remove("amount"),
                };
                changed.push(("amount".to_owned(), amount.unwrap_or_default()));
            }
        }
        let modified = iso(now);
        record.remember(
            object.last_modified_property(),
            Some(&modified),
            now,
            author,
        );
        record
            .props
            .insert(object.last_modified_property().to_owned(), modified);
        record.updated_at = now;
        index_record(table, object, schema, &record, true);
        table.records.insert(id, record);
        self.generation += 1;
        // One event per property whose value actually changed (FACTS 2.11).
        for (name, value) in changed {
            self.record_change(object, id, now, What::Property { name, value });
        }
    }

    /// A line item's product must exist (HubSpot copies its values from it) and its unit price
    /// cannot be negative (HubSpot's line items guide). HubSpot documents neither error body;
    /// the sandbox answers them as property-value problems (docs/sandbox.md).
    fn check_line_item(&self, changes: &Changes, problems: &mut Vec<PropertyProblem>) {
        if let Some(Some(product)) = changes.get("hs_product_id") {
            let live = product
                .parse::<u64>()
                .ok()
                .and_then(|id| {
                    self.resolve(ObjectType::Products, &id.to_string(), None)
                        .ok()
                })
                .flatten()
                .is_some_and(|id| self.live(ObjectType::Products, id).is_some());
            if !live {
                problems.push(PropertyProblem {
                    name: "hs_product_id".to_owned(),
                    error: "INVALID_PRODUCT_ID",
                    message: format!("Product with id {product} does not exist or is archived"),
                });
            }
        }
        if let Some(Some(price)) = changes.get("price")
            && price.parse::<f64>().is_ok_and(|p| p < 0.0)
        {
            problems.push(PropertyProblem {
                name: "price".to_owned(),
                error: "INVALID_PRICE",
                message: format!("The price of a line item cannot be negative, got {price}"),
            });
        }
    }

    /// A line item created from a product takes the product's values it was not given
    /// (HubSpot's products guide: it "will inherit property values from the product, such as
    /// price"). Only on create: a later change of the product leaves its line items alone.
    fn inherit_from_product(&self, props: &mut BTreeMap<String, String>) {
        let Some(product) = props
            .get("hs_product_id")
            .and_then(|id| id.parse::<u64>().ok())
            .and_then(|id| self.live(ObjectType::Products, id))
        else {
            return;
        };
        for name in INHERITED_FROM_PRODUCT {
            if let Some(value) = product.props.get(*name) {
                props
                    .entry((*name).to_owned())
                    .or_insert_with(|| value.clone());
            }
        }
    }

    /// Soft-deletes a live record (FACTS 2.4). Returns whether it was live.
    pub fn archive(&mut self, object: ObjectType, id: u64) -> bool {
        let now = self.now();
        let schema = &self.schemas[object.index()];
        let table = &mut self.tables[object.index()];
        let Some(mut record) = table.records.remove(&id) else {
            return false;
        };
        let was_live = !record.is_archived();
        if was_live {
            index_record(table, object, schema, &record, false);
            record.archived_at = Some(now);
            record.updated_at = now;
        }
        table.records.insert(id, record);
        if was_live {
            self.generation += 1;
            self.record_change(object, id, now, What::Deletion { flag: "DELETED" });
        }
        was_live
    }

    /// Brings an archived record back, as HubSpot's UI does within 90 days (there is no public
    /// REST endpoint for it, FACTS 2.4). False when there is no such archived record.
    pub fn restore_archived(&mut self, object: ObjectType, id: u64) -> bool {
        let now = self.now();
        let schema = &self.schemas[object.index()];
        let table = &mut self.tables[object.index()];
        let Some(record) = table.records.get_mut(&id) else {
            return false;
        };
        if !record.is_archived() {
            return false;
        }
        record.archived_at = None;
        record.updated_at = now;
        let record = record.clone();
        index_record(table, object, schema, &record, true);
        self.generation += 1;
        self.record_change(object, id, now, What::Restore);
        true
    }

    /// Permanently deletes a record and its associations (GDPR delete).
    pub fn purge(&mut self, object: ObjectType, id: u64) -> bool {
        let schema = &self.schemas[object.index()];
        let table = &mut self.tables[object.index()];
        let Some(record) = table.records.remove(&id) else {
            return false;
        };
        if !record.is_archived() {
            index_record(table, object, schema, &record, false);
        }
        self.links.forget((object, id));
        self.generation += 1;
        let now = self.now();
        self.record_change(object, id, now, What::Deletion { flag: "DELETED" });
        if object == ObjectType::Contacts {
            self.record_change(object, id, now, What::PrivacyDeletion);
        }
        true
    }

    /// Merges `absorbed` into `primary` (both live, same type): the primary's values win,
    /// missing ones are taken from the absorbed record, associations move over and the
    /// absorbed id keeps resolving to the survivor (FACTS 2.4).
    pub fn merge(
        &mut self,
        object: ObjectType,
        primary: u64,
        absorbed: u64,
    ) -> Result<(), ApiError> {
        if primary == absorbed {
            return Err(ApiError::validation("Cannot merge a record with itself"));
        }
        let (Some(_), Some(other)) = (
            self.live(object, primary),
            self.live(object, absorbed).cloned(),
        ) else {
            return Err(ApiError::not_found(format!(
                "Unable to merge: {} {primary} or {absorbed} does not exist",
                object.singular()
            )));
        };
        let now = self.now();
        let mut moved = 0;
        let schema = &self.schemas[object.index()];
        let table = &mut self.tables[object.index()];
        if let Some(gone) = table.records.remove(&absorbed) {
            index_record(table, object, schema, &gone, false);
        }
        table.merged_into.insert(absorbed, primary);
        if let Some(mut record) = table.records.remove(&primary) {
            index_record(table, object, schema, &record, false);
            let skip = [
                "hs_object_id",
                "createdate",
                object.last_modified_property(),
            ];
            let author = actor::current();
            for (name, value) in &other.props {
                if !skip.contains(&name.as_str()) && !record.props.contains_key(name) {
                    record.props.insert(name.clone(), value.clone());
                    record.remember(name, Some(value), now, author);
                    moved += 1;
                }
            }
            let mut merged: Vec<String> = record
                .props
                .get("hs_merged_object_ids")
                .map(|s| {
                    s.split(';')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            merged.push(absorbed.to_string());
            let merged = merged.join(";");
            record
                .props
                .insert("hs_merged_object_ids".to_owned(), merged.clone());
            if object == ObjectType::Contacts {
                record
                    .props
                    .insert("hs_calculated_merged_vids".to_owned(), merged);
                if let Some(email) = other.props.get("email")
                    && record.props.get("email") != Some(email)
                {
                    let mut extra: Vec<String> = record
                        .props
                        .get("hs_additional_emails")
                        .map(|s| s.split(';').map(str::to_owned).collect())
                        .unwrap_or_default();
                    extra.push(email.clone());
                    record
                        .props
                        .insert("hs_additional_emails".to_owned(), extra.join(";"));
                }
            }
            record
                .props
                .insert(object.last_modified_property().to_owned(), iso(now));
            record.updated_at = now;
            index_record(table, object, schema, &record, true);
            table.records.insert(primary, record);
        }
        self.links.absorb((object, absorbed), (object, primary));
        self.generation += 1;
        // The sandbox keeps the primary id, so `newObjectId` is the primary; HubSpot also
        // reports the absorbed record's deletion and no propertyChange for moved values
        // (FACTS 2.4).
        self.record_change(
            object,
            primary,
            now,
            What::Merge {
                merged: vec![absorbed],
                new_id: primary,
                moved,
            },
        );
        self.record_change(object, absorbed, now, What::Deletion { flag: "MERGED" });
        Ok(())
    }
}

/// The product values a line item created from it takes when it was not given them.
const INHERITED_FROM_PRODUCT: &[&str] = &[
    "name",
    "price",
    "hs_sku",
    "description",
    "hs_cost_of_goods_sold",
    "hs_recurring_billing_period",
];

/// A line item's net price, as HubSpot computes it: quantity × (unit price − unit discount) ×
/// (1 − discount percentage / 100), with as many decimals as its inputs carry (two at least
/// with a percentage). `None` without a price and a quantity.
pub(crate) fn line_item_amount(props: &BTreeMap<String, String>) -> Option<String> {
    let number = |name: &str| props.get(name).and_then(|v| v.trim().parse::<f64>().ok());
    let decimals = |name: &str| {
        props
            .get(name)
            .and_then(|v| v.trim().split_once('.'))
            .map_or(0, |(_, frac)| frac.len())
    };
    let price = number("price")?;
    let quantity = number("quantity")?;
    let discount = number("discount").unwrap_or(0.0);
    let percentage = number("hs_discount_percentage");
    let value = quantity * (price - discount) * (1.0 - percentage.unwrap_or(0.0) / 100.0);
    let mut places = decimals("price")
        .max(decimals("quantity"))
        .max(decimals("discount"));
    if percentage.is_some() {
        places = places.max(2);
    }
    let places = places.min(10);
    let text = format!("{value:.places$}");
    // `-0.00` reads oddly and is zero.
    Some(
        if text
            .trim_start_matches('-')
            .chars()
            .all(|c| c == '0' || c == '.')
        {
            text.trim_start_matches('-').to_owned()
        } else {
            text
        },
    )
}

/// Adds (`add = true`) or removes a live record's unique values in the index.
fn index_record(
    table: &mut Table,
    object: ObjectType,
    schema: &BTreeMap<String, PropertyDef>,
    record: &Record,
    add: bool,
) {
    for (name, value) in &record.props {
        let unique = (object == ObjectType::Contacts && name == "email")
            || schema
                .get(name)
                .is_some_and(|d| d.has_unique_value && name != "hs_object_id");
        if !unique {
            continue;
        }
        let key = Store::index_key(name, value);
        let index = table.unique.entry(name.clone()).or_default();
        if add {
            index.insert(key, record.id);
        } else if index.get(&key) == Some(&record.id) {
            index.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_snapshot_from_before_the_definitions_loads_with_the_defaults() {
        // The shape written before groups, pipelines, labels, owners and schemas were stored.
        let old = r#"{"next_id": 1005, "last_now": "2024-01-01T00:00:00Z", "records": {},
            "merged_into": {}, "custom_properties": {}, "links": []}"#;
        let snapshot: Snapshot = match serde_json::from_str(old) {
            Ok(snapshot) => snapshot,
            Err(error) => panic!("an old snapshot must load: {error}"),
        };
        let store = Store::restore(snapshot);
        assert!(
            store
                .groups(ObjectType::Contacts)
                .contains_key("contactinformation")
        );
        assert_eq!(
            store.default_pipeline(ObjectType::Deals),
            Some(pipeline_defs::DEFAULT_DEAL_PIPELINE)
        );
        assert_eq!(store.pipelines(ObjectType::Tickets).len(), 1);
        assert_eq!(store.owners().len(), 2);
        assert!(store.labels().is_empty() && store.object_schemas().is_empty());
        let stages = &store.schema(ObjectType::Deals)["dealstage"].options;
        assert_eq!(stages.len(), 7, "dealstage options follow the pipelines");
    }

    #[test]
    fn net_price_is_quantity_times_discounted_price() {
        assert_eq!(
            line_item_amount(&props(&[("price", "12.50"), ("quantity", "3")])).as_deref(),
            Some("37.50")
        );
        assert_eq!(
            line_item_amount(&props(&[
                ("price", "10"),
                ("quantity", "2"),
                ("discount", "1")
            ]))
            .as_deref(),
            Some("18")
        );
        assert_eq!(
            line_item_amount(&props(&[
                ("price", "100"),
                ("quantity", "1"),
                ("hs_discount_percentage", "15")
            ]))
            .as_deref(),
            Some("85.00")
        );
        assert_eq!(
            line_item_amount(&props(&[("price", "0"), ("quantity", "4")])).as_deref(),
            Some("0")
        );
        assert_eq!(line_item_amount(&props(&[("price", "5")])), None);
    }
}
