//! The association graph, HubSpot's built-in association types (FACTS 2.6) and the
//! user-defined labels a portal adds (`/crm/v4/associations/{from}/{to}/labels`).
//!
//! Invariant: the graph is symmetric. Every edge A→B with type `t` has the edge B→A with the
//! inverse of `t`, so both ends always see the association, and every labeled edge also
//! carries the pair's unlabeled type (HubSpot always keeps the default association).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::object_type::ObjectType;

/// A record reference: object type and id.
pub(crate) type Node = (ObjectType, u64);

/// One association type: a HUBSPOT_DEFINED one from [`TYPES`], or a USER_DEFINED label
/// (then `label` and `v3_name` are empty here and the label text lives in [`UserLabel`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AssociationType {
    pub from: ObjectType,
    pub to: ObjectType,
    pub id: u32,
    pub inverse: u32,
    /// `Some("Primary")` for the primary types, `None` for the unlabeled ones.
    pub label: Option<&'static str>,
    /// The v3 `type` string shown under `associations` on records.
    pub v3_name: &'static str,
    pub unlabeled: bool,
}

impl AssociationType {
    /// HubSpot's primary types: a record has at most one primary company.
    pub fn is_primary(&self) -> bool {
        self.label == Some("Primary")
    }
}

/// A USER_DEFINED association label between two object types: `type_id` from `from` to
/// `to`, `inverse_id` back. Without an inverse label both directions show `label`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct UserLabel {
    pub from: ObjectType,
    pub to: ObjectType,
    pub type_id: u32,
    pub inverse_id: u32,
    pub name: String,
    pub label: String,
    pub inverse_label: Option<String>,
}

impl UserLabel {
    /// This label seen from `from` to `to` with id `id`: `(label, inverse id)`.
    pub fn seen(&self, from: ObjectType, to: ObjectType, id: u32) -> Option<(&str, u32)> {
        if self.from == from && self.to == to && self.type_id == id {
            return Some((&self.label, self.inverse_id));
        }
        if self.from == to && self.to == from && self.inverse_id == id {
            let label = self.inverse_label.as_deref().unwrap_or(&self.label);
            return Some((label, self.type_id));
        }
        None
    }

    /// The association type of direction `from` → `to` with id `id`, if this label is it.
    pub fn kind(&self, from: ObjectType, to: ObjectType, id: u32) -> Option<AssociationType> {
        self.seen(from, to, id).map(|(_, inverse)| AssociationType {
            from,
            to,
            id,
            inverse,
            label: None,
            v3_name: "",
            unlabeled: false,
        })
    }
}

use ObjectType::{Companies, Contacts, Deals, LineItems, Tickets};

const fn kind(
    from: ObjectType,
    to: ObjectType,
    id: u32,
    inverse: u32,
    label: Option<&'static str>,
    v3_name: &'static str,
) -> AssociationType {
    AssociationType {
        from,
        to,
        id,
        inverse,
        label,
        v3_name,
        unlabeled: label.is_none(),
    }
}

