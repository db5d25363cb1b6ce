//! `associate = { customer_id = { sync = "contacts", required = false } }`: a deal whose contact
//! cannot be sent (an invalid e-mail keeps it in quarantine) is sent now, without that
//! association, instead of waiting forever; once the contact is fixed and synced, the deal is
//! planned again and associated. A required association still waits.

mod support;

use crmsync_core::config::{Secrets, load_str};
use crmsync_sandbox::SandboxConfig;
use crmsync_store::Records;
use support::{CONFIG, world};

fn customers() -> Vec<(i64, &'static str, &'static str)> {
    vec![
        (1, "Acme Robotics", "ada@acme.com"),
        (2, "Globex", "not an email"),
    ]
}

fn orders() -> Vec<(i64, i64, &'static str, &'static str)> {
    vec![(1, 1, "Robot arm", "new"), (2, 2, "Gripper", "paid")]
}

/// The contacts the sandbox associates to the deal with CRM id `deal`.
async fn contacts_of(w: &support::World, deal: &str) -> Vec<String> {
    let http = reqwest::Client::new();
    let page: serde_json::Value = http
        .post(format!(
            "{}/crm/v4/associations/deals/contacts/batch/read",
            w.sandbox.base_url()
        ))
        .bearer_auth("test-token")
        .json(&serde_json::json!({"inputs": [{"id": deal}]}))
        .send()
        .await
        .expect("batch read")
        .json()
        .await
        .expect("json");
    page["results"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["to"].as_array().cloned().unwrap_or_default())
        .map(|t| t["toObjectId"].to_string().trim_matches('"').to_string())
        .collect()
}

#[tokio::test]
async fn a_deal_goes_without_its_unsendable_contact_and_is_associated_once_it_syncs() {
    let w = world(&customers(), &orders(), SandboxConfig::unlimited()).await;
    let text = CONFIG.replace("BASE", &w.sandbox.base_url()).replace(
        r#"associate = { customer_id = "companies" }"#,
        r#"associate = { customer_id = { sync = "contacts", required = false } }"#,
    );
    let config = load_str(
        &text,
        &w.dir.path().join("crmsync.toml"),
        Secrets::Required,
        &|_| Some("test-token".into()),
    )
    .expect("config valid");
    let engine = w.engine_with(config, |_| {}).await;
    crmsync_engine::install(&engine.config, &engine.app)
        .await
        .expect("triggers");

    let report = engine.push_once().await.expect("first pass");
    let deals = report
        .syncs
        .iter()
        .find(|s| s.sync == "deals")
        .expect("deals");
    // Deal 1 waited only until its contact was in the CRM (within the pass); deal 2 did not
    // wait for a contact that cannot be sent.
    assert_eq!(deals.created, 2, "no deal waits for good: {deals:?}");
    let deal_of = |key: &'static str| {
        let state = &engine.state;
        async move {
            state
                .link("deals", key)
                .await
                .expect("link")
                .and_then(|l| l.crm_id)
                .expect("deal in the CRM")
        }
    };
    let contact_of = |key: &'static str| {
        let state = &engine.state;
        async move {
            state
                .link("contacts", key)
                .await
                .expect("link")
                .and_then(|l| l.crm_id)
        }
    };
    let ada = contact_of("1").await.expect("contact 1 synced");
    assert_eq!(contacts_of(&w, &deal_of("1").await).await, vec![ada]);
    assert!(
        contact_of("2").await.is_none(),
        "the bad e-mail is quarantined"
    );
    assert!(contacts_of(&w, &deal_of("2").await).await.is_empty());

    // The e-mail is fixed: the contact syncs, and its deal is planned again and associated.
    w.app_sql("UPDATE customers SET email = 'grace@globex.com' WHERE id = 2")
        .await;
    engine.push_once().await.expect("second pass");
    let grace = contact_of("2").await.expect("contact 2 synced now");
    engine.push_once().await.expect("third pass");
    assert_eq!(
        contacts_of(&w, &deal_of("2").await).await,
        vec![grace],
        "associated once its contact synced"
    );
    assert_eq!(
        w.objects().await.2,
        2,
        "still two deals: re-sent, not duplicated"
    );

    // Nothing left to do: a further pass sends nothing.
    let upserts = w.calls_to("/deals/batch/upsert").await;
    engine.push_once().await.expect("fourth pass");
    assert_eq!(w.calls_to("/deals/batch/upsert").await, upserts);
}
