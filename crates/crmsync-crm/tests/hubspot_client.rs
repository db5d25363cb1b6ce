//! The HubSpot client against the sandbox emulator over a real socket: schema setup, idempotent
//! batch upserts, HubSpot's validation errors, associations, rate limits and authentication,
//! each checked through the client's answers, the call observer and the sandbox's own stats.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crmsync_crm::hubspot::{HubspotClient, HubspotConfig};
use crmsync_crm::{
    AssociationInput, CallObserver, CallRecord, Crm, ErrorKind, ObjectKind, RecordOutcome,
    UpsertInput,
};
use crmsync_sandbox::{Sandbox, SandboxConfig};
use secrecy::SecretString;
use serde_json::Value;

const ID_PROPERTY: &str = "crmsync_id";

type CallLog = Arc<Mutex<Vec<CallRecord>>>;

fn client(sandbox: &Sandbox, token: &str) -> (HubspotClient, CallLog) {
    let mut config = HubspotConfig::new(sandbox.base_url(), SecretString::from(token));
    config.timeout = Duration::from_secs(10);
    let log: CallLog = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    let observer: CallObserver = Arc::new(move |record| {
        sink.lock().expect("observer lock").push(record);
    });
    (
        HubspotClient::new(config, Some(observer)).expect("client"),
        log,
    )
}

fn calls(log: &CallLog) -> Vec<CallRecord> {
    log.lock().expect("observer lock").clone()
}

async fn stats(sandbox: &Sandbox) -> Value {
    reqwest::get(format!("{}/_sandbox/stats", sandbox.base_url()))
        .await
        .expect("stats request")
        .json()
        .await
        .expect("stats json")
}

