//! SOQL (filters, relationship fields, ORDER BY SystemModstamp, Id, paging by locator),
//! `queryAll` with deleted and merged-away rows, and getUpdated/getDeleted.

mod sf_support;

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sf_support::{DATA, Sf};

fn ids(reply: &sf_support::Reply) -> Vec<String> {
    reply.body["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| r["Id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn soql_filters_orders_and_pages() {
    let sf = Sf::unlimited().await;
    let records: Vec<Value> = (0..250)
        .map(|i| json!({"attributes": {"type": "Account"}, "Name": format!("pg-{i:04}"), "NumberOfEmployees": i}))
        .collect();
    let mut created = Vec::new();
    for chunk in records.chunks(200) {
        let reply = sf
            .call(
                Method::POST,
                "composite/sobjects",
                Some(json!({"allOrNone": true, "records": chunk})),
            )
            .await;
        created.extend(
            reply
                .body
                .as_array()
                .expect("results")
                .iter()
                .filter_map(|r| r["id"].as_str().map(str::to_owned)),
        );
    }
    assert_eq!(created.len(), 250);

    let some = sf
        .query("query", "SELECT Id, Name FROM Account WHERE (NumberOfEmployees >= 10 AND NumberOfEmployees < 13) OR Name IN ('pg-0100') ORDER BY Name DESC")
        .await;
    assert_eq!(some.status, StatusCode::OK, "{}", some.body);
    let names: Vec<&str> = some.body["records"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["Name"].as_str())
        .collect();
    assert_eq!(names, vec!["pg-0100", "pg-0012", "pg-0011", "pg-0010"]);
    let not = sf
        .query(
            "query",
            "SELECT COUNT() FROM Account WHERE NOT Name LIKE 'pg-00%'",
        )
        .await;
    assert_eq!(not.body["totalSize"], 150);
    let window = sf
        .query(
            "query",
            "SELECT Id FROM Account ORDER BY Name LIMIT 3 OFFSET 5",
        )
        .await;
    assert_eq!(ids(&window), created[5..8].to_vec());

    let request = sf
        .http
        .get(sf.url(&format!(
            "{DATA}/query/?q=SELECT+Id+FROM+Account+ORDER+BY+Name"
        )))
        .bearer_auth(&sf.token)
        .header("Sforce-Query-Options", "batchSize=200");
    let first: Value = request
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (first["totalSize"].as_u64(), first["done"].as_bool()),
        (Some(250), Some(false))
    );
    let next = first["nextRecordsUrl"]
        .as_str()
        .expect("locator")
        .to_owned();
    assert!(next.starts_with(&format!("{DATA}/query/")), "{next}");
    let second = sf.get(&next).await;
    assert_eq!(second.body["done"], true);
    assert!(second.body.get("nextRecordsUrl").is_none());
    let mut all: Vec<String> = first["records"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["Id"].as_str().map(str::to_owned))
        .collect();
    all.extend(ids(&second));
    assert_eq!(all, created, "both pages, every row once, in order");

    for (soql, code) in [
        ("SELECT Id FROM Account WHERE", "MALFORMED_QUERY"),
        ("SELECT Nope__c FROM Account", "INVALID_FIELD"),
        ("SELECT Id FROM Nope__c", "INVALID_TYPE"),
        (
            "SELECT Id FROM Account WHERE SystemModstamp > '2024-01-01'",
            "INVALID_FIELD",
        ),
    ] {
        let reply = sf.query("query", soql).await;
        assert_eq!(
            (reply.status, reply.error_code()),
            (StatusCode::BAD_REQUEST, code.to_owned()),
            "{soql}"
        );
    }
    sf.sandbox.shutdown().await;
}

#[tokio::test]
async fn systemmodstamp_and_id_order_follows_updates() {
    let sf = Sf::unlimited().await;
    let a = sf.create("Account", json!({"Name": "sm-a"})).await;
    let b = sf.create("Account", json!({"Name": "sm-b"})).await;
    let stamp = |reply: &sf_support::Reply| {
        reply.body["SystemModstamp"]
            .as_str()
            .expect("stamp")
            .to_owned()
    };
    let before = stamp(&sf.get(&format!("sobjects/Account/{b}")).await);
    assert!(before.ends_with(".000+0000"), "whole seconds: {before}");
    // Touch `a` until (deadline) its stamp is a later second than `b`'s.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        sf.call(
            Method::PATCH,
            &format!("sobjects/Account/{a}"),
            Some(json!({"Phone": "1"})),
        )
        .await;
        if stamp(&sf.get(&format!("sobjects/Account/{a}")).await) > before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "SystemModstamp never moved forward"
        );
        tokio::task::yield_now().await;
    }
    let literal = format!("{}Z", &before[..19]);
    let soql = format!(
        "SELECT Id, SystemModstamp FROM Account WHERE Name LIKE 'sm-%' AND SystemModstamp >= {literal} ORDER BY SystemModstamp, Id"
    );
    let rows = sf.query("query", &soql).await;
    assert_eq!(
        ids(&rows),
        vec![b.clone(), a.clone()],
        "the updated row moves to the end: {}",
        rows.body
    );
    let later = sf
        .query(
            "query",
            &format!("SELECT Id FROM Account WHERE SystemModstamp > {literal}"),
        )
        .await;
    assert_eq!(ids(&later), vec![a], "only rows changed after the literal");
    sf.sandbox.shutdown().await;
}

