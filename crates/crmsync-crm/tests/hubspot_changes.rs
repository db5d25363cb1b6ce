//! `Crm::changes_since` against the sandbox: every record modified since a position, oldest
//! first, across search pages, the position's own records left out, searches paced to
//! HubSpot's 5 a second; and (against a scripted server) the restart from the last seen
//! timestamp before search's 10,000-result cap.

use std::time::{Duration, Instant};

use crmsync_crm::hubspot::{HubspotClient, HubspotConfig};
use crmsync_crm::{Crm, ObjectKind, UpsertInput};
use crmsync_sandbox::{Sandbox, SandboxConfig};
use secrecy::SecretString;
use serde_json::json;
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn client(base_url: &str) -> HubspotClient {
    let mut config = HubspotConfig::new(base_url, SecretString::from("t"));
    config.requests_per_interval = 100_000;
    config.interval = Duration::from_secs(1);
    HubspotClient::new(config, None).expect("client")
}

#[tokio::test]
async fn changes_come_oldest_first_across_pages_and_after_the_position() {
    let sandbox = Sandbox::start("127.0.0.1:0", SandboxConfig::unlimited())
        .await
        .expect("sandbox");
    let crm = client(&sandbox.base_url());
    crm.ensure_id_property(ObjectKind::Companies, "crmsync_id")
        .await
        .expect("id property");
    for chunk in (0..450).collect::<Vec<_>>().chunks(100) {
        let inputs: Vec<UpsertInput> = chunk
            .iter()
            .map(|i| UpsertInput {
                key: i.to_string(),
                properties: [("name".to_string(), format!("Company {i}"))].into(),
                links: Vec::new(),
                new_record: false,
            })
            .collect();
        crm.upsert_batch(ObjectKind::Companies, "crmsync_id", &inputs)
            .await
            .expect("upsert");
    }
    let props = vec!["name".to_string()];
    let started = Instant::now();
    let all = crm
        .changes_since(ObjectKind::Companies, 0, None, &props, 10_000)
        .await
        .expect("changes");
    // 450 records take three search pages of 200: at 5 searches a second, at least 400 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(all.len(), 450);
    assert!(
        all.windows(2)
            .all(|w| (w[0].modified_ms, w[0].crm_id.len(), &w[0].crm_id)
                <= (w[1].modified_ms, w[1].crm_id.len(), &w[1].crm_id))
    );
    assert!(
        all.iter()
            .all(|r| r.properties["name"].starts_with("Company "))
    );

    // From the position of the 300th record: exactly the 150 after it.
    let at = &all[299];
    let rest = crm
        .changes_since(
            ObjectKind::Companies,
            at.modified_ms,
            Some(&at.crm_id),
            &props,
            10_000,
        )
        .await
        .expect("changes");
    let want: Vec<&str> = all[300..].iter().map(|r| r.crm_id.as_str()).collect();
    let got: Vec<&str> = rest.iter().map(|r| r.crm_id.as_str()).collect();
    assert_eq!(got, want);
}

fn record(id: &str, ms: &str) -> serde_json::Value {
    json!({"id": id, "properties": {"hs_object_id": id, "hs_lastmodifieddate": ms, "name": format!("n{id}")}})
}

#[tokio::test]
async fn near_the_result_cap_the_search_restarts_from_the_last_timestamp() {
    let server = MockServer::start().await;
    // First search from 0: two records, and a next page deep enough to hit the 10,000 cap.
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/companies/search"))
        .and(body_partial_json(
            json!({"filterGroups": [{"filters": [{"value": "0"}]}]}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "total": 12000,
            "results": [record("1", "1000"), record("2", "2000")],
            "paging": {"next": {"after": "9900"}}
        })))
        .expect(1)
        .mount(&server)
        .await;
    // The restart from the last timestamp seen re-sends record 2 (skipped) and then 3.
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/companies/search"))
        .and(body_partial_json(
            json!({"filterGroups": [{"filters": [{"value": "2000", "operator": "GTE"}]}]}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "total": 2,
            "results": [record("2", "2000"), record("3", "2026-11-28T10:00:00.000Z")]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let crm = client(&server.uri());
    let changes = crm
        .changes_since(
            ObjectKind::Companies,
            0,
            None,
            &["name".to_string()],
            10_000,
        )
        .await
        .expect("changes");
    let ids: Vec<&str> = changes.iter().map(|c| c.crm_id.as_str()).collect();
    assert_eq!(ids, ["1", "2", "3"]);
    assert_eq!(changes[2].modified_ms, 1_795_860_000_000);
    assert_eq!(changes[0].properties["name"], "n1");
}
