//! A strict reader of the Prometheus text exposition format (0.0.4), for tests: every line is a
//! `# HELP`, a `# TYPE` or a sample; names and label names match the format's patterns; label
//! values are quoted with only `\\`, `\"` and `\n` escapes; values parse as floats; a metric's
//! TYPE comes once and before its samples, its samples are contiguous, and no series repeats;
//! counters are never negative. Anything else is an error naming the line.

use std::collections::{BTreeMap, BTreeSet};

/// One sample: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn value(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// The labels of `{...}` (without the braces).
fn labels(s: &str, line: usize) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once('=')
            .ok_or(format!("line {line}: a label without `=`"))?;
        if !is_label_name(name) {
            return Err(format!("line {line}: bad label name {name:?}"));
        }
        let mut chars = after.chars();
        if chars.next() != Some('"') {
            return Err(format!("line {line}: label {name} is not quoted"));
        }
        let mut value = String::new();
        let mut used = 1;
        let mut closed = false;
        while let Some(c) = chars.next() {
            used += c.len_utf8();
            match c {
                '\\' => {
                    let e = chars
                        .next()
                        .ok_or(format!("line {line}: dangling escape"))?;
                    used += e.len_utf8();
                    value.push(match e {
                        '\\' => '\\',
                        '"' => '"',
                        'n' => '\n',
                        other => return Err(format!("line {line}: bad escape \\{other}")),
                    });
                }
                '"' => {
                    closed = true;
                    break;
                }
                '\n' => return Err(format!("line {line}: newline in a label value")),
                c => value.push(c),
            }
        }
        if !closed {
            return Err(format!("line {line}: unterminated label value"));
        }
        if out.insert(name.to_string(), value).is_some() {
            return Err(format!("line {line}: label {name} twice"));
        }
        rest = &after[used..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Ok(out)
}

/// The metric family a sample name belongs to (histogram and summary suffixes stripped when
/// such a TYPE was declared).
fn family<'a>(name: &'a str, types: &BTreeMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && matches!(
                types.get(base).map(String::as_str),
                Some("histogram" | "summary")
            )
        {
            return base;
        }
    }
    name
}

/// Parses `text` strictly; every sample, or the first problem.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helped = BTreeSet::new();
    let mut finished: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut series = BTreeSet::new();
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        if let Some(comment) = raw.strip_prefix('#') {
            let mut parts = comment.trim_start().splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    if !is_name(name) {
                        return Err(format!("line {n}: bad metric name {name:?}"));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(format!("line {n}: unknown type {kind:?}"));
                    }
                    if types.insert(name.to_string(), kind.to_string()).is_some() {
                        return Err(format!("line {n}: a second TYPE for {name}"));
                    }
                    if finished.contains(name) || current.as_deref() == Some(name) {
                        return Err(format!("line {n}: TYPE of {name} after its samples"));
                    }
                }
                (Some("HELP"), Some(name), _) => {
                    if !is_name(name) {
                        return Err(format!("line {n}: bad metric name {name:?}"));
                    }
                    if !helped.insert(name.to_string()) {
                        return Err(format!("line {n}: a second HELP for {name}"));
                    }
                }
                _ => {} // Other comments are allowed.
            }
            continue;
        }
        let (head, tail) = match raw.find('{') {
            Some(open) => {
                let close = raw
                    .rfind('}')
                    .ok_or(format!("line {n}: `{{` without `}}`"))?;
                (
                    (&raw[..open], Some(&raw[open + 1..close])),
                    raw[close + 1..].trim(),
                )
            }
            None => {
                let (name, rest) = raw
                    .split_once(' ')
                    .ok_or(format!("line {n}: a sample without a value"))?;
                ((name, None), rest.trim())
            }
        };
        let (name, label_text) = head;
        if !is_name(name) {
            return Err(format!("line {n}: bad metric name {name:?}"));
        }
        let labels = match label_text {
            Some(t) => labels(t, n)?,
            None => BTreeMap::new(),
        };
        let mut fields = tail.split_whitespace();
        let v = fields
            .next()
            .and_then(value)
            .ok_or(format!("line {n}: the value is not a number: {tail:?}"))?;
        if let Some(ts) = fields.next()
            && ts.parse::<i64>().is_err()
        {
            return Err(format!("line {n}: bad timestamp {ts:?}"));
        }
        if fields.next().is_some() {
            return Err(format!("line {n}: trailing text"));
        }
        let fam = family(name, &types).to_string();
        if current.as_deref() != Some(fam.as_str()) {
            if finished.contains(&fam) {
                return Err(format!("line {n}: samples of {fam} are not contiguous"));
            }
            if let Some(prev) = current.replace(fam.clone()) {
                finished.insert(prev);
            }
        }
        if types.get(&fam).map(String::as_str) == Some("counter") && v < 0.0 {
            return Err(format!("line {n}: counter {name} is negative"));
        }
        if !series.insert((name.to_string(), labels.clone())) {
            return Err(format!("line {n}: series {name}{labels:?} repeats"));
        }
        out.push(Sample {
            name: name.to_string(),
            labels,
            value: v,
        });
    }
    Ok(out)
}

/// The sum of the samples of `name` whose labels include all of `with`.
pub fn sum(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            with.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}
