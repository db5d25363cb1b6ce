//! The semantic pass over a parsed config: everything serde cannot see (references between
//! syncs, known transform and rule names, duplicate names, association cycles). It returns
//! *every* problem with its dotted path, so the user fixes the file in one go.

use super::load::Problem;
use super::raw::{Capture, CrmConfig, CrmKind, HubspotAuth, OneOrMany, RawConfig, SalesforceAuth};
use crate::mapping::Rule;
use crate::transform::Transform;
use std::collections::{BTreeMap, BTreeSet};

/// CRM object names a sync may target.
pub const OBJECTS: [&str; 5] = ["contacts", "companies", "deals", "line_items", "products"];

/// The property a line item names its product in: an `associate` entry of a `line_items` sync
/// that targets a `products` sync sets it (the product's CRM id) instead of an association.
pub const PRODUCT_REFERENCE: &str = "hs_product_id";

/// The smallest `[webhooks] max_body_bytes`: below it even a delivery of one event may not fit.
pub const MIN_WEBHOOK_BODY_BYTES: usize = 1024;

/// All problems of `raw`; empty when the config is usable.
pub fn validate(raw: &RawConfig) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut push = |path: String, message: String| {
        out.push(Problem {
            path,
            line: None,
            message,
        })
    };

    if raw.crm.environment.is_none() {
        push(
            "crm.environment".into(),
            "is required: say where this config runs, `environment = \"sandbox\"`, `\"staging\"` or `\"production\"` (a non-production config is refused when the CRM account is a production one)".into(),
        );
    }

    for (section, url, env, file, schemes) in [
        (
            "source",
            &raw.source.url,
            &raw.source.url_env,
            &raw.source.url_file,
            SOURCE_SCHEMES,
        ),
        (
            "state",
            &raw.state.url,
            &raw.state.url_env,
            &raw.state.url_file,
            STATE_SCHEMES,
        ),
    ] {
        let set = [url.is_some(), env.is_some(), file.is_some()]
            .iter()
            .filter(|s| **s)
            .count();
        if set > 1 {
            push(
                format!("{section}.url"),
                "set one of `url`, `url_env` and `url_file`, not several".into(),
            );
        }
        if section == "source" && set == 0 {
            push(
                "source.url".into(),
                "no app database configured; set `url = \"sqlite://app.db\"` (or `url_env` naming an environment variable that holds a URL with a password)".into(),
            );
        }
        if let Some(u) = url {
            if let Err(message) = check_db_url(u, schemes) {
                push(format!("{section}.url"), message);
            } else if has_password(u) {
                push(
                    format!("{section}.url"),
                    format!(
                        "`{}` holds a password, and secrets never go into this file: put the URL into an environment variable and set `url_env = \"{}\"` (or `url_file`), or keep the password in PGPASSWORD / ~/.pgpass (PostgreSQL) or MYSQL_PWD",
                        redact(u),
                        if section == "source" {
                            "APP_DATABASE_URL"
                        } else {
                            "CRMSYNC_STATE_URL"
                        }
                    ),
                );
            }
        }
    }
    let crm = &raw.crm;
    validate_crm_keys(crm, &mut push);
    if let Some(url) = &crm.base_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        push(
            "crm.base_url".into(),
            format!("`{url}` is not an http(s) URL; e.g. `https://api.hubapi.com`"),
        );
    }
    if let Some(url) = &crm.login_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        push(
            "crm.login_url".into(),
            format!("`{url}` is not an http(s) URL; e.g. `https://login.salesforce.com`"),
        );
    }
    match crm.kind {
        CrmKind::Salesforce => validate_salesforce(crm, &mut push),
        CrmKind::Hubspot => validate_hubspot(crm, &mut push),
    }
    if !(crm.daily_budget_share > 0.0 && crm.daily_budget_share <= 1.0) {
        push(
            "crm.daily_budget_share".into(),
            format!(
                "must be in (0, 1], got {}; e.g. 0.8 leaves 20% to other apps",
                crm.daily_budget_share
            ),
        );
    }
    if crm.daily_limit == Some(0) {
        push("crm.daily_limit".into(), "must be at least 1".into());
    }
    if crm.requests_per_interval == Some(0) {
        push(
            "crm.requests_per_interval".into(),
            "must be at least 1; HubSpot Free allows 100".into(),
        );
    }
    if let Some(headroom) = crm.headroom_percent.filter(|h| *h >= 100) {
        push(
            "crm.headroom_percent".into(),
            format!("must be below 100, got {headroom}; 2 keeps 2% of the interval limit unused"),
        );
    }
    if crm.max_in_flight == 0 || crm.max_in_flight > 64 {
        push(
            "crm.max_in_flight".into(),
            format!("must be 1 to 64, got {}", crm.max_in_flight),
        );
    }
    if crm.max_attempts == 0 {
        push("crm.max_attempts".into(), "must be at least 1".into());
    }
    if parse_utc_offset(crm.daily_reset_utc_offset()).is_none() {
        push(
            "crm.daily_reset_utc_offset".into(),
            format!(
                "`{}` is not a UTC offset; write it like \"+01:00\" or \"-05:00\"",
                crm.daily_reset_utc_offset()
            ),
        );
    }
    if let Some(ms) = crm.interval_ms.filter(|ms| *ms == 0 || *ms > 86_400_000) {
        push(
            "crm.interval_ms".into(),
            format!("must be 1 to 86400000 (a day), got {ms}; HubSpot's interval is 10000"),
        );
    }
    if crm.retry_base_ms == 0 || crm.retry_base_ms > crm.retry_cap_ms {
        push(
            "crm.retry_base_ms".into(),
            format!(
                "must be at least 1 and at most retry_cap_ms ({}), got {}; 200 is usual",
                crm.retry_cap_ms, crm.retry_base_ms
            ),
        );
    }
    if crm.retry_cap_ms > 600_000 {
        push(
            "crm.retry_cap_ms".into(),
            format!(
                "must be at most 600000 (10 minutes), got {}",
                crm.retry_cap_ms
            ),
        );
    }
    if crm.timeout_ms == 0 || crm.timeout_ms > 3_600_000 {
        push(
            "crm.timeout_ms".into(),
            format!(
                "must be 1 to 3600000 (an hour), got {}; 30000 waits 30 s for an answer",
                crm.timeout_ms
            ),
        );
    }
    if crm.max_retries > 100 {
        push(
            "crm.max_retries".into(),
            format!("must be at most 100, got {}; 5 is usual", crm.max_retries),
        );
    }

    if raw.syncs.is_empty() {
        push(
            "sync".into(),
            "no `[[sync]]` section: add one mapping a table to a CRM object".into(),
        );
    }
    let mut names = BTreeMap::new();
    let mut id_props: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for (i, s) in raw.syncs.iter().enumerate() {
        let at = |key: &str| format!("sync[{i}].{key}");
        if s.crm_deleted_column.is_some()
            && s.on_crm_delete != crate::config::raw::OnCrmDelete::Flag
        {
            push(
                at("crm_deleted_column"),
                "only `on_crm_delete = \"flag\"` writes a deletion time; remove it or use \"flag\""
                    .into(),
            );
        }
        if s.crm_deleted_column
            .as_ref()
            .is_some_and(|c| c.trim().is_empty())
        {
            push(
                at("crm_deleted_column"),
                "must name a column of the table".into(),
            );
        }
        if s.name.trim().is_empty() {
            push(at("name"), "must not be empty".into());
        } else if let Some(first) = names.insert(s.name.as_str(), i) {
            push(
                at("name"),
                format!(
                    "`{}` is already the name of sync[{first}]; names must be unique",
                    s.name
                ),
            );
        }
        if !OBJECTS.contains(&s.object.as_str()) {
            push(
                at("object"),
                format!(
                    "unknown CRM object `{}`; expected one of {}",
                    s.object,
                    OBJECTS.join(", ")
                ),
            );
        }
        if s.table.trim().is_empty() {
            push(
                at("table"),
                "must name a table of the source database".into(),
            );
        }
        if s.fields.is_empty() {
            push(
                at("fields"),
                "no mapped fields; add e.g. `[sync.fields] name = { crm = \"name\" }`".into(),
            );
        }
        if s.write_back_column.as_deref() == Some(s.key.as_str()) {
            push(
                at("write_back_column"),
                format!(
                    "`{}` is the sync's key; the CRM id needs a column of its own (e.g. `hubspot_id`)",
                    s.key
                ),
            );
        }
        if let Some(wb) = &s.write_back_column
            && s.fields
                .iter()
                .any(|(k, f)| f.column.as_deref().unwrap_or(k) == wb && pulls_field(s, f))
        {
            push(
                at("write_back_column"),
                format!("`{wb}` is also written by a pulled field; give the CRM id its own column"),
            );
        }
        // One CRM property written by two fields: which value wins would depend on map order.
        let mut writers: BTreeMap<&str, &str> = BTreeMap::new();
        for (k, f) in &s.fields {
            if pulls_field(s, f) && !pushes_field(s, f) {
                continue;
            }
            if let Some(first) = writers.insert(f.crm.as_str(), k.as_str()) {
                push(
                    at(&format!("fields.{k}.crm")),
                    format!(
                        "`{}` is written by field `{first}` already; one CRM property takes one field (combine them with `concat` or `template`)",
                        f.crm
                    ),
                );
            }
        }
        let any_pull = s.fields.values().any(|f| pulls_field(s, f));
        for (key, message) in super::crm_create::problems(s, any_pull) {
            push(at(&key), message);
        }
        if s.capture == Capture::UpdatedAt && s.updated_at_column.is_none() {
            push(at("updated_at_column"), "required when `capture = \"updated_at\"`, e.g. `updated_at_column = \"updated_at\"`".into());
        }
        if let Some(other) =
            id_props.insert((s.object.as_str(), s.id_property.as_str()), s.name.as_str())
        {
            push(
                at("id_property"),
                format!(
                    "sync `{other}` already keys {} by `{}`; two syncs into one object need different `id_property` names",
                    s.object, s.id_property
                ),
            );
        }
        for (col, target) in &s.associate {
            if !raw.syncs.iter().any(|t| &t.name == target) {
                push(
                    at(&format!("associate.{col}")),
                    format!("no sync named `{target}`"),
                );
            } else if target == &s.name {
                push(
                    at(&format!("associate.{col}")),
                    "a sync cannot associate to itself".into(),
                );
            }
        }
        for (key, message) in order_line_problems(raw, s) {
            push(at(&key), message);
        }
        for (col, f) in &s.fields {
            let fat = |key: &str| at(&format!("fields.{col}.{key}"));
            if f.crm.trim().is_empty() {
                push(fat("crm"), "must name a CRM property".into());
            }
            if f.crm == s.id_property {
                push(
                    fat("crm"),
                    format!(
                        "`{}` is the sync's id property; crmsync fills it with the key",
                        f.crm
                    ),
                );
            }
            for (j, t) in f.transform.iter().enumerate() {
                if let Err(e) = Transform::from_item(t) {
                    push(format!("{}[{j}]", fat("transform")), e);
                }
            }
            let rules = f.validate.items();
            let many = matches!(f.validate, OneOrMany::Many(_));
            for (j, r) in rules.iter().enumerate() {
                if let Err(e) = Rule::from_item(r) {
                    let path = if many {
                        format!("{}[{j}]", fat("validate"))
                    } else {
                        fat("validate")
                    };
                    push(path, e);
                }
            }
            let sources: Vec<&str> = [
                ("column", f.column.is_some()),
                ("concat", f.concat.is_some()),
                ("template", f.template.is_some()),
                ("constant", f.constant.is_some()),
            ]
            .into_iter()
            .filter(|(_, set)| *set)
            .map(|(k, _)| k)
            .collect();
            if sources.len() > 1 {
                push(
                    fat(sources[1]),
                    format!(
                        "a field reads from one source; remove all but one of {}",
                        sources
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
            if f.write == crate::config::raw::WriteMode::CreateOnly && pulls_field(s, f) {
                push(
                    fat("write"),
                    "`create_only` is for fields that only push; a pulled field follows the CRM"
                        .into(),
                );
            }
            if f.separator.is_some() && f.concat.is_none() {
                push(
                    fat("separator"),
                    "`separator` only applies to `concat`".into(),
                );
            }
            if f.concat
                .as_ref()
                .is_some_and(|c| c.is_empty() || c.iter().any(|c| c.trim().is_empty()))
            {
                push(
                    fat("concat"),
                    "list the columns to join, e.g. `concat = [\"first_name\", \"last_name\"]`"
                        .into(),
                );
            }
            if let Some(t) = &f.template
                && let Err(e) = crate::compose::template(t)
            {
                push(fat("template"), e);
            }
            if f.column.as_ref().is_some_and(|c| c.trim().is_empty()) {
                push(fat("column"), "must name a column of the table".into());
            }
            let pulls = f.direction.unwrap_or(s.direction) != crate::config::Direction::Push;
            if pulls && (f.concat.is_some() || f.template.is_some() || f.constant.is_some()) {
                push(
                    fat("direction"),
                    "a `concat`, `template` or `constant` field has no single column to pull into; make it `direction = \"push\"`".into(),
                );
            }
            if !pulls && f.conflict.is_some() {
                push(
                    fat("conflict"),
                    "`conflict` applies to fields pulled from the CRM; set `direction = \"both\"` or remove it".into(),
                );
            }
            for (key, message) in crate::status_map::problems(f, pulls) {
                push(fat(key), message);
            }
        }
    }
    if raw.run.poll_interval_ms == 0 {
        push(
            "run.poll_interval_ms".into(),
            "must be above 0; 5000 polls the CRM every 5 seconds".into(),
        );
    }
    // Bounded so that no duration built from them overflows (a day at most).
    for (key, value, example) in [
        ("run.poll_interval_ms", raw.run.poll_interval_ms, "5000"),
        ("run.poll_overlap_ms", raw.run.poll_overlap_ms, "15000"),
        (
            "run.capture_interval_ms",
            raw.run.capture_interval_ms,
            "1000",
        ),
        ("run.job_lease_ms", raw.run.job_lease_ms, "15000"),
        ("run.leader_lease_ms", raw.run.leader_lease_ms, "15000"),
    ] {
        if value > 86_400_000 {
            push(
                key.into(),
                format!("{value} ms is more than a day; a value such as {example} is usual"),
            );
        }
    }
    // Periodic looks may be rare, but a time after them must still be representable.
    for (key, value, example) in [
        (
            "run.archive_check_interval_ms",
            raw.run.archive_check_interval_ms,
            "60000",
        ),
        (
            "run.reconcile_interval_ms",
            raw.run.reconcile_interval_ms,
            "21600000",
        ),
    ] {
        if value > 30 * 86_400_000 {
            push(
                key.into(),
                format!("{value} ms is more than 30 days; a value such as {example} is usual"),
            );
        }
    }
    if raw.run.capture_interval_ms == 0 {
        push(
            "run.capture_interval_ms".into(),
            "must be above 0; 1000 looks for app changes every second".into(),
        );
    }
    if raw.run.job_lease_ms < 3_000 || raw.run.leader_lease_ms < 3_000 {
        let key = if raw.run.job_lease_ms < 3_000 {
            "run.job_lease_ms"
        } else {
            "run.leader_lease_ms"
        };
        push(
            key.into(),
            "must be at least 3000 ms: a lease is renewed every third of it, and a shorter one would be lost between two renewals under load".into(),
        );
    }
    if !(raw.run.max_delete_share > 0.0 && raw.run.max_delete_share <= 1.0) {
        push(
            "run.max_delete_share".into(),
            "must be a share above 0 and at most 1; 0.1 holds deletions of more than a tenth of the records"
                .into(),
        );
    }
    let hooks = &raw.webhooks;
    if let Some(listen) = &hooks.listen
        && listen.parse::<std::net::SocketAddr>().is_err()
    {
        push(
            "webhooks.listen".into(),
            format!(
                "`{listen}` is not a socket address; write an IP and a port, e.g. \"127.0.0.1:8080\" (\"0.0.0.0:8080\" listens on every interface)"
            ),
        );
    }
    if let Some(url) = &hooks.url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        push(
            "webhooks.url".into(),
            format!(
                "`{url}` is not an http(s) URL; write the target URL of the HubSpot app's webhook settings, e.g. \"https://hooks.example.com/hubspot/webhooks\""
            ),
        );
    }
    match (&hooks.secret_env, &hooks.secret_file) {
        (Some(_), Some(_)) => push(
            "webhooks.secret_file".into(),
            "set either `secret_env` or `secret_file`, not both".into(),
        ),
        (Some(var), None) if var.trim().is_empty() => push(
            "webhooks.secret_env".into(),
            "must name an environment variable, e.g. \"HUBSPOT_CLIENT_SECRET\"".into(),
        ),
        (None, Some(file)) if file.trim().is_empty() => push(
            "webhooks.secret_file".into(),
            "must name a file holding the HubSpot app's client secret".into(),
        ),
        _ => {}
    }
    if hooks.max_body_bytes < MIN_WEBHOOK_BODY_BYTES {
        push(
            "webhooks.max_body_bytes".into(),
            format!(
                "must be at least {MIN_WEBHOOK_BODY_BYTES}, got {}; the default 1048576 (1 MiB) holds HubSpot's largest delivery (100 events)",
                hooks.max_body_bytes
            ),
        );
    }
    let server = &raw.server;
    if let Some(listen) = &server.listen
        && crate::config::raw::parse_listen(listen).is_none()
    {
        push(
            "server.listen".into(),
            format!(
                "`{listen}` is not an address; write a port for the loopback (\"9187\") or an IP and a port (\"127.0.0.1:9187\")"
            ),
        );
    }
    match (&server.token_env, &server.token_file) {
        (Some(_), Some(_)) => push(
            "server.token_file".into(),
            "set either `token_env` or `token_file`, not both".into(),
        ),
        (Some(var), None) if var.trim().is_empty() => push(
            "server.token_env".into(),
            "must name an environment variable, e.g. \"CRMSYNC_SERVER_TOKEN\"".into(),
        ),
        (None, Some(file)) if file.trim().is_empty() => push(
            "server.token_file".into(),
            "must name a file holding the operator token".into(),
        ),
        _ => {}
    }
    if !(100..=600_000).contains(&server.read_timeout_ms) {
        push(
            "server.read_timeout_ms".into(),
            format!(
                "must be between 100 and 600000, got {}; the default 10000 (10 s) suits HubSpot and browsers",
                server.read_timeout_ms
            ),
        );
    }
    if !(1..=100_000).contains(&server.max_connections) {
        push(
            "server.max_connections".into(),
            format!(
                "must be between 1 and 100000, got {}; the default is 256",
                server.max_connections
            ),
        );
    }
    let alerts = &raw.alerts;
    let urls = [&alerts.url, &alerts.url_env, &alerts.url_file]
        .iter()
        .filter(|u| u.is_some())
        .count();
    if urls > 1 {
        push(
            "alerts.url".into(),
            "set one of `url`, `url_env`, `url_file`".into(),
        );
    }
    if let Some(url) = &alerts.url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        push(
            "alerts.url".into(),
            format!("`{url}` is not an http(s) URL"),
        );
    }
    if alerts.secret_env.is_some() && alerts.secret_file.is_some() {
        push(
            "alerts.secret_file".into(),
            "set either `secret_env` or `secret_file`, not both".into(),
        );
    }
    for (key, minutes) in [
        ("alerts.conflict_wait_minutes", alerts.conflict_wait_minutes),
        ("alerts.crm_down_minutes", alerts.crm_down_minutes),
        ("alerts.repeat_minutes", alerts.repeat_minutes),
    ] {
        if minutes == 0 {
            push(key.into(), "must be at least 1 minute".into());
        }
    }
    for (key, days) in [
        (
            "state.webhook_event_retention_days",
            raw.state.webhook_event_retention_days,
        ),
        (
            "state.call_log_retention_days",
            raw.state.call_log_retention_days,
        ),
    ] {
        // The budget and `status` read the last day of calls; a redelivery comes within days.
        if days < 2 {
            push(key.into(), format!("must be at least 2 days, got {days}"));
        }
    }
    if let Some(cycle) = association_cycle(raw) {
        push(
            "sync".into(),
            format!("associations form a cycle: {}", cycle.join(" -> ")),
        );
    }
    out
}

