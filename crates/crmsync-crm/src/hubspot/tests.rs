//! Wire-exact tests of the HubSpot client against `wiremock`: the headers and bodies it sends,
//! how it reads batch answers, and its retry policy (what is retried, how often, what the call
//! observer sees). Behaviour against a whole emulated portal is in `tests/hubspot_client.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::SecretString;
use serde_json::json;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{HubspotClient, HubspotConfig};
use crate::{AssociationInput, CallRecord, Crm, ErrorKind, ObjectKind, RecordOutcome, UpsertInput};

const UPSERT_PATH: &str = "/crm/v3/objects/contacts/batch/upsert";

fn config(base_url: &str) -> HubspotConfig {
    let mut config = HubspotConfig::new(base_url, SecretString::from("pat-na1-test"));
    config.max_retries = 3;
    config.timeout = Duration::from_secs(5);
    config
}

fn client_with_log(config: HubspotConfig) -> (HubspotClient, Arc<Mutex<Vec<CallRecord>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    let observer: crate::CallObserver = Arc::new(move |record| {
        sink.lock().expect("observer lock").push(record);
    });
    (
        HubspotClient::new(config, Some(observer)).expect("client"),
        log,
    )
}

fn calls(log: &Arc<Mutex<Vec<CallRecord>>>) -> Vec<CallRecord> {
    log.lock().expect("observer lock").clone()
}

fn input(key: &str, email: &str) -> UpsertInput {
    UpsertInput {
        key: key.to_string(),
        properties: [("email".to_string(), email.to_string())].into(),
        links: Vec::new(),
        new_record: false,
    }
}

fn upsert_result(id: &str, key: &str, new: bool) -> serde_json::Value {
    json!({"id": id, "properties": {"crmsync_id": key, "hs_object_id": id}, "new": new,
           "createdAt": "2024-03-01T10:15:00.123Z", "updatedAt": "2024-03-01T10:15:00.123Z", "archived": false})
}

#[tokio::test]
async fn upsert_sends_token_and_key_and_maps_results_by_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(UPSERT_PATH))
        .and(header("authorization", "Bearer pat-na1-test"))
        .and(header("content-type", "application/json"))
        .and(body_partial_json(json!({"inputs": [
            {"id": "1", "idProperty": "crmsync_id", "properties": {"crmsync_id": "1", "email": "a@x.com"}},
            {"id": "2", "idProperty": "crmsync_id", "properties": {"crmsync_id": "2", "email": "b@x.com"}}
        ]})))
        // Results deliberately out of input order: HubSpot does not promise an order.
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": "COMPLETE",
            "results": [upsert_result("902", "2", false), upsert_result("901", "1", true)],
            "startedAt": "2024-03-01T10:15:00.000Z", "completedAt": "2024-03-01T10:15:00.100Z"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let (client, log) = client_with_log(config(&server.uri()));
    let outcomes = client
        .upsert_batch(
            ObjectKind::Contacts,
            "crmsync_id",
            &[input("1", "a@x.com"), input("2", "b@x.com")],
        )
        .await
        .expect("upsert");
    assert_eq!(
        outcomes,
        vec![
            RecordOutcome::Upserted {
                key: "1".into(),
                crm_id: "901".into(),
                created: true
            },
            RecordOutcome::Upserted {
                key: "2".into(),
                crm_id: "902".into(),
                created: false
            },
        ]
    );
    let calls = calls(&log);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].endpoint, UPSERT_PATH);
    assert_eq!(calls[0].method, "POST");
    assert_eq!(
        (calls[0].status, calls[0].attempt, calls[0].records),
        (Some(200), 1, 2)
    );
    assert_eq!(calls[0].error, None);
}

#[tokio::test]
async fn results_without_the_key_are_matched_by_order() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(UPSERT_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": "COMPLETE",
            "results": [{"id": 901, "properties": {}, "new": true}, {"id": "902", "properties": {}, "new": false}]
        })))
        .mount(&server)
        .await;
    let (client, _) = client_with_log(config(&server.uri()));
    let outcomes = client
        .upsert_batch(
            ObjectKind::Contacts,
            "crmsync_id",
            &[input("1", "a@x.com"), input("2", "b@x.com")],
        )
        .await
        .expect("upsert");
    assert_eq!(
        outcomes,
        vec![
            RecordOutcome::Upserted {
                key: "1".into(),
                crm_id: "901".into(),
                created: true
            },
            RecordOutcome::Upserted {
                key: "2".into(),
                crm_id: "902".into(),
                created: false
            },
        ]
    );
}

