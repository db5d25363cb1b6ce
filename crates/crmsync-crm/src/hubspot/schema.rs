//! [`SchemaAdmin`] for HubSpot: custom properties, property groups and pipelines read as a
//! [`SchemaDoc`] and changed one [`SchemaChange`] at a time (FACTS 2.7, 2.8).
//!
//! Invariant: what export reads is what apply writes — custom properties only (HubSpot's own
//! have `hubspotDefined` and a read-only definition), every non-archived group, every pipeline
//! of the objects that have them, options and stages ordered by `displayOrder`.

use reqwest::Method;

use super::client::{HubspotClient, group_name, to_json};
use super::wire;
use crate::http::Request;
use crate::schema_doc::{
    GroupDef, ObjectSchema, OptionDef, PipelineDef, PropertyDef, SchemaChange, SchemaDoc, StageDef,
};
use crate::{CrmError, ObjectKind, Operation, SchemaAdmin};

/// Whether HubSpot keeps pipelines for `object` (deals; tickets are not synced).
fn has_pipelines(object: ObjectKind) -> bool {
    object == ObjectKind::Deals
}

impl HubspotClient {
    async fn export_object(&self, object: ObjectKind) -> Result<ObjectSchema, CrmError> {
        let what = format!("{object} property group listing");
        let groups: wire::CollectionResponsePropertyGroup = self
            .get_json(
                Operation::Schema,
                &what,
                format!("/crm/v3/properties/{object}/groups"),
                None,
            )
            .await?;
        let properties = self.property_listing(object).await?;
        let mut schema = ObjectSchema {
            groups: groups
                .results
                .into_iter()
                .filter(|g| !g.archived)
                .map(|g| {
                    (
                        g.name,
                        GroupDef {
                            label: g.label,
                            display_order: g.display_order,
                        },
                    )
                })
                .collect(),
            properties: properties
                .results
                .into_iter()
                .filter(|p| !p.archived && !p.hubspot_defined)
                .map(|p| (p.name.clone(), property_def(p)))
                .collect(),
            pipelines: Vec::new(),
        };
        if has_pipelines(object) {
            let listing = self.pipeline_listing(object).await?;
            let mut pipelines: Vec<wire::Pipeline> = listing
                .results
                .into_iter()
                .filter(|p| !p.archived)
                .collect();
            pipelines.sort_by_key(|p| p.display_order);
            schema.pipelines = pipelines.into_iter().map(pipeline_def).collect();
        }
        Ok(schema)
    }

