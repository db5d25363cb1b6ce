//! Value transforms applied, in order, to a field's value before it is mapped and validated.
//! A config item is a bare name (`"trim"`) or a one-key table carrying the argument
//! (`{ e164 = "DE" }`); [`Transform::from_item`] reads it and the config's validation pass
//! reports a bad one with its dotted path. Applying is pure; transforms that convert
//! (phone, date, number) fail with a reason, which quarantines the record before any call.
//! [`Transform::back`] is the way back for pulled values (see `reverse.rs` for the chain).

use crate::config::Item;
use crate::email;
use crate::normalize::datetime::{self, Format};
use crate::normalize::{number, phone};
use chrono::FixedOffset;
use std::collections::BTreeMap;

/// One transform with its arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum Transform {
    Trim,
    Lowercase,
    Uppercase,
    TitleCase,
    CollapseWhitespace,
    /// Trim, lowercase the domain.
    NormalizeEmail,
    /// E.164 phone number; national numbers are read in the region the row's
    /// `region_column` names (a code or a country name), else in `region`.
    E164 {
        region: Option<phonenumber::country::Id>,
        region_column: Option<String>,
    },
    /// `YYYY-MM-DD` from the app's formats.
    Date {
        formats: Vec<Format>,
    },
    /// ISO-8601 UTC with milliseconds from the app's formats; zone-less values at `offset`.
    Datetime {
        formats: Vec<Format>,
        offset: Option<FixedOffset>,
    },
    /// A plain decimal from the app's notation, divided by `10^scale` on the way to the CRM
    /// (`divide_by = 100`: cents to units) and multiplied back on the way home.
    Number {
        decimal: char,
        decimals: Option<u32>,
        scale: u32,
    },
    /// Cut to at most this many characters (the `max_length` rule rejects instead).
    Truncate(usize),
}

impl Transform {
    /// The names the config accepts (with the shape of their argument, for messages).
    pub const NAMES: [&'static str; 11] = [
        "trim",
        "lowercase",
        "uppercase",
        "title_case",
        "collapse_whitespace",
        "normalize_email",
        "e164 / { e164 = \"DE\" } / { e164 = { region_column = \"country\", default = \"US\" } }",
        "{ date = \"%d.%m.%Y\" }",
        "{ datetime = \"%d.%m.%Y %H:%M\", utc_offset = \"+01:00\" }",
        "number / { number = { decimal = \",\", decimals = 2, divide_by = 100 } }",
        "{ truncate = 40 }",
    ];

    /// Reads a bare name (for the simple transforms).
    pub fn parse(name: &str) -> Option<Self> {
        Self::from_item(&Item::Name(name.to_string())).ok()
    }

    /// Reads one config item, or says what is wrong with it.
    pub fn from_item(item: &Item) -> Result<Self, String> {
        match item {
            Item::Name(n) => Ok(match n.as_str() {
                "trim" => Transform::Trim,
                "lowercase" => Transform::Lowercase,
                "uppercase" => Transform::Uppercase,
                "title_case" => Transform::TitleCase,
                "collapse_whitespace" => Transform::CollapseWhitespace,
                "normalize_email" => Transform::NormalizeEmail,
                "e164" => Transform::E164 {
                    region: None,
                    region_column: None,
                },
                "number" => Transform::Number {
                    decimal: '.',
                    decimals: None,
                    scale: 0,
                },
                "date" | "datetime" | "truncate" => {
                    return Err(format!(
                        "`{n}` needs an argument, e.g. {}",
                        match n.as_str() {
                            "date" => "`{ date = \"%d.%m.%Y\" }`",
                            "datetime" => "`{ datetime = \"iso\" }`",
                            _ => "`{ truncate = 40 }`",
                        }
                    ));
                }
                other => return Err(unknown(other)),
            }),
            Item::Table(t) => from_table(t),
        }
    }

