//! Records through the REST API: upsert by external id (201/200/300), parents linked by
//! their external id, sObject Collections (partial failure, allOrNone, the 200 cap), Tooling
//! custom fields and edits made with the "UI user" token.

mod sf_support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sf_support::{DATA, Sf, is_case_safe_id};

#[tokio::test]
async fn upsert_creates_then_updates_and_two_matches_are_300() {
    let sf = Sf::unlimited().await;
    let first = sf
        .call(
            Method::PATCH,
            "sobjects/Account/crmsync_id__c/k-1",
            Some(json!({"Name": "One"})),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.body["created"], true);
    let id = first.body["id"].as_str().expect("id").to_owned();
    assert!(is_case_safe_id(&id, "001"), "{id}");
    let second = sf
        .call(
            Method::PATCH,
            "sobjects/Account/crmsync_id__c/k-1",
            Some(json!({"Name": "Two"})),
        )
        .await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(
        (second.body["id"].as_str(), &second.body["created"]),
        (Some(id.as_str()), &json!(false))
    );
    let got = sf.get("sobjects/Account/crmsync_id__c/k-1").await;
    assert_eq!(got.body["Name"], "Two");
    let dup = sf
        .call(
            Method::POST,
            "sobjects/Account/",
            Some(json!({"Name": "Dup", "crmsync_id__c": "K-1"})),
        )
        .await;
    assert_eq!(
        dup.error_code(),
        "DUPLICATE_VALUE",
        "unique external ids ignore case"
    );

    let a = sf
        .create(
            "Account",
            json!({"Name": "Twin A", "legacy_key__c": "shared"}),
        )
        .await;
    let b = sf
        .create(
            "Account",
            json!({"Name": "Twin B", "legacy_key__c": "shared"}),
        )
        .await;
    for method in [Method::GET, Method::PATCH] {
        let body = (method == Method::PATCH).then(|| json!({"Name": "changed"}));
        let reply = sf
            .call(method, "sobjects/Account/legacy_key__c/shared", body)
            .await;
        assert_eq!(reply.status, StatusCode::MULTIPLE_CHOICES);
        let mut urls: Vec<&str> = reply
            .body
            .as_array()
            .expect("array")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        urls.sort_unstable();
        let mut expected = vec![
            format!("{DATA}/sobjects/Account/{a}"),
            format!("{DATA}/sobjects/Account/{b}"),
        ];
        expected.sort();
        assert_eq!(urls, expected);
    }
    assert_eq!(
        sf.get(&format!("sobjects/Account/{a}")).await.body["Name"],
        "Twin A",
        "a 300 changes nothing"
    );
    let unknown = sf
        .call(
            Method::PATCH,
            "sobjects/Account/Nope__c/x",
            Some(json!({"Name": "x"})),
        )
        .await;
    assert_eq!(
        (unknown.status, unknown.error_code()),
        (StatusCode::NOT_FOUND, "NOT_FOUND".to_owned())
    );
    sf.sandbox.shutdown().await;
}

