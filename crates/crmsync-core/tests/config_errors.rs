//! A bad config gets a clear error naming the file, the line and the key, and every semantic
//! problem is reported at once.

use crmsync_core::config::{ConfigError, Secrets, WebhookSignature, load, load_str};
use secrecy::ExposeSecret;
use std::path::Path;

const GOOD: &str = r#"
[source]
url = "sqlite://orders.db"

[crm]
kind = "hubspot"
token_env = "HUBSPOT_ACCESS_TOKEN"
environment = "sandbox"
[[sync]]
name = "companies"
table = "customers"
object = "companies"
[sync.fields]
company_name = { crm = "name" }
"#;

fn env_with_token(name: &str) -> Option<String> {
    (name == "HUBSPOT_ACCESS_TOKEN").then(|| "pat-test".to_string())
}

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn a_good_config_loads_and_resolves_paths_relative_to_the_file() {
    let cfg = load_str(
        GOOD,
        Path::new("/srv/app/crmsync.toml"),
        Secrets::Required,
        &env_with_token,
    )
    .expect("valid config");
    assert_eq!(cfg.source_url(), "sqlite:///srv/app/orders.db");
    assert_eq!(cfg.state_url(), "sqlite:///srv/app/crmsync-state.db");
    assert!(cfg.token.is_some());
}

#[test]
fn a_wrong_type_names_line_and_key() {
    let text = GOOD.replace(
        "kind = \"hubspot\"",
        "kind = \"hubspot\"\nmax_retries = \"five\"",
    );
    let err = load_str(
        &text,
        Path::new("c.toml"),
        Secrets::Required,
        &env_with_token,
    )
    .expect_err("must fail");
    let msg = err.to_string();
    assert!(matches!(err, ConfigError::Parse { .. }), "{msg}");
    assert!(msg.contains("c.toml"), "{msg}");
    assert!(msg.contains("line 7"), "{msg}");
    assert!(msg.contains("max_retries"), "{msg}");
}

#[test]
fn an_unknown_key_is_rejected_with_its_line() {
    let text = GOOD.replace(
        "table = \"customers\"",
        "table = \"customers\"\ntabel = \"x\"",
    );
    let err = load_str(
        &text,
        Path::new("c.toml"),
        Secrets::Required,
        &env_with_token,
    )
    .expect_err("must fail");
    let msg = err.to_string();
    assert!(msg.contains("unknown field `tabel`"), "{msg}");
    assert!(msg.contains("line 12"), "{msg}");
}

#[test]
fn a_missing_token_variable_is_a_config_error_naming_it() {
    let err =
        load_str(GOOD, Path::new("c.toml"), Secrets::Required, &no_env).expect_err("must fail");
    let p = err.problems();
    assert_eq!(p.len(), 1, "{err}");
    assert_eq!(p[0].path, "crm.token_env");
    assert_eq!(p[0].line, Some(7));
    assert!(p[0].message.contains("HUBSPOT_ACCESS_TOKEN"), "{err}");
    // Commands that never call the CRM do not need it.
    assert!(load_str(GOOD, Path::new("c.toml"), Secrets::NotNeeded, &no_env).is_ok());
}

#[test]
fn all_semantic_problems_are_reported_at_once_with_lines() {
    let text = r#"
[source]
url = "oracle://x"

[crm]
kind = "hubspot"
daily_budget_share = 1.5
environment = "sandbox"
[[sync]]
name = "orders"
table = "orders"
object = "tickets"
associate = { customer_id = "customers" }
[sync.fields]
status = { crm = "dealstage", transform = ["reverse"], validate = "phonetic" }

[[sync]]
name = "orders"
table = "orders2"
object = "deals"
[sync.fields]
x = { crm = "y" }
"#;
    let err =
        load_str(text, Path::new("bad.toml"), Secrets::Required, &no_env).expect_err("must fail");
    let got: Vec<(String, Option<usize>)> = err
        .problems()
        .iter()
        .map(|p| (p.path.clone(), p.line))
        .collect();
    let want = [
        ("source.url", Some(3)),
        ("crm.daily_budget_share", Some(7)),
        ("sync[0].object", Some(12)),
        ("sync[0].associate.customer_id", Some(13)),
        ("sync[0].fields.status.transform[0]", Some(15)),
        ("sync[0].fields.status.validate", Some(15)),
        ("sync[1].name", Some(18)),
        ("crm.token_env", Some(5)),
    ];
    for (path, line) in want {
        assert!(
            got.contains(&(path.to_string(), line)),
            "missing {path} at {line:?}; got {got:?}\n{err}"
        );
    }
    assert_eq!(got.len(), want.len(), "{err}");
    let msg = err.to_string();
    assert!(msg.starts_with("bad.toml has 8 problems:"), "{msg}");
    assert!(
        msg.contains("bad.toml:12: `sync[0].object`: unknown CRM object `tickets`"),
        "{msg}"
    );
}

