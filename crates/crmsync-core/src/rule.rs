//! Validation rules from a field's `validate = ...`: checked after transforms and the status
//! map, before anything is queued, so a value the CRM would refuse never costs an API call.
//! A rule is a bare name (`"email"`) or a one-key table with its argument (`{ max_length = 40 }`).

use crate::config::Item;
use crate::email;
use crate::normalize::phone;

/// One validation rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// The value must be non-empty.
    Required,
    /// The value, when present, must be an e-mail address CRMs accept ([`crate::email`]).
    Email,
    /// The value, when present, must be a valid phone number; national numbers are read in
    /// `region`, without one the number must start with `+`.
    Phone {
        region: Option<phonenumber::country::Id>,
    },
    /// At most this many characters.
    MaxLength(usize),
    /// One of these values (after transforms and the map).
    Allowed(Vec<String>),
}

impl Rule {
    /// The names the config accepts, with their argument shapes.
    pub const NAMES: [&'static str; 5] = [
        "required",
        "email",
        "phone / { phone = \"DE\" }",
        "{ max_length = 255 }",
        "{ allowed = [\"a\", \"b\"] }",
    ];

    /// Reads a bare name (for rules without argument).
    pub fn parse(name: &str) -> Option<Self> {
        Self::from_item(&Item::Name(name.to_string())).ok()
    }

    /// Reads one config item, or says what is wrong with it.
    pub fn from_item(item: &Item) -> Result<Self, String> {
        match item {
            Item::Name(n) => match n.as_str() {
                "required" => Ok(Rule::Required),
                "email" => Ok(Rule::Email),
                "phone" => Ok(Rule::Phone { region: None }),
                "max_length" => Err("`max_length` needs a number: `{ max_length = 255 }`".into()),
                "allowed" => {
                    Err("`allowed` needs the values: `{ allowed = [\"a\", \"b\"] }`".into())
                }
                other => Err(unknown(other)),
            },
            Item::Table(t) => {
                let mut it = t.iter();
                let (Some((name, arg)), None) = (it.next(), it.next()) else {
                    return Err(
                        "a rule table names exactly one rule, e.g. `{ max_length = 255 }`".into(),
                    );
                };
                match name.as_str() {
                    "phone" => {
                        let r = arg
                            .as_str()
                            .ok_or("`phone` takes a region code, e.g. `{ phone = \"DE\" }`")?;
                        Ok(Rule::Phone {
                            region: Some(phone::parse_region(r)?),
                        })
                    }
                    "max_length" => arg
                        .as_integer()
                        .and_then(|i| usize::try_from(i).ok())
                        .filter(|n| *n > 0)
                        .map(Rule::MaxLength)
                        .ok_or_else(|| {
                            format!("`max_length` takes a positive whole number, got `{arg}`")
                        }),
                    "allowed" => {
                        let values: Option<Vec<String>> = arg.as_array().map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str().map(str::to_string))
                                .collect()
                        });
                        match values {
                            Some(v) if !v.is_empty() && Some(v.len()) == arg.as_array().map(Vec::len) => {
                                Ok(Rule::Allowed(v))
                            }
                            _ => Err("`allowed` takes a non-empty list of strings, e.g. `{ allowed = [\"a\", \"b\"] }`".into()),
                        }
                    }
                    "required" | "email" => Err(format!(
                        "`{name}` takes no argument; write it as \"{name}\""
                    )),
                    other => Err(unknown(other)),
                }
            }
        }
    }

    /// The rule's name, as stored in quarantine entries.
    pub fn name(&self) -> &'static str {
        match self {
            Rule::Required => "required",
            Rule::Email => "email",
            Rule::Phone { .. } => "phone",
            Rule::MaxLength(_) => "max_length",
            Rule::Allowed(_) => "allowed",
        }
    }

    /// Checks `value`; the error is a sentence naming the field's column `what`.
    pub fn check(&self, what: &str, value: &str) -> Result<(), String> {
        match self {
            Rule::Required if value.trim().is_empty() => Err(format!("`{what}` is empty")),
            Rule::Required => Ok(()),
            _ if value.is_empty() => Ok(()),
            Rule::Email => email::check(value).map_err(|why| format!("`{value}` {why}")),
            Rule::Phone { region } => {
                phone::check(value, *region).map_err(|why| format!("`{value}` {why}"))
            }
            Rule::MaxLength(n) => {
                let len = value.chars().count();
                if len > *n {
                    Err(format!(
                        "`{what}` has {len} characters, more than the {n} allowed"
                    ))
                } else {
                    Ok(())
                }
            }
            Rule::Allowed(values) => {
                if values.iter().any(|v| v == value) {
                    Ok(())
                } else {
                    Err(format!(
                        "`{value}` is not one of the allowed values: {}",
                        values.join(", ")
                    ))
                }
            }
        }
    }
}

fn unknown(name: &str) -> String {
    format!(
        "unknown rule `{name}`; expected one of {}",
        Rule::NAMES.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(toml_value: &str) -> Result<Rule, String> {
        #[derive(serde::Deserialize)]
        struct W {
            r: Item,
        }
        let w: W = toml::from_str(&format!("r = {toml_value}")).expect("test item parses");
        Rule::from_item(&w.r)
    }

    #[test]
    fn each_rule_accepts_and_rejects() {
        let cases: [(&str, &str, bool); 12] = [
            ("\"required\"", "x", true),
            ("\"required\"", "  ", false),
            ("\"email\"", "ada@example.com", true),
            ("\"email\"", "ada@example", false),
            ("\"phone\"", "+49 30 1234567", true),
            ("\"phone\"", "030 1234567", false),
            ("{ phone = \"DE\" }", "030 1234567", true),
            ("{ max_length = 3 }", "abc", true),
            ("{ max_length = 3 }", "äbcd", false),
            ("{ allowed = [\"a\", \"b\"] }", "b", true),
            ("{ allowed = [\"a\", \"b\"] }", "c", false),
            ("\"email\"", "", true),
        ];
        for (r, v, ok) in cases {
            let got = rule(r).expect("rule parses").check("col", v);
            assert_eq!(got.is_ok(), ok, "{r} on {v:?}: {got:?}");
        }
    }

    #[test]
    fn bad_rules_are_described() {
        for (bad, says) in [
            ("\"phonetic\"", "unknown rule `phonetic`"),
            ("\"max_length\"", "needs a number"),
            ("{ max_length = -1 }", "positive whole number"),
            ("{ allowed = [] }", "non-empty list"),
            ("{ allowed = [1] }", "non-empty list"),
            ("{ email = true }", "takes no argument"),
            ("{ phone = \"XX\" }", "region code"),
        ] {
            let e = rule(bad).expect_err("must fail");
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
