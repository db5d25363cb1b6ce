//! The Salesforce client against the sandbox's Salesforce flavour over a real socket: OAuth,
//! the External ID field, idempotent collection upserts, parents linked in the child's write,
//! one bad record refused alone, changes by `SystemModstamp`, deletions, merges, a renewed
//! session and a spent 24 h quota — each checked through the client's answers, the call
//! observer and the sandbox's own records.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crmsync_crm::salesforce::{OAuthFlow, SalesforceClient, SalesforceConfig};
use crmsync_crm::{
    CallObserver, CallRecord, Crm, ErrorKind, ObjectKind, ParentRef, RecordOutcome, UpsertInput,
};
use crmsync_sandbox::{SalesforceConfig as OrgConfig, SalesforceSandbox};
use secrecy::SecretString;
use serde_json::{Value, json};

const EXT: &str = "crmsync_id__c";

type CallLog = Arc<Mutex<Vec<CallRecord>>>;

fn client(org: &SalesforceSandbox) -> (SalesforceClient, CallLog) {
    let flow = OAuthFlow::RefreshToken {
        client_secret: Some(SecretString::from("sandbox-secret")),
        refresh_token: SecretString::from("sandbox-refresh-token"),
    };
    let mut config = SalesforceConfig::new(org.base_url(), "crmsync-sandbox", flow);
    config.timeout = Duration::from_secs(10);
    config.retry.base = Duration::from_millis(5);
    config.retry.cap = Duration::from_millis(20);
    let log: CallLog = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    let observer: CallObserver = Arc::new(move |record| {
        sink.lock().expect("observer lock").push(record);
    });
    (
        SalesforceClient::new(config, Some(observer)).expect("client"),
        log,
    )
}

fn calls(log: &CallLog, operation: &str) -> usize {
    log.lock()
        .expect("observer lock")
        .iter()
        .filter(|c| c.operation == operation)
        .count()
}

async fn start() -> SalesforceSandbox {
    SalesforceSandbox::start("127.0.0.1:0", OrgConfig::unlimited())
        .await
        .expect("sandbox starts")
}

fn input(key: &str, props: &[(&str, &str)]) -> UpsertInput {
    UpsertInput {
        key: key.to_string(),
        properties: props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        links: Vec::new(),
        new_record: false,
    }
}

fn upserted(outcomes: &[RecordOutcome]) -> BTreeMap<String, (String, bool)> {
    outcomes
        .iter()
        .filter_map(|o| match o {
            RecordOutcome::Upserted {
                key,
                crm_id,
                created,
            } => Some((key.clone(), (crm_id.clone(), *created))),
            RecordOutcome::Rejected { .. } => None,
        })
        .collect()
}

