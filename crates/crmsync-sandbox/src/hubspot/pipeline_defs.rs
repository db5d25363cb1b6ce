//! Pipelines and their stages as the store keeps them (FACTS 2.8): the default pipelines a
//! new portal has, the checks on what a client sends, and the JSON HubSpot answers.
//!
//! Invariants: within one object type pipeline ids are unique and stage ids are unique
//! across all its pipelines (a stage id is a value of the record's stage property, whose
//! options list every stage); stage metadata values are strings; a deal stage carries a
//! `probability` between 0 and 1 and an `isClosed`, a ticket stage a `ticketState` (`OPEN`
//! or `CLOSED`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::extract::IdValue;
use super::object_type::ObjectType;
use super::record::iso;

/// Id of the default deal pipeline.
pub(crate) const DEFAULT_DEAL_PIPELINE: &str = "default";
/// Id of the default ticket pipeline.
pub(crate) const DEFAULT_TICKET_PIPELINE: &str = "0";

/// The stages of the default ticket pipeline: `(id, label, ticketState)`.
const TICKET_STAGES: [(&str, &str, &str); 4] = [
    ("1", "New", "OPEN"),
    ("2", "Waiting on contact", "OPEN"),
    ("3", "Waiting on us", "OPEN"),
    ("4", "Closed", "CLOSED"),
];

/// When the built-in pipelines were "created": fixed, so answers are reproducible.
fn builtin_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2020-01-01T00:00:00.000Z")
        .map(|at| at.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// One stage of a pipeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Stage {
    pub id: String,
    pub label: String,
    pub display_order: i64,
    /// String values only, as HubSpot stores them (FACTS 2.8).
    pub metadata: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Stage {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "label": self.label,
            "displayOrder": self.display_order,
            "metadata": self.metadata,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "archived": false,
            "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
        })
    }
}

/// One pipeline of an object type.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Pipeline {
    pub id: String,
    pub label: String,
    pub display_order: i64,
    /// Kept in display order (ties in the order they were added).
    pub stages: Vec<Stage>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Pipeline {
    pub fn to_json(&self) -> Value {
        let stages: Vec<Value> = self.stages.iter().map(Stage::to_json).collect();
        json!({
            "id": self.id,
            "label": self.label,
            "displayOrder": self.display_order,
            "stages": stages,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "archived": false,
        })
    }

    pub fn stage(&self, id: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.id == id)
    }

    /// Restores display order after a change (stable, so equal orders keep their sequence).
    pub fn sort_stages(&mut self) {
        self.stages.sort_by_key(|s| s.display_order);
    }
}

/// The record properties naming a record's pipeline and stage, for object types that have
/// pipelines.
pub(crate) fn pipeline_properties(object: ObjectType) -> Option<(&'static str, &'static str)> {
    match object {
        ObjectType::Deals => Some(("pipeline", "dealstage")),
        ObjectType::Tickets => Some(("hs_pipeline", "hs_pipeline_stage")),
        _ => None,
    }
}

/// The stages of the default deal pipeline, in display order (FACTS 2.8):
/// `(id, label, probability, isClosed)`.
const DEAL_STAGES: [(&str, &str, &str, bool); 7] = [
    (
        "appointmentscheduled",
        "Appointment Scheduled",
        "0.2",
        false,
    ),
    ("qualifiedtobuy", "Qualified To Buy", "0.4", false),
    (
        "presentationscheduled",
        "Presentation Scheduled",
        "0.6",
        false,
    ),
    (
        "decisionmakerboughtin",
        "Decision Maker Bought-In",
        "0.8",
        false,
    ),
    ("contractsent", "Contract Sent", "0.9", false),
    ("closedwon", "Closed Won", "1.0", true),
    ("closedlost", "Closed Lost", "0.0", true),
];

fn builtin_pipeline(
    id: &str,
    label: &str,
    stages: impl Iterator<Item = (String, String, BTreeMap<String, String>)>,
) -> Pipeline {
    let at = builtin_time();
    Pipeline {
        id: id.to_owned(),
        label: label.to_owned(),
        display_order: 0,
        stages: stages
            .zip(0..)
            .map(|((id, label, metadata), order)| Stage {
                id,
                label,
                display_order: order,
                metadata,
                created_at: at,
                updated_at: at,
            })
            .collect(),
        created_at: at,
        updated_at: at,
    }
}

