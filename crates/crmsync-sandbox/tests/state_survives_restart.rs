//! `state_file`: records, custom properties, associations, merges and the id sequence
//! survive a restart; saves happen shortly after changes (not only on shutdown) and are
//! atomic; a corrupt file is a start-up error, not a silently empty portal.

mod support;

use std::time::Duration;

use crmsync_sandbox::{Sandbox, SandboxConfig};
use reqwest::StatusCode;
use serde_json::json;
use support::{Harness, TOKEN, eventually};

fn config(path: &std::path::Path) -> SandboxConfig {
    SandboxConfig {
        token: Some(TOKEN.to_owned()),
        state_file: Some(path.to_owned()),
        ..SandboxConfig::unlimited()
    }
}

#[tokio::test]
async fn the_portal_survives_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("portal.json");
    let h = Harness::start(config(&path)).await;
    let created = h
        .post(
            "/crm/v3/properties/contacts",
            json!({"name": "customer_key", "label": "Customer key", "type": "string",
                   "fieldType": "text", "groupName": "contactinformation", "hasUniqueValue": true}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let contact = h
        .create(
            "contacts",
            json!({"email": "keep@x.io", "customer_key": "c-1"}),
        )
        .await;
    let company = h.create("companies", json!({"name": "Keep Co"})).await;
    let other = h.create("companies", json!({"name": "Merged Co"})).await;
    h.put(
        &format!("/crm/v4/objects/contacts/{contact}/associations/default/companies/{company}"),
        None,
    )
    .await;
    h.post(
        "/crm/v3/objects/companies/merge",
        json!({"primaryObjectId": company, "objectIdToMerge": other}),
    )
    .await;
    // Saved shortly after the change, without waiting for shutdown.
    eventually("the debounced save", Duration::from_secs(5), || async {
        let text = std::fs::read_to_string(&path).ok()?;
        (text.contains("keep@x.io") && text.contains("Keep Co")).then_some(())
    })
    .await;
    h.sandbox.shutdown().await;
    assert!(
        !dir.path().join("portal.json.tmp").exists(),
        "temp file renamed away"
    );

    let h = Harness::start(config(&path)).await;
    let by_email = h
        .get("/crm/v3/objects/contacts/keep@x.io?idProperty=email")
        .await;
    assert_eq!(by_email.status, StatusCode::OK);
    assert_eq!(by_email.body["id"], contact.as_str());
    let by_key = h
        .get("/crm/v3/objects/contacts/c-1?idProperty=customer_key")
        .await;
    assert_eq!(
        by_key.status,
        StatusCode::OK,
        "custom unique property restored"
    );
    let duplicate = h
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "KEEP@x.io"}}),
        )
        .await;
    assert_eq!(
        duplicate.status,
        StatusCode::CONFLICT,
        "unique index rebuilt"
    );
    let links = h
        .get(&format!(
            "/crm/v4/objects/contacts/{contact}/associations/companies"
        ))
        .await;
    assert_eq!(links.body["results"][0]["toObjectId"].to_string(), company);
    let merged = h.get(&format!("/crm/v3/objects/companies/{other}")).await;
    assert_eq!(
        merged.body["id"],
        company.as_str(),
        "merge redirect restored"
    );
    let fresh = h
        .create("deals", json!({"dealname": "After restart"}))
        .await;
    assert!(
        fresh.parse::<u64>().unwrap_or(0) > other.parse::<u64>().unwrap_or(u64::MAX),
        "ids are never reused"
    );
    h.sandbox.shutdown().await;
}

#[tokio::test]
async fn a_corrupt_state_file_is_a_start_up_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("broken.json");
    std::fs::write(&path, "{not json").expect("write");
    let error = Sandbox::start("127.0.0.1:0", config(&path))
        .await
        .err()
        .expect("start fails");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
    assert!(error.to_string().contains("broken.json"), "{error}");
}