/// A token of another user of the org (a person editing in Salesforce's UI).
async fn ui_token(org: &SalesforceSandbox) -> String {
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/_sandbox/ui-token", org.base_url()))
        .send()
        .await
        .expect("ui token")
        .json()
        .await
        .expect("ui token json");
    answer["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

async fn rest(
    org: &SalesforceSandbox,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .request(
            method,
            format!("{}/services/data/v59.0{path}", org.base_url()),
        )
        .bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.expect("rest call")
}

#[tokio::test]
async fn upserts_by_external_id_are_idempotent_and_one_call_per_200() {
    let org = start().await;
    let (crm, log) = client(&org);
    crm.ensure_id_property(ObjectKind::Companies, EXT)
        .await
        .expect("the predefined External ID field is accepted");
    let inputs: Vec<UpsertInput> = (0..200)
        .map(|i| input(&format!("c{i}"), &[("Name", &format!("Robotics {i}"))]))
        .collect();
    let first = crm
        .upsert_batch(ObjectKind::Companies, EXT, &inputs)
        .await
        .expect("upsert");
    let first = upserted(&first);
    assert_eq!(first.len(), 200);
    assert!(first.values().all(|(_, created)| *created));
    assert_eq!(
        calls(&log, "upsert"),
        1,
        "200 records are one collection call"
    );

    let again = upserted(
        &crm.upsert_batch(ObjectKind::Companies, EXT, &inputs)
            .await
            .expect("replay"),
    );
    assert_eq!(again.len(), 200);
    for (key, (id, created)) in &again {
        assert!(!created, "{key} was not created twice");
        assert_eq!(Some(id), first.get(key).map(|(id, _)| id));
    }
    let too_many: Vec<UpsertInput> = (0..201).map(|i| input(&i.to_string(), &[])).collect();
    let err = crm
        .upsert_batch(ObjectKind::Companies, EXT, &too_many)
        .await
        .expect_err("201 records are refused before any call");
    assert_eq!(err.kind, ErrorKind::Config);
    assert_eq!(calls(&log, "upsert"), 2);
}

#[tokio::test]
async fn a_missing_external_id_field_is_created_and_a_non_unique_one_refused() {
    let org = start().await;
    let (crm, _log) = client(&org);
    crm.ensure_id_property(ObjectKind::Contacts, "app_key__c")
        .await
        .expect("created through the Tooling API");
    let props = crm
        .properties(ObjectKind::Contacts)
        .await
        .expect("describe");
    let field = props
        .iter()
        .find(|p| p.name == "app_key__c")
        .expect("the new field is described");
    assert!(field.has_unique_value);
    crm.ensure_id_property(ObjectKind::Contacts, "app_key__c")
        .await
        .expect("a second look finds it");
    let err = crm
        .ensure_id_property(ObjectKind::Companies, "legacy_key__c")
        .await
        .expect_err("a non-unique External ID cannot key upserts");
    assert_eq!(err.kind, ErrorKind::Schema, "{err}");
}

#[tokio::test]
async fn parents_ride_in_the_childs_write_and_a_bad_record_is_refused_alone() {
    let org = start().await;
    let (crm, log) = client(&org);
    let company = upserted(
        &crm.upsert_batch(
            ObjectKind::Companies,
            EXT,
            &[input("acme", &[("Name", "Acme")])],
        )
        .await
        .expect("company"),
    );
    let account = company["acme"].0.clone();
    let link = |mut i: UpsertInput| {
        i.links.push(ParentRef {
            object: ObjectKind::Companies,
            crm_id: account.clone(),
        });
        i
    };
    assert!(crm.links_on_write(ObjectKind::Contacts, ObjectKind::Companies));
    assert!(!crm.links_on_write(ObjectKind::Contacts, ObjectKind::Deals));
    let contacts = [
        link(input(
            "u1",
            &[("LastName", "Lovelace"), ("Email", "ada@example.com")],
        )),
        link(input("u2", &[("FirstName", "No last name")])),
        link(input(
            "u3",
            &[("LastName", "Hopper"), ("Email", "not an e-mail")],
        )),
        link(input("u4", &[("LastName", "Turing")])),
    ];
    let outcomes = crm
        .upsert_batch(ObjectKind::Contacts, EXT, &contacts)
        .await
        .expect("one call answers per record");
    let ok = upserted(&outcomes);
    assert_eq!(ok.keys().collect::<Vec<_>>(), ["u1", "u4"]);
    let refused: Vec<(String, Option<String>)> = outcomes
        .iter()
        .filter_map(|o| match o {
            RecordOutcome::Rejected { key, error } => Some((key.clone(), error.code.clone())),
            RecordOutcome::Upserted { .. } => None,
        })
        .collect();
    assert_eq!(
        refused,
        [
            ("u2".to_string(), Some("REQUIRED_FIELD_MISSING".to_string())),
            ("u3".to_string(), Some("INVALID_EMAIL_ADDRESS".to_string())),
        ]
    );
    assert_eq!(
        calls(&log, "associate"),
        0,
        "no association call for a lookup"
    );
    let read = crm
        .read_batch(
            ObjectKind::Contacts,
            &[ok["u1"].0.clone(), ok["u4"].0.clone()],
            &["AccountId".to_string(), "LastName".to_string()],
        )
        .await
        .expect("read back");
    assert_eq!(read.len(), 2);
    for r in &read {
        assert_eq!(r.properties.get("AccountId"), Some(&account), "{r:?}");
    }
}

#[tokio::test]
async fn changes_deletions_and_merges_come_back_from_the_org() {
    let org = start().await;
    let (crm, _log) = client(&org);
    let ids = upserted(
        &crm.upsert_batch(
            ObjectKind::Companies,
            EXT,
            &[
                input("a", &[("Name", "A")]),
                input("b", &[("Name", "B")]),
                input("c", &[("Name", "C")]),
            ],
        )
        .await
        .expect("companies"),
    );
    let props = ["Name".to_string()];
    let all = crm
        .changes_since(ObjectKind::Companies, 0, None, &props, 100)
        .await
        .expect("changes");
    assert_eq!(all.len(), 3);
    let positions: Vec<(i64, String)> = all
        .iter()
        .map(|r| (r.modified_ms, r.crm_id.clone()))
        .collect();
    let mut sorted = positions.clone();
    sorted.sort();
    assert_eq!(positions, sorted, "oldest first, ties by id");
    let (last_ms, last_id) = positions.last().cloned().expect("three");
    let none = crm
        .changes_since(ObjectKind::Companies, last_ms, Some(&last_id), &props, 100)
        .await
        .expect("changes after the last");
    assert!(none.is_empty(), "{none:?}");

    // A person edits B in Salesforce: it comes back after the position.
    let ui = ui_token(&org).await;
    let b = ids["b"].0.clone();
    let edit = rest(
        &org,
        &ui,
        reqwest::Method::PATCH,
        &format!("/sobjects/Account/{b}"),
        Some(json!({"Name": "B edited"})),
    )
    .await;
    assert_eq!(edit.status(), 204);
    // SystemModstamp has whole seconds: an edit in the cursor's own second with a lower id is
    // behind the position, so a poll re-reads an overlap before it (the engine's
    // `poll_overlap_ms`); from there the edit is found with its new value.
    let edited = crm
        .changes_since(ObjectKind::Companies, last_ms - 1_000, None, &props, 100)
        .await
        .expect("changes");
    let found = edited
        .iter()
        .find(|r| r.crm_id == b)
        .expect("the edited record is among the changes");
    assert_eq!(
        found.properties.get("Name").map(String::as_str),
        Some("B edited")
    );
    assert!(found.modified_ms >= last_ms - 1_000);

    // A deleted record is listed as archived, a merged one resolves to its survivor.
    let a = ids["a"].0.clone();
    let c = ids["c"].0.clone();
    let del = rest(
        &org,
        &ui,
        reqwest::Method::DELETE,
        &format!("/sobjects/Account/{a}"),
        None,
    )
    .await;
    assert_eq!(del.status(), 204);
    let merge = reqwest::Client::new()
        .post(format!("{}/_sandbox/merge", org.base_url()))
        .json(&json!({"object": "Account", "master": b, "victims": [c]}))
        .send()
        .await
        .expect("merge");
    assert!(merge.status().is_success(), "{merge:?}");
    let (archived, _) = crm
        .archived_page(ObjectKind::Companies, None)
        .await
        .expect("archived");
    assert_eq!(
        archived,
        std::slice::from_ref(&a),
        "the merged-away record is not a deletion"
    );
    let read = crm
        .read_batch(ObjectKind::Companies, &[a, c.clone()], &props)
        .await
        .expect("read");
    assert_eq!(read.len(), 1, "the deleted one is gone: {read:?}");
    assert_eq!(read[0].crm_id, b);
    assert_eq!(read[0].merged_ids, [c]);
}

#[tokio::test]
async fn a_spent_24_hour_quota_is_returned_at_once_with_an_hours_wait() {
    let org = start().await;
    let (crm, log) = client(&org);
    crm.upsert_batch(ObjectKind::Companies, EXT, &[input("a", &[("Name", "A")])])
        .await
        .expect("first write");
    let set = reqwest::Client::new()
        .put(format!("{}/_sandbox/limits", org.base_url()))
        .json(&json!({"daily_limit": 50, "used": 50}))
        .send()
        .await
        .expect("limits");
    assert!(set.status().is_success());
    let before = calls(&log, "upsert");
    let err = crm
        .upsert_batch(ObjectKind::Companies, EXT, &[input("b", &[("Name", "B")])])
        .await
        .expect_err("the org is out of requests");
    assert_eq!(err.kind, ErrorKind::RateLimited, "{err}");
    assert_eq!(err.code.as_deref(), Some("REQUEST_LIMIT_EXCEEDED"));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3600)));
    assert_eq!(
        calls(&log, "upsert"),
        before + 1,
        "not retried within the call"
    );
    let logged = log.lock().expect("log").last().cloned().expect("a call");
    assert!(logged.rate_limited);
}