#[tokio::test]
async fn multi_status_rejects_only_the_records_it_names() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(UPSERT_PATH))
        .respond_with(ResponseTemplate::new(207).set_body_json(json!({
            "status": "COMPLETE",
            "results": [upsert_result("901", "1", true)],
            "numErrors": 1,
            "errors": [{
                "status": "error", "category": "VALIDATION_ERROR",
                "message": "Property values were not valid: [{\"isValid\":false,\"message\":\"Email address nope is invalid\",\"error\":\"INVALID_EMAIL\",\"name\":\"email\"}]",
                "context": {"ids": ["2"]}
            }]
        })))
        .mount(&server)
        .await;
    let (client, _) = client_with_log(config(&server.uri()));
    let outcomes = client
        .upsert_batch(
            ObjectKind::Contacts,
            "crmsync_id",
            &[input("1", "a@x.com"), input("2", "nope")],
        )
        .await
        .expect("upsert");
    assert_eq!(
        outcomes[0],
        RecordOutcome::Upserted {
            key: "1".into(),
            crm_id: "901".into(),
            created: true
        }
    );
    let RecordOutcome::Rejected { key, error } = &outcomes[1] else {
        panic!("expected a rejection: {outcomes:?}")
    };
    assert_eq!(key, "2");
    assert_eq!(error.kind, ErrorKind::Rejected);
    assert_eq!(error.code.as_deref(), Some("INVALID_EMAIL"));
    assert_eq!(error.property.as_deref(), Some("email"));
    assert!(
        error
            .message
            .starts_with("hubspot rejected contacts record 2: VALIDATION_ERROR"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn an_error_naming_no_record_fails_the_whole_batch() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(UPSERT_PATH))
        .respond_with(ResponseTemplate::new(207).set_body_json(json!({
            "status": "COMPLETE",
            "results": [upsert_result("901", "1", true)],
            "errors": [{"status": "error", "category": "VALIDATION_ERROR", "message": "something went wrong"}]
        })))
        .mount(&server)
        .await;
    let (client, _) = client_with_log(config(&server.uri()));
    let err = client
        .upsert_batch(
            ObjectKind::Contacts,
            "crmsync_id",
            &[input("1", "a@x.com"), input("2", "b@x.com")],
        )
        .await
        .expect_err("cannot tell which record failed");
    assert_eq!(err.kind, ErrorKind::Rejected);
    assert!(
        err.message.contains("something went wrong"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn whole_batch_validation_error_is_returned_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(UPSERT_PATH))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "status": "error", "category": "VALIDATION_ERROR", "correlationId": "aeb5f871-7f07-4993-9211-075dc63e7cbf",
            "message": "Property values were not valid: [{\"isValid\":false,\"message\":\"Email address foo@bar is invalid\",\"error\":\"INVALID_EMAIL\",\"name\":\"email\"}]"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let (client, log) = client_with_log(config(&server.uri()));
    let err = client
        .upsert_batch(ObjectKind::Contacts, "crmsync_id", &[input("1", "foo@bar")])
        .await
        .expect_err("rejected");
    assert_eq!(err.kind, ErrorKind::Rejected);
    assert_eq!(err.code.as_deref(), Some("INVALID_EMAIL"));
    assert_eq!(
        err.message,
        "hubspot rejected contacts batch upsert: 400 VALIDATION_ERROR: Property values were not valid: \
         Email address foo@bar is invalid (INVALID_EMAIL for email)"
    );
    let calls = calls(&log);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].error.as_deref(), Some(err.message.as_str()));
}

