//! Property definitions: the built-in properties of contacts, companies, deals, line items,
//! products and tickets, the model returned by the properties API and the property groups
//! (FACTS 2.7).
//!
//! Invariant: every property a record may carry has a definition here; writes of anything
//! else are rejected with `PROPERTY_DOESNT_EXIST`.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::object_type::ObjectType;
use super::record::iso;

/// One enumeration option.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct PropertyOption {
    pub label: String,
    pub value: String,
    pub display_order: i64,
    pub hidden: bool,
    /// Added in the second fidelity pass; older snapshots have none.
    #[serde(default)]
    pub description: String,
}

/// A property definition as served by `/crm/v3/properties/{objectType}`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct PropertyDef {
    pub name: String,
    pub label: String,
    /// `string`, `number`, `date`, `datetime`, `enumeration`, `bool`, `phone_number`.
    pub kind: String,
    pub field_type: String,
    pub group_name: String,
    pub description: String,
    pub options: Vec<PropertyOption>,
    pub display_order: i64,
    pub has_unique_value: bool,
    pub hubspot_defined: bool,
    /// Values are maintained by the sandbox itself (ids, modification dates).
    pub read_only_value: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// `hidden` of the model; older snapshots predate it.
    #[serde(default)]
    pub hidden: bool,
    /// `formField` when a client set it; otherwise every writable property is a form field.
    #[serde(default)]
    pub form_field: Option<bool>,
    /// Set when the property was archived (moved to HubSpot's recycling bin).
    #[serde(default)]
    pub archived_at: Option<DateTime<Utc>>,
}

impl PropertyDef {
    /// HubSpot's built-in owner property, whose values are owner ids.
    pub fn is_owner(&self) -> bool {
        self.hubspot_defined && self.name == OWNER_PROPERTY
    }

    pub fn to_json(&self) -> Value {
        let options: Vec<Value> = self
            .options
            .iter()
            .map(|o| {
                json!({
                    "label": o.label,
                    "value": o.value,
                    "displayOrder": o.display_order,
                    "hidden": o.hidden,
                    "description": o.description,
                })
            })
            .collect();
        let mut body = json!({
            "name": self.name,
            "label": self.label,
            "type": self.kind,
            "fieldType": self.field_type,
            "groupName": self.group_name,
            "description": self.description,
            "options": options,
            "displayOrder": self.display_order,
            "hidden": self.hidden,
            "formField": self.form_field.unwrap_or(!self.read_only_value),
            "hasUniqueValue": self.has_unique_value,
            "calculated": self.field_type == "calculation_equation",
            // The owner property lists the portal's owners (`/crm/v3/owners`), not options.
            "externalOptions": self.is_owner(),
            "modificationMetadata": {
                "archivable": !self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only_value,
            },
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "archived": self.archived_at.is_some(),
        });
        if let Some(map) = body.as_object_mut() {
            if self.hubspot_defined {
                map.insert("hubspotDefined".to_owned(), Value::Bool(true));
            }
            if let Some(at) = self.archived_at {
                map.insert("archivedAt".to_owned(), Value::String(iso(at)));
            }
            if self.is_owner() {
                map.insert(
                    "referencedObjectType".to_owned(),
                    Value::String("OWNER".to_owned()),
                );
            }
        }
        body
    }
}

/// The property holding a record's owner (an id from `/crm/v3/owners`).
pub(crate) const OWNER_PROPERTY: &str = "hubspot_owner_id";

/// Default property group of each object type (FACTS 2.7).
pub(crate) fn default_group(object: ObjectType) -> &'static str {
    match object {
        ObjectType::Contacts => "contactinformation",
        ObjectType::Companies => "companyinformation",
        ObjectType::Deals => "dealinformation",
        ObjectType::LineItems => "lineiteminformation",
        ObjectType::Products => "productinformation",
        ObjectType::Tickets => "ticketinformation",
    }
}

/// A property group (FACTS 2.7): `{name, label, displayOrder}`, answered with `archived`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct PropertyGroup {
    pub name: String,
    pub label: String,
    pub display_order: i64,
}

impl PropertyGroup {
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "label": self.label,
            "displayOrder": self.display_order,
            // Archived groups leave the listing at once, so a served group never is.
            "archived": false,
        })
    }
}

/// The property groups a new portal has for `object`, in display order.
pub(crate) fn default_groups(object: ObjectType) -> Vec<PropertyGroup> {
    builtin_groups(object)
        .iter()
        .zip(0..)
        .map(|((name, label), order)| PropertyGroup {
            name: (*name).to_owned(),
            label: (*label).to_owned(),
            display_order: order,
        })
        .collect()
}