#[tokio::test]
async fn an_expired_session_is_renewed_once_and_the_call_repeated() {
    let org = start().await;
    let (crm, log) = client(&org);
    crm.property_names(ObjectKind::Companies)
        .await
        .expect("describe with the first token");
    let auth_before = calls(&log, "auth");
    // The sandbox forgets every token it issued (a session timeout in the org).
    let reset = reqwest::Client::new()
        .post(format!("{}/_sandbox/expire-sessions", org.base_url()))
        .send()
        .await
        .expect("expire");
    assert!(reset.status().is_success(), "{reset:?}");
    crm.upsert_batch(ObjectKind::Companies, EXT, &[input("a", &[("Name", "A")])])
        .await
        .expect("renewed and repeated");
    assert_eq!(calls(&log, "auth"), auth_before + 1, "one renewal");
    let statuses: Vec<Option<u16>> = log
        .lock()
        .expect("log")
        .iter()
        .filter(|c| c.operation == "upsert")
        .map(|c| c.status)
        .collect();
    assert_eq!(statuses, [Some(401), Some(200)]);
}

#[tokio::test]
async fn an_external_id_matching_two_records_is_refused_not_guessed() {
    let org = start().await;
    let (crm, _log) = client(&org);
    let ui = ui_token(&org).await;
    for name in ["Twin One", "Twin Two"] {
        let made = rest(
            &org,
            &ui,
            reqwest::Method::POST,
            "/sobjects/Account",
            Some(json!({"Name": name, "legacy_key__c": "twin"})),
        )
        .await;
        assert_eq!(made.status(), 201);
    }
    let outcomes = crm
        .upsert_batch(
            ObjectKind::Companies,
            "legacy_key__c",
            &[
                input("twin", &[("Name", "Which one?")]),
                input("single", &[("Name", "Single")]),
            ],
        )
        .await
        .expect("answered per record");
    let refused: Vec<&str> = outcomes
        .iter()
        .filter_map(|o| match o {
            RecordOutcome::Rejected { key, .. } => Some(key.as_str()),
            RecordOutcome::Upserted { .. } => None,
        })
        .collect();
    assert_eq!(refused, ["twin"], "{outcomes:?}");
    let changed = crm
        .changes_since(ObjectKind::Companies, 0, None, &["Name".to_string()], 100)
        .await
        .expect("changes");
    assert!(
        changed
            .iter()
            .all(|r| r.properties.get("Name").map(String::as_str) != Some("Which one?")),
        "neither twin was changed: {changed:?}"
    );
}

