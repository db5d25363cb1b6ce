//! Record envelope, property selection, list paging and archive semantics (FACTS 2.2–2.4).

mod support;

use reqwest::StatusCode;
use serde_json::json;
use support::Harness;

#[tokio::test]
async fn envelope_and_property_selection() {
    let h = Harness::unlimited().await;
    let id = h
        .create(
            "companies",
            json!({"name": "Acme", "domain": "acme.io", "city": "Berlin"}),
        )
        .await;
    let got = h.get(&format!("/crm/v3/objects/0-2/{id}")).await;
    assert_eq!(got.status, StatusCode::OK);
    let props = got.body["properties"]
        .as_object()
        .expect("properties object");
    let mut names: Vec<&String> = props.keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "createdate",
            "domain",
            "hs_lastmodifieddate",
            "hs_object_id",
            "name"
        ],
        "default set"
    );
    assert_eq!(props["hs_object_id"], id.as_str());
    let modified = props["hs_lastmodifieddate"].as_str().unwrap_or_default();
    assert!(
        modified.ends_with('Z') && modified.len() == 24,
        "ISO-8601 with millis: {modified}"
    );
    assert_eq!(got.body["archived"], false);

    let picked = h
        .get(&format!(
            "/crm/v3/objects/companies/{id}?properties=city&properties=phone,no_such_prop"
        ))
        .await;
    assert_eq!(picked.body["properties"]["city"], "Berlin");
    assert_eq!(
        picked.body["properties"]["phone"],
        serde_json::Value::Null,
        "unset requested property is null"
    );
    assert!(
        picked.body["properties"].get("no_such_prop").is_none(),
        "unknown names are ignored"
    );
}

#[tokio::test]
async fn list_pages_by_cursor_and_archived_records_are_separate() {
    let h = Harness::unlimited().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            h.create("deals", json!({"dealname": format!("d{i}")}))
                .await,
        );
    }
    let first = h.get("/crm/v3/objects/deals?limit=3").await;
    assert_eq!(first.body["results"].as_array().map(Vec::len), Some(3));
    let after = first.body["paging"]["next"]["after"]
        .as_str()
        .expect("next cursor")
        .to_owned();
    let second = h
        .get(&format!("/crm/v3/objects/deals?limit=3&after={after}"))
        .await;
    assert_eq!(second.body["results"].as_array().map(Vec::len), Some(2));
    assert!(
        second.body.get("paging").is_none(),
        "last page has no paging"
    );
    assert_eq!(
        h.get("/crm/v3/objects/deals?limit=101").await.status,
        StatusCode::BAD_REQUEST
    );

    assert_eq!(
        h.delete(&format!("/crm/v3/objects/deals/{}", ids[0]))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        h.get(&format!("/crm/v3/objects/deals/{}", ids[0]))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let archived = h
        .get(&format!("/crm/v3/objects/deals/{}?archived=true", ids[0]))
        .await;
    assert_eq!(archived.body["archived"], true);
    assert!(archived.body["archivedAt"].is_string());
    let only_archived = h.get("/crm/v3/objects/deals?archived=true").await;
    assert_eq!(
        only_archived.body["results"].as_array().map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn patch_updates_and_clears_and_merge_keeps_the_primary() {
    let h = Harness::unlimited().await;
    let a = h
        .create("contacts", json!({"email": "a@x.io", "firstname": "A"}))
        .await;
    let b = h
        .create(
            "contacts",
            json!({"email": "b@x.io", "lastname": "B", "city": "Rome"}),
        )
        .await;
    let patched = h
        .patch(
            &format!("/crm/v3/objects/contacts/{a}"),
            json!({"properties": {"firstname": ""}}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(
        patched.body["properties"]["firstname"],
        serde_json::Value::Null,
        "empty string clears"
    );

    let merged = h
        .post(
            "/crm/v3/objects/contacts/merge",
            json!({"primaryObjectId": a, "objectIdToMerge": b}),
        )
        .await;
    assert_eq!(merged.status, StatusCode::OK);
    assert_eq!(merged.body["id"], a.as_str());
    let survivor = h
        .get(&format!(
            "/crm/v3/objects/contacts/{b}?properties=city,email,hs_merged_object_ids"
        ))
        .await;
    assert_eq!(
        survivor.body["id"],
        a.as_str(),
        "the absorbed id resolves to the survivor"
    );
    assert_eq!(survivor.body["properties"]["email"], "a@x.io");
    assert_eq!(survivor.body["properties"]["city"], "Rome");
    assert_eq!(
        survivor.body["properties"]["hs_merged_object_ids"],
        b.as_str()
    );
}

#[tokio::test]
async fn pipelines_and_properties_are_served() {
    let h = Harness::unlimited().await;
    let pipeline = h.get("/crm/v3/pipelines/deals/default").await;
    let stages: Vec<&str> = pipeline.body["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(stages.len(), 7);
    assert_eq!(
        pipeline.body["stages"][5]["metadata"],
        json!({"isClosed": "true", "probability": "1.0"})
    );
    let prop = h.get("/crm/v3/properties/contacts/lastmodifieddate").await;
    assert_eq!(prop.body["type"], "datetime");
    let account = h.get("/account-info/v3/details").await;
    assert_eq!(account.body["portalId"], 62515, "default portal id");
    let groups = h.get("/crm/v3/properties/deals/groups").await;
    assert_eq!(groups.body["results"][0]["name"], "dealinformation");
}
