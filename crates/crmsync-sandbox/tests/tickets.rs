//! Tickets (`tickets`, type id `0-5`) over real sockets: HubSpot's default properties and
//! group, the default "Support Pipeline" with its four stages, CRUD, batch and search like
//! any object, stage checks against the stored ticket pipelines, ticket stage metadata
//! (`ticketState`), and associations with contacts, companies and deals (16/15, 339/340,
//! 27/28) seen from both ends.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::Harness;

fn property<'a>(listing: &'a Value, name: &str) -> &'a Value {
    listing["results"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["name"] == name))
        .unwrap_or(&Value::Null)
}

#[tokio::test]
async fn tickets_have_hubspots_default_properties_and_pipeline() {
    let h = Harness::unlimited().await;
    let listing = h.get("/crm/v3/properties/tickets").await;
    assert_eq!(listing.status, StatusCode::OK);
    for name in [
        "subject",
        "content",
        "hs_pipeline",
        "hs_pipeline_stage",
        "hs_ticket_priority",
        "hs_ticket_category",
        "createdate",
        "hs_lastmodifieddate",
        "hs_object_id",
    ] {
        assert!(property(&listing.body, name).is_object(), "ticket {name}");
    }
    let priority = property(&listing.body, "hs_ticket_priority");
    assert_eq!(priority["type"], "enumeration");
    let values: Vec<&str> = priority["options"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["value"].as_str())
        .collect();
    assert_eq!(values, ["LOW", "MEDIUM", "HIGH", "URGENT"]);
    assert_eq!(
        property(&listing.body, "subject")["groupName"],
        "ticketinformation"
    );
    let stages = property(&listing.body, "hs_pipeline_stage")["options"].clone();
    assert_eq!(stages.as_array().map(Vec::len), Some(4), "{stages}");

    // The type id addresses the same object (FACTS 2.2).
    let pipelines = h.get("/crm/v3/pipelines/0-5").await;
    assert_eq!(pipelines.status, StatusCode::OK);
    let support = &pipelines.body["results"][0];
    assert_eq!(support["id"], "0");
    assert_eq!(support["label"], "Support Pipeline");
    let stages: Vec<(String, String, String)> = support["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["id"].as_str().unwrap_or_default().to_owned(),
                s["label"].as_str().unwrap_or_default().to_owned(),
                s["metadata"]["ticketState"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    let expected = [
        ("1", "New", "OPEN"),
        ("2", "Waiting on contact", "OPEN"),
        ("3", "Waiting on us", "OPEN"),
        ("4", "Closed", "CLOSED"),
    ]
    .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()));
    assert_eq!(stages, expected);
    let groups = h.get("/crm/v3/properties/tickets/groups").await;
    assert_eq!(groups.body["results"][0]["name"], "ticketinformation");
}

