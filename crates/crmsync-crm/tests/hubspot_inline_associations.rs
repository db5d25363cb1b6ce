//! The HubSpot client writes the links of records new to the engine inside their batch create
//! (`associations` per input, FACTS 2.3/2.6), against the sandbox over a real socket: a first
//! import costs one call per 100 records and no association call; a replay after a lost link
//! (the records exist already) duplicates nothing and reports `created: false`, so the engine
//! associates them as any existing record; a value held by a record that is not ours is refused,
//! not adopted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crmsync_crm::hubspot::{HubspotClient, HubspotConfig};
use crmsync_crm::{
    CallObserver, CallRecord, Crm, ErrorKind, ObjectKind, ParentRef, RecordOutcome, UpsertInput,
};
use crmsync_sandbox::{Sandbox, SandboxConfig};
use secrecy::SecretString;
use serde_json::Value;

const ID_PROPERTY: &str = "crmsync_id";

type CallLog = Arc<Mutex<Vec<CallRecord>>>;

async fn setup() -> (Sandbox, HubspotClient, CallLog) {
    let sandbox = Sandbox::start("127.0.0.1:0", SandboxConfig::unlimited())
        .await
        .expect("sandbox");
    let mut config = HubspotConfig::new(sandbox.base_url(), SecretString::from("pat-test"));
    config.timeout = Duration::from_secs(10);
    let log: CallLog = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    let observer: CallObserver = Arc::new(move |record| {
        sink.lock().expect("observer lock").push(record);
    });
    let client = HubspotClient::new(config, Some(observer)).expect("client");
    for object in [ObjectKind::Companies, ObjectKind::Contacts] {
        client
            .ensure_id_property(object, ID_PROPERTY)
            .await
            .expect("id property");
    }
    (sandbox, client, log)
}

/// The calls of `operation` since the log was last cleared, and clears it.
fn take(log: &CallLog) -> Vec<CallRecord> {
    std::mem::take(&mut *log.lock().expect("observer lock"))
}

fn count(calls: &[CallRecord], operation: &str) -> usize {
    calls.iter().filter(|c| c.operation == operation).count()
}

fn company(i: usize) -> UpsertInput {
    UpsertInput {
        key: format!("cust-{i}"),
        properties: [("name".to_string(), format!("Company {i}"))].into(),
        links: Vec::new(),
        new_record: true,
    }
}

fn contact(i: usize, company_id: &str) -> UpsertInput {
    let properties: BTreeMap<String, String> = [
        ("email".to_string(), format!("person{i}@example.com")),
        ("firstname".to_string(), format!("Person {i}")),
    ]
    .into();
    UpsertInput {
        key: format!("person-{i}"),
        properties,
        links: vec![ParentRef {
            object: ObjectKind::Companies,
            crm_id: company_id.to_string(),
        }],
        new_record: true,
    }
}

