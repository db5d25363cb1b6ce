//! CRM configuration as code through the real binary, against two sandboxes over real sockets:
//! a test portal set up by hand (a property group, custom properties, a deal pipeline) and an
//! empty second portal. `schema export` from the first, `schema apply` to the second, then
//! `schema diff` between the two live portals prints no difference; a second apply makes no
//! write call; the same for a schema declared in the config (`[crm] schema`); removals only
//! with `--prune`; a bad schema file names its line.

use crmsync_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn crmsync() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin!("crmsync"));
    c.env("HUBSPOT_ACCESS_TOKEN", "test-token")
        .env_remove("RUST_LOG");
    c
}

fn schema(args: &[&str], config: &Path) -> Output {
    crmsync()
        .arg("schema")
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("crmsync schema")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Write calls (anything but GET) the sandbox answered on its schema endpoints.
async fn schema_writes(sandbox: &Sandbox) -> u64 {
    let stats: Value = reqwest::get(format!("{}/_sandbox/stats", sandbox.base_url()))
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    stats["calls"]
        .as_array()
        .map(|calls| {
            calls
                .iter()
                .filter(|c| {
                    c["method"] != "GET"
                        && c["endpoint"].as_str().is_some_and(|e| {
                            e.starts_with("/crm/v3/properties")
                                || e.starts_with("/crm/v3/pipelines")
                        })
                })
                .map(|c| c["count"].as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

async fn post(sandbox: &Sandbox, path: &str, body: Value) -> Value {
    let answer = reqwest::Client::new()
        .post(format!("{}{path}", sandbox.base_url()))
        .bearer_auth("test-token")
        .json(&body)
        .send()
        .await
        .expect("sandbox answers");
    let status = answer.status();
    let body: Value = answer.json().await.expect("json");
    assert!(status.is_success(), "POST {path}: {status} {body}");
    body
}

async fn get(sandbox: &Sandbox, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{}{path}", sandbox.base_url()))
        .bearer_auth("test-token")
        .send()
        .await
        .expect("sandbox answers")
        .json()
        .await
        .expect("json")
}

/// What a person set up by hand in the test portal.
async fn set_up_by_hand(portal: &Sandbox) {
    post(
        portal,
        "/crm/v3/properties/contacts/groups",
        json!({"name": "robots", "label": "Robots", "displayOrder": 5}),
    )
    .await;
    post(
        portal,
        "/crm/v3/properties/contacts",
        json!({
            "name": "robot_model", "label": "Robot model", "type": "enumeration",
            "fieldType": "select", "groupName": "robots", "description": "The model they run",
            "options": [
                {"label": "R2 unit", "value": "r2", "displayOrder": 0},
                {"label": "C3 unit", "value": "c3", "displayOrder": 1},
            ],
        }),
    )
    .await;
    post(
        portal,
        "/crm/v3/properties/companies",
        json!({
            "name": "fleet_size", "label": "Fleet size", "type": "number",
            "fieldType": "number", "groupName": "companyinformation",
        }),
    )
    .await;
    post(
        portal,
        "/crm/v3/pipelines/deals",
        json!({
            "label": "Robot rentals", "displayOrder": 1,
            "stages": [
                {"label": "Enquiry", "displayOrder": 0, "metadata": {"probability": "0.1"}},
                {"label": "Quoted", "displayOrder": 1, "metadata": {"probability": "0.5"}},
                {"label": "Rented", "displayOrder": 2, "metadata": {"probability": "1.0", "isClosed": "true"}},
            ],
        }),
    )
    .await;
}

/// A demo project whose config points at `portal`, with its own state file.
fn project(root: &Path, name: &str, portal: &Sandbox) -> PathBuf {
    let dir = root.join(name);
    let prepared = crmsync()
        .args([
            "demo",
            "--no-sync",
            "--customers",
            "3",
            "--orders",
            "3",
            "--dir",
        ])
        .arg(&dir)
        .args(["--crm-url", &portal.base_url()])
        .output()
        .expect("demo --no-sync");
    assert!(prepared.status.success(), "{}", text(&prepared));
    dir.join("crmsync.toml")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_apply_diff_between_two_portals_and_from_the_config() {
    let test_portal = Sandbox::start(
        "127.0.0.1:0",
        SandboxConfig {
            portal_id: 111,
            ..SandboxConfig::unlimited()
        },
    )
    .await
    .expect("test portal");
    let second = Sandbox::start(
        "127.0.0.1:0",
        SandboxConfig {
            portal_id: 222,
            ..SandboxConfig::unlimited()
        },
    )
    .await
    .expect("second portal");
    set_up_by_hand(&test_portal).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let test_config = project(dir.path(), "test", &test_portal);
    let second_config = project(dir.path(), "second", &second);

    // 1. Export: the hand-made configuration, as TOML a person can read.
    let exported = dir.path().join("test-schema.toml");
    let out = schema(
        &["export", "--out", exported.to_str().expect("utf-8")],
        &test_config,
    );
    assert!(out.status.success(), "{}", text(&out));
    let toml_text = std::fs::read_to_string(&exported).expect("exported file");
    for expected in [
        "hubspot:111",
        "[contacts.groups.robots]",
        "[contacts.properties.robot_model]",
        "value = \"r2\"",
        "[companies.properties.fleet_size]",
        "label = \"Robot rentals\"",
        "label = \"Rented\"",
    ] {
        assert!(toml_text.contains(expected), "{expected:?} in\n{toml_text}");
    }
    assert!(
        !toml_text.contains("[contacts.properties.email]"),
        "HubSpot's own properties are not configuration:\n{toml_text}"
    );

    // 2. Diff against the empty second portal: what apply would create, exit 1.
    let out = schema(
        &["diff", "--against", exported.to_str().expect("utf-8")],
        &second_config,
    );
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    for line in [
        "+ contacts group robots",
        "+ contacts property robot_model (enumeration/select, group robots, 2 options)",
        "+ companies property fleet_size",
        "+ deals pipeline \"Robot rentals\" (3 stages)",
        "Plan: 4 to create, 0 to change, 0 to remove",
    ] {
        assert!(shown.contains(line), "{line:?} in\n{shown}");
    }
    assert_eq!(schema_writes(&second).await, 0, "diff only reads");

    // 3. Apply, then the two live portals agree.
    let out = schema(
        &["apply", "--from", exported.to_str().expect("utf-8")],
        &second_config,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Applied 4 change(s)"), "{}", text(&out));
    let writes = schema_writes(&second).await;
    assert_eq!(writes, 4, "one call per change");
    let out = schema(
        &[
            "diff",
            "--against-config",
            test_config.to_str().expect("utf-8"),
        ],
        &second_config,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("No changes"), "{}", text(&out));
    let model = get(&second, "/crm/v3/properties/contacts/robot_model").await;
    assert_eq!(model["groupName"], "robots");
    assert_eq!(model["options"][1]["value"], "c3");

    // 4. A second apply makes no write call.
    let out = schema(
        &["apply", "--from", exported.to_str().expect("utf-8")],
        &second_config,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("No changes"), "{}", text(&out));
    assert_eq!(schema_writes(&second).await, writes, "nothing written");

    // 5. A schema declared in the config: a new property and a relabelled one.
    let declared = dir.path().join("second").join("crm-schema.toml");
    let changed = toml_text
        .replace("label = \"Robot model\"", "label = \"Robot model (fleet)\"")
        .replace(
            "[companies.properties.fleet_size]",
            "[deals.properties.robot_colour]\nlabel = \"Robot colour\"\ntype = \"string\"\nfield_type = \"text\"\n\n[companies.properties.fleet_size]",
        );
    std::fs::write(&declared, changed).expect("declared schema");
    let config_text = std::fs::read_to_string(&second_config).expect("config");
    std::fs::write(
        &second_config,
        config_text.replacen("[crm]\n", "[crm]\nschema = \"crm-schema.toml\"\n", 1),
    )
    .expect("config");
    let out = schema(&["diff"], &second_config);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("~ contacts property robot_model")
            && shown.contains("label: \"Robot model\" -> \"Robot model (fleet)\"")
            && shown.contains("+ deals property robot_colour (string/text)")
            && shown.contains("Plan: 1 to create, 1 to change, 0 to remove"),
        "{shown}"
    );
    let out = schema(&["diff", "--json"], &second_config);
    let plan: Value = serde_json::from_slice(&out.stdout).expect("diff --json");
    assert_eq!(plan["summary"]["create"], 1);
    assert_eq!(plan["changes"][0]["change"]["op"], "update_property");
    assert_eq!(plan["changes"][0]["fields"][0]["field"], "label");
    let out = schema(&["apply"], &second_config);
    assert!(out.status.success(), "{}", text(&out));
    let writes = schema_writes(&second).await;
    let out = schema(&["diff"], &second_config);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = schema(&["apply"], &second_config);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        schema_writes(&second).await,
        writes,
        "a second apply writes nothing"
    );

    // 6. The test portal lacks robot_colour: kept without --prune, a removal with it.
    let out = schema(
        &[
            "diff",
            "--against-config",
            second_config.to_str().expect("utf-8"),
        ],
        &test_config,
    );
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("+ deals property robot_colour"), "{shown}");
    let out = schema(
        &[
            "diff",
            "--prune",
            "--against",
            exported.to_str().expect("utf-8"),
        ],
        &second_config,
    );
    let shown = text(&out);
    assert!(
        shown.contains("- deals property robot_colour")
            && shown.contains("~ contacts property robot_model"),
        "{shown}"
    );
}

// Multi-threaded: the binary runs while this thread blocks on it, and the sandbox must answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_schema_file_names_its_line_and_the_problem() {
    let portal = Sandbox::start("127.0.0.1:0", SandboxConfig::unlimited())
        .await
        .expect("sandbox");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = project(dir.path(), "p", &portal);
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[contacts.properties.x]\nlabel = \"X\"\ntype = \"string\"\n\n[robots.properties.y]\nlabel = \"Y\"\ntype = \"string\"\n",
    )
    .expect("file");
    let out = schema(
        &["diff", "--against", file.to_str().expect("utf-8")],
        &config,
    );
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains("bad.toml:5: unknown object `robots`"),
        "{shown}"
    );
    std::fs::write(
        &file,
        "[contacts.properties.x]\nlabel = \"X\"\ntyp = \"string\"\n",
    )
    .expect("file");
    let out = schema(&["apply", "--from", file.to_str().expect("utf-8")], &config);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains("bad.toml") && shown.contains("typ"),
        "{shown}"
    );
    assert_eq!(schema_writes(&portal).await, 0);
    let out = schema(&["apply", "--prune"], &config);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--prune needs"), "{}", text(&out));

    // Without a schema file, diff checks what the mappings need: a mapped property neither
    // the CRM nor a document has is for a person (its type is unknown), exit 1.
    let out = schema(&["diff"], &config);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        !text(&out).contains("--prune"),
        "nothing to prune by: {}",
        text(&out)
    );
    let config_text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        config_text.replacen(
            "city = { crm = \"city\" }",
            "city = { crm = \"robot_city\" }",
            1,
        ),
    )
    .expect("config");
    let out = schema(&["diff"], &config);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("! companies property robot_city: sync `companies` maps to it, but neither the CRM nor the schema has it"),
        "{shown}"
    );
}
