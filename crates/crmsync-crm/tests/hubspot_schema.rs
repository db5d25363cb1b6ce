//! The HubSpot client reads property types, enumeration options and deal pipelines from the
//! sandbox over a real socket, with GETs only (what `crmsync check` relies on).

use crmsync_crm::hubspot::{HubspotClient, HubspotConfig};
use crmsync_crm::{Crm, ObjectKind};
use crmsync_sandbox::{Sandbox, SandboxConfig};
use secrecy::SecretString;

async fn start() -> (Sandbox, HubspotClient) {
    let sandbox = Sandbox::start("127.0.0.1:0", SandboxConfig::unlimited())
        .await
        .expect("sandbox starts");
    let client = HubspotClient::new(
        HubspotConfig::new(sandbox.base_url(), SecretString::from("test-token")),
        None,
    )
    .expect("client");
    (sandbox, client)
}

#[tokio::test]
async fn properties_carry_type_uniqueness_and_options() {
    let (sandbox, client) = start().await;
    let props = client
        .properties(ObjectKind::Deals)
        .await
        .expect("deal properties");
    let by = |n: &str| {
        props
            .iter()
            .find(|p| p.name == n)
            .unwrap_or_else(|| panic!("deal property {n} listed"))
    };
    assert_eq!(by("amount").kind, "number");
    assert_eq!(by("closedate").kind, "datetime");
    let stage = by("dealstage");
    assert_eq!(stage.kind, "enumeration");
    assert!(stage.options.iter().any(|o| o == "closedwon"), "{stage:?}");
    assert!(by("hs_object_id").read_only);
    assert!(!by("dealname").read_only);

    client
        .ensure_id_property(ObjectKind::Contacts, "app_id")
        .await
        .expect("id property");
    let contacts = client
        .properties(ObjectKind::Contacts)
        .await
        .expect("contacts");
    let id = contacts
        .iter()
        .find(|p| p.name == "app_id")
        .expect("created id property listed");
    assert!(id.has_unique_value);
    assert_eq!(
        contacts
            .iter()
            .find(|p| p.name == "phone")
            .map(|p| p.field_type.as_str()),
        Some("phonenumber")
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn deal_pipelines_list_their_stages_and_other_objects_have_none() {
    let (sandbox, client) = start().await;
    let pipelines = client
        .pipelines(ObjectKind::Deals)
        .await
        .expect("pipelines");
    let default = pipelines
        .iter()
        .find(|p| p.id == "default")
        .expect("default pipeline");
    let stages: Vec<&str> = default.stages.iter().map(|s| s.id.as_str()).collect();
    for s in [
        "appointmentscheduled",
        "contractsent",
        "closedwon",
        "closedlost",
    ] {
        assert!(stages.contains(&s), "{s} in {stages:?}");
    }
    assert!(
        client
            .pipelines(ObjectKind::Contacts)
            .await
            .expect("contacts")
            .is_empty()
    );
    let stats: serde_json::Value = reqwest::get(format!("{}/_sandbox/stats", sandbox.base_url()))
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    let calls = stats["calls"].as_array().cloned().unwrap_or_default();
    assert!(!calls.is_empty());
    assert!(
        calls.iter().all(|c| c["method"] == "GET"),
        "listing sends GETs only: {calls:?}"
    );
    sandbox.shutdown().await;
}
