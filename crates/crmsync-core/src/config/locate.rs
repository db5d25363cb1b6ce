//! Finds the line of a dotted key path (`sync[1].fields.email.crm`) in the config text, so
//! semantic problems found after parsing still point at a line. Falls back to the nearest
//! existing parent when the key itself is absent (a missing key is reported at its table).

use toml_edit::{Document, Item};

/// 1-based line of `path` in `text`, or of its deepest present ancestor.
pub fn line_of(text: &str, path: &str) -> Option<usize> {
    let doc = Document::parse(text).ok()?;
    let mut item: &Item = doc.as_item();
    let mut best = None;
    for seg in segments(path) {
        let (next, span) = match seg {
            Seg::Key(k) => {
                let Some((key, value)) = item.as_table_like().and_then(|t| t.get_key_value(k))
                else {
                    break;
                };
                (value, key.span().or_else(|| value.span()))
            }
            Seg::Index(i) => {
                let Some(value) = item.get(i) else { break };
                (value, value.span())
            }
        };
        item = next;
        best = span.map(|s| s.start).or(best);
    }
    best.map(|b| line_at(text, b))
}

fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn segments(path: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        match part.split_once('[') {
            Some((key, rest)) => {
                if !key.is_empty() {
                    out.push(Seg::Key(key));
                }
                for idx in rest.split('[') {
                    if let Ok(i) = idx.trim_end_matches(']').parse() {
                        out.push(Seg::Index(i));
                    }
                }
            }
            None => out.push(Seg::Key(part)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[source]\nurl = \"x\"\n\n[[sync]]\nname = \"a\"\n\n[[sync]]\nname = \"b\"\nobject = \"nope\"\n[sync.fields]\nemail = { crm = \"email\", validate = \"bogus\" }\n";

    #[test]
    fn finds_keys_inside_array_of_tables() {
        assert_eq!(line_of(TEXT, "source.url"), Some(2));
        assert_eq!(line_of(TEXT, "sync[1].object"), Some(9));
        assert_eq!(line_of(TEXT, "sync[1].fields.email.validate"), Some(11));
    }

    #[test]
    fn falls_back_to_the_deepest_present_parent() {
        assert_eq!(line_of(TEXT, "sync[0].fields.email"), Some(4));
    }
}
