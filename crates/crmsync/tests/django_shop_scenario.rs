//! A Django-shaped shop (`shop_company`, `shop_customer`, `shop_product`, `shop_order`,
//! `shop_orderline`, a view, NOT NULL `created_at`/`updated_at` without defaults, cents,
//! national phone numbers, NULLs, a bad e-mail, a bad phone), synced by the real binary into
//! the sandbox over a real socket, on SQLite and on PostgreSQL, as a new user would: `check`,
//! `plan`, `sync --once`, `status`, a mapping change, a wrong property, and `run` for what sales
//! creates in the CRM. Each point of issue 11 is asserted from the outside (the CRM's records,
//! the app's rows, the commands' output).

mod support;

use crmsync_sandbox::{Sandbox, SandboxConfig};
use crmsync_store::testing::TestDb;
use serde_json::{Value, json};
use support::cli::{Output, run_with};

/// The two databases the scenario runs on.
enum Db {
    Sqlite,
    Postgres,
}

fn schema(db: &Db) -> Vec<String> {
    let (id, ts, now) = match db {
        Db::Sqlite => ("INTEGER PRIMARY KEY", "TEXT", "'2026-01-05 10:00:00'"),
        Db::Postgres => (
            "bigserial PRIMARY KEY",
            "timestamptz",
            "'2026-01-05 10:00:00+00'",
        ),
    };
    let stamps = format!("created_at {ts} NOT NULL, updated_at {ts} NOT NULL");
    let mut sql = vec![
        format!(
            "CREATE TABLE shop_company (id {id}, name varchar(120) NOT NULL, domain varchar(120), {stamps})"
        ),
        format!("CREATE VIEW shop_company_public AS SELECT id, name, domain FROM shop_company"),
        format!(
            "CREATE TABLE shop_customer (id {id}, email varchar(254) NOT NULL, first_name varchar(60), phone varchar(40), country varchar(2), lead_source varchar(40), company_id bigint REFERENCES shop_company (id), hubspot_id varchar(40), {stamps})"
        ),
        format!(
            "CREATE TABLE shop_product (id {id}, sku varchar(40) NOT NULL, name varchar(120) NOT NULL, price_cents integer NOT NULL, {stamps})"
        ),
        format!(
            "CREATE TABLE shop_order (id {id}, customer_id bigint REFERENCES shop_customer (id), company_id bigint NOT NULL REFERENCES shop_company (id), title varchar(120) NOT NULL, total_cents integer NOT NULL, currency varchar(3) NOT NULL, state varchar(20) NOT NULL, {stamps})"
        ),
        format!(
            "CREATE TABLE shop_orderline (id {id}, order_id bigint NOT NULL REFERENCES shop_order (id), product_id bigint NOT NULL REFERENCES shop_product (id), quantity integer NOT NULL, unit_price_cents integer NOT NULL, {stamps})"
        ),
        // A NULL domain: it must never erase what a salesperson types into HubSpot.
        format!(
            "INSERT INTO shop_company VALUES (1, 'Acme Robotics', 'acme.example', {now}, {now}), (2, 'Globex', NULL, {now}, {now})"
        ),
        // A UK number written nationally, a US one, a bad phone, a bad e-mail.
        format!(
            "INSERT INTO shop_customer VALUES (1, 'ada@acme.example', 'Ada', '020 7946 0958', 'GB', 'trade fair', 1, NULL, {now}, {now}), (2, 'grace@globex.example', 'Grace', '(415) 555-0100', 'US', 'web', 2, NULL, {now}, {now}), (3, 'linus@globex.example', 'Linus', 'n/a', 'FI', NULL, 2, NULL, {now}, {now}), (4, 'not an email', 'Bob', NULL, 'US', NULL, 2, NULL, {now}, {now})"
        ),
        format!(
            "INSERT INTO shop_product VALUES (1, 'ARM-1', 'Robot arm', 129900, {now}, {now}), (2, 'GRP-2', 'Gripper', 1999, {now}, {now})"
        ),
        // Order 3's customer has a bad e-mail: the deal goes without its contact.
        format!(
            "INSERT INTO shop_order VALUES (1, 1, 1, 'Arm for Acme', 129900, 'EUR', 'paid', {now}, {now}), (2, 2, 2, 'Grippers for Globex', 3998, 'usd', 'pending', {now}, {now}), (3, 4, 2, 'Spare gripper', 1999, 'USD', 'shipped', {now}, {now})"
        ),
        format!(
            "INSERT INTO shop_orderline VALUES (1, 1, 1, 1, 129900, {now}, {now}), (2, 2, 2, 2, 1999, {now}, {now}), (3, 3, 2, 1, 1999, {now}, {now})"
        ),
    ];
    if let Db::Sqlite = db {
        // 11. A value that is not UTF-8 (SQLite keeps any bytes): only its record is held back.
        sql.push(format!("INSERT INTO shop_customer VALUES (5, 'zed@acme.example', X'C328FF', NULL, 'DE', NULL, 1, NULL, {now}, {now})"));
    }
    if let Db::Postgres = db {
        // Explicit ids above: the sequences continue after them.
        for t in [
            "shop_company",
            "shop_customer",
            "shop_product",
            "shop_order",
            "shop_orderline",
        ] {
            sql.push(format!(
                "SELECT setval(pg_get_serial_sequence('{t}', 'id'), 100)"
            ));
        }
    }
    sql
}

