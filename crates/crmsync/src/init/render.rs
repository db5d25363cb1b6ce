//! The config text of a [`Proposal`]: the sections the docs teach (`[source]`, `[state]`,
//! `[crm]`, one `[[sync]]` per proposed sync), every guess preceded by its `#` note. The
//! invariant: the text parses with crmsync's own loader as it is (a status map waiting to be
//! filled in is a list of empty targets, which `crmsync check` reports), text from the
//! database reaches it only quoted or inside a comment that cannot end early, and no secret
//! is written.

use super::names;
use super::propose::{
    Field, Proposal, SourceLine, SyncPlan, Value, in_comment, toml_key, toml_str,
};
use std::fmt::Write;

/// Comment lines are wrapped at this width.
const WIDTH: usize = 96;

/// `text` as `#` comment lines of at most [`WIDTH`] characters (a longer word stays whole).
fn comment(out: &mut String, text: &str) {
    let text = in_comment(text);
    let mut line = String::from("#");
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        if line.len() > 1 && line.len() + 1 + word.len() > WIDTH {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
}

fn value(v: &Value) -> String {
    match v {
        Value::Str(s) => toml_str(s),
        Value::Raw(r) => r.clone(),
    }
}

fn inline(f: &Field) -> String {
    let pairs: Vec<String> = f
        .pairs
        .iter()
        .map(|(k, v)| format!("{k} = {}", value(v)))
        .collect();
    format!("{} = {{ {} }}", toml_key(&f.key), pairs.join(", "))
}

fn sync_text(s: &SyncPlan) -> String {
    let mut out = String::new();
    for n in &s.notes {
        comment(&mut out, n);
    }
    out.push_str("[[sync]]\n");
    let _ = writeln!(out, "name = {}", toml_str(&s.name));
    let _ = writeln!(out, "table = {}", toml_str(&s.table));
    let _ = writeln!(out, "key = {}", toml_str(&s.key));
    let _ = writeln!(out, "object = {}", toml_str(s.kind.object()));
    if let Some((prop, why)) = &s.id_property {
        comment(&mut out, why);
        let _ = writeln!(out, "id_property = {}", toml_str(prop));
    }
    comment(&mut out, &s.capture_note);
    let _ = writeln!(out, "capture = {}", toml_str(s.capture));
    if let Some(u) = &s.updated_at_column {
        let _ = writeln!(out, "updated_at_column = {}", toml_str(u));
    }
    if let Some((w, why)) = &s.write_back {
        comment(&mut out, why);
        let _ = writeln!(out, "write_back_column = {}", toml_str(w));
    }
    if !s.associate.is_empty() {
        for a in &s.associate {
            comment(&mut out, &a.note);
        }
        let entries: Vec<String> = s
            .associate
            .iter()
            .map(|a| {
                if a.required {
                    format!("{} = {}", toml_key(&a.column), toml_str(&a.target))
                } else {
                    format!(
                        "{} = {{ sync = {}, required = false }}",
                        toml_key(&a.column),
                        toml_str(&a.target)
                    )
                }
            })
            .collect();
        let _ = writeln!(out, "associate = {{ {} }}", entries.join(", "));
    }
    out.push_str("[sync.fields]\n");
    for f in &s.fields {
        comment(&mut out, &f.note);
        if f.active {
            let _ = writeln!(out, "{}", inline(f));
        } else {
            let _ = writeln!(out, "# {}", inline(f));
        }
    }
    if let Some(m) = &s.stage {
        let key = toml_key(&m.column);
        let mut block = String::new();
        for n in &m.notes {
            comment(&mut block, n);
        }
        let _ = writeln!(block, "[sync.fields.{key}]");
        block.push_str("crm = \"dealstage\"\n");
        let _ = writeln!(block, "[sync.fields.{key}.map]");
        for v in &m.values {
            match names::stage_hint(v) {
                Some(hint) => {
                    let _ = writeln!(block, "{} = \"\"  # perhaps {hint}", toml_key(v));
                }
                None => {
                    let _ = writeln!(block, "{} = \"\"", toml_key(v));
                }
            }
        }
        if m.values.is_empty() {
            // An empty map does not load: the skeleton waits, commented out, for values.
            comment(
                &mut out,
                &format!(
                    "`{}` has no values yet, so there is no map to fill in: uncomment the lines below once you know its values, one `value = \"stage\"` line each.",
                    m.column
                ),
            );
            for line in block.lines() {
                let _ = writeln!(out, "# {line}");
            }
        } else {
            out.push_str(&block);
        }
    }
    for t in &s.trailer {
        comment(&mut out, t);
    }
    out
}

/// The config text of `p`.
pub fn render(p: &Proposal) -> String {
    let mut out = String::new();
    comment(
        &mut out,
        &format!(
            "crmsync config proposed by `crmsync init` from {} ({} table{} and views read).",
            p.shown_url,
            p.tables_read,
            if p.tables_read == 1 { "" } else { "s" }
        ),
    );
    comment(
        &mut out,
        "Every guess below carries a note saying why and what to check. Then, with this file as --config:",
    );
    let mut steps: Vec<&str> = Vec::new();
    if p.has_stage_maps() {
        steps.push(
            "fill in the empty (\"\") deal stages of each status map: `crmsync check` lists the stages your CRM has;",
        );
    }
    steps.extend([
        "`crmsync check`: the mapping against the CRM and every row against the rules, changing nothing;",
        "`crmsync install`: the triggers of the syncs with `capture = \"trigger\"`;",
        "`crmsync plan`: what a full sync sends, in API calls and time;",
        "`crmsync sync --once` (or `crmsync run` to keep syncing).",
    ]);
    for (i, step) in steps.iter().enumerate() {
        let _ = writeln!(out, "#   {}. {step}", i + 1);
    }
    comment(
        &mut out,
        "Every key is explained in docs/config-reference.toml and docs/mapping.md.",
    );
    out.push('\n');

    out.push_str("[source]\n");
    match &p.source {
        SourceLine::Url(u) => {
            comment(&mut out, "The app database the proposal was read from.");
            let _ = writeln!(out, "url = {}", toml_str(u));
        }
        SourceLine::Env(var) => {
            comment(
                &mut out,
                &format!(
                    "The URL given has a password, and secrets never go into this file: export it as {var}, e.g. `export {var}='{}'` with the real password (or use url_file, PGPASSWORD, ~/.pgpass or MYSQL_PWD).",
                    p.shown_url
                ),
            );
            let _ = writeln!(out, "url_env = {}", toml_str(var));
        }
    }
    out.push('\n');
    out.push_str("[state]\n");
    comment(
        &mut out,
        "crmsync's own state (links to CRM records, the queue, the call log), beside this file. SQLite serves one worker; PostgreSQL lets several `crmsync run` workers share the work (docs/workers.md).",
    );
    out.push_str("url = \"sqlite://crmsync-state.db\"\n\n");
    out.push_str("[crm]\nkind = \"hubspot\"\n");
    comment(
        &mut out,
        "A test account until the proposal has proven itself: `crmsync sandbox --port 4010` serves HubSpot's API at base_url. For your portal: environment = \"production\" and base_url = \"https://api.hubapi.com\".",
    );
    out.push_str("environment = \"sandbox\"\nbase_url = \"http://127.0.0.1:4010\"\n");
    comment(
        &mut out,
        "The access token is read from this environment variable, never from this file.",
    );
    out.push_str("token_env = \"HUBSPOT_ACCESS_TOKEN\"\n");

    for s in &p.syncs {
        out.push('\n');
        let text = sync_text(s);
        if s.enabled {
            out.push_str(&text);
        } else {
            if let Some(n) = &s.disabled_note {
                comment(&mut out, n);
            }
            for line in text.lines() {
                let _ = writeln!(out, "# {line}");
            }
        }
    }
    if !p.skipped.is_empty() {
        out.push('\n');
        comment(&mut out, "Tables without a sync:");
        for (t, why) in &p.skipped {
            comment(&mut out, &format!("  `{t}`: {why}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::render;
    use crate::init::propose::{NothingToPropose, Options, SourceLine, propose};
    use crate::init::schema::TableSnapshot;
    use crate::init::schema::fixtures::{col, fk, rails, table, values};
    use crmsync_core::config::{Config, ConfigError, Secrets, load_str};
    use crmsync_core::mapping::{MapOutcome, Row, map_row};
    use std::path::Path;

    fn options() -> Options {
        Options {
            source: SourceLine::Url("sqlite://shop.db".into()),
            shown_url: "sqlite://shop.db".into(),
            line_items: false,
        }
    }

    fn text_of(tables: &[TableSnapshot], options: &Options) -> String {
        render(&propose(tables, options).expect("a proposal"))
    }

    fn load(text: &str) -> Result<Config, ConfigError> {
        load_str(text, Path::new("crmsync.toml"), Secrets::NotNeeded, &|v| {
            (v == "APP_DATABASE_URL").then(|| "postgres://app:pw@db/shop".to_string())
        })
    }

    fn loads(text: &str) -> Config {
        load(text).unwrap_or_else(|e| panic!("the proposal does not load: {e}\n{text}"))
    }

    /// Replaces every empty target of the status maps with `stage`.
    fn fill(text: &str, stage: &str) -> String {
        text.lines()
            .map(|l| match l.split_once(" = \"\"") {
                Some((k, _)) if !l.starts_with('#') => format!("{k} = \"{stage}\""),
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_rails_schema_becomes_companies_contacts_and_deals_that_load() {
        let text = text_of(&rails(), &options());
        let config = loads(&text);
        let names: Vec<&str> = config.raw.syncs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["companies", "contacts", "deals", "products"],
            "parents first (line items are off in these options)"
        );

        let companies = config.sync("companies").expect("companies");
        assert_eq!(
            (companies.table.as_str(), companies.object.as_str()),
            ("accounts", "companies")
        );
        assert_eq!(companies.fields["name"].crm, "name");
        assert_eq!(companies.fields["domain"].crm, "domain");

        let contacts = config.sync("contacts").expect("contacts");
        assert_eq!(contacts.table, "users");
        let email = &contacts.fields["email"];
        assert_eq!(email.crm, "email");
        assert_eq!(email.confirmed_by.as_deref(), Some("email_verified_at"));
        assert_eq!(
            email
                .validate
                .items()
                .iter()
                .map(|i| i.name())
                .collect::<Vec<_>>(),
            ["required", "email"],
            "NOT NULL: required"
        );
        assert!(text.contains("phone = { crm = \"phone\", transform = [{ e164 = { region_column = \"country\" } }], on_invalid = \"skip_field\" }"), "{text}");
        assert_eq!(contacts.fields["first_name"].crm, "firstname");
        assert_eq!(contacts.fields["last_name"].crm, "lastname");
        assert_eq!(contacts.write_back_column.as_deref(), Some("hubspot_id"));
        assert_eq!(
            contacts.associate.iter().collect::<Vec<_>>(),
            [(&"account_id".to_string(), &"companies".to_string())]
        );
        assert!(!contacts.fields.contains_key("encrypted_password"));
        assert!(
            text.contains("# Not mapped: `encrypted_password`"),
            "{text}"
        );

        let deals = config.sync("deals").expect("deals");
        assert_eq!(deals.table, "orders");
        assert!(
            text.contains("total_cents = { crm = \"amount\", transform = [{ number = { divide_by = 100, decimals = 2 } }] }"),
            "{text}"
        );
        assert!(
            text.contains("Other amounts in cents, not mapped: `tax_cents`"),
            "{text}"
        );
        assert_eq!(
            deals.fields["dealname"].template.as_deref(),
            Some("Order {id}")
        );
        assert_eq!(
            deals.fields["pipeline"].constant.as_deref(),
            Some("default")
        );
        let state = &deals.fields["state"];
        assert_eq!(state.crm, "dealstage");
        let map = state.map.as_ref().expect("a map skeleton");
        assert_eq!(
            map.keys().map(String::as_str).collect::<Vec<_>>(),
            ["paid", "pending", "shipped"]
        );
        assert!(
            map.values().all(String::is_empty),
            "targets are left to fill in: {map:?}"
        );
        assert!(text.contains("paid = \"\"  # perhaps closedwon"), "{text}");
        assert!(deals.associate.is_required("account_id"));
        assert!(
            !deals.associate.is_required("user_id"),
            "contacts may be held for a confirmation: the deal does not wait"
        );
        assert!(
            text.contains("# created_at = { crm = \"closedate\""),
            "a suggestion: {text}"
        );
        assert!(text.contains("capture = \"trigger\""));
        assert!(
            text.contains("`capture = \"updated_at\"` with `updated_at_column = \"updated_at\"`"),
            "{text}"
        );

        // Line items switched off: proposed, commented out.
        assert!(text.contains("# name = \"line_items\""), "{text}");
        assert!(text.contains("# object = \"line_items\""), "{text}");
        assert!(text.contains("object = \"products\""), "{text}");
        assert!(
            text.contains("# `schema_migrations`: Rails bookkeeping"),
            "{text}"
        );
        assert!(text.contains("token_env = \"HUBSPOT_ACCESS_TOKEN\""));
        assert!(text.contains("url = \"sqlite://shop.db\""));
    }

    #[test]
    fn filled_in_the_proposal_maps_a_row() {
        let text = fill(&text_of(&rails(), &options()), "closedwon");
        let config = loads(&text);
        let deals = config.sync("deals").expect("deals");
        let row: Row = [
            ("id", "7"),
            ("total_cents", "129900"),
            ("state", "paid"),
            ("user_id", "1"),
            ("account_id", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Some(v.to_string())))
        .collect();
        let MapOutcome::Ready(m) = map_row(deals, &row) else {
            panic!("the order maps");
        };
        assert_eq!(m.properties["amount"], "1299.00");
        assert_eq!(m.properties["dealstage"], "closedwon");
        assert_eq!(m.properties["dealname"], "Order 7");
        assert_eq!(m.properties["pipeline"], "default");
    }

    #[test]
    fn the_same_schema_gives_the_same_text() {
        let mut reversed = rails();
        reversed.reverse();
        assert_eq!(
            text_of(&rails(), &options()),
            text_of(&reversed, &options())
        );
    }

    #[test]
    fn line_items_switched_on_are_a_sync_of_their_own() {
        let mut o = options();
        o.line_items = true;
        let text = text_of(&rails(), &o);
        let raw: toml::Value = toml::from_str(&text).expect("valid TOML");
        let syncs = raw["sync"].as_array().expect("syncs");
        let lines = syncs
            .iter()
            .find(|s| s["object"].as_str() == Some("line_items"))
            .expect("a line_items sync");
        assert_eq!(lines["name"].as_str(), Some("line_items"));
        assert_eq!(lines["associate"]["order_id"].as_str(), Some("deals"));
        assert_eq!(
            lines["fields"]["quantity"]["crm"].as_str(),
            Some("quantity")
        );
        assert_eq!(
            lines["fields"]["unit_price_cents"]["crm"].as_str(),
            Some("price")
        );
        assert_eq!(
            lines["fields"]["unit_price_cents"]["transform"][0]["number"]["divide_by"].as_integer(),
            Some(100)
        );
        assert_eq!(
            lines["fields"]["name"]["template"].as_str(),
            Some("Item {product_id}")
        );
        // The product column goes to the products sync (sent as `hs_product_id`).
        assert_eq!(lines["associate"]["product_id"].as_str(), Some("products"));
        let problems: Vec<String> = match load(&text) {
            Err(e) => e
                .problems()
                .iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect(),
            Ok(_) => vec![],
        };
        assert!(problems.is_empty(), "the loader takes it: {problems:?}");
    }

    #[test]
    fn a_password_never_reaches_the_text() {
        let o = Options {
            source: SourceLine::Env("APP_DATABASE_URL"),
            shown_url: "postgres://app:***@db/shop".into(),
            line_items: false,
        };
        let text = text_of(&rails(), &o);
        assert!(text.contains("url_env = \"APP_DATABASE_URL\""), "{text}");
        assert!(!text.contains("pw@"));
        loads(&text);
    }

    #[test]
    fn nothing_to_propose_is_said() {
        assert!(matches!(
            propose(&[], &options()),
            Err(NothingToPropose::Empty(_))
        ));
        let e =
            propose(&[table("widgets", &["id integer pk"])], &options()).expect_err("no object");
        assert!(e.to_string().contains("widgets"), "{e}");
        assert!(matches!(e, NothingToPropose::NoneRecognised { .. }));
    }

    #[test]
    fn hostile_names_and_values_stay_quoted_or_in_comments() {
        let mut orders = table(
            "orders",
            &["id integer pk", "status text", "total_cents integer"],
        );
        orders.info.columns.push(col("x"));
        orders.info.columns[3].name = "we\"ird\nname = 1".into();
        orders.values.insert(
            "status".into(),
            values(&["a\"b", "line\nbreak = \"x\"", "ok", "3"], true),
        );
        let text = text_of(&[orders], &options());
        let config = loads(&text);
        let map = config
            .sync("deals")
            .and_then(|s| s.fields["status"].map.clone())
            .expect("map");
        assert_eq!(
            map.keys().map(String::as_str).collect::<Vec<_>>(),
            ["3", "a\"b", "line\nbreak = \"x\"", "ok"]
        );
        assert!(text.contains("only those are listed"), "more exist: {text}");
        assert!(text.contains("`we\"ird?name = 1`"), "{text}");
    }

    #[test]
    fn associations_never_point_from_a_parent_to_a_child() {
        let mut accounts = table(
            "accounts",
            &["id integer pk", "name text", "owner_id integer"],
        );
        accounts.foreign_keys = vec![fk("owner_id", "users")];
        let users = table(
            "users",
            &["id integer pk", "email text", "account_id integer"],
        );
        let text = text_of(&[accounts, users], &options());
        let config = loads(&text);
        assert!(
            config
                .sync("companies")
                .expect("companies")
                .associate
                .is_empty()
        );
        assert!(
            text.contains("`owner_id` references `users` (contacts)"),
            "{text}"
        );
        let contacts = config.sync("contacts").expect("contacts");
        assert_eq!(
            contacts.associate.iter().collect::<Vec<_>>(),
            [(&"account_id".to_string(), &"companies".to_string())],
            "inferred from the name"
        );
        assert!(
            text.contains("by its name (no foreign key is declared)"),
            "{text}"
        );
        assert!(
            contacts.associate.is_required("account_id"),
            "an optional e-mail holds nothing"
        );
    }

    #[test]
    fn two_tables_of_one_object_get_their_own_names_and_id_properties() {
        let users = table("users", &["id integer pk", "email text"]);
        let members = table("members", &["id integer pk", "email text"]);
        let config = loads(&text_of(&[users, members], &options()));
        let ids: Vec<(&str, &str)> = config
            .raw
            .syncs
            .iter()
            .map(|s| (s.name.as_str(), s.id_property.as_str()))
            .collect();
        assert_eq!(
            ids,
            [("members", "crmsync_id"), ("users", "crmsync_users_id")]
        );
    }

    #[test]
    fn a_zoned_close_date_is_read_with_its_zone() {
        let orders = table(
            "orders",
            &["id integer pk", "placed_at timestamptz", "amount numeric"],
        );
        let text = text_of(&[orders], &options());
        let config = loads(&text);
        let deals = config.sync("deals").expect("deals");
        assert!(text.contains("Check its unit"), "{text}");
        let row: Row = [
            ("id", "1"),
            ("placed_at", "2024-03-01 10:15:00.5+00"),
            ("amount", "12.50"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Some(v.to_string())))
        .collect();
        let MapOutcome::Ready(m) = map_row(deals, &row) else {
            panic!("maps: {text}");
        };
        assert_eq!(m.properties["closedate"], "2024-03-01T10:15:00.500Z");
        assert_eq!(m.properties["amount"], "12.50");
    }

    #[test]
    fn a_status_column_without_rows_waits_commented_out() {
        let orders = table("orders", &["id integer pk", "status text"]);
        let text = text_of(&[orders], &options());
        let config = loads(&text);
        let deals = config.sync("deals").expect("deals");
        assert!(!deals.fields.contains_key("status"));
        assert!(text.contains("# [sync.fields.status.map]"), "{text}");
    }
}