#[tokio::test]
async fn server_errors_are_retried_and_every_attempt_is_reported() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(UPSERT_PATH))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({
            "status": "error", "category": "INTERNAL_ERROR", "message": "Service unavailable", "correlationId": "c"
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(UPSERT_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"results": [upsert_result("901", "1", true)]})),
        )
        .mount(&server)
        .await;
    let (client, log) = client_with_log(config(&server.uri()));
    client
        .upsert_batch(ObjectKind::Contacts, "crmsync_id", &[input("1", "a@x.com")])
        .await
        .expect("retried");
    let calls = calls(&log);
    assert_eq!(
        calls
            .iter()
            .map(|c| (c.attempt, c.status))
            .collect::<Vec<_>>(),
        vec![(1, Some(503)), (2, Some(200))]
    );
    assert_eq!(
        calls[0].error.as_deref(),
        Some("hubspot failed contacts batch upsert: 503 INTERNAL_ERROR: Service unavailable")
    );
}

#[tokio::test]
async fn rate_limited_calls_wait_retry_after_and_log_the_limit_headers() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(UPSERT_PATH))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .insert_header("x-hubspot-ratelimit-max", "100")
                .insert_header("x-hubspot-ratelimit-remaining", "0")
                .insert_header("x-hubspot-ratelimit-interval-milliseconds", "10000")
                .set_body_json(json!({
                    "status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                    "errorType": "RATE_LIMIT", "correlationId": "c", "policyName": "TEN_SECONDLY_ROLLING"
                })),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(UPSERT_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"results": [upsert_result("901", "1", true)]})),
        )
        .mount(&server)
        .await;
    let (client, log) = client_with_log(config(&server.uri()));
    let started = std::time::Instant::now();
    client
        .upsert_batch(ObjectKind::Contacts, "crmsync_id", &[input("1", "a@x.com")])
        .await
        .expect("retried");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
    let calls = calls(&log);
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].status, Some(429));
    assert!(
        calls[0]
            .rate_limit_headers
            .contains(&("x-hubspot-ratelimit-remaining".into(), "0".into()))
    );
    assert!(
        calls[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("TEN_SECONDLY_ROLLING"))
    );
    assert_eq!(calls[1].attempt, 2);
}

#[tokio::test]
async fn retries_stop_after_max_retries() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/properties/deals"))
        .respond_with(ResponseTemplate::new(500).set_body_string("oops"))
        .expect(3)
        .mount(&server)
        .await;
    let mut config = config(&server.uri());
    config.max_retries = 2;
    let (client, log) = client_with_log(config);
    let err = client
        .property_names(ObjectKind::Deals)
        .await
        .expect_err("keeps failing");
    assert_eq!(err.kind, ErrorKind::Server);
    assert_eq!(
        err.message,
        "hubspot failed deals property listing: 500: oops"
    );
    assert_eq!(
        calls(&log).iter().map(|c| c.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}

#[tokio::test]
async fn connection_errors_are_transport_and_retried() {
    // A port nobody listens on: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut config = config(&format!("http://127.0.0.1:{port}"));
    config.max_retries = 1;
    let (client, log) = client_with_log(config);
    let err = client
        .property_names(ObjectKind::Contacts)
        .await
        .expect_err("nobody listens");
    assert_eq!(err.kind, ErrorKind::Transport);
    assert!(
        err.message
            .starts_with("hubspot contacts property listing failed: could not connect"),
        "{}",
        err.message
    );
    let calls = calls(&log);
    assert_eq!(
        calls
            .iter()
            .map(|c| (c.attempt, c.status))
            .collect::<Vec<_>>(),
        vec![(1, None), (2, None)]
    );
}

#[tokio::test]
async fn ensure_id_property_creates_a_unique_text_property_when_missing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/properties/companies/crmsync_id"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "status": "error", "category": "OBJECT_NOT_FOUND", "message": "Unable to find property crmsync_id", "correlationId": "c"
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/properties/companies"))
        .and(body_partial_json(json!({
            "name": "crmsync_id", "type": "string", "fieldType": "text",
            "groupName": "companyinformation", "hasUniqueValue": true
        })))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"name": "crmsync_id", "hasUniqueValue": true})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let (client, log) = client_with_log(config(&server.uri()));
    client
        .ensure_id_property(ObjectKind::Companies, "crmsync_id")
        .await
        .expect("created");
    let endpoints: Vec<String> = calls(&log).into_iter().map(|c| c.endpoint).collect();
    assert_eq!(
        endpoints,
        vec![
            "/crm/v3/properties/companies/{propertyName}",
            "/crm/v3/properties/companies"
        ]
    );
}