#[test]
fn an_unreadable_file_names_the_path() {
    let err =
        load(Path::new("/nonexistent/crmsync.toml"), Secrets::NotNeeded).expect_err("must fail");
    assert!(
        err.to_string().contains("/nonexistent/crmsync.toml"),
        "{err}"
    );
}

#[test]
fn the_config_reference_parses_and_validates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/config-reference.toml");
    let text = std::fs::read_to_string(&path).expect("docs/config-reference.toml exists");
    load_str(&text, &path, Secrets::Required, &env_with_token)
        .unwrap_or_else(|e| panic!("the reference config must stay valid: {e}"));
}

#[test]
fn transform_and_rule_items_with_arguments_are_checked_with_dotted_paths() {
    let text = r#"
[source]
url = "sqlite://orders.db"
[crm]
environment = "sandbox"
kind = "hubspot"
token_env = "HUBSPOT_ACCESS_TOKEN"
[[sync]]
name = "contacts"
table = "customers"
object = "contacts"
[sync.fields]
phone = { crm = "phone", transform = ["trim", { e164 = "Germany" }, { truncate = 0 }], validate = ["phone", { max_length = "long" }] }
name = { crm = "firstname", concat = ["a", "b"], template = "{a}" }
note = { crm = "notes", separator = "-", template = "{oops" }
ok = { crm = "lastname", transform = [{ date = "%d.%m.%Y" }, { number = { decimal = "," } }], validate = { allowed = ["x"] } }
"#;
    let err = load_str(
        text,
        Path::new("c.toml"),
        Secrets::Required,
        &env_with_token,
    )
    .expect_err("must fail");
    let got: Vec<(String, Option<usize>)> = err
        .problems()
        .iter()
        .map(|p| (p.path.clone(), p.line))
        .collect();
    let want = [
        ("sync[0].fields.phone.transform[1]", Some(13)),
        ("sync[0].fields.phone.transform[2]", Some(13)),
        ("sync[0].fields.phone.validate[1]", Some(13)),
        ("sync[0].fields.name.template", Some(14)),
        ("sync[0].fields.note.separator", Some(15)),
        ("sync[0].fields.note.template", Some(15)),
    ];
    for (path, line) in want {
        assert!(
            got.contains(&(path.to_string(), line)),
            "missing {path}; got {got:?}\n{err}"
        );
    }
    assert_eq!(got.len(), want.len(), "{err}");
    assert!(err.to_string().contains("region code"), "{err}");
}

#[test]
fn an_unknown_key_in_a_field_is_still_a_parse_error() {
    let text = GOOD.replace(
        "company_name = { crm = \"name\" }",
        "company_name = { crm = \"name\", transfrom = [\"trim\"] }",
    );
    let err = load_str(
        &text,
        Path::new("c.toml"),
        Secrets::Required,
        &env_with_token,
    )
    .expect_err("must fail");
    assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
    assert!(err.to_string().contains("transfrom"), "{err}");
}

