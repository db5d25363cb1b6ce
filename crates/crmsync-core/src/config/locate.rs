//! Finds the line of a dotted key path (`sync[1].fields.email.crm`) in the config text, so
//! semantic problems found after parsing still point at a line. Falls back to the nearest
//! existing parent when the key itself is absent (a missing key is reported at its table).
//! A text the spanned parser cannot take (an integer beyond i64, which serde's own parse still
//! reads into a u64) falls back to the one line that assigns the path's last key, if there is
//! exactly one.

use toml_edit::{Document, Item};

/// 1-based line of `path` in `text`, or of its deepest present ancestor.
pub fn line_of(text: &str, path: &str) -> Option<usize> {
    let Ok(doc) = Document::parse(text) else {
        return only_assignment(text, path);
    };
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

/// The 1-based line of the only `key = ...` of `path`'s last key, when exactly one line has it.
fn only_assignment(text: &str, path: &str) -> Option<usize> {
    let key = match segments(path).last()? {
        Seg::Key(k) => *k,
        Seg::Index(_) => return None,
    };
    let mut found = text.lines().enumerate().filter(|(_, line)| {
        line.trim_start()
            .strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    });
    let (line, _) = found.next()?;
    found.next().is_none().then_some(line + 1)
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
    fn an_integer_beyond_i64_still_has_its_line() {
        let text = "[crm]\nkind = \"hubspot\"\ninterval_ms = 18446744073709551615\n";
        assert_eq!(line_of(text, "crm.interval_ms"), Some(3));
        let twice = format!("{text}[run]\ninterval_ms = 18446744073709551615\n");
        assert_eq!(
            line_of(&twice, "crm.interval_ms"),
            None,
            "ambiguous: no guess"
        );
    }

    #[test]
    fn falls_back_to_the_deepest_present_parent() {
        assert_eq!(line_of(TEXT, "sync[0].fields.email"), Some(4));
    }
}
