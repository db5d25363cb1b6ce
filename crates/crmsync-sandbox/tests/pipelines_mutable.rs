//! Pipelines and stages are stored and mutable over real sockets: create (ids generated as
//! numeric strings), replace, patch, delete, the stage endpoints, deal stage metadata rules,
//! the `validate…BeforeDelete` flags refusing to remove what deals use, deal writes checked
//! against the stored stages, and pipelines surviving a restart and going on reset.

mod support;

use std::time::Duration;

use crmsync_sandbox::SandboxConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Harness, TOKEN, eventually};

fn renewals() -> Value {
    json!({
        "label": "Renewals", "displayOrder": 1,
        "stages": [
            {"label": "Due", "displayOrder": 0, "metadata": {"probability": "0.5"}},
            {"label": "Renewed", "displayOrder": 1, "metadata": {"probability": "1.0", "isClosed": "true"}},
        ],
    })
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn the_default_deal_pipeline_is_unchanged() {
    let h = Harness::unlimited().await;
    let list = h.get("/crm/v3/pipelines/deals").await;
    assert_eq!(list.status, StatusCode::OK);
    let default = &list.body["results"][0];
    assert_eq!(default["id"], "default");
    assert_eq!(default["label"], "Sales Pipeline");
    assert_eq!(
        ids(&default["stages"]),
        [
            "appointmentscheduled",
            "qualifiedtobuy",
            "presentationscheduled",
            "decisionmakerboughtin",
            "contractsent",
            "closedwon",
            "closedlost"
        ]
    );
    assert_eq!(
        default["stages"][5]["metadata"],
        json!({"isClosed": "true", "probability": "1.0"})
    );
    let contacts = h.get("/crm/v3/pipelines/contacts").await;
    assert_eq!(contacts.body, json!({"results": []}));
}

#[tokio::test]
async fn pipelines_are_created_replaced_patched_and_deleted() {
    let h = Harness::unlimited().await;
    let created = h.post("/crm/v3/pipelines/deals", renewals()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap_or_default().to_owned();
    assert!(
        !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()),
        "numeric id: {id}"
    );
    assert_eq!(created.body["label"], "Renewals");
    assert_eq!(created.body["archived"], false);
    let stage_ids = ids(&created.body["stages"]);
    assert_eq!(stage_ids.len(), 2);
    assert!(
        stage_ids
            .iter()
            .all(|s| s.bytes().all(|b| b.is_ascii_digit()))
    );
    assert_ne!(stage_ids[0], stage_ids[1]);
    assert_eq!(
        created.body["stages"][0]["metadata"],
        json!({"probability": "0.5", "isClosed": "false"})
    );

    let listed = h.get("/crm/v3/pipelines/deals").await;
    assert_eq!(
        ids(&listed.body["results"]),
        vec!["default".to_owned(), id.clone()]
    );
    let one = h.get(&format!("/crm/v3/pipelines/deals/{id}")).await;
    assert_eq!(one.body["stages"][1]["label"], "Renewed");

    // The stored stages are the values `dealstage` accepts.
    let options = h.get("/crm/v3/properties/deals/dealstage").await;
    let values = options.body["options"]
        .as_array()
        .map(|o| {
            o.iter()
                .filter_map(|o| o["value"].as_str())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    assert!(values.contains(&stage_ids[0].as_str()), "{values:?}");
    let deal = h
        .create(
            "deals",
            json!({"dealname": "R", "pipeline": id, "dealstage": stage_ids[0]}),
        )
        .await;
    let wrong = h
        .patch(
            &format!("/crm/v3/objects/deals/{deal}"),
            json!({"properties": {"dealstage": "closedwon"}}),
        )
        .await;
    assert_eq!(
        wrong.status,
        StatusCode::BAD_REQUEST,
        "closedwon is not in Renewals"
    );
    assert!(
        wrong.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("INVALID_OPTION")
    );

    let patched = h
        .patch(
            &format!("/crm/v3/pipelines/deals/{id}"),
            json!({"label": "Renewal deals"}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["label"], "Renewal deals");
    assert_eq!(patched.body["displayOrder"], 1);

    // PUT replaces the stages: keep the first by id, drop the second, add one.
    let replaced = h
        .put(
            &format!("/crm/v3/pipelines/deals/{id}"),
            Some(json!({
                "label": "Renewals", "displayOrder": 2,
                "stages": [
                    {"stageId": stage_ids[0], "label": "Due soon", "displayOrder": 0, "metadata": {"probability": "0.4"}},
                    {"stageId": "lapsed", "label": "Lapsed", "displayOrder": 1, "metadata": {"probability": "0.0", "isClosed": "true"}},
                ],
            })),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    assert_eq!(
        ids(&replaced.body["stages"]),
        vec![stage_ids[0].clone(), "lapsed".to_owned()]
    );
    assert_eq!(replaced.body["stages"][0]["label"], "Due soon");
    assert_eq!(replaced.body["displayOrder"], 2);

    // The deal still sits in a kept stage, so the pipeline can only go without the check.
    let guarded = h
        .delete(&format!(
            "/crm/v3/pipelines/deals/{id}?validateReferencesBeforeDelete=true"
        ))
        .await;
    assert_eq!(guarded.status, StatusCode::BAD_REQUEST);
    assert_eq!(guarded.error_category(), "VALIDATION_ERROR");
    let deleted = h.delete(&format!("/crm/v3/pipelines/deals/{id}")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        h.get(&format!("/crm/v3/pipelines/deals/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    // The last pipeline stays.
    let last = h.delete("/crm/v3/pipelines/deals/default").await;
    assert_eq!(last.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn deal_stage_metadata_is_checked() {
    let h = Harness::unlimited().await;
    let no_probability = h
        .post(
            "/crm/v3/pipelines/deals",
            json!({"label": "Bad", "displayOrder": 1,
                   "stages": [{"label": "S", "displayOrder": 0, "metadata": {}}]}),
        )
        .await;
    assert_eq!(no_probability.status, StatusCode::BAD_REQUEST);
    assert_eq!(no_probability.error_category(), "VALIDATION_ERROR");
    assert!(
        no_probability.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("probability")
    );
    let out_of_range = h
        .post(
            "/crm/v3/pipelines/deals",
            json!({"label": "Bad", "displayOrder": 1,
                   "stages": [{"label": "S", "displayOrder": 0, "metadata": {"probability": "1.5"}}]}),
        )
        .await;
    assert_eq!(out_of_range.status, StatusCode::BAD_REQUEST);
    let no_stages = h
        .post(
            "/crm/v3/pipelines/deals",
            json!({"label": "Empty", "displayOrder": 1, "stages": []}),
        )
        .await;
    assert_eq!(no_stages.status, StatusCode::BAD_REQUEST);
    let taken = h
        .post(
            "/crm/v3/pipelines/deals",
            json!({"label": "Clash", "displayOrder": 1,
                   "stages": [{"stageId": "closedwon", "label": "S", "metadata": {"probability": "1.0"}}]}),
        )
        .await;
    assert_eq!(
        taken.status,
        StatusCode::BAD_REQUEST,
        "stage ids are unique per object"
    );
    let listed = h.get("/crm/v3/pipelines/deals").await;
    assert_eq!(listed.body["results"].as_array().map(Vec::len), Some(1));
    let contacts = h.post("/crm/v3/pipelines/contacts", renewals()).await;
    assert_eq!(contacts.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn stages_are_added_changed_and_removed() {
    let h = Harness::unlimited().await;
    let base = "/crm/v3/pipelines/deals/default/stages";
    let added = h
        .post(
            base,
            json!({"label": "On hold", "displayOrder": 7, "metadata": {"probability": "0.1"}}),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    let stage = added.body["id"].as_str().unwrap_or_default().to_owned();
    assert!(stage.bytes().all(|b| b.is_ascii_digit()) && !stage.is_empty());
    let all = h.get(base).await;
    assert_eq!(all.body["results"].as_array().map(Vec::len), Some(8));
    assert_eq!(all.body["results"][7]["id"], stage.as_str());

    let patched = h
        .patch(
            &format!("{base}/{stage}"),
            json!({"metadata": {"isClosed": "true"}}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(
        patched.body["metadata"],
        json!({"isClosed": "true", "probability": "0.1"}),
        "PATCH keeps the metadata it does not name"
    );
    assert_eq!(patched.body["label"], "On hold");
    let replaced = h
        .put(
            &format!("{base}/{stage}"),
            Some(json!({"label": "Paused", "displayOrder": 7, "metadata": {"probability": "0.2"}})),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    assert_eq!(
        replaced.body["metadata"],
        json!({"isClosed": "false", "probability": "0.2"})
    );
    let bad = h
        .put(
            &format!("{base}/{stage}"),
            Some(json!({"label": "Paused", "metadata": {"isClosed": "true"}})),
        )
        .await;
    assert_eq!(
        bad.status,
        StatusCode::BAD_REQUEST,
        "PUT needs the probability"
    );
    let one = h.get(&format!("{base}/{stage}")).await;
    assert_eq!(one.body["label"], "Paused");

    // A deal in the stage blocks a checked delete; the stage then answers 404 once gone.
    let deal = h
        .create("deals", json!({"dealname": "H", "dealstage": stage}))
        .await;
    let read = h
        .get(&format!("/crm/v3/objects/deals/{deal}?properties=pipeline"))
        .await;
    assert_eq!(read.body["properties"]["pipeline"], "default");
    let guarded = h
        .delete(&format!(
            "{base}/{stage}?validateDealStageUsagesBeforeDelete=true"
        ))
        .await;
    assert_eq!(guarded.status, StatusCode::BAD_REQUEST);
    h.patch(
        &format!("/crm/v3/objects/deals/{deal}"),
        json!({"properties": {"dealstage": "closedwon"}}),
    )
    .await;
    let deleted = h
        .delete(&format!(
            "{base}/{stage}?validateReferencesBeforeDelete=true"
        ))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    assert_eq!(
        h.get(&format!("{base}/{stage}")).await.status,
        StatusCode::NOT_FOUND
    );
    let gone = h
        .patch(
            &format!("/crm/v3/objects/deals/{deal}"),
            json!({"properties": {"dealstage": stage}}),
        )
        .await;
    assert_eq!(
        gone.status,
        StatusCode::BAD_REQUEST,
        "removed stage refused"
    );
}

#[tokio::test]
async fn pipelines_survive_a_restart_and_go_on_reset() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("portal.json");
    let config = || SandboxConfig {
        token: Some(TOKEN.to_owned()),
        state_file: Some(path.clone()),
        ..SandboxConfig::unlimited()
    };
    let h = Harness::start(config()).await;
    let created = h.post("/crm/v3/pipelines/deals", renewals()).await;
    let id = created.body["id"].as_str().unwrap_or_default().to_owned();
    eventually("the save", Duration::from_secs(5), || async {
        let text = std::fs::read_to_string(&path).ok()?;
        text.contains("Renewals").then_some(())
    })
    .await;
    h.sandbox.shutdown().await;

    let h = Harness::start(config()).await;
    let one = h.get(&format!("/crm/v3/pipelines/deals/{id}")).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    let stage = one.body["stages"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    h.create(
        "deals",
        json!({"dealname": "After restart", "pipeline": id, "dealstage": stage}),
    )
    .await;
    // A new id after the restart does not reuse an old one.
    let second = h.post("/crm/v3/pipelines/deals", renewals()).await;
    assert_ne!(second.body["id"], one.body["id"]);

    h.send(reqwest::Method::POST, "/_sandbox/reset", None, None)
        .await;
    let listed = h.get("/crm/v3/pipelines/deals").await;
    assert_eq!(ids(&listed.body["results"]), vec!["default".to_owned()]);
}