#[test]
fn a_pulled_many_to_one_status_map_needs_reverse() {
    let base = GOOD.replace(
        "company_name = { crm = \"name\" }",
        "company_name = { crm = \"name\" }\nstatus = { crm = \"dealstage\", direction = \"both\", map = { shipped = \"closedwon\", delivered = \"closedwon\" }REV }",
    );
    let err = load_str(
        &base.replace("REV", ""),
        Path::new("c.toml"),
        Secrets::Required,
        &env_with_token,
    )
    .expect_err("must fail");
    let p = err.problems();
    assert_eq!(p.len(), 1, "{err}");
    assert_eq!(p[0].path, "sync[0].fields.status.reverse");
    assert_eq!(p[0].line, Some(15));
    assert!(p[0].message.contains("reverse = { closedwon = "), "{err}");
    load_str(
        &base.replace("REV", ", reverse = { closedwon = \"shipped\" }"),
        Path::new("c.toml"),
        Secrets::Required,
        &env_with_token,
    )
    .expect("with a reverse choice the map is valid");
}

#[test]
fn webhooks_are_off_by_default_with_v3_signatures_a_one_mebibyte_limit_and_the_usual_variable() {
    let cfg = load_str(GOOD, Path::new("c.toml"), Secrets::NotNeeded, &no_env).expect("valid");
    let hooks = &cfg.raw.webhooks;
    assert_eq!(hooks.listen, None);
    assert_eq!(hooks.url, None);
    assert_eq!(hooks.signature, WebhookSignature::V3);
    assert_eq!(hooks.max_body_bytes, 1_048_576);
    assert_eq!(hooks.secret_env_or_default(), "HUBSPOT_CLIENT_SECRET");
}

#[test]
fn every_webhooks_problem_is_reported_with_its_dotted_key_and_line() {
    let text = format!(
        "{GOOD}\n[webhooks]\nlisten = \"localhost\"\nurl = \"hooks.example.com/hubspot\"\nsecret_env = \"HOOK_SECRET\"\nsecret_file = \"hook-secret\"\nmax_body_bytes = 10\n"
    );
    let err = load_str(
        &text,
        Path::new("c.toml"),
        Secrets::Required,
        &env_with_token,
    )
    .expect_err("must fail");
    let got: Vec<(String, Option<usize>)> = err
        .problems()
        .iter()
        .map(|p| (p.path.clone(), p.line))
        .collect();
    assert_eq!(
        got,
        [
            ("webhooks.listen".to_string(), Some(17)),
            ("webhooks.url".to_string(), Some(18)),
            ("webhooks.secret_file".to_string(), Some(20)),
            ("webhooks.max_body_bytes".to_string(), Some(21)),
        ],
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains("\"127.0.0.1:8080\""), "{msg}");
    assert!(msg.contains("not both"), "{msg}");
}

#[test]
fn an_unknown_signature_version_or_a_secret_in_the_file_is_a_parse_error() {
    for (line, named) in [
        ("signature = \"v2\"", "v2"),
        ("secret = \"s3cret\"", "secret"),
    ] {
        let text = format!("{GOOD}\n[webhooks]\n{line}\n");
        let err = load_str(&text, Path::new("c.toml"), Secrets::NotNeeded, &no_env)
            .expect_err("must fail");
        assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
        assert!(err.to_string().contains(named), "{err}");
        assert!(err.to_string().contains("line 17"), "{err}");
    }
}