#[tokio::test]
async fn children_link_to_parents_by_external_id() {
    let sf = Sf::unlimited().await;
    let account = sf
        .create(
            "Account",
            json!({"Name": "Parent", "crmsync_id__c": "acc-1"}),
        )
        .await;
    let contact = sf
        .create(
            "Contact",
            json!({"LastName": "Kid", "FirstName": "Ada", "Account": {"crmsync_id__c": "acc-1"}}),
        )
        .await;
    let got = sf.get(&format!("sobjects/Contact/{contact}")).await;
    assert_eq!(
        (got.body["AccountId"].as_str(), got.body["Name"].as_str()),
        (Some(account.as_str()), Some("Ada Kid"))
    );
    let opp = sf
        .create("Opportunity", json!({"Name": "Deal", "StageName": "Qualification", "CloseDate": "2030-01-01", "crmsync_id__c": "opp-1", "Account": {"crmsync_id__c": "acc-1"}}))
        .await;
    let product = sf
        .create("Product2", json!({"Name": "Robot", "crmsync_id__c": "p-1"}))
        .await;
    let line = sf
        .create("OpportunityLineItem", json!({"Opportunity": {"crmsync_id__c": "opp-1"}, "Product2": {"crmsync_id__c": "p-1"}, "Quantity": 3, "UnitPrice": 10}))
        .await;
    let got = sf
        .get(&format!("sobjects/OpportunityLineItem/{line}"))
        .await;
    assert_eq!(
        (
            got.body["OpportunityId"].as_str(),
            got.body["Product2Id"].as_str()
        ),
        (Some(opp.as_str()), Some(product.as_str()))
    );
    assert_eq!(got.body["TotalPrice"].as_f64(), Some(30.0));
    let role = sf.create("OpportunityContactRole", json!({"Opportunity": {"crmsync_id__c": "opp-1"}, "ContactId": contact, "IsPrimary": true})).await;
    assert!(is_case_safe_id(&role, "00K"), "{role}");
    let missing = sf
        .call(
            Method::POST,
            "sobjects/Contact/",
            Some(json!({"LastName": "Orphan", "Account": {"crmsync_id__c": "nope"}})),
        )
        .await;
    assert_eq!(
        (missing.status, missing.error_code()),
        (
            StatusCode::BAD_REQUEST,
            "INVALID_CROSS_REFERENCE_KEY".to_owned()
        )
    );
    sf.sandbox.shutdown().await;
}

#[tokio::test]
async fn collections_report_each_item_and_all_or_none_saves_nothing() {
    let sf = Sf::unlimited().await;
    let partial = sf
        .call(
            Method::POST,
            "composite/sobjects",
            Some(json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Contact"}, "LastName": "Ok"},
                {"attributes": {"type": "Contact"}, "FirstName": "NoLast"},
                {"attributes": {"type": "Contact"}, "LastName": "Bad", "Email": "not an email"},
            ]})),
        )
        .await;
    assert_eq!(partial.status, StatusCode::OK);
    let items = partial.body.as_array().expect("results");
    assert_eq!(
        items
            .iter()
            .map(|i| i["success"].as_bool())
            .collect::<Vec<_>>(),
        vec![Some(true), Some(false), Some(false)]
    );
    assert_eq!(
        items[1]["errors"][0]["statusCode"],
        "REQUIRED_FIELD_MISSING"
    );
    assert_eq!(items[1]["errors"][0]["fields"], json!(["LastName"]));
    assert_eq!(items[2]["errors"][0]["statusCode"], "INVALID_EMAIL_ADDRESS");

    let all = sf
        .call(
            Method::POST,
            "composite/sobjects",
            Some(json!({"allOrNone": true, "records": [
                {"attributes": {"type": "Account"}, "Name": "Rolled back"},
                {"attributes": {"type": "Account"}, "Phone": "1"},
            ]})),
        )
        .await;
    assert_eq!(
        all.body[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(
        all.body[1]["errors"][0]["statusCode"],
        "REQUIRED_FIELD_MISSING"
    );
    let count = sf
        .query(
            "query",
            "SELECT COUNT() FROM Account WHERE Name = 'Rolled back'",
        )
        .await;
    assert_eq!(count.body["totalSize"], 0, "{}", count.body);

    let many: Vec<Value> = (0..201).map(|i| json!({"attributes": {"type": "Account"}, "crmsync_id__c": format!("big-{i}"), "Name": "Big"})).collect();
    let big = sf
        .call(
            Method::PATCH,
            "composite/sobjects/Account/crmsync_id__c",
            Some(json!({"allOrNone": false, "records": many})),
        )
        .await;
    assert_eq!(
        (big.status, big.error_code()),
        (StatusCode::BAD_REQUEST, "EXCEEDED_ID_LIMIT".to_owned())
    );
    let count = sf
        .query("query", "SELECT COUNT() FROM Account WHERE Name = 'Big'")
        .await;
    assert_eq!(count.body["totalSize"], 0);

    sf.create("Account", json!({"Name": "Twin", "legacy_key__c": "two"}))
        .await;
    sf.create("Account", json!({"Name": "Twin", "legacy_key__c": "two"}))
        .await;
    let upsert = sf
        .call(
            Method::PATCH,
            "composite/sobjects/Account/legacy_key__c",
            Some(json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Account"}, "legacy_key__c": "two", "Name": "x"},
                {"attributes": {"type": "Account"}, "legacy_key__c": "three", "Name": "Three"},
            ]})),
        )
        .await;
    assert_eq!(upsert.body[0]["success"], false);
    assert_eq!(
        upsert.body[0]["errors"][0]["statusCode"],
        "DUPLICATE_EXTERNAL_ID"
    );
    assert_eq!(
        (&upsert.body[1]["success"], &upsert.body[1]["created"]),
        (&json!(true), &json!(true))
    );
    sf.sandbox.shutdown().await;
}

