//! Upserts by a unique property create once and update afterwards (FACTS 2.3, 2.7).

mod support;

use reqwest::StatusCode;
use serde_json::json;
use support::Harness;

#[tokio::test]
async fn upsert_by_email_creates_then_updates_the_same_record() {
    let h = Harness::unlimited().await;
    let body = |name: &str| json!({"inputs": [{"idProperty": "email", "id": "grace@navy.mil", "properties": {"firstname": name}}]});
    let first = h
        .post("/crm/v3/objects/contacts/batch/upsert", body("Grace"))
        .await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body["results"][0]["new"], true);
    assert_eq!(
        first.body["results"][0]["properties"]["email"],
        "grace@navy.mil"
    );
    let second = h
        .post("/crm/v3/objects/contacts/batch/upsert", body("Grace H."))
        .await;
    assert_eq!(second.body["results"][0]["new"], false);
    assert_eq!(
        second.body["results"][0]["id"],
        first.body["results"][0]["id"]
    );
    let again = h
        .post("/crm/v3/objects/contacts/batch/upsert", body("Grace H."))
        .await;
    assert_eq!(
        again.body["results"][0]["new"], false,
        "repeating is idempotent"
    );
    let list = h.get("/crm/v3/objects/contacts?properties=firstname").await;
    assert_eq!(list.body["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        list.body["results"][0]["properties"]["firstname"],
        "Grace H."
    );
}

#[tokio::test]
async fn custom_unique_property_drives_upsert_get_and_patch() {
    let h = Harness::unlimited().await;
    let prop = json!({"name": "app_id", "label": "App id", "type": "string", "fieldType": "text",
                      "groupName": "companyinformation", "hasUniqueValue": true});
    let created = h.post("/crm/v3/properties/companies", prop.clone()).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["hasUniqueValue"], true);
    let again = h.post("/crm/v3/properties/companies", prop).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.error_category(), "OBJECT_ALREADY_EXISTS");

    let upsert =
        json!({"inputs": [{"idProperty": "app_id", "id": "c-1", "properties": {"name": "Acme"}}]});
    let first = h
        .post("/crm/v3/objects/companies/batch/upsert", upsert)
        .await;
    assert_eq!(first.body["results"][0]["new"], true);
    let id = first.body["results"][0]["id"].clone();

    let got = h
        .get("/crm/v3/objects/companies/c-1?idProperty=app_id&properties=name,app_id")
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["id"], id);
    assert_eq!(got.body["properties"]["app_id"], "c-1");

    let patched = h
        .patch(
            "/crm/v3/objects/companies/c-1?idProperty=app_id",
            json!({"properties": {"name": "Acme GmbH"}}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(patched.body["properties"]["name"], "Acme GmbH");

    let dup = h
        .post(
            "/crm/v3/objects/companies",
            json!({"properties": {"name": "Other", "app_id": "c-1"}}),
        )
        .await;
    // HubSpot refuses a taken `hasUniqueValue` value with 400, not 409 (only a contact's
    // e-mail is a 409): see tests/batch_create_associations.rs.
    assert_eq!(
        dup.status,
        StatusCode::BAD_REQUEST,
        "unique values stay unique: {}",
        dup.body
    );
    assert!(
        dup.body["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("already has that value.")),
        "{}",
        dup.body
    );

    let not_unique = h
        .get("/crm/v3/objects/companies/Acme?idProperty=name")
        .await;
    assert_eq!(
        not_unique.status,
        StatusCode::BAD_REQUEST,
        "idProperty must be a unique property"
    );
}

#[tokio::test]
async fn batch_read_reports_missing_ids_with_207() {
    let h = Harness::unlimited().await;
    let id = h.create("contacts", json!({"email": "r@x.io"})).await;
    let reply = h
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({"inputs": [{"id": id}, {"id": "424242"}], "properties": ["email"]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::MULTI_STATUS);
    assert_eq!(reply.body["results"][0]["properties"]["email"], "r@x.io");
    assert_eq!(reply.body["numErrors"], 1);
    assert_eq!(reply.body["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(reply.body["errors"][0]["context"]["ids"][0], "424242");
}

#[tokio::test]
async fn duplicate_email_inside_one_batch_writes_nothing() {
    let h = Harness::unlimited().await;
    h.create("contacts", json!({"email": "taken@x.io"})).await;
    let inputs = json!({"inputs": [{"properties": {"email": "fresh@x.io"}}, {"properties": {"email": "taken@x.io"}}]});
    let reply = h
        .post("/crm/v3/objects/contacts/batch/create", inputs)
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    let fresh = h
        .get("/crm/v3/objects/contacts/fresh@x.io?idProperty=email")
        .await;
    assert_eq!(
        fresh.status,
        StatusCode::NOT_FOUND,
        "the batch failed as a whole"
    );
}
