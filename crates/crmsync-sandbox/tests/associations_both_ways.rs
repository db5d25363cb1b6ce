//! Associations are symmetric and readable through v4 and v3 (FACTS 2.6).

mod support;

use reqwest::StatusCode;
use serde_json::json;
use support::Harness;

#[tokio::test]
async fn default_association_is_visible_from_both_ends() {
    let h = Harness::unlimited().await;
    let deal = h.create("deals", json!({"dealname": "D"})).await;
    let company = h.create("companies", json!({"name": "C"})).await;
    let reply = h
        .put(
            &format!("/crm/v4/objects/deals/{deal}/associations/default/companies/{company}"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body["results"][0]["associationSpec"]["associationTypeId"],
        341
    );

    let forward = h
        .get(&format!(
            "/crm/v4/objects/deals/{deal}/associations/companies"
        ))
        .await;
    assert_eq!(
        forward.body["results"][0]["toObjectId"]
            .as_u64()
            .map(|i| i.to_string()),
        Some(company.clone())
    );
    assert_eq!(
        forward.body["results"][0]["associationTypes"][0]["typeId"],
        341
    );
    let back = h
        .get(&format!("/crm/v4/objects/0-2/{company}/associations/0-3"))
        .await;
    assert_eq!(
        back.body["results"][0]["toObjectId"]
            .as_u64()
            .map(|i| i.to_string()),
        Some(deal.clone())
    );
    assert_eq!(
        back.body["results"][0]["associationTypes"][0]["typeId"],
        342
    );

    let removed = h
        .delete(&format!(
            "/crm/v4/objects/companies/{company}/associations/deals/{deal}"
        ))
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let forward = h
        .get(&format!(
            "/crm/v4/objects/deals/{deal}/associations/companies"
        ))
        .await;
    assert_eq!(forward.body["results"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn labeled_primary_and_v3_read() {
    let h = Harness::unlimited().await;
    let contact = h.create("contacts", json!({"email": "c@x.io"})).await;
    let company = h.create("companies", json!({"name": "C"})).await;
    let spec = json!([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}]);
    let reply = h
        .put(
            &format!("/crm/v4/objects/contacts/{contact}/associations/companies/{company}"),
            Some(spec),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.body["labels"], json!(["Primary"]));

    let v3 = h
        .get(&format!(
            "/crm/v3/objects/contacts/{contact}?associations=companies"
        ))
        .await;
    let types: Vec<&str> = v3.body["associations"]["companies"]["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["type"].as_str())
        .collect();
    assert_eq!(
        types,
        ["contact_to_company", "contact_to_company_unlabeled"]
    );

    let bad = h
        .put(
            &format!("/crm/v4/objects/contacts/{contact}/associations/companies/{company}"),
            Some(json!([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 341}])),
        )
        .await;
    assert_eq!(
        bad.status,
        StatusCode::BAD_REQUEST,
        "341 is deal→company, not contact→company"
    );
}

#[tokio::test]
async fn inline_and_batch_associations() {
    let h = Harness::unlimited().await;
    let company = h.create("companies", json!({"name": "C"})).await;
    let created = h
        .post("/crm/v3/objects/contacts", json!({"properties": {"email": "i@x.io"},
            "associations": [{"to": {"id": company}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}]}]}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let contact = created.body["id"].as_str().unwrap_or_default().to_owned();
    let deal = h.create("deals", json!({"dealname": "D"})).await;

    let batch = h
        .post(
            "/crm/v4/associations/deals/contacts/batch/associate/default",
            json!({"inputs": [{"from": {"id": deal}, "to": {"id": contact}}]}),
        )
        .await;
    assert_eq!(batch.status, StatusCode::OK);

    let read = h
        .post(
            "/crm/v4/associations/companies/contacts/batch/read",
            json!({"inputs": [{"id": company}, {"id": "9999999"}]}),
        )
        .await;
    assert_eq!(read.status, StatusCode::MULTI_STATUS);
    assert_eq!(
        read.body["results"][0]["to"][0]["associationTypes"][0]["typeId"],
        280
    );

    let from_contact = h
        .get(&format!(
            "/crm/v4/objects/contacts/{contact}/associations/deals"
        ))
        .await;
    assert_eq!(
        from_contact.body["results"][0]["associationTypes"][0]["typeId"],
        4
    );

    let archived = h
        .post(
            "/crm/v4/associations/contacts/deals/batch/archive",
            json!({"inputs": [{"from": {"id": contact}, "to": [{"id": deal}]}]}),
        )
        .await;
    assert_eq!(archived.status, StatusCode::NO_CONTENT);
    let from_deal = h
        .get(&format!(
            "/crm/v4/objects/deals/{deal}/associations/contacts"
        ))
        .await;
    assert_eq!(from_deal.body["results"].as_array().map(Vec::len), Some(0));
}
