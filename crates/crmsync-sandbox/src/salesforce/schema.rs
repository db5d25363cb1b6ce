//! The org's metadata: standard objects with their fields (FACTS 3.11), the Opportunity stage
//! table, custom fields, and how all of it is described (FACTS 3.8). Invariant: field and object
//! names are matched case-insensitively but always answered in their canonical spelling.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A field's data type as describe names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FieldType {
    Id,
    String,
    Textarea,
    Email,
    Phone,
    Url,
    Picklist,
    Reference,
    Boolean,
    Currency,
    Double,
    Percent,
    Int,
    Date,
    Datetime,
}

impl FieldType {
    pub fn name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::String => "string",
            Self::Textarea => "textarea",
            Self::Email => "email",
            Self::Phone => "phone",
            Self::Url => "url",
            Self::Picklist => "picklist",
            Self::Reference => "reference",
            Self::Boolean => "boolean",
            Self::Currency => "currency",
            Self::Double => "double",
            Self::Percent => "percent",
            Self::Int => "int",
            Self::Date => "date",
            Self::Datetime => "datetime",
        }
    }

    fn soap_type(self) -> &'static str {
        match self {
            Self::Id | Self::Reference => "tns:ID",
            Self::Boolean => "xsd:boolean",
            Self::Currency | Self::Double | Self::Percent => "xsd:double",
            Self::Int => "xsd:int",
            Self::Date => "xsd:date",
            Self::Datetime => "xsd:dateTime",
            _ => "xsd:string",
        }
    }

    /// Compared and sorted as text (case-insensitively).
    pub fn is_text(self) -> bool {
        matches!(
            self,
            Self::Id
                | Self::String
                | Self::Textarea
                | Self::Email
                | Self::Phone
                | Self::Url
                | Self::Picklist
                | Self::Reference
        )
    }

    pub fn is_number(self) -> bool {
        matches!(
            self,
            Self::Currency | Self::Double | Self::Percent | Self::Int
        )
    }
}

/// One field of an object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct FieldDef {
    pub name: String,
    pub label: String,
    #[serde(rename = "type")]
    pub ty: FieldType,
    pub length: u32,
    /// Must have a value after a create or update (REQUIRED_FIELD_MISSING otherwise).
    pub required: bool,
    /// Set by the system (Id, audit fields, derived values).
    pub system: bool,
    pub createable: bool,
    pub updateable: bool,
    pub unique: bool,
    pub external_id: bool,
    pub id_lookup: bool,
    pub custom: bool,
    pub reference_to: Vec<String>,
    pub relationship_name: Option<String>,
    pub picklist: Vec<String>,
    pub restricted: bool,
}

impl FieldDef {
    fn new(name: &str, label: &str, ty: FieldType) -> Self {
        let length = match ty {
            FieldType::Id | FieldType::Reference => 18,
            FieldType::Textarea => 32_000,
            FieldType::Phone => 40,
            FieldType::Picklist => 255,
            t if t.is_text() => 255,
            _ => 0,
        };
        Self {
            name: name.to_owned(),
            label: label.to_owned(),
            ty,
            length,
            required: false,
            system: false,
            createable: true,
            updateable: true,
            unique: false,
            external_id: false,
            id_lookup: false,
            custom: name.ends_with("__c"),
            reference_to: Vec::new(),
            relationship_name: None,
            picklist: Vec::new(),
            restricted: false,
        }
    }

    fn len(mut self, length: u32) -> Self {
        self.length = length;
        self
    }

    fn required(mut self) -> Self {
        self.required = true;
        self
    }

    fn readonly(mut self) -> Self {
        self.createable = false;
        self.updateable = false;
        self
    }

    fn system(self) -> Self {
        Self {
            system: true,
            ..self.readonly()
        }
    }

    fn reference(mut self, to: &str, relationship: &str) -> Self {
        self.reference_to = vec![to.to_owned()];
        self.relationship_name = Some(relationship.to_owned());
        self
    }

    fn picklist(mut self, values: &[&str], restricted: bool) -> Self {
        self.picklist = values.iter().map(|v| (*v).to_owned()).collect();
        self.restricted = restricted;
        self
    }

    /// A custom text field flagged External ID (and Unique when `unique`).
    pub fn external_text(name: &str, label: &str, unique: bool) -> Self {
        Self {
            external_id: true,
            id_lookup: true,
            unique,
            ..Self::new(name, label, FieldType::String).len(255)
        }
    }

    /// A custom field created through the Tooling API.
    pub fn custom(name: &str, label: &str, ty: FieldType, length: Option<u32>) -> Self {
        let mut field = Self::new(name, label, ty);
        if let Some(length) = length {
            field.length = length;
        }
        field
    }