/// The type id table of FACTS 2.6, plus line item ↔ deal (20 / 19: HubSpot's line items guide
/// creates the association with type 20) and tickets ↔ contacts (16 / 15), companies
/// (339 / 340, primary 26 / 25) and deals (27 / 28), from HubSpot's association type id table.
/// Products have no associations: a line item names its product in `hs_product_id`.
pub(crate) const TYPES: [AssociationType; 20] = [
    kind(
        Contacts,
        Companies,
        279,
        280,
        None,
        "contact_to_company_unlabeled",
    ),
    kind(
        Contacts,
        Companies,
        1,
        2,
        Some("Primary"),
        "contact_to_company",
    ),
    kind(
        Companies,
        Contacts,
        280,
        279,
        None,
        "company_to_contact_unlabeled",
    ),
    kind(
        Companies,
        Contacts,
        2,
        1,
        Some("Primary"),
        "company_to_contact",
    ),
    kind(Deals, Contacts, 3, 4, None, "deal_to_contact"),
    kind(Contacts, Deals, 4, 3, None, "contact_to_deal"),
    kind(
        Deals,
        Companies,
        341,
        342,
        None,
        "deal_to_company_unlabeled",
    ),
    kind(Deals, Companies, 5, 6, Some("Primary"), "deal_to_company"),
    kind(
        Companies,
        Deals,
        342,
        341,
        None,
        "company_to_deal_unlabeled",
    ),
    kind(Companies, Deals, 6, 5, Some("Primary"), "company_to_deal"),
    kind(LineItems, Deals, 20, 19, None, "line_item_to_deal"),
    kind(Deals, LineItems, 19, 20, None, "deal_to_line_item"),
    kind(Tickets, Contacts, 16, 15, None, "ticket_to_contact"),
    kind(Contacts, Tickets, 15, 16, None, "contact_to_ticket"),
    kind(
        Tickets,
        Companies,
        339,
        340,
        None,
        "ticket_to_company_unlabeled",
    ),
    kind(
        Tickets,
        Companies,
        26,
        25,
        Some("Primary"),
        "ticket_to_company",
    ),
    kind(
        Companies,
        Tickets,
        340,
        339,
        None,
        "company_to_ticket_unlabeled",
    ),
    kind(
        Companies,
        Tickets,
        25,
        26,
        Some("Primary"),
        "company_to_ticket",
    ),
    kind(Tickets, Deals, 27, 28, None, "ticket_to_deal"),
    kind(Deals, Tickets, 28, 27, None, "deal_to_ticket"),
];

/// The association type `id` from `from` to `to`, if HubSpot defines it.
pub(crate) fn find_type(
    from: ObjectType,
    to: ObjectType,
    id: u32,
) -> Option<&'static AssociationType> {
    TYPES
        .iter()
        .find(|t| t.from == from && t.to == to && t.id == id)
}

/// The unlabeled (default) association type between two object types.
pub(crate) fn default_type(from: ObjectType, to: ObjectType) -> Option<&'static AssociationType> {
    TYPES
        .iter()
        .find(|t| t.from == from && t.to == to && t.unlabeled)
}

/// Symmetric association graph.
#[derive(Debug, Default)]
pub(crate) struct Links {
    edges: HashMap<Node, BTreeMap<Node, BTreeSet<u32>>>,
}

impl Links {
    fn insert_one(&mut self, from: Node, to: Node, type_id: u32) {
        self.edges
            .entry(from)
            .or_default()
            .entry(to)
            .or_default()
            .insert(type_id);
    }

    /// Adds `kind` (and the pair's unlabeled type) between `from` and `to`, both ways.
    /// A primary type moves: a record has at most one primary company.
    pub fn add(&mut self, from: Node, to: Node, kind: &AssociationType) {
        if kind.is_primary() {
            let others: Vec<Node> = self
                .targets(from, to.0)
                .into_iter()
                .filter(|(node, types)| *node != to && types.contains(&kind.id))
                .map(|(node, _)| node)
                .collect();
            for other in others {
                self.remove_type(from, other, kind.id, kind.inverse);
            }
        }
        if let Some(base) = default_type(from.0, to.0) {
            self.insert_one(from, to, base.id);
            self.insert_one(to, from, base.inverse);
        }
        self.insert_one(from, to, kind.id);
        self.insert_one(to, from, kind.inverse);
    }

    fn remove_type(&mut self, from: Node, to: Node, type_id: u32, inverse: u32) {
        if let Some(types) = self.edges.get_mut(&from).and_then(|m| m.get_mut(&to)) {
            types.remove(&type_id);
        }
        if let Some(types) = self.edges.get_mut(&to).and_then(|m| m.get_mut(&from)) {
            types.remove(&inverse);
        }
    }

    /// Removes every association between the pair, both ways. Returns whether any existed.
    pub fn remove_pair(&mut self, a: Node, b: Node) -> bool {
        let existed = self.edges.get_mut(&a).and_then(|m| m.remove(&b)).is_some();
        if let Some(m) = self.edges.get_mut(&b) {
            m.remove(&a);
        }
        existed
    }

    /// Removes the given labels between the pair; removing the unlabeled type removes all
    /// (FACTS 2.6).
    pub fn remove_labels(&mut self, from: Node, to: Node, kinds: &[AssociationType]) {
        if kinds.iter().any(|k| k.unlabeled) {
            self.remove_pair(from, to);
            return;
        }
        for k in kinds {
            self.remove_type(from, to, k.id, k.inverse);
        }
    }