/// Property groups of an object type: `(name, label)`.
fn builtin_groups(object: ObjectType) -> &'static [(&'static str, &'static str)] {
    match object {
        ObjectType::Contacts => &[
            ("contactinformation", "Contact information"),
            ("emailinformation", "Email information"),
        ],
        ObjectType::Companies => &[("companyinformation", "Company information")],
        ObjectType::Deals => &[("dealinformation", "Deal information")],
        ObjectType::LineItems => &[("lineiteminformation", "Line item information")],
        ObjectType::Products => &[("productinformation", "Product information")],
        ObjectType::Tickets => &[("ticketinformation", "Ticket information")],
    }
}

/// `(name, label, type, fieldType, read-only value)` of one built-in property.
type Builtin = (&'static str, &'static str, &'static str, &'static str, bool);

const CONTACT_PROPERTIES: &[Builtin] = &[
    ("email", "Email", "string", "text", false),
    ("firstname", "First Name", "string", "text", false),
    ("lastname", "Last Name", "string", "text", false),
    ("phone", "Phone Number", "string", "phonenumber", false),
    (
        "mobilephone",
        "Mobile Phone Number",
        "string",
        "phonenumber",
        false,
    ),
    ("company", "Company Name", "string", "text", false),
    ("website", "Website URL", "string", "text", false),
    ("address", "Street Address", "string", "text", false),
    ("city", "City", "string", "text", false),
    ("state", "State/Region", "string", "text", false),
    ("zip", "Postal Code", "string", "text", false),
    ("country", "Country/Region", "string", "text", false),
    ("jobtitle", "Job Title", "string", "text", false),
    (
        "hubspot_owner_id",
        "Contact owner",
        "enumeration",
        "select",
        false,
    ),
    (
        "lifecyclestage",
        "Lifecycle Stage",
        "enumeration",
        "radio",
        false,
    ),
    (
        "hs_lead_status",
        "Lead Status",
        "enumeration",
        "radio",
        false,
    ),
    ("createdate", "Create Date", "datetime", "date", false),
    (
        "lastmodifieddate",
        "Last Modified Date",
        "datetime",
        "date",
        true,
    ),
    ("hs_object_id", "Record ID", "number", "number", true),
    (
        "hs_merged_object_ids",
        "Merged Record IDs",
        "enumeration",
        "checkbox",
        true,
    ),
    (
        "hs_calculated_merged_vids",
        "Merged Contact IDs",
        "enumeration",
        "checkbox",
        true,
    ),
    (
        "hs_additional_emails",
        "Additional email addresses",
        "enumeration",
        "checkbox",
        true,
    ),
];

const COMPANY_PROPERTIES: &[Builtin] = &[
    ("name", "Company name", "string", "text", false),
    ("domain", "Company Domain Name", "string", "text", false),
    ("phone", "Phone Number", "string", "phonenumber", false),
    ("address", "Street Address", "string", "text", false),
    ("city", "City", "string", "text", false),
    ("state", "State/Region", "string", "text", false),
    ("zip", "Postal Code", "string", "text", false),
    ("country", "Country/Region", "string", "text", false),
    ("industry", "Industry", "string", "text", false),
    (
        "hubspot_owner_id",
        "Company owner",
        "enumeration",
        "select",
        false,
    ),
    ("website", "Website URL", "string", "text", false),
    ("description", "Description", "string", "textarea", false),
    (
        "numberofemployees",
        "Number of Employees",
        "number",
        "number",
        false,
    ),
    ("annualrevenue", "Annual Revenue", "number", "number", false),
    (
        "lifecyclestage",
        "Lifecycle Stage",
        "enumeration",
        "radio",
        false,
    ),
    ("createdate", "Create Date", "datetime", "date", false),
    (
        "hs_lastmodifieddate",
        "Last Modified Date",
        "datetime",
        "date",
        true,
    ),
    ("hs_object_id", "Record ID", "number", "number", true),
    (
        "hs_merged_object_ids",
        "Merged Record IDs",
        "enumeration",
        "checkbox",
        true,
    ),
];

