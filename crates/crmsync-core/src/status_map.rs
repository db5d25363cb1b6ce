//! Status maps (`map = { paid = "contractsent", shipped = "closedwon", delivered = "closedwon" }`):
//! many app values may share one CRM value. Pushing is a lookup; pulling back needs a single app
//! value per CRM value, so a shared CRM value must be given one in `reverse` when the field
//! pulls. This file holds both directions and the consistency rules the config validation uses.

use crate::config::FieldConfig;
use std::collections::BTreeMap;

/// CRM value -> the app values mapping to it, for the CRM values shared by several.
pub fn shared(map: &BTreeMap<String, String>) -> BTreeMap<&str, Vec<&str>> {
    let mut by_crm: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (app, crm) in map {
        by_crm.entry(crm.as_str()).or_default().push(app.as_str());
    }
    by_crm.retain(|_, apps| apps.len() > 1);
    by_crm
}

/// The CRM value for app `value`, or a message listing the mapped values.
pub fn forward<'m>(field: &'m FieldConfig, value: &str) -> Result<Option<&'m str>, String> {
    let Some(map) = &field.map else {
        return Ok(None);
    };
    map.get(value).map(|v| Some(v.as_str())).ok_or_else(|| {
        let known: Vec<&str> = map.keys().map(String::as_str).collect();
        format!(
            "value `{value}` has no mapping to `{}`; mapped values: {}",
            field.crm,
            known.join(", ")
        )
    })
}

/// The app value a CRM value pulls back as: `reverse` first, then the one app value mapping to
/// it. Without a `map` the value passes through unchanged. An unmapped CRM value is an error.
pub fn back(field: &FieldConfig, crm_value: &str) -> Result<String, String> {
    let Some(map) = &field.map else {
        return Ok(crm_value.to_string());
    };
    if let Some(app) = field.reverse.as_ref().and_then(|r| r.get(crm_value)) {
        return Ok(app.clone());
    }
    let apps: Vec<&str> = map
        .iter()
        .filter(|(_, crm)| crm.as_str() == crm_value)
        .map(|(app, _)| app.as_str())
        .collect();
    match apps.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(format!(
            "`{}` value `{crm_value}` has no mapping back to the app; mapped CRM values: {}",
            field.crm,
            map.values()
                .map(String::as_str)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(", ")
        )),
        many => Err(format!(
            "`{}` value `{crm_value}` is the CRM value of {}; choose one in `reverse`",
            field.crm,
            many.join(", ")
        )),
    }
}

/// Problems of a field's `map`/`reverse` pair as `(key, message)`; `pulls` is whether the
/// field flows CRM -> app.
pub fn problems(field: &FieldConfig, pulls: bool) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let Some(map) = &field.map else {
        if field.reverse.is_some() {
            out.push(("reverse", "`reverse` needs a `map` to reverse".to_string()));
        }
        return out;
    };
    if map.is_empty() {
        out.push((
            "map",
            "the map is empty; map at least one app value".to_string(),
        ));
    }
    let empty = BTreeMap::new();
    let reverse = field.reverse.as_ref().unwrap_or(&empty);
    for (crm, app) in reverse {
        match map.get(app) {
            Some(target) if target == crm => {}
            Some(target) => out.push((
                "reverse",
                format!("`{crm} = \"{app}\"`: the map sends `{app}` to `{target}`, not to `{crm}`"),
            )),
            None => out.push((
                "reverse",
                format!("`{crm} = \"{app}\"`: `{app}` is not a key of the map"),
            )),
        }
    }
    if pulls {
        for (crm, apps) in shared(map) {
            if !reverse.contains_key(crm) {
                out.push((
                    "reverse",
                    format!(
                        "`{crm}` is the CRM value of {}, and this field pulls: choose the app value it comes back as, e.g. `reverse = {{ {crm} = \"{}\" }}`",
                        apps.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(" and "),
                        apps[0]
                    ),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw::RawConfig;

    fn field(extra: &str) -> FieldConfig {
        let raw: RawConfig = toml::from_str(&format!(
            r#"
            source = {{ url = "sqlite://a.db" }}
            crm = {{ environment = "sandbox", kind = "hubspot", token_env = "T" }}
            [[sync]]
            name = "deals"
            table = "orders"
            object = "deals"
            [sync.fields]
            status = {{ crm = "dealstage", map = {{ new = "appointmentscheduled", shipped = "closedwon", delivered = "closedwon" }}{extra} }}
            "#
        ))
        .expect("test config parses");
        raw.syncs[0].fields["status"].clone()
    }

    #[test]
    fn many_to_one_pushes_and_pulls_back_through_reverse() {
        let f = field(", reverse = { closedwon = \"shipped\" }");
        assert_eq!(forward(&f, "delivered"), Ok(Some("closedwon")));
        assert_eq!(forward(&f, "shipped"), Ok(Some("closedwon")));
        assert_eq!(back(&f, "closedwon").as_deref(), Ok("shipped"));
        assert_eq!(back(&f, "appointmentscheduled").as_deref(), Ok("new"));
        let e = back(&f, "closedlost").expect_err("must fail");
        assert!(
            e.contains("closedlost") && e.contains("no mapping back"),
            "{e}"
        );
        assert!(
            forward(&f, "lost")
                .expect_err("must fail")
                .contains("no mapping")
        );
        assert!(problems(&f, true).is_empty());
    }

    #[test]
    fn a_pulling_many_to_one_map_needs_a_reverse_choice() {
        let f = field("");
        assert!(problems(&f, false).is_empty(), "push-only needs no reverse");
        let p = problems(&f, true);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].1.contains("`shipped` and `delivered`")
                || p[0].1.contains("`delivered` and `shipped`"),
            "{p:?}"
        );
        assert!(
            back(&f, "closedwon")
                .expect_err("must fail")
                .contains("choose one")
        );
    }

    #[test]
    fn reverse_entries_must_agree_with_the_map() {
        let f = field(", reverse = { closedwon = \"new\", closedlost = \"lost\" }");
        let p = problems(&f, true);
        assert_eq!(p.len(), 2, "{p:?}");
    }
}
