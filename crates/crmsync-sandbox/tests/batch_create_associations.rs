//! `POST /crm/v3/objects/{o}/batch/create` with `associations` per input (FACTS 2.3, 2.6), over a
//! real socket: the associations are made with the records, a bad type id or a missing target
//! refuses the whole request before anything is written, and a value of a `hasUniqueValue`
//! property that another record holds is refused the way HubSpot refuses it (400
//! `VALIDATION_ERROR`, "… already has that value.", `errorType` `UNIQUE_VALUE_CONFLICT`).

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::Harness;

/// A portal with a unique `app_id` on deals, and one company.
async fn portal() -> (Harness, String) {
    let h = Harness::unlimited().await;
    let prop = json!({"name": "app_id", "label": "App id", "type": "string", "fieldType": "text",
                      "groupName": "dealinformation", "hasUniqueValue": true});
    let created = h.post("/crm/v3/properties/deals", prop).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let company = h.create("companies", json!({"name": "Acme"})).await;
    (h, company)
}

fn deal(key: &str, company: &str, type_id: u32) -> Value {
    json!({
        "properties": {"dealname": format!("Order {key}"), "app_id": key},
        "associations": [{"to": {"id": company},
                          "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                     "associationTypeId": type_id}]}]
    })
}

async fn companies_of(h: &Harness, deal: &str) -> Vec<String> {
    let reply = h
        .get(&format!(
            "/crm/v4/objects/deals/{deal}/associations/companies"
        ))
        .await;
    reply.body["results"]
        .as_array()
        .map(|rs| rs.iter().map(|r| r["toObjectId"].to_string()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn created_records_carry_their_associations() {
    let (h, company) = portal().await;
    let reply = h
        .post(
            "/crm/v3/objects/deals/batch/create",
            json!({"inputs": [deal("o-1", &company, 341), deal("o-2", &company, 341)]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["status"], "COMPLETE");
    let results = reply.body["results"].as_array().expect("results");
    assert_eq!(results.len(), 2);
    for r in results {
        let id = r["id"].as_str().expect("id");
        assert_eq!(companies_of(&h, id).await, vec![company.clone()]);
    }
    // Symmetric: the company sees both deals.
    let back = h
        .get(&format!(
            "/crm/v4/objects/companies/{company}/associations/deals"
        ))
        .await;
    assert_eq!(back.body["results"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn a_missing_target_or_an_unknown_type_writes_nothing() {
    let (h, company) = portal().await;
    let missing = h
        .post(
            "/crm/v3/objects/deals/batch/create",
            json!({"inputs": [deal("o-1", &company, 341), deal("o-2", "999999", 341)]}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST, "{}", missing.body);
    assert_eq!(missing.error_category(), "VALIDATION_ERROR");
    let unknown = h
        .post(
            "/crm/v3/objects/deals/batch/create",
            json!({"inputs": [deal("o-1", &company, 279)]}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.body);
    let first = h.get("/crm/v3/objects/deals/o-1?idProperty=app_id").await;
    assert_eq!(
        first.status,
        StatusCode::NOT_FOUND,
        "nothing of either batch was written"
    );
}

#[tokio::test]
async fn a_taken_unique_value_is_refused_as_hubspot_does() {
    let (h, company) = portal().await;
    let first = h
        .post(
            "/crm/v3/objects/deals/batch/create",
            json!({"inputs": [deal("o-1", &company, 341)]}),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let existing = first.body["results"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();

    // The same key again (a create whose answer was lost), next to a fresh one.
    let again = h
        .post(
            "/crm/v3/objects/deals/batch/create",
            json!({"inputs": [deal("o-2", &company, 341), deal("o-1", &company, 341)]}),
        )
        .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "{}", again.body);
    assert_eq!(again.error_category(), "VALIDATION_ERROR");
    assert_eq!(again.body["errorType"], "UNIQUE_VALUE_CONFLICT");
    let message = again.body["message"].as_str().expect("message");
    assert!(
        message.starts_with("Cannot set PropertyValueCoordinates{")
            && message.contains("propertyName=app_id, value=o-1}")
            && message.ends_with(&format!("{existing} already has that value.")),
        "{message}"
    );
    assert_eq!(again.body["errorTokens"]["existingObjectId"][0], existing);
    let fresh = h.get("/crm/v3/objects/deals/o-2?idProperty=app_id").await;
    assert_eq!(
        fresh.status,
        StatusCode::NOT_FOUND,
        "the whole request failed"
    );
    assert_eq!(companies_of(&h, &existing).await, vec![company]);
}

#[tokio::test]
async fn batch_read_by_the_unique_property_tells_which_keys_exist() {
    let (h, company) = portal().await;
    h.post(
        "/crm/v3/objects/deals/batch/create",
        json!({"inputs": [deal("o-1", &company, 341)]}),
    )
    .await;
    let reply = h
        .post(
            "/crm/v3/objects/deals/batch/read",
            json!({"idProperty": "app_id", "properties": ["app_id"],
                   "inputs": [{"id": "o-1"}, {"id": "o-9"}]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::MULTI_STATUS, "{}", reply.body);
    assert_eq!(reply.body["results"][0]["properties"]["app_id"], "o-1");
    assert_eq!(reply.body["errors"][0]["context"]["ids"][0], "o-9");
}
