//! `crmsync check`: a preflight that validates the config against the live CRM and scans the
//! source, without changing anything. On the CRM side it only reads (property and pipeline
//! listings: GETs); it never opens the state database; it reads the app tables page by page.
//! Every problem is counted with up to N examples, so a user sees before the first sync what
//! would be quarantined, refused or merged.

use crate::error::EngineError;
use crmsync_core::config::{Config, OnCrmCreate, SyncConfig};
use crmsync_core::mapping::{MapOutcome, map_row, pulls, pushes, referenced_columns};
use crmsync_crm::{Capabilities, Crm, ObjectKind, Pipeline, PropertyInfo};
use crmsync_store::{Source, StoreError};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Rows read per page while scanning.
const PAGE: usize = 1000;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Records would be quarantined or refused, or the config cannot work.
    Error,
    /// Would surprise: the CRM would merge or refuse some records.
    Warning,
    /// Worth knowing, not a problem (held records, a property created on first sync).
    Note,
}

/// One example of a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Example {
    /// The record's key, when the finding is about records.
    pub key: Option<String>,
    pub value: Option<String>,
    pub detail: String,
}

/// One kind of problem, counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub sync: String,
    /// The field (key in `[sync.fields]`), when it is about one.
    pub field: Option<String>,
    /// What kind: `property_missing`, `read_only`, `unknown_option`, `id_property`,
    /// `source_schema`, `invalid`, `held`, `crm_type`, `duplicate_key`, `duplicate_email`,
    /// `cents_without_scale`, `map_unfilled`, `currency_unmapped`, `updated_at_order`,
    /// `updated_at_null`, `reference` (a parent sent as a property, e.g. a line item's
    /// `hs_product_id`), `insert_required`.
    pub kind: String,
    /// The failed rule for `invalid`/`held`, the CRM property for `crm_type`.
    pub rule: Option<String>,
    /// Records concerned (1 for a config-level finding).
    pub count: u64,
    pub message: String,
    pub examples: Vec<Example>,
}

/// Per sync, how its rows would fare.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncSummary {
    pub sync: String,
    pub object: String,
    pub rows: u64,
    /// Rows that would be sent.
    pub ready: u64,
    pub invalid: u64,
    pub held: u64,
}

/// The whole preflight.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub syncs: Vec<SyncSummary>,
    pub findings: Vec<Finding>,
}

impl CheckReport {
    /// Whether something is an error or a warning (notes alone are clean).
    pub fn has_problems(&self) -> bool {
        self.findings.iter().any(|f| f.severity != Severity::Note)
    }
}

/// Collects record-level findings grouped by (sync, field, kind, rule).
struct Groups {
    max_examples: usize,
    map: BTreeMap<(String, Option<String>, String, Option<String>), Finding>,
}

impl Groups {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        severity: Severity,
        sync: &str,
        field: Option<&str>,
        kind: &str,
        rule: Option<&str>,
        message: impl FnOnce() -> String,
        example: Example,
    ) {
        let k = (
            sync.to_string(),
            field.map(str::to_string),
            kind.to_string(),
            rule.map(str::to_string),
        );
        let max = self.max_examples;
        let f = self.map.entry(k).or_insert_with(|| Finding {
            severity,
            sync: sync.to_string(),
            field: field.map(str::to_string),
            kind: kind.to_string(),
            rule: rule.map(str::to_string),
            count: 0,
            message: message(),
            examples: Vec::new(),
        });
        f.count += 1;
        if f.examples.len() < max {
            f.examples.push(example);
        }
    }
}

fn config_finding(
    severity: Severity,
    sync: &SyncConfig,
    field: Option<&str>,
    kind: &str,
    message: String,
) -> Finding {
    Finding {
        severity,
        sync: sync.name.clone(),
        field: field.map(str::to_string),
        kind: kind.to_string(),
        rule: None,
        count: 1,
        message,
        examples: Vec::new(),
    }
}

/// What the CRM says about the objects the config uses.
struct CrmSchema {
    properties: HashMap<ObjectKind, HashMap<String, PropertyInfo>>,
    pipelines: Vec<Pipeline>,
    /// The CRM's own rules a preflight warns about (e-mail keys, currency property).
    caps: Capabilities,
}

impl CrmSchema {
    fn property(&self, object: ObjectKind, name: &str) -> Option<&PropertyInfo> {
        self.properties.get(&object).and_then(|p| p.get(name))
    }

