//! The difference between a target CRM's configuration and a desired document, as the steps
//! that would make the target match: what `crmsync schema diff` prints and `schema apply` does.
//! Pure: no CRM is called here.
//!
//! Invariants:
//! - Nothing is removed unless `prune` asks: a target's extra properties, groups, pipelines and
//!   stages are counted in [`SchemaPlan::extra`] instead, so a plain diff shows exactly what a
//!   plain apply does.
//! - A field the desired document leaves unsaid (no `group`, no `field_type`, no
//!   `display_order`, no `length`) is not a difference.
//! - Applying every change of a plan and diffing again gives an empty plan (a fixpoint): a
//!   stage's position is its index, and an update writes that index as its display order.
//! - Pipelines and stages are matched by id where the desired id exists in the target, else by
//!   label (a CRM mints its own ids, so a document from another account carries foreign ones).

use crmsync_crm::ObjectKind;
use crmsync_crm::schema_doc::{
    GroupDef, ObjectSchema, PipelineDef, PropertyDef, SchemaChange, SchemaDoc, SchemaItem, StageDef,
};
use serde::Serialize;

/// One field of a changed item: its value in the target and the one wanted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldDiff {
    pub field: String,
    pub from: String,
    pub to: String,
}

/// A step of the plan with what it changes, for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedChange {
    pub change: SchemaChange,
    /// For a `~` change: the fields that differ.
    pub fields: Vec<FieldDiff>,
}

/// A difference no change can remove (or that the CRM's API cannot make): for a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manual {
    pub object: ObjectKind,
    pub item: SchemaItem,
    pub why: String,
}

/// What it takes to make a target match a desired document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SchemaPlan {
    pub changes: Vec<PlannedChange>,
    pub manual: Vec<Manual>,
    /// Items the target has and the document does not (removed only with `prune`).
    pub extra: Vec<(ObjectKind, SchemaItem)>,
}

impl SchemaPlan {
    /// Whether target and document agree (nothing to change, nothing for a person to do).
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.manual.is_empty()
    }
}

/// The steps that make `target` match `desired` for the objects `desired` lists.
pub fn plan(target: &SchemaDoc, desired: &SchemaDoc, prune: bool) -> Result<SchemaPlan, String> {
    let mut out = SchemaPlan::default();
    for (object, wanted) in desired.kinds()? {
        let have = target.object(object);
        object_plan(object, &have, wanted, prune, &mut out);
    }
    Ok(out)
}