const CONFIG: &str = r#"
[source]
url_env = "APP_DATABASE_URL"
[state]
url = "sqlite://state.db"
[crm]
kind = "hubspot"
environment = "sandbox"
base_url = "SANDBOX_URL"
token_env = "HUBSPOT_ACCESS_TOKEN"
[run]
poll_interval_ms = 300
capture_interval_ms = 200

[[sync]]
name = "companies"
table = "shop_company_public"
object = "companies"
capture = "scan"
[sync.fields]
name = { crm = "name", validate = "required" }
domain = { crm = "domain", transform = ["trim", "lowercase"] }

[[sync]]
name = "contacts"
table = "shop_customer"
object = "contacts"
associate = { company_id = "companies" }
write_back_column = "hubspot_id"
on_crm_create = "insert"
insert_values = { created_at = "now", updated_at = "now" }
[sync.fields]
email = { crm = "email", transform = ["trim", "lowercase"], validate = ["required", "email"], direction = "both" }
first_name = { crm = "firstname", direction = "both" }
phone = { crm = "phone", transform = [{ e164 = { region_column = "country", default = "US" } }], on_invalid = "skip_field" }
lead_source = { crm = "jobtitle", write = "create_only" }

[[sync]]
name = "products"
table = "shop_product"
object = "products"
[sync.fields]
name = { crm = "name" }
sku = { crm = "hs_sku" }
price_cents = { crm = "price", transform = [{ number = { divide_by = 100, decimals = 2 } }] }

[[sync]]
name = "deals"
table = "shop_order"
object = "deals"
associate = { company_id = "companies", customer_id = { sync = "contacts", required = false } }
[sync.fields]
title = { crm = "dealname" }
total_cents = { crm = "amount", transform = [{ number = { divide_by = 100, decimals = 2 } }] }
currency = { crm = "deal_currency_code", transform = ["uppercase"] }
state = { crm = "dealstage", map = { pending = "appointmentscheduled", paid = "closedwon", shipped = "closedwon" } }
pipeline = { crm = "pipeline", constant = "default" }

[[sync]]
name = "order_lines"
table = "shop_orderline"
object = "line_items"
associate = { order_id = "deals", product_id = "products" }
[sync.fields]
quantity = { crm = "quantity" }
unit_price_cents = { crm = "price", transform = [{ number = { divide_by = 100, decimals = 2 } }] }
"#;

struct Shop {
    dir: tempfile::TempDir,
    sandbox: Sandbox,
    url: String,
    config: String,
    http: reqwest::Client,
}

impl Shop {
    async fn cli(&self, args: &[&str]) -> Output {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(["--config".to_string(), self.config.clone()]);
        run_with(
            all,
            Some(self.dir.path()),
            &[
                ("APP_DATABASE_URL", self.url.as_str()),
                ("HUBSPOT_ACCESS_TOKEN", "test-token"),
            ],
        )
        .await
    }