/// What HubSpot allows between line items, products and the rest (docs/mapping.md, "Order lines
/// and products"): a product is named by a line item's `hs_product_id`, never associated; a
/// line item belongs to a deal. As (key below `sync[i]`, message).
fn order_line_problems(raw: &RawConfig, s: &crate::config::SyncConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let object_of = |name: &str| {
        raw.syncs
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.object.as_str())
    };
    let mut product_column: Option<&str> = None;
    for (col, target) in &s.associate {
        let key = format!("associate.{col}");
        let Some(to) = object_of(target) else {
            continue; // reported as "no sync named"
        };
        match (s.object.as_str(), to) {
            ("products", _) => out.push((
                key,
                format!(
                    "HubSpot products cannot be associated with anything (`{target}` syncs {to}): remove this entry; a line item names its product instead (`associate = {{ product_id = \"{}\" }}` on the line_items sync)",
                    s.name
                ),
            )),
            ("line_items", "products") => {
                if let Some(first) = product_column {
                    out.push((
                        key,
                        format!(
                            "a line item has one product, and `associate.{first}` names it already; keep one of them"
                        ),
                    ));
                } else {
                    product_column = Some(col.as_str());
                }
            }
            ("line_items", "deals") => {}
            ("line_items", other) => out.push((
                key,
                format!(
                    "a line item is associated with its deal (and names its product); `{target}` syncs {other}: associate the deal to them instead"
                ),
            )),
            (from, "products") => out.push((
                key,
                format!(
                    "`{target}` syncs products, and only a line item refers to a product (through its `{PRODUCT_REFERENCE}` property); {from} cannot: map the order's lines as `object = \"line_items\"` with `associate = {{ {col} = \"{target}\" }}`"
                ),
            )),
            (from, "line_items") if from != "deals" => out.push((
                key,
                format!(
                    "`{target}` syncs line items, which HubSpot associates with deals only; associate the line items to their deal from the line_items sync (`associate = {{ order_id = \"<deals sync>\" }}`)"
                ),
            )),
            _ => {}
        }
    }
    if let Some(col) = product_column
        && let Some((name, _)) = s.fields.iter().find(|(_, f)| f.crm == PRODUCT_REFERENCE)
    {
        out.push((
            format!("fields.{name}.crm"),
            format!(
                "`{PRODUCT_REFERENCE}` is set from `associate.{col}` (the product's CRM id once the product is synced); remove this field or that association"
            ),
        ));
    }
    out
}

