//! The naming rules `crmsync init` guesses with: which table names mean which CRM object,
//! and which column names mean an e-mail address, a phone number, a name, an amount in cents,
//! a status, a timestamp. Pure and case-insensitive; every rule is a list here, so what
//! `init` recognises is read in one place (and documented in docs/getting-started.md).

/// The CRM object a table is proposed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Companies,
    Contacts,
    Deals,
    Products,
    LineItems,
}

impl Kind {
    /// The `object` value in the config.
    pub fn object(self) -> &'static str {
        match self {
            Kind::Companies => "companies",
            Kind::Contacts => "contacts",
            Kind::Deals => "deals",
            Kind::Products => "products",
            Kind::LineItems => "line_items",
        }
    }

    /// One record of the kind, for messages.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Companies => "company",
            Kind::Contacts => "contact",
            Kind::Deals => "deal",
            Kind::Products => "product",
            Kind::LineItems => "line item",
        }
    }

    /// Parents come first: an association goes from a later kind to an earlier one
    /// (contacts -> companies, deals -> contacts and companies, line items -> deals and
    /// products), the way
    /// crmsync sends parents before their children.
    pub fn rank(self) -> u8 {
        match self {
            Kind::Companies => 0,
            Kind::Contacts => 1,
            Kind::Deals => 2,
            Kind::Products => 3,
            Kind::LineItems => 4,
        }
    }
}

const CONTACT_TABLES: &[&str] = &[
    "users",
    "user",
    "customers",
    "customer",
    "people",
    "person",
    "persons",
    "contacts",
    "contact",
    "members",
    "member",
];
const COMPANY_TABLES: &[&str] = &[
    "accounts",
    "account",
    "companies",
    "company",
    "organizations",
    "organization",
    "organisations",
    "organisation",
    "businesses",
    "business",
];
const DEAL_TABLES: &[&str] = &[
    "orders",
    "order",
    "deals",
    "deal",
    "opportunities",
    "opportunity",
];
const PRODUCT_TABLES: &[&str] = &["products", "product", "items", "item", "articles", "skus"];
const LINE_ITEM_TABLES: &[&str] = &[
    "order_lines",
    "order_line",
    "order_items",
    "order_item",
    "line_items",
    "line_item",
];

/// The object a table named `table` is proposed as, if its name says so.
pub fn kind_of_table(table: &str) -> Option<Kind> {
    let t = table.to_ascii_lowercase();
    let t = t.as_str();
    [
        (CONTACT_TABLES, Kind::Contacts),
        (COMPANY_TABLES, Kind::Companies),
        (DEAL_TABLES, Kind::Deals),
        (PRODUCT_TABLES, Kind::Products),
        (LINE_ITEM_TABLES, Kind::LineItems),
    ]
    .into_iter()
    .find(|(names, _)| names.contains(&t))
    .map(|(_, k)| k)
}

/// Tables that are an application framework's or crmsync's bookkeeping, never data.
pub fn bookkeeping(table: &str) -> Option<&'static str> {
    match table.to_ascii_lowercase().as_str() {
        "schema_migrations" | "ar_internal_metadata" => Some("Rails bookkeeping"),
        "_sqlx_migrations"
        | "__diesel_schema_migrations"
        | "knex_migrations"
        | "flyway_schema_history"
        | "django_migrations" => Some("migration bookkeeping"),
        _ => None,
    }
}

/// The first of `columns` (in the order of `preferred`) whose lower-cased name is in
/// `preferred`.
pub fn first_named<'a>(columns: &[&'a str], preferred: &[&str]) -> Option<&'a str> {
    preferred
        .iter()
        .find_map(|p| columns.iter().copied().find(|c| c.eq_ignore_ascii_case(p)))
}

