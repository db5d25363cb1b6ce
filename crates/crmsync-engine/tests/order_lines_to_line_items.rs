//! An order system's lines reach HubSpot as line items: customers → contacts, orders → deals,
//! products → products and order_lines → line_items, from a real SQLite file to the sandbox over
//! a real socket. Each line item is associated with its deal, names its product in
//! `hs_product_id` (no association call), carries its quantity and its price in cents scaled to
//! an amount; a second pass sends nothing; a line waits for a product that cannot be sent (or,
//! with `required = false`, goes without it); `check` and `plan` show the line items as they
//! will go; a product's name edited in HubSpot is pulled back.

mod support;

use crmsync_core::config::{Config, Secrets, load_str};
use crmsync_engine::budget::Budget;
use crmsync_engine::check::Severity;
use crmsync_engine::estimate::estimate;
use crmsync_sandbox::{Sandbox, SandboxConfig};
use crmsync_store::Records;
use serde_json::Value;
use sqlx::{Connection, SqliteConnection};
use support::{TestEngine, World};

const UI_TOKEN: &str = "ui-token";

const SHOP: &str = r#"
[source]
url = "sqlite://shop.db"
[crm]
environment = "sandbox"
kind = "hubspot"
base_url = "BASE"
token_env = "HUBSPOT_ACCESS_TOKEN"

[[sync]]
name = "contacts"
table = "customers"
object = "contacts"
capture = "scan"
[sync.fields]
email = { crm = "email", validate = ["required", "email"] }

[[sync]]
name = "orders"
table = "orders"
object = "deals"
capture = "scan"
associate = { customer_id = "contacts" }
[sync.fields]
title = { crm = "dealname" }
status = { crm = "dealstage", map = { new = "appointmentscheduled", paid = "closedwon" } }

[[sync]]
name = "products"
table = "products"
object = "products"
capture = "scan"
[sync.fields]
name = { crm = "name", validate = "required", direction = "both" }
sku = { crm = "hs_sku", direction = "push" }
price_cents = { crm = "price", transform = [{ number = { divide_by = 100, decimals = 2 } }], direction = "push" }

[[sync]]
name = "order_lines"
table = "order_lines"
object = "line_items"
capture = "scan"
associate = { order_id = "orders", product_id = "products" }
[sync.fields]
label = { crm = "name" }
sku = { crm = "hs_sku" }
quantity = { crm = "quantity" }
price_cents = { crm = "price", transform = [{ number = { divide_by = 100, decimals = 2 } }] }
"#;

/// The shop's tables and rows. Product 3 has no name: it is quarantined, so line 4 cannot get
/// its product.
const DDL: &[&str] = &[
    "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT)",
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, title TEXT, status TEXT)",
    "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, sku TEXT, price_cents INTEGER)",
    "CREATE TABLE order_lines (id INTEGER PRIMARY KEY, order_id INTEGER, product_id INTEGER, label TEXT, sku TEXT, quantity INTEGER, price_cents INTEGER)",
    "INSERT INTO customers VALUES (1, 'ada@acme.com'), (2, 'grace@globex.com')",
    "INSERT INTO orders VALUES (1, 1, 'Order 1', 'new'), (2, 2, 'Order 2', 'paid')",
    "INSERT INTO products VALUES (1, 'Widget', 'W-1', 1999), (2, 'Gadget', 'G-1', 4550), (3, '', 'X-1', 100)",
    "INSERT INTO order_lines VALUES
        (1, 1, 1, 'Widget', 'W-1', 2, 1999),
        (2, 1, 2, 'Gadget', 'G-1', 1, 4550),
        (3, 2, 1, 'Widget (sale)', 'W-1', 5, 1250),
        (4, 2, 3, 'Mystery', 'X-1', 1, 100)",
];

/// The shop in SQLite, a sandbox that also knows a HubSpot user's token, and the config with
/// `edit` applied to its text.
async fn shop(edit: impl FnOnce(String) -> String) -> World {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("shop.db");
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", db.display()))
        .await
        .expect("create app db");
    for sql in DDL {
        sqlx::query(*sql)
            .execute(&mut conn)
            .await
            .expect("shop sql");
    }
    conn.close().await.expect("close");
    let mut sandbox_config = SandboxConfig::unlimited();
    sandbox_config.other_tokens.insert(UI_TOKEN.into(), 4242);
    let sandbox = Sandbox::start("127.0.0.1:0", sandbox_config)
        .await
        .expect("sandbox starts");
    let text = edit(SHOP.replace("BASE", &sandbox.base_url()));
    let path = dir.path().join("crmsync.toml");
    std::fs::write(&path, &text).expect("write config");
    let config: Config = load_str(&text, &path, Secrets::Required, &|_| {
        Some("test-token".into())
    })
    .expect("config valid");
    World {
        dir,
        sandbox,
        config,
    }
}

async fn crm_id(engine: &TestEngine, sync: &str, key: &str) -> Option<String> {
    engine
        .state
        .link(sync, key)
        .await
        .expect("link")
        .and_then(|l| l.crm_id)
}

