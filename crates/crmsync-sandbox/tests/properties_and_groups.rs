//! Property definitions and property groups over real sockets: update, archive, batch
//! create/read/archive, the group CRUD, the rules HubSpot enforces (a property names an
//! existing group, `hasUniqueValue` never changes, HubSpot-defined definitions are read-only,
//! option values are unique), and that definitions survive a restart and go on reset.

mod support;

use std::time::Duration;

use crmsync_sandbox::SandboxConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Harness, TOKEN, eventually};

fn tier(name: &str, group: &str) -> Value {
    json!({
        "name": name, "label": "Tier", "type": "enumeration", "fieldType": "select",
        "groupName": group,
        "options": [{"label": "Gold", "value": "gold"}, {"label": "Silver", "value": "silver"}],
    })
}

fn names(listing: &Value) -> Vec<String> {
    listing["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn groups_are_created_read_updated_and_archived() {
    let h = Harness::unlimited().await;
    let defaults = h.get("/crm/v3/properties/contacts/groups").await;
    assert_eq!(defaults.status, StatusCode::OK);
    assert!(names(&defaults.body).contains(&"contactinformation".to_owned()));

    let created = h
        .post(
            "/crm/v3/properties/contacts/groups",
            json!({"name": "sync_fields", "label": "Sync fields", "displayOrder": 3}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(
        created.body,
        json!({"name": "sync_fields", "label": "Sync fields", "displayOrder": 3, "archived": false})
    );
    let again = h
        .post(
            "/crm/v3/properties/contacts/groups",
            json!({"name": "sync_fields", "label": "Again"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.error_category(), "OBJECT_ALREADY_EXISTS");

    let patched = h
        .patch(
            "/crm/v3/properties/contacts/groups/sync_fields",
            json!({"label": "Synced"}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(patched.body["label"], "Synced");
    assert_eq!(patched.body["displayOrder"], 3, "order untouched");
    let read = h
        .get("/crm/v3/properties/contacts/groups/sync_fields")
        .await;
    assert_eq!(read.body["label"], "Synced");

    // A group is per object type.
    let elsewhere = h
        .get("/crm/v3/properties/companies/groups/sync_fields")
        .await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND);
    assert_eq!(elsewhere.error_category(), "OBJECT_NOT_FOUND");

    // A group that still holds a property is not removed.
    let prop = h
        .post("/crm/v3/properties/contacts", tier("tier", "sync_fields"))
        .await;
    assert_eq!(prop.status, StatusCode::CREATED, "{}", prop.body);
    let refused = h
        .delete("/crm/v3/properties/contacts/groups/sync_fields")
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.error_category(), "VALIDATION_ERROR");
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("tier"),
        "{}",
        refused.body
    );
    assert_eq!(
        h.delete("/crm/v3/properties/contacts/tier").await.status,
        StatusCode::NO_CONTENT
    );
    let deleted = h
        .delete("/crm/v3/properties/contacts/groups/sync_fields")
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    let gone = h
        .get("/crm/v3/properties/contacts/groups/sync_fields")
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let missing = h
        .patch(
            "/crm/v3/properties/contacts/groups/nope",
            json!({"label": "x"}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_property_needs_an_existing_group_and_unique_options() {
    let h = Harness::unlimited().await;
    let no_group = h
        .post("/crm/v3/properties/contacts", tier("tier", "no_such_group"))
        .await;
    assert_eq!(no_group.status, StatusCode::BAD_REQUEST);
    assert_eq!(no_group.error_category(), "VALIDATION_ERROR");
    assert!(
        no_group.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("no_such_group")
    );
    let mut dup = tier("tier", "contactinformation");
    dup["options"] = json!([{"label": "A", "value": "a"}, {"label": "B", "value": "a"}]);
    let dup = h.post("/crm/v3/properties/contacts", dup).await;
    assert_eq!(dup.status, StatusCode::BAD_REQUEST);
    assert!(
        dup.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("unique"),
        "{}",
        dup.body
    );
}

#[tokio::test]
async fn custom_properties_are_updated_but_hubspot_defined_ones_are_read_only() {
    let h = Harness::unlimited().await;
    let created = h
        .post(
            "/crm/v3/properties/companies",
            json!({"name": "erp_key", "label": "ERP key", "type": "string",
                   "fieldType": "text", "groupName": "companyinformation", "hasUniqueValue": true}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);

    let patched = h
        .patch(
            "/crm/v3/properties/companies/erp_key",
            json!({"label": "ERP id", "description": "from the ERP", "displayOrder": 7, "hidden": true}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["label"], "ERP id");
    assert_eq!(patched.body["description"], "from the ERP");
    assert_eq!(patched.body["displayOrder"], 7);
    assert_eq!(patched.body["hidden"], true);
    assert_eq!(patched.body["hasUniqueValue"], true);
    let read = h.get("/crm/v3/properties/companies/erp_key").await;
    assert_eq!(read.body["label"], "ERP id");

    // Turn it into an enumeration: options come along.
    let enumerated = h
        .patch(
            "/crm/v3/properties/companies/erp_key",
            json!({"type": "enumeration", "fieldType": "select",
                   "options": [{"label": "One", "value": "1"}]}),
        )
        .await;
    assert_eq!(enumerated.status, StatusCode::OK, "{}", enumerated.body);
    assert_eq!(enumerated.body["options"][0]["value"], "1");

    let unique = h
        .patch(
            "/crm/v3/properties/companies/erp_key",
            json!({"hasUniqueValue": false}),
        )
        .await;
    assert_eq!(unique.status, StatusCode::BAD_REQUEST);
    assert_eq!(unique.error_category(), "VALIDATION_ERROR");
    assert!(
        unique.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("hasUniqueValue")
    );

    let moved = h
        .patch(
            "/crm/v3/properties/companies/erp_key",
            json!({"groupName": "missing_group"}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::BAD_REQUEST);

    let builtin = h
        .patch(
            "/crm/v3/properties/companies/name",
            json!({"label": "Renamed"}),
        )
        .await;
    assert_eq!(builtin.status, StatusCode::BAD_REQUEST);
    assert_eq!(builtin.error_category(), "VALIDATION_ERROR");
    let unchanged = h.get("/crm/v3/properties/companies/name").await;
    assert_eq!(unchanged.body["label"], "Company name");

    let unknown = h
        .patch("/crm/v3/properties/companies/nope", json!({"label": "x"}))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.error_category(), "OBJECT_NOT_FOUND");
}

#[tokio::test]
async fn archived_properties_leave_records_and_are_listed_with_archived_true() {
    let h = Harness::unlimited().await;
    let created = h
        .post("/crm/v3/properties/deals", tier("tier", "dealinformation"))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let deal = h
        .create("deals", json!({"dealname": "D", "tier": "gold"}))
        .await;

    assert_eq!(
        h.delete("/crm/v3/properties/deals/dealname").await.status,
        StatusCode::BAD_REQUEST,
        "HubSpot-defined properties cannot be archived"
    );
    assert_eq!(
        h.delete("/crm/v3/properties/deals/nope").await.status,
        StatusCode::NOT_FOUND
    );
    let archived = h.delete("/crm/v3/properties/deals/tier").await;
    assert_eq!(archived.status, StatusCode::NO_CONTENT);
    assert_eq!(archived.body, Value::Null);

    assert_eq!(
        h.get("/crm/v3/properties/deals/tier").await.status,
        StatusCode::NOT_FOUND
    );
    let live = h.get("/crm/v3/properties/deals").await;
    assert!(!names(&live.body).contains(&"tier".to_owned()));
    let bin = h.get("/crm/v3/properties/deals?archived=true").await;
    assert_eq!(names(&bin.body), vec!["tier".to_owned()]);
    assert_eq!(bin.body["results"][0]["archived"], true);
    assert!(bin.body["results"][0]["archivedAt"].is_string());
    let one = h.get("/crm/v3/properties/deals/tier?archived=true").await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.body["archived"], true);

    // No longer readable or writable on records.
    let read = h
        .get(&format!("/crm/v3/objects/deals/{deal}?properties=tier"))
        .await;
    assert!(
        read.body["properties"].get("tier").is_none(),
        "{}",
        read.body
    );
    let write = h
        .patch(
            &format!("/crm/v3/objects/deals/{deal}"),
            json!({"properties": {"tier": "gold"}}),
        )
        .await;
    assert_eq!(write.status, StatusCode::BAD_REQUEST);
    assert!(
        write.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("PROPERTY_DOESNT_EXIST")
    );

    // The name may be taken again by a new property.
    let again = h
        .post("/crm/v3/properties/deals", tier("tier", "dealinformation"))
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    let bin = h.get("/crm/v3/properties/deals?archived=true").await;
    assert!(names(&bin.body).is_empty());
}

#[tokio::test]
async fn batch_create_read_and_archive() {
    let h = Harness::unlimited().await;
    let created = h
        .post(
            "/crm/v3/properties/contacts/batch/create",
            json!({"inputs": [tier("tier_a", "contactinformation"), tier("tier_b", "contactinformation")]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["status"], "COMPLETE");
    assert_eq!(
        names(&created.body),
        vec!["tier_a".to_owned(), "tier_b".to_owned()]
    );

    // One good, one taken, one with a bad group: 207, the good one created.
    let partial = h
        .post(
            "/crm/v3/properties/contacts/batch/create",
            json!({"inputs": [
                tier("tier_c", "contactinformation"),
                tier("tier_a", "contactinformation"),
                tier("tier_d", "nowhere"),
            ]}),
        )
        .await;
    assert_eq!(partial.status, StatusCode::MULTI_STATUS, "{}", partial.body);
    assert_eq!(names(&partial.body), vec!["tier_c".to_owned()]);
    assert_eq!(partial.body["numErrors"], 2);
    let categories: Vec<&str> = partial.body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["category"].as_str())
        .collect();
    assert_eq!(
        categories,
        vec!["OBJECT_ALREADY_EXISTS", "VALIDATION_ERROR"]
    );

    let read = h
        .post(
            "/crm/v3/properties/contacts/batch/read",
            json!({"inputs": [{"name": "tier_a"}, {"name": "email"}], "archived": false}),
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(
        names(&read.body),
        vec!["tier_a".to_owned(), "email".to_owned()]
    );
    let missing = h
        .post(
            "/crm/v3/properties/contacts/batch/read",
            json!({"inputs": [{"name": "tier_a"}, {"name": "nope"}]}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::MULTI_STATUS);
    assert_eq!(missing.body["errors"][0]["category"], "OBJECT_NOT_FOUND");

    // 204 even for unknown and already archived names.
    let archived = h
        .post(
            "/crm/v3/properties/contacts/batch/archive",
            json!({"inputs": [{"name": "tier_a"}, {"name": "nope"}, {"name": "tier_b"}]}),
        )
        .await;
    assert_eq!(archived.status, StatusCode::NO_CONTENT);
    let twice = h
        .post(
            "/crm/v3/properties/contacts/batch/archive",
            json!({"inputs": [{"name": "tier_a"}]}),
        )
        .await;
    assert_eq!(twice.status, StatusCode::NO_CONTENT);
    let bin = h
        .post(
            "/crm/v3/properties/contacts/batch/read",
            json!({"inputs": [{"name": "tier_a"}, {"name": "tier_b"}], "archived": true}),
        )
        .await;
    assert_eq!(bin.status, StatusCode::OK, "{}", bin.body);
    assert_eq!(bin.body["results"][1]["archived"], true);
}

#[tokio::test]
async fn definitions_survive_a_restart_and_go_on_reset() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("portal.json");
    let config = || SandboxConfig {
        token: Some(TOKEN.to_owned()),
        state_file: Some(path.clone()),
        ..SandboxConfig::unlimited()
    };
    let h = Harness::start(config()).await;
    h.post(
        "/crm/v3/properties/contacts/groups",
        json!({"name": "kept_group", "label": "Kept"}),
    )
    .await;
    h.post("/crm/v3/properties/contacts", tier("kept", "kept_group"))
        .await;
    h.post("/crm/v3/properties/contacts", tier("binned", "kept_group"))
        .await;
    h.delete("/crm/v3/properties/contacts/binned").await;
    eventually("the save", Duration::from_secs(5), || async {
        let text = std::fs::read_to_string(&path).ok()?;
        (text.contains("kept_group") && text.contains("binned")).then_some(())
    })
    .await;
    h.sandbox.shutdown().await;

    let h = Harness::start(config()).await;
    let group = h.get("/crm/v3/properties/contacts/groups/kept_group").await;
    assert_eq!(group.status, StatusCode::OK);
    let kept = h.get("/crm/v3/properties/contacts/kept").await;
    assert_eq!(kept.body["groupName"], "kept_group");
    let bin = h.get("/crm/v3/properties/contacts?archived=true").await;
    assert_eq!(names(&bin.body), vec!["binned".to_owned()]);

    let reset = h
        .send(reqwest::Method::POST, "/_sandbox/reset", None, None)
        .await;
    assert_eq!(reset.status, StatusCode::NO_CONTENT);
    assert_eq!(
        h.get("/crm/v3/properties/contacts/groups/kept_group")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert!(
        names(&h.get("/crm/v3/properties/contacts/groups").await.body)
            .contains(&"contactinformation".to_owned()),
        "defaults come back"
    );
    let bin = h.get("/crm/v3/properties/contacts?archived=true").await;
    assert!(names(&bin.body).is_empty());
}