/// The pipelines a new portal has for `object` (none for types without pipelines).
pub(crate) fn defaults(object: ObjectType) -> Vec<Pipeline> {
    match object {
        ObjectType::Deals => vec![builtin_pipeline(
            DEFAULT_DEAL_PIPELINE,
            "Sales Pipeline",
            DEAL_STAGES.iter().map(|(id, label, probability, closed)| {
                let metadata = BTreeMap::from([
                    ("isClosed".to_owned(), closed.to_string()),
                    ("probability".to_owned(), (*probability).to_owned()),
                ]);
                ((*id).to_owned(), (*label).to_owned(), metadata)
            }),
        )],
        // The default ticket pipeline of every portal (HubSpot's tickets guide).
        ObjectType::Tickets => vec![builtin_pipeline(
            DEFAULT_TICKET_PIPELINE,
            "Support Pipeline",
            TICKET_STAGES.iter().map(|(id, label, state)| {
                let metadata = BTreeMap::from([("ticketState".to_owned(), (*state).to_owned())]);
                ((*id).to_owned(), (*label).to_owned(), metadata)
            }),
        )],
        _ => Vec::new(),
    }
}

/// `PipelineStageInput` / `…ReplaceInput` / `…PatchInput`: every field optional here, each
/// operation says which it needs.
#[derive(Debug, Deserialize)]
pub(crate) struct StageInput {
    #[serde(default)]
    pub label: Option<String>,
    #[serde(rename = "displayOrder", default)]
    pub display_order: Option<i64>,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    #[serde(rename = "stageId", default)]
    pub stage_id: Option<IdValue>,
}

/// `PipelineInput` / `PipelineReplaceInput` / `PipelinePatchInput`.
#[derive(Debug, Deserialize)]
pub(crate) struct PipelineInput {
    #[serde(default)]
    pub label: Option<String>,
    #[serde(rename = "displayOrder", default)]
    pub display_order: Option<i64>,
    #[serde(default)]
    pub stages: Option<Vec<StageInput>>,
    #[serde(rename = "pipelineId", default)]
    pub pipeline_id: Option<IdValue>,
}

/// A metadata value as stored: strings as they are, numbers and booleans as their text
/// (clients building metadata from typed values send those).
fn metadata_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Checks stage metadata for `object` and returns it with string values; problems are
/// appended to `problems` (all of them, not just the first).
pub(crate) fn check_metadata(
    object: ObjectType,
    label: &str,
    raw: &Map<String, Value>,
    problems: &mut Vec<String>,
) -> BTreeMap<String, String> {
    let mut metadata = BTreeMap::new();
    for (key, value) in raw {
        match metadata_text(value) {
            Some(text) => {
                metadata.insert(key.clone(), text);
            }
            None => problems.push(format!(
                "stage {label:?}: metadata value of {key} must be a string, got {value}"
            )),
        }
    }
    match object {
        ObjectType::Deals => {
            match metadata.get("probability") {
                None => problems.push(format!(
                    "stage {label:?}: metadata.probability is required for deal stages (\"0.0\" to \"1.0\")"
                )),
                Some(p) if !p.parse::<f64>().is_ok_and(|p| (0.0..=1.0).contains(&p)) => {
                    problems.push(format!(
                        "stage {label:?}: metadata.probability must be a number from 0.0 to 1.0, got {p:?}"
                    ));
                }
                Some(_) => {}
            }
            match metadata.get("isClosed").map(String::as_str) {
                None => {
                    // HubSpot reports `isClosed` on every deal stage; an open stage is the default.
                    metadata.insert("isClosed".to_owned(), "false".to_owned());
                }
                Some("true" | "false") => {}
                Some(other) => problems.push(format!(
                    "stage {label:?}: metadata.isClosed must be \"true\" or \"false\", got {other:?}"
                )),
            }
        }
        ObjectType::Tickets => match metadata.get("ticketState").map(String::as_str) {
            Some("OPEN" | "CLOSED") => {}
            Some(other) => problems.push(format!(
                "stage {label:?}: metadata.ticketState must be OPEN or CLOSED, got {other:?}"
            )),
            None => problems.push(format!(
                "stage {label:?}: metadata.ticketState (OPEN or CLOSED) is required for ticket stages"
            )),
        },
        _ => {}
    }
    metadata
}

/// A 400 listing every problem of a pipeline or stage input.
pub(crate) fn invalid(problems: &[String]) -> ApiError {
    ApiError::validation(format!("Invalid pipeline input: {}", problems.join("; ")))
}