#[test]
fn the_webhook_secret_is_read_only_when_asked_for_from_its_variable_or_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("crmsync.toml");
    let with = |hooks: &str| {
        let text = format!("{GOOD}\n[webhooks]\nlisten = \"127.0.0.1:8080\"\n{hooks}");
        std::fs::write(&path, &text).expect("config");
        // Loading, even with the CRM token required, does not need the webhook secret.
        load_str(&text, &path, Secrets::Required, &env_with_token).expect("valid config")
    };
    let hook_env = |name: &str| (name == "HOOK_SECRET").then(|| " s3cret\n".to_string());

    let cfg = with("");
    let err = cfg.webhook_secret(&no_env).expect_err("no secret");
    assert_eq!(err.problems()[0].path, "webhooks.secret_env");
    assert_eq!(err.problems()[0].line, Some(16), "{err}");
    assert!(err.to_string().contains("HUBSPOT_CLIENT_SECRET"), "{err}");
    let default_env = |name: &str| (name == "HUBSPOT_CLIENT_SECRET").then(|| "abc".to_string());
    let secret = cfg
        .webhook_secret(&default_env)
        .expect("from the default variable");
    assert_eq!(secret.expose_secret(), "abc");

    let cfg = with("secret_env = \"HOOK_SECRET\"\n");
    let secret = cfg
        .webhook_secret(&hook_env)
        .expect("from the named variable");
    assert_eq!(secret.expose_secret(), "s3cret");

    let cfg = with("secret_file = \"hook-secret\"\n");
    let err = cfg.webhook_secret(&hook_env).expect_err("no file yet");
    assert_eq!(err.problems()[0].path, "webhooks.secret_file");
    assert_eq!(err.problems()[0].line, Some(18), "{err}");
    assert!(err.to_string().contains("hook-secret"), "{err}");
    std::fs::write(dir.path().join("hook-secret"), "s3cret\n").expect("secret file");
    let secret = cfg
        .webhook_secret(&no_env)
        .expect("from the file next to the config");
    assert_eq!(secret.expose_secret(), "s3cret");
}

/// A database URL with a password is refused (secrets never go into the file), without the
/// password in the message; `url_env` takes the URL from the environment and its scheme is
/// checked there.
#[test]
fn database_passwords_stay_out_of_the_config() {
    let text = r#"
[source]
url = "postgres://shop:hunter2@db/shop"
[state]
url_env = "STATE_URL"
[crm]
environment = "sandbox"
kind = "hubspot"
token_env = "T"
[[sync]]
name = "c"
table = "customers"
object = "companies"
[sync.fields]
name = { crm = "name" }
"#;
    let env = |name: &str| match name {
        "T" => Some("token".to_string()),
        "STATE_URL" => Some("mysql://crm:s3cret@db/state".to_string()),
        _ => None,
    };
    let err = load_str(text, Path::new("c.toml"), Secrets::Required, &env).expect_err("refused");
    let message = err.to_string();
    assert!(message.contains("c.toml:3: `source.url`"), "{message}");
    assert!(message.contains("url_env"), "says the fix: {message}");
    assert!(message.contains("c.toml:5: `state.url_env`"), "{message}");
    assert!(
        !message.contains("hunter2") && !message.contains("s3cret"),
        "no password in the message: {message}"
    );

    let ok = text.replace("postgres://shop:hunter2@db/shop", "postgres://shop@db/shop");
    let env = |name: &str| match name {
        "T" => Some("token".to_string()),
        "STATE_URL" => Some("postgres://crm:s3cret@db/state".to_string()),
        _ => None,
    };
    let config = load_str(&ok, Path::new("c.toml"), Secrets::Required, &env).expect("valid");
    assert_eq!(config.source_url(), "postgres://shop@db/shop");
    assert_eq!(config.state_url(), "postgres://crm:s3cret@db/state");
    assert!(
        !format!("{config:?}").contains("s3cret"),
        "the resolved URL is kept out of Debug"
    );
}

/// Configs that parse but would do the wrong thing are refused with the key and the reason:
/// one CRM property written by two fields, the key used as write-back column, `create_only` on
/// a pulled field, a zero timeout, an interval longer than a day.
#[test]
fn wrong_but_valid_configs_are_refused() {
    let text = r#"
[source]
url = "sqlite://a.db"
[crm]
environment = "sandbox"
kind = "hubspot"
timeout_ms = 0
interval_ms = 99999999999
[[sync]]
name = "companies"
table = "accounts"
object = "companies"
write_back_column = "id"
direction = "both"
[sync.fields]
name = { crm = "name" }
title = { crm = "name", direction = "push" }
lead = { crm = "hs_analytics_source", write = "create_only" }
"#;
    let err =
        load_str(text, Path::new("w.toml"), Secrets::NotNeeded, &no_env).expect_err("refused");
    let got: Vec<&str> = err.problems().iter().map(|p| p.path.as_str()).collect();
    for want in [
        "crm.timeout_ms",
        "crm.interval_ms",
        "sync[0].write_back_column",
        "sync[0].fields.title.crm",
        "sync[0].fields.lead.write",
    ] {
        assert!(got.contains(&want), "missing {want}: {err}");
    }
}

