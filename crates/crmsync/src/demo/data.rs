//! Generating the sample order system: `customers` (a company and its contact person each) and
//! `orders` (robots sold to them). Deterministic for a given seed, so demo runs are comparable.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{ConnectOptions, Connection};
use std::collections::HashSet;
use std::path::Path;

/// What was generated, for the demo's summary.
#[derive(Debug, Clone, Default)]
pub struct Generated {
    pub customers: u64,
    pub orders: u64,
    pub invalid_emails: u64,
    pub unconfirmed_emails: u64,
}

const PREFIXES: [&str; 20] = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Cyberdyne",
    "Tyrell",
    "Soylent",
    "Hooli",
    "Vandelay",
    "Wonka",
    "Aperture",
    "Nakatomi",
    "Oscorp",
    "Massive",
    "Pied Piper",
    "Dunder",
    "Gekko",
    "Sirius",
];
const TRADES: [&str; 10] = [
    "Robotics",
    "Automation",
    "Logistics",
    "Manufacturing",
    "Foods",
    "Motors",
    "Labs",
    "Industries",
    "Warehousing",
    "Systems",
];
const FORMS: [&str; 7] = ["GmbH", "Inc.", "Ltd", "AG", "BV", "SA", "LLC"];
const CITIES: [(&str, &str, &str); 10] = [
    ("Berlin", "Germany", "+49 30"),
    ("Munich", "Germany", "+49 89"),
    ("Vienna", "Austria", "+43 1"),
    ("Zurich", "Switzerland", "+41 44"),
    ("Amsterdam", "Netherlands", "+31 20"),
    ("Lyon", "France", "+33 4"),
    ("Boston", "United States", "+1 617"),
    ("Austin", "United States", "+1 512"),
    ("Manchester", "United Kingdom", "+44 161"),
    ("Turin", "Italy", "+39 011"),
];
const FIRST: [&str; 20] = [
    "Ada",
    "Grace",
    "Alan",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Ken",
    "Radia",
    "Edsger",
    "Frances",
    "Donald",
    "Hedy",
    "Tim",
    "Katherine",
    "John",
    "Sophie",
    "Niklaus",
    "Karen",
    "Bjarne",
];
const LAST: [&str; 20] = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Torvalds",
    "Hamilton",
    "Ritchie",
    "Liskov",
    "Thompson",
    "Perlman",
    "Dijkstra",
    "Allen",
    "Knuth",
    "Lamarr",
    "Berners-Lee",
    "Johnson",
    "McCarthy",
    "Wilson",
    "Wirth",
    "Jones",
    "Stroustrup",
];
/// Robot models and their unit prices.
const MODELS: [(&str, u32); 6] = [
    ("Atlas A2 welding arm", 48_500),
    ("Kestrel K1 pick-and-place", 12_900),
    ("Mule M4 AGV", 31_000),
    ("Heron H7 inspection drone", 8_750),
    ("Titan T9 palletizer", 96_000),
    ("Otter O3 cleaning robot", 4_200),
];

fn slug(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_lowercase()
}