/// How many calls the sandbox saw for `method endpoint` answered with `status`.
fn stat_count(stats: &Value, method: &str, endpoint: &str, status: u64) -> u64 {
    stats["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["method"] == method && c["endpoint"] == endpoint && c["status"] == status)
        .filter_map(|c| c["count"].as_u64())
        .sum()
}

fn contact(i: usize) -> UpsertInput {
    let properties: BTreeMap<String, String> = [
        ("email".to_string(), format!("customer{i}@example.com")),
        ("firstname".to_string(), format!("Customer {i}")),
    ]
    .into();
    UpsertInput {
        key: format!("cust-{i}"),
        properties,
        links: Vec::new(),
        new_record: false,
    }
}

fn crm_ids(outcomes: &[RecordOutcome]) -> Vec<(String, bool)> {
    outcomes
        .iter()
        .map(|o| match o {
            RecordOutcome::Upserted {
                crm_id, created, ..
            } => (crm_id.clone(), *created),
            RecordOutcome::Rejected { key, error } => panic!("record {key} rejected: {error}"),
        })
        .collect()
}

#[tokio::test]
async fn ensure_id_property_creates_it_once_and_is_idempotent() {
    let sandbox = Sandbox::start("127.0.0.1:0", SandboxConfig::unlimited())
        .await
        .expect("sandbox");
    let (client, _) = client(&sandbox, "pat-test");

    client
        .ensure_id_property(ObjectKind::Contacts, ID_PROPERTY)
        .await
        .expect("created");
    client
        .ensure_id_property(ObjectKind::Contacts, ID_PROPERTY)
        .await
        .expect("idempotent");
    let names = client
        .property_names(ObjectKind::Contacts)
        .await
        .expect("listing");
    assert!(names.iter().any(|n| n == ID_PROPERTY), "{names:?}");
    assert!(names.iter().any(|n| n == "email"), "{names:?}");

    let stats = stats(&sandbox).await;
    assert_eq!(
        stat_count(&stats, "POST", "/crm/v3/properties/contacts", 201),
        1,
        "{stats}"
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn upserting_250_records_then_replaying_a_batch_creates_no_duplicates() {
    let sandbox = Sandbox::start("127.0.0.1:0", SandboxConfig::unlimited())
        .await
        .expect("sandbox");
    let (client, log) = client(&sandbox, "pat-test");
    client
        .ensure_id_property(ObjectKind::Contacts, ID_PROPERTY)
        .await
        .expect("id property");

    let records: Vec<UpsertInput> = (0..250).map(contact).collect();
    let mut first_ids = Vec::new();
    for chunk in records.chunks(client.max_batch()) {
        let outcomes = client
            .upsert_batch(ObjectKind::Contacts, ID_PROPERTY, chunk)
            .await
            .expect("upsert");
        assert_eq!(outcomes.len(), chunk.len());
        for (outcome, input) in outcomes.iter().zip(chunk) {
            assert!(
                matches!(outcome, RecordOutcome::Upserted { key, created: true, .. } if *key == input.key),
                "{outcome:?}"
            );
        }
        first_ids.extend(crm_ids(&outcomes));
    }
    assert_eq!(stats(&sandbox).await["objects"]["contacts"], 250);

    // The same first batch again, as after a crash before we stored the answer.
    let replay = client
        .upsert_batch(ObjectKind::Contacts, ID_PROPERTY, &records[..100])
        .await
        .expect("replay");
    let replay_ids = crm_ids(&replay);
    assert!(
        replay_ids.iter().all(|(_, created)| !created),
        "{replay_ids:?}"
    );
    let first: Vec<&String> = first_ids[..100].iter().map(|(id, _)| id).collect();
    let again: Vec<&String> = replay_ids.iter().map(|(id, _)| id).collect();
    assert_eq!(first, again, "a replay must land on the same records");
    assert_eq!(stats(&sandbox).await["objects"]["contacts"], 250);

    let upserts: Vec<CallRecord> = calls(&log)
        .into_iter()
        .filter(|c| c.endpoint == "/crm/v3/objects/contacts/batch/upsert")
        .collect();
    assert_eq!(
        upserts.iter().map(|c| c.records).collect::<Vec<_>>(),
        vec![100, 100, 50, 100]
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn an_invalid_email_fails_the_batch_with_invalid_email() {
    let sandbox = Sandbox::start("127.0.0.1:0", SandboxConfig::unlimited())
        .await
        .expect("sandbox");
    let (client, log) = client(&sandbox, "pat-test");
    client
        .ensure_id_property(ObjectKind::Contacts, ID_PROPERTY)
        .await
        .expect("id property");

    let mut bad = contact(2);
    bad.properties.insert("email".into(), "not-an-email".into());
    let err = client
        .upsert_batch(ObjectKind::Contacts, ID_PROPERTY, &[contact(1), bad])
        .await
        .expect_err("hubspot fails the whole batch");
    assert_eq!(err.kind, ErrorKind::Rejected, "{err}");
    assert_eq!(err.status, Some(400));
    assert_eq!(err.code.as_deref(), Some("INVALID_EMAIL"), "{err}");
    assert_eq!(err.property.as_deref(), Some("email"));
    assert!(
        err.message
            .starts_with("hubspot rejected contacts batch upsert: 400 VALIDATION_ERROR:"),
        "{err}"
    );
    assert!(err.message.contains("(INVALID_EMAIL for email)"), "{err}");
    // A 400 is never retried.
    let upserts = calls(&log)
        .into_iter()
        .filter(|c| c.endpoint.ends_with("/batch/upsert"))
        .count();
    assert_eq!(upserts, 1);
    assert_eq!(stats(&sandbox).await["objects"]["contacts"], 0);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn deal_to_company_associations_are_visible_both_ways() {
    let sandbox = Sandbox::start("127.0.0.1:0", SandboxConfig::unlimited())
        .await
        .expect("sandbox");
    let (client, _) = client(&sandbox, "pat-test");
    client
        .ensure_id_property(ObjectKind::Companies, ID_PROPERTY)
        .await
        .expect("companies key");
    client
        .ensure_id_property(ObjectKind::Deals, ID_PROPERTY)
        .await
        .expect("deals key");

    let company = UpsertInput {
        key: "cust-1".into(),
        properties: [("name".to_string(), "Acme".to_string())].into(),
        links: Vec::new(),
        new_record: false,
    };
    let deal = UpsertInput {
        key: "order-1".into(),
        properties: [
            ("dealname".to_string(), "Order 1".to_string()),
            ("pipeline".to_string(), "default".to_string()),
            ("dealstage".to_string(), "closedwon".to_string()),
            ("amount".to_string(), "1000".to_string()),
        ]
        .into(),
        links: Vec::new(),
        new_record: false,
    };
    let company_id = crm_ids(
        &client
            .upsert_batch(ObjectKind::Companies, ID_PROPERTY, &[company])
            .await
            .expect("company"),
    )[0]
    .0
    .clone();
    let deal_id = crm_ids(
        &client
            .upsert_batch(ObjectKind::Deals, ID_PROPERTY, &[deal])
            .await
            .expect("deal"),
    )[0]
    .0
    .clone();

    let pair = AssociationInput {
        from_id: deal_id.clone(),
        to_id: company_id.clone(),
    };
    client
        .associate_batch(
            ObjectKind::Deals,
            ObjectKind::Companies,
            std::slice::from_ref(&pair),
        )
        .await
        .expect("associate");
    // Associating again is not an error (trait contract).
    client
        .associate_batch(ObjectKind::Deals, ObjectKind::Companies, &[pair])
        .await
        .expect("associate again");

    let http = reqwest::Client::new();
    let list = |from: &str, id: &str, to: &str| {
        let url = format!(
            "{}/crm/v4/objects/{from}/{id}/associations/{to}",
            sandbox.base_url()
        );
        let request = http.get(url).bearer_auth("pat-test");
        async move {
            let body: Value = request
                .send()
                .await
                .expect("list")
                .json()
                .await
                .expect("json");
            body["results"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| match &r["toObjectId"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<String>>()
        }
    };
    assert_eq!(
        list("deals", &deal_id, "companies").await,
        vec![company_id.clone()]
    );
    assert_eq!(list("companies", &company_id, "deals").await, vec![deal_id]);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn rate_limited_calls_are_retried_until_they_pass() {
    let sandbox_config = SandboxConfig {
        interval_limit: Some(3),
        interval_ms: 1000,
        ..SandboxConfig::unlimited()
    };
    let sandbox = Sandbox::start("127.0.0.1:0", sandbox_config)
        .await
        .expect("sandbox");
    // The client believes in HubSpot's 100 per 10 s, so only the sandbox's 429s hold it back.
    let (client, log) = client(&sandbox, "pat-test");

    for _ in 0..8 {
        client
            .property_names(ObjectKind::Contacts)
            .await
            .expect("retried through the 429s");
    }

    let calls = calls(&log);
    let limited: Vec<&CallRecord> = calls.iter().filter(|c| c.status == Some(429)).collect();
    assert!(!limited.is_empty(), "expected 429s: {calls:?}");
    assert!(
        limited.iter().all(|c| c
            .error
            .as_deref()
            .is_some_and(|e| e.contains("TEN_SECONDLY_ROLLING"))),
        "{limited:?}"
    );
    assert!(
        calls.iter().any(|c| c.status == Some(200) && c.attempt > 1),
        "a retry should have succeeded: {calls:?}"
    );
    assert!(
        calls.iter().all(|c| c
            .rate_limit_headers
            .iter()
            .any(|(n, _)| n == "x-hubspot-ratelimit-remaining")),
        "{calls:?}"
    );
    assert_eq!(calls.iter().filter(|c| c.status == Some(200)).count(), 8);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_wrong_or_missing_token_is_an_auth_error_and_not_retried() {
    let sandbox_config = SandboxConfig {
        token: Some("pat-right".into()),
        ..SandboxConfig::unlimited()
    };
    let sandbox = Sandbox::start("127.0.0.1:0", sandbox_config)
        .await
        .expect("sandbox");

    for token in ["pat-wrong", ""] {
        let (client, log) = client(&sandbox, token);
        let err = client
            .upsert_batch(ObjectKind::Contacts, ID_PROPERTY, &[contact(1)])
            .await
            .expect_err("refused");
        assert_eq!(err.kind, ErrorKind::Auth, "{err}");
        assert!(!err.is_retryable());
        assert!(
            err.message.starts_with(
                "hubspot refused the credentials for contacts batch upsert: 401 INVALID_AUTHENTICATION"
            ),
            "{err}"
        );
        let calls = calls(&log);
        assert_eq!(calls.len(), 1, "auth errors are not retried: {calls:?}");
        assert_eq!(calls[0].status, Some(401));
    }

    let (client, _) = client(&sandbox, "pat-right");
    client
        .ensure_id_property(ObjectKind::Contacts, ID_PROPERTY)
        .await
        .expect("right token works");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn the_account_is_the_portal_and_its_type_decides_production() {
    let sandbox = Sandbox::start(
        "127.0.0.1:0",
        SandboxConfig {
            portal_id: 4242,
            account_type: "DEVELOPER_TEST".into(),
            ..SandboxConfig::unlimited()
        },
    )
    .await
    .expect("sandbox");
    let (hs, _) = client(&sandbox, "t");
    let account = hs.account().await.expect("account").expect("a portal");
    assert_eq!(account.id, "hubspot:4242");
    assert_eq!(account.kind, "DEVELOPER_TEST");
    assert!(!account.production);

    let production = Sandbox::start(
        "127.0.0.1:0",
        SandboxConfig {
            account_type: "STANDARD".into(),
            ..SandboxConfig::unlimited()
        },
    )
    .await
    .expect("sandbox");
    let (hs, _) = client(&production, "t");
    let account = hs.account().await.expect("account").expect("a portal");
    assert!(account.production, "STANDARD is a production account");
}