pub const EMAIL: &[&str] = &[
    "email",
    "email_address",
    "e_mail",
    "mail",
    "primary_email",
    "contact_email",
];
/// Timestamps saying an address was confirmed (`confirmed_by` needs a column that is empty
/// until then; a boolean `false` is not empty, so only `*_at` names qualify).
pub const EMAIL_CONFIRMED: &[&str] = &[
    "email_verified_at",
    "email_confirmed_at",
    "confirmed_at",
    "verified_at",
];
pub const FIRST_NAME: &[&str] = &["first_name", "firstname", "given_name", "forename"];
pub const LAST_NAME: &[&str] = &["last_name", "lastname", "surname", "family_name"];
pub const FULL_NAME: &[&str] = &["name", "full_name", "fullname", "display_name"];
pub const COMPANY_NAME: &[&str] = &[
    "name",
    "company_name",
    "legal_name",
    "business_name",
    "display_name",
    "title",
];
pub const CONTACT_COMPANY: &[&str] = &["company", "company_name", "organization"];
pub const PHONE: &[&str] = &["phone", "phone_number", "telephone", "tel", "work_phone"];
pub const MOBILE: &[&str] = &[
    "mobile",
    "mobile_phone",
    "mobile_number",
    "mobilephone",
    "cell",
    "cell_phone",
];
pub const COUNTRY: &[&str] = &["country", "country_code", "country_iso", "country_name"];
pub const CITY: &[&str] = &["city", "town"];
pub const ZIP: &[&str] = &["zip", "zip_code", "postal_code", "postcode"];
pub const DOMAIN: &[&str] = &["domain", "domain_name", "email_domain"];
pub const WEBSITE: &[&str] = &["website", "website_url", "homepage", "url", "web"];
pub const INDUSTRY: &[&str] = &["industry"];
pub const DEAL_NAME: &[&str] = &["name", "title", "deal_name"];
/// Order numbers shown to people: the deal is named after one of these when there is no name.
pub const DEAL_NUMBER: &[&str] = &["number", "order_number", "reference", "code"];
pub const DEAL_AMOUNT_CENTS: &[&str] = &[
    "total_cents",
    "amount_cents",
    "grand_total_cents",
    "total_price_cents",
    "price_cents",
    "subtotal_cents",
];
pub const DEAL_AMOUNT: &[&str] = &[
    "amount",
    "total",
    "grand_total",
    "total_amount",
    "total_price",
    "value",
];
/// The moment a deal closes, in order of preference; `created_at` is only suggested.
pub const CLOSE_DATE: &[&str] = &[
    "closed_at",
    "close_date",
    "closedate",
    "ordered_at",
    "placed_at",
    "order_date",
    "purchased_at",
    "completed_at",
];
pub const CREATED: &[&str] = &["created_at", "created", "inserted_at"];
pub const UPDATED: &[&str] = &["updated_at", "modified_at", "updated", "last_modified"];
/// Status-like columns, in order of preference for a deal's stage.
pub const STATUS: &[&str] = &[
    "stage",
    "deal_stage",
    "status",
    "state",
    "order_status",
    "order_state",
];
pub const LINE_NAME: &[&str] = &["name", "title", "product_name", "description", "sku"];
/// A product's stock-keeping unit (HubSpot's `hs_sku`).
pub const SKU: &[&str] = &["sku", "product_code", "article_number", "code"];
pub const QUANTITY: &[&str] = &["quantity", "qty", "count"];
pub const UNIT_PRICE_CENTS: &[&str] = &["unit_price_cents", "price_cents", "unit_cents"];
pub const UNIT_PRICE: &[&str] = &["unit_price", "price"];
pub const LINE_AMOUNT_CENTS: &[&str] = &["total_cents", "amount_cents", "line_total_cents"];

/// Whether a column named `name` looks like it holds a status (`status`, `state`, `stage`,
/// `*_status`, `*_state`, `*_stage`). Columns of an enumerated type count too (the caller
/// knows those).
pub fn status_like(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    STATUS.contains(&n.as_str())
        || ["_status", "_state", "_stage"]
            .iter()
            .any(|s| n.ends_with(s) && n.len() > s.len())
}

/// Whether a column named `name` holds an amount in cents (`*_cents`).
pub fn cents(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.ends_with("_cents") && n.len() > "_cents".len()
}

/// Columns that hold the CRM's id of the row, for `write_back_column`, for a table proposed
/// as `kind` (`hubspot_id`, `hubspot_contact_id`, ...).
pub fn crm_id_column<'a>(columns: &[&'a str], kind: Kind) -> Option<&'a str> {
    let own = match kind {
        Kind::Companies => "hubspot_company_id",
        Kind::Contacts => "hubspot_contact_id",
        Kind::Deals => "hubspot_deal_id",
        Kind::Products => "hubspot_product_id",
        Kind::LineItems => "hubspot_line_item_id",
    };
    first_named(
        columns,
        &[
            own,
            "hubspot_id",
            "hubspot_object_id",
            "hs_object_id",
            "crm_id",
        ],
    )
}

