//! Exactness knobs: configurable search filter limits, search-index lag,
//! `propertiesWithHistory`, repeated and comma-separated `properties`, 207 on partial batch
//! failures.

mod support;

use std::time::{Duration, Instant};

use crmsync_sandbox::SandboxConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Harness, TOKEN, eventually};

fn groups(n: usize) -> Value {
    let group = json!({"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}]});
    json!({"filterGroups": vec![group; n]})
}

#[tokio::test]
async fn filter_group_limits_default_to_the_strictest_and_are_configurable() {
    let strict = Harness::unlimited().await;
    let five = strict
        .post("/crm/v3/objects/contacts/search", groups(5))
        .await;
    assert_eq!(five.status, StatusCode::OK);
    let six = strict
        .post("/crm/v3/objects/contacts/search", groups(6))
        .await;
    assert_eq!(six.status, StatusCode::BAD_REQUEST);
    assert!(
        six.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("maximum is 5")
    );

    let lenient = Harness::start(SandboxConfig {
        token: Some(TOKEN.to_owned()),
        search_max_filter_groups: 6,
        search_max_filters: 25,
        ..SandboxConfig::unlimited()
    })
    .await;
    let six = lenient
        .post("/crm/v3/objects/contacts/search", groups(6))
        .await;
    assert_eq!(six.status, StatusCode::OK, "{}", six.body);
}

#[tokio::test]
async fn search_sees_records_only_after_the_index_lag() {
    let h = Harness::start(SandboxConfig {
        token: Some(TOKEN.to_owned()),
        search_lag_ms: 400,
        ..SandboxConfig::unlimited()
    })
    .await;
    let written = Instant::now();
    let id = h.create("contacts", json!({"email": "lag@x.io"})).await;
    let get = h.get(&format!("/crm/v3/objects/contacts/{id}")).await;
    assert_eq!(get.status, StatusCode::OK, "GET sees the record at once");
    let search = json!({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": "lag@x.io"}]}]});
    let early = h
        .post("/crm/v3/objects/contacts/search", search.clone())
        .await;
    if written.elapsed() < Duration::from_millis(400) {
        assert_eq!(early.body["total"], 0, "not indexed yet");
    }
    eventually(
        "the record to be indexed",
        Duration::from_secs(5),
        || async {
            let reply = h
                .post("/crm/v3/objects/contacts/search", search.clone())
                .await;
            (reply.body["total"] == 1).then_some(())
        },
    )
    .await;
    assert!(written.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn properties_with_history_lists_versions_newest_first() {
    let h = Harness::unlimited().await;
    let id = h
        .create("contacts", json!({"email": "h@x.io", "firstname": "One"}))
        .await;
    h.patch(
        &format!("/crm/v3/objects/contacts/{id}"),
        json!({"properties": {"firstname": "Two"}}),
    )
    .await;
    let reply = h
        .get(&format!(
            "/crm/v3/objects/contacts/{id}?propertiesWithHistory=firstname&propertiesWithHistory=hs_object_id"
        ))
        .await;
    let versions = &reply.body["propertiesWithHistory"]["firstname"];
    assert_eq!(versions[0]["value"], "Two");
    assert_eq!(versions[1]["value"], "One");
    assert_eq!(versions[0]["sourceType"], "INTEGRATION");
    assert!(versions[0]["timestamp"].is_string());
    assert_eq!(
        reply.body["propertiesWithHistory"]["hs_object_id"][0]["value"],
        id.as_str()
    );

    let batch = h
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({"inputs": [{"id": id}], "properties": ["email"], "propertiesWithHistory": ["firstname"]}),
        )
        .await;
    assert_eq!(
        batch.body["results"][0]["propertiesWithHistory"]["firstname"][0]["value"],
        "Two"
    );
    let list = h
        .get("/crm/v3/objects/contacts?propertiesWithHistory=firstname")
        .await;
    assert_eq!(
        list.body["results"][0]["propertiesWithHistory"]["firstname"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

#[tokio::test]
async fn properties_may_be_repeated_or_comma_separated() {
    let h = Harness::unlimited().await;
    let id = h
        .create(
            "contacts",
            json!({"email": "p@x.io", "firstname": "F", "lastname": "L", "phone": "1"}),
        )
        .await;
    for query in [
        "properties=firstname,phone",
        "properties=firstname&properties=phone",
    ] {
        let reply = h
            .get(&format!("/crm/v3/objects/contacts/{id}?{query}"))
            .await;
        let properties = &reply.body["properties"];
        assert_eq!(properties["firstname"], "F", "{query}");
        assert_eq!(properties["phone"], "1", "{query}");
        assert!(
            properties.get("lastname").is_none(),
            "{query}: only what was asked"
        );
    }
}

#[tokio::test]
async fn partial_batch_failures_answer_207() {
    let h = Harness::unlimited().await;
    let id = h.create("companies", json!({"name": "Real"})).await;
    let update = h
        .post(
            "/crm/v3/objects/companies/batch/update",
            json!({"inputs": [{"id": id, "properties": {"name": "Renamed"}}, {"id": "999999", "properties": {"name": "Ghost"}}]}),
        )
        .await;
    assert_eq!(update.status, StatusCode::MULTI_STATUS);
    assert_eq!(update.body["numErrors"], 1);
    assert_eq!(update.body["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(update.body["results"][0]["properties"]["name"], "Renamed");
    let assoc = h
        .post(
            "/crm/v4/associations/companies/contacts/batch/read",
            json!({"inputs": [{"id": id}, {"id": "999999"}]}),
        )
        .await;
    assert_eq!(assoc.status, StatusCode::MULTI_STATUS);
}