fn object_plan(
    object: ObjectKind,
    have: &ObjectSchema,
    wanted: &ObjectSchema,
    prune: bool,
    out: &mut SchemaPlan,
) {
    let mut removals: Vec<PlannedChange> = Vec::new();

    // Groups first: properties name them.
    for (name, def) in &wanted.groups {
        match have.groups.get(name) {
            None => out.changes.push(PlannedChange {
                change: SchemaChange::CreateGroup {
                    object,
                    name: name.clone(),
                    def: def.clone(),
                },
                fields: Vec::new(),
            }),
            Some(current) => {
                let fields = group_fields(current, def);
                if !fields.is_empty() {
                    out.changes.push(PlannedChange {
                        change: SchemaChange::UpdateGroup {
                            object,
                            name: name.clone(),
                            def: def.clone(),
                        },
                        fields,
                    });
                }
            }
        }
    }

    for (name, def) in &wanted.properties {
        match have.properties.get(name) {
            None => out.changes.push(PlannedChange {
                change: SchemaChange::CreateProperty {
                    object,
                    name: name.clone(),
                    def: def.clone(),
                },
                fields: Vec::new(),
            }),
            Some(current) => {
                if current.unique != def.unique {
                    out.manual.push(Manual {
                        object,
                        item: SchemaItem::Property { name: name.clone() },
                        why: format!(
                            "unique is {} here and {} in the document, and uniqueness cannot change after a property is created: archive it and create it again, or change the document",
                            current.unique, def.unique
                        ),
                    });
                    continue;
                }
                let fields = property_fields(current, def);
                if !fields.is_empty() {
                    // What the document leaves unsaid keeps the target's value.
                    let mut merged = def.clone();
                    if merged.group.is_none() {
                        merged.group.clone_from(&current.group);
                    }
                    if merged.field_type.is_empty() {
                        merged.field_type.clone_from(&current.field_type);
                    }
                    if merged.length.is_none() {
                        merged.length = current.length;
                    }
                    out.changes.push(PlannedChange {
                        change: SchemaChange::UpdateProperty {
                            object,
                            name: name.clone(),
                            def: merged,
                        },
                        fields,
                    });
                }
            }
        }
    }

    let mut matched: Vec<usize> = Vec::new();
    for (index, def) in wanted.pipelines.iter().enumerate() {
        let order = def.display_order.unwrap_or(index as i64);
        let found = find_pipeline(&have.pipelines, def, &matched);
        let Some(at) = found else {
            let mut def = def.clone();
            def.display_order = Some(order);
            out.changes.push(PlannedChange {
                change: SchemaChange::CreatePipeline { object, def },
                fields: Vec::new(),
            });
            continue;
        };
        matched.push(at);
        let current = &have.pipelines[at];
        let pipeline_id = current.id.clone().unwrap_or_default();
        let mut fields = Vec::new();
        if current.label != def.label {
            fields.push(diff("label", &current.label, &def.label));
        }
        if def.display_order.is_some() && current.display_order != def.display_order {
            fields.push(diff(
                "display_order",
                &opt(current.display_order),
                &opt(def.display_order),
            ));
        }
        if !fields.is_empty() {
            let mut def = def.clone();
            def.display_order = Some(def.display_order.or(current.display_order).unwrap_or(order));
            out.changes.push(PlannedChange {
                change: SchemaChange::UpdatePipeline {
                    object,
                    pipeline_id: pipeline_id.clone(),
                    def,
                },
                fields,
            });
        }
        stage_plan(
            object,
            current,
            def,
            &pipeline_id,
            prune,
            out,
            &mut removals,
        );
    }
    for (at, current) in have.pipelines.iter().enumerate() {
        if !matched.contains(&at) {
            extra(
                prune,
                object,
                out,
                &mut removals,
                SchemaItem::Pipeline {
                    label: current.label.clone(),
                },
                SchemaChange::RemovePipeline {
                    object,
                    pipeline_id: current.id.clone().unwrap_or_default(),
                    label: current.label.clone(),
                },
            );
        }
    }
    for name in have.properties.keys() {
        if !wanted.properties.contains_key(name) {
            extra(
                prune,
                object,
                out,
                &mut removals,
                SchemaItem::Property { name: name.clone() },
                SchemaChange::RemoveProperty {
                    object,
                    name: name.clone(),
                },
            );
        }
    }
    for name in have.groups.keys() {
        if !wanted.groups.contains_key(name) {
            extra(
                prune,
                object,
                out,
                &mut removals,
                SchemaItem::Group { name: name.clone() },
                SchemaChange::RemoveGroup {
                    object,
                    name: name.clone(),
                },
            );
        }
    }
    // Removals last: what goes is no longer needed by anything created above.
    out.changes.extend(removals);
}

/// Something the target has and the document does not: removed last with `prune`, otherwise
/// only reported.
fn extra(
    prune: bool,
    object: ObjectKind,
    out: &mut SchemaPlan,
    removals: &mut Vec<PlannedChange>,
    item: SchemaItem,
    change: SchemaChange,
) {
    if prune {
        removals.push(PlannedChange {
            change,
            fields: Vec::new(),
        });
    } else {
        out.extra.push((object, item));
    }
}

