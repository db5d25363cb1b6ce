//! How crmsync's object kinds are Salesforce sObjects, and how one record points to another.
//!
//! The kinds are the engine's neutral vocabulary (what the record *is*: a company, a contact,
//! a deal); this file is the one place that names their Salesforce types and lookup fields.

use crate::ObjectKind;

/// The sObject a kind is stored as.
pub(crate) fn sobject(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Companies => "Account",
        ObjectKind::Contacts => "Contact",
        ObjectKind::Deals => "Opportunity",
        ObjectKind::LineItems => "OpportunityLineItem",
        ObjectKind::Products => "Product2",
    }
}

/// How a record of `from` is linked to a record of `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// A lookup field on `from` holding the parent's id (`Contact.AccountId`), with the
    /// relationship name that addresses the parent by another field (`Account`).
    Lookup {
        field: &'static str,
        relationship: &'static str,
    },
    /// A junction record (`OpportunityContactRole` with `OpportunityId` and `ContactId`).
    Junction {
        sobject: &'static str,
        from_field: &'static str,
        to_field: &'static str,
    },
}

/// The link between two kinds, `None` when Salesforce has none.
pub(crate) fn link(from: ObjectKind, to: ObjectKind) -> Option<Link> {
    use ObjectKind::*;
    match (from, to) {
        (Contacts, Companies) | (Deals, Companies) => Some(Link::Lookup {
            field: "AccountId",
            relationship: "Account",
        }),
        (LineItems, Deals) => Some(Link::Lookup {
            field: "OpportunityId",
            relationship: "Opportunity",
        }),
        (LineItems, Products) => Some(Link::Lookup {
            field: "Product2Id",
            relationship: "Product2",
        }),
        (Deals, Contacts) => Some(Link::Junction {
            sobject: "OpportunityContactRole",
            from_field: "OpportunityId",
            to_field: "ContactId",
        }),
        (Contacts, Deals) => Some(Link::Junction {
            sobject: "OpportunityContactRole",
            from_field: "ContactId",
            to_field: "OpportunityId",
        }),
        _ => None,
    }
}

/// Whether `id` looks like a Salesforce record id (15 or 18 alphanumerics), so it can go into
/// a SOQL literal without quoting trouble.
pub(crate) fn is_record_id(id: &str) -> bool {
    (id.len() == 15 || id.len() == 18) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A SOQL string literal: quotes and backslashes escaped.
pub(crate) fn soql_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Whether `name` can be a field in a SOQL field list (letters, digits, `_`, one `.` level).
pub(crate) fn is_field_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').count() <= 2
        && name
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_names_are_safe_in_soql() {
        assert_eq!(soql_string("O'Brien\\"), "'O\\'Brien\\\\'");
        assert!(is_record_id("001000000000001AAA"));
        assert!(!is_record_id("001' OR Id != '"));
        assert!(is_field_name("Account.Name"));
        assert!(!is_field_name("Name, (SELECT Id FROM Contacts)"));
    }
}
