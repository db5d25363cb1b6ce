//! Line items and products over real sockets: HubSpot's default properties, CRUD with the net
//! price computed and the product's values inherited, a line item naming no product refused,
//! search, and the line item ↔ deal association (types 20 / 19) through v4 and v3.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::Harness;

fn names(listing: &Value) -> Vec<String> {
    listing["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect()
}

fn property<'a>(listing: &'a Value, name: &str) -> &'a Value {
    listing["results"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["name"] == name))
        .unwrap_or(&Value::Null)
}

#[tokio::test]
async fn line_items_and_products_have_hubspots_default_properties() {
    let h = Harness::unlimited().await;
    let line_items = h.get("/crm/v3/properties/line_items").await;
    assert_eq!(line_items.status, StatusCode::OK);
    let have = names(&line_items.body);
    for wanted in [
        "name",
        "quantity",
        "price",
        "amount",
        "hs_product_id",
        "hs_sku",
        "description",
        "discount",
        "createdate",
        "hs_lastmodifieddate",
        "hs_object_id",
    ] {
        assert!(
            have.iter().any(|n| n == wanted),
            "line item {wanted}: {have:?}"
        );
    }
    let amount = property(&line_items.body, "amount");
    assert_eq!(amount["modificationMetadata"]["readOnlyValue"], true);
    assert_eq!(amount["calculated"], true, "HubSpot computes the net price");
    assert_eq!(property(&line_items.body, "price")["type"], "number");
    assert_eq!(
        property(&line_items.body, "name")["groupName"],
        "lineiteminformation"
    );

    // Type ids address the same object (FACTS 2.2).
    let products = h.get("/crm/v3/properties/0-7").await;
    assert_eq!(products.status, StatusCode::OK);
    let have = names(&products.body);
    for wanted in [
        "name",
        "price",
        "hs_sku",
        "description",
        "hs_cost_of_goods_sold",
        "hs_lastmodifieddate",
        "hs_object_id",
    ] {
        assert!(
            have.iter().any(|n| n == wanted),
            "product {wanted}: {have:?}"
        );
    }
    let groups = h.get("/crm/v3/properties/products/groups").await;
    assert_eq!(groups.body["results"][0]["name"], "productinformation");
}