/// The stages of a matched pipeline: created, moved or changed, and (with `prune`) removed.
fn stage_plan(
    object: ObjectKind,
    current: &PipelineDef,
    wanted: &PipelineDef,
    pipeline_id: &str,
    prune: bool,
    out: &mut SchemaPlan,
    removals: &mut Vec<PlannedChange>,
) {
    let mut matched: Vec<usize> = Vec::new();
    for (index, def) in wanted.stages.iter().enumerate() {
        let order = index as i64;
        match find_stage(&current.stages, def, &matched) {
            None => out.changes.push(PlannedChange {
                change: SchemaChange::CreateStage {
                    object,
                    pipeline_id: pipeline_id.to_string(),
                    pipeline: current.label.clone(),
                    display_order: order,
                    def: def.clone(),
                },
                fields: Vec::new(),
            }),
            Some(at) => {
                matched.push(at);
                let have = &current.stages[at];
                let mut fields = Vec::new();
                if have.label != def.label {
                    fields.push(diff("label", &have.label, &def.label));
                }
                if at != index {
                    fields.push(diff("position", &at.to_string(), &index.to_string()));
                }
                if have.metadata != def.metadata {
                    fields.push(diff(
                        "metadata",
                        &metadata_text(&have.metadata),
                        &metadata_text(&def.metadata),
                    ));
                }
                if !fields.is_empty() {
                    out.changes.push(PlannedChange {
                        change: SchemaChange::UpdateStage {
                            object,
                            pipeline_id: pipeline_id.to_string(),
                            pipeline: current.label.clone(),
                            stage_id: have.id.clone().unwrap_or_default(),
                            display_order: order,
                            def: def.clone(),
                        },
                        fields,
                    });
                }
            }
        }
    }
    for (at, have) in current.stages.iter().enumerate() {
        if matched.contains(&at) {
            continue;
        }
        if prune {
            removals.push(PlannedChange {
                change: SchemaChange::RemoveStage {
                    object,
                    pipeline_id: pipeline_id.to_string(),
                    pipeline: current.label.clone(),
                    stage_id: have.id.clone().unwrap_or_default(),
                    label: have.label.clone(),
                },
                fields: Vec::new(),
            });
        } else {
            out.extra.push((
                object,
                SchemaItem::Stage {
                    pipeline: current.label.clone(),
                    label: have.label.clone(),
                },
            ));
        }
    }
}

/// The target pipeline `def` stands for: the one with its id, else the first unmatched one
/// with its label.
fn find_pipeline(have: &[PipelineDef], def: &PipelineDef, taken: &[usize]) -> Option<usize> {
    let free = |i: &usize| !taken.contains(i);
    def.id
        .as_ref()
        .and_then(|id| (0..have.len()).find(|i| free(i) && have[*i].id.as_ref() == Some(id)))
        .or_else(|| (0..have.len()).find(|i| free(i) && have[*i].label == def.label))
}

fn find_stage(have: &[StageDef], def: &StageDef, taken: &[usize]) -> Option<usize> {
    let free = |i: &usize| !taken.contains(i);
    def.id
        .as_ref()
        .and_then(|id| (0..have.len()).find(|i| free(i) && have[*i].id.as_ref() == Some(id)))
        .or_else(|| (0..have.len()).find(|i| free(i) && have[*i].label == def.label))
}

fn group_fields(have: &GroupDef, want: &GroupDef) -> Vec<FieldDiff> {
    let mut fields = Vec::new();
    if have.label != want.label {
        fields.push(diff("label", &have.label, &want.label));
    }
    if want.display_order.is_some() && have.display_order != want.display_order {
        fields.push(diff(
            "display_order",
            &opt(have.display_order),
            &opt(want.display_order),
        ));
    }
    fields
}

