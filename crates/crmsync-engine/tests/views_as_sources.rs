//! A view is a fine push source (the CRM gets its rows like a table's), but nothing can be
//! written into it: a field that pulls, or a write-back column, on a view (or on a generated
//! column) is a config error found before the first pass — not a failing write every round.

mod support;

use crmsync_core::config::{Secrets, load_str};
use crmsync_sandbox::SandboxConfig;
use support::world;

const VIEW_CONFIG: &str = r#"
[source]
url = "sqlite://app.db"
[crm]
environment = "sandbox"
kind = "hubspot"
base_url = "BASE"
token_env = "HUBSPOT_ACCESS_TOKEN"
[[sync]]
name = "companies"
table = "active_customers"
object = "companies"
id_property = "app_customer_id"
capture = "scan"
[sync.fields]
company = { crm = "name", validate = "required" }
"#;

#[tokio::test]
async fn a_view_pushes_and_a_pulling_field_on_it_is_refused_with_the_reason() {
    let customers = [
        (1, "Acme Robotics", "ada@acme.com"),
        (2, "Globex", "grace@globex.com"),
        (3, "Initech", "peter@initech.com"),
    ];
    let w = world(&customers, &[], SandboxConfig::unlimited()).await;
    w.app_sql(
        "CREATE VIEW active_customers AS SELECT id, company, email FROM customers WHERE id < 3",
    )
    .await;
    let load = |text: String| {
        load_str(
            &text,
            &w.dir.path().join("crmsync.toml"),
            Secrets::Required,
            &|_| Some("test-token".into()),
        )
        .expect("config valid")
    };
    let text = VIEW_CONFIG.replace("BASE", &w.sandbox.base_url());

    let engine = w.engine_with(load(text.clone()), |_| {}).await;
    let report = engine.push_once().await.expect("a view pushes");
    assert_eq!(report.syncs[0].created, 2, "{report:?}");
    assert_eq!(w.objects().await.0, 2);

    let two_way = text.replace(
        r#"company = { crm = "name", validate = "required" }"#,
        r#"company = { crm = "name", validate = "required", direction = "both" }"#,
    );
    let engine = w.engine_with(load(two_way), |_| {}).await;
    let err = engine
        .push_once()
        .await
        .expect_err("a pulling field on a view is refused")
        .to_string();
    assert!(
        err.contains("companies") && err.contains("company") && err.contains("view"),
        "names the sync, the field and why: {err}"
    );
    let findings = crmsync_engine::check::check(&engine.config, &engine.crm, &engine.app, 2)
        .await
        .expect("check runs")
        .findings;
    assert!(
        findings.iter().any(|f| f.kind == "source_schema"
            && f.field.as_deref() == Some("company")
            && f.message.contains("view")),
        "check reports it too: {findings:#?}"
    );

    let write_back = text.replace(
        "capture = \"scan\"",
        "capture = \"scan\"\nwrite_back_column = \"email\"",
    );
    let engine = w.engine_with(load(write_back), |_| {}).await;
    let err = engine.push_once().await.expect_err("refused").to_string();
    assert!(err.contains("write_back_column"), "{err}");

    // A generated column: pushing it is fine, pulling into it is not.
    w.app_sql(
        "ALTER TABLE customers ADD COLUMN shout TEXT GENERATED ALWAYS AS (upper(company)) VIRTUAL",
    )
    .await;
    let generated = text.replace("active_customers", "customers").replace(
        r#"company = { crm = "name", validate = "required" }"#,
        r#"company = { crm = "name", validate = "required" }
shout = { crm = "description", direction = "both" }"#,
    );
    let engine = w.engine_with(load(generated), |_| {}).await;
    let err = engine.push_once().await.expect_err("refused").to_string();
    assert!(err.contains("shout") && err.contains("generated"), "{err}");
}
