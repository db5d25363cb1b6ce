//! The CRM-side configuration a mapping relies on, as a document: per object its custom
//! properties (type, field type, group, options, uniqueness), its property groups and its
//! pipelines with their stages. `crmsync schema export` writes it as TOML, `schema diff` and
//! `schema apply` compare it with a live CRM ([`SchemaChange`] is one step between two of them).
//!
//! Invariants: a document holds only what a connector reads back the same way it writes it,
//! so export → apply → export is a fixpoint; order is meaning (the order of `options` and of
//! `stages` is their display order), so nothing here sorts them; ids of pipelines and stages
//! are informative (a CRM mints its own on create), so a document is matched by id where the
//! id exists on the other side and by label otherwise.

use crate::ObjectKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The configuration of several objects, keyed by object name (`contacts`, `deals`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SchemaDoc {
    pub objects: BTreeMap<String, ObjectSchema>,
}

/// The configuration of one object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectSchema {
    /// Property groups by internal name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, GroupDef>,
    /// Custom properties by internal name (the CRM's own properties are not configuration).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, PropertyDef>,
    /// Pipelines in display order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pipelines: Vec<PipelineDef>,
}

/// A property group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupDef {
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_order: Option<i64>,
}

/// A custom property (HubSpot property, Salesforce custom field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertyDef {
    pub label: String,
    /// The CRM's data type (HubSpot `type`: `string`, `number`, `enumeration`, ...;
    /// Salesforce field type: `Text`, `Number`, `Picklist`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// HubSpot's `fieldType` (`text`, `select`, ...); empty for CRMs without one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field_type: String,
    /// The group the property is shown in (HubSpot `groupName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Holds unique values (usable as an upsert key). Cannot change after creation.
    #[serde(default, skip_serializing_if = "is_false")]
    pub unique: bool,
    /// Longest text accepted (Salesforce `length`); HubSpot has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    /// Options of an enumeration, in display order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<OptionDef>,
}

/// One option of an enumeration property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionDef {
    pub value: String,
    pub label: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub hidden: bool,
}

/// A pipeline and its stages, in display order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineDef {
    pub label: String,
    /// The id in the CRM the document was exported from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_order: Option<i64>,
    #[serde(default)]
    pub stages: Vec<StageDef>,
}

/// A stage of a pipeline; `metadata` as the CRM keeps it (HubSpot deal stages: `probability`
/// "0.0"–"1.0" and `isClosed` "true"/"false", both strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageDef {
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl SchemaDoc {
    /// The object schemas with their kinds; an unknown object name is an error naming it and
    /// the known ones.
    pub fn kinds(&self) -> Result<Vec<(ObjectKind, &ObjectSchema)>, String> {
        self.objects
            .iter()
            .map(|(name, schema)| {
                ObjectKind::parse(name).map(|k| (k, schema)).ok_or_else(|| {
                    let known: Vec<&str> = ObjectKind::ALL.iter().map(|k| k.as_str()).collect();
                    format!("unknown object `{name}` (known: {})", known.join(", "))
                })
            })
            .collect()
    }

    /// The schema of `object`, empty when the document does not list it.
    pub fn object(&self, object: ObjectKind) -> ObjectSchema {
        self.objects
            .get(object.as_str())
            .cloned()
            .unwrap_or_default()
    }
}

/// Where a change applies: a group, a property, a pipeline, or a stage of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SchemaItem {
    Group { name: String },
    Property { name: String },
    Pipeline { label: String },
    Stage { pipeline: String, label: String },
}

impl fmt::Display for SchemaItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaItem::Group { name } => write!(f, "group {name}"),
            SchemaItem::Property { name } => write!(f, "property {name}"),
            SchemaItem::Pipeline { label } => write!(f, "pipeline \"{label}\""),
            SchemaItem::Stage { pipeline, label } => {
                write!(f, "stage \"{label}\" of pipeline \"{pipeline}\"")
            }
        }
    }
}

/// One step that brings a target CRM closer to a desired document. Ids (`pipeline_id`,
/// `stage_id`) are the target's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum SchemaChange {
    CreateGroup {
        object: ObjectKind,
        name: String,
        def: GroupDef,
    },
    UpdateGroup {
        object: ObjectKind,
        name: String,
        def: GroupDef,
    },
    RemoveGroup {
        object: ObjectKind,
        name: String,
    },
    CreateProperty {
        object: ObjectKind,
        name: String,
        def: PropertyDef,
    },
    UpdateProperty {
        object: ObjectKind,
        name: String,
        def: PropertyDef,
    },
    RemoveProperty {
        object: ObjectKind,
        name: String,
    },
    CreatePipeline {
        object: ObjectKind,
        def: PipelineDef,
    },
    UpdatePipeline {
        object: ObjectKind,
        pipeline_id: String,
        def: PipelineDef,
    },
    RemovePipeline {
        object: ObjectKind,
        pipeline_id: String,
        label: String,
    },
    CreateStage {
        object: ObjectKind,
        pipeline_id: String,
        pipeline: String,
        display_order: i64,
        def: StageDef,
    },
    UpdateStage {
        object: ObjectKind,
        pipeline_id: String,
        pipeline: String,
        stage_id: String,
        display_order: i64,
        def: StageDef,
    },
    RemoveStage {
        object: ObjectKind,
        pipeline_id: String,
        pipeline: String,
        stage_id: String,
        label: String,
    },
}

