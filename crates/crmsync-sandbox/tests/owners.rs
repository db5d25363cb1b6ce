//! Owners over real sockets: the seeded owners, paging with `limit`/`after`, the `email` and
//! `archived` filters, one owner by `id` or `userId`, `POST /_sandbox/owners`, and
//! `hubspot_owner_id` on records checked against the owners (`INVALID_OWNER_ID`).

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::Harness;

fn emails(listing: &Value) -> Vec<String> {
    listing["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["email"].as_str().map(str::to_owned))
        .collect()
}

async fn add_owner(h: &Harness, body: Value) -> Value {
    let reply = h
        .send(Method::POST, "/_sandbox/owners", Some(body), None)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body
}

#[tokio::test]
async fn owners_are_listed_paged_filtered_and_read() {
    let h = Harness::unlimited().await;
    let all = h.get("/crm/v3/owners").await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(
        emails(&all.body),
        ["ada.owner@crmsync.local", "bo.seller@crmsync.local"]
    );
    let first = &all.body["results"][0];
    for key in [
        "id",
        "email",
        "firstName",
        "lastName",
        "userId",
        "createdAt",
        "updatedAt",
        "archived",
        "teams",
    ] {
        assert!(!first[key].is_null(), "owner {key}: {first}");
    }
    assert!(first["id"].is_string());
    assert!(first["userId"].is_number());
    assert!(all.body.get("paging").is_none());

    let page = h.get("/crm/v3/owners?limit=1").await;
    assert_eq!(emails(&page.body), ["ada.owner@crmsync.local"]);
    let after = page.body["paging"]["next"]["after"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let next = h
        .get(&format!("/crm/v3/owners/?limit=1&after={after}"))
        .await;
    assert_eq!(emails(&next.body), ["bo.seller@crmsync.local"]);
    assert!(next.body.get("paging").is_none());

    let by_email = h
        .get("/crm/v3/owners?email=BO.SELLER%40crmsync.local")
        .await;
    assert_eq!(emails(&by_email.body), ["bo.seller@crmsync.local"]);

    let id = first["id"].as_str().unwrap_or_default().to_owned();
    let user = first["userId"].as_u64().unwrap_or_default();
    let one = h.get(&format!("/crm/v3/owners/{id}")).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.body["email"], "ada.owner@crmsync.local");
    let by_user = h
        .get(&format!("/crm/v3/owners/{user}?idProperty=userId"))
        .await;
    assert_eq!(by_user.body["id"], id.as_str());
    let missing = h.get(&format!("/crm/v3/owners/{user}")).await;
    assert_eq!(
        missing.status,
        StatusCode::NOT_FOUND,
        "a user id is not an owner id"
    );
    assert_eq!(missing.error_category(), "OBJECT_NOT_FOUND");
    let bad = h.get("/crm/v3/owners?limit=0").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn added_owners_and_archived_ones() {
    let h = Harness::unlimited().await;
    let added = add_owner(
        &h,
        json!({"email": "cy@crmsync.local", "firstName": "Cy", "lastName": "New",
               "teams": [{"id": "7", "name": "Support", "primary": true}]}),
    )
    .await;
    assert_eq!(added["teams"][0]["name"], "Support");
    let gone = add_owner(
        &h,
        json!({"email": "gone@crmsync.local", "firstName": "Gone", "lastName": "Away", "archived": true}),
    )
    .await;
    assert_eq!(gone["archived"], true);
    let live = h.get("/crm/v3/owners").await;
    assert_eq!(emails(&live.body).len(), 3);
    let archived = h.get("/crm/v3/owners?archived=true").await;
    assert_eq!(emails(&archived.body), ["gone@crmsync.local"]);
    let dup = h
        .send(
            Method::POST,
            "/_sandbox/owners",
            Some(json!({"email": "cy@crmsync.local"})),
            None,
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    let bad = h
        .send(
            Method::POST,
            "/_sandbox/owners",
            Some(json!({"email": "nope"})),
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // Records take active owners only.
    let owner = added["id"].as_str().unwrap_or_default().to_owned();
    let contact = h
        .create(
            "contacts",
            json!({"email": "o@x.io", "hubspot_owner_id": owner}),
        )
        .await;
    let read = h
        .get(&format!(
            "/crm/v3/objects/contacts/{contact}?properties=hubspot_owner_id"
        ))
        .await;
    assert_eq!(read.body["properties"]["hubspot_owner_id"], owner.as_str());
    for wrong in [
        "12345".to_owned(),
        gone["id"].as_str().unwrap_or("0").to_owned(),
    ] {
        let refused = h
            .patch(
                &format!("/crm/v3/objects/contacts/{contact}"),
                json!({"properties": {"hubspot_owner_id": wrong}}),
            )
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{wrong}");
        assert!(
            refused.body["message"]
                .as_str()
                .unwrap_or("")
                .contains("INVALID_OWNER_ID"),
            "{}",
            refused.body
        );
    }
    let cleared = h
        .patch(
            &format!("/crm/v3/objects/contacts/{contact}"),
            json!({"properties": {"hubspot_owner_id": ""}}),
        )
        .await;
    assert_eq!(cleared.status, StatusCode::OK);
    let property = h.get("/crm/v3/properties/deals/hubspot_owner_id").await;
    assert_eq!(property.body["externalOptions"], true);
    assert_eq!(property.body["referencedObjectType"], "OWNER");

    // Reset brings back the seeded owners only.
    h.send(Method::POST, "/_sandbox/reset", None, None).await;
    assert_eq!(emails(&h.get("/crm/v3/owners").await.body).len(), 2);
}
