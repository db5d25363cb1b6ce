//! The portal's definitions beside its records: property definitions (update, archive),
//! property groups, pipelines with their stages, user-defined association labels and custom
//! object schemas.
//!
//! Invariants: every live property names an existing group; a HubSpot-defined property's
//! definition never changes; the options of a type's pipeline and stage properties are
//! rebuilt from its pipelines after every pipeline change, so record writes are checked
//! against what `/crm/v3/pipelines` serves; a deleted association label leaves no edge
//! carrying its ids; each change bumps the generation so it is saved.

use std::collections::BTreeMap;

use axum::http::StatusCode;

use super::Store;
use crate::hubspot::error::{ApiError, PropertyProblem};
use crate::hubspot::links::{self, AssociationType, UserLabel};
use crate::hubspot::object_schemas::ObjectSchema;
use crate::hubspot::object_type::ObjectType;
use crate::hubspot::pipeline_defs::{
    self, DEFAULT_DEAL_PIPELINE, DEFAULT_TICKET_PIPELINE, Pipeline,
};
use crate::hubspot::record::Record;
use crate::hubspot::schema::{PropertyDef, PropertyGroup, PropertyOption};
use crate::hubspot::store::Changes;

impl Store {
    /// Records a change made through a definition endpoint (persistence watches this).
    pub fn touch(&mut self) {
        self.generation += 1;
    }

    /// Archived custom properties of `object`.
    pub fn archived_properties(&self, object: ObjectType) -> &BTreeMap<String, PropertyDef> {
        &self.archived_properties[object.index()]
    }

    /// Replaces the live definition of a custom property (the caller checked the change).
    pub fn replace_property(&mut self, object: ObjectType, def: PropertyDef) {
        self.schemas[object.index()].insert(def.name.clone(), def);
        self.touch();
    }

    /// Moves a custom property to the recycling bin: its values stay on the records but are
    /// neither readable nor writable, and it stops being a unique key. HubSpot-defined → 400,
    /// unknown → 404.
    pub fn archive_property(&mut self, object: ObjectType, name: &str) -> Result<(), ApiError> {
        let Some(def) = self.schemas[object.index()].get(name) else {
            return Err(property_not_found(object, name));
        };
        if def.hubspot_defined {
            return Err(ApiError::validation(format!(
                "{name} is a HubSpot-defined property of {} and cannot be archived",
                object.name()
            )));
        }
        let now = self.now();
        if let Some(mut def) = self.schemas[object.index()].remove(name) {
            def.archived_at = Some(now);
            def.updated_at = now;
            self.archived_properties[object.index()].insert(name.to_owned(), def);
        }
        self.tables[object.index()].unique.remove(name);
        self.touch();
        Ok(())
    }

    /// The property groups of `object`, by name.
    pub fn groups(&self, object: ObjectType) -> &BTreeMap<String, PropertyGroup> {
        &self.groups[object.index()]
    }

    /// Adds or replaces a group (the caller checked whether it may).
    pub fn put_group(&mut self, object: ObjectType, group: PropertyGroup) {
        self.groups[object.index()].insert(group.name.clone(), group);
        self.touch();
    }

    /// Removes a group; refused (400) while live properties still belong to it, 404 when
    /// there is no such group.
    pub fn remove_group(&mut self, object: ObjectType, name: &str) -> Result<(), ApiError> {
        if !self.groups[object.index()].contains_key(name) {
            return Err(group_not_found(object, name));
        }
        let members: Vec<&str> = self.schemas[object.index()]
            .values()
            .filter(|d| d.group_name == name)
            .map(|d| d.name.as_str())
            .collect();
        if !members.is_empty() {
            // HubSpot documents no behaviour for a group that still holds properties; the
            // sandbox refuses rather than orphaning them (docs/sandbox.md).
            return Err(ApiError::validation(format!(
                "Property group {name} still contains {} properties ({}); move or archive them first",
                members.len(),
                members.join(", ")
            )));
        }
        self.groups[object.index()].remove(name);
        self.touch();
        Ok(())
    }