fn property_fields(have: &PropertyDef, want: &PropertyDef) -> Vec<FieldDiff> {
    let mut fields = Vec::new();
    if have.label != want.label {
        fields.push(diff("label", &have.label, &want.label));
    }
    if have.kind != want.kind {
        fields.push(diff("type", &have.kind, &want.kind));
    }
    if !want.field_type.is_empty() && have.field_type != want.field_type {
        fields.push(diff("field_type", &have.field_type, &want.field_type));
    }
    if want.group.is_some() && have.group != want.group {
        fields.push(diff(
            "group",
            have.group.as_deref().unwrap_or(""),
            want.group.as_deref().unwrap_or(""),
        ));
    }
    if have.description != want.description {
        fields.push(diff("description", &have.description, &want.description));
    }
    if want.length.is_some() && have.length != want.length {
        fields.push(diff(
            "length",
            &have.length.map(|n| n.to_string()).unwrap_or_default(),
            &want.length.map(|n| n.to_string()).unwrap_or_default(),
        ));
    }
    if have.options != want.options {
        let text = |def: &PropertyDef| {
            def.options
                .iter()
                .map(|o| {
                    let hidden = if o.hidden { " (hidden)" } else { "" };
                    format!("{}={}{hidden}", o.value, o.label)
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        fields.push(diff("options", &text(have), &text(want)));
    }
    fields
}

fn diff(field: &str, from: &str, to: &str) -> FieldDiff {
    FieldDiff {
        field: field.to_string(),
        from: from.to_string(),
        to: to.to_string(),
    }
}

fn opt(n: Option<i64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_default()
}

fn metadata_text(m: &std::collections::BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> SchemaDoc {
        toml::from_str(text).expect("test document parses")
    }

    const WANTED: &str = r#"
[contacts.groups.robots]
label = "Robots"
[contacts.properties.robot_model]
label = "Robot model"
type = "enumeration"
field_type = "select"
group = "robots"
options = [{ value = "r1", label = "R1" }, { value = "r2", label = "R2" }]
[[deals.pipelines]]
label = "Robots"
id = "999"
stages = [{ label = "Lead", metadata = { probability = "0.1" } }, { label = "Won", metadata = { probability = "1.0", isClosed = "true" } }]
"#;

    /// Applies a plan to a document the way a CRM would (ids minted for new pipelines).
    fn apply(target: &mut SchemaDoc, plan: &SchemaPlan) {
        for c in &plan.changes {
            let o = target
                .objects
                .entry(c.change.object().as_str().to_string())
                .or_default();
            match &c.change {
                SchemaChange::CreateGroup { name, def, .. }
                | SchemaChange::UpdateGroup { name, def, .. } => {
                    o.groups.insert(name.clone(), def.clone());
                }
                SchemaChange::CreateProperty { name, def, .. }
                | SchemaChange::UpdateProperty { name, def, .. } => {
                    o.properties.insert(name.clone(), def.clone());
                }
                SchemaChange::CreatePipeline { def, .. } => {
                    let mut def = def.clone();
                    def.id = Some(format!("new{}", o.pipelines.len()));
                    for (i, s) in def.stages.iter_mut().enumerate() {
                        s.id = Some(format!("s{i}"));
                    }
                    o.pipelines.push(def);
                }
                SchemaChange::UpdateStage {
                    stage_id,
                    display_order,
                    def,
                    pipeline_id,
                    ..
                } => {
                    let p = o
                        .pipelines
                        .iter_mut()
                        .find(|p| p.id.as_ref() == Some(pipeline_id))
                        .expect("pipeline");
                    let at = p
                        .stages
                        .iter()
                        .position(|s| s.id.as_ref() == Some(stage_id))
                        .expect("stage");
                    let mut s = p.stages.remove(at);
                    s.label.clone_from(&def.label);
                    s.metadata.clone_from(&def.metadata);
                    p.stages.insert(*display_order as usize, s);
                }
                other => panic!("unexpected change in test: {other:?}"),
            }
        }
    }

    #[test]
    fn an_empty_target_gets_everything_created_and_a_second_plan_is_empty() {
        let wanted = doc(WANTED);
        let mut target = SchemaDoc::default();
        let first = plan(&target, &wanted, false).expect("plans");
        let signs: Vec<String> = first
            .changes
            .iter()
            .map(|c| format!("{} {}", c.change.sign(), c.change.item()))
            .collect();
        assert_eq!(
            signs,
            [
                "+ group robots",
                "+ property robot_model",
                "+ pipeline \"Robots\""
            ]
        );
        apply(&mut target, &first);
        let second = plan(&target, &wanted, false).expect("plans");
        assert!(second.is_empty(), "{second:?}");
    }

    #[test]
    fn changes_name_their_fields_and_stages_match_by_label_across_accounts() {
        let wanted = doc(WANTED);
        let mut target = doc(r#"
[contacts.groups.robots]
label = "Robots"
[contacts.properties.robot_model]
label = "Model"
type = "enumeration"
field_type = "select"
group = "robots"
options = [{ value = "r1", label = "R1" }]
[contacts.properties.legacy]
label = "Legacy"
type = "string"
[[deals.pipelines]]
label = "Robots"
id = "12"
stages = [{ label = "Won", id = "a", metadata = { probability = "1.0", isClosed = "true" } }, { label = "Lead", id = "b", metadata = { probability = "0.2" } }]
"#);
        let p = plan(&target, &wanted, false).expect("plans");
        let lines: Vec<String> = p
            .changes
            .iter()
            .map(|c| {
                let fields: Vec<&str> = c.fields.iter().map(|f| f.field.as_str()).collect();
                format!(
                    "{} {} [{}]",
                    c.change.sign(),
                    c.change.item(),
                    fields.join(",")
                )
            })
            .collect();
        assert_eq!(
            lines,
            [
                "~ property robot_model [label,options]",
                "~ stage \"Lead\" of pipeline \"Robots\" [position,metadata]",
                "~ stage \"Won\" of pipeline \"Robots\" [position]",
            ]
        );
        // The extra property is kept and reported, not removed.
        assert_eq!(
            p.extra,
            [(
                ObjectKind::Contacts,
                SchemaItem::Property {
                    name: "legacy".into()
                }
            )]
        );
        // The stage update carries the target's own ids.
        assert!(p.changes.iter().any(|c| matches!(
            &c.change,
            SchemaChange::UpdateStage { pipeline_id, stage_id, .. } if pipeline_id == "12" && stage_id == "b"
        )));
        target
            .objects
            .get_mut("contacts")
            .map(|c| c.properties.remove("legacy"));
        apply(&mut target, &p);
        assert!(plan(&target, &wanted, false).expect("plans").is_empty());
    }

    #[test]
    fn prune_removes_extras_last_and_uniqueness_is_for_a_person() {
        let wanted =
            doc("[contacts.properties.key]\nlabel = \"Key\"\ntype = \"string\"\nunique = true\n");
        let target = doc(
            "[contacts.properties.key]\nlabel = \"Key\"\ntype = \"string\"\n[contacts.properties.old]\nlabel = \"Old\"\ntype = \"string\"\n[contacts.groups.g]\nlabel = \"G\"\n",
        );
        let p = plan(&target, &wanted, true).expect("plans");
        assert_eq!(p.manual.len(), 1, "{p:?}");
        assert!(p.manual[0].why.contains("cannot change"));
        let signs: Vec<String> = p
            .changes
            .iter()
            .map(|c| format!("{} {}", c.change.sign(), c.change.item()))
            .collect();
        assert_eq!(signs, ["- property old", "- group g"]);
        assert!(p.extra.is_empty());
    }

    #[test]
    fn unsaid_fields_are_not_differences() {
        let wanted = doc("[contacts.properties.x]\nlabel = \"X\"\ntype = \"string\"\n");
        let mut target = wanted.clone();
        if let Some(def) = target
            .objects
            .get_mut("contacts")
            .and_then(|c| c.properties.get_mut("x"))
        {
            def.group = Some("contactinformation".into());
            def.field_type = "text".into();
            def.options = vec![];
        }
        assert!(plan(&target, &wanted, false).expect("plans").is_empty());
    }
}
