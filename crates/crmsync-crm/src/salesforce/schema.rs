//! [`SchemaAdmin`] for Salesforce: the custom fields (`__c`) of the synced sObjects read from
//! describe, and new custom fields created through the Tooling API (`CustomField`).
//!
//! Invariant: only what the Tooling API's `CustomField` create can reproduce is applied. Said
//! plainly by [`SchemaAdmin::can_apply`]: changing or deleting an existing field, picklist
//! fields and their values, numeric fields (they need a precision and scale the document does
//! not carry), property groups (Salesforce has page layouts instead) and pipelines
//! (Opportunity stages are the `StageName` picklist, a standard value set) are done in Setup.
//! `unique` means "usable as an upsert key": an External ID that is unique.

use reqwest::Method;

use super::client::SalesforceClient;
use super::objects::sobject;
use super::wire;
use crate::http::Request;
use crate::schema_doc::{ObjectSchema, OptionDef, PropertyDef, SchemaChange, SchemaDoc};
use crate::{CrmError, ErrorKind, ObjectKind, Operation, SchemaAdmin};

/// The Tooling API `type` of a describe field type.
fn metadata_type(describe: &str) -> String {
    match describe {
        "string" => "Text",
        "textarea" => "TextArea",
        "email" => "Email",
        "phone" => "Phone",
        "url" => "Url",
        "boolean" => "Checkbox",
        "double" | "int" => "Number",
        "currency" => "Currency",
        "percent" => "Percent",
        "date" => "Date",
        "datetime" => "DateTime",
        "picklist" => "Picklist",
        "multipicklist" => "MultiselectPicklist",
        "reference" => "Lookup",
        other => other,
    }
    .to_string()
}

/// Types a `CustomField` create can make from a document's fields alone.
const CREATABLE: &[&str] = &[
    "Text", "TextArea", "Email", "Phone", "Url", "Checkbox", "Date", "DateTime",
];

fn field_def(f: &wire::Field) -> PropertyDef {
    let kind = metadata_type(&f.kind);
    PropertyDef {
        label: f.label.clone(),
        length: (kind == "Text").then_some(f.length),
        kind,
        field_type: String::new(),
        group: None,
        description: String::new(),
        unique: f.external_id && f.unique,
        options: f
            .picklist_values
            .iter()
            .filter(|p| p.active)
            .map(|p| OptionDef {
                value: p.value.clone(),
                label: p.label.clone().unwrap_or_else(|| p.value.clone()),
                hidden: false,
            })
            .collect(),
    }
}

impl SchemaAdmin for SalesforceClient {
    async fn export_schema(&self, objects: &[ObjectKind]) -> Result<SchemaDoc, CrmError> {
        let mut doc = SchemaDoc::default();
        for &object in objects {
            // A fresh read: an export must show the org as it is now.
            self.forget_describe(object);
            let fields = self.describe(object).await?;
            let schema = ObjectSchema {
                properties: fields
                    .iter()
                    .filter(|f| f.custom)
                    .map(|f| (f.name.clone(), field_def(f)))
                    .collect(),
                ..ObjectSchema::default()
            };
            doc.objects.insert(object.as_str().to_string(), schema);
        }
        Ok(doc)
    }

    fn can_apply(&self, change: &SchemaChange) -> Result<(), String> {
        let object = sobject(change.object());
        match change {
            SchemaChange::CreateProperty { name, def, .. } => {
                if !name.ends_with("__c") {
                    return Err(format!(
                        "{object}.{name} is not a custom field name (custom fields end in __c)"
                    ));
                }
                if !CREATABLE.contains(&def.kind.as_str()) {
                    return Err(format!(
                        "{object}.{name} is a {} field: crmsync creates only {} fields through the Tooling API; create it in Setup > Object Manager > {object} > Fields",
                        def.kind,
                        CREATABLE.join(", ")
                    ));
                }
                Ok(())
            }
            SchemaChange::UpdateProperty { name, .. } | SchemaChange::RemoveProperty { name, .. } => {
                Err(format!(
                    "crmsync does not change or delete existing Salesforce fields; change {object}.{name} in Setup > Object Manager > {object} > Fields"
                ))
            }
            SchemaChange::CreateGroup { .. }
            | SchemaChange::UpdateGroup { .. }
            | SchemaChange::RemoveGroup { .. } => Err(
                "Salesforce has no property groups (page layouts arrange fields; edit them in Setup)"
                    .to_string(),
            ),
            _ => Err(format!(
                "Salesforce keeps {object} stages as a picklist (a standard value set), which the Tooling API does not edit; change it in Setup"
            )),
        }
    }

    async fn apply_change(&self, change: &SchemaChange) -> Result<(), CrmError> {
        if let Err(why) = self.can_apply(change) {
            return Err(CrmError::new(ErrorKind::Schema, why));
        }
        let SchemaChange::CreateProperty { object, name, def } = change else {
            return Err(CrmError::new(ErrorKind::Schema, "not a field creation"));
        };
        let sobject = sobject(*object);
        let what = format!("{sobject}.{name} field creation");
        let mut metadata = serde_json::json!({
            "type": def.kind,
            "label": def.label,
        });
        if def.kind == "Text" {
            metadata["length"] = def.length.unwrap_or(255).into();
        }
        if !def.description.is_empty() {
            metadata["description"] = def.description.clone().into();
        }
        if def.unique {
            metadata["externalId"] = true.into();
            metadata["unique"] = true.into();
        }
        let body = serde_json::json!({
            "FullName": format!("{sobject}.{name}"),
            "Metadata": metadata,
        });
        let bytes = serde_json::to_vec(&body).map_err(|e| {
            CrmError::new(ErrorKind::Protocol, format!("cannot encode {what}: {e}"))
        })?;
        let path = format!("{}/tooling/sobjects/CustomField", self.api());
        self.send(
            Request::new(Method::POST, Operation::Schema, path.clone(), path, &what).json(bytes),
        )
        .await?;
        self.forget_describe(*object);
        Ok(())
    }
}