/// Writes `orders.db` at `path` with `customers` and `orders` rows.
pub async fn generate(
    path: &Path,
    customers: u64,
    orders: u64,
    seed: u64,
) -> Result<Generated, sqlx::Error> {
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .connect()
        .await?;
    sqlx::query(
        "CREATE TABLE customers (
            id INTEGER PRIMARY KEY,
            company_name TEXT NOT NULL,
            contact_first_name TEXT,
            contact_last_name TEXT,
            email TEXT,
            email_confirmed_at TEXT,
            phone TEXT,
            city TEXT,
            country TEXT,
            hubspot_company_id TEXT,
            crm_deleted_at TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL)",
    )
    .execute(&mut conn)
    .await?;
    sqlx::query(
        "CREATE TABLE orders (
            id INTEGER PRIMARY KEY,
            customer_id INTEGER NOT NULL REFERENCES customers (id),
            title TEXT NOT NULL,
            robot_model TEXT NOT NULL,
            quantity INTEGER NOT NULL,
            amount TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('new', 'paid', 'shipped', 'cancelled')),
            ordered_at TEXT NOT NULL,
            updated_at TEXT NOT NULL)",
    )
    .execute(&mut conn)
    .await?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut g = Generated {
        customers,
        orders,
        ..Default::default()
    };
    let mut emails = HashSet::new();
    let mut tx = conn.begin().await?;
    for id in 1..=customers {
        let prefix = PREFIXES.choose(&mut rng).copied().unwrap_or("Acme");
        let trade = TRADES.choose(&mut rng).copied().unwrap_or("Robotics");
        let form = FORMS.choose(&mut rng).copied().unwrap_or("Inc.");
        let (city, country, dial) = CITIES.choose(&mut rng).copied().unwrap_or(CITIES[0]);
        let first = FIRST.choose(&mut rng).copied().unwrap_or("Ada");
        let last = LAST.choose(&mut rng).copied().unwrap_or("Lovelace");
        let company = format!("{prefix} {trade} {city} {form}");
        let domain = format!("{}{}.com", slug(prefix), slug(trade));
        let mut local = format!("{}.{}", slug(first), slug(last));
        if !emails.insert(format!("{local}@{domain}")) {
            local = format!("{local}{id}");
            emails.insert(format!("{local}@{domain}"));
        }
        // About 1% of addresses are broken in the ways people break them.
        let email = if id % 100 == 37 {
            g.invalid_emails += 1;
            match (id / 100) % 4 {
                0 => format!("{local}@{}", slug(prefix)),
                1 => format!("{} {}@{domain}", first, last),
                2 => format!("{local}.{domain}"),
                _ => format!("{local}@@{domain}"),
            }
        } else if rng.random_bool(0.02) {
            // A few typed with stray spaces and capitals: the mapping's transforms fix those.
            format!("  {}@{}  ", local.to_uppercase(), domain)
        } else {
            format!("{local}@{domain}")
        };
        let created = format!(
            "2025-{:02}-{:02}T{:02}:{:02}:00.000Z",
            rng.random_range(1..=12),
            rng.random_range(1..=28),
            rng.random_range(8..18),
            rng.random_range(0..60)
        );
        let confirmed = if rng.random_bool(0.06) {
            g.unconfirmed_emails += 1;
            None
        } else {
            Some(created.clone())
        };
        let phone = format!("{dial} {}", rng.random_range(1_000_000..9_999_999));
        sqlx::query(
            "INSERT INTO customers (id, company_name, contact_first_name, contact_last_name, email, email_confirmed_at, phone, city, country, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id as i64)
        .bind(company)
        .bind(first)
        .bind(last)
        .bind(email)
        .bind(confirmed)
        .bind(phone)
        .bind(city)
        .bind(country)
        .bind(&created)
        .bind(&created)
        .execute(&mut *tx)
        .await?;
    }
    for id in 1..=orders {
        let customer = rng.random_range(1..=customers.max(1)) as i64;
        let (model, price) = MODELS.choose(&mut rng).copied().unwrap_or(MODELS[0]);
        let qty: u32 = rng.random_range(1..=5);
        let status = match rng.random_range(0..100) {
            0..25 => "new",
            25..55 => "paid",
            55..90 => "shipped",
            _ => "cancelled",
        };
        let ordered = format!(
            "2026-{:02}-{:02}T{:02}:{:02}:00.000Z",
            rng.random_range(1..=10),
            rng.random_range(1..=28),
            rng.random_range(8..18),
            rng.random_range(0..60)
        );
        sqlx::query(
            "INSERT INTO orders (id, customer_id, title, robot_model, quantity, amount, status, ordered_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id as i64)
        .bind(customer)
        .bind(format!("Order #{id}: {qty}x {model}"))
        .bind(model)
        .bind(qty as i64)
        .bind(format!("{}.00", u64::from(price) * u64::from(qty)))
        .bind(status)
        .bind(&ordered)
        .bind(&ordered)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    conn.close().await?;
    Ok(g)
}