const DEAL_PROPERTIES: &[Builtin] = &[
    ("dealname", "Deal Name", "string", "text", false),
    ("amount", "Amount", "number", "number", false),
    (
        "deal_currency_code",
        "Currency",
        "enumeration",
        "select",
        false,
    ),
    ("dealstage", "Deal Stage", "enumeration", "radio", false),
    ("pipeline", "Pipeline", "enumeration", "select", false),
    ("closedate", "Close Date", "datetime", "date", false),
    ("dealtype", "Deal Type", "enumeration", "radio", false),
    (
        "hubspot_owner_id",
        "Deal owner",
        "enumeration",
        "select",
        false,
    ),
    (
        "description",
        "Deal Description",
        "string",
        "textarea",
        false,
    ),
    ("createdate", "Create Date", "datetime", "date", false),
    (
        "hs_lastmodifieddate",
        "Last Modified Date",
        "datetime",
        "date",
        true,
    ),
    ("hs_object_id", "Record ID", "number", "number", true),
    (
        "hs_merged_object_ids",
        "Merged Record IDs",
        "enumeration",
        "checkbox",
        true,
    ),
];

/// A line item's `amount` is HubSpot's "Net price": computed from quantity, unit price and
/// discounts on every write, never written by a client (see `store::line_item_amount`).
const LINE_ITEM_PROPERTIES: &[Builtin] = &[
    ("name", "Name", "string", "text", false),
    ("hs_product_id", "Product ID", "number", "number", false),
    ("quantity", "Quantity", "number", "number", false),
    ("price", "Unit price", "number", "number", false),
    (
        "amount",
        "Net price",
        "number",
        "calculation_equation",
        true,
    ),
    ("discount", "Unit discount", "number", "number", false),
    (
        "hs_discount_percentage",
        "Discount Percentage",
        "number",
        "number",
        false,
    ),
    ("hs_sku", "SKU", "string", "text", false),
    ("description", "Description", "string", "textarea", false),
    (
        "hs_cost_of_goods_sold",
        "Unit cost",
        "number",
        "number",
        false,
    ),
    (
        "hs_recurring_billing_period",
        "Term",
        "string",
        "text",
        false,
    ),
    ("createdate", "Create Date", "datetime", "date", false),
    (
        "hs_lastmodifieddate",
        "Last Modified Date",
        "datetime",
        "date",
        true,
    ),
    ("hs_object_id", "Record ID", "number", "number", true),
];

const PRODUCT_PROPERTIES: &[Builtin] = &[
    ("name", "Name", "string", "text", false),
    ("price", "Unit price", "number", "number", false),
    ("hs_sku", "SKU", "string", "text", false),
    ("description", "Description", "string", "textarea", false),
    (
        "hs_cost_of_goods_sold",
        "Unit cost",
        "number",
        "number",
        false,
    ),
    (
        "hs_recurring_billing_period",
        "Term",
        "string",
        "text",
        false,
    ),
    ("hs_url", "URL", "string", "text", false),
    ("createdate", "Create Date", "datetime", "date", false),
    (
        "hs_lastmodifieddate",
        "Last Modified Date",
        "datetime",
        "date",
        true,
    ),
    ("hs_object_id", "Record ID", "number", "number", true),
];

/// HubSpot's default ticket properties (tickets guide and a new portal's property list).
const TICKET_PROPERTIES: &[Builtin] = &[
    ("subject", "Ticket name", "string", "text", false),
    ("content", "Ticket description", "string", "textarea", false),
    ("hs_pipeline", "Pipeline", "enumeration", "select", false),
    (
        "hs_pipeline_stage",
        "Ticket status",
        "enumeration",
        "radio",
        false,
    ),
    (
        "hs_ticket_priority",
        "Priority",
        "enumeration",
        "select",
        false,
    ),
    (
        "hs_ticket_category",
        "Category",
        "enumeration",
        "checkbox",
        false,
    ),
    ("source_type", "Source", "enumeration", "select", false),
    (
        "hubspot_owner_id",
        "Ticket owner",
        "enumeration",
        "select",
        false,
    ),
    ("closed_date", "Close date", "datetime", "date", false),
    ("createdate", "Create date", "datetime", "date", false),
    (
        "hs_lastmodifieddate",
        "Last modified date",
        "datetime",
        "date",
        true,
    ),
    ("hs_object_id", "Record ID", "number", "number", true),
    (
        "hs_merged_object_ids",
        "Merged Record IDs",
        "enumeration",
        "checkbox",
        true,
    ),
];

const TICKET_PRIORITIES: &[(&str, &str)] = &[
    ("LOW", "Low"),
    ("MEDIUM", "Medium"),
    ("HIGH", "High"),
    ("URGENT", "Urgent"),
];

