//! Search filters, sorts and pages like HubSpot, including the 10,000-result cap (FACTS 2.5).

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::Harness;

async fn seed(h: &Harness, n: usize) {
    let inputs: Vec<Value> = (0..n)
        .map(|i| json!({"properties": {"email": format!("p{i:02}@x.io"), "lastname": "Pager", "firstname": format!("F{}", n - i)}}))
        .collect();
    let reply = h
        .post(
            "/crm/v3/objects/contacts/batch/create",
            json!({ "inputs": inputs }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
}

#[tokio::test]
async fn pages_cover_every_match_once_in_sort_order() {
    let h = Harness::unlimited().await;
    seed(&h, 7).await;
    h.create(
        "contacts",
        json!({"email": "other@x.io", "lastname": "Other"}),
    )
    .await;
    let mut after: Option<String> = None;
    let mut names = Vec::new();
    loop {
        let mut request = json!({
            "filterGroups": [{"filters": [{"propertyName": "lastname", "operator": "EQ", "value": "pager"}]}],
            "sorts": ["-firstname"],
            "properties": ["firstname"],
            "limit": 3,
        });
        if let Some(after) = &after {
            request["after"] = json!(after);
        }
        let page = h.post("/crm/v3/objects/contacts/search", request).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert_eq!(page.body["total"], 7);
        for r in page.body["results"].as_array().into_iter().flatten() {
            names.push(
                r["properties"]["firstname"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
        match page.body["paging"]["next"]["after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(names, ["F7", "F6", "F5", "F4", "F3", "F2", "F1"]);
}

#[tokio::test]
async fn operators_and_object_sorts() {
    let h = Harness::unlimited().await;
    for (name, amount) in [("small", "10"), ("mid", "200"), ("big", "3000")] {
        h.create("deals", json!({"dealname": name, "amount": amount}))
            .await;
    }
    let search = |filter: Value| {
        json!({"filterGroups": [{"filters": [filter]}],
               "sorts": [{"propertyName": "amount", "direction": "DESCENDING"}], "properties": ["dealname"]})
    };
    let names = |body: &Value| -> Vec<String> {
        body["results"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                r["properties"]["dealname"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    };
    let gt = h
        .post(
            "/crm/v3/objects/deals/search",
            search(json!({"propertyName": "amount", "operator": "GT", "value": "100"})),
        )
        .await;
    assert_eq!(
        names(&gt.body),
        ["big", "mid"],
        "numeric, not lexical, comparison"
    );
    let between = h
        .post("/crm/v3/objects/deals/search", search(json!({"propertyName": "amount", "operator": "BETWEEN", "value": "10", "highValue": "200"})))
        .await;
    assert_eq!(names(&between.body), ["mid", "small"]);
    let within = h
        .post(
            "/crm/v3/objects/deals/search",
            search(
                json!({"propertyName": "dealname", "operator": "IN", "values": ["big", "small"]}),
            ),
        )
        .await;
    assert_eq!(names(&within.body), ["big", "small"]);
    let missing = h
        .post(
            "/crm/v3/objects/deals/search",
            search(json!({"propertyName": "closedate", "operator": "NOT_HAS_PROPERTY"})),
        )
        .await;
    assert_eq!(missing.body["total"], 3);
    let token = h
        .post(
            "/crm/v3/objects/deals/search",
            search(
                json!({"propertyName": "dealname", "operator": "CONTAINS_TOKEN", "value": "bi*"}),
            ),
        )
        .await;
    assert_eq!(names(&token.body), ["big"]);
}

#[tokio::test]
async fn paging_past_ten_thousand_and_oversized_requests_are_400() {
    let h = Harness::unlimited().await;
    let beyond = h
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"after": "10000", "limit": 10}),
        )
        .await;
    assert_eq!(beyond.status, StatusCode::BAD_REQUEST);
    assert_eq!(beyond.error_category(), "VALIDATION_ERROR");

    let too_big = h
        .post("/crm/v3/objects/contacts/search", json!({"limit": 201}))
        .await;
    assert_eq!(too_big.status, StatusCode::BAD_REQUEST);

    let filter = json!({"propertyName": "email", "operator": "HAS_PROPERTY"});
    let groups: Vec<Value> = (0..6)
        .map(|_| json!({"filters": [filter.clone()]}))
        .collect();
    let many_groups = h
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"filterGroups": groups}),
        )
        .await;
    assert_eq!(
        many_groups.status,
        StatusCode::BAD_REQUEST,
        "more than 5 groups"
    );

    let group = json!({"filters": vec![filter.clone(); 7]});
    let many_filters = h
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"filterGroups": [group]}),
        )
        .await;
    assert_eq!(
        many_filters.status,
        StatusCode::BAD_REQUEST,
        "more than 6 filters in a group"
    );

    let ok_groups: Vec<Value> = (0..5)
        .map(|_| json!({"filters": vec![filter.clone(); 4]}))
        .collect();
    let total = h
        .post(
            "/crm/v3/objects/contacts/search",
            json!({"filterGroups": ok_groups}),
        )
        .await;
    assert_eq!(
        total.status,
        StatusCode::BAD_REQUEST,
        "20 filters exceed the total of 18"
    );
}