    /// Applies the transform to one value.
    pub fn apply(&self, value: &str) -> Result<String, String> {
        Ok(match self {
            Transform::Trim => value.trim().to_string(),
            Transform::Lowercase => value.to_lowercase(),
            Transform::Uppercase => value.to_uppercase(),
            Transform::TitleCase => title_case(value),
            Transform::CollapseWhitespace => value.split_whitespace().collect::<Vec<_>>().join(" "),
            Transform::NormalizeEmail => email::normalize(value),
            Transform::E164 { region, .. } => phone::to_e164(value, *region)?,
            Transform::Date { formats } => datetime::to_date(value, formats)?,
            Transform::Datetime { formats, offset } => {
                datetime::to_datetime(value, formats, *offset)?
            }
            Transform::Number {
                decimal,
                decimals,
                scale,
            } => {
                let plain = number::normalize(value, *decimal, None)?;
                let scaled = number::shift(&plain, i32::try_from(*scale).unwrap_or(0))?;
                match decimals {
                    Some(_) => number::normalize(&scaled, '.', *decimals)?,
                    None => scaled,
                }
            }
            Transform::Truncate(n) => value.chars().take(*n).collect(),
        })
    }

    /// Applies the transform to one value of `row`: as [`Transform::apply`], with the row's
    /// own phone region when the transform reads one from a column.
    pub fn apply_in(&self, value: &str, row: &crate::mapping::Row) -> Result<String, String> {
        match self {
            Transform::E164 {
                region,
                region_column: Some(column),
            } => {
                let named = row.get(column).cloned().flatten().unwrap_or_default();
                let from_row = phone::region_of(&named);
                if from_row.is_none() && !named.trim().is_empty() && region.is_none() {
                    return Err(format!(
                        "cannot be read: `{column}` holds `{named}`, which is no country code or name crmsync knows, and no `default` region is set"
                    ));
                }
                phone::to_e164(value, from_row.or(*region))
            }
            other => other.apply(value),
        }
    }

    /// The app columns the transform reads besides the field's own value.
    pub fn columns(&self) -> Vec<&str> {
        match self {
            Transform::E164 {
                region_column: Some(c),
                ..
            } => vec![c.as_str()],
            _ => vec![],
        }
    }

    /// The app value a CRM value comes back as, for fields that pull. Conversions have an
    /// inverse: `date` and `datetime` write the first app format (`datetime` at its
    /// `utc_offset`), `number` the app's decimal separator. The normalisers have none and
    /// return the CRM value as it is; as they are idempotent, applying them to what they
    /// produced gives the same value, so a pulled value pushes back unchanged.
    pub fn back(&self, crm_value: &str) -> Result<String, String> {
        match self {
            Transform::Date { formats } => match formats.first() {
                Some(f) => datetime::date_to_app(crm_value, f),
                None => Ok(crm_value.to_string()),
            },
            Transform::Datetime { formats, offset } => match formats.first() {
                Some(f) => datetime::datetime_to_app(crm_value, f, *offset),
                None => Ok(crm_value.to_string()),
            },
            Transform::Number {
                decimal,
                decimals,
                scale: 0,
            } => number::to_app(crm_value, *decimal, *decimals),
            // Scaled: the app holds the small unit (cents); the CRM's value multiplied back,
            // exactly. A CRM value finer than the unit (`12.345` for cents) keeps its fraction
            // rather than being rounded into the app.
            Transform::Number { decimal, scale, .. } => {
                let plain = number::to_app(crm_value, '.', None)?;
                let app = number::shift(&plain, -i32::try_from(*scale).unwrap_or(0))?;
                Ok(app.replace('.', &decimal.to_string()))
            }
            Transform::Trim
            | Transform::Lowercase
            | Transform::Uppercase
            | Transform::TitleCase
            | Transform::CollapseWhitespace
            | Transform::NormalizeEmail
            | Transform::E164 { .. }
            | Transform::Truncate(_) => Ok(crm_value.to_string()),
        }
    }

    /// The config name, used as the quarantine rule when the transform fails.
    pub fn name(&self) -> &'static str {
        match self {
            Transform::Trim => "trim",
            Transform::Lowercase => "lowercase",
            Transform::Uppercase => "uppercase",
            Transform::TitleCase => "title_case",
            Transform::CollapseWhitespace => "collapse_whitespace",
            Transform::NormalizeEmail => "normalize_email",
            Transform::E164 { .. } => "e164",
            Transform::Date { .. } => "date",
            Transform::Datetime { .. } => "datetime",
            Transform::Number { .. } => "number",
            Transform::Truncate(_) => "truncate",
        }
    }
}