    /// Whether describe reports `nillable`.
    fn nillable(&self) -> bool {
        !(self.required || self.system || self.ty == FieldType::Boolean)
    }

    /// The describe entry (FACTS 3.8).
    pub fn describe(&self) -> Value {
        let picklist: Vec<Value> = self
            .picklist
            .iter()
            .map(|v| json!({"active": true, "defaultValue": false, "label": v, "value": v, "validFor": null}))
            .collect();
        let (precision, scale) = match self.ty {
            FieldType::Currency => (18, 2),
            FieldType::Double | FieldType::Percent => (18, 0),
            FieldType::Int => (9, 0),
            _ => (0, 0),
        };
        json!({
            "name": self.name,
            "label": self.label,
            "type": self.ty.name(),
            "length": self.length,
            "byteLength": if self.ty.is_text() { self.length * 3 } else { 0 },
            "precision": precision,
            "scale": scale,
            "digits": 0,
            "nillable": self.nillable(),
            "unique": self.unique,
            "externalId": self.external_id,
            "idLookup": self.id_lookup,
            "caseSensitive": false,
            "picklistValues": picklist,
            "restrictedPicklist": self.restricted,
            "createable": self.createable,
            "updateable": self.updateable,
            "custom": self.custom,
            "calculated": false,
            "defaultedOnCreate": self.system || self.ty == FieldType::Boolean,
            "filterable": true,
            "sortable": self.ty != FieldType::Textarea,
            "groupable": self.ty.is_text() || self.ty == FieldType::Boolean,
            "nameField": self.name == "Name",
            "autoNumber": false,
            "referenceTo": self.reference_to,
            "relationshipName": self.relationship_name,
            "soapType": self.ty.soap_type(),
        })
    }
}

/// One sObject type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ObjectDef {
    pub name: String,
    pub label: String,
    pub label_plural: String,
    pub key_prefix: String,
    pub fields: Vec<FieldDef>,
}

impl ObjectDef {
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// The reference field whose relationship is called `name` (`Account` → `AccountId`).
    pub fn relationship(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| {
            f.relationship_name
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case(name))
        })
    }

    fn urls(&self, version: &str) -> Value {
        let base = format!("/services/data/v{version}/sobjects/{}", self.name);
        json!({
            "sobject": base,
            "describe": format!("{base}/describe"),
            "rowTemplate": format!("{base}/{{ID}}"),
        })
    }

    /// The describe-global entry (FACTS 3.3).
    pub fn summary(&self, version: &str) -> Value {
        json!({
            "name": self.name,
            "label": self.label,
            "labelPlural": self.label_plural,
            "keyPrefix": self.key_prefix,
            "custom": false,
            "createable": true,
            "updateable": true,
            "deletable": true,
            "queryable": true,
            "retrieveable": true,
            "searchable": true,
            "replicateable": true,
            "layoutable": true,
            "triggerable": true,
            "mergeable": matches!(self.name.as_str(), "Account" | "Contact"),
            "urls": self.urls(version),
        })
    }

    /// The full describe (FACTS 3.8); `children` are the other objects' references to this one.
    pub fn describe(&self, version: &str, children: Vec<Value>) -> Value {
        let mut body = self.summary(version);
        body["fields"] = Value::Array(self.fields.iter().map(FieldDef::describe).collect());
        body["childRelationships"] = Value::Array(children);
        body["recordTypeInfos"] = json!([]);
        body
    }
}

/// Probability, closed, won and forecast category of a standard stage (FACTS 3.11).
pub(crate) fn stage(value: &str) -> Option<(u32, bool, bool, &'static str)> {
    Some(match value {
        "Prospecting" | "Qualification" => (10, false, false, "Pipeline"),
        "Needs Analysis" => (20, false, false, "Pipeline"),
        "Value Proposition" => (50, false, false, "Pipeline"),
        "Id. Decision Makers" => (60, false, false, "Pipeline"),
        "Perception Analysis" => (70, false, false, "Pipeline"),
        "Proposal/Price Quote" => (75, false, false, "Pipeline"),
        "Negotiation/Review" => (90, false, false, "Commit"),
        "Closed Won" => (100, true, true, "Closed"),
        "Closed Lost" => (0, true, false, "Omitted"),
        _ => return None,
    })
}

const STAGES: &[&str] = &[
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Id. Decision Makers",
    "Perception Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
];

const LEAD_SOURCES: &[&str] = &[
    "Web",
    "Phone Inquiry",
    "Partner Referral",
    "Purchased List",
    "Other",
];