    /// Allowed values of `prop` for a sync: deal stages of its pipeline for `dealstage`,
    /// the options of an enumeration otherwise; `None` when any value goes.
    fn allowed(&self, sync: &SyncConfig, prop: &PropertyInfo) -> Option<Vec<String>> {
        if prop.name == "dealstage" {
            let pipeline = pipeline_of(sync);
            return Some(
                self.pipelines
                    .iter()
                    .find(|p| p.id == pipeline)
                    .map(|p| p.stages.iter().map(|s| s.id.clone()).collect())
                    .unwrap_or_default(),
            );
        }
        (prop.kind == "enumeration" && !prop.options.is_empty()).then(|| prop.options.clone())
    }
}

/// The deal pipeline a sync writes into: a `pipeline` field's constant or default, else the
/// one named `default` (HubSpot's; CRMs without pipelines list none, so nothing is checked).
fn pipeline_of(sync: &SyncConfig) -> String {
    sync.fields
        .values()
        .find(|f| f.crm == "pipeline")
        .and_then(|f| f.constant.clone().or_else(|| f.default.clone()))
        .unwrap_or_else(|| "default".to_string())
}

/// Whether `value` fits a CRM property's data type; the reason when it does not.
fn type_problem(prop: &PropertyInfo, value: &str) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    let chars = value.chars().count() as u64;
    if let Some(max) = prop.max_length.filter(|max| chars > *max) {
        return Some(format!(
            "{chars} characters, more than the {max} the CRM accepts; add `{{ truncate = {max} }}` or shorten it in the app"
        ));
    }
    let blanks = value.trim() != value;
    match prop.kind.as_str() {
        "number" if blanks || value.parse::<f64>().map_or(true, |n| !n.is_finite()) => Some(
            format!("`{value}` is not a number; add a `number` transform"),
        ),
        "date" if chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_err() => Some(format!(
            "`{value}` is not a YYYY-MM-DD date; add a `{{ date = \"...\" }}` transform"
        )),
        "datetime"
            if chrono::DateTime::parse_from_rfc3339(value).is_err()
                && value.parse::<i64>().is_err()
                && chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_err() =>
        {
            Some(format!(
                "`{value}` is not an ISO-8601 datetime; add a `{{ datetime = \"...\" }}` transform"
            ))
        }
        "bool" if !matches!(value, "true" | "false") => {
            Some(format!("`{value}` is not true or false"))
        }
        _ => None,
    }
}

/// The part of the preflight a start runs (`sync`, `run`): the mapping against the CRM's
/// schema only, no scan of the app's rows (one read per object, and the pipelines). Returns
/// the errors: a mapped property the CRM lacks or will not let us write, a map target that is
/// not an option. Each would fail every record of its sync.
pub async fn preflight<C: Crm>(config: &Config, crm: &C) -> Result<Vec<Finding>, EngineError> {
    let schema = fetch_schema(config, crm).await?;
    let mut out = Vec::new();
    for s in &config.raw.syncs {
        let object = ObjectKind::parse(&s.object).unwrap_or(ObjectKind::Contacts);
        out.extend(
            check_config(s, object, &schema)
                .into_iter()
                .filter(|f| f.severity == Severity::Error),
        );
    }
    Ok(out)
}

/// The CRM's properties of every object the config syncs, and the deal pipelines.
async fn fetch_schema<C: Crm>(config: &Config, crm: &C) -> Result<CrmSchema, EngineError> {
    let syncs = &config.raw.syncs;
    let mut schema = CrmSchema {
        properties: HashMap::new(),
        pipelines: Vec::new(),
        caps: crm.capabilities(),
    };
    for s in syncs {
        let object = ObjectKind::parse(&s.object).ok_or_else(|| {
            EngineError::Config(format!(
                "sync `{}`: unknown CRM object `{}`",
                s.name, s.object
            ))
        })?;
        if let std::collections::hash_map::Entry::Vacant(e) = schema.properties.entry(object) {
            let props = crm.properties(object).await?;
            e.insert(props.into_iter().map(|p| (p.name.clone(), p)).collect());
            if object == ObjectKind::Deals {
                schema.pipelines = crm.pipelines(object).await?;
            }
        }
    }
    Ok(schema)
}