    async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.sandbox.base_url()))
            .bearer_auth("test-token");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("sandbox answers");
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap_or(Value::Null)
    }

    /// Every record of `object` with `props`, by id.
    async fn records(&self, object: &str, props: &str) -> Vec<Value> {
        let page = self
            .api(
                reqwest::Method::GET,
                &format!(
                    "/crm/v3/objects/{object}?limit=100&properties={props}&associations=deals"
                ),
                None,
            )
            .await;
        page["results"].as_array().cloned().unwrap_or_default()
    }

    /// Requests to endpoints whose path contains `part`, as the sandbox counted them.
    async fn calls(&self, part: &str) -> u64 {
        let s: Value = reqwest::get(format!("{}/_sandbox/stats", self.sandbox.base_url()))
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats json");
        s["calls"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|c| c["endpoint"].as_str().is_some_and(|e| e.contains(part)))
                    .map(|c| c["count"].as_u64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0)
    }

    fn write_config(&self, extra: &[(&str, &str)]) {
        let mut text = CONFIG.replace("SANDBOX_URL", &self.sandbox.base_url());
        for (from, to) in extra {
            assert!(text.contains(from), "{from}");
            text = text.replace(from, to);
        }
        std::fs::write(&self.config, text).expect("config written");
    }
}

fn prop<'a>(record: &'a Value, name: &str) -> &'a str {
    record["properties"][name].as_str().unwrap_or("")
}

fn by<'a>(records: &'a [Value], name: &str, value: &str) -> &'a Value {
    records
        .iter()
        .find(|r| prop(r, name) == value)
        .unwrap_or_else(|| panic!("no record with {name} = {value}: {records:#?}"))
}

async fn app_sql(url: &str, db: &Db, sql: &str) {
    use sqlx::Connection;
    match db {
        Db::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(url).await.expect("sqlite");
            sqlx::raw_sql(crmsync_store::ident::sql(sql.to_string()))
                .execute(&mut c)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        Db::Postgres => {
            let mut c = sqlx::PgConnection::connect(url).await.expect("postgres");
            sqlx::raw_sql(crmsync_store::ident::sql(sql.to_string()))
                .execute(&mut c)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }
}

/// The customer row with `email`: (first name, CRM id, whether `created_at` is set).
async fn app_row(
    url: &str,
    db: &Db,
    email: &str,
) -> Option<(Option<String>, Option<String>, bool)> {
    use sqlx::Connection;
    let sql =
        "SELECT first_name, hubspot_id, created_at IS NOT NULL FROM shop_customer WHERE email = ";
    match db {
        Db::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(url).await.ok()?;
            sqlx::query_as(crmsync_store::ident::sql(format!("{sql}?")))
                .bind(email)
                .fetch_optional(&mut c)
                .await
                .ok()?
        }
        Db::Postgres => {
            let mut c = sqlx::PgConnection::connect(url).await.ok()?;
            sqlx::query_as(crmsync_store::ident::sql(format!("{sql}$1")))
                .bind(email)
                .fetch_optional(&mut c)
                .await
                .ok()?
        }
    }
}