#[tokio::test]
async fn a_line_item_takes_its_products_values_and_hubspot_computes_its_amount() {
    let h = Harness::unlimited().await;
    let product = h
        .create(
            "products",
            json!({"name": "Widget", "price": "19.99", "hs_sku": "W-1", "description": "A widget"}),
        )
        .await;
    let created = h
        .post(
            "/crm/v3/objects/line_items",
            json!({"properties": {"hs_product_id": product, "quantity": "2"}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().expect("id").to_owned();

    let read = h
        .get(&format!(
            "/crm/v3/objects/line_items/{id}?properties=name,price,hs_sku,amount,hs_product_id,quantity"
        ))
        .await;
    let p = &read.body["properties"];
    assert_eq!(p["name"], "Widget", "inherited from the product: {p}");
    assert_eq!(p["price"], "19.99");
    assert_eq!(p["hs_sku"], "W-1");
    assert_eq!(p["hs_product_id"], product.as_str());
    assert_eq!(p["amount"], "39.98", "quantity × price");

    // Without `properties`, a line item comes with HubSpot's default set.
    let plain = h.get(&format!("/crm/v3/objects/line_items/{id}")).await;
    let mut keys: Vec<&String> = plain.body["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "createdate",
            "hs_lastmodifieddate",
            "hs_object_id",
            "name",
            "price",
            "quantity"
        ]
    );

    // Given values win over the product's; the amount follows every change of its inputs.
    let own = h
        .post(
            "/crm/v3/objects/line_items",
            json!({"properties": {"hs_product_id": product, "quantity": "1", "price": "15", "name": "Widget (promo)"}}),
        )
        .await;
    assert_eq!(own.body["properties"]["name"], "Widget (promo)");
    assert_eq!(own.body["properties"]["price"], "15");
    let patched = h
        .patch(
            &format!("/crm/v3/objects/line_items/{id}"),
            json!({"properties": {"quantity": "3"}}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    let after = h
        .get(&format!(
            "/crm/v3/objects/line_items/{id}?properties=amount"
        ))
        .await;
    assert_eq!(after.body["properties"]["amount"], "59.97");

    // A later change of the product does not reach existing line items.
    h.patch(
        &format!("/crm/v3/objects/products/{product}"),
        json!({"properties": {"price": "25.00"}}),
    )
    .await;
    let still = h
        .get(&format!("/crm/v3/objects/line_items/{id}?properties=price"))
        .await;
    assert_eq!(still.body["properties"]["price"], "19.99");

    let gone = h.delete(&format!("/crm/v3/objects/line_items/{id}")).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let missing = h.get(&format!("/crm/v3/objects/line_items/{id}")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let stats = h.get("/_sandbox/stats").await;
    assert_eq!(stats.body["objects"]["line_items"], 1);
    assert_eq!(stats.body["objects"]["products"], 1);
}

#[tokio::test]
async fn a_line_item_naming_no_product_or_writing_its_amount_is_refused() {
    let h = Harness::unlimited().await;
    let unknown = h
        .post(
            "/crm/v3/objects/line_items",
            json!({"properties": {"name": "Ghost", "hs_product_id": "999999", "quantity": "1", "price": "1"}}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.error_category(), "VALIDATION_ERROR");
    let message = unknown.body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("hs_product_id") && message.contains("INVALID_PRODUCT_ID"),
        "{message}"
    );

    // An archived product is no product either, in a batch upsert as in a create.
    let product = h.create("products", json!({"name": "Old"})).await;
    h.delete(&format!("/crm/v3/objects/products/{product}"))
        .await;
    let batch = h
        .post(
            "/crm/v3/objects/line_items/batch/create",
            json!({"inputs": [{"properties": {"name": "Old line", "hs_product_id": product}}]}),
        )
        .await;
    assert_eq!(batch.status, StatusCode::BAD_REQUEST, "{}", batch.body);
    assert_eq!(
        h.get("/_sandbox/stats").await.body["objects"]["line_items"],
        0,
        "nothing was written"
    );

    let amount = h
        .post(
            "/crm/v3/objects/line_items",
            json!({"properties": {"name": "A", "quantity": "1", "price": "2", "amount": "100"}}),
        )
        .await;
    assert_eq!(amount.status, StatusCode::BAD_REQUEST);
    assert!(
        amount.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("READ_ONLY_VALUE")),
        "{}",
        amount.body
    );

    let negative = h
        .post(
            "/crm/v3/objects/line_items",
            json!({"properties": {"name": "A", "quantity": "1", "price": "-2"}}),
        )
        .await;
    assert_eq!(
        negative.status,
        StatusCode::BAD_REQUEST,
        "{}",
        negative.body
    );
}

#[tokio::test]
async fn search_finds_line_items_by_product_and_products_by_sku() {
    let h = Harness::unlimited().await;
    let widget = h
        .create(
            "products",
            json!({"name": "Widget", "hs_sku": "W-1", "price": "5"}),
        )
        .await;
    let gadget = h
        .create(
            "products",
            json!({"name": "Gadget", "hs_sku": "G-1", "price": "7"}),
        )
        .await;
    for (product, quantity) in [(&widget, "1"), (&gadget, "2"), (&widget, "3")] {
        h.create(
            "line_items",
            json!({"hs_product_id": product, "quantity": quantity}),
        )
        .await;
    }
    let by_product = h
        .post(
            "/crm/v3/objects/line_items/search",
            json!({
                "filterGroups": [{"filters": [{"propertyName": "hs_product_id", "operator": "EQ", "value": widget}]}],
                "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
                "properties": ["quantity", "amount"],
            }),
        )
        .await;
    assert_eq!(by_product.status, StatusCode::OK, "{}", by_product.body);
    assert_eq!(by_product.body["total"], 2);
    let amounts: Vec<&Value> = by_product.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| &r["properties"]["amount"])
        .collect();
    assert_eq!(amounts, [&json!("5"), &json!("15")]);

    let by_sku = h
        .post(
            "/crm/v3/objects/products/search",
            json!({"filterGroups": [{"filters": [{"propertyName": "hs_sku", "operator": "EQ", "value": "G-1"}]}]}),
        )
        .await;
    assert_eq!(by_sku.body["total"], 1);
    assert_eq!(by_sku.body["results"][0]["id"], gadget.as_str());
    let by_text = h
        .post(
            "/crm/v3/objects/line_items/search",
            json!({"query": "gadget"}),
        )
        .await;
    assert_eq!(by_text.body["total"], 1, "{}", by_text.body);
}

#[tokio::test]
async fn line_items_are_associated_with_their_deal_both_ways() {
    let h = Harness::unlimited().await;
    let deal = h.create("deals", json!({"dealname": "Order 1"})).await;
    let created = h
        .post(
            "/crm/v3/objects/line_items",
            json!({
                "properties": {"name": "Line", "quantity": "1", "price": "3"},
                "associations": [{"to": {"id": deal}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 20}]}],
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let first = created.body["id"].as_str().expect("id").to_owned();

    // The default association, as crmsync creates it (v4 batch).
    let second = h
        .create(
            "line_items",
            json!({"name": "Line 2", "quantity": "2", "price": "3"}),
        )
        .await;
    let batch = h
        .post(
            "/crm/v4/associations/line_items/deals/batch/associate/default",
            json!({"inputs": [{"from": {"id": second}, "to": {"id": deal}}]}),
        )
        .await;
    assert_eq!(batch.status, StatusCode::OK, "{}", batch.body);
    assert_eq!(
        batch.body["results"][0]["associationSpec"]["associationTypeId"],
        20
    );

    let from_deal = h
        .get(&format!(
            "/crm/v4/objects/deals/{deal}/associations/line_items"
        ))
        .await;
    let items: Vec<String> = from_deal.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["toObjectId"].to_string())
        .collect();
    assert_eq!(items, [first.clone(), second.clone()]);
    assert_eq!(
        from_deal.body["results"][0]["associationTypes"][0]["typeId"],
        19
    );
    let from_item = h
        .get(&format!("/crm/v4/objects/0-8/{first}/associations/0-3"))
        .await;
    assert_eq!(from_item.body["results"][0]["toObjectId"].to_string(), deal);
    assert_eq!(
        from_item.body["results"][0]["associationTypes"][0]["typeId"],
        20
    );

    // v3 reads on the records (FACTS 2.6).
    let item = h
        .get(&format!(
            "/crm/v3/objects/line_items/{first}?associations=deals"
        ))
        .await;
    assert_eq!(
        item.body["associations"]["deals"]["results"][0],
        json!({"id": deal, "type": "line_item_to_deal"})
    );
    let deal_read = h
        .get(&format!(
            "/crm/v3/objects/deals/{deal}?associations=line_items"
        ))
        .await;
    assert_eq!(
        deal_read.body["associations"]["line_items"]["results"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(
        deal_read.body["associations"]["line_items"]["results"][0]["type"],
        "deal_to_line_item"
    );

    // A product is named by `hs_product_id`; HubSpot has no association to it.
    let product = h.create("products", json!({"name": "P"})).await;
    let refused = h
        .put(
            &format!("/crm/v4/objects/line_items/{first}/associations/default/products/{product}"),
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
}
