//! The proposal `crmsync init` writes, decided from a [`TableSnapshot`] list without any I/O:
//! which tables become which syncs, which columns which fields (and why), the deal-stage map
//! skeletons, the associations and the capture hints. [`super::render`] turns it into the
//! config text.
//!
//! Invariants: the same schema always gives the same proposal (tables in name order, syncs
//! parents first); every guess carries a note saying why and what to check; an association
//! only ever points from a child kind to a parent kind that has an active sync, so the
//! associations never form a cycle; two syncs never write one CRM property of one record
//! from two fields; no secret ever enters it (a source URL with a password becomes `url_env`).

use super::names::{self, Kind, first_named};
use super::schema::TableSnapshot;
use crmsync_store::{ColumnInfo, TableKind};
use std::collections::{BTreeMap, BTreeSet};

/// The environment variable the proposal names when the source URL carries a password.
pub const SOURCE_URL_ENV: &str = "APP_DATABASE_URL";

/// How the proposal reaches the app database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceLine {
    /// `url = "..."`: a URL without a password.
    Url(String),
    /// `url_env = "APP_DATABASE_URL"`: the URL given had a password, which never goes into
    /// the file.
    Env(&'static str),
}

/// What the builder is told besides the schema.
#[derive(Debug, Clone)]
pub struct Options {
    pub source: SourceLine,
    /// The source URL for the header comment, password redacted.
    pub shown_url: String,
    /// Whether `line_items` syncs are written active (`crmsync init` always does; off, they
    /// are written commented out, for a proposal without line items).
    pub line_items: bool,
}

/// Nothing to propose.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NothingToPropose {
    /// The database has no tables or views (in its default schema).
    #[error(
        "the source database {0} has no tables or views: `crmsync init` proposes a config from an existing schema (for PostgreSQL, select the schema with ?options=-c%20search_path%3Dshop; for MySQL, name the database in the URL)"
    )]
    Empty(String),
    /// No table is named like a CRM object.
    #[error(
        "none of the tables of {url} is named like a CRM object ({tables}); `crmsync init` recognises users/customers/people/contacts/members (contacts), accounts/companies/organizations/businesses (companies) and orders/deals/opportunities (deals): write the [[sync]] sections by hand (docs/mapping.md)"
    )]
    NoneRecognised { url: String, tables: String },
}

/// A TOML value of a field's inline table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A string, quoted on output.
    Str(String),
    /// TOML text as it is (an array, a table, a boolean), built by the helpers below.
    Raw(String),
}

/// One `[sync.fields]` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field's key (a column name, or the CRM property for a template or constant).
    pub key: String,
    /// The inline table's keys in order: `crm` first.
    pub pairs: Vec<(&'static str, Value)>,
    /// Why this field, and what to check.
    pub note: String,
    /// `false`: written commented out, as a suggestion.
    pub active: bool,
}

/// A status column mapped to the deal stage: the map skeleton.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageMap {
    pub column: String,
    /// The values to map (present in the rows or declared by the column's type), sorted.
    pub values: Vec<String>,
    /// The column holds more distinct values than were listed.
    pub more: bool,
    pub notes: Vec<String>,
}

/// One `associate` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Association {
    pub column: String,
    pub target: String,
    pub required: bool,
    pub note: String,
}

/// One proposed `[[sync]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPlan {
    pub name: String,
    pub table: String,
    pub kind: Kind,
    pub key: String,
    /// Why this table is this object, how its key was chosen.
    pub notes: Vec<String>,
    /// `None`: the default `crmsync_id`.
    pub id_property: Option<(String, String)>,
    /// `false`: the whole sync is written commented out, with `disabled_note`.
    pub enabled: bool,
    pub disabled_note: Option<String>,
    pub capture: &'static str,
    pub updated_at_column: Option<String>,
    pub capture_note: String,
    /// The column and why.
    pub write_back: Option<(String, String)>,
    pub associate: Vec<Association>,
    pub fields: Vec<Field>,
    pub stage: Option<StageMap>,
    /// Said after the fields: columns left out, associations not made, other statuses.
    pub trailer: Vec<String>,
}

/// The whole proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub source: SourceLine,
    pub shown_url: String,
    pub tables_read: usize,
    pub syncs: Vec<SyncPlan>,
    /// Tables without a sync, and why.
    pub skipped: Vec<(String, String)>,
}