async fn line_item(w: &World, id: &str) -> Value {
    w.get(&format!(
        "/crm/v3/objects/line_items/{id}?properties=name,hs_sku,hs_product_id,quantity,price,amount&associations=deals"
    ))
    .await
}

#[tokio::test]
async fn order_lines_become_line_items_of_their_deal_naming_their_product() {
    let w = shop(|t| t).await;
    let engine = w.engine().await;

    // `plan` before anything is sent: four lines, of which three can go (line 4's product is
    // invalid); one upsert call and one association call (to the deals — the products ride in
    // the upsert).
    let now = crmsync_store::now_ms();
    let est = estimate(
        &engine.config,
        &engine.state,
        &engine.app,
        &Budget::new(&engine.config.raw.crm, now),
        100,
        now,
    )
    .await
    .expect("estimate");
    let lines = est
        .syncs
        .iter()
        .find(|s| s.sync == "order_lines")
        .expect("order_lines planned");
    assert_eq!(
        (lines.rows, lines.upsert_calls, lines.association_calls),
        (4, 1, 1),
        "{lines:?}"
    );

    // `check` against the live portal: line items are a known object whose mapped properties
    // exist; the product column is announced as `hs_product_id`; nothing is an error.
    let report = crmsync_engine::check::check(&engine.config, &engine.crm, &engine.app, 3)
        .await
        .expect("check");
    let summary = report
        .syncs
        .iter()
        .find(|s| s.sync == "order_lines")
        .expect("order_lines checked");
    assert_eq!(
        (summary.object.as_str(), summary.rows, summary.ready),
        ("line_items", 4, 4)
    );
    let errors: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error && f.sync != "products")
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(
        report.findings.iter().any(|f| f.sync == "order_lines"
            && f.kind == "reference"
            && f.message.contains("hs_product_id")),
        "{:#?}",
        report.findings
    );

    let run = engine.push_once().await.expect("first pass");
    let of = |name: &str| {
        run.syncs
            .iter()
            .find(|s| s.sync == name)
            .cloned()
            .expect("reported")
    };
    assert_eq!((of("products").created, of("products").invalid), (2, 1));
    // Lines wait for their parents within the pass (`held` counts every capture that held
    // them); all but line 4 end up in the CRM.
    assert_eq!(of("order_lines").created, 3);

    // Every line item: its deal, its product, its quantity, its price scaled from cents and the
    // amount HubSpot computed.
    let expected = [
        ("1", "1", "1", "Widget", "W-1", "2", "19.99", "39.98"),
        ("2", "1", "2", "Gadget", "G-1", "1", "45.50", "45.50"),
        ("3", "2", "1", "Widget (sale)", "W-1", "5", "12.50", "62.50"),
    ];
    for (line, order, product, name, sku, quantity, price, amount) in expected {
        let id = crm_id(&engine, "order_lines", line)
            .await
            .expect("line synced");
        let deal = crm_id(&engine, "orders", order).await.expect("deal synced");
        let product_id = crm_id(&engine, "products", product)
            .await
            .expect("product synced");
        let item = line_item(&w, &id).await;
        let p = &item["properties"];
        assert_eq!(
            p["hs_product_id"],
            product_id.as_str(),
            "line {line}: {item}"
        );
        assert_eq!(
            (
                &p["name"],
                &p["hs_sku"],
                &p["quantity"],
                &p["price"],
                &p["amount"]
            ),
            (
                &Value::from(name),
                &Value::from(sku),
                &Value::from(quantity),
                &Value::from(price),
                &Value::from(amount)
            ),
            "line {line}: {item}"
        );
        assert_eq!(
            item["associations"]["deals"]["results"],
            serde_json::json!([{"id": deal, "type": "line_item_to_deal"}]),
            "line {line} belongs to its deal"
        );
    }
    // From the deal's side, through v4: order 1 has lines 1 and 2.
    let deal = crm_id(&engine, "orders", "1").await.expect("deal 1");
    let page = w
        .get(&format!(
            "/crm/v4/objects/deals/{deal}/associations/line_items"
        ))
        .await;
    let mut items: Vec<String> = page["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["toObjectId"].to_string())
        .collect();
    items.sort();
    let mut want = vec![
        crm_id(&engine, "order_lines", "1").await.expect("line 1"),
        crm_id(&engine, "order_lines", "2").await.expect("line 2"),
    ];
    want.sort();
    assert_eq!(items, want);
    assert_eq!(
        w.calls_to("/associations/line_items/products").await,
        0,
        "a product is a property, never an association call"
    );

    // Line 4 waits for its product, which cannot be sent, and says so.
    assert!(crm_id(&engine, "order_lines", "4").await.is_none());
    let held = engine
        .state
        .quarantined("order_lines")
        .await
        .expect("quarantine");
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].local_id, "4");
    assert_eq!(held[0].rule, "parent");
    assert!(held[0].message.contains("`products` record 3"), "{held:?}");

    // A second pass sends nothing new.
    let upserts = w.calls_to("/batch/upsert").await;
    let associations = w.calls_to("/associations/").await;
    let again = engine.push_once().await.expect("second pass");
    assert_eq!(again.upsert_calls, 0, "{again:?}");
    assert_eq!(w.calls_to("/batch/upsert").await, upserts);
    assert_eq!(w.calls_to("/associations/").await, associations);
    assert_eq!(w.objects().await.2, 2, "two deals");

    // The product of a line changes in the app: the line item names the new one.
    w.app_sql("UPDATE order_lines SET product_id = 2 WHERE id = 3")
        .await;
    let third = engine.push_once().await.expect("third pass");
    assert_eq!(
        third
            .syncs
            .iter()
            .find(|s| s.sync == "order_lines")
            .map(|s| s.updated),
        Some(1)
    );
    let id = crm_id(&engine, "order_lines", "3").await.expect("line 3");
    let gadget = crm_id(&engine, "products", "2").await.expect("product 2");
    assert_eq!(
        line_item(&w, &id).await["properties"]["hs_product_id"],
        gadget.as_str()
    );

    // A product renamed in HubSpot is pulled into the app (a two-way field of a products sync).
    let widget = crm_id(&engine, "products", "1").await.expect("product 1");
    let status = reqwest::Client::new()
        .patch(format!(
            "{}/crm/v3/objects/products/{widget}",
            w.sandbox.base_url()
        ))
        .bearer_auth(UI_TOKEN)
        .json(&serde_json::json!({"properties": {"name": "Widget Pro"}}))
        .send()
        .await
        .expect("patch")
        .status();
    assert!(status.is_success(), "{status}");
    let pulled = engine.pull_once().await.expect("poll");
    assert!(pulled.applied >= 1, "{pulled:?}");
    let mut conn = SqliteConnection::connect(&w.config.source_url())
        .await
        .expect("app db");
    let name: String = sqlx::query_scalar("SELECT name FROM products WHERE id = 1")
        .fetch_one(&mut conn)
        .await
        .expect("product row");
    assert_eq!(name, "Widget Pro");
}