/// Runs the preflight. `max_examples` bounds the examples per finding.
pub async fn check<C: Crm, A: Source>(
    config: &Config,
    crm: &C,
    source: &A,
    max_examples: usize,
) -> Result<CheckReport, EngineError> {
    let syncs = &config.raw.syncs;
    let schema = fetch_schema(config, crm).await?;
    let mut report = CheckReport::default();
    let mut groups = Groups {
        max_examples,
        map: BTreeMap::new(),
    };
    for s in syncs {
        let object = ObjectKind::parse(&s.object).unwrap_or(ObjectKind::Contacts);
        report.findings.extend(check_config(s, object, &schema));
        report.findings.extend(reference_notes(config, s));
        report.syncs.push(
            scan_sync(
                s,
                object,
                &schema,
                source,
                &mut groups,
                &mut report.findings,
            )
            .await?,
        );
    }
    report.findings.extend(groups.map.into_values());
    report.findings.sort_by(|a, b| {
        (a.severity, &a.sync, &a.field, &a.kind).cmp(&(b.severity, &b.sync, &b.field, &b.kind))
    });
    Ok(report)
}

/// Whether a timestamp value, compared as the database compares the column, sorts as time
/// does: an integer (epoch), or ISO 8601 starting `YYYY-MM-DD` (then ` ` or `T` and `HH:MM`).
/// `01.02.2026` or `Feb 1, 2026` sort as text, not as time.
fn sorts_as_time(v: &str) -> bool {
    let v = v.trim();
    if v.parse::<i64>().is_ok() {
        return true;
    }
    let b = v.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let date = digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10);
    date && (b.len() == 10
        || (matches!(b.get(10), Some(b' ' | b'T')) && digits(11..13) && b.get(13) == Some(&b':')))
}

/// Whether a field's transforms scale its number (`number = { divide_by = ... }`).
fn scales(f: &crmsync_core::config::FieldConfig) -> bool {
    f.transform.iter().any(|item| {
        matches!(
            crmsync_core::transform::Transform::from_item(item),
            Ok(crmsync_core::transform::Transform::Number { scale, .. }) if scale > 0
        )
    })
}

/// A deals sync that sends an amount from a table with a currency column, but not the
/// currency: every amount would be taken in the portal's company currency (€1,299 arriving as
/// $1,299). `None` when the currency is sent or there is no such column.
fn currency_left_out(
    s: &SyncConfig,
    object: ObjectKind,
    caps: &Capabilities,
    info: &crmsync_store::TableInfo,
) -> Option<String> {
    let currency = caps.deal_currency?;
    let sends = |prop: &str| s.fields.values().any(|f| f.crm == prop && pushes(s, f));
    if object != ObjectKind::Deals || !sends("amount") || sends(currency) {
        return None;
    }
    let column = info.columns.iter().map(|c| c.name.as_str()).find(|n| {
        let n = n.to_ascii_lowercase();
        n == "currency" || n.starts_with("currency_") || n.ends_with("_currency")
    })?;
    Some(format!(
        "table `{}` has a currency column `{column}` but no field sends it: {} would read every amount in the account's company currency; add `{column} = {{ crm = \"{currency}\", transform = [\"uppercase\"] }}`",
        s.table, caps.name
    ))
}

