//! Deciding one two-way field of one record from three values: the app's (in CRM form), the
//! CRM's, and the base (the last value both sides agreed on). Pure.
//!
//! - equal values: nothing to do, they agree (this is how our own pushes coming back through
//!   the poll are recognised);
//! - only the CRM moved away from the base: take the CRM's value;
//! - only the app moved away from the base: keep it (the push pass sends it);
//! - both moved (or no base is known yet): the field's [`ConflictPolicy`].

use crmsync_core::config::ConflictPolicy;

/// What to do with one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Both sides hold the same value.
    Agree,
    /// Write the CRM's value into the app.
    TakeCrm,
    /// Keep the app's value; the push pass sends it.
    KeepApp,
    /// Park the record for `crmsync resolve`.
    Park,
}

/// Decides one field. `crm_newer` says whether the CRM's change is later than the app's (only
/// read by [`ConflictPolicy::Newest`]).
pub fn decide(
    app: &str,
    crm: &str,
    base: Option<&str>,
    policy: ConflictPolicy,
    crm_newer: bool,
) -> Decision {
    if app == crm {
        return Decision::Agree;
    }
    match base {
        Some(b) if b == app => Decision::TakeCrm,
        Some(b) if b == crm => Decision::KeepApp,
        _ => match policy {
            ConflictPolicy::CrmWins => Decision::TakeCrm,
            ConflictPolicy::AppWins => Decision::KeepApp,
            ConflictPolicy::Newest if crm_newer => Decision::TakeCrm,
            ConflictPolicy::Newest => Decision::KeepApp,
            ConflictPolicy::Review => Decision::Park,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConflictPolicy::*;

    #[test]
    fn one_sided_changes_need_no_policy() {
        for p in [CrmWins, AppWins, Newest, Review] {
            assert_eq!(decide("a", "a", Some("x"), p, true), Decision::Agree);
            assert_eq!(decide("a", "c", Some("a"), p, false), Decision::TakeCrm);
            assert_eq!(decide("a", "c", Some("c"), p, true), Decision::KeepApp);
        }
    }

    #[test]
    fn both_changed_follows_the_policy() {
        assert_eq!(
            decide("a", "c", Some("b"), CrmWins, false),
            Decision::TakeCrm
        );
        assert_eq!(
            decide("a", "c", Some("b"), AppWins, true),
            Decision::KeepApp
        );
        assert_eq!(decide("a", "c", Some("b"), Newest, true), Decision::TakeCrm);
        assert_eq!(
            decide("a", "c", Some("b"), Newest, false),
            Decision::KeepApp
        );
        assert_eq!(decide("a", "c", Some("b"), Review, true), Decision::Park);
        // No base known yet counts as both changed.
        assert_eq!(decide("a", "c", None, Review, true), Decision::Park);
    }
}
