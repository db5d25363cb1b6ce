//! `[crm] auth` for HubSpot: a private app's token (the default) or a public app's OAuth
//! credentials. Each flow takes only its own keys, the other flow's (and the other kind's)
//! are refused naming the key, every missing piece is reported at once, and the secrets come
//! only from the environment or a file.

use crmsync_core::config::{ConfigError, HubspotAuth, Secrets, load_str};
use secrecy::ExposeSecret;
use std::path::Path;

const OAUTH: &str = r#"
[source]
url = "sqlite://orders.db"

[crm]
kind = "hubspot"
auth = "oauth"
client_id = "5f3c1a2b-app"
client_secret_env = "HUBSPOT_CLIENT_SECRET"
refresh_token_env = "HUBSPOT_REFRESH_TOKEN"
environment = "sandbox"
[[sync]]
name = "companies"
table = "customers"
object = "companies"
[sync.fields]
company_name = { crm = "name" }
"#;

fn env(name: &str) -> Option<String> {
    match name {
        "HUBSPOT_CLIENT_SECRET" => Some("client-secret-value".into()),
        "HUBSPOT_REFRESH_TOKEN" => Some("na1-refresh-token-value".into()),
        _ => None,
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn problems(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    match load_str(text, Path::new("c.toml"), Secrets::Required, env) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .problems()
            .iter()
            .map(|p| (p.path.clone(), p.message.clone()))
            .collect(),
    }
}

#[test]
fn a_public_app_loads_its_secrets_from_the_environment() {
    let cfg = load_str(OAUTH, Path::new("c.toml"), Secrets::Required, &env).expect("valid");
    assert_eq!(cfg.raw.crm.hubspot_auth(), HubspotAuth::Oauth);
    assert_eq!(cfg.raw.crm.token_path(), "/oauth/v1/token");
    assert!(cfg.token.is_none(), "no private-app token");
    let oauth = cfg.oauth.expect("oauth secrets");
    assert_eq!(oauth.client_secret.expose_secret(), "client-secret-value");
    assert_eq!(
        oauth.refresh_token.expose_secret(),
        "na1-refresh-token-value"
    );
    let shown = format!("{:?}", cfg.raw.crm);
    assert!(!shown.contains("client-secret-value"), "{shown}");

    let moved = OAUTH.replace(
        "auth = \"oauth\"",
        "auth = \"oauth\"\ntoken_path = \"/oauth/2026-03/token\"",
    );
    let cfg = load_str(&moved, Path::new("c.toml"), Secrets::Required, &env).expect("valid");
    assert_eq!(cfg.raw.crm.token_path(), "/oauth/2026-03/token");

    // Commands that never call the CRM need none of it.
    let cfg = load_str(OAUTH, Path::new("c.toml"), Secrets::NotNeeded, &no_env).expect("valid");
    assert!(cfg.oauth.is_none());
}

#[test]
fn a_private_app_is_the_default_and_refuses_the_public_apps_keys() {
    let text = OAUTH.replace("auth = \"oauth\"", "token_env = \"HUBSPOT_ACCESS_TOKEN\"");
    let token = |n: &str| (n == "HUBSPOT_ACCESS_TOKEN").then(|| "pat-na1-x".to_string());
    let got = problems(&text, &token);
    let paths: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "crm.client_id",
            "crm.client_secret_env",
            "crm.refresh_token_env"
        ],
        "{got:?}"
    );
    assert!(got[0].1.contains("auth = \"oauth\""), "{got:?}");
    let explicit = text.replace(
        "[crm]\nenvironment = \"sandbox\"\n",
        "[crm]\nenvironment = \"sandbox\"\nauth = \"private_app\"\n",
    );
    assert_eq!(problems(&explicit, &token).len(), 3);
}

#[test]
fn a_public_app_refuses_a_private_apps_token_and_reports_every_missing_piece() {
    let text = r#"
[source]
url = "sqlite://orders.db"
[crm]
environment = "sandbox"
kind = "hubspot"
auth = "oauth"
token_env = "HUBSPOT_ACCESS_TOKEN"
token_path = "oauth/v1/token"
[[sync]]
name = "companies"
table = "customers"
object = "companies"
[sync.fields]
company_name = { crm = "name" }
"#;
    let err = load_str(text, Path::new("c.toml"), Secrets::Required, &env).expect_err("invalid");
    let got: Vec<(String, Option<usize>)> = err
        .problems()
        .iter()
        .map(|p| (p.path.clone(), p.line))
        .collect();
    for want in [
        ("crm.token_env", Some(8)),
        ("crm.token_path", Some(9)),
        ("crm.client_id", None),
        ("crm.client_secret_env", None),
        ("crm.refresh_token_env", None),
    ] {
        assert!(
            got.iter().any(|(p, _)| p == want.0),
            "missing {}: {got:?}\n{err}",
            want.0
        );
        if want.1.is_some() {
            assert!(got.contains(&(want.0.to_string(), want.1)), "{got:?}");
        }
    }
    let msg = err.to_string();
    assert!(msg.contains("private app's token"), "{msg}");
    assert!(msg.contains("/oauth/2026-03/token"), "{msg}");
}

#[test]
fn flows_of_the_other_kind_are_refused_naming_the_key() {
    let wrong = OAUTH.replace("auth = \"oauth\"", "auth = \"jwt_bearer\"");
    let got = problems(&wrong, &env);
    let auth = got
        .iter()
        .find(|(p, _)| p == "crm.auth")
        .unwrap_or_else(|| panic!("{got:?}"));
    assert!(
        auth.1.contains("salesforce") && auth.1.contains("\"oauth\""),
        "{auth:?}"
    );

    let salesforce = r#"
[source]
url = "sqlite://orders.db"
[crm]
environment = "sandbox"
kind = "salesforce"
auth = "oauth"
token_path = "/oauth/v1/token"
client_id = "3MVG9"
client_secret_env = "SF_SECRET"
refresh_token_env = "SF_REFRESH"
[[sync]]
name = "companies"
table = "customers"
object = "companies"
[sync.fields]
company_name = { crm = "Name" }
"#;
    let got = problems(salesforce, &|_| Some("x".into()));
    let paths: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
    assert!(paths.contains(&"crm.auth"), "{got:?}");
    assert!(paths.contains(&"crm.token_path"), "{got:?}");
    assert!(
        got.iter()
            .any(|(p, m)| p == "crm.auth" && m.contains("\"refresh_token\"")),
        "{got:?}"
    );
}

#[test]
fn the_secrets_never_go_into_the_file_and_are_never_echoed() {
    let inline = OAUTH.replace(
        "client_secret_env = \"HUBSPOT_CLIENT_SECRET\"",
        "client_secret = \"cs-1234567890abcdef\"",
    );
    let err = load_str(&inline, Path::new("c.toml"), Secrets::Required, &env).expect_err("parse");
    assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
    assert!(!err.to_string().contains("cs-1234567890abcdef"), "{err}");

    // An unset variable is named, and nothing read from elsewhere is shown.
    let got = problems(OAUTH, &|n: &str| {
        (n == "HUBSPOT_CLIENT_SECRET").then(|| "client-secret-value".to_string())
    });
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "crm.refresh_token_env");
    assert!(got[0].1.contains("HUBSPOT_REFRESH_TOKEN"), "{got:?}");
    assert!(!got[0].1.contains("client-secret-value"), "{got:?}");
}
