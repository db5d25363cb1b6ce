//! The commented config `crmsync demo` writes next to the generated database.

/// Where a database of the demo is: a URL written into the config, or the environment
/// variable that holds it (a URL with a password never goes into the file).
pub enum DbLine {
    Url(String),
    Env(&'static str),
}

impl DbLine {
    fn toml(&self) -> String {
        match self {
            DbLine::Url(u) => format!("url = \"{}\"", u.replace('\\', "\\\\").replace('"', "\\\"")),
            DbLine::Env(var) => format!("url_env = \"{var}\""),
        }
    }
}

/// The demo's `crmsync.toml`, pointing at `base_url`, the app database `source` and the state
/// database `state`.
pub fn render(base_url: &str, source: &DbLine, state: &DbLine) -> String {
    let source = source.toml();
    let state = state.toml();
    format!(
        r#"# crmsync config written by `crmsync demo` for its sample robot order system.
# Every key is explained in docs/config-reference.toml. Paths are relative to this file.
# Run it again with:  crmsync sync --once --config <this file>
# Or keep both sides in sync:  crmsync run --config <this file>  (edit a company name or a
# contact in the CRM and watch it arrive in orders.db; see docs/two-way.md)

# The app database: customers (a company and its contact person each) and their orders.
[source]
{source}

# crmsync's own state: which record is which in the CRM, the queue, the call log. SQLite serves
# one worker; with PostgreSQL any number of `crmsync run` processes share the work.
[state]
{state}

[crm]
kind = "hubspot"
environment = "sandbox"
# The local HubSpot sandbox; start one with `crmsync sandbox --port 4010`.
base_url = "{base_url}"
# The token is read from this environment variable, never from this file. The sandbox accepts
# any non-empty token unless started with --token.
token_env = "HUBSPOT_ACCESS_TOKEN"
# HubSpot Free/Starter: 100 requests per 10 seconds, 250,000 per day.
requests_per_interval = 100
interval_ms = 10000
daily_limit = 250000
daily_budget_share = 0.8

# `crmsync run`: poll the CRM for changes (and push app changes) every 3 seconds; look at the
# CRM's archived (deleted) records every minute; read every linked record back once every six
# hours to repair what was missed (the drift). More than a tenth of the records deleted in the
# CRM within an hour is held for a person (`crmsync deletions`).
[run]
poll_interval_ms = 3000
archive_check_interval_ms = 60000
reconcile_interval_ms = 21600000
max_delete_share = 0.1

# HubSpot webhooks bring CRM edits in well under a second. They need a URL HubSpot can reach
# and the app's client secret (in the environment, never here). Uncomment to receive them:
# [webhooks]
# listen = "127.0.0.1:8080"
# url = "https://hooks.example.com/hubspot/webhooks"
# secret_env = "HUBSPOT_CLIENT_SECRET"

# Each customer's company -> a HubSpot company. Synced first: contacts and deals point at it.
[[sync]]
name = "companies"
table = "customers"
object = "companies"
# A unique HubSpot property holding our customer id: every write is an upsert by it.
id_property = "crmsync_customer_id"
capture = "trigger"
# The HubSpot company id is written back into the order system.
write_back_column = "hubspot_company_id"
# A company deleted in HubSpot: the customer row gets the deletion time here and is no longer
# pushed (never deleted from the order system); `on_crm_delete = "unlink"` would recreate it.
on_crm_delete = "flag"
crm_deleted_column = "crm_deleted_at"
[sync.fields]
# `direction = "both"`: an edit of the name in HubSpot flows back into the order system; when
# both sides changed it since they last agreed, the CRM's value wins (`conflict`).
company_name = {{ crm = "name", transform = ["trim", "collapse_whitespace"], validate = "required", direction = "both", conflict = "crm_wins" }}
# Phone numbers in E.164 (+4930...); a number without a country code would be read as German.
phone = {{ crm = "phone", transform = [{{ e164 = "DE" }}] }}
city = {{ crm = "city" }}
country = {{ crm = "country" }}

# Each customer's contact person -> a HubSpot contact, associated to the company.
[[sync]]
name = "contacts"
table = "customers"
object = "contacts"
id_property = "crmsync_customer_id"
capture = "trigger"
associate = {{ id = "companies" }}
[sync.fields]
# Only valid, confirmed addresses are sent; invalid ones are quarantined with the reason,
# unconfirmed ones wait until `email_confirmed_at` is set.
email = {{ crm = "email", transform = ["trim", "lowercase"], validate = ["required", "email"], confirmed_by = "email_confirmed_at", direction = "both" }}
# The contact person's name, e-mail and phone flow both ways (the company's phone above is
# push-only, so only one sync writes the `phone` column).
contact_first_name = {{ crm = "firstname", direction = "both" }}
contact_last_name = {{ crm = "lastname", direction = "both" }}
phone = {{ crm = "phone", transform = [{{ e164 = "DE" }}], direction = "both" }}

# Each order -> a HubSpot deal in the default pipeline, associated to the customer's company.
[[sync]]
name = "deals"
table = "orders"
object = "deals"
id_property = "crmsync_order_id"
capture = "trigger"
associate = {{ customer_id = "companies" }}
[sync.fields]
title = {{ crm = "dealname", validate = "required" }}
amount = {{ crm = "amount" }}
ordered_at = {{ crm = "closedate", transform = [{{ datetime = "iso" }}] }}
# Order status -> deal stage of HubSpot's default pipeline (push-only: the order system owns it).
status = {{ crm = "dealstage", map = {{ new = "appointmentscheduled", paid = "contractsent", shipped = "closedwon", cancelled = "closedlost" }} }}
"#
    )
}

/// The demo's `crmsync.toml` for Salesforce (`crmsync demo --crm salesforce`): the same order
/// system into Accounts, Contacts and Opportunities of the org at `login_url`.
pub fn render_salesforce(login_url: &str, source: &DbLine, state: &DbLine) -> String {
    let source = source.toml();
    let state = state.toml();
    format!(
        r#"# crmsync config written by `crmsync demo --crm salesforce` for its sample robot order system.
# Every key is explained in docs/config-reference.toml and docs/salesforce.md. Paths are
# relative to this file. Run it again with:  crmsync sync --once --config <this file>
# Or keep both sides in sync:  crmsync run --config <this file>  (see docs/two-way.md)

# The app database: customers (a company and its contact person each) and their orders.
[source]
{source}

# crmsync's own state: which record is which in the CRM, the queue, the call log.
[state]
{state}

[crm]
kind = "salesforce"
environment = "sandbox"
# The OAuth host; start the local org with `crmsync sandbox --flavour salesforce --port 4010`.
# A real org: https://login.salesforce.com (or https://test.salesforce.com for a sandbox org).
login_url = "{login_url}"
auth = "refresh_token"
# The connected app's consumer key; the secret and the refresh token come from the environment,
# never from this file (`crmsync sandbox --flavour salesforce` prints the local org's).
client_id = "crmsync-sandbox"
client_secret_env = "SALESFORCE_CLIENT_SECRET"
refresh_token_env = "SALESFORCE_REFRESH_TOKEN"
# Salesforce counts requests over a rolling 24 hours (Enterprise: 100,000 and more per licence).
daily_limit = 100000
daily_budget_share = 0.8

# `crmsync run`: poll the org for changes (SOQL on SystemModstamp) every 3 seconds; look for
# deleted records (queryAll) every minute; read every linked record back every six hours.
[run]
poll_interval_ms = 3000
archive_check_interval_ms = 60000
reconcile_interval_ms = 21600000
max_delete_share = 0.1

# Each customer's company -> an Account. Synced first: contacts and opportunities point at it.
[[sync]]
name = "companies"
table = "customers"
object = "companies"
# An External ID field (unique) holding our customer id: every write is an upsert by it. The
# first sync creates it through the Tooling API when the org does not have it.
id_property = "crmsync_id__c"
capture = "trigger"
write_back_column = "hubspot_company_id"
on_crm_delete = "flag"
crm_deleted_column = "crm_deleted_at"
[sync.fields]
company_name = {{ crm = "Name", transform = ["trim", "collapse_whitespace"], validate = "required", direction = "both", conflict = "crm_wins" }}
phone = {{ crm = "Phone", transform = [{{ e164 = "DE" }}] }}
city = {{ crm = "BillingCity" }}
country = {{ crm = "BillingCountry" }}

# Each customer's contact person -> a Contact; its AccountId rides in the same write.
[[sync]]
name = "contacts"
table = "customers"
object = "contacts"
id_property = "crmsync_id__c"
capture = "trigger"
associate = {{ id = "companies" }}
[sync.fields]
email = {{ crm = "Email", transform = ["trim", "lowercase"], validate = ["required", "email"], confirmed_by = "email_confirmed_at", direction = "both" }}
contact_first_name = {{ crm = "FirstName", direction = "both" }}
# Salesforce requires a last name on every Contact.
contact_last_name = {{ crm = "LastName", validate = "required", direction = "both" }}
phone = {{ crm = "Phone", transform = [{{ e164 = "DE" }}], direction = "both" }}

# Each order -> an Opportunity of the customer's Account.
[[sync]]
name = "deals"
table = "orders"
object = "deals"
id_property = "crmsync_id__c"
capture = "trigger"
associate = {{ customer_id = "companies" }}
[sync.fields]
title = {{ crm = "Name", validate = "required" }}
amount = {{ crm = "Amount" }}
ordered_at = {{ crm = "CloseDate", transform = [{{ date = "iso" }}] }}
# Order status -> the StageName picklist (push-only: the order system owns it).
status = {{ crm = "StageName", map = {{ new = "Prospecting", paid = "Negotiation/Review", shipped = "Closed Won", cancelled = "Closed Lost" }} }}
"#
    )
}
