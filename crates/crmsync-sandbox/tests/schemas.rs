//! Custom object schemas over real sockets: an empty list on a new portal, create (201 with
//! `id`, `objectTypeId` `2-N`, `fullyQualifiedName`), validation of names, labels, properties
//! and the display/required lists, read by type id / fully qualified name, PATCH, archive and
//! purge, and schemas surviving a restart.

mod support;

use std::time::Duration;

use crmsync_sandbox::SandboxConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Harness, TOKEN, eventually};

fn cars() -> Value {
    json!({
        "name": "cars",
        "labels": {"singular": "Car", "plural": "Cars"},
        "primaryDisplayProperty": "model",
        "requiredProperties": ["model"],
        "searchableProperties": ["model", "vin"],
        "secondaryDisplayProperties": ["year"],
        "properties": [
            {"name": "model", "label": "Model", "type": "string", "fieldType": "text"},
            {"name": "vin", "label": "VIN", "type": "string", "fieldType": "text", "hasUniqueValue": true},
            {"name": "year", "label": "Year", "type": "number", "fieldType": "number"},
            {"name": "fuel", "label": "Fuel", "type": "enumeration", "fieldType": "select",
             "options": [{"label": "Petrol", "value": "petrol"}, {"label": "Electric", "value": "electric"}]},
        ],
        "associatedObjects": ["CONTACT", "0-2"],
    })
}

#[tokio::test]
async fn schemas_are_created_read_updated_and_archived() {
    let h = Harness::unlimited().await;
    let empty = h.get("/crm/v3/schemas").await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.body, json!({"results": []}));

    let created = h.post("/crm/v3/schemas", cars()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let body = &created.body;
    assert_eq!(body["objectTypeId"], "2-1");
    assert_eq!(body["fullyQualifiedName"], "p62515_cars");
    assert!(body["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(body["labels"], json!({"singular": "Car", "plural": "Cars"}));
    assert_eq!(body["requiredProperties"], json!(["model"]));
    let names: Vec<&str> = body["properties"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for wanted in ["hs_object_id", "model", "vin", "year", "fuel"] {
        assert!(names.contains(&wanted), "{wanted}: {names:?}");
    }
    let targets: Vec<&str> = body["associations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["toObjectTypeId"].as_str())
        .collect();
    assert_eq!(targets, ["0-1", "0-2"]);
    assert_eq!(body["associations"][0]["fromObjectTypeId"], "2-1");

    let again = h.post("/crm/v3/schemas", cars()).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.error_category(), "OBJECT_ALREADY_EXISTS");

    let by_id = h.get("/crm/v3/schemas/2-1").await;
    assert_eq!(by_id.status, StatusCode::OK);
    assert_eq!(by_id.body["name"], "cars");
    let by_fqn = h.get("/crm-object-schemas/v3/schemas/p62515_cars").await;
    assert_eq!(by_fqn.body["objectTypeId"], "2-1");
    let listed = h.get("/crm/v3/schemas").await;
    assert_eq!(listed.body["results"].as_array().map(Vec::len), Some(1));

    let patched = h
        .patch(
            "/crm/v3/schemas/2-1",
            json!({"labels": {"plural": "Automobiles"}, "secondaryDisplayProperties": ["vin"]}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(
        patched.body["labels"],
        json!({"singular": "Car", "plural": "Automobiles"})
    );
    assert_eq!(patched.body["secondaryDisplayProperties"], json!(["vin"]));
    let bad_patch = h
        .patch(
            "/crm/v3/schemas/2-1",
            json!({"primaryDisplayProperty": "colour"}),
        )
        .await;
    assert_eq!(bad_patch.status, StatusCode::BAD_REQUEST);

    // A second schema gets the next type id; records of custom objects are not served.
    let mut boats = cars();
    boats["name"] = json!("boats");
    boats["associatedObjects"] = json!(["cars"]);
    let boats = h.post("/crm/v3/schemas", boats).await;
    assert_eq!(boats.status, StatusCode::CREATED, "{}", boats.body);
    assert_eq!(boats.body["objectTypeId"], "2-2");
    assert_eq!(boats.body["associations"][0]["toObjectTypeId"], "2-1");
    let records = h.get("/crm/v3/objects/2-1").await;
    assert_eq!(records.status, StatusCode::BAD_REQUEST);

    let archived = h.delete("/crm/v3/schemas/2-1").await;
    assert_eq!(archived.status, StatusCode::NO_CONTENT);
    assert_eq!(
        h.get("/crm/v3/schemas/2-1").await.status,
        StatusCode::NOT_FOUND
    );
    let bin = h.get("/crm/v3/schemas?archived=true").await;
    assert_eq!(bin.body["results"][0]["archived"], true);
    // The name stays taken until the archived schema is purged.
    assert_eq!(
        h.post("/crm/v3/schemas", cars()).await.status,
        StatusCode::CONFLICT
    );
    let purged = h.delete("/crm/v3/schemas/2-1?archived=true").await;
    assert_eq!(purged.status, StatusCode::NO_CONTENT);
    let recreated = h.post("/crm/v3/schemas", cars()).await;
    assert_eq!(recreated.status, StatusCode::CREATED);
    assert_eq!(
        recreated.body["objectTypeId"], "2-3",
        "type ids are never reused"
    );
    assert_eq!(
        h.delete("/crm/v3/schemas/2-99").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn invalid_schemas_are_refused_with_every_problem() {
    let h = Harness::unlimited().await;
    let bad = h
        .post(
            "/crm/v3/schemas",
            json!({
                "name": "9lives",
                "labels": {"singular": "Cat"},
                "primaryDisplayProperty": "missing",
                "requiredProperties": ["nope"],
                "properties": [
                    {"name": "Colour", "label": "Colour", "type": "colour", "fieldType": "text"},
                    {"name": "kind", "label": "Kind", "type": "enumeration", "fieldType": "select"},
                ],
                "associatedObjects": ["quotes"],
            }),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.error_category(), "VALIDATION_ERROR");
    let message = bad.body["message"].as_str().unwrap_or_default();
    for part in [
        "name must start",
        "labels.plural",
        "type must be one of",
        "options are required",
        "quotes",
        "primaryDisplayProperty",
        "requiredProperties",
    ] {
        assert!(message.contains(part), "{part}: {message}");
    }
    assert_eq!(h.get("/crm/v3/schemas").await.body, json!({"results": []}));
}

#[tokio::test]
async fn schemas_survive_a_restart_and_go_on_reset() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("portal.json");
    let config = || SandboxConfig {
        token: Some(TOKEN.to_owned()),
        state_file: Some(path.clone()),
        ..SandboxConfig::unlimited()
    };
    let h = Harness::start(config()).await;
    assert_eq!(
        h.post("/crm/v3/schemas", cars()).await.status,
        StatusCode::CREATED
    );
    eventually("the save", Duration::from_secs(5), || async {
        let text = std::fs::read_to_string(&path).ok()?;
        text.contains("p62515_cars").then_some(())
    })
    .await;
    h.sandbox.shutdown().await;

    let h = Harness::start(config()).await;
    assert_eq!(h.get("/crm/v3/schemas/cars").await.status, StatusCode::OK);
    let mut other = cars();
    other["name"] = json!("vans");
    assert_eq!(
        h.post("/crm/v3/schemas", other).await.body["objectTypeId"],
        "2-2"
    );
    h.send(reqwest::Method::POST, "/_sandbox/reset", None, None)
        .await;
    assert_eq!(h.get("/crm/v3/schemas").await.body, json!({"results": []}));
}
