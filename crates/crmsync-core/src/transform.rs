//! Value transforms applied to a column before it is validated and sent. Pure functions of
//! one string; unknown names are config errors, caught by the validation pass.

/// A named transform from the config's `transform = [...]` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    Trim,
    Lowercase,
    Uppercase,
    TitleCase,
    CollapseWhitespace,
}

impl Transform {
    /// The names the config accepts.
    pub const NAMES: [&'static str; 5] = [
        "trim",
        "lowercase",
        "uppercase",
        "title_case",
        "collapse_whitespace",
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "trim" => Transform::Trim,
            "lowercase" => Transform::Lowercase,
            "uppercase" => Transform::Uppercase,
            "title_case" => Transform::TitleCase,
            "collapse_whitespace" => Transform::CollapseWhitespace,
            _ => return None,
        })
    }

    pub fn apply(self, value: &str) -> String {
        match self {
            Transform::Trim => value.trim().to_string(),
            Transform::Lowercase => value.to_lowercase(),
            Transform::Uppercase => value.to_uppercase(),
            Transform::TitleCase => title_case(value),
            Transform::CollapseWhitespace => value.split_whitespace().collect::<Vec<_>>().join(" "),
        }
    }
}

fn title_case(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut start = true;
    for c in value.chars() {
        if c.is_alphanumeric() {
            if start {
                out.extend(c.to_uppercase());
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

    #[test]
    fn each_transform_does_what_its_name_says() {
        assert_eq!(Transform::Trim.apply("  a b "), "a b");
        assert_eq!(Transform::Lowercase.apply("A@B.COM"), "a@b.com");
        assert_eq!(Transform::Uppercase.apply("de"), "DE");
        assert_eq!(
            Transform::TitleCase.apply("ada LOVELACE-byron"),
            "Ada Lovelace-Byron"
        );
        assert_eq!(Transform::CollapseWhitespace.apply(" a \t b\n c "), "a b c");
    }

    #[test]
    fn every_listed_name_parses() {
        for n in Transform::NAMES {
            assert!(Transform::parse(n).is_some(), "{n}");
        }
        assert!(Transform::parse("rot13").is_none());
    }
}