fn unknown(name: &str) -> String {
    format!(
        "unknown transform `{name}`; expected one of {}",
        Transform::NAMES.join(", ")
    )
}

fn from_table(t: &BTreeMap<String, toml::Value>) -> Result<Transform, String> {
    let mut keys = t.keys().map(String::as_str);
    let allowed_extra: &[&str] = if t.contains_key("datetime") {
        &["datetime", "utc_offset"]
    } else {
        &[]
    };
    let name = match (keys.next(), t.len()) {
        (Some(_), 1) => t.keys().next().map(String::as_str).unwrap_or(""),
        (Some(_), _) if t.keys().all(|k| allowed_extra.contains(&k.as_str())) => "datetime",
        _ => {
            return Err(format!(
                "a transform table names exactly one transform, e.g. `{{ e164 = \"DE\" }}`; got keys {}",
                t.keys()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    };
    let arg = t.get(name).ok_or_else(|| unknown(name))?;
    match name {
        "e164" => match arg {
            toml::Value::Table(opts) => {
                let mut region = None;
                let mut region_column = None;
                for (k, v) in opts {
                    match k.as_str() {
                        "region_column" => region_column = Some(as_str(k, v)?.to_string()),
                        "default" => region = Some(phone::parse_region(as_str(k, v)?)?),
                        other => {
                            return Err(format!(
                                "unknown `e164` option `{other}`; expected `region_column` or `default`"
                            ));
                        }
                    }
                }
                if region_column.is_none() {
                    return Err(
                        "`e164` with a table needs `region_column`, e.g. `{ e164 = { region_column = \"country\", default = \"US\" } }`"
                            .into(),
                    );
                }
                Ok(Transform::E164 {
                    region,
                    region_column,
                })
            }
            _ => Ok(Transform::E164 {
                region: Some(phone::parse_region(as_str(name, arg)?)?),
                region_column: None,
            }),
        },
        "date" => Ok(Transform::Date {
            formats: formats(name, arg)?,
        }),
        "datetime" => Ok(Transform::Datetime {
            formats: formats(name, arg)?,
            offset: match t.get("utc_offset") {
                Some(o) => Some(datetime::parse_offset(as_str("utc_offset", o)?)?),
                None => None,
            },
        }),
        "truncate" => Ok(Transform::Truncate(as_len(name, arg)?)),
        "number" => {
            let toml::Value::Table(opts) = arg else {
                return Err(
                    "`number` takes a table, e.g. `{ number = { decimal = \",\", decimals = 2 } }`"
                        .into(),
                );
            };
            let mut decimal = '.';
            let mut decimals = None;
            let mut scale = 0;
            for (k, v) in opts {
                match k.as_str() {
                    "divide_by" => {
                        let n = v.as_integer().ok_or_else(|| {
                            format!(
                                "`divide_by` takes a whole number such as 100, got {}",
                                v.type_str()
                            )
                        })?;
                        scale = match n {
                            1 => 0,
                            10 => 1,
                            100 => 2,
                            1_000 => 3,
                            10_000 => 4,
                            100_000 => 5,
                            1_000_000 => 6,
                            _ => {
                                return Err(format!(
                                    "`divide_by` is a power of ten from 1 to 1000000 (100 turns cents into units), got {n}"
                                ));
                            }
                        };
                    }
                    "decimal" => {
                        decimal = match as_str("decimal", v)? {
                            "." => '.',
                            "," => ',',
                            other => {
                                return Err(format!("`decimal` is \".\" or \",\", got `{other}`"));
                            }
                        }
                    }
                    "decimals" => {
                        decimals = Some(
                            u32::try_from(as_len("decimals", v)?)
                                .map_err(|_| "`decimals` is too large".to_string())?,
                        );
                        if decimals.is_some_and(|d| d > 20) {
                            return Err("`decimals` must be at most 20".into());
                        }
                    }
                    other => {
                        return Err(format!(
                            "unknown `number` option `{other}`; expected `decimal`, `decimals` or `divide_by`"
                        ));
                    }
                }
            }
            Ok(Transform::Number {
                decimal,
                decimals,
                scale,
            })
        }
        simple => match Transform::from_item(&Item::Name(simple.to_string())) {
            Ok(_) => Err(format!(
                "`{simple}` takes no argument; write it as \"{simple}\""
            )),
            Err(e) => Err(e),
        },
    }
}

fn as_str<'a>(key: &str, v: &'a toml::Value) -> Result<&'a str, String> {
    v.as_str()
        .ok_or_else(|| format!("`{key}` takes a string, got {}", v.type_str()))
}

fn as_len(key: &str, v: &toml::Value) -> Result<usize, String> {
    v.as_integer()
        .and_then(|i| usize::try_from(i).ok())
        .filter(|n| *n > 0 || key == "decimals")
        .ok_or_else(|| format!("`{key}` takes a positive whole number, got `{v}`"))
}

fn formats(key: &str, v: &toml::Value) -> Result<Vec<Format>, String> {
    match v {
        toml::Value::String(s) => Ok(vec![Format::parse(s)?]),
        toml::Value::Array(a) if !a.is_empty() => {
            a.iter().map(|f| Format::parse(as_str(key, f)?)).collect()
        }
        _ => Err(format!(
            "`{key}` takes a format or a list of formats, e.g. \"%d.%m.%Y\" or [\"%d.%m.%Y\", \"iso\"]"
        )),
    }
}

fn title_case(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut start = true;
    for c in value.chars() {
        if c.is_alphanumeric() {
            if start {
                // A letter whose capital is two letters (`ß` -> `SS`, `ﬁ` -> `FI`) keeps the
                // first one capital (`Ss`, `Fi`); otherwise title casing the result again would
                // change it, and a value pulled from the CRM would not push back unchanged.
                let mut upper = c.to_uppercase();
                out.extend(upper.next());
                out.extend(upper.flat_map(char::to_lowercase));
            } else {
                out.extend(c.to_lowercase());
            }
            start = false;
        } else {
            out.push(c);
            start = c.is_whitespace() || c == '-';
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn item(toml_value: &str) -> Item {
        #[derive(serde::Deserialize)]
        struct W {
            t: Item,
        }
        toml::from_str::<W>(&format!("t = {toml_value}"))
            .expect("test item parses")
            .t
    }

    #[test]
    fn cents_become_units_and_come_back_as_cents() {
        let t = Transform::from_item(&item("{ number = { divide_by = 100, decimals = 2 } }"))
            .expect("valid");
        assert_eq!(t.apply("129900").as_deref(), Ok("1299.00"));
        assert_eq!(t.apply("5").as_deref(), Ok("0.05"));
        assert_eq!(t.apply("-1").as_deref(), Ok("-0.01"));
        assert_eq!(t.apply("").as_deref(), Ok(""));
        assert_eq!(t.back("1299.00").as_deref(), Ok("129900"));
        assert_eq!(t.back("1299.5").as_deref(), Ok("129950"));
        assert_eq!(
            t.back("12.345").as_deref(),
            Ok("1234.5"),
            "finer than a cent: kept"
        );
        assert!(t.apply("12 cents").is_err());
        for bad in [
            "{ number = { divide_by = 7 } }",
            "{ number = { divide_by = \"100\" } }",
        ] {
            let e = Transform::from_item(&item(bad)).expect_err("refused");
            assert!(e.contains("divide_by"), "{e}");
        }
    }

    fn apply(toml_value: &str, value: &str) -> Result<String, String> {
        Transform::from_item(&item(toml_value))?.apply(value)
    }

    #[test]
    fn each_simple_transform_does_what_its_name_says() {
        assert_eq!(apply("\"trim\"", "  a b ").as_deref(), Ok("a b"));
        assert_eq!(apply("\"lowercase\"", "A@B.COM").as_deref(), Ok("a@b.com"));
        assert_eq!(apply("\"uppercase\"", "de").as_deref(), Ok("DE"));
        assert_eq!(
            apply("\"title_case\"", "ada LOVELACE-byron").as_deref(),
            Ok("Ada Lovelace-Byron")
        );
        assert_eq!(
            apply("\"title_case\"", "ßen ﬁsh").as_deref(),
            Ok("Ssen Fish")
        );
        assert_eq!(
            apply("\"collapse_whitespace\"", " a \t b\n c ").as_deref(),
            Ok("a b c")
        );
        assert_eq!(
            apply("\"normalize_email\"", " Ada@X.COM ").as_deref(),
            Ok("Ada@x.com")
        );
    }

    #[test]
    fn transforms_with_arguments() {
        assert_eq!(
            apply("{ e164 = \"DE\" }", "030 1234567").as_deref(),
            Ok("+49301234567")
        );
        assert_eq!(
            apply("\"e164\"", "+49 30 1234567").as_deref(),
            Ok("+49301234567")
        );
        assert_eq!(
            apply("{ date = \"%d.%m.%Y\" }", "04.03.2026").as_deref(),
            Ok("2026-03-04")
        );
        assert_eq!(
            apply("{ date = [\"%d.%m.%Y\", \"%m/%d/%Y\"] }", "03/04/2026").as_deref(),
            Ok("2026-03-04")
        );
        assert_eq!(
            apply(
                "{ datetime = \"%d.%m.%Y %H:%M\", utc_offset = \"+01:00\" }",
                "04.03.2026 10:20"
            )
            .as_deref(),
            Ok("2026-03-04T09:20:00.000Z")
        );
        assert_eq!(
            apply("{ number = { decimal = \",\", decimals = 2 } }", "1.234,5").as_deref(),
            Ok("1234.50")
        );
        assert_eq!(apply("\"number\"", "1,234.5").as_deref(), Ok("1234.5"));
        assert_eq!(apply("{ truncate = 3 }", "Robots").as_deref(), Ok("Rob"));
    }

    #[test]
    fn conversion_failures_say_why() {
        let e = apply("{ date = \"%d.%m.%Y\" }", "yesterday").expect_err("must fail");
        assert!(e.contains("%d.%m.%Y"), "{e}");
        assert!(apply("{ e164 = \"DE\" }", "call me").is_err());
        assert!(apply("\"number\"", "12 apples").is_err());
    }

    #[test]
    fn bad_items_are_described() {
        for (bad, says) in [
            ("\"rot13\"", "unknown transform `rot13`"),
            ("\"date\"", "needs an argument"),
            ("{ e164 = \"Germany\" }", "region code"),
            ("{ e164 = \"DE\", truncate = 3 }", "exactly one transform"),
            ("{ trim = true }", "takes no argument"),
            ("{ truncate = 0 }", "positive whole number"),
            ("{ number = { decimal = \";\" } }", "`decimal`"),
            (
                "{ number = { thousands = \".\" } }",
                "unknown `number` option",
            ),
            ("{ date = \"dd.mm.yyyy\" }", "strftime"),
            ("{ datetime = \"iso\", utc_offset = \"1h\" }", "UTC offset"),
        ] {
            let e = Transform::from_item(&item(bad)).expect_err("must fail");
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    proptest! {
        #[test]
        fn text_normalisers_are_idempotent_and_total(s in "\\PC{0,40}") {
            for t in [Transform::Trim, Transform::Lowercase, Transform::Uppercase, Transform::CollapseWhitespace, Transform::NormalizeEmail, Transform::Truncate(5)] {
                let once = t.apply(&s);
                prop_assert!(once.is_ok());
                let once = once.unwrap_or_default();
                prop_assert_eq!(t.apply(&once), Ok(once.clone()), "{:?}", t);
            }
        }

        #[test]
        fn title_case_is_idempotent(s in "\\PC{0,30}") {
            let once = Transform::TitleCase.apply(&s).unwrap_or_default();
            prop_assert_eq!(Transform::TitleCase.apply(&once), Ok(once.clone()));
        }
    }
}