const TICKET_CATEGORIES: &[(&str, &str)] = &[
    ("PRODUCT_ISSUE", "Product issue"),
    ("BILLING_ISSUE", "Billing issue"),
    ("FEATURE_REQUEST", "Feature request"),
    ("GENERAL_INQUIRY", "General inquiry"),
];

const TICKET_SOURCES: &[(&str, &str)] = &[
    ("CHAT", "Chat"),
    ("EMAIL", "Email"),
    ("FORM", "Form"),
    ("PHONE", "Phone"),
];

const LIFECYCLE_STAGES: &[(&str, &str)] = &[
    ("subscriber", "Subscriber"),
    ("lead", "Lead"),
    ("marketingqualifiedlead", "Marketing Qualified Lead"),
    ("salesqualifiedlead", "Sales Qualified Lead"),
    ("opportunity", "Opportunity"),
    ("customer", "Customer"),
    ("evangelist", "Evangelist"),
    ("other", "Other"),
];

const LEAD_STATUSES: &[(&str, &str)] = &[
    ("NEW", "New"),
    ("OPEN", "Open"),
    ("IN_PROGRESS", "In Progress"),
    ("OPEN_DEAL", "Open Deal"),
    ("UNQUALIFIED", "Unqualified"),
    ("ATTEMPTED_TO_CONTACT", "Attempted to Contact"),
    ("CONNECTED", "Connected"),
    ("BAD_TIMING", "Bad Timing"),
];

/// The currencies the emulated account has enabled (its company currency first): HubSpot
/// offers as `deal_currency_code` options only the account's currencies, so a deal in another
/// currency is refused with `INVALID_OPTION`.
const CURRENCIES: &[(&str, &str)] = &[
    ("USD", "US Dollar"),
    ("EUR", "Euro"),
    ("GBP", "British Pound"),
    ("CAD", "Canadian Dollar"),
];

const DEAL_TYPES: &[(&str, &str)] = &[
    ("newbusiness", "New Business"),
    ("existingbusiness", "Existing Business"),
];

fn options(pairs: &[(&str, &str)]) -> Vec<PropertyOption> {
    pairs
        .iter()
        .zip(0..)
        .map(|((value, label), order)| PropertyOption {
            label: (*label).to_owned(),
            value: (*value).to_owned(),
            display_order: order,
            hidden: false,
            description: String::new(),
        })
        .collect()
}

/// The built-in property definitions of `object`.
pub(crate) fn builtin(object: ObjectType) -> Vec<PropertyDef> {
    let table = match object {
        ObjectType::Contacts => CONTACT_PROPERTIES,
        ObjectType::Companies => COMPANY_PROPERTIES,
        ObjectType::Deals => DEAL_PROPERTIES,
        ObjectType::LineItems => LINE_ITEM_PROPERTIES,
        ObjectType::Products => PRODUCT_PROPERTIES,
        ObjectType::Tickets => TICKET_PROPERTIES,
    };
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    table
        .iter()
        .zip(0..)
        .map(|(&(name, label, kind, field_type, read_only), order)| {
            let options = match (object, name) {
                (_, "lifecyclestage") => options(LIFECYCLE_STAGES),
                (ObjectType::Contacts, "hs_lead_status") => options(LEAD_STATUSES),
                (ObjectType::Deals, "dealtype") => options(DEAL_TYPES),
                (ObjectType::Deals, "deal_currency_code") => options(CURRENCIES),
                (ObjectType::Tickets, "hs_ticket_priority") => options(TICKET_PRIORITIES),
                (ObjectType::Tickets, "hs_ticket_category") => options(TICKET_CATEGORIES),
                (ObjectType::Tickets, "source_type") => options(TICKET_SOURCES),
                // The pipeline and stage properties (`pipeline`/`dealstage`,
                // `hs_pipeline`/`hs_pipeline_stage`) take their options from the stored
                // pipelines (`Store::sync_pipeline_options`).
                _ => Vec::new(),
            };
            PropertyDef {
                name: name.to_owned(),
                label: label.to_owned(),
                kind: kind.to_owned(),
                field_type: field_type.to_owned(),
                group_name: default_group(object).to_owned(),
                description: String::new(),
                options,
                display_order: order,
                // `hs_object_id` is HubSpot's built-in unique key; contact `email` behaves
                // as unique (FACTS 2.3) but is reported as a plain property.
                has_unique_value: name == "hs_object_id",
                hubspot_defined: true,
                read_only_value: read_only,
                created_at: epoch,
                updated_at: epoch,
                hidden: false,
                form_field: None,
                archived_at: None,
            }
        })
        .collect()
}