    /// The pipelines of `object` in display order (empty for types without pipelines).
    pub fn pipelines(&self, object: ObjectType) -> &[Pipeline] {
        &self.pipelines[object.index()]
    }

    pub fn pipeline(&self, object: ObjectType, id: &str) -> Option<&Pipeline> {
        self.pipelines(object).iter().find(|p| p.id == id)
    }

    /// The pipeline a record lands in when it names a stage but no pipeline: the default
    /// one while it exists, else the first in display order.
    pub fn default_pipeline(&self, object: ObjectType) -> Option<&str> {
        let pipelines = self.pipelines(object);
        let preferred = match object {
            ObjectType::Deals => DEFAULT_DEAL_PIPELINE,
            _ => DEFAULT_TICKET_PIPELINE,
        };
        pipelines
            .iter()
            .find(|p| p.id == preferred)
            .or_else(|| pipelines.first())
            .map(|p| p.id.as_str())
    }

    /// Replaces the pipelines of `object` and rebuilds its pipeline and stage options.
    pub fn set_pipelines(&mut self, object: ObjectType, mut pipelines: Vec<Pipeline>) {
        for pipeline in &mut pipelines {
            pipeline.sort_stages();
        }
        pipelines.sort_by_key(|p| p.display_order);
        self.pipelines[object.index()] = pipelines;
        self.sync_pipeline_options(object);
        self.touch();
    }

    /// A fresh numeric id for a pipeline or stage.
    pub fn next_definition_id(&mut self) -> String {
        let id = self.next_definition_id;
        self.next_definition_id += 1;
        id.to_string()
    }

    /// Live records of `object` in pipeline `pipeline` (and, when `stages` is given, in one
    /// of those stages).
    pub fn records_in(&self, object: ObjectType, pipeline: &str, stages: Option<&[&str]>) -> usize {
        let Some((pipeline_prop, stage_prop)) = pipeline_defs::pipeline_properties(object) else {
            return 0;
        };
        let default = self.default_pipeline(object);
        self.table(object)
            .records
            .values()
            .filter(|r| !r.is_archived())
            .filter(|r| {
                r.props.get(pipeline_prop).map(String::as_str).or(default) == Some(pipeline)
                    && r.props.contains_key(stage_prop)
            })
            .filter(|r| {
                stages.is_none_or(|stages| {
                    r.props
                        .get(stage_prop)
                        .is_some_and(|s| stages.contains(&s.as_str()))
                })
            })
            .count()
    }

    /// Rebuilds the options of the pipeline and stage properties from the stored pipelines,
    /// so an enumeration check on write accepts exactly the served ids.
    pub(super) fn sync_pipeline_options(&mut self, object: ObjectType) {
        let Some((pipeline_prop, stage_prop)) = pipeline_defs::pipeline_properties(object) else {
            return;
        };
        let pipelines = &self.pipelines[object.index()];
        let pipeline_options = options(pipelines.iter().map(|p| (&p.id, &p.label)));
        let stage_options = options(
            pipelines
                .iter()
                .flat_map(|p| p.stages.iter().map(|s| (&s.id, &s.label))),
        );
        let schema = &mut self.schemas[object.index()];
        if let Some(def) = schema.get_mut(pipeline_prop) {
            def.options = pipeline_options;
        }
        if let Some(def) = schema.get_mut(stage_prop) {
            def.options = stage_options;
        }
    }