/// A top-level `filters` array (HubSpot accepts it) is one group whose filters all hold; it
/// never means "no filter" (an incremental reader once got every record back and lost one).
#[tokio::test]
async fn a_top_level_filters_array_is_one_and_group() {
    let h = Harness::unlimited().await;
    for (name, amount) in [("small", "10"), ("mid", "200"), ("big", "3000")] {
        h.create("deals", json!({"dealname": name, "amount": amount}))
            .await;
    }
    let page = h
        .post(
            "/crm/v3/objects/deals/search",
            json!({
                "filters": [
                    {"propertyName": "amount", "operator": "GT", "value": "50"},
                    {"propertyName": "amount", "operator": "LT", "value": "1000"}
                ],
                "properties": ["dealname"]
            }),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.body["total"], 1, "{}", page.body);
    assert_eq!(page.body["results"][0]["properties"]["dealname"], "mid");

    // Beside filterGroups it is one more group, ORed with them.
    let page = h
        .post(
            "/crm/v3/objects/deals/search",
            json!({
                "filterGroups": [{"filters": [{"propertyName": "dealname", "operator": "EQ", "value": "small"}]}],
                "filters": [{"propertyName": "dealname", "operator": "EQ", "value": "big"}],
                "properties": ["dealname"]
            }),
        )
        .await;
    assert_eq!(page.body["total"], 2, "{}", page.body);
}

/// The other body forms readers send: an empty body (every record, default properties), a
/// sort as a string (`-amount` descending), `limit` and `after` as strings or numbers, an empty
/// `filterGroups`, a filter value as a JSON number, and free-text `query`.
#[tokio::test]
async fn every_body_form_hubspot_accepts() {
    let h = Harness::unlimited().await;
    for (name, amount) in [("small", "10"), ("mid", "200"), ("big", "3000")] {
        h.create("deals", json!({"dealname": name, "amount": amount}))
            .await;
    }
    let names = |body: &Value| -> Vec<String> {
        body["results"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                r["properties"]["dealname"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    };
    let all = h.post("/crm/v3/objects/deals/search", json!({})).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    assert_eq!(all.body["total"], 3, "{}", all.body);
    assert!(
        all.body["results"][0]["properties"]["hs_object_id"].is_string(),
        "default properties come back: {}",
        all.body
    );
    let first = h
        .post(
            "/crm/v3/objects/deals/search",
            json!({"filterGroups": [], "sorts": ["-amount"], "limit": "2", "properties": ["dealname"]}),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(names(&first.body), ["big", "mid"]);
    let after = first.body["paging"]["next"]["after"].clone();
    assert!(after.is_string(), "the cursor is a string: {}", first.body);
    for cursor in [
        after.clone(),
        json!(after.as_str().unwrap_or("0").parse::<u64>().unwrap_or(0)),
    ] {
        let next = h
            .post(
                "/crm/v3/objects/deals/search",
                json!({"sorts": ["-amount"], "limit": 2, "after": cursor, "properties": ["dealname"]}),
            )
            .await;
        assert_eq!(names(&next.body), ["small"], "after = {cursor}");
    }
    let numeric = h
        .post(
            "/crm/v3/objects/deals/search",
            json!({"filterGroups": [{"filters": [{"propertyName": "amount", "operator": "GTE", "value": 200}]}], "properties": ["dealname"], "sorts": ["amount"]}),
        )
        .await;
    assert_eq!(names(&numeric.body), ["mid", "big"], "{}", numeric.body);
    let text = h
        .post(
            "/crm/v3/objects/deals/search",
            json!({"query": "mi", "properties": ["dealname"]}),
        )
        .await;
    assert_eq!(names(&text.body), ["mid"], "{}", text.body);
}