fn upserted(outcomes: &[RecordOutcome]) -> Vec<(String, bool)> {
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

/// A GET with the sandbox's token.
async fn get(url: String) -> reqwest::Result<reqwest::Response> {
    reqwest::Client::new()
        .get(url)
        .bearer_auth("pat-test")
        .send()
        .await
}

/// Ids of the companies a contact is associated with, as the sandbox reports them.
async fn companies_of(sandbox: &Sandbox, contact: &str) -> Vec<String> {
    let body: Value = get(format!(
        "{}/crm/v4/objects/contacts/{contact}/associations/companies",
        sandbox.base_url()
    ))
    .await
    .expect("associations request")
    .json()
    .await
    .expect("associations json");
    body["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["toObjectId"].to_string().trim_matches('"').to_string())
        .collect()
}

/// How many live contacts the sandbox holds.
async fn contact_count(sandbox: &Sandbox) -> usize {
    let mut total = 0;
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("{}/crm/v3/objects/contacts?limit=100", sandbox.base_url());
        if let Some(a) = &after {
            url.push_str(&format!("&after={a}"));
        }
        let body: Value = get(url)
            .await
            .expect("list")
            .json()
            .await
            .expect("list json");
        total += body["results"].as_array().map_or(0, Vec::len);
        match body["paging"]["next"]["after"].as_str() {
            Some(a) => after = Some(a.to_string()),
            None => return total,
        }
    }
}

async fn companies(client: &HubspotClient, n: usize) -> Vec<String> {
    let inputs: Vec<UpsertInput> = (0..n).map(company).collect();
    let out = client
        .upsert_batch(ObjectKind::Companies, ID_PROPERTY, &inputs)
        .await
        .expect("companies");
    upserted(&out).into_iter().map(|(id, _)| id).collect()
}

#[tokio::test]
async fn a_first_import_creates_100_linked_records_per_call_and_no_association_call() {
    let (sandbox, client, log) = setup().await;
    assert!(client.links_on_create(ObjectKind::Contacts, ObjectKind::Companies));
    assert!(!client.links_on_write(ObjectKind::Contacts, ObjectKind::Companies));
    let company_ids = companies(&client, 10).await;
    take(&log);

    let inputs: Vec<UpsertInput> = (0..250)
        .map(|i| contact(i, &company_ids[i % company_ids.len()]))
        .collect();
    let mut ids = Vec::new();
    for chunk in inputs.chunks(client.max_batch()) {
        let out = client
            .upsert_batch(ObjectKind::Contacts, ID_PROPERTY, chunk)
            .await
            .expect("create");
        ids.extend(upserted(&out));
    }
    let calls = take(&log);
    assert_eq!(count(&calls, "create"), 3, "{calls:#?}");
    assert_eq!(
        calls.len(),
        3,
        "no upsert, read or association call: {calls:#?}"
    );
    assert_eq!(
        calls.iter().map(|c| c.records).sum::<u32>(),
        250,
        "100 + 100 + 50 records"
    );
    assert!(ids.iter().all(|(_, created)| *created));
    for (i, (id, _)) in ids.iter().enumerate().step_by(37) {
        assert_eq!(
            companies_of(&sandbox, id).await,
            vec![company_ids[i % company_ids.len()].clone()],
            "contact {i} linked with its create"
        );
    }
    assert_eq!(contact_count(&sandbox).await, 250);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_replay_after_a_lost_link_duplicates_nothing_and_says_not_created() {
    let (sandbox, client, log) = setup().await;
    let company_ids = companies(&client, 2).await;
    let first: Vec<UpsertInput> = (0..60).map(|i| contact(i, &company_ids[0])).collect();
    let made = upserted(
        &client
            .upsert_batch(ObjectKind::Contacts, ID_PROPERTY, &first)
            .await
            .expect("first create"),
    );
    take(&log);

    // The engine never stored those links (a crash after HubSpot answered): the same 60 go
    // out again as new records, now next to 40 that really are new.
    let replay: Vec<UpsertInput> = (0..100).map(|i| contact(i, &company_ids[0])).collect();
    let again = upserted(
        &client
            .upsert_batch(ObjectKind::Contacts, ID_PROPERTY, &replay)
            .await
            .expect("replay"),
    );
    let calls = take(&log);
    // The create is refused for the taken key, then: which keys exist, the upsert of those,
    // the create of the others.
    let ops: Vec<(&str, Option<u16>)> = calls.iter().map(|c| (c.operation, c.status)).collect();
    assert_eq!(
        ops,
        vec![
            ("create", Some(400)),
            ("read", Some(207)),
            ("upsert", Some(200)),
            ("create", Some(201)),
        ],
        "{calls:#?}"
    );
    for (i, (id, created)) in again.iter().enumerate() {
        if i < 60 {
            assert_eq!(id, &made[i].0, "record {i} kept its id");
            assert!(!created, "record {i} existed: the engine associates it");
        } else {
            assert!(created, "record {i} is new");
            assert_eq!(
                companies_of(&sandbox, id).await,
                vec![company_ids[0].clone()]
            );
        }
    }
    assert_eq!(contact_count(&sandbox).await, 100, "no duplicate");
    // The link the first create made is still there; the engine's association call for the
    // `created: false` records is idempotent on top of it.
    assert_eq!(
        companies_of(&sandbox, &made[0].0).await,
        vec![company_ids[0].clone()]
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn an_email_held_by_someone_elses_contact_is_refused_not_adopted() {
    let (sandbox, client, _log) = setup().await;
    let company_ids = companies(&client, 1).await;
    // A contact created in HubSpot by hand, without our key, holding the e-mail.
    let status = reqwest::Client::new()
        .post(format!("{}/crm/v3/objects/contacts", sandbox.base_url()))
        .bearer_auth("pat-test")
        .json(&serde_json::json!({"properties": {"email": "person7@example.com"}}))
        .send()
        .await
        .expect("manual contact")
        .status();
    assert_eq!(status.as_u16(), 201);
    let err = client
        .upsert_batch(
            ObjectKind::Contacts,
            ID_PROPERTY,
            &[contact(7, &company_ids[0])],
        )
        .await
        .expect_err("the e-mail is taken by another contact");
    assert_eq!(err.kind, ErrorKind::Rejected, "{err}");
    assert_eq!(err.status, Some(409), "{err}");
    assert_eq!(contact_count(&sandbox).await, 1);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn records_the_engine_knows_are_upserted_and_linked_by_the_engine() {
    let (sandbox, client, log) = setup().await;
    let company_ids = companies(&client, 1).await;
    take(&log);
    let mut known = contact(1, &company_ids[0]);
    known.new_record = false;
    let out = client
        .upsert_batch(ObjectKind::Contacts, ID_PROPERTY, &[known])
        .await
        .expect("upsert");
    assert_eq!(upserted(&out).len(), 1);
    let calls = take(&log);
    assert_eq!(count(&calls, "upsert"), 1, "{calls:#?}");
    assert_eq!(count(&calls, "create"), 0, "{calls:#?}");
    sandbox.shutdown().await;
}