#[tokio::test]
async fn query_all_shows_deleted_and_merged_rows_and_replication_lists_them() {
    let sf = Sf::unlimited().await;
    let master = sf.create("Account", json!({"Name": "Master"})).await;
    let victim = sf.create("Account", json!({"Name": "Victim"})).await;
    let gone = sf.create("Account", json!({"Name": "Gone"})).await;
    let child = sf
        .create("Contact", json!({"LastName": "Child", "AccountId": victim}))
        .await;
    assert_eq!(
        sf.call(Method::DELETE, &format!("sobjects/Account/{gone}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let merged = sf
        .admin(
            Method::POST,
            "/_sandbox/merge",
            json!({"object": "Account", "master": master, "victims": [victim]}),
        )
        .await;
    assert_eq!(merged.status, StatusCode::OK, "{}", merged.body);

    let live = sf.query("query", "SELECT Id FROM Account").await;
    assert_eq!(ids(&live), vec![master.clone()]);
    let everything = sf
        .query(
            "queryAll",
            "SELECT Id, IsDeleted, MasterRecordId FROM Account ORDER BY Name",
        )
        .await;
    let rows = everything.body["records"].as_array().expect("rows");
    assert_eq!(rows.len(), 3);
    let victim_row = rows
        .iter()
        .find(|r| r["Id"] == victim.as_str())
        .expect("merged row");
    assert_eq!(
        (
            &victim_row["IsDeleted"],
            victim_row["MasterRecordId"].as_str()
        ),
        (&json!(true), Some(master.as_str()))
    );
    let kid = sf
        .query("query", "SELECT Id, Account.Name FROM Contact")
        .await;
    assert_eq!(
        kid.body["records"][0]["Account"]["Name"], "Master",
        "children follow the master: {}",
        kid.body
    );
    assert_eq!(
        kid.body["records"][0]["Account"]["attributes"]["type"],
        "Account"
    );
    assert_eq!(
        sf.get(&format!("sobjects/Account/{gone}")).await.status,
        StatusCode::NOT_FOUND
    );

    let now = chrono::Utc::now();
    let start = (now - chrono::Duration::minutes(5)).format("%Y-%m-%dT%H:%M:%S%%2B00:00");
    let end = (now + chrono::Duration::minutes(1)).format("%Y-%m-%dT%H:%M:%S%%2B00:00");
    let updated = sf
        .get(&format!(
            "sobjects/Account/updated/?start={start}&end={end}"
        ))
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["ids"], json!([master]));
    let deleted = sf
        .get(&format!(
            "sobjects/Account/deleted/?start={start}&end={end}"
        ))
        .await;
    let mut gone_ids: Vec<&str> = deleted.body["deletedRecords"]
        .as_array()
        .expect("deleted")
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect();
    gone_ids.sort_unstable();
    let mut expected = vec![gone.as_str(), victim.as_str()];
    expected.sort_unstable();
    assert_eq!(gone_ids, expected);
    assert!(
        deleted.body["latestDateCovered"]
            .as_str()
            .is_some_and(|s| s.ends_with("+0000"))
    );
    let backwards = sf
        .get(&format!(
            "sobjects/Account/updated/?start={end}&end={start}"
        ))
        .await;
    assert_eq!(backwards.error_code(), "INVALID_REPLICATION_DATE");
    let _ = child;
    sf.sandbox.shutdown().await;
}
