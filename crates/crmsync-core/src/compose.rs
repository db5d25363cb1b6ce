//! Where a field's value comes from: its own column (or `column = ...`), several columns joined
//! (`concat`), a `template` filled from columns, or a `constant`. Also the list of columns a
//! field reads, so change capture watches exactly those.

use crate::config::FieldConfig;
use crate::mapping::Row;

/// A piece of a parsed `template`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(String),
    Column(&'a str),
}

/// Parses `"{first} {last}"`; `{{` and `}}` stand for literal braces.
pub fn template(t: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = t;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("{{") || rest.starts_with("}}") {
            text.push(c);
            rest = &rest[2..];
        } else if c == '{' {
            let Some(end) = rest.find('}') else {
                return Err(format!(
                    "`{t}` has a `{{` without its `}}`; write `{{{{` for a brace"
                ));
            };
            let name = rest[1..end].trim();
            if name.is_empty() || name.contains('{') {
                return Err(format!(
                    "`{t}` has an empty or nested `{{}}`; name a column inside"
                ));
            }
            if !text.is_empty() {
                out.push(Piece::Text(std::mem::take(&mut text)));
            }
            out.push(Piece::Column(name));
            rest = &rest[end + 1..];
        } else if c == '}' {
            return Err(format!(
                "`{t}` has a `}}` without its `{{`; write `}}}}` for a brace"
            ));
        } else {
            text.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

/// The columns field `name` reads (none for a constant); confirmation columns not included.
pub fn columns<'a>(name: &'a str, field: &'a FieldConfig) -> Vec<&'a str> {
    if field.constant.is_some() {
        return vec![];
    }
    if let Some(cols) = &field.concat {
        return cols.iter().map(String::as_str).collect();
    }
    if let Some(t) = &field.template {
        return template(t)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| match p {
                Piece::Column(c) => Some(c),
                Piece::Text(_) => None,
            })
            .collect();
    }
    vec![field.column.as_deref().unwrap_or(name)]
}

fn cell<'r>(row: &'r Row, column: &str) -> &'r str {
    row.get(column).and_then(|v| v.as_deref()).unwrap_or("")
}

/// The raw value of field `name` in `row`, before transforms.
pub fn raw_value(name: &str, field: &FieldConfig, row: &Row) -> String {
    if let Some(c) = &field.constant {
        return c.clone();
    }
    if let Some(cols) = &field.concat {
        let sep = field.separator.as_deref().unwrap_or(" ");
        // Empty parts are skipped so a missing middle name leaves no double separator.
        return cols
            .iter()
            .map(|c| cell(row, c).trim())
            .filter(|v| !v.is_empty())
            .collect::<Vec<_>>()
            .join(sep);
    }
    if let Some(t) = &field.template {
        return template(t)
            .unwrap_or_default()
            .into_iter()
            .map(|p| match p {
                Piece::Text(s) => s,
                Piece::Column(c) => cell(row, c).to_string(),
            })
            .collect();
    }
    cell(row, field.column.as_deref().unwrap_or(name)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_with_escaped_braces() {
        assert_eq!(
            template("{a} {{x}} {b}!").expect("parses"),
            vec![
                Piece::Column("a"),
                Piece::Text(" {x} ".into()),
                Piece::Column("b"),
                Piece::Text("!".into())
            ]
        );
        for bad in ["{a", "a}", "{}", "{ {a} }"] {
            assert!(template(bad).is_err(), "{bad}");
        }
    }
}