#[test]
fn periodic_intervals_are_bounded_with_the_key_and_a_usual_value() {
    let text = GOOD.replace(
        "[crm]",
        "[run]\narchive_check_interval_ms = 9223372036854775807\nreconcile_interval_ms = 21600000\n\n[crm]",
    );
    let err = load_str(&text, Path::new("c.toml"), Secrets::NotNeeded, &no_env)
        .expect_err("a huge interval is refused");
    let p = err.problems();
    assert_eq!(p.len(), 1, "{err}");
    assert_eq!(p[0].path, "run.archive_check_interval_ms");
    assert!(p[0].message.contains("more than 30 days"), "{err}");
}

/// An order system's lines and products, as docs/mapping.md ("Order lines and products")
/// shows them.
const ORDER_LINES: &str = r#"
[source]
url = "sqlite://shop.db"

[crm]
kind = "hubspot"
environment = "sandbox"
[[sync]]
name = "orders"
table = "orders"
object = "deals"
[sync.fields]
title = { crm = "dealname" }

[[sync]]
name = "products"
table = "products"
object = "products"
[sync.fields]
name = { crm = "name" }

[[sync]]
name = "order_lines"
table = "order_lines"
object = "line_items"
associate = { order_id = "orders", product_id = "products" }
[sync.fields]
quantity = { crm = "quantity" }
"#;

#[test]
fn order_lines_with_their_deal_and_product_load() {
    let cfg = load_str(
        ORDER_LINES,
        Path::new("shop.toml"),
        Secrets::NotNeeded,
        &no_env,
    )
    .expect("line items to a deal and a product are fine");
    let lines = cfg.sync("order_lines").expect("order_lines");
    assert_eq!(lines.object, "line_items");
    assert_eq!(lines.associate.len(), 2);
}

#[test]
fn products_are_referenced_only_by_line_items_and_named_once() {
    // A deal cannot point at a product; a product associates to nothing; a line item has one
    // product, and `hs_product_id` is not also a mapped field.
    let text = ORDER_LINES
        .replace(
            "[sync.fields]\ntitle",
            "associate = { product_id = \"products\" }\n[sync.fields]\ntitle",
        )
        .replace(
            "object = \"products\"\n",
            "object = \"products\"\nassociate = { supplier_id = \"suppliers\" }\n",
        )
        .replace(
            "product_id = \"products\" }\n[sync.fields]\nquantity = { crm = \"quantity\" }",
            "product_id = \"products\", sku_id = \"products\" }\n[sync.fields]\nquantity = { crm = \"quantity\" }\nproduct = { crm = \"hs_product_id\" }",
        )
        + "\n[[sync]]\nname = \"suppliers\"\ntable = \"suppliers\"\nobject = \"companies\"\n[sync.fields]\nname = { crm = \"name\" }\n";
    let err =
        load_str(&text, Path::new("shop.toml"), Secrets::NotNeeded, &no_env).expect_err("refused");
    let got: Vec<(&str, Option<usize>)> = err
        .problems()
        .iter()
        .map(|p| (p.path.as_str(), p.line))
        .collect();
    assert!(
        got.contains(&("sync[0].associate.product_id", Some(12))),
        "{err}"
    );
    assert!(
        got.contains(&("sync[1].associate.supplier_id", Some(20))),
        "{err}"
    );
    assert!(
        got.contains(&("sync[2].associate.sku_id", Some(28))),
        "{err}"
    );
    assert!(
        got.contains(&("sync[2].fields.product.crm", Some(31))),
        "{err}"
    );
    assert_eq!(got.len(), 4, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("shop.toml:12: `sync[0].associate.product_id`")
            && msg.contains("only a line item refers to a product"),
        "{msg}"
    );
    assert!(
        msg.contains("products cannot be associated with anything"),
        "{msg}"
    );
    assert!(msg.contains("a line item has one product"), "{msg}");
}

