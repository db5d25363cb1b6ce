//! Association labels (v4) over real sockets: HUBSPOT_DEFINED types are listed, USER_DEFINED
//! labels are created (both directions with an inverse label), renamed, deleted, used by the
//! association endpoints (single, batch, inline on create) and shown from both ends; unknown
//! type ids and a deleted label are refused; labels survive a restart.

mod support;

use std::time::Duration;

use crmsync_sandbox::SandboxConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Harness, TOKEN, eventually};

fn type_ids(listing: &Value, category: &str) -> Vec<u64> {
    listing["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["category"] == category)
        .filter_map(|t| t["typeId"].as_u64())
        .collect()
}

#[tokio::test]
async fn labels_are_listed_created_renamed_and_deleted() {
    let h = Harness::unlimited().await;
    let builtin = h
        .get("/crm/v4/associations/contacts/companies/labels")
        .await;
    assert_eq!(builtin.status, StatusCode::OK);
    assert_eq!(type_ids(&builtin.body, "HUBSPOT_DEFINED"), [279, 1]);
    assert!(type_ids(&builtin.body, "USER_DEFINED").is_empty());

    let created = h
        .post(
            "/crm/v4/associations/contacts/companies/labels",
            json!({"label": "Manager", "name": "manager", "inverseLabel": "Managed company"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let results = created.body["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(results.len(), 2, "both directions: {}", created.body);
    assert_eq!(results[0]["category"], "USER_DEFINED");
    assert_eq!(results[0]["label"], "Manager");
    assert_eq!(results[1]["label"], "Managed company");
    let forward = results[0]["typeId"].as_u64().unwrap_or_default();
    let inverse = results[1]["typeId"].as_u64().unwrap_or_default();
    assert_ne!(forward, inverse);

    let single = h
        .post(
            "/crm/v4/associations/deals/companies/labels",
            json!({"label": "Reseller", "name": "reseller"}),
        )
        .await;
    assert_eq!(single.body["results"].as_array().map(Vec::len), Some(1));
    let taken = h
        .post(
            "/crm/v4/associations/contacts/companies/labels",
            json!({"label": "Boss", "name": "manager"}),
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert_eq!(taken.error_category(), "OBJECT_ALREADY_EXISTS");
    let nameless = h
        .post(
            "/crm/v4/associations/contacts/companies/labels",
            json!({"label": "No name"}),
        )
        .await;
    assert_eq!(nameless.status, StatusCode::BAD_REQUEST);

    let listed = h
        .get("/crm/v4/associations/contacts/companies/labels")
        .await;
    assert_eq!(type_ids(&listed.body, "USER_DEFINED"), [forward]);
    let back = h
        .get("/crm/v4/associations/companies/contacts/labels")
        .await;
    assert_eq!(type_ids(&back.body, "USER_DEFINED"), [inverse]);
    assert!(
        back.body["results"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["label"] == "Managed company")
    );

    let renamed = h
        .put(
            "/crm/v4/associations/contacts/companies/labels",
            Some(json!({"associationTypeId": forward, "label": "Line manager"})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::NO_CONTENT, "{}", renamed.body);
    let listed = h
        .get("/crm/v4/associations/contacts/companies/labels")
        .await;
    assert!(
        listed.body["results"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["label"] == "Line manager")
    );
    let builtin_rename = h
        .put(
            "/crm/v4/associations/contacts/companies/labels",
            Some(json!({"associationTypeId": 279, "label": "Mine"})),
        )
        .await;
    assert_eq!(builtin_rename.status, StatusCode::BAD_REQUEST);
    let unknown = h
        .delete("/crm/v4/associations/contacts/companies/labels/999999")
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let deleted = h
        .delete(&format!(
            "/crm/v4/associations/contacts/companies/labels/{forward}"
        ))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let listed = h
        .get("/crm/v4/associations/companies/contacts/labels")
        .await;
    assert!(
        type_ids(&listed.body, "USER_DEFINED").is_empty(),
        "inverse gone too"
    );
}

#[tokio::test]
async fn user_defined_labels_are_accepted_by_the_association_endpoints() {
    let h = Harness::unlimited().await;
    let created = h
        .post(
            "/crm/v4/associations/contacts/companies/labels",
            json!({"label": "Manager", "name": "manager", "inverseLabel": "Managed company"}),
        )
        .await;
    let forward = created.body["results"][0]["typeId"]
        .as_u64()
        .unwrap_or_default();
    let inverse = created.body["results"][1]["typeId"]
        .as_u64()
        .unwrap_or_default();
    let contact = h.create("contacts", json!({"email": "m@x.io"})).await;
    let company = h.create("companies", json!({"name": "M Co"})).await;
    let other = h.create("companies", json!({"name": "N Co"})).await;

    let labelled = h
        .put(
            &format!("/crm/v4/objects/contacts/{contact}/associations/companies/{company}"),
            Some(json!([{"associationCategory": "USER_DEFINED", "associationTypeId": forward}])),
        )
        .await;
    assert_eq!(labelled.status, StatusCode::CREATED, "{}", labelled.body);
    assert_eq!(labelled.body["labels"], json!(["Manager"]));

    // Seen from the company: the inverse label, with the unlabeled type kept.
    let from_company = h
        .get(&format!(
            "/crm/v4/objects/companies/{company}/associations/contacts"
        ))
        .await;
    let types = &from_company.body["results"][0]["associationTypes"];
    assert!(
        types
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["category"] == "USER_DEFINED"
                && t["typeId"].as_u64() == Some(inverse)
                && t["label"] == "Managed company"),
        "{types}"
    );
    assert!(
        types
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["typeId"] == 280),
        "{types}"
    );

    // A user label is not primary: a second company keeps the first one labelled.
    let batch = h
        .post(
            "/crm/v4/associations/contacts/companies/batch/create",
            json!({"inputs": [{"from": {"id": contact}, "to": {"id": other},
                   "types": [{"associationCategory": "USER_DEFINED", "associationTypeId": forward}]}]}),
        )
        .await;
    assert_eq!(batch.status, StatusCode::CREATED, "{}", batch.body);
    let from_contact = h
        .get(&format!(
            "/crm/v4/objects/contacts/{contact}/associations/companies"
        ))
        .await;
    let labelled_count = from_contact.body["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| {
            r["associationTypes"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|t| t["typeId"].as_u64() == Some(forward))
        })
        .count();
    assert_eq!(labelled_count, 2, "{}", from_contact.body);

    // Inline on create.
    let inline = h
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "i@x.io"}, "associations": [{"to": {"id": company},
                   "types": [{"associationCategory": "USER_DEFINED", "associationTypeId": forward}]}]}),
        )
        .await;
    assert_eq!(inline.status, StatusCode::CREATED, "{}", inline.body);

    // Wrong category or unknown id: refused.
    let wrong_category = h
        .put(
            &format!("/crm/v4/objects/contacts/{contact}/associations/companies/{company}"),
            Some(json!([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": forward}])),
        )
        .await;
    assert_eq!(wrong_category.status, StatusCode::BAD_REQUEST);
    assert_eq!(wrong_category.error_category(), "VALIDATION_ERROR");
    let unknown = h
        .put(
            &format!("/crm/v4/objects/contacts/{contact}/associations/companies/{company}"),
            Some(json!([{"associationCategory": "USER_DEFINED", "associationTypeId": 424242}])),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);

    // Deleting the label takes it off the associations, which stay.
    h.delete(&format!(
        "/crm/v4/associations/contacts/companies/labels/{forward}"
    ))
    .await;
    let after = h
        .get(&format!(
            "/crm/v4/objects/contacts/{contact}/associations/companies"
        ))
        .await;
    let ids: Vec<u64> = after.body["results"][0]["associationTypes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["typeId"].as_u64())
        .collect();
    assert_eq!(ids, [279], "{}", after.body);
    let gone = h
        .put(
            &format!("/crm/v4/objects/contacts/{contact}/associations/companies/{company}"),
            Some(json!([{"associationCategory": "USER_DEFINED", "associationTypeId": forward}])),
        )
        .await;
    assert_eq!(gone.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn labels_survive_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("portal.json");
    let config = || SandboxConfig {
        token: Some(TOKEN.to_owned()),
        state_file: Some(path.clone()),
        ..SandboxConfig::unlimited()
    };
    let h = Harness::start(config()).await;
    let created = h
        .post(
            "/crm/v4/associations/deals/contacts/labels",
            json!({"label": "Champion", "name": "champion"}),
        )
        .await;
    let id = created.body["results"][0]["typeId"]
        .as_u64()
        .unwrap_or_default();
    let deal = h.create("deals", json!({"dealname": "L"})).await;
    let contact = h.create("contacts", json!({"email": "l@x.io"})).await;
    h.put(
        &format!("/crm/v4/objects/deals/{deal}/associations/contacts/{contact}"),
        Some(json!([{"associationCategory": "USER_DEFINED", "associationTypeId": id}])),
    )
    .await;
    eventually("the save", Duration::from_secs(5), || async {
        let text = std::fs::read_to_string(&path).ok()?;
        text.contains("Champion").then_some(())
    })
    .await;
    h.sandbox.shutdown().await;

    let h = Harness::start(config()).await;
    let listed = h.get("/crm/v4/associations/deals/contacts/labels").await;
    assert_eq!(type_ids(&listed.body, "USER_DEFINED"), [id]);
    let from_deal = h
        .get(&format!(
            "/crm/v4/objects/deals/{deal}/associations/contacts"
        ))
        .await;
    assert!(
        from_deal.body["results"][0]["associationTypes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["label"] == "Champion"),
        "{}",
        from_deal.body
    );
    let next = h
        .post(
            "/crm/v4/associations/deals/contacts/labels",
            json!({"label": "Blocker", "name": "blocker"}),
        )
        .await;
    assert_ne!(next.body["results"][0]["typeId"].as_u64(), Some(id));
}