    /// A record's stage must belong to its pipeline (FACTS 2.8): unknown → `INVALID_OPTION`.
    pub(super) fn check_stage(
        &self,
        object: ObjectType,
        changes: &Changes,
        target: Option<&Record>,
        problems: &mut Vec<PropertyProblem>,
    ) {
        let Some((pipeline_prop, stage_prop)) = pipeline_defs::pipeline_properties(object) else {
            return;
        };
        let current = |name: &str| target.and_then(|r| r.props.get(name)).cloned();
        let pipeline = match changes.get(pipeline_prop) {
            Some(value) => value.clone(),
            None => current(pipeline_prop),
        }
        .or_else(|| self.default_pipeline(object).map(str::to_owned))
        .unwrap_or_default();
        let stage = match changes.get(stage_prop) {
            Some(value) => value.clone(),
            None => current(stage_prop),
        };
        let touched = changes.contains_key(stage_prop) || changes.contains_key(pipeline_prop);
        if let Some(stage) = stage
            && touched
            && !problems.iter().any(|p| p.name == stage_prop)
            && self
                .pipeline(object, &pipeline)
                .is_none_or(|p| p.stage(&stage).is_none())
        {
            problems.push(PropertyProblem {
                name: stage_prop.to_owned(),
                error: "INVALID_OPTION",
                message: format!(
                    "{stage} was not one of the allowed options for pipeline {pipeline}"
                ),
            });
        }
    }
}

fn options<'a>(pairs: impl Iterator<Item = (&'a String, &'a String)>) -> Vec<PropertyOption> {
    pairs
        .zip(0..)
        .map(|((value, label), order)| PropertyOption {
            label: label.clone(),
            value: value.clone(),
            display_order: order,
            hidden: false,
            description: String::new(),
        })
        .collect()
}

/// 404 for a property that does not exist (or is archived, when reading live ones).
pub(crate) fn property_not_found(object: ObjectType, name: &str) -> ApiError {
    ApiError::not_found(format!(
        "Unable to find property {name} for object type {}",
        object.type_id()
    ))
}

/// 404 for a property group that does not exist.
pub(crate) fn group_not_found(object: ObjectType, name: &str) -> ApiError {
    ApiError::not_found(format!(
        "Unable to find property group {name} for object type {}",
        object.type_id()
    ))
}

/// 409 `OBJECT_ALREADY_EXISTS` (FACTS 2.9).
pub(crate) fn already_exists(message: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "OBJECT_ALREADY_EXISTS", message)
}

impl Store {
    /// The USER_DEFINED association labels.
    pub fn labels(&self) -> &[UserLabel] {
        &self.labels
    }

    /// The association type `id` from `from` (to `to`, or to any type when `None`) in
    /// `category`, HubSpot-defined or one of the portal's labels.
    pub fn association_type(
        &self,
        from: ObjectType,
        to: Option<ObjectType>,
        category: &str,
        id: u32,
    ) -> Option<AssociationType> {
        match category {
            "HUBSPOT_DEFINED" => links::TYPES
                .iter()
                .find(|t| t.from == from && to.is_none_or(|to| t.to == to) && t.id == id)
                .copied(),
            "USER_DEFINED" => self.labels.iter().find_map(|l| {
                let targets = [l.to, l.from];
                targets
                    .into_iter()
                    .filter(|t| to.is_none_or(|to| to == *t))
                    .find_map(|t| l.kind(from, t, id))
            }),
            _ => None,
        }
    }

    /// `(category, label)` of type `id` from `from` to `to`, as association answers show it.
    pub fn type_label(
        &self,
        from: ObjectType,
        to: ObjectType,
        id: u32,
    ) -> Option<(&'static str, Option<String>)> {
        if let Some(t) = links::find_type(from, to, id) {
            return Some(("HUBSPOT_DEFINED", t.label.map(str::to_owned)));
        }
        self.labels
            .iter()
            .find_map(|l| l.seen(from, to, id))
            .map(|(label, _)| ("USER_DEFINED", Some(label.to_owned())))
    }