async fn scenario(db: Db, url: String, dir: tempfile::TempDir) {
    for sql in schema(&db) {
        app_sql(&url, &db, &sql).await;
    }
    let sandbox = Sandbox::start("127.0.0.1:0", SandboxConfig::unlimited())
        .await
        .expect("sandbox starts");
    let shop = Shop {
        config: dir.path().join("crmsync.toml").display().to_string(),
        dir,
        sandbox,
        url: url.clone(),
        http: reqwest::Client::new(),
    };
    shop.write_config(&[]);

    // check: the bad e-mail is named, the bad phone is a warning, the view is fine.
    let check = shop.cli(&["check"]).await;
    assert_eq!(check.code, 1, "{}\n{}", check.stdout, check.stderr);
    assert!(
        check.stdout.contains("not an email") || check.stdout.contains("`email` fails"),
        "{}",
        check.stdout
    );
    assert!(
        check.stdout.contains("skipped_field") || check.stdout.contains("sent without it"),
        "{}",
        check.stdout
    );

    let install = shop.cli(&["install"]).await;
    assert_eq!(install.code, 0, "{}", install.stderr);
    let plan = shop.cli(&["plan"]).await;
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);

    let sync = shop.cli(&["sync", "--once"]).await;
    // 1: a record was quarantined (the bad e-mail); nothing else went wrong.
    assert!(sync.code <= 1, "{}\n{}", sync.stdout, sync.stderr);

    // 1. Units and currency.
    let deals = shop
        .records("deals", "dealname,amount,deal_currency_code,dealstage")
        .await;
    assert_eq!(deals.len(), 3, "{deals:#?}");
    let arm = by(&deals, "dealname", "Arm for Acme");
    assert_eq!(prop(arm, "amount"), "1299.00");
    assert_eq!(prop(arm, "deal_currency_code"), "EUR");
    assert_eq!(
        prop(
            by(&deals, "dealname", "Grippers for Globex"),
            "deal_currency_code"
        ),
        "USD"
    );
    // 5. Phone regions per record; a bad phone leaves the field out, not the contact.
    let contacts = shop
        .records("contacts", "email,phone,firstname,jobtitle")
        .await;
    assert_eq!(
        contacts.len(),
        3,
        "the bad e-mail is quarantined: {contacts:#?}"
    );
    assert_eq!(
        prop(by(&contacts, "email", "ada@acme.example"), "phone"),
        "+442079460958"
    );
    assert_eq!(
        prop(by(&contacts, "email", "grace@globex.example"), "phone"),
        "+14155550100"
    );
    assert_eq!(
        prop(by(&contacts, "email", "linus@globex.example"), "phone"),
        ""
    );
    // 6. Line items with their deal and product.
    let products = shop.records("products", "name,hs_sku,price").await;
    let arm_product = by(&products, "hs_sku", "ARM-1");
    assert_eq!(prop(arm_product, "price"), "1299.00");
    let lines = shop
        .records("line_items", "quantity,price,hs_product_id")
        .await;
    assert_eq!(lines.len(), 3, "{lines:#?}");
    for l in &lines {
        assert!(!prop(l, "hs_product_id").is_empty(), "product: {l}");
        let deals_of = l["associations"]["deals"]["results"]
            .as_array()
            .map(Vec::len);
        assert_eq!(deals_of, Some(1), "one deal: {l}");
    }
    // 8. A view as a push source: both companies, no domain for the NULL.
    let companies = shop.records("companies", "name,domain").await;
    assert_eq!(companies.len(), 2);
    let globex = by(&companies, "name", "Globex");
    assert_eq!(prop(globex, "domain"), "");

    // 2. Sales types Globex's domain in HubSpot; the app's NULL never erases it, even when the
    // company changes in the app; a create-only value is not overwritten.
    let globex_id = globex["id"].as_str().expect("id").to_string();
    shop.api(
        reqwest::Method::PATCH,
        &format!("/crm/v3/objects/companies/{globex_id}"),
        Some(json!({"properties": {"domain": "globex.example"}})),
    )
    .await;
    app_sql(
        &url,
        &db,
        "UPDATE shop_company SET name = 'Globex Corp' WHERE id = 2",
    )
    .await;
    app_sql(
        &url,
        &db,
        "UPDATE shop_customer SET lead_source = 'changed later' WHERE id = 1",
    )
    .await;
    let sync = shop.cli(&["sync", "--once"]).await;
    // 1: a record was quarantined (the bad e-mail); nothing else went wrong.
    assert!(sync.code <= 1, "{}\n{}", sync.stdout, sync.stderr);
    let companies = shop.records("companies", "name,domain").await;
    let globex = by(&companies, "name", "Globex Corp");
    assert_eq!(
        prop(globex, "domain"),
        "globex.example",
        "a NULL does not erase"
    );
    let contacts = shop.records("contacts", "email,jobtitle").await;
    assert_eq!(
        prop(by(&contacts, "email", "ada@acme.example"), "jobtitle"),
        "trade fair"
    );

    // 3. A mapping change reaches every record: `plan` says so first.
    shop.write_config(&[(
        r#"title = { crm = "dealname" }"#,
        r#"title = { crm = "dealname" }
created_at = { crm = "closedate", transform = [{ datetime = "iso" }] }"#,
    )]);
    let plan = shop.cli(&["plan"]).await;
    assert!(
        plan.stdout.contains("deals: the mapping changed"),
        "{}",
        plan.stdout
    );
    let sync = shop.cli(&["sync", "--once"]).await;
    // 1: a record was quarantined (the bad e-mail); nothing else went wrong.
    assert!(sync.code <= 1, "{}\n{}", sync.stdout, sync.stderr);
    let deals = shop.records("deals", "dealname,closedate").await;
    assert!(
        deals.iter().all(|d| !prop(d, "closedate").is_empty()),
        "every deal got the new field: {deals:#?}"
    );

    // 4. A property the CRM lacks: refused before any write, and with --force one call.
    shop.write_config(&[(
        r#"title = { crm = "dealname" }"#,
        r#"title = { crm = "dealname" }
state_label = { column = "state", crm = "order_state_label" }"#,
    )]);
    let before = shop.calls("/deals/batch/upsert").await;
    let refused = shop.cli(&["sync", "--once"]).await;
    assert_eq!(
        shop.calls("/deals/batch/upsert").await,
        before,
        "refused before any write"
    );
    assert_eq!(refused.code, 2, "{}\n{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("order_state_label"),
        "{}",
        refused.stderr
    );
    app_sql(&url, &db, "UPDATE shop_order SET title = title || ' (v2)'").await;
    let forced = shop.cli(&["sync", "--once", "--force"]).await;
    assert!(
        forced.stdout.contains("STOPPED") || forced.stderr.contains("STOPPED"),
        "{}\n{}",
        forced.stdout,
        forced.stderr
    );
    let upserts_after = shop.calls("/deals/batch/upsert").await - before;
    let status = shop.cli(&["status", "--json"]).await;
    let st: Value = serde_json::from_str(&status.stdout).expect("status json");
    let deals_status = st["syncs"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["sync"] == "deals"))
        .cloned()
        .expect("deals status");
    assert!(deals_status["stopped"].is_string(), "{deals_status}");
    // The forced start: one call found the mapping wrong for everyone, not one per record.
    assert_eq!(upserts_after, 1, "deal upserts spent on a wrong property");

    let contacts_status = st["syncs"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["sync"] == "contacts"))
        .cloned()
        .expect("contacts status");
    let unreadable = usize::from(matches!(db, Db::Sqlite));
    assert_eq!(
        contacts_status["quarantined"].as_u64(),
        Some(1 + unreadable as u64),
        "the bad e-mail (and on SQLite the unreadable name) only: {contacts_status}"
    );

    // 9. Totals add up in status.
    for s in st["syncs"].as_array().expect("syncs") {
        let n = |k: &str| s[k].as_i64().unwrap_or(-1);
        assert_eq!(
            n("synced") + n("pending") + n("failed") + n("quarantined") + n("held"),
            n("total"),
            "{s}"
        );
    }

    // Back to the good mapping for what follows.
    shop.write_config(&[(
        r#"title = { crm = "dealname" }"#,
        r#"title = { crm = "dealname" }
created_at = { crm = "closedate", transform = [{ datetime = "iso" }] }"#,
    )]);
    let sync = shop.cli(&["sync", "--once"]).await;
    // 1: a record was quarantined (the bad e-mail); nothing else went wrong.
    assert!(sync.code <= 1, "{}\n{}", sync.stdout, sync.stderr);
    let deals = shop.records("deals", "dealname").await;
    assert!(
        deals.iter().all(|d| prop(d, "dealname").ends_with("(v2)")),
        "{deals:#?}"
    );

    // 7. Sales creates a contact in HubSpot: `run` makes it a row (Django's NOT NULL stamps
    // from insert_values), linked, so it never comes back as a second contact.
    let before = shop.records("contacts", "email").await.len();
    shop.api(
        reqwest::Method::POST,
        "/crm/v3/objects/contacts",
        Some(json!({"properties": {"email": "new.lead@initech.example", "firstname": "Peter"}})),
    )
    .await;
    let log_path = shop.dir.path().join("run.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let mut worker = std::process::Command::new(assert_cmd::cargo::cargo_bin!("crmsync"))
        .args(["run", "--config", &shop.config])
        .current_dir(shop.dir.path())
        .env("APP_DATABASE_URL", &url)
        .env("HUBSPOT_ACCESS_TOKEN", "test-token")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::from(log.try_clone().expect("log")))
        .stderr(std::process::Stdio::from(log))
        .spawn()
        .expect("crmsync run starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let row = loop {
        if let Some(row) = app_row(&url, &db, "new.lead@initech.example").await {
            break row;
        }
        if std::time::Instant::now() > deadline {
            let _ = worker.kill();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!("the CRM's contact never became a row:\n{log}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let _ = worker.kill();
    let _ = worker.wait();
    assert_eq!(row.0.as_deref(), Some("Peter"));
    assert!(row.1.is_some(), "the CRM id is written back");
    assert!(row.2, "created_at filled by insert_values");
    let sync = shop.cli(&["sync", "--once"]).await;
    assert!(sync.code <= 1, "{}\n{}", sync.stdout, sync.stderr);
    assert_eq!(
        shop.records("contacts", "email").await.len(),
        before + 1,
        "the new row is linked: no second contact"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_django_shop_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("shop.db").display());
    scenario(Db::Sqlite, url, dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_django_shop_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    scenario(Db::Postgres, db.url.clone(), dir).await;
    db.drop_now().await;
}