fn system_fields(owner: bool, master: Option<&str>) -> Vec<FieldDef> {
    use FieldType as T;
    let mut fields = vec![
        FieldDef {
            id_lookup: true,
            ..FieldDef::new("Id", "Record ID", T::Id).system()
        },
        FieldDef::new("IsDeleted", "Deleted", T::Boolean).system(),
        FieldDef::new("CreatedDate", "Created Date", T::Datetime).system(),
        FieldDef::new("CreatedById", "Created By ID", T::Reference)
            .reference("User", "CreatedBy")
            .system(),
        FieldDef::new("LastModifiedDate", "Last Modified Date", T::Datetime).system(),
        FieldDef::new("LastModifiedById", "Last Modified By ID", T::Reference)
            .reference("User", "LastModifiedBy")
            .system(),
        FieldDef::new("SystemModstamp", "System Modstamp", T::Datetime).system(),
    ];
    if owner {
        let mut owner =
            FieldDef::new("OwnerId", "Owner ID", T::Reference).reference("User", "Owner");
        owner.system = true;
        fields.push(owner);
    }
    if let Some(object) = master {
        fields.push(
            FieldDef::new("MasterRecordId", "Master Record ID", T::Reference)
                .reference(object, "MasterRecord")
                .system(),
        );
    }
    fields
}

fn address(prefix: &str, label: &str) -> Vec<FieldDef> {
    use FieldType as T;
    vec![
        FieldDef::new(
            &format!("{prefix}Street"),
            &format!("{label} Street"),
            T::Textarea,
        )
        .len(255),
        FieldDef::new(
            &format!("{prefix}City"),
            &format!("{label} City"),
            T::String,
        )
        .len(40),
        FieldDef::new(
            &format!("{prefix}State"),
            &format!("{label} State/Province"),
            T::String,
        )
        .len(80),
        FieldDef::new(
            &format!("{prefix}PostalCode"),
            &format!("{label} Zip/Postal Code"),
            T::String,
        )
        .len(20),
        FieldDef::new(
            &format!("{prefix}Country"),
            &format!("{label} Country"),
            T::String,
        )
        .len(80),
    ]
}

fn object(name: &str, plural: &str, prefix: &str, fields: Vec<FieldDef>) -> ObjectDef {
    ObjectDef {
        name: name.to_owned(),
        label: name.to_owned(),
        label_plural: plural.to_owned(),
        key_prefix: prefix.to_owned(),
        fields,
    }
}