    /// Defines a label (and its inverse id) between two object types; a name already used
    /// between them → 409 `OBJECT_ALREADY_EXISTS`.
    pub fn add_label(
        &mut self,
        from: ObjectType,
        to: ObjectType,
        name: String,
        label: String,
        inverse_label: Option<String>,
    ) -> Result<UserLabel, ApiError> {
        let between = |l: &&UserLabel| (l.from, l.to) == (from, to) || (l.from, l.to) == (to, from);
        if self.labels.iter().filter(between).any(|l| l.name == name) {
            return Err(already_exists(format!(
                "An association label named '{name}' already exists between {} and {}.",
                from.name(),
                to.name()
            )));
        }
        let type_id = self.next_label_id;
        let defined = UserLabel {
            from,
            to,
            type_id,
            inverse_id: type_id + 1,
            name,
            label,
            inverse_label,
        };
        self.next_label_id += 2;
        self.labels.push(defined.clone());
        self.touch();
        Ok(defined)
    }

    /// The index of the user label whose id (either direction) is `id` between the types.
    fn label_index(&self, from: ObjectType, to: ObjectType, id: u32) -> Option<usize> {
        self.labels
            .iter()
            .position(|l| l.seen(from, to, id).is_some())
    }

    /// Renames a user label (seen from `from` → `to` with id `id`); 404 if unknown, 400 for a
    /// HubSpot-defined type.
    pub fn update_label(
        &mut self,
        from: ObjectType,
        to: ObjectType,
        id: u32,
        label: String,
        inverse_label: Option<String>,
    ) -> Result<(), ApiError> {
        let index = self.user_label(from, to, id)?;
        let defined = &mut self.labels[index];
        if defined.from == from && defined.to == to && defined.type_id == id {
            defined.label = label;
            if inverse_label.is_some() {
                defined.inverse_label = inverse_label;
            }
        } else {
            // Addressed from its inverse side: the names swap.
            defined.inverse_label = Some(label);
            if let Some(inverse) = inverse_label {
                defined.label = inverse;
            }
        }
        self.touch();
        Ok(())
    }

    /// Deletes a user label, both directions, and takes it off every association.
    pub fn remove_label(
        &mut self,
        from: ObjectType,
        to: ObjectType,
        id: u32,
    ) -> Result<(), ApiError> {
        let index = self.user_label(from, to, id)?;
        let defined = self.labels.remove(index);
        self.links.drop_type(
            defined.from,
            defined.to,
            defined.type_id,
            defined.inverse_id,
        );
        self.touch();
        Ok(())
    }

    fn user_label(&self, from: ObjectType, to: ObjectType, id: u32) -> Result<usize, ApiError> {
        if links::find_type(from, to, id).is_some() {
            return Err(ApiError::validation(format!(
                "Association type {id} from {} to {} is HUBSPOT_DEFINED and cannot be changed",
                from.name(),
                to.name()
            )));
        }
        self.label_index(from, to, id).ok_or_else(|| {
            ApiError::not_found(format!(
                "No association label with type id {id} exists from {} to {}",
                from.name(),
                to.name()
            ))
        })
    }
}

impl Store {
    /// Custom object schemas, archived ones included.
    pub fn object_schemas(&self) -> &[ObjectSchema] {
        &self.object_schemas
    }

    /// The `N` of a new custom object type id `2-N`; never reused.
    pub fn next_schema_number(&mut self) -> u64 {
        let n = self.next_schema_number;
        self.next_schema_number += 1;
        n
    }

    pub fn add_object_schema(&mut self, schema: ObjectSchema) {
        self.object_schemas.push(schema);
        self.touch();
    }

    /// Replaces the schema with the same `objectTypeId`.
    pub fn replace_object_schema(&mut self, schema: ObjectSchema) {
        if let Some(slot) = self
            .object_schemas
            .iter_mut()
            .find(|s| s.object_type_id == schema.object_type_id)
        {
            *slot = schema;
            self.touch();
        }
    }

    /// Forgets a schema for good (its name becomes free).
    pub fn purge_object_schema(&mut self, object_type_id: &str) {
        self.object_schemas
            .retain(|s| s.object_type_id != object_type_id);
        self.touch();
    }
}