    /// Associated records of type `to_type`, ordered by id, with their type ids.
    pub fn targets(&self, from: Node, to_type: ObjectType) -> Vec<(Node, BTreeSet<u32>)> {
        self.edges
            .get(&from)
            .map(|m| {
                m.iter()
                    .filter(|(node, types)| node.0 == to_type && !types.is_empty())
                    .map(|(node, types)| (*node, types.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Moves every association of `from` onto `into` (contact merge), dropping self-links.
    /// The reverse edge carries the inverse types, user-defined ones included.
    pub fn absorb(&mut self, from: Node, into: Node) {
        let Some(edges) = self.edges.remove(&from) else {
            return;
        };
        for (other, types) in edges {
            let inverse = self
                .edges
                .get_mut(&other)
                .and_then(|m| m.remove(&from))
                .unwrap_or_default();
            if other == into {
                continue;
            }
            for type_id in types {
                self.insert_one(into, other, type_id);
            }
            for type_id in inverse {
                self.insert_one(other, into, type_id);
            }
        }
    }

    /// Removes type `id` (`from_type` → `to_type`) and its inverse from every edge: a deleted
    /// label leaves the associations it was on, which keep their other types.
    pub fn drop_type(&mut self, from_type: ObjectType, to_type: ObjectType, id: u32, inverse: u32) {
        for (node, targets) in &mut self.edges {
            for (other, types) in targets.iter_mut() {
                if node.0 == from_type && other.0 == to_type {
                    types.remove(&id);
                }
                if node.0 == to_type && other.0 == from_type {
                    types.remove(&inverse);
                }
            }
        }
    }

    /// The type ids from `from` to `to`.
    pub fn types_between(&self, from: Node, to: Node) -> BTreeSet<u32> {
        self.edges
            .get(&from)
            .and_then(|m| m.get(&to))
            .cloned()
            .unwrap_or_default()
    }

    /// Every directed edge with its types, for persistence.
    pub fn edges(&self) -> Vec<(Node, Node, Vec<u32>)> {
        let mut edges: Vec<(Node, Node, Vec<u32>)> = self
            .edges
            .iter()
            .flat_map(|(from, targets)| {
                targets
                    .iter()
                    .filter(|(_, types)| !types.is_empty())
                    .map(|(to, types)| (*from, *to, types.iter().copied().collect()))
            })
            .collect();
        edges.sort();
        edges
    }

    /// Re-inserts one persisted directed edge.
    pub fn restore(&mut self, from: Node, to: Node, types: &[u32]) {
        for &type_id in types {
            self.insert_one(from, to, type_id);
        }
    }

    /// Forgets a record entirely (GDPR delete).
    pub fn forget(&mut self, node: Node) {
        if let Some(edges) = self.edges.remove(&node) {
            for other in edges.keys() {
                if let Some(m) = self.edges.get_mut(other) {
                    m.remove(&node);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn associations_are_visible_from_both_ends() {
        let mut links = Links::default();
        let deal = (Deals, 7);
        let company = (Companies, 9);
        let Some(kind) = default_type(Deals, Companies) else {
            panic!("deal→company has a default type");
        };
        links.add(deal, company, kind);
        assert_eq!(links.targets(deal, Companies)[0].0, company);
        let back = links.targets(company, Deals);
        assert_eq!(back[0].0, deal);
        assert!(back[0].1.contains(&342));
        assert!(links.remove_pair(company, deal));
        assert!(links.targets(deal, Companies).is_empty());
    }

    #[test]
    fn primary_moves_to_the_new_company() {
        let mut links = Links::default();
        let contact = (Contacts, 1);
        let Some(primary) = find_type(Contacts, Companies, 1) else {
            panic!("type 1 exists");
        };
        links.add(contact, (Companies, 2), primary);
        links.add(contact, (Companies, 3), primary);
        let targets = links.targets(contact, Companies);
        assert!(!targets[0].1.contains(&1), "old primary dropped");
        assert!(targets[0].1.contains(&279), "unlabeled association kept");
        assert!(targets[1].1.contains(&1));
    }
}