#[tokio::test]
async fn the_account_is_the_org_id_and_whether_it_is_a_sandbox() {
    let org = start().await;
    let (sf, log) = client(&org);
    let account = sf.account().await.expect("account").expect("an org");
    assert_eq!(account.id, "salesforce:00D000000000001");
    assert!(
        !account.production,
        "the emulator is a sandbox org by default"
    );
    assert_eq!(calls(&log, "account"), 1, "one Organization query");

    let production = SalesforceSandbox::start(
        "127.0.0.1:0",
        OrgConfig {
            is_sandbox: false,
            org_id: "00D5g000004ABCD".into(),
            ..OrgConfig::unlimited()
        },
    )
    .await
    .expect("sandbox starts");
    let (sf, _) = client(&production);
    let account = sf.account().await.expect("account").expect("an org");
    assert_eq!(account.id, "salesforce:00D5g000004ABCD");
    assert!(account.production, "IsSandbox = false is a production org");
}

#[tokio::test]
async fn schema_export_reads_custom_fields_and_apply_creates_what_the_tooling_api_can() {
    use crmsync_crm::SchemaAdmin;
    use crmsync_crm::schema_doc::{PropertyDef, SchemaChange};
    let org = start().await;
    let (client, log) = client(&org);
    let field = |kind: &str, length: Option<u64>, unique: bool| PropertyDef {
        label: "Robot model".into(),
        kind: kind.into(),
        field_type: String::new(),
        group: None,
        description: String::new(),
        unique,
        length,
        options: Vec::new(),
    };
    let create = SchemaChange::CreateProperty {
        object: ObjectKind::Contacts,
        name: "robot_model__c".into(),
        def: field("Text", Some(80), false),
    };
    assert_eq!(client.can_apply(&create), Ok(()));
    client.apply_change(&create).await.expect("field created");
    let key = SchemaChange::CreateProperty {
        object: ObjectKind::Contacts,
        name: "fleet_key__c".into(),
        def: field("Text", Some(40), true),
    };
    client.apply_change(&key).await.expect("key field created");
    let doc = client
        .export_schema(&[ObjectKind::Contacts])
        .await
        .expect("export");
    let contacts = &doc.objects["contacts"];
    let model = &contacts.properties["robot_model__c"];
    assert_eq!(
        (model.kind.as_str(), model.length, model.unique),
        ("Text", Some(80), false)
    );
    assert!(
        contacts.properties["fleet_key__c"].unique,
        "an External ID that is unique is an upsert key"
    );
    assert!(
        !contacts.properties.contains_key("Email"),
        "Salesforce's own fields are not configuration"
    );
    // What the Tooling API cannot do here is refused before any call, saying where to do it.
    let before = calls(&log, "schema");
    for refused in [
        SchemaChange::CreateProperty {
            object: ObjectKind::Contacts,
            name: "tier__c".into(),
            def: field("Picklist", None, false),
        },
        SchemaChange::UpdateProperty {
            object: ObjectKind::Contacts,
            name: "robot_model__c".into(),
            def: field("Text", Some(120), false),
        },
        SchemaChange::CreateProperty {
            object: ObjectKind::Contacts,
            name: "Plain".into(),
            def: field("Text", None, false),
        },
    ] {
        let why = client.can_apply(&refused).err().unwrap_or_default();
        assert!(
            why.contains("Setup") || why.contains("__c"),
            "{refused:?}: {why}"
        );
        let err = client.apply_change(&refused).await.err();
        assert_eq!(err.map(|e| e.kind), Some(ErrorKind::Schema));
    }
    assert_eq!(calls(&log, "schema"), before, "nothing refused was sent");
}