    /// Sends one schema write; `body` is JSON or none (a DELETE).
    async fn schema_write(
        &self,
        method: Method,
        endpoint: String,
        path: String,
        what: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(), CrmError> {
        let mut request = Request::new(method, Operation::Schema, endpoint, path, what);
        if let Some(bytes) = body {
            request = request.json(bytes);
        }
        self.send(request).await.map(|_| ())
    }
}

fn property_def(p: wire::Property) -> PropertyDef {
    let mut options = p.options;
    options.sort_by_key(|o| o.display_order.unwrap_or(i64::MAX));
    PropertyDef {
        label: p.label,
        kind: p.kind.unwrap_or_default(),
        field_type: p.field_type.unwrap_or_default(),
        group: (!p.group_name.is_empty()).then_some(p.group_name),
        description: p.description,
        unique: p.has_unique_value,
        length: None,
        options: options
            .into_iter()
            .map(|o| OptionDef {
                value: o.value,
                label: o.label,
                hidden: o.hidden,
            })
            .collect(),
    }
}

fn pipeline_def(p: wire::Pipeline) -> PipelineDef {
    let mut stages: Vec<wire::PipelineStage> =
        p.stages.into_iter().filter(|s| !s.archived).collect();
    stages.sort_by_key(|s| s.display_order);
    PipelineDef {
        label: p.label,
        id: Some(p.id),
        display_order: Some(p.display_order),
        stages: stages
            .into_iter()
            .map(|s| StageDef {
                label: s.label,
                id: Some(s.id),
                metadata: s
                    .metadata
                    .into_iter()
                    .map(|(k, v)| {
                        let text = match v {
                            serde_json::Value::String(s) => s,
                            other => other.to_string(),
                        };
                        (k, text)
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn options(def: &PropertyDef) -> Vec<wire::OptionInput<'_>> {
    def.options
        .iter()
        .zip(0..)
        .map(|(o, order)| wire::OptionInput {
            label: &o.label,
            value: &o.value,
            display_order: order,
            hidden: o.hidden,
        })
        .collect()
}

fn stage_input<'a>(def: &'a StageDef, order: i64) -> wire::PipelineStageInput<'a> {
    wire::PipelineStageInput {
        label: &def.label,
        display_order: order,
        metadata: &def.metadata,
    }
}

impl SchemaAdmin for HubspotClient {
    async fn export_schema(&self, objects: &[ObjectKind]) -> Result<SchemaDoc, CrmError> {
        let mut doc = SchemaDoc::default();
        for &object in objects {
            let schema = self.export_object(object).await?;
            doc.objects.insert(object.as_str().to_string(), schema);
        }
        Ok(doc)
    }

    fn can_apply(&self, change: &SchemaChange) -> Result<(), String> {
        let object = change.object();
        let pipeline_change = matches!(
            change,
            SchemaChange::CreatePipeline { .. }
                | SchemaChange::UpdatePipeline { .. }
                | SchemaChange::RemovePipeline { .. }
                | SchemaChange::CreateStage { .. }
                | SchemaChange::UpdateStage { .. }
                | SchemaChange::RemoveStage { .. }
        );
        if pipeline_change && !has_pipelines(object) {
            return Err(format!(
                "hubspot has no pipelines for {object} (only deals and tickets have them)"
            ));
        }
        Ok(())
    }

    async fn apply_change(&self, change: &SchemaChange) -> Result<(), CrmError> {
        let object = change.object();
        let what = format!("{object} {} {}", verb(change), change.item());
        let props = format!("/crm/v3/properties/{object}");
        let pipes = format!("/crm/v3/pipelines/{object}");
        match change {
            SchemaChange::CreateGroup { name, def, .. } => {
                let body = wire::PropertyGroupCreate {
                    name,
                    label: &def.label,
                    display_order: def.display_order,
                };
                let path = format!("{props}/groups");
                self.schema_write(
                    Method::POST,
                    path.clone(),
                    path,
                    &what,
                    Some(to_json(&what, &body)?),
                )
                .await
            }
            SchemaChange::UpdateGroup { name, def, .. } => {
                let body = wire::PropertyGroupUpdate {
                    label: &def.label,
                    display_order: def.display_order,
                };
                self.schema_write(
                    Method::PATCH,
                    format!("{props}/groups/{{groupName}}"),
                    format!("{props}/groups/{name}"),
                    &what,
                    Some(to_json(&what, &body)?),
                )
                .await
            }
            SchemaChange::RemoveGroup { name, .. } => {
                self.schema_write(
                    Method::DELETE,
                    format!("{props}/groups/{{groupName}}"),
                    format!("{props}/groups/{name}"),
                    &what,
                    None,
                )
                .await
            }
            SchemaChange::CreateProperty { name, def, .. } => {
                let body = wire::PropertyDefinitionCreate {
                    name,
                    label: &def.label,
                    kind: &def.kind,
                    field_type: &def.field_type,
                    group_name: def.group.as_deref().unwrap_or(group_name(object)),
                    description: &def.description,
                    has_unique_value: def.unique,
                    options: options(def),
                };
                self.schema_write(
                    Method::POST,
                    props.clone(),
                    props,
                    &what,
                    Some(to_json(&what, &body)?),
                )
                .await
            }
            SchemaChange::UpdateProperty { name, def, .. } => {
                let body = wire::PropertyUpdate {
                    label: &def.label,
                    kind: &def.kind,
                    field_type: &def.field_type,
                    group_name: def.group.as_deref().unwrap_or(group_name(object)),
                    description: &def.description,
                    options: options(def),
                };
                self.schema_write(
                    Method::PATCH,
                    format!("{props}/{{propertyName}}"),
                    format!("{props}/{name}"),
                    &what,
                    Some(to_json(&what, &body)?),
                )
                .await
            }
            SchemaChange::RemoveProperty { name, .. } => {
                self.schema_write(
                    Method::DELETE,
                    format!("{props}/{{propertyName}}"),
                    format!("{props}/{name}"),
                    &what,
                    None,
                )
                .await
            }
            SchemaChange::CreatePipeline { def, .. } => {
                let body = wire::PipelineInput {
                    label: &def.label,
                    display_order: def.display_order.unwrap_or(0),
                    stages: def
                        .stages
                        .iter()
                        .zip(0..)
                        .map(|(s, order)| stage_input(s, order))
                        .collect(),
                };
                self.schema_write(
                    Method::POST,
                    pipes.clone(),
                    pipes,
                    &what,
                    Some(to_json(&what, &body)?),
                )
                .await
            }
            SchemaChange::UpdatePipeline {
                pipeline_id, def, ..
            } => {
                let body = wire::PipelinePatchInput {
                    label: &def.label,
                    display_order: def.display_order.unwrap_or(0),
                };
                self.schema_write(
                    Method::PATCH,
                    format!("{pipes}/{{pipelineId}}"),
                    format!("{pipes}/{pipeline_id}"),
                    &what,
                    Some(to_json(&what, &body)?),
                )
                .await
            }
            SchemaChange::RemovePipeline { pipeline_id, .. } => {
                self.schema_write(
                    Method::DELETE,
                    format!("{pipes}/{{pipelineId}}"),
                    format!("{pipes}/{pipeline_id}?validateReferencesBeforeDelete=true"),
                    &what,
                    None,
                )
                .await
            }
            SchemaChange::CreateStage {
                pipeline_id,
                display_order,
                def,
                ..
            } => {
                let body = stage_input(def, *display_order);
                self.schema_write(
                    Method::POST,
                    format!("{pipes}/{{pipelineId}}/stages"),
                    format!("{pipes}/{pipeline_id}/stages"),
                    &what,
                    Some(to_json(&what, &body)?),
                )
                .await
            }
            SchemaChange::UpdateStage {
                pipeline_id,
                stage_id,
                display_order,
                def,
                ..
            } => {
                let body = stage_input(def, *display_order);
                self.schema_write(
                    Method::PATCH,
                    format!("{pipes}/{{pipelineId}}/stages/{{stageId}}"),
                    format!("{pipes}/{pipeline_id}/stages/{stage_id}"),
                    &what,
                    Some(to_json(&what, &body)?),
                )
                .await
            }
            SchemaChange::RemoveStage {
                pipeline_id,
                stage_id,
                ..
            } => {
                self.schema_write(
                    Method::DELETE,
                    format!("{pipes}/{{pipelineId}}/stages/{{stageId}}"),
                    format!(
                        "{pipes}/{pipeline_id}/stages/{stage_id}?validateReferencesBeforeDelete=true"
                    ),
                    &what,
                    None,
                )
                .await
            }
        }
    }
}

/// The verb of a change, for messages: `creation`, `update`, `removal`.
fn verb(change: &SchemaChange) -> &'static str {
    match change.sign() {
        '+' => "creation",
        '~' => "update",
        _ => "removal",
    }
}
