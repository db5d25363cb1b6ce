//! The six emulated object types (contacts, companies, deals, line items, products, tickets)
//! and the per-type facts HubSpot hard-codes for them.

/// A CRM object type served by the sandbox.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ObjectType {
    Contacts,
    Companies,
    Deals,
    LineItems,
    Products,
    Tickets,
}

impl ObjectType {
    pub const ALL: [ObjectType; 6] = [
        Self::Contacts,
        Self::Companies,
        Self::Deals,
        Self::LineItems,
        Self::Products,
        Self::Tickets,
    ];

    /// Parses a path segment: the plural name, the singular, or the type id (FACTS 2.2).
    pub fn parse(segment: &str) -> Option<Self> {
        match segment.to_ascii_lowercase().as_str() {
            "contacts" | "contact" | "0-1" => Some(Self::Contacts),
            "companies" | "company" | "0-2" => Some(Self::Companies),
            "deals" | "deal" | "0-3" => Some(Self::Deals),
            "line_items" | "line_item" | "0-8" => Some(Self::LineItems),
            "products" | "product" | "0-7" => Some(Self::Products),
            "tickets" | "ticket" | "0-5" => Some(Self::Tickets),
            _ => None,
        }
    }

    pub fn index(self) -> usize {
        match self {
            Self::Contacts => 0,
            Self::Companies => 1,
            Self::Deals => 2,
            Self::LineItems => 3,
            Self::Products => 4,
            Self::Tickets => 5,
        }
    }

    /// Plural name used in paths and in stats.
    pub fn name(self) -> &'static str {
        match self {
            Self::Contacts => "contacts",
            Self::Companies => "companies",
            Self::Deals => "deals",
            Self::LineItems => "line_items",
            Self::Products => "products",
            Self::Tickets => "tickets",
        }
    }

    pub fn singular(self) -> &'static str {
        match self {
            Self::Contacts => "contact",
            Self::Companies => "company",
            Self::Deals => "deal",
            Self::LineItems => "line_item",
            Self::Products => "product",
            Self::Tickets => "ticket",
        }
    }

    pub fn type_id(self) -> &'static str {
        match self {
            Self::Contacts => "0-1",
            Self::Companies => "0-2",
            Self::Deals => "0-3",
            Self::Tickets => "0-5",
            Self::Products => "0-7",
            Self::LineItems => "0-8",
        }
    }

    /// Contacts use `lastmodifieddate`, everything else `hs_lastmodifieddate` (FACTS 2.2).
    pub fn last_modified_property(self) -> &'static str {
        match self {
            Self::Contacts => "lastmodifieddate",
            Self::Companies | Self::Deals | Self::LineItems | Self::Products | Self::Tickets => {
                "hs_lastmodifieddate"
            }
        }
    }

    /// Properties returned when a request names none (FACTS 2.2).
    pub fn default_properties(self) -> &'static [&'static str] {
        match self {
            Self::Contacts => &[
                "createdate",
                "email",
                "firstname",
                "hs_object_id",
                "lastmodifieddate",
                "lastname",
            ],
            Self::Companies => &[
                "createdate",
                "domain",
                "hs_lastmodifieddate",
                "hs_object_id",
                "name",
            ],
            Self::Deals => &[
                "amount",
                "closedate",
                "createdate",
                "dealname",
                "dealstage",
                "hs_lastmodifieddate",
                "hs_object_id",
                "pipeline",
            ],
            // As a real portal answers a line item read without `properties`.
            Self::LineItems => &[
                "createdate",
                "hs_lastmodifieddate",
                "hs_object_id",
                "name",
                "price",
                "quantity",
            ],
            Self::Products => &[
                "createdate",
                "description",
                "hs_lastmodifieddate",
                "hs_object_id",
                "name",
                "price",
            ],
            // HubSpot's tickets guide: what a read without `properties` returns.
            Self::Tickets => &[
                "content",
                "createdate",
                "hs_lastmodifieddate",
                "hs_object_id",
                "hs_pipeline",
                "hs_pipeline_stage",
                "hs_ticket_category",
                "hs_ticket_priority",
                "subject",
            ],
        }
    }

    /// Properties a free-text search `query` looks at.
    pub fn searchable_properties(self) -> &'static [&'static str] {
        match self {
            Self::Contacts => &["email", "firstname", "lastname", "phone", "company"],
            Self::Companies => &["name", "domain", "website", "phone"],
            Self::Deals => &["dealname"],
            Self::LineItems => &["name", "hs_sku", "description"],
            Self::Products => &["name", "hs_sku", "description"],
            Self::Tickets => &["subject", "content"],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_type_ids() {
        assert_eq!(ObjectType::parse("0-1"), Some(ObjectType::Contacts));
        assert_eq!(ObjectType::parse("Companies"), Some(ObjectType::Companies));
        assert_eq!(ObjectType::parse("0-3"), Some(ObjectType::Deals));
        assert_eq!(ObjectType::parse("line_items"), Some(ObjectType::LineItems));
        assert_eq!(ObjectType::parse("0-8"), Some(ObjectType::LineItems));
        assert_eq!(ObjectType::parse("product"), Some(ObjectType::Products));
        assert_eq!(ObjectType::parse("0-7"), Some(ObjectType::Products));
        assert_eq!(ObjectType::parse("tickets"), Some(ObjectType::Tickets));
        assert_eq!(ObjectType::parse("0-5"), Some(ObjectType::Tickets));
        assert_eq!(ObjectType::parse("quotes"), None);
    }
}
