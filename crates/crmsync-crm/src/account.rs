//! Which CRM account a client talks to, as the CRM itself reports it: the stable id a state
//! database is bound to, and whether the account holds real data. Invariant: `production` is
//! true unless the CRM says the account is a test one (an account type crmsync does not know
//! counts as production: when in doubt, guard).

use std::fmt;

/// The CRM account behind the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Stable identity, `hubspot:<portal id>` or `salesforce:<org id>`: what the state binds.
    pub id: String,
    /// The CRM's own word for the account's kind (HubSpot `accountType`, e.g. `STANDARD`,
    /// `DEVELOPER_TEST`, `SANDBOX`; Salesforce `sandbox` / `production` org).
    pub kind: String,
    /// Whether the account holds real data.
    pub production: bool,
}

impl Account {
    /// A HubSpot portal from `GET /account-info/v3/details`: developer test accounts, sandbox
    /// portals and app developer accounts are not production; `STANDARD` and anything else is.
    pub fn hubspot(portal_id: u64, account_type: &str) -> Self {
        let production = !matches!(account_type, "DEVELOPER_TEST" | "SANDBOX" | "APP_DEVELOPER");
        Account {
            id: format!("hubspot:{portal_id}"),
            kind: account_type.to_string(),
            production,
        }
    }

    /// A Salesforce org: its id (the 15-character prefix, so the 15- and 18-character forms
    /// are the same org) and `Organization.IsSandbox`.
    pub fn salesforce(org_id: &str, is_sandbox: bool) -> Self {
        let short: String = org_id.chars().take(15).collect();
        Account {
            id: format!("salesforce:{short}"),
            kind: if is_sandbox { "sandbox" } else { "production" }.to_string(),
            production: !is_sandbox,
        }
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (crm, id) = self.id.split_once(':').unwrap_or(("crm", &self.id));
        let noun = match crm {
            "hubspot" => "HubSpot portal",
            "salesforce" => "Salesforce org",
            _ => "CRM account",
        };
        let class = if self.production {
            "production"
        } else {
            "test"
        };
        write!(f, "{noun} {id} ({}, a {class} account)", self.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_test_account_types_are_not_production() {
        assert!(Account::hubspot(1, "STANDARD").production);
        assert!(Account::hubspot(1, "SOMETHING_NEW").production);
        assert!(!Account::hubspot(1, "DEVELOPER_TEST").production);
        assert!(!Account::hubspot(1, "SANDBOX").production);
        assert_eq!(
            Account::hubspot(62515, "STANDARD").to_string(),
            "HubSpot portal 62515 (STANDARD, a production account)"
        );
    }

    #[test]
    fn a_salesforce_org_is_the_same_in_its_15_and_18_character_forms() {
        assert_eq!(
            Account::salesforce("00D000000000001AAA", true),
            Account::salesforce("00D000000000001", true)
        );
        assert!(Account::salesforce("00D000000000001", false).production);
    }
}