#[test]
fn line_items_belong_to_deals() {
    let text = ORDER_LINES.replace(
        "[[sync]]\nname = \"orders\"",
        "[[sync]]\nname = \"customers\"\ntable = \"customers\"\nobject = \"companies\"\n[sync.fields]\nname = { crm = \"name\" }\n\n[[sync]]\nname = \"orders\"",
    )
    .replace(
        "associate = { order_id = \"orders\", product_id = \"products\" }",
        "associate = { order_id = \"orders\", product_id = \"products\", customer_id = \"customers\" }",
    );
    let err = load_str(&text, Path::new("shop.toml"), Secrets::NotNeeded, &no_env)
        .expect_err("a line item to a company is refused");
    let p = err.problems();
    assert_eq!(p.len(), 1, "{err}");
    assert_eq!(p[0].path, "sync[3].associate.customer_id");
    assert!(p[0].message.contains("associated with its deal"), "{err}");
}

#[test]
fn inserting_crm_records_needs_pulled_fields_a_write_back_column_and_free_insert_values() {
    // A push-only sync cannot make rows from CRM records, and insert_values may not fill the
    // key, the write-back column or a pulled field's column.
    let text = GOOD.replace(
        "object = \"companies\"",
        "object = \"companies\"\non_crm_create = \"insert\"\ninsert_values = { id = 1, created_at = \"now\" }",
    );
    let err = load_str(
        &text,
        Path::new("c.toml"),
        Secrets::Required,
        &env_with_token,
    )
    .expect_err("must fail");
    let got: Vec<(String, Option<usize>)> = err
        .problems()
        .iter()
        .map(|p| (p.path.clone(), p.line))
        .collect();
    assert_eq!(
        got,
        [
            ("sync[0].on_crm_create".to_string(), Some(13)),
            ("sync[0].on_crm_create".to_string(), Some(13)),
            ("sync[0].insert_values.id".to_string(), Some(14)),
        ],
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("c.toml:13") && msg.contains("pulls none"),
        "{msg}"
    );
    assert!(msg.contains("write_back_column"), "{msg}");

    let text = GOOD
        .replace(
            "object = \"companies\"",
            "object = \"companies\"\non_crm_create = \"insert\"\nwrite_back_column = \"hubspot_id\"\ninsert_values = { created_at = \"now\", active = true, company_name = \"x\" }",
        )
        .replace(
            "company_name = { crm = \"name\" }",
            "company_name = { crm = \"name\", direction = \"both\" }",
        );
    let err = load_str(
        &text,
        Path::new("c.toml"),
        Secrets::Required,
        &env_with_token,
    )
    .expect_err("must fail");
    let p = err.problems();
    assert_eq!(p.len(), 1, "{err}");
    assert_eq!(p[0].path, "sync[0].insert_values.company_name");
    assert!(p[0].message.contains("pulled field"), "{err}");

    // Fixed: it loads, `now` and constants read as such.
    let ok = text.replace(", company_name = \"x\"", "");
    let cfg =
        load_str(&ok, Path::new("c.toml"), Secrets::Required, &env_with_token).expect("valid");
    let s = &cfg.raw.syncs[0];
    assert_eq!(s.on_crm_create, crmsync_core::config::OnCrmCreate::Insert);
    assert_eq!(
        s.insert_values.get("created_at"),
        Some(&crmsync_core::config::InsertValue::Now)
    );
    assert_eq!(
        s.insert_values.get("active"),
        Some(&crmsync_core::config::InsertValue::Constant("1".into()))
    );

    // insert_values alone, without inserting, is a mistake too.
    let text = GOOD.replace(
        "object = \"companies\"",
        "object = \"companies\"\ninsert_values = { created_at = \"now\" }",
    );
    let err = load_str(
        &text,
        Path::new("c.toml"),
        Secrets::Required,
        &env_with_token,
    )
    .expect_err("must fail");
    assert_eq!(err.problems()[0].path, "sync[0].insert_values", "{err}");
}