fn association_cycle(raw: &RawConfig) -> Option<Vec<String>> {
    let edges: BTreeMap<&str, BTreeSet<&str>> = raw
        .syncs
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.associate.values().map(String::as_str).collect(),
            )
        })
        .collect();
    fn visit<'a>(
        n: &'a str,
        edges: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = stack.iter().position(|s| *s == n) {
            let mut c: Vec<String> = stack[pos..].iter().map(|s| s.to_string()).collect();
            c.push(n.to_string());
            return Some(c);
        }
        if !done.insert(n) {
            return None;
        }
        stack.push(n);
        for m in edges.get(n).into_iter().flatten() {
            if *m != n
                && let Some(c) = visit(m, edges, stack, done)
            {
                return Some(c);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for n in edges.keys() {
        if let Some(c) = visit(n, &edges, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

/// Minutes east of UTC of an offset written `+HH:MM` / `-HH:MM` (or `Z`).
pub fn parse_utc_offset(text: &str) -> Option<i32> {
    if text == "Z" {
        return Some(0);
    }
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 14 && (0..60).contains(&m) && h >= 0).then_some(sign * (h * 60 + m))
}

/// URL schemes of app databases.
pub const SOURCE_SCHEMES: &[&str] = &["sqlite", "postgres", "postgresql", "mysql", "mariadb"];
/// URL schemes of state databases.
pub const STATE_SCHEMES: &[&str] = &["sqlite", "postgres", "postgresql"];

/// Checks that `url` names one of `schemes`, with a message listing them otherwise. The
/// message never repeats a password.
pub fn check_db_url(url: &str, schemes: &[&str]) -> Result<(), String> {
    let scheme = url.split("://").next().unwrap_or("").to_ascii_lowercase();
    if url.contains("://") && schemes.contains(&scheme.as_str()) {
        return Ok(());
    }
    let examples: Vec<&str> = schemes
        .iter()
        .filter_map(|s| match *s {
            "sqlite" => Some("`sqlite://file.db`"),
            "postgres" => Some("`postgres://user@host/db`"),
            "mysql" => Some("`mysql://user@host/db`"),
            _ => None,
        })
        .collect();
    Err(format!(
        "unsupported database URL `{}`; use {}",
        redact(url),
        examples.join(" or ")
    ))
}

/// Whether a `scheme://user:password@host` URL carries a password.
pub fn has_password(url: &str) -> bool {
    authority(url).is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

fn authority(url: &str) -> Option<(&str, &str)> {
    let rest = url.split_once("://")?.1;
    let auth = rest.split(['/', '?']).next().unwrap_or(rest);
    auth.rsplit_once('@')
}

/// `url` with any password replaced by `***`.
pub fn redact(url: &str) -> String {
    match (url.split_once("://"), authority(url)) {
        (Some((scheme, rest)), Some((userinfo, _))) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or("");
            let after = &rest[userinfo.len()..];
            format!("{scheme}://{user}:***{after}")
        }
        _ => url.to_string(),
    }
}

fn pulls_field(s: &crate::config::SyncConfig, f: &crate::config::FieldConfig) -> bool {
    f.direction.unwrap_or(s.direction) != crate::config::Direction::Push
}

fn pushes_field(s: &crate::config::SyncConfig, f: &crate::config::FieldConfig) -> bool {
    f.direction.unwrap_or(s.direction) != crate::config::Direction::Pull
}

/// Each kind's (and each HubSpot flow's) own settings: a setting of the other kind or flow is
/// a mistake worth naming, since it would be silently ignored otherwise.
fn validate_crm_keys(crm: &CrmConfig, push: &mut impl FnMut(String, String)) {
    let kind = crm.kind.as_str();
    if let Some(flow) = crm.auth
        && flow.kind() != crm.kind
    {
        let flows = match crm.kind {
            CrmKind::Hubspot => {
                "\"private_app\" (a private app's token, the default) or \"oauth\" (a public app)"
            }
            CrmKind::Salesforce => {
                "\"refresh_token\" (the default), \"client_credentials\" or \"jwt_bearer\""
            }
        };
        push(
            "crm.auth".into(),
            format!(
                "`auth = \"{}\"` is a {} flow, not one of `kind = \"{kind}\"`; use {flows}",
                flow.as_str(),
                flow.kind().as_str()
            ),
        );
    }
    let hubspot = crm.kind == CrmKind::Hubspot;
    let oauth = hubspot && crm.hubspot_auth() == HubspotAuth::Oauth;
    // (key, whether set, whether this kind and flow take it)
    let keys: [(&str, bool, bool); 17] = [
        ("base_url", crm.base_url.is_some(), hubspot),
        ("token_env", crm.token_env.is_some(), hubspot && !oauth),
        ("token_file", crm.token_file.is_some(), hubspot && !oauth),
        ("token_path", crm.token_path.is_some(), oauth),
        (
            "requests_per_interval",
            crm.requests_per_interval.is_some(),
            hubspot,
        ),
        ("interval_ms", crm.interval_ms.is_some(), hubspot),
        ("headroom_percent", crm.headroom_percent.is_some(), hubspot),
        (
            "daily_reset_utc_offset",
            crm.daily_reset_utc_offset.is_some(),
            hubspot,
        ),
        ("login_url", crm.login_url.is_some(), !hubspot),
        ("client_id", crm.client_id.is_some(), !hubspot || oauth),
        (
            "client_secret_env",
            crm.client_secret_env.is_some(),
            !hubspot || oauth,
        ),
        (
            "client_secret_file",
            crm.client_secret_file.is_some(),
            !hubspot || oauth,
        ),
        (
            "refresh_token_env",
            crm.refresh_token_env.is_some(),
            !hubspot || oauth,
        ),
        (
            "refresh_token_file",
            crm.refresh_token_file.is_some(),
            !hubspot || oauth,
        ),
        ("username", crm.username.is_some(), !hubspot),
        ("private_key_file", crm.private_key_file.is_some(), !hubspot),
        ("api_version", crm.api_version.is_some(), !hubspot),
    ];
    for (key, set, taken) in keys {
        if !set || taken {
            continue;
        }
        let message = match (crm.kind, key) {
            (CrmKind::Salesforce, "base_url") => format!(
                "is not a setting of `kind = \"{kind}\"`; Salesforce's API address comes from the token answer (`instance_url`): set `login_url`"
            ),
            (CrmKind::Salesforce, "token_env" | "token_file") => format!(
                "is not a setting of `kind = \"{kind}\"`; Salesforce tokens are obtained by OAuth: set `auth`, `client_id` and `client_secret_env` (docs/salesforce.md)"
            ),
            (CrmKind::Salesforce, "token_path") => format!(
                "is not a setting of `kind = \"{kind}\"`; Salesforce's token endpoint is found from `login_url`"
            ),
            (CrmKind::Hubspot, "token_env" | "token_file") => {
                "is a private app's token, not used with `auth = \"oauth\"`, whose access tokens are obtained with `refresh_token_env`: remove it (or set `auth = \"private_app\"`)".to_string()
            }
            (
                CrmKind::Hubspot,
                "client_id" | "client_secret_env" | "client_secret_file" | "refresh_token_env"
                | "refresh_token_file" | "token_path",
            ) => {
                "is a setting of a HubSpot public app (`auth = \"oauth\"`), not used with a private app's token: set `auth = \"oauth\"` (docs/hubspot.md), or remove it".to_string()
            }
            _ => format!("is not a setting of `kind = \"{kind}\"`"),
        };
        push(format!("crm.{key}"), message);
    }
}

/// What a HubSpot public app needs for OAuth (docs/hubspot.md). A private app's token is
/// checked where it is read (`load`), since commands that never call the CRM skip it.
fn validate_hubspot(crm: &CrmConfig, push: &mut impl FnMut(String, String)) {
    if crm.hubspot_auth() != HubspotAuth::Oauth {
        return;
    }
    if crm.client_id.as_deref().is_none_or(|c| c.trim().is_empty()) {
        push(
            "crm.client_id".into(),
            "`auth = \"oauth\"` needs the public app's client id (not a secret), from the app's Auth settings: `client_id = \"5f3c...\"`".into(),
        );
    }
    if crm.client_secret_env.is_none() && crm.client_secret_file.is_none() {
        push(
            "crm.client_secret_env".into(),
            "`auth = \"oauth\"` needs the app's client secret: name the environment variable holding it (`client_secret_env = \"HUBSPOT_CLIENT_SECRET\"`) or a file (`client_secret_file`)".into(),
        );
    }
    if crm.refresh_token_env.is_none() && crm.refresh_token_file.is_none() {
        push(
            "crm.refresh_token_env".into(),
            "`auth = \"oauth\"` needs the refresh token of the app's installation in the account: `refresh_token_env = \"HUBSPOT_REFRESH_TOKEN\"` (or `refresh_token_file`)".into(),
        );
    }
    if let Some(path) = &crm.token_path
        && (!path.starts_with('/') || path.contains(['?', '#', ' ']))
    {
        push(
            "crm.token_path".into(),
            format!(
                "`{path}` is not a path below `base_url`; e.g. `/oauth/v1/token` (the default) or `/oauth/2026-03/token`"
            ),
        );
    }
}

/// What a Salesforce connection needs for its OAuth flow (docs/salesforce.md).
fn validate_salesforce(crm: &CrmConfig, push: &mut impl FnMut(String, String)) {
    if crm.client_id.as_deref().is_none_or(|c| c.trim().is_empty()) {
        push(
            "crm.client_id".into(),
            "Salesforce needs the connected app's consumer key: `client_id = \"3MVG9...\"`".into(),
        );
    }
    let secret = crm.client_secret_env.is_some() || crm.client_secret_file.is_some();
    let refresh = crm.refresh_token_env.is_some() || crm.refresh_token_file.is_some();
    match crm.salesforce_auth() {
        SalesforceAuth::RefreshToken => {
            if !refresh {
                push(
                    "crm.refresh_token_env".into(),
                    "`auth = \"refresh_token\"` needs the refresh token: name the environment variable holding it (`refresh_token_env = \"SALESFORCE_REFRESH_TOKEN\"`) or a file (`refresh_token_file`)".into(),
                );
            }
        }
        SalesforceAuth::ClientCredentials => {
            if !secret {
                push(
                    "crm.client_secret_env".into(),
                    "`auth = \"client_credentials\"` needs the consumer secret: `client_secret_env = \"SALESFORCE_CLIENT_SECRET\"` (or `client_secret_file`)".into(),
                );
            }
        }
        SalesforceAuth::JwtBearer => {
            if crm.username.is_none() {
                push(
                    "crm.username".into(),
                    "`auth = \"jwt_bearer\"` needs the user the token is issued for: `username = \"integration@example.com\"`".into(),
                );
            }
            if crm.private_key_file.is_none() {
                push(
                    "crm.private_key_file".into(),
                    "`auth = \"jwt_bearer\"` needs the PEM file of the key of the connected app's certificate".into(),
                );
            }
        }
    }
    if let Some(v) = &crm.api_version {
        let ok = v
            .split_once('.')
            .is_some_and(|(a, b)| a.parse::<u32>().is_ok_and(|n| n >= 40) && b == "0");
        if !ok {
            push(
                "crm.api_version".into(),
                format!("`{v}` is not a Salesforce API version like \"59.0\" (at least 40.0)"),
            );
        }
    }
}

#[cfg(test)]
mod db_url_tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_passwords_never_repeated() {
        assert!(check_db_url("postgres://app@db/shop", STATE_SCHEMES).is_ok());
        assert!(check_db_url("mysql://app@db/shop", STATE_SCHEMES).is_err());
        assert!(check_db_url("mysql://app@db/shop", SOURCE_SCHEMES).is_ok());
        let e = check_db_url("oracle://app:hunter2@db", SOURCE_SCHEMES).expect_err("refused");
        assert!(!e.contains("hunter2"), "{e}");
        assert!(has_password("postgres://app:hunter2@db/shop"));
        assert!(!has_password("postgres://app@db/shop"));
        assert!(!has_password("sqlite://a:b.db"));
        assert_eq!(
            redact("postgres://app:hunter2@db/shop"),
            "postgres://app:***@db/shop"
        );
    }
}
