//! A sync's `associate` table: app column -> the sync whose records the column references. A
//! target is a sync name (`customer_id = "companies"`: required, the child waits until its
//! parent is in the CRM) or a table (`user_id = { sync = "contacts", required = false }`: the
//! child is sent without the association while its parent cannot be sent, and associated once
//! the parent syncs). Invariant: every column has exactly one target sync; `optional` holds only
//! columns of `targets`.

use serde::{Deserialize, Deserializer};
use std::collections::{BTreeMap, BTreeSet, btree_map};

/// The parsed `associate` table of one sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Associations {
    targets: BTreeMap<String, String>,
    optional: BTreeSet<String>,
}

impl Associations {
    /// Builds from (column, target sync, required) triples.
    pub fn new<'a>(items: impl IntoIterator<Item = (&'a str, &'a str, bool)>) -> Self {
        let mut a = Associations::default();
        for (column, target, required) in items {
            a.targets.insert(column.to_string(), target.to_string());
            if !required {
                a.optional.insert(column.to_string());
            }
        }
        a
    }

    /// The target sync names, by column order.
    pub fn values(&self) -> btree_map::Values<'_, String, String> {
        self.targets.values()
    }

    /// The association columns.
    pub fn keys(&self) -> btree_map::Keys<'_, String, String> {
        self.targets.keys()
    }

    /// (column, target sync) pairs.
    pub fn iter(&self) -> btree_map::Iter<'_, String, String> {
        self.targets.iter()
    }

    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Whether the child waits for the parent named by `column` (the default).
    pub fn is_required(&self, column: &str) -> bool {
        !self.optional.contains(column)
    }

    /// Whether any association of the sync is optional.
    pub fn has_optional(&self) -> bool {
        !self.optional.is_empty()
    }
}

impl<'a> IntoIterator for &'a Associations {
    type Item = (&'a String, &'a String);
    type IntoIter = btree_map::Iter<'a, String, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.targets.iter()
    }
}

impl<'de> Deserialize<'de> for Associations {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw: BTreeMap<String, toml::Value> = BTreeMap::deserialize(d)?;
        let mut out = Associations::default();
        for (column, value) in raw {
            let (target, required) = match value {
                toml::Value::String(s) => (s, true),
                toml::Value::Table(t) => {
                    if let Some(k) = t.keys().find(|k| *k != "sync" && *k != "required") {
                        return Err(D::Error::custom(format!(
                            "`associate.{column}`: unknown key `{k}`; expected `sync` and `required`"
                        )));
                    }
                    let Some(toml::Value::String(s)) = t.get("sync") else {
                        return Err(D::Error::custom(format!(
                            "`associate.{column}` needs `sync = \"<name of the parent's sync>\"`"
                        )));
                    };
                    let required = match t.get("required") {
                        None => true,
                        Some(toml::Value::Boolean(b)) => *b,
                        Some(other) => {
                            return Err(D::Error::custom(format!(
                                "`associate.{column}.required` is true or false, got {other}"
                            )));
                        }
                    };
                    (s.clone(), required)
                }
                other => {
                    return Err(D::Error::custom(format!(
                        "`associate.{column}` is a sync name or {{ sync = \"...\", required = false }}, got {other}"
                    )));
                }
            };
            if !required {
                out.optional.insert(column.clone());
            }
            out.targets.insert(column, target);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        associate: Associations,
    }

    fn parse(text: &str) -> Result<Associations, String> {
        toml::from_str::<Holder>(text)
            .map(|h| h.associate)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn names_and_tables_both_parse() {
        let a = parse(
            r#"associate = { account_id = "companies", user_id = { sync = "contacts", required = false } }"#,
        )
        .expect("parses");
        assert_eq!(a.len(), 2);
        assert!(a.is_required("account_id"));
        assert!(!a.is_required("user_id"));
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            vec![
                (&"account_id".to_string(), &"companies".to_string()),
                (&"user_id".to_string(), &"contacts".to_string())
            ]
        );
    }

    #[test]
    fn mistakes_are_named() {
        let e = parse(r#"associate = { user_id = { sync = "contacts", optional = true } }"#)
            .expect_err("unknown key");
        assert!(
            e.contains("associate.user_id") && e.contains("optional"),
            "{e}"
        );
        let e = parse(r#"associate = { user_id = { required = false } }"#).expect_err("no sync");
        assert!(e.contains("needs `sync"), "{e}");
        let e = parse(r#"associate = { user_id = 3 }"#).expect_err("a number");
        assert!(e.contains("sync name"), "{e}");
    }
}
