//! Reading HubSpot webhook events (FACTS 2.11: `subscriptionType` is `<object>.<kind>`, or
//! `object.<kind>` with an `objectTypeId` for the generic subscriptions) into the neutral
//! [`CrmEvent`]. The engine treats events as hints and reads the records back, so only the
//! object, the kind, the records concerned and a property change's value are kept.

use crate::{CrmEvent, ObjectKind};
use serde_json::Value;

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads one stored event; `None` for objects we don't sync (tickets, conversations, ...) and
/// for bodies that are not events.
pub fn parse_event(body: &str) -> Option<CrmEvent> {
    let v: Value = serde_json::from_str(body).ok()?;
    let (prefix, kind) = v["subscriptionType"].as_str()?.split_once('.')?;
    let object = match prefix {
        "contact" => ObjectKind::Contacts,
        "company" => ObjectKind::Companies,
        "deal" => ObjectKind::Deals,
        "line_item" => ObjectKind::LineItems,
        "product" => ObjectKind::Products,
        "object" => match v["objectTypeId"].as_str()? {
            "0-1" => ObjectKind::Contacts,
            "0-2" => ObjectKind::Companies,
            "0-3" => ObjectKind::Deals,
            "0-7" => ObjectKind::Products,
            "0-8" => ObjectKind::LineItems,
            _ => return None,
        },
        _ => return None,
    };
    let mut ids: Vec<String> = ["objectId", "primaryObjectId", "newObjectId"]
        .iter()
        .filter_map(|k| id_text(&v[*k]))
        .collect();
    if let Some(merged) = v["mergedObjectIds"].as_array() {
        ids.extend(merged.iter().filter_map(id_text));
    }
    ids.sort();
    ids.dedup();
    let property = match (v["propertyName"].as_str(), &v["propertyValue"]) {
        (Some(name), Value::String(value)) => Some((name.to_string(), value.clone())),
        (Some(name), Value::Null) => Some((name.to_string(), String::new())),
        (Some(name), other) => Some((name.to_string(), other.to_string())),
        _ => None,
    };
    Some(CrmEvent {
        object,
        kind: kind.to_string(),
        ids,
        property,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_name_their_object_and_records() {
        let e = parse_event(
            r#"{"eventId":1,"subscriptionType":"contact.propertyChange","objectId":12,"propertyName":"email","propertyValue":"a@b.com"}"#,
        )
        .expect("a contact event");
        assert_eq!(e.object, ObjectKind::Contacts);
        assert_eq!(e.kind, "propertyChange");
        assert_eq!(e.ids, vec!["12".to_string()]);
        assert_eq!(e.property, Some(("email".into(), "a@b.com".into())));

        let m = parse_event(
            r#"{"eventId":2,"subscriptionType":"company.merge","objectId":5,"primaryObjectId":5,"mergedObjectIds":[7,8],"newObjectId":5}"#,
        )
        .expect("a merge");
        assert_eq!(m.ids, vec!["5".to_string(), "7".into(), "8".into()]);

        let g = parse_event(
            r#"{"subscriptionType":"object.deletion","objectTypeId":"0-3","objectId":"9"}"#,
        )
        .expect("a generic deal event");
        assert_eq!(g.object, ObjectKind::Deals);
        let li = parse_event(r#"{"subscriptionType":"line_item.propertyChange","objectId":3}"#)
            .expect("a line item event");
        assert_eq!(li.object, ObjectKind::LineItems);
        let p = parse_event(
            r#"{"subscriptionType":"object.creation","objectTypeId":"0-7","objectId":4}"#,
        )
        .expect("a generic product event");
        assert_eq!(p.object, ObjectKind::Products);
        assert!(parse_event(r#"{"subscriptionType":"ticket.creation","objectId":1}"#).is_none());
        assert!(parse_event("not json").is_none());
    }
}