#[tokio::test]
async fn ensure_id_property_rechecks_after_a_create_race() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/properties/contacts/crmsync_id"))
        .respond_with(ResponseTemplate::new(404).set_body_json(
            json!({"status": "error", "category": "OBJECT_NOT_FOUND", "message": "not found"}),
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/properties/contacts/crmsync_id"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"name": "crmsync_id", "type": "string", "hasUniqueValue": true}),
            ),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/properties/contacts"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({
            "status": "error", "category": "OBJECT_ALREADY_EXISTS", "message": "A property named 'crmsync_id' already exists."
        })))
        .expect(1)
        .mount(&server)
        .await;
    let (client, _) = client_with_log(config(&server.uri()));
    client
        .ensure_id_property(ObjectKind::Contacts, "crmsync_id")
        .await
        .expect("the other creator's property is fine");
}

#[tokio::test]
async fn ensure_id_property_refuses_a_non_unique_property() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/properties/contacts/crmsync_id"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"name": "crmsync_id", "type": "string", "hasUniqueValue": false}),
        ))
        .mount(&server)
        .await;
    let (client, _) = client_with_log(config(&server.uri()));
    let err = client
        .ensure_id_property(ObjectKind::Contacts, "crmsync_id")
        .await
        .expect_err("not unique");
    assert_eq!(err.kind, ErrorKind::Schema);
    assert!(
        err.message
            .contains("contacts property crmsync_id exists but is not unique-valued"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("archive crmsync_id"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn associations_use_the_default_batch_endpoint() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v4/associations/deals/companies/batch/associate/default"))
        .and(body_partial_json(json!({"inputs": [{"from": {"id": "11"}, "to": {"id": "22"}}]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": "COMPLETE",
            "results": [{"from": {"id": "11"}, "to": {"id": 22}, "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 341}}]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let (client, log) = client_with_log(config(&server.uri()));
    client
        .associate_batch(
            ObjectKind::Deals,
            ObjectKind::Companies,
            &[AssociationInput {
                from_id: "11".into(),
                to_id: "22".into(),
            }],
        )
        .await
        .expect("associated");
    assert_eq!(calls(&log)[0].records, 1);
}

#[tokio::test]
async fn empty_and_oversized_batches_send_nothing() {
    let server = MockServer::start().await;
    let (client, log) = client_with_log(config(&server.uri()));
    assert_eq!(
        client
            .upsert_batch(ObjectKind::Contacts, "crmsync_id", &[])
            .await,
        Ok(vec![])
    );
    let too_many: Vec<UpsertInput> = (0..101).map(|i| input(&i.to_string(), "a@x.com")).collect();
    let err = client
        .upsert_batch(ObjectKind::Contacts, "crmsync_id", &too_many)
        .await
        .expect_err("too big");
    assert_eq!(err.kind, ErrorKind::Rejected);
    let err = client
        .upsert_batch(ObjectKind::Contacts, "../x", &[input("1", "a@x.com")])
        .await
        .expect_err("bad name");
    assert_eq!(err.kind, ErrorKind::Config);
    assert!(calls(&log).is_empty());
}

#[test]
fn config_debug_hides_the_token() {
    let config = HubspotConfig::new(
        "https://api.hubapi.com",
        SecretString::from("pat-na1-secret"),
    );
    let shown = format!("{config:?}");
    assert!(!shown.contains("pat-na1-secret"), "{shown}");
    let client = HubspotClient::new(config, None).expect("client");
    assert!(!format!("{client:?}").contains("pat-na1-secret"));
}

#[test]
fn bad_base_url_is_a_config_error() {
    let err = HubspotClient::new(
        HubspotConfig::new("api.hubapi.com", SecretString::from("t")),
        None,
    )
    .expect_err("no scheme");
    assert_eq!(err.kind, ErrorKind::Config);
}