/// Config against the CRM's schema: id property, mapped properties, map targets.
fn check_config(s: &SyncConfig, object: ObjectKind, schema: &CrmSchema) -> Vec<Finding> {
    let mut out = Vec::new();
    match schema.property(object, &s.id_property) {
        Some(p) if p.has_unique_value => {}
        Some(_) => out.push(config_finding(
            Severity::Error,
            s,
            None,
            "id_property",
            format!(
                "{object} property `{}` exists but is not unique-valued, so upserts cannot use it; choose another `id_property`",
                s.id_property
            ),
        )),
        None => out.push(config_finding(
            Severity::Note,
            s,
            None,
            "id_property",
            format!(
                "{object} property `{}` does not exist yet; the first sync creates it (unique-valued)",
                s.id_property
            ),
        )),
    }
    for (name, f) in &s.fields {
        if !pushes(s, f) {
            continue;
        }
        let Some(prop) = schema.property(object, &f.crm) else {
            out.push(config_finding(
                Severity::Error,
                s,
                Some(name),
                "property_missing",
                format!(
                    "{object} has no property `{}`; create it in the CRM or fix `crm`",
                    f.crm
                ),
            ));
            continue;
        };
        if name.to_ascii_lowercase().ends_with("_cents")
            && (prop.kind == "number" || f.crm == "amount" || f.crm == "price")
            && !scales(f)
        {
            out.push(config_finding(
                Severity::Warning,
                s,
                Some(name),
                "cents_without_scale",
                format!(
                    "`{name}` looks like an amount in cents, and {object} property `{}` would get it unscaled (129900 for $1,299.00); add `transform = [{{ number = {{ divide_by = 100, decimals = 2 }} }}]`",
                    f.crm
                ),
            ));
        }
        if prop.read_only {
            // A line item's amount is computed from its quantity and price (HubSpot `amount`,
            // Salesforce `TotalPrice`); say what to map instead.
            let why = if object == ObjectKind::LineItems
                && (f.crm == "amount" || f.crm == "TotalPrice")
            {
                "; the CRM computes a line item's amount from its quantity and price: map those instead"
            } else {
                ""
            };
            out.push(config_finding(
                Severity::Error,
                s,
                Some(name),
                "read_only",
                format!(
                    "{object} property `{}` is read-only; it cannot be written{why}",
                    f.crm
                ),
            ));
        }
        if f.crm == "dealstage" && !schema.pipelines.iter().any(|p| p.id == pipeline_of(s)) {
            out.push(config_finding(
                Severity::Error,
                s,
                Some(name),
                "unknown_option",
                format!(
                    "deal pipeline `{}` does not exist; pipelines: {}",
                    pipeline_of(s),
                    schema
                        .pipelines
                        .iter()
                        .map(|p| p.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if let (Some(map), Some(allowed)) = (&f.map, schema.allowed(s, prop)) {
            // An empty target is a skeleton still to be filled in (as `crmsync init` writes
            // them): say what is left to decide, and which values may go there.
            let unfilled: Vec<String> = map
                .iter()
                .filter(|(_, target)| target.trim().is_empty())
                .map(|(app, _)| format!("`{app}`"))
                .collect();
            if !unfilled.is_empty() {
                out.push(config_finding(
                    Severity::Error,
                    s,
                    Some(name),
                    "map_unfilled",
                    format!(
                        "`map` has no `{}` value yet for {}: set each to one of {}",
                        f.crm,
                        unfilled.join(", "),
                        allowed.join(", ")
                    ),
                ));
            }
            let mut bad: Vec<&str> = map
                .values()
                .map(String::as_str)
                .filter(|v| !v.trim().is_empty() && !allowed.iter().any(|a| a == v))
                .collect();
            bad.dedup();
            if !bad.is_empty() {
                out.push(config_finding(
                    Severity::Error,
                    s,
                    Some(name),
                    "unknown_option",
                    format!(
                        "`map` sends {} which `{}` does not accept; allowed: {}",
                        bad.iter()
                            .map(|b| format!("`{b}`"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        f.crm,
                        allowed.join(", ")
                    ),
                ));
            }
        }
    }
    out.extend(required_left_out(s, object, schema));
    out
}

/// The properties the CRM requires on a new record that no field sends (Salesforce's
/// `Contact.LastName`, `Opportunity.StageName`): every create would be refused. Lookups are
/// left out, links fill them; so is the id property, crmsync fills it.
fn required_left_out(s: &SyncConfig, object: ObjectKind, schema: &CrmSchema) -> Vec<Finding> {
    let Some(props) = schema.properties.get(&object) else {
        return Vec::new();
    };
    let mut missing: Vec<&PropertyInfo> = props
        .values()
        .filter(|p| p.required && !p.read_only && p.field_type != "reference")
        .filter(|p| p.name != s.id_property)
        .filter(|p| !s.fields.values().any(|f| f.crm == p.name && pushes(s, f)))
        .collect();
    missing.sort_by(|a, b| a.name.cmp(&b.name));
    missing
        .into_iter()
        .map(|p| {
            config_finding(
                Severity::Error,
                s,
                None,
                "required_missing",
                format!(
                    "{} requires `{}` on every new {object} and no field sends it; map a column to it or give it a `constant`",
                    schema.caps.name, p.name
                ),
            )
        })
        .collect()
}

/// A note per association target the CRM refers to by a property (a line item's product): the
/// column's parent goes out as that property, not as an association, so a reader of `check`
/// knows why no association call to it appears in `plan`.
fn reference_notes(config: &Config, s: &SyncConfig) -> Vec<Finding> {
    let references = crate::outbound::plan::reference_properties(&config.raw.syncs, s);
    s.associate
        .iter()
        .filter_map(|(column, target)| {
            let property = references.get(target)?;
            Some(config_finding(
                Severity::Note,
                s,
                None,
                "reference",
                format!(
                    "`associate.{column}` names a record of `{target}`: it is sent as the {} property `{property}` (the CRM id of that record once it is synced), not as an association; a row waits for its `{target}` record like for any parent",
                    s.object
                ),
            ))
        })
        .collect()
}

/// Reads every row of a sync and records what would happen to it.
async fn scan_sync<A: Source>(
    s: &SyncConfig,
    object: ObjectKind,
    schema: &CrmSchema,
    source: &A,
    groups: &mut Groups,
    findings: &mut Vec<Finding>,
) -> Result<SyncSummary, EngineError> {
    let mut summary = SyncSummary {
        sync: s.name.clone(),
        object: s.object.clone(),
        ..Default::default()
    };
    let mut cols = referenced_columns(s);
    // `capture = "updated_at"` pages by this column in its own order: its values must sort
    // as time does, and a NULL is never captured.
    let stamp = s
        .updated_at_column
        .as_deref()
        .filter(|_| s.capture == crmsync_core::config::Capture::UpdatedAt);
    if let Some(c) = stamp.filter(|c| !cols.contains(c)) {
        cols.push(c);
    }
    let mut needed = cols.clone();
    needed.push(&s.key);
    needed.extend(insert_columns(s));
    match check_columns(source, &s.table, &needed).await {
        Ok(info) => {
            if let Some(why) = currency_left_out(s, object, &schema.caps, &info) {
                findings.push(config_finding(
                    Severity::Warning,
                    s,
                    None,
                    "currency_unmapped",
                    why,
                ));
            }
            for (field, why) in unwritable(s, &info) {
                findings.push(config_finding(
                    Severity::Error,
                    s,
                    field.as_deref(),
                    "source_schema",
                    why,
                ));
            }
            for (severity, field, why) in unfilled_required(s, &info) {
                findings.push(config_finding(
                    severity,
                    s,
                    field.as_deref(),
                    "insert_required",
                    why,
                ));
            }
        }
        Err(e) => {
            findings.push(config_finding(
                Severity::Error,
                s,
                None,
                "source_schema",
                e.to_string(),
            ));
            return Ok(summary);
        }
    }
    let field_of_prop: HashMap<&str, &str> = s
        .fields
        .iter()
        .map(|(n, f)| (f.crm.as_str(), n.as_str()))
        .collect();
    let mut keys: HashMap<String, u32> = HashMap::new();
    let mut emails: HashMap<String, String> = HashMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = source
            .scan_page(&s.table, &s.key, &cols, after.as_deref(), PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        for row in &page {
            summary.rows += 1;
            let seen = keys.entry(row.key.clone()).or_default();
            *seen += 1;
            if *seen == 2 {
                groups.add(
                    Severity::Error,
                    &s.name,
                    None,
                    "duplicate_key",
                    None,
                    || format!("key column `{}` has duplicate values; each record must have its own key", s.key),
                    Example { key: Some(row.key.clone()), value: None, detail: "key used more than once".into() },
                );
            }
            if let Some(c) = stamp {
                match row.values.get(c).cloned().flatten() {
                    None => groups.add(
                        Severity::Warning,
                        &s.name,
                        Some(c),
                        "updated_at_null",
                        None,
                        || format!("`{c}` is NULL: capture = \"updated_at\" never sees these records until the column is set (use capture = \"trigger\" or fill it)"),
                        Example { key: Some(row.key.clone()), value: None, detail: "NULL".into() },
                    ),
                    Some(v) if !sorts_as_time(&v) => groups.add(
                        Severity::Error,
                        &s.name,
                        Some(c),
                        "updated_at_order",
                        None,
                        || format!("`{c}` holds values that do not sort as time: capture = \"updated_at\" would miss changes; store ISO 8601 (`2026-02-01 10:00:00`) or epoch milliseconds, or use capture = \"trigger\""),
                        Example { key: Some(row.key.clone()), value: Some(v.clone()), detail: "not ISO 8601 nor an integer".into() },
                    ),
                    Some(_) => {}
                }
            }
            match map_row(s, &row.values) {
                MapOutcome::Invalid(problems) => {
                    summary.invalid += 1;
                    for p in problems {
                        groups.add(
                            Severity::Error,
                            &s.name,
                            Some(&p.column),
                            "invalid",
                            Some(&p.rule),
                            || format!("`{}` fails `{}`: these records would be quarantined as invalid, nothing sent", p.column, p.rule),
                            Example { key: Some(row.key.clone()), value: p.value.clone(), detail: p.message.clone() },
                        );
                    }
                }
                MapOutcome::Held(p) => {
                    summary.held += 1;
                    groups.add(
                        Severity::Note,
                        &s.name,
                        Some(&p.column),
                        "held",
                        Some(&p.rule),
                        || {
                            format!(
                                "`{}` is not confirmed yet: these records wait (held) until it is",
                                p.column
                            )
                        },
                        Example {
                            key: Some(row.key.clone()),
                            value: p.value.clone(),
                            detail: p.message.clone(),
                        },
                    );
                }
                MapOutcome::Ready(mapped) => {
                    for p in &mapped.skipped {
                        groups.add(
                            Severity::Warning,
                            &s.name,
                            Some(&p.column),
                            "skipped_field",
                            Some(&p.rule),
                            || format!("`{}` fails `{}`: these records would be sent without it (on_invalid = \"skip_field\")", p.column, p.rule),
                            Example { key: Some(row.key.clone()), value: p.value.clone(), detail: p.message.clone() },
                        );
                    }
                    let props = &mapped.properties;
                    let mut ok = true;
                    for (prop_name, value) in props.iter().chain(&mapped.create_only) {
                        let Some(prop) = schema.property(object, prop_name) else {
                            continue;
                        };
                        let why = type_problem(prop, value).or_else(|| {
                            schema
                                .allowed(s, prop)
                                .filter(|a| !a.iter().any(|x| x == value))
                                .map(|a| format!("`{value}` is not one of {}", a.join(", ")))
                        });
                        if let Some(why) = why {
                            ok = false;
                            let field = field_of_prop.get(prop_name.as_str()).copied();
                            groups.add(
                                Severity::Error,
                                &s.name,
                                field,
                                "crm_type",
                                Some(prop_name),
                                || {
                                    format!(
                                        "the CRM would refuse these values of `{prop_name}` ({})",
                                        prop.kind
                                    )
                                },
                                Example {
                                    key: Some(row.key.clone()),
                                    value: Some(value.clone()),
                                    detail: why,
                                },
                            );
                        }
                    }
                    if schema.caps.unique_email == Some(object)
                        && let Some(email) = props.get("email")
                    {
                        let norm = email.to_lowercase();
                        if let Some(first) = emails.get(&norm) {
                            groups.add(
                                Severity::Warning,
                                &s.name,
                                field_of_prop.get("email").copied(),
                                "duplicate_email",
                                None,
                                || format!("{} keys {object} by e-mail too: records sharing an address would be refused or merged into one record", schema.caps.name),
                                Example { key: Some(row.key.clone()), value: Some(email.clone()), detail: format!("same e-mail as record {first}") },
                            );
                        } else {
                            emails.insert(norm, row.key.clone());
                        }
                    }
                    if ok {
                        summary.ready += 1;
                    }
                }
            }
        }
        if page.len() < PAGE {
            break;
        }
    }
    Ok(summary)
}

/// Checks that `table` exists in the app database and has every column in `needed`, naming
/// the missing ones and the ones it has; returns what the database said about the table.
pub async fn check_columns<A: Source>(
    source: &A,
    table: &str,
    needed: &[&str],
) -> Result<crmsync_store::TableInfo, StoreError> {
    let info = source.describe(table).await?;
    let missing = info.missing(needed);
    if missing.is_empty() {
        return Ok(info);
    }
    let have: Vec<&str> = info.columns.iter().map(|c| c.name.as_str()).collect();
    Err(StoreError::Schema(format!(
        "table `{table}` has no column{} {}; it has: {}",
        if missing.len() == 1 { "" } else { "s" },
        missing
            .iter()
            .map(|m| format!("`{m}`"))
            .collect::<Vec<_>>()
            .join(", "),
        have.join(", ")
    )))
}

/// What `sync` would write into its table that the database cannot take: pulled fields,
/// the write-back column and the CRM-deleted column on a view, or on a generated column. As
/// (field, message); the field is `None` for the sync-level columns.
pub fn unwritable(
    sync: &SyncConfig,
    info: &crmsync_store::TableInfo,
) -> Vec<(Option<String>, String)> {
    let mut targets: Vec<(Option<String>, &str, &str)> = sync
        .fields
        .iter()
        .filter(|(_, f)| pulls(sync, f))
        .map(|(name, _)| (Some(name.clone()), name.as_str(), "a field that pulls"))
        .collect();
    if let Some(c) = &sync.write_back_column {
        targets.push((None, c, "`write_back_column`"));
    }
    if let Some(c) = &sync.crm_deleted_column {
        targets.push((None, c, "`crm_deleted_column`"));
    }
    let mut out = Vec::new();
    for (field, column, what) in targets {
        if info.kind == crmsync_store::TableKind::View {
            out.push((
                field,
                format!(
                    "`{}` is a view: {what} (`{column}`) cannot be written into it; make the field push-only (`direction = \"push\"`) or sync the underlying table",
                    sync.table
                ),
            ));
        } else if info.column(column).is_some_and(|c| c.generated) {
            out.push((
                field,
                format!(
                    "column `{column}` of `{}` is generated by the database: {what} cannot write it; make the field push-only (`direction = \"push\"`)",
                    sync.table
                ),
            ));
        }
    }
    out
}

/// The columns a row inserted for a CRM record is written into besides the pulled fields'
/// (`on_crm_create = "insert"`): the write-back column and the `insert_values`.
fn insert_columns(sync: &SyncConfig) -> Vec<&str> {
    if sync.on_crm_create != OnCrmCreate::Insert {
        return Vec::new();
    }
    sync.write_back_column
        .iter()
        .map(String::as_str)
        .chain(sync.insert_values.keys().map(String::as_str))
        .collect()
}

/// For a sync with `on_crm_create = "insert"`: each column the table requires (NOT NULL, no
/// default, not generated; the key when the database does not assign it) that neither a
/// pulled field, the write-back column nor `insert_values` fills: every insert would be
/// refused (an error). A required column only a pulled field fills is a note: a CRM record
/// without that value is refused. As (severity, field, message).
pub fn unfilled_required(
    sync: &SyncConfig,
    info: &crmsync_store::TableInfo,
) -> Vec<(Severity, Option<String>, String)> {
    if sync.on_crm_create != OnCrmCreate::Insert || info.kind == crmsync_store::TableKind::View {
        return Vec::new();
    }
    let pulled: Vec<(&str, &str)> = sync
        .fields
        .iter()
        .filter(|(_, f)| pulls(sync, f))
        .map(|(k, f)| (k.as_str(), f.column.as_deref().unwrap_or(k)))
        .collect();
    let other = insert_columns(sync);
    let mut out = Vec::new();
    for c in &info.columns {
        if c.nullable || c.has_default || c.generated || other.contains(&c.name.as_str()) {
            continue;
        }
        if let Some((field, _)) = pulled.iter().find(|(_, col)| *col == c.name) {
            out.push((
                Severity::Note,
                Some(field.to_string()),
                format!(
                    "column `{}` of `{}` is NOT NULL without a default and only `{field}` fills it: a record created in the CRM without a value there is refused (reported by `crmsync status`)",
                    c.name, sync.table
                ),
            ));
        } else if c.name == sync.key {
            out.push((
                Severity::Error,
                None,
                format!(
                    "the key `{}` of `{}` has no default, so the database cannot assign one to a row inserted for a record created in the CRM (on_crm_create = \"insert\"); make it an auto-increment or identity key",
                    c.name, sync.table
                ),
            ));
        } else {
            out.push((
                Severity::Error,
                None,
                format!(
                    "column `{}` of `{}` is NOT NULL without a default, and no pulled field, `write_back_column` or `insert_values` fills it: every record created in the CRM would be refused; add `insert_values = {{ {} = \"now\" }}` (or a constant), a default, or a field that pulls it",
                    c.name, sync.table, c.name
                ),
            ));
        }
    }
    out
}

/// Checks the source tables and columns every sync reads, naming what is missing, and that
/// whatever a sync writes back is writable (see [`unwritable`]).
pub async fn check_source<A: Source>(config: &Config, source: &A) -> Result<(), EngineError> {
    for s in &config.raw.syncs {
        let mut cols = crate::outbound::capture::columns(s);
        cols.push(&s.key);
        for c in [
            &s.updated_at_column,
            &s.write_back_column,
            &s.crm_deleted_column,
        ]
        .into_iter()
        .flatten()
        {
            cols.push(c);
        }
        cols.extend(insert_columns(s));
        let info = check_columns(source, &s.table, &cols)
            .await
            .map_err(|e| EngineError::Config(format!("sync `{}`: {e}", s.name)))?;
        if let Some((field, why)) = unwritable(s, &info).into_iter().next() {
            let at = field.map(|f| format!(" field `{f}`")).unwrap_or_default();
            return Err(EngineError::Config(format!("sync `{}`{at}: {why}", s.name)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_that_sort_as_time() {
        for ok in [
            "1767225600000",
            "2026-02-01",
            "2026-02-01 10:00:00",
            "2026-02-01T10:00:00Z",
            "2026-02-01 10:00:00.123+00",
        ] {
            assert!(sorts_as_time(ok), "{ok}");
        }
        for bad in [
            "01.02.2026",
            "Feb 1, 2026",
            "2026-2-1",
            "2026-02-01 at noon",
            "",
        ] {
            assert!(!sorts_as_time(bad), "{bad}");
        }
    }
    use crmsync_core::config::{Secrets, load_str};

    /// What HubSpot's connector states, for schemas built by hand.
    fn hubspot_caps() -> Capabilities {
        Capabilities {
            name: "HubSpot",
            batches: crmsync_crm::Batches {
                write: 100,
                read: 100,
                associate: 100,
            },
            keying: crmsync_crm::Keying::UniqueProperty,
            parents: crmsync_crm::ParentLink::Associations,
            unique_email: Some(ObjectKind::Contacts),
            deal_currency: Some("deal_currency_code"),
        }
    }

    fn deals_config(fields: &str) -> Config {
        let text = format!(
            "[source]\nurl = \"sqlite://app.db\"\n[crm]\nenvironment = \"sandbox\"\nkind = \"hubspot\"\nbase_url = \"http://127.0.0.1:1\"\ntoken_env = \"T\"\n[[sync]]\nname = \"deals\"\ntable = \"orders\"\nobject = \"deals\"\n[sync.fields]\n{fields}\n"
        );
        load_str(
            &text,
            std::path::Path::new("crmsync.toml"),
            Secrets::NotNeeded,
            &|_| None,
        )
        .expect("config valid")
    }

    fn schema_with_amount() -> CrmSchema {
        let amount = PropertyInfo {
            name: "amount".into(),
            kind: "number".into(),
            field_type: "number".into(),
            has_unique_value: false,
            read_only: false,
            options: vec![],
            required: false,
            max_length: None,
        };
        CrmSchema {
            properties: HashMap::from([(
                ObjectKind::Deals,
                HashMap::from([("amount".to_string(), amount)]),
            )]),
            pipelines: vec![],
            caps: hubspot_caps(),
        }
    }

    #[test]
    fn an_unfilled_map_says_what_is_left_to_decide() {
        let config = deals_config(
            r#"status = { crm = "dealstage", map = { paid = "", pending = "", shipped = "closedwon" } }"#,
        );
        let s = &config.raw.syncs[0];
        let dealstage = PropertyInfo {
            name: "dealstage".into(),
            kind: "enumeration".into(),
            field_type: "radio".into(),
            has_unique_value: false,
            read_only: false,
            options: vec![],
            required: false,
            max_length: None,
        };
        let stage = |id: &str| crmsync_crm::Stage {
            id: id.into(),
            label: id.into(),
        };
        let schema = CrmSchema {
            properties: HashMap::from([(
                ObjectKind::Deals,
                HashMap::from([("dealstage".to_string(), dealstage)]),
            )]),
            pipelines: vec![Pipeline {
                id: "default".into(),
                label: "Sales Pipeline".into(),
                stages: vec![stage("closedwon"), stage("closedlost")],
            }],
            caps: hubspot_caps(),
        };
        let findings = check_config(s, ObjectKind::Deals, &schema);
        let kinds: Vec<&str> = findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .map(|f| f.kind.as_str())
            .collect();
        assert_eq!(kinds, ["map_unfilled"], "{findings:?}");
        let m = &findings
            .iter()
            .find(|f| f.kind == "map_unfilled")
            .expect("unfilled")
            .message;
        assert!(
            m.contains("`paid`, `pending`") && m.contains("closedwon, closedlost"),
            "{m}"
        );
        assert!(!m.contains("`shipped`"), "{m}");
    }

    #[test]
    fn cents_into_an_amount_without_a_scale_is_warned_about() {
        let kinds = |fields: &str| -> Vec<(Severity, String)> {
            let config = deals_config(fields);
            check_config(
                &config.raw.syncs[0],
                ObjectKind::Deals,
                &schema_with_amount(),
            )
            .into_iter()
            .filter(|f| f.field.is_some())
            .map(|f| (f.severity, f.kind))
            .collect()
        };
        assert_eq!(
            kinds(r#"total_cents = { crm = "amount" }"#),
            vec![(Severity::Warning, "cents_without_scale".to_string())]
        );
        assert!(
            kinds(r#"total_cents = { crm = "amount", transform = [{ number = { divide_by = 100, decimals = 2 } }] }"#)
                .is_empty(),
            "a scaled amount is fine"
        );
        assert!(kinds(r#"total = { crm = "amount" }"#).is_empty());
    }
}