#[tokio::test]
async fn with_an_optional_product_a_line_goes_without_it_and_gets_it_once_the_product_syncs() {
    let w = shop(|t| {
        t.replace(
            r#"associate = { order_id = "orders", product_id = "products" }"#,
            r#"associate = { order_id = "orders", product_id = { sync = "products", required = false } }"#,
        )
    })
    .await;
    let engine = w.engine().await;
    let run = engine.push_once().await.expect("first pass");
    let lines = run
        .syncs
        .iter()
        .find(|s| s.sync == "order_lines")
        .cloned()
        .expect("order_lines");
    assert_eq!(lines.created, 4, "no line waits: {lines:?}");
    let id = crm_id(&engine, "order_lines", "4")
        .await
        .expect("line 4 sent");
    let item = line_item(&w, &id).await;
    assert!(
        item["properties"]["hs_product_id"].is_null(),
        "sent without its product: {item}"
    );
    assert_eq!(item["properties"]["amount"], "1.00");

    // The product is fixed and syncs: the line is planned again and names it.
    w.app_sql("UPDATE products SET name = 'Mystery box' WHERE id = 3")
        .await;
    engine.push_once().await.expect("second pass");
    let product = crm_id(&engine, "products", "3")
        .await
        .expect("product 3 synced");
    engine.push_once().await.expect("third pass");
    assert_eq!(
        line_item(&w, &id).await["properties"]["hs_product_id"],
        product.as_str()
    );
    assert_eq!(
        w.stats().await["objects"]["line_items"],
        4,
        "updated, not duplicated"
    );
}

#[tokio::test]
async fn lines_that_know_only_the_sku_find_their_product_through_a_products_sync_keyed_by_it() {
    let w = shop(|t| {
        t.replace(
            "table = \"products\"\nobject = \"products\"",
            "table = \"products\"\nkey = \"sku\"\nobject = \"products\"",
        )
        .replace(
            r#"associate = { order_id = "orders", product_id = "products" }"#,
            r#"associate = { order_id = "orders", sku = "products" }"#,
        )
    })
    .await;
    assert_eq!(
        w.config.sync("products").map(|s| s.key.as_str()),
        Some("sku")
    );
    let engine = w.engine().await;
    engine.push_once().await.expect("first pass");
    let widget = crm_id(&engine, "products", "W-1")
        .await
        .expect("W-1 synced");
    for line in ["1", "3"] {
        let id = crm_id(&engine, "order_lines", line)
            .await
            .expect("line synced");
        let item = line_item(&w, &id).await;
        assert_eq!(
            item["properties"]["hs_product_id"],
            widget.as_str(),
            "{item}"
        );
        assert_eq!(item["properties"]["hs_sku"], "W-1");
    }
    assert!(
        crm_id(&engine, "order_lines", "4").await.is_none(),
        "X-1 is invalid: its line waits"
    );
}