#[tokio::test]
async fn tooling_custom_fields_appear_in_describe_and_take_values() {
    let sf = Sf::unlimited().await;
    let body = json!({"FullName": "Account.erp_id__c", "Metadata": {"type": "Text", "length": 40, "externalId": true, "unique": true, "label": "ERP id"}});
    let created = sf
        .call(
            Method::POST,
            "tooling/sobjects/CustomField",
            Some(body.clone()),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["success"], true);
    let describe = sf.get("sobjects/Account/describe/").await;
    let field = describe.body["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["name"] == "erp_id__c")
        .cloned()
        .expect("new field described");
    assert_eq!(
        (&field["externalId"], &field["unique"], &field["length"]),
        (&json!(true), &json!(true), &json!(40))
    );
    let upsert = sf
        .call(
            Method::PATCH,
            "sobjects/Account/erp_id__c/E-1",
            Some(json!({"Name": "Via ERP"})),
        )
        .await;
    assert_eq!(upsert.status, StatusCode::CREATED);
    let again = sf
        .call(Method::POST, "tooling/sobjects/CustomField", Some(body))
        .await;
    assert_eq!(
        (again.status, again.error_code()),
        (
            StatusCode::BAD_REQUEST,
            "DUPLICATE_DEVELOPER_NAME".to_owned()
        )
    );
    sf.sandbox.shutdown().await;
}

#[tokio::test]
async fn ui_token_edits_are_attributed_to_another_user() {
    let sf = Sf::unlimited().await;
    let id = sf.create("Account", json!({"Name": "Mine"})).await;
    let mine = sf.get(&format!("sobjects/Account/{id}")).await;
    let engine_user = mine.body["LastModifiedById"]
        .as_str()
        .expect("user")
        .to_owned();
    assert_eq!(mine.body["CreatedById"], engine_user.as_str());
    let ui = sf
        .admin(Method::POST, "/_sandbox/ui-token", json!({}))
        .await;
    let ui_token = ui.body["access_token"]
        .as_str()
        .expect("ui token")
        .to_owned();
    let ui_user = ui.body["user_id"].as_str().expect("ui user").to_owned();
    assert_ne!(ui_user, engine_user);
    let edit = sf
        .call_as(
            Some(&ui_token),
            Method::PATCH,
            &format!("sobjects/Account/{id}"),
            Some(json!({"Phone": "555"})),
        )
        .await;
    assert_eq!(edit.status, StatusCode::NO_CONTENT);
    let after = sf.get(&format!("sobjects/Account/{id}")).await;
    assert_eq!(
        (
            after.body["LastModifiedById"].as_str(),
            after.body["Phone"].as_str()
        ),
        (Some(ui_user.as_str()), Some("555"))
    );
    let rows = sf
        .query(
            "query",
            &format!("SELECT Id FROM Account WHERE LastModifiedById != '{engine_user}'"),
        )
        .await;
    assert_eq!(
        rows.body["totalSize"], 1,
        "an engine can find edits that are not its own: {}",
        rows.body
    );
    sf.sandbox.shutdown().await;
}