impl Proposal {
    /// Whether any active sync has a stage map to fill in.
    pub fn has_stage_maps(&self) -> bool {
        self.syncs.iter().any(|s| s.enabled && s.stage.is_some())
    }
}

/// A TOML basic string.
pub fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML key: bare when it can be, quoted otherwise.
pub fn toml_key(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        s.to_string()
    } else {
        toml_str(s)
    }
}

/// `name` fit for a `#` comment line: control characters (a newline would end the comment
/// and let database text into the config) shown as `?`.
pub fn in_comment(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn raw_list(items: &[&str]) -> Value {
    Value::Raw(format!(
        "[{}]",
        items
            .iter()
            .map(|i| if i.starts_with('{') {
                i.to_string()
            } else {
                toml_str(i)
            })
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

const CENTS: &str = "{ number = { divide_by = 100, decimals = 2 } }";

/// The tables' columns, with what the fields took already.
struct Columns<'a> {
    table: &'a TableSnapshot,
    names: Vec<&'a str>,
    used: BTreeSet<String>,
}

impl<'a> Columns<'a> {
    fn new(table: &'a TableSnapshot) -> Self {
        Columns {
            table,
            names: table.info.columns.iter().map(|c| c.name.as_str()).collect(),
            used: BTreeSet::new(),
        }
    }

    fn free(&self) -> Vec<&'a str> {
        self.names
            .iter()
            .copied()
            .filter(|n| !self.used.contains(*n))
            .collect()
    }

    /// The first free column named like `preferred`, now taken.
    fn take(&mut self, preferred: &[&str]) -> Option<String> {
        let found = first_named(&self.free(), preferred)?.to_string();
        self.used.insert(found.clone());
        Some(found)
    }

    /// The first column (free or not) named like `preferred`.
    fn peek(&self, preferred: &[&str]) -> Option<String> {
        first_named(&self.names, preferred).map(str::to_string)
    }

    fn info(&self, name: &str) -> Option<&'a ColumnInfo> {
        self.table.info.column(name)
    }

    fn mark(&mut self, name: &str) {
        self.used.insert(name.to_string());
    }
}

fn field(key: &str, crm: &str, note: impl Into<String>) -> Field {
    Field {
        key: key.to_string(),
        pairs: vec![("crm", Value::Str(crm.to_string()))],
        note: note.into(),
        active: true,
    }
}

impl Field {
    fn with(mut self, key: &'static str, value: Value) -> Self {
        self.pairs.push((key, value));
        self
    }

    fn inactive(mut self) -> Self {
        self.active = false;
        self
    }
}

/// The e164 transform of a phone field: the region from the row's country column when there
/// is one, otherwise numbers must carry their country code.
fn phone_field(column: &str, crm: &str, country: Option<&str>) -> Field {
    match country {
        Some(c) => field(
            column,
            crm,
            format!(
                "`{}` looks like a phone number: sent in E.164, read in the region of each row's `{}` (an ISO code or an English country name); a row without one needs numbers starting with +. A number that is no phone number leaves only this field out (`on_invalid = \"skip_field\"`)",
                in_comment(column),
                in_comment(c)
            ),
        )
        .with(
            "transform",
            raw_list(&[&format!("{{ e164 = {{ region_column = {} }} }}", toml_str(c))]),
        ),
        None => field(
            column,
            crm,
            format!(
                "`{}` looks like a phone number: sent in E.164. No country column was found, so numbers must start with +; write `{{ e164 = \"US\" }}` for numbers of one region. A number that is no phone number leaves only this field out (`on_invalid = \"skip_field\"`)",
                in_comment(column)
            ),
        )
        .with("transform", raw_list(&["e164"])),
    }
    .with("on_invalid", Value::Str("skip_field".into()))
}

fn plain(cols: &mut Columns<'_>, out: &mut Vec<Field>, preferred: &[&str], crm: &str, what: &str) {
    if let Some(c) = cols.take(preferred) {
        out.push(field(
            &c,
            crm,
            format!(
                "`{}` looks like the {what}: HubSpot's `{crm}`",
                in_comment(&c)
            ),
        ));
    }
}

fn address(cols: &mut Columns<'_>, out: &mut Vec<Field>) -> Option<String> {
    let country = cols.take(names::COUNTRY);
    if let Some(c) = &country {
        out.push(field(
            c,
            "country",
            format!(
                "`{}` looks like the country: HubSpot's `country` (free text there)",
                in_comment(c)
            ),
        ));
    }
    plain(cols, out, names::CITY, "city", "city");
    plain(cols, out, names::ZIP, "zip", "postal code");
    country
}

/// Fields of a contact: e-mail (with its confirmation), names, phones, address, company.
/// Returns the fields and whether records can be held (a required, confirmed e-mail).
fn contact_fields(cols: &mut Columns<'_>) -> (Vec<Field>, bool) {
    let mut out = Vec::new();
    let mut holds = false;
    if let Some(email) = cols.take(names::EMAIL) {
        let required = cols.info(&email).is_some_and(|c| !c.nullable);
        let confirmed = cols.take(names::EMAIL_CONFIRMED);
        let mut note = format!(
            "`{}` looks like the e-mail address: trimmed, lower-cased and checked by the `email` rule (an invalid address quarantines the record, listed by `crmsync check`)",
            in_comment(&email)
        );
        if required {
            note.push_str("; required, as the column is NOT NULL");
        }
        let mut f = field(&email, "email", "")
            .with("transform", raw_list(&["trim", "lowercase"]))
            .with(
                "validate",
                if required {
                    raw_list(&["required", "email"])
                } else {
                    Value::Str("email".into())
                },
            );
        if let Some(c) = &confirmed {
            holds = required;
            note.push_str(&format!(
                ". Only confirmed addresses are sent: `{}` must be set ({}); remove `confirmed_by` to send every address",
                in_comment(c),
                if required {
                    "until then the record waits, held"
                } else {
                    "until then the contact goes without its e-mail"
                }
            ));
            f = f.with("confirmed_by", Value::Str(c.clone()));
        }
        f.note = note;
        out.push(f);
    }
    let first = cols.take(names::FIRST_NAME);
    let last = cols.take(names::LAST_NAME);
    for (c, crm, what) in [
        (&first, "firstname", "first name"),
        (&last, "lastname", "last name"),
    ] {
        if let Some(c) = c {
            out.push(field(
                c,
                crm,
                format!(
                    "`{}` looks like the {what}: HubSpot's `{crm}`",
                    in_comment(c)
                ),
            ));
        }
    }
    if first.is_none()
        && last.is_none()
        && let Some(full) = cols.take(names::FULL_NAME)
    {
        out.push(
            field(
                &full,
                "firstname",
                format!(
                    "`{}` looks like a whole name, and HubSpot contacts have `firstname` and `lastname`: uncomment to send it as the first name, or split it in a view",
                    in_comment(&full)
                ),
            )
            .inactive(),
        );
    }
    let country = cols.peek(names::COUNTRY);
    if let Some(p) = cols.take(names::PHONE) {
        out.push(phone_field(&p, "phone", country.as_deref()));
    }
    if let Some(m) = cols.take(names::MOBILE) {
        out.push(phone_field(&m, "mobilephone", country.as_deref()));
    }
    address(cols, &mut out);
    plain(
        cols,
        &mut out,
        names::CONTACT_COMPANY,
        "company",
        "company name",
    );
    (out, holds)
}

fn company_fields(cols: &mut Columns<'_>) -> Vec<Field> {
    let mut out = Vec::new();
    plain(
        cols,
        &mut out,
        names::COMPANY_NAME,
        "name",
        "company's name",
    );
    if let Some(d) = cols.take(names::DOMAIN) {
        out.push(
            field(
                &d,
                "domain",
                format!(
                    "`{}` looks like the company's domain: HubSpot's `domain` (`example.com`, without `https://`), trimmed and lower-cased",
                    in_comment(&d)
                ),
            )
            .with("transform", raw_list(&["trim", "lowercase"])),
        );
    }
    plain(cols, &mut out, names::WEBSITE, "website", "website");
    let country = cols.peek(names::COUNTRY);
    if let Some(p) = cols.take(names::PHONE) {
        out.push(phone_field(&p, "phone", country.as_deref()));
    }
    address(cols, &mut out);
    plain(cols, &mut out, names::INDUSTRY, "industry", "industry");
    out
}

/// A column usable in a `template` placeholder.
fn placeholder_safe(name: &str) -> bool {
    !name.contains(['{', '}'])
}

fn datetime_transform(info: Option<&ColumnInfo>) -> (Value, &'static str) {
    let zoned = info.is_some_and(|c| {
        let t = c.data_type.to_ascii_lowercase();
        t.contains("with time zone") || t == "timestamptz"
    });
    if zoned {
        (
            raw_list(&["{ datetime = [\"iso\", \"%Y-%m-%d %H:%M:%S%.f%#z\"] }"]),
            "its zone is read from the value",
        )
    } else {
        (
            raw_list(&["{ datetime = \"iso\" }"]),
            "a value without a zone is read as UTC (add `utc_offset = \"+01:00\"` to the transform if the app writes local time)",
        )
    }
}

fn cents_field(column: &str, crm: &str) -> Field {
    field(
        column,
        crm,
        format!(
            "`{}` holds cents: divided by 100 into HubSpot's `{crm}` ($1,299.00, not 129900)",
            in_comment(column)
        ),
    )
    .with("transform", Value::Raw(format!("[{CENTS}]")))
}

fn deal_fields(
    cols: &mut Columns<'_>,
    table: &str,
    key: &str,
    trailer: &mut Vec<String>,
) -> Vec<Field> {
    let mut out = Vec::new();
    let title = names::title_of(table);
    if let Some(n) = cols.take(names::DEAL_NAME) {
        out.push(field(
            &n,
            "dealname",
            format!(
                "`{}` looks like the deal's name: HubSpot's `dealname`",
                in_comment(&n)
            ),
        ));
    } else {
        let number = first_named(&cols.free(), names::DEAL_NUMBER)
            .filter(|c| placeholder_safe(c))
            .map(str::to_string);
        let by = number.clone().unwrap_or_else(|| key.to_string());
        if let Some(n) = &number {
            cols.mark(n);
        }
        let template = if placeholder_safe(&by) {
            format!("{} {{{by}}}", title.replace(['{', '}'], ""))
        } else {
            title.clone()
        };
        out.push(
            field(
                "dealname",
                "dealname",
                format!(
                    "no name column: each deal is named after its `{}` (`{}`); change the template to what your team recognises",
                    in_comment(&by),
                    in_comment(&template)
                ),
            )
            .with("template", Value::Str(template)),
        );
    }
    let free = cols.free();
    let amount_cents = first_named(&free, names::DEAL_AMOUNT_CENTS)
        .or_else(|| free.iter().copied().find(|c| names::cents(c)))
        .map(str::to_string);
    if let Some(c) = amount_cents {
        cols.mark(&c);
        out.push(cents_field(&c, "amount"));
    } else if let Some(a) = cols.take(names::DEAL_AMOUNT) {
        out.push(field(
            &a,
            "amount",
            format!(
                "`{}` looks like the amount: HubSpot's `amount`. Check its unit: an amount in cents needs `transform = [{CENTS}]`",
                in_comment(&a)
            ),
        ));
    }
    let other_cents: Vec<&str> = cols
        .free()
        .into_iter()
        .filter(|c| names::cents(c))
        .collect();
    if !other_cents.is_empty() {
        trailer.push(format!(
            "Other amounts in cents, not mapped: {} (a property of your own takes one with `transform = [{CENTS}]`).",
            other_cents
                .iter()
                .map(|c| format!("`{}`", in_comment(c)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(c) = cols.take(names::CLOSE_DATE) {
        let (t, how) = datetime_transform(cols.info(&c));
        out.push(
            field(
                &c,
                "closedate",
                format!(
                    "`{}` looks like the moment the deal closed: HubSpot's `closedate`; {how}",
                    in_comment(&c)
                ),
            )
            .with("transform", t),
        );
    } else if let Some(c) = cols.peek(names::CREATED) {
        let (t, how) = datetime_transform(cols.info(&c));
        out.push(
            field(
                &c,
                "closedate",
                format!(
                    "`{}` as the deal's close date? Uncomment if the record's creation is when the deal closes (an order is won when placed); {how}",
                    in_comment(&c)
                ),
            )
            .with("transform", t)
            .inactive(),
        );
    }
    out.push(
        field(
            "pipeline",
            "pipeline",
            "every deal goes into HubSpot's `default` pipeline, whose stages the status map below (and `crmsync check`) use; name another pipeline's id here to use its stages",
        )
        .with("constant", Value::Str("default".into())),
    );
    out
}

fn product_fields(cols: &mut Columns<'_>) -> Vec<Field> {
    let mut out = Vec::new();
    plain(cols, &mut out, names::LINE_NAME, "name", "product's name");
    plain(
        cols,
        &mut out,
        names::SKU,
        "hs_sku",
        "product's SKU (`hs_sku`)",
    );
    if let Some(c) = cols.take(names::UNIT_PRICE_CENTS) {
        out.push(cents_field(&c, "price"));
    } else if let Some(c) = cols.take(names::UNIT_PRICE) {
        out.push(field(
            &c,
            "price",
            format!(
                "`{}` looks like the product's price: HubSpot's `price`. Check its unit: cents need `transform = [{CENTS}]`",
                in_comment(&c)
            ),
        ));
    }
    out
}

fn line_item_fields(cols: &mut Columns<'_>, key: &str) -> Vec<Field> {
    let mut out = Vec::new();
    if let Some(n) = cols.take(names::LINE_NAME) {
        out.push(field(
            &n,
            "name",
            format!(
                "`{}` looks like the line's name: HubSpot's `name`",
                in_comment(&n)
            ),
        ));
    } else {
        let by = cols
            .peek(&["product_id"])
            .filter(|c| placeholder_safe(c))
            .unwrap_or_else(|| key.to_string());
        let template = if placeholder_safe(&by) {
            format!("Item {{{by}}}")
        } else {
            "Item".to_string()
        };
        out.push(
            field(
                "name",
                "name",
                format!(
                    "no name column: each line item is named after its `{}`; a view joining the product's name reads better",
                    in_comment(&by)
                ),
            )
            .with("template", Value::Str(template)),
        );
    }
    plain(cols, &mut out, names::QUANTITY, "quantity", "quantity");
    if let Some(c) = cols.take(names::UNIT_PRICE_CENTS) {
        out.push(cents_field(&c, "price"));
    } else if let Some(c) = cols.take(names::UNIT_PRICE) {
        out.push(field(
            &c,
            "price",
            format!(
                "`{}` looks like the unit price: HubSpot's `price`. Check its unit: cents need `transform = [{CENTS}]`",
                in_comment(&c)
            ),
        ));
    }
    if let Some(c) = cols.take(names::LINE_AMOUNT_CENTS) {
        out.push(cents_field(&c, "amount"));
    }
    out
}

/// The status column of a deal (by preference of name, then any status-like one, then any
/// column of an enumerated type), with its map skeleton.
fn stage_map(cols: &mut Columns<'_>) -> Option<StageMap> {
    let free = cols.free();
    let table = cols.table;
    let column = first_named(&free, names::STATUS)
        .or_else(|| free.iter().copied().find(|c| names::status_like(c)))
        .or_else(|| {
            free.iter()
                .copied()
                .find(|c| table.declared.contains_key(*c))
        })?
        .to_string();
    cols.mark(&column);
    let sampled = table.values.get(&column).cloned().unwrap_or_default();
    let declared = table.declared.get(&column).cloned().unwrap_or_default();
    let mut values: BTreeSet<String> = sampled.values.iter().cloned().collect();
    values.extend(declared.iter().cloned());
    // An empty value is never mapped (it is not sent), so it needs no line.
    let values: Vec<String> = values.into_iter().filter(|v| !v.is_empty()).collect();
    let mut notes = vec![format!(
        "`{}` looks like a status: mapped to the deal stage. Fill in each \"\" with a stage id of the pipeline (HubSpot's default pipeline: appointmentscheduled, qualifiedtobuy, presentationscheduled, decisionmakerboughtin, contractsent, closedwon, closedlost; `crmsync check` lists the ones your CRM has). Several values may share a stage; a value missing from the map quarantines its record (rule `map`).",
        in_comment(&column)
    )];
    if !declared.is_empty() {
        notes.push(format!(
            "The values are those of the column's type{}.",
            if sampled.values.iter().any(|v| !declared.contains(v)) {
                " and of its rows"
            } else {
                ""
            }
        ));
    } else {
        notes.push("The values are the distinct ones found in the rows.".into());
    }
    if sampled.more {
        notes.push(format!(
            "The column holds more than {} distinct values, so only those are listed: is it a status at all? A value without a mapping quarantines its record.",
            super::schema::MAX_VALUES
        ));
    }
    if values.iter().all(|v| v.parse::<i64>().is_ok()) && !values.is_empty() {
        notes.push(
            "The values are numbers: a Rails `enum` stores its names' positions; the model says what each means.".into(),
        );
    }
    Some(StageMap {
        column,
        values,
        more: sampled.more,
        notes,
    })
}

/// A candidate table: its kind and key, before the syncs are named.
struct Candidate<'a> {
    table: &'a TableSnapshot,
    kind: Kind,
    key: String,
    key_note: Option<String>,
}

/// The key of a table: its single-column primary key, or `id` of a view; a reason otherwise.
fn key_of(t: &TableSnapshot) -> Result<(String, Option<String>), String> {
    let pk: Vec<&ColumnInfo> = t.info.columns.iter().filter(|c| c.primary_key).collect();
    match pk.as_slice() {
        [one] => Ok((one.name.clone(), None)),
        [] if t.info.column("id").is_some() => Ok((
            "id".into(),
            Some(format!(
                "`{}` declares no primary key: `id` is taken as the key, and must be unique (`crmsync check` reports duplicates)",
                in_comment(t.name())
            )),
        )),
        [] => Err("no primary key and no `id` column: a sync needs a unique key column".into()),
        many => Err(format!(
            "its primary key has {} columns ({}); a sync needs one key column (a view with one unique column can serve)",
            many.len(),
            many.iter()
                .map(|c| format!("`{}`", in_comment(&c.name)))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Builds the proposal from the tables read.
pub fn propose(tables: &[TableSnapshot], options: &Options) -> Result<Proposal, NothingToPropose> {
    if tables.is_empty() {
        return Err(NothingToPropose::Empty(options.shown_url.clone()));
    }
    let mut sorted: Vec<&TableSnapshot> = tables.iter().collect();
    sorted.sort_by(|a, b| a.name().cmp(b.name()));
    let mut skipped = Vec::new();
    let mut candidates = Vec::new();
    for t in sorted.iter().copied() {
        if let Some(why) = names::bookkeeping(t.name()) {
            skipped.push((t.name().to_string(), why.to_string()));
            continue;
        }
        let Some(kind) = t.kind() else {
            skipped.push((
                t.name().to_string(),
                "not named like a CRM object".to_string(),
            ));
            continue;
        };
        match key_of(t) {
            Ok((key, key_note)) => candidates.push(Candidate {
                table: t,
                kind,
                key,
                key_note,
            }),
            Err(why) => skipped.push((t.name().to_string(), why)),
        }
    }
    if candidates.is_empty() {
        return Err(NothingToPropose::NoneRecognised {
            url: options.shown_url.clone(),
            tables: sorted
                .iter()
                .map(|t| in_comment(t.name()))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    // Parents first, then by table name.
    candidates.sort_by(|a, b| (a.kind, a.table.name()).cmp(&(b.kind, b.table.name())));
    let mut per_kind: BTreeMap<Kind, usize> = BTreeMap::new();
    for c in &candidates {
        *per_kind.entry(c.kind).or_default() += 1;
    }

    let mut syncs: Vec<SyncPlan> = Vec::new();
    let mut holds: BTreeMap<String, bool> = BTreeMap::new();
    let mut seen_kind: BTreeSet<Kind> = BTreeSet::new();
    let mut taken: Vec<BTreeSet<String>> = Vec::new();
    for c in &candidates {
        let t = c.table;
        let alone = per_kind.get(&c.kind) == Some(&1);
        let name = if alone {
            c.kind.object().to_string()
        } else {
            t.name().to_string()
        };
        let mut cols = Columns::new(t);
        cols.mark(&c.key);
        let mut trailer = Vec::new();
        let mut held = false;
        let mut fields = match c.kind {
            Kind::Contacts => {
                let (f, h) = contact_fields(&mut cols);
                held = h;
                f
            }
            Kind::Companies => company_fields(&mut cols),
            Kind::Deals => deal_fields(&mut cols, t.name(), &c.key, &mut trailer),
            Kind::Products => product_fields(&mut cols),
            Kind::LineItems => line_item_fields(&mut cols, &c.key),
        };
        let stage = if c.kind == Kind::Deals {
            stage_map(&mut cols)
        } else {
            None
        };
        // One CRM property, one field (the loader refuses two).
        let mut props = BTreeSet::new();
        fields.retain(|f| {
            let crm = match &f.pairs[0].1 {
                Value::Str(s) => s.clone(),
                Value::Raw(s) => s.clone(),
            };
            !f.active || props.insert(crm)
        });
        if !fields.iter().any(|f| f.active) && stage.is_none() {
            skipped.push((
                t.name().to_string(),
                format!(
                    "named like {} but no column is recognisable as one of their properties",
                    c.kind.object()
                ),
            ));
            continue;
        }
        let mut notes = vec![format!(
            "`{}` looks like {}, by its name{}.",
            in_comment(t.name()),
            c.kind.object(),
            if t.info.kind == TableKind::View {
                " (a view)"
            } else {
                ""
            }
        )];
        notes.extend(c.key_note.clone());
        let id_property = if seen_kind.insert(c.kind) {
            None
        } else {
            let prop = format!(
                "crmsync_{}_id",
                t.name()
                    .to_ascii_lowercase()
                    .replace(|ch: char| !ch.is_ascii_alphanumeric(), "_")
            );
            Some((
                prop,
                format!(
                    "another sync writes {} too: each needs its own unique id property",
                    c.kind.object()
                ),
            ))
        };
        if c.kind == Kind::Contacts && !alone {
            notes.push("HubSpot keys contacts by e-mail too: a person in two of these tables would be one contact (`crmsync check` warns about shared addresses).".into());
        }
        // Capture.
        let updated = cols.peek(names::UPDATED);
        let (capture, updated_at_column, capture_note) = if t.info.kind == TableKind::View {
            match &updated {
                Some(u) => (
                    "updated_at",
                    Some(u.clone()),
                    format!(
                        "a view carries no triggers: changes are found by `{}` (rows whose timestamp moved)",
                        in_comment(u)
                    ),
                ),
                None => (
                    "scan",
                    None,
                    "a view carries no triggers and this one has no `updated_at`: each pass reads it whole (unchanged rows cost no API call)".into(),
                ),
            }
        } else {
            let mut note = "changes are logged by triggers that `crmsync install` adds (nothing is missed, not even deletions)".to_string();
            if let Some(u) = &updated {
                if cols.info(u).is_some_and(|c| !c.nullable) {
                    note.push_str(&format!(
                        "; without triggers, `capture = \"updated_at\"` with `updated_at_column = \"{}\"` reads rows whose timestamp moved (docs/databases.md says what it needs)",
                        in_comment(u)
                    ));
                } else {
                    note.push_str(&format!(
                        "; `{}` may be NULL, so `capture = \"updated_at\"` would miss such rows",
                        in_comment(u)
                    ));
                }
            }
            ("trigger", None, note)
        };
        // Write-back.
        let write_back = if t.info.kind == TableKind::Table {
            names::crm_id_column(&cols.free(), c.kind)
                .filter(|w| cols.info(w).is_some_and(|i| !i.generated))
                .map(|w| {
                    (
                        w.to_string(),
                        format!(
                            "`{}` looks like a place for the CRM's id: crmsync writes the HubSpot id into it after each sync (remove this line to leave the table as it is)",
                            in_comment(w)
                        ),
                    )
                })
        } else {
            None
        };
        if let Some((w, _)) = &write_back {
            cols.mark(w);
        }
        holds.insert(name.clone(), held);
        let enabled = c.kind != Kind::LineItems || options.line_items;
        syncs.push(SyncPlan {
            name,
            table: t.name().to_string(),
            kind: c.kind,
            key: c.key.clone(),
            notes,
            id_property,
            enabled,
            disabled_note: (!enabled).then(|| {
                "line items were left out of this proposal: the sync is written commented out; remove the leading `# ` of its lines to send them".to_string()
            }),
            capture,
            updated_at_column,
            capture_note,
            write_back,
            associate: Vec::new(),
            fields,
            stage,
            trailer,
        });
        taken.push(cols.used.clone());
    }

    // Associations: from each sync's foreign keys (declared, or by column name) to an active
    // sync of a parent kind.
    let by_table: BTreeMap<String, (String, Kind, String, bool)> = syncs
        .iter()
        .map(|s| {
            (
                s.table.clone(),
                (s.name.clone(), s.kind, s.key.clone(), s.enabled),
            )
        })
        .collect();
    for (i, s) in syncs.iter_mut().enumerate() {
        let Some(t) = tables.iter().find(|t| t.name() == s.table) else {
            continue;
        };
        let mut assoc: BTreeMap<String, Association> = BTreeMap::new();
        let mut not_made: Vec<String> = Vec::new();
        let mut consider = |column: &str,
                            target_table: &str,
                            referenced: Option<&[String]>,
                            declared: bool,
                            not_made: &mut Vec<String>| {
            let Some((target, kind, key, enabled)) = by_table.get(target_table) else {
                if declared {
                    not_made.push(format!(
                        "`{}` references `{}`, which has no sync: no association.",
                        in_comment(column),
                        in_comment(target_table)
                    ));
                }
                return;
            };
            if referenced.is_some_and(|r| r != [key.clone()]) {
                not_made.push(format!(
                    "`{}` references `{}` by another column than its key `{}`: no association.",
                    in_comment(column),
                    in_comment(target_table),
                    in_comment(key)
                ));
                return;
            }
            if kind.rank() >= s.kind.rank() || !enabled {
                not_made.push(format!(
                    "`{}` references `{}` ({}): crmsync associates children to parents ({} here is not a child of {}), so no association.",
                    in_comment(column),
                    in_comment(target_table),
                    kind.object(),
                    s.kind.object(),
                    kind.object()
                ));
                return;
            }
            let optional = holds.get(target).copied().unwrap_or(false);
            let how = if declared {
                "a foreign key".to_string()
            } else {
                "its name (no foreign key is declared)".to_string()
            };
            let note = if optional {
                format!(
                    "`{}` -> `{target}`, by {how}. `{target}` may hold records until their e-mail is confirmed, so the association is optional (`required = false`): each {} is sent without it meanwhile, and associated once its contact syncs",
                    in_comment(column),
                    s.kind.noun()
                )
            } else {
                format!(
                    "`{}` -> `{target}`, by {how}: each record waits until its parent is in the CRM",
                    in_comment(column)
                )
            };
            assoc.entry(column.to_string()).or_insert(Association {
                column: column.to_string(),
                target: target.clone(),
                required: !optional,
                note,
            });
        };
        for fk in &t.foreign_keys {
            match fk.columns.as_slice() {
                [one] => consider(one, &fk.table, Some(&fk.referenced), true, &mut not_made),
                many => not_made.push(format!(
                    "the foreign key ({}) -> `{}` has several columns: no association.",
                    many.iter()
                        .map(|c| format!("`{}`", in_comment(c)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    in_comment(&fk.table)
                )),
            }
        }
        let declared_cols: BTreeSet<&str> = t
            .foreign_keys
            .iter()
            .flat_map(|f| f.columns.iter().map(String::as_str))
            .collect();
        for c in &t.info.columns {
            if declared_cols.contains(c.name.as_str()) || taken[i].contains(&c.name) {
                continue;
            }
            for candidate in names::referenced_by_name(&c.name) {
                if let Some(real) = by_table.keys().find(|k| k.eq_ignore_ascii_case(&candidate)) {
                    let real = real.clone();
                    consider(&c.name, &real, None, false, &mut not_made);
                    break;
                }
            }
        }
        for a in assoc.keys() {
            taken[i].insert(a.clone());
        }
        s.associate = assoc.into_values().collect();
        s.trailer.extend(not_made);
        // What is left unread.
        if let Some(u) = &s.updated_at_column {
            taken[i].insert(u.clone());
        }
        let left: Vec<String> = t
            .info
            .columns
            .iter()
            .filter(|c| !taken[i].contains(&c.name))
            .map(|c| c.name.clone())
            .collect();
        let other_status: Vec<String> = left
            .iter()
            .filter(|c| names::status_like(c) || t.declared.contains_key(*c))
            .map(|c| {
                let mut vals: BTreeSet<String> = t
                    .values
                    .get(c)
                    .map(|d| d.values.iter().cloned().collect())
                    .unwrap_or_default();
                vals.extend(t.declared.get(c).cloned().unwrap_or_default());
                let more = t.values.get(c).is_some_and(|d| d.more);
                format!(
                    "`{}` looks like a status ({}{}): not mapped. A `map` turns it into an enumeration's options, e.g. HubSpot's `lifecyclestage` or `hs_lead_status` (docs/mapping.md, \"Status maps\").",
                    in_comment(c),
                    if vals.is_empty() {
                        "no values yet".to_string()
                    } else {
                        vals.iter()
                            .map(|v| format!("`{}`", in_comment(v)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                    if more { ", and more" } else { "" }
                )
            })
            .collect();
        s.trailer.extend(other_status);
        if !left.is_empty() {
            s.trailer.push(format!(
                "Not mapped: {}.",
                left.iter()
                    .map(|c| format!("`{}`", in_comment(c)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(Proposal {
        source: options.source.clone(),
        shown_url: options.shown_url.clone(),
        tables_read: tables.len(),
        syncs,
        skipped,
    })
}
