//! The CRM object types crmsync maps app tables to.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A CRM object type, named as in the config (`object = "contacts"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ObjectKind {
    Contacts,
    Companies,
    Deals,
}

impl ObjectKind {
    /// The plural name used in HubSpot paths and in our config.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Contacts => "contacts",
            ObjectKind::Companies => "companies",
            ObjectKind::Deals => "deals",
        }
    }

    /// Every kind, for listings and "did you mean" messages.
    pub const ALL: [ObjectKind; 3] = [
        ObjectKind::Contacts,
        ObjectKind::Companies,
        ObjectKind::Deals,
    ];

    /// Parses a config name; `None` for unknown names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