#[tokio::test]
async fn tickets_are_created_read_updated_searched_and_archived() {
    let h = Harness::unlimited().await;
    let created = h
        .post(
            "/crm/v3/objects/tickets",
            json!({"properties": {"subject": "Printer on fire", "hs_pipeline_stage": "1",
                                  "hs_ticket_priority": "HIGH"}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        created.body["properties"]["hs_pipeline"], "0",
        "default pipeline"
    );

    let read = h.get(&format!("/crm/v3/objects/tickets/{id}")).await;
    assert_eq!(read.status, StatusCode::OK);
    let mut keys: Vec<&String> = read.body["properties"]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    keys.sort();
    assert_eq!(
        keys,
        [
            "content",
            "createdate",
            "hs_lastmodifieddate",
            "hs_object_id",
            "hs_pipeline",
            "hs_pipeline_stage",
            "hs_ticket_category",
            "hs_ticket_priority",
            "subject"
        ]
    );
    assert_eq!(read.body["properties"]["subject"], "Printer on fire");

    let bad_priority = h
        .patch(
            &format!("/crm/v3/objects/tickets/{id}"),
            json!({"properties": {"hs_ticket_priority": "WHENEVER"}}),
        )
        .await;
    assert_eq!(bad_priority.status, StatusCode::BAD_REQUEST);
    assert!(
        bad_priority.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("INVALID_OPTION")
    );
    let bad_stage = h
        .patch(
            &format!("/crm/v3/objects/tickets/{id}"),
            json!({"properties": {"hs_pipeline_stage": "closedwon"}}),
        )
        .await;
    assert_eq!(
        bad_stage.status,
        StatusCode::BAD_REQUEST,
        "deal stages are not ticket stages"
    );
    let closed = h
        .patch(
            &format!("/crm/v3/objects/tickets/{id}"),
            json!({"properties": {"hs_pipeline_stage": "4"}}),
        )
        .await;
    assert_eq!(closed.status, StatusCode::OK, "{}", closed.body);
    assert_eq!(closed.body["properties"]["hs_pipeline_stage"], "4");

    let batch = h
        .post(
            "/crm/v3/objects/tickets/batch/create",
            json!({"inputs": [
                {"properties": {"subject": "Batch one", "hs_pipeline_stage": "2"}},
                {"properties": {"subject": "Batch two", "hs_pipeline_stage": "3"}},
            ]}),
        )
        .await;
    assert_eq!(batch.status, StatusCode::CREATED, "{}", batch.body);
    assert_eq!(batch.body["results"].as_array().map(Vec::len), Some(2));

    let found = h
        .post(
            "/crm/v3/objects/tickets/search",
            json!({"filterGroups": [{"filters": [
                {"propertyName": "hs_pipeline_stage", "operator": "EQ", "value": "4"}]}]}),
        )
        .await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    assert_eq!(found.body["total"], 1);
    assert_eq!(found.body["results"][0]["id"], id.as_str());

    // A ticket stage needs its ticketState.
    let stage = h
        .post(
            "/crm/v3/pipelines/tickets/0/stages",
            json!({"label": "Escalated", "displayOrder": 4, "metadata": {}}),
        )
        .await;
    assert_eq!(stage.status, StatusCode::BAD_REQUEST);
    assert!(
        stage.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("ticketState")
    );
    let stage = h
        .post(
            "/crm/v3/pipelines/tickets/0/stages",
            json!({"label": "Escalated", "displayOrder": 4, "metadata": {"ticketState": "OPEN"}}),
        )
        .await;
    assert_eq!(stage.status, StatusCode::CREATED, "{}", stage.body);
    let escalated = stage.body["id"].as_str().unwrap_or_default().to_owned();
    let moved = h
        .patch(
            &format!("/crm/v3/objects/tickets/{id}"),
            json!({"properties": {"hs_pipeline_stage": escalated}}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);

    assert_eq!(
        h.delete(&format!("/crm/v3/objects/tickets/{id}"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let archived = h.get("/crm/v3/objects/tickets?archived=true").await;
    assert_eq!(archived.body["results"][0]["id"], id.as_str());
}

#[tokio::test]
async fn tickets_associate_with_contacts_companies_and_deals() {
    let h = Harness::unlimited().await;
    let ticket = h
        .create(
            "tickets",
            json!({"subject": "Linked", "hs_pipeline_stage": "1"}),
        )
        .await;
    let contact = h.create("contacts", json!({"email": "t@x.io"})).await;
    let company = h.create("companies", json!({"name": "T Co"})).await;
    let deal = h.create("deals", json!({"dealname": "T deal"})).await;

    let to_contact = h
        .put(
            &format!("/crm/v4/objects/tickets/{ticket}/associations/default/contacts/{contact}"),
            None,
        )
        .await;
    assert_eq!(to_contact.status, StatusCode::OK, "{}", to_contact.body);
    let specs: Vec<u64> = to_contact.body["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["associationSpec"]["associationTypeId"].as_u64())
        .collect();
    assert_eq!(specs, [16, 15]);

    let to_company = h
        .put(
            &format!("/crm/v4/objects/companies/{company}/associations/tickets/{ticket}"),
            Some(json!([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 340}])),
        )
        .await;
    assert_eq!(
        to_company.status,
        StatusCode::CREATED,
        "{}",
        to_company.body
    );
    let to_deal = h
        .post(
            "/crm/v4/associations/deals/tickets/batch/create",
            json!({"inputs": [{"from": {"id": deal}, "to": {"id": ticket},
                   "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 28}]}]}),
        )
        .await;
    assert_eq!(to_deal.status, StatusCode::CREATED, "{}", to_deal.body);

    // Seen from the ticket: the inverse types.
    let companies = h
        .get(&format!(
            "/crm/v4/objects/tickets/{ticket}/associations/companies"
        ))
        .await;
    assert_eq!(
        companies.body["results"][0]["toObjectId"].as_u64(),
        company.parse().ok()
    );
    assert_eq!(
        companies.body["results"][0]["associationTypes"][0]["typeId"],
        339
    );
    let deals = h
        .get(&format!(
            "/crm/v4/objects/tickets/{ticket}/associations/deals"
        ))
        .await;
    assert_eq!(
        deals.body["results"][0]["associationTypes"][0]["typeId"],
        27
    );
    let v3 = h
        .get(&format!(
            "/crm/v3/objects/contacts/{contact}?associations=tickets"
        ))
        .await;
    assert_eq!(
        v3.body["associations"]["tickets"]["results"][0],
        json!({"id": ticket, "type": "contact_to_ticket"})
    );
    let wrong = h
        .put(
            &format!("/crm/v4/objects/tickets/{ticket}/associations/contacts/{contact}"),
            Some(json!([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}])),
        )
        .await;
    assert_eq!(
        wrong.status,
        StatusCode::BAD_REQUEST,
        "279 is contact→company"
    );
}