/// The table names a foreign-key-like column `name` (`user_id`, `account_id`) may point at,
/// by the usual plural forms: `user_id` -> `users`, `user`; `company_id` -> `companies`;
/// `person_id` -> `people`. Empty when the name does not end in `_id`.
pub fn referenced_by_name(name: &str) -> Vec<String> {
    let n = name.to_ascii_lowercase();
    let Some(stem) = n.strip_suffix("_id").filter(|s| !s.is_empty()) else {
        return Vec::new();
    };
    let mut out = vec![format!("{stem}s"), stem.to_string(), format!("{stem}es")];
    if let Some(base) = stem.strip_suffix('y') {
        out.push(format!("{base}ies"));
    }
    if stem == "person" {
        out.push("people".into());
    }
    out
}

/// The singular of a table name for a deal's title (`orders` -> `Order`,
/// `opportunities` -> `Opportunity`).
pub fn title_of(table: &str) -> String {
    let t = table.to_ascii_lowercase();
    let singular = if let Some(b) = t.strip_suffix("ies") {
        format!("{b}y")
    } else if let Some(b) = t.strip_suffix('s') {
        b.to_string()
    } else {
        t
    };
    let mut chars = singular.chars();
    match chars.next() {
        Some(c) => c
            .to_uppercase()
            .chain(chars)
            .collect::<String>()
            .replace('_', " "),
        None => "Record".into(),
    }
}

/// A guess at the deal stage of HubSpot's default pipeline an order status means, as a
/// hint in a comment (the proposal never fills a stage in by itself).
pub fn stage_hint(value: &str) -> Option<&'static str> {
    let v = value.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| v.contains(w));
    if has(&[
        "cancel", "refund", "lost", "reject", "fail", "void", "declin", "abandon",
    ]) {
        Some("closedlost")
    } else if has(&[
        "paid", "ship", "deliver", "complete", "won", "fulfil", "done", "closed",
    ]) {
        Some("closedwon")
    } else if has(&["new", "pending", "open", "draft", "cart", "created"]) {
        Some("appointmentscheduled")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_recognised_by_name() {
        assert_eq!(kind_of_table("Users"), Some(Kind::Contacts));
        assert_eq!(kind_of_table("organisations"), Some(Kind::Companies));
        assert_eq!(kind_of_table("opportunities"), Some(Kind::Deals));
        assert_eq!(kind_of_table("order_lines"), Some(Kind::LineItems));
        assert_eq!(kind_of_table("products"), Some(Kind::Products));
        assert_eq!(bookkeeping("schema_migrations"), Some("Rails bookkeeping"));
    }

    #[test]
    fn columns_are_recognised_by_name() {
        assert!(status_like("state") && status_like("payment_status") && status_like("Stage"));
        assert!(!status_like("_status") && !status_like("statement") && !status_like("estate"));
        assert!(cents("total_cents") && !cents("_cents") && !cents("cents"));
        assert_eq!(
            first_named(&["id", "Email", "email_address"], EMAIL),
            Some("Email")
        );
        assert_eq!(
            crm_id_column(&["id", "hubspot_id"], Kind::Contacts),
            Some("hubspot_id")
        );
        let company = referenced_by_name("company_id");
        assert!(company.contains(&"companies".to_string()), "{company:?}");
        assert!(company.contains(&"company".to_string()), "{company:?}");
        assert_eq!(referenced_by_name("user_id")[0], "users");
        assert!(referenced_by_name("person_id").contains(&"people".to_string()));
        assert!(referenced_by_name("id").is_empty());
        assert_eq!(title_of("orders"), "Order");
        assert_eq!(title_of("opportunities"), "Opportunity");
        assert_eq!(stage_hint("Cancelled"), Some("closedlost"));
        assert_eq!(stage_hint("shipped"), Some("closedwon"));
        assert_eq!(stage_hint("pending"), Some("appointmentscheduled"));
        assert_eq!(stage_hint("on_hold"), None);
    }
}
