//! The CRM object types crmsync maps app tables to, and the few facts about a pair of them that
//! planning needs without asking the CRM (how a record refers to another one).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A CRM object type, named as in the config (`object = "contacts"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ObjectKind {
    Contacts,
    Companies,
    Deals,
    /// The lines of an order: one product, a quantity and a price, belonging to a deal.
    LineItems,
    /// The product library line items refer to.
    Products,
}

impl ObjectKind {
    /// The plural name used in HubSpot paths and in our config.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Contacts => "contacts",
            ObjectKind::Companies => "companies",
            ObjectKind::Deals => "deals",
            ObjectKind::LineItems => "line_items",
            ObjectKind::Products => "products",
        }
    }

    /// Every kind, for listings and "did you mean" messages.
    pub const ALL: [ObjectKind; 5] = [
        ObjectKind::Contacts,
        ObjectKind::Companies,
        ObjectKind::Deals,
        ObjectKind::LineItems,
        ObjectKind::Products,
    ];

    /// Parses a config name; `None` for unknown names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The property through which a record of `self` names its `to` record, when the CRM keeps
    /// that reference as a property of the record instead of as an association: a HubSpot line
    /// item names its product in `hs_product_id` (the product's record id); products cannot be
    /// associated with anything. `None` for pairs linked by association calls.
    ///
    /// A fact of the object pair, not of a connection, so that planning, `explain` and `plan`
    /// (which run without a CRM client) put the same value into the payload.
    pub fn reference_property(self, to: ObjectKind) -> Option<&'static str> {
        match (self, to) {
            (ObjectKind::LineItems, ObjectKind::Products) => Some("hs_product_id"),
            _ => None,
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_serialize_as_in_the_config() {
        for kind in ObjectKind::ALL {
            assert_eq!(ObjectKind::parse(kind.as_str()), Some(kind));
            assert_eq!(
                serde_json::to_value(kind).ok(),
                Some(serde_json::Value::String(kind.as_str().into()))
            );
        }
        assert_eq!(ObjectKind::parse("line_item"), None);
    }

    #[test]
    fn a_line_item_names_its_product_in_a_property() {
        assert_eq!(
            ObjectKind::LineItems.reference_property(ObjectKind::Products),
            Some("hs_product_id")
        );
        assert_eq!(
            ObjectKind::LineItems.reference_property(ObjectKind::Deals),
            None
        );
        assert_eq!(
            ObjectKind::Deals.reference_property(ObjectKind::Companies),
            None
        );
    }
}