/// The objects every fresh org has.
pub(crate) fn standard_objects() -> Vec<ObjectDef> {
    use FieldType as T;
    let ext = || FieldDef::external_text("crmsync_id__c", "crmsync id", true);

    let mut account = system_fields(true, Some("Account"));
    account.extend([
        FieldDef::new("Name", "Account Name", T::String).required(),
        FieldDef::new("AccountNumber", "Account Number", T::String).len(40),
        FieldDef::new("Type", "Account Type", T::Picklist).picklist(
            &[
                "Prospect",
                "Customer - Direct",
                "Customer - Channel",
                "Channel Partner / Reseller",
                "Installation Partner",
                "Technology Partner",
                "Other",
            ],
            false,
        ),
        FieldDef::new("Industry", "Industry", T::Picklist).picklist(
            &[
                "Agriculture",
                "Banking",
                "Technology",
                "Manufacturing",
                "Retail",
                "Other",
            ],
            false,
        ),
        FieldDef::new("Website", "Website", T::Url),
        FieldDef::new("Phone", "Account Phone", T::Phone),
        FieldDef::new("ParentId", "Parent Account ID", T::Reference).reference("Account", "Parent"),
        FieldDef::new("AnnualRevenue", "Annual Revenue", T::Currency),
        FieldDef::new("NumberOfEmployees", "Employees", T::Int),
        FieldDef::new("Description", "Account Description", T::Textarea),
    ]);
    account.extend(address("Billing", "Billing"));
    account.extend(address("Shipping", "Shipping"));
    account.push(ext());
    account.push(FieldDef::external_text(
        "legacy_key__c",
        "Legacy key",
        false,
    ));

    let mut contact = system_fields(true, Some("Contact"));
    contact.extend([
        FieldDef::new("LastName", "Last Name", T::String)
            .len(80)
            .required(),
        FieldDef::new("FirstName", "First Name", T::String).len(40),
        FieldDef::new("Salutation", "Salutation", T::Picklist)
            .picklist(&["Mr.", "Ms.", "Mrs.", "Dr.", "Prof."], false),
        FieldDef::new("Name", "Full Name", T::String)
            .len(121)
            .system(),
        FieldDef::new("AccountId", "Account ID", T::Reference).reference("Account", "Account"),
        FieldDef::new("Email", "Email", T::Email).len(80),
        FieldDef::new("Phone", "Business Phone", T::Phone),
        FieldDef::new("MobilePhone", "Mobile Phone", T::Phone),
        FieldDef::new("Title", "Title", T::String).len(128),
        FieldDef::new("Department", "Department", T::String).len(80),
        FieldDef::new("LeadSource", "Lead Source", T::Picklist).picklist(LEAD_SOURCES, false),
        FieldDef::new("Birthdate", "Birthdate", T::Date),
        FieldDef::new("HasOptedOutOfEmail", "Email Opt Out", T::Boolean),
        FieldDef::new("Description", "Contact Description", T::Textarea),
    ]);
    contact.extend(address("Mailing", "Mailing"));
    contact.push(ext());

    let mut opportunity = system_fields(true, None);
    opportunity.extend([
        FieldDef::new("Name", "Name", T::String).len(120).required(),
        FieldDef::new("StageName", "Stage", T::Picklist)
            .picklist(STAGES, true)
            .len(255)
            .required(),
        FieldDef::new("CloseDate", "Close Date", T::Date).required(),
        FieldDef::new("AccountId", "Account ID", T::Reference).reference("Account", "Account"),
        FieldDef::new("Amount", "Amount", T::Currency),
        FieldDef::new("Probability", "Probability (%)", T::Percent),
        FieldDef::new("Type", "Opportunity Type", T::Picklist).picklist(
            &[
                "Existing Customer - Upgrade",
                "Existing Customer - Replacement",
                "Existing Customer - Downgrade",
                "New Customer",
            ],
            false,
        ),
        FieldDef::new("LeadSource", "Lead Source", T::Picklist).picklist(LEAD_SOURCES, false),
        FieldDef::new("NextStep", "Next Step", T::String),
        FieldDef::new("ForecastCategoryName", "Forecast Category", T::Picklist).picklist(
            &["Omitted", "Pipeline", "Best Case", "Commit", "Closed"],
            false,
        ),
        FieldDef::new("IsClosed", "Closed", T::Boolean).system(),
        FieldDef::new("IsWon", "Won", T::Boolean).system(),
        FieldDef::new("Description", "Description", T::Textarea),
    ]);
    opportunity.push(ext());

    let mut role = system_fields(false, None);
    role.extend([
        FieldDef::new("OpportunityId", "Opportunity ID", T::Reference)
            .reference("Opportunity", "Opportunity")
            .required(),
        FieldDef::new("ContactId", "Contact ID", T::Reference)
            .reference("Contact", "Contact")
            .required(),
        FieldDef::new("Role", "Role", T::Picklist).picklist(
            &[
                "Business User",
                "Decision Maker",
                "Economic Buyer",
                "Economic Decision Maker",
                "Evaluator",
                "Executive Sponsor",
                "Influencer",
                "Technical Buyer",
                "Other",
            ],
            false,
        ),
        FieldDef::new("IsPrimary", "Primary", T::Boolean),
    ]);

    let mut product = system_fields(false, None);
    product.extend([
        FieldDef::new("Name", "Product Name", T::String).required(),
        FieldDef::new("ProductCode", "Product Code", T::String),
        FieldDef::new("Description", "Product Description", T::Textarea).len(4000),
        FieldDef::new("IsActive", "Active", T::Boolean),
        FieldDef::new("Family", "Product Family", T::Picklist).picklist(&["None"], false),
        ext(),
    ]);

    let mut line = system_fields(false, None);
    line.extend([
        FieldDef::new("OpportunityId", "Opportunity ID", T::Reference)
            .reference("Opportunity", "Opportunity")
            .required(),
        FieldDef::new("Product2Id", "Product ID", T::Reference)
            .reference("Product2", "Product2")
            .required(),
        FieldDef::new("Quantity", "Quantity", T::Double).required(),
        FieldDef::new("UnitPrice", "Sales Price", T::Currency),
        FieldDef::new("TotalPrice", "Total Price", T::Currency).system(),
        FieldDef::new("ServiceDate", "Date", T::Date),
        FieldDef::new("Description", "Line Description", T::String),
    ]);

    vec![
        object("Account", "Accounts", "001", account),
        object("Contact", "Contacts", "003", contact),
        object("Opportunity", "Opportunities", "006", opportunity),
        object(
            "OpportunityContactRole",
            "Opportunity Contact Role",
            "00K",
            role,
        ),
        object("Product2", "Products", "01t", product),
        object("OpportunityLineItem", "Opportunity Product", "00k", line),
    ]
}