/// A token pasted into a malformed config (the closing quote missing, or under a key crmsync
/// does not know) is never echoed: the error names the file and line, not the value.
#[test]
fn a_secret_in_a_malformed_config_is_not_echoed() {
    let token = "pat-na1-11111111-2222-3333-4444-555555555555";
    for text in [
        GOOD.replace(
            "token_env = \"HUBSPOT_ACCESS_TOKEN\"",
            &format!("token = \"{token}"),
        ),
        GOOD.replace(
            "token_env = \"HUBSPOT_ACCESS_TOKEN\"",
            &format!("token = \"{token}\""),
        ),
        GOOD.replace(
            "token_env = \"HUBSPOT_ACCESS_TOKEN\"",
            &format!("access = \"{token}\"\ntoken_env = \"HUBSPOT_ACCESS_TOKEN\""),
        ),
    ] {
        let err = load_str(&text, Path::new("c.toml"), Secrets::NotNeeded, &no_env)
            .expect_err("must fail");
        let msg = err.to_string();
        assert!(matches!(err, ConfigError::Parse { .. }), "{msg}");
        assert!(msg.contains("c.toml") && msg.contains("line 7"), "{msg}");
        assert!(!msg.contains("pat-na1") && !msg.contains("5555"), "{msg}");
    }
}

/// A file far larger than any config is refused before it is parsed, naming the path.
#[test]
fn a_config_larger_than_a_mebibyte_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("huge.toml");
    let mut text = GOOD.to_string();
    while text.len() <= 1024 * 1024 {
        text.push_str("# padding padding padding padding padding padding padding\n");
    }
    std::fs::write(&path, text).expect("write");
    let err = load(&path, Secrets::NotNeeded).expect_err("must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("huge.toml") && msg.contains("at most"),
        "{msg}"
    );
}

/// Every `[server]` and retention problem is named with its dotted key and line.
#[test]
fn server_and_retention_problems_name_their_keys() {
    let text = format!(
        "{GOOD}\n[server]\nlisten = \"localhost\"\ntoken_env = \"T\"\ntoken_file = \"t\"\nread_timeout_ms = 5\nmax_connections = 0\n"
    )
    .replace(
        "[crm]",
        "[state]\nwebhook_event_retention_days = 1\ncall_log_retention_days = 0\n\n[crm]",
    );
    let err =
        load_str(&text, Path::new("c.toml"), Secrets::NotNeeded, &no_env).expect_err("must fail");
    let keys: Vec<&str> = err.problems().iter().map(|p| p.path.as_str()).collect();
    for key in [
        "server.listen",
        "server.token_file",
        "server.read_timeout_ms",
        "server.max_connections",
        "state.webhook_event_retention_days",
        "state.call_log_retention_days",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    assert!(err.problems().iter().all(|p| p.line.is_some()), "{err}");
}

/// `[server] listen` takes a bare port for the loopback, or an address.
#[test]
fn a_bare_port_listens_on_the_loopback() {
    for (listen, want) in [("9187", "127.0.0.1:9187"), ("0.0.0.0:80", "0.0.0.0:80")] {
        let text = format!("{GOOD}\n[server]\nlisten = \"{listen}\"\n");
        let cfg = load_str(&text, Path::new("c.toml"), Secrets::NotNeeded, &no_env).expect("loads");
        assert_eq!(
            cfg.raw
                .server
                .listen_addr()
                .map(|a| a.to_string())
                .as_deref(),
            Some(want)
        );
    }
}

#[test]
fn a_config_without_an_environment_names_the_key_and_the_crm_line() {
    let text = GOOD.replace("environment = \"sandbox\"\n", "");
    let err = load_str(
        &text,
        Path::new("c.toml"),
        Secrets::Required,
        &env_with_token,
    )
    .expect_err("must fail");
    let crm_line = text.lines().position(|l| l == "[crm]").map(|i| i + 1);
    assert!(
        err.problems()
            .iter()
            .any(|p| p.path == "crm.environment" && p.line == crm_line),
        "{err}"
    );
    let staging = GOOD.replace("environment = \"sandbox\"", "environment = \"staging\"");
    assert!(
        load_str(
            &staging,
            Path::new("c.toml"),
            Secrets::Required,
            &env_with_token
        )
        .is_ok()
    );
}