impl SchemaChange {
    /// The object the change is made on.
    pub fn object(&self) -> ObjectKind {
        match self {
            SchemaChange::CreateGroup { object, .. }
            | SchemaChange::UpdateGroup { object, .. }
            | SchemaChange::RemoveGroup { object, .. }
            | SchemaChange::CreateProperty { object, .. }
            | SchemaChange::UpdateProperty { object, .. }
            | SchemaChange::RemoveProperty { object, .. }
            | SchemaChange::CreatePipeline { object, .. }
            | SchemaChange::UpdatePipeline { object, .. }
            | SchemaChange::RemovePipeline { object, .. }
            | SchemaChange::CreateStage { object, .. }
            | SchemaChange::UpdateStage { object, .. }
            | SchemaChange::RemoveStage { object, .. } => *object,
        }
    }

    /// What the change applies to.
    pub fn item(&self) -> SchemaItem {
        match self {
            SchemaChange::CreateGroup { name, .. }
            | SchemaChange::UpdateGroup { name, .. }
            | SchemaChange::RemoveGroup { name, .. } => SchemaItem::Group { name: name.clone() },
            SchemaChange::CreateProperty { name, .. }
            | SchemaChange::UpdateProperty { name, .. }
            | SchemaChange::RemoveProperty { name, .. } => {
                SchemaItem::Property { name: name.clone() }
            }
            SchemaChange::CreatePipeline { def, .. } | SchemaChange::UpdatePipeline { def, .. } => {
                SchemaItem::Pipeline {
                    label: def.label.clone(),
                }
            }
            SchemaChange::RemovePipeline { label, .. } => SchemaItem::Pipeline {
                label: label.clone(),
            },
            SchemaChange::CreateStage { pipeline, def, .. }
            | SchemaChange::UpdateStage { pipeline, def, .. } => SchemaItem::Stage {
                pipeline: pipeline.clone(),
                label: def.label.clone(),
            },
            SchemaChange::RemoveStage {
                pipeline, label, ..
            } => SchemaItem::Stage {
                pipeline: pipeline.clone(),
                label: label.clone(),
            },
        }
    }

    /// `+` create, `~` change, `-` remove: the sign a plan line starts with.
    pub fn sign(&self) -> char {
        match self {
            SchemaChange::CreateGroup { .. }
            | SchemaChange::CreateProperty { .. }
            | SchemaChange::CreatePipeline { .. }
            | SchemaChange::CreateStage { .. } => '+',
            SchemaChange::UpdateGroup { .. }
            | SchemaChange::UpdateProperty { .. }
            | SchemaChange::UpdatePipeline { .. }
            | SchemaChange::UpdateStage { .. } => '~',
            SchemaChange::RemoveGroup { .. }
            | SchemaChange::RemoveProperty { .. }
            | SchemaChange::RemovePipeline { .. }
            | SchemaChange::RemoveStage { .. } => '-',
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_round_trips_through_toml_keeping_order() {
        let text = r#"
[contacts.groups.robots]
label = "Robots"

[contacts.properties.robot_model]
label = "Robot model"
type = "enumeration"
field_type = "select"
group = "robots"
options = [{ value = "r2", label = "R2" }, { value = "r1", label = "R1" }]

[[deals.pipelines]]
label = "Robots"
stages = [{ label = "Won", metadata = { probability = "1.0", isClosed = "true" } }, { label = "Lead", metadata = { probability = "0.1" } }]
"#;
        let doc: SchemaDoc = toml::from_str(text).expect("parses");
        let contacts = &doc.objects["contacts"];
        assert_eq!(contacts.properties["robot_model"].options[0].value, "r2");
        assert_eq!(doc.objects["deals"].pipelines[0].stages[1].label, "Lead");
        let again: SchemaDoc =
            toml::from_str(&toml::to_string(&doc).expect("writes")).expect("reads back");
        assert_eq!(again, doc);
        assert!(doc.kinds().is_ok());
    }

    #[test]
    fn unknown_objects_and_keys_are_refused_by_name() {
        let doc: SchemaDoc =
            toml::from_str("[robots.properties.x]\nlabel = \"X\"\ntype = \"string\"\n")
                .expect("parses");
        let err = doc.kinds().err().unwrap_or_default();
        assert!(err.contains("unknown object `robots`"), "{err}");
        let err = toml::from_str::<SchemaDoc>(
            "[contacts.properties.x]\nlabel = \"X\"\ntype = \"string\"\ncolour = 1\n",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("colour"), "{err}");
    }
}
