//! Generating the sample order system: `customers` (a company and its contact person each) and
//! `orders` (robots sold to them), written into a SQLite file, a PostgreSQL or a MySQL database.
//! Deterministic for a given seed, so demo runs are comparable. This is the demo's own fixture,
//! not crmsync's: it writes through sqlx's `Any` driver with a few lines of DDL per database.

use crmsync_store::Backend;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use sqlx::{AnyConnection, Connection};
use std::collections::HashSet;

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

/// Rows per INSERT statement (well under every database's parameter limit at 11 per row).
const ROWS_PER_INSERT: usize = 200;

/// One generated customer.
struct Customer {
    id: i64,
    company: String,
    first: &'static str,
    last: &'static str,
    email: String,
    confirmed: Option<String>,
    phone: String,
    city: &'static str,
    country: &'static str,
    created: String,
}

/// One generated order.
struct Order {
    id: i64,
    customer: i64,
    title: String,
    model: &'static str,
    quantity: i64,
    amount: String,
    status: &'static str,
    ordered: String,
}

/// Why the demo database could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DemoDataError {
    #[error("{0}")]
    Exists(String),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error(transparent)]
    Store(#[from] crmsync_store::StoreError),
}

fn ddl(backend: Backend) -> [&'static str; 2] {
    match backend {
        Backend::Mysql => [
            "CREATE TABLE customers (
                id BIGINT PRIMARY KEY,
                company_name VARCHAR(255) NOT NULL,
                contact_first_name VARCHAR(255),
                contact_last_name VARCHAR(255),
                email VARCHAR(255),
                email_confirmed_at VARCHAR(40),
                phone VARCHAR(64),
                city VARCHAR(255),
                country VARCHAR(255),
                hubspot_company_id VARCHAR(64),
                crm_deleted_at VARCHAR(40),
                created_at VARCHAR(40) NOT NULL,
                updated_at VARCHAR(40) NOT NULL) CHARACTER SET utf8mb4",
            "CREATE TABLE orders (
                id BIGINT PRIMARY KEY,
                customer_id BIGINT NOT NULL,
                title VARCHAR(255) NOT NULL,
                robot_model VARCHAR(255) NOT NULL,
                quantity BIGINT NOT NULL,
                amount VARCHAR(40) NOT NULL,
                status VARCHAR(20) NOT NULL,
                ordered_at VARCHAR(40) NOT NULL,
                updated_at VARCHAR(40) NOT NULL,
                FOREIGN KEY (customer_id) REFERENCES customers (id),
                CHECK (status IN ('new', 'paid', 'shipped', 'cancelled'))) CHARACTER SET utf8mb4",
        ],
        // SQLite and PostgreSQL read the same DDL (INTEGER keys; PostgreSQL's are 4-byte,
        // plenty for a demo).
        _ => [
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
        ],
    }
}

/// `n` rows of `width` placeholders in the database's spelling.
fn placeholders(backend: Backend, rows: usize, width: usize) -> String {
    let mut n = 0;
    (0..rows)
        .map(|_| {
            let row: Vec<String> = (0..width)
                .map(|_| {
                    n += 1;
                    match backend {
                        Backend::Postgres => format!("${n}"),
                        _ => "?".to_string(),
                    }
                })
                .collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes the demo's `customers` and `orders` into the database at `url` (a SQLite file is
/// created; a PostgreSQL or MySQL database must exist and must not hold those tables yet).
pub async fn generate(
    url: &str,
    customers: u64,
    orders: u64,
    seed: u64,
) -> Result<Generated, DemoDataError> {
    sqlx::any::install_default_drivers();
    let backend = Backend::from_url(url)?;
    let connect_url = match backend {
        Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
        Backend::Mysql => url.replacen("mariadb://", "mysql://", 1),
        _ => url.to_string(),
    };
    let mut conn = AnyConnection::connect(&connect_url).await?;
    if sqlx::query("SELECT 1 FROM customers LIMIT 1")
        .fetch_optional(&mut conn)
        .await
        .is_ok()
    {
        return Err(DemoDataError::Exists(format!(
            "{} already has a `customers` table; the demo writes its own order system into an empty database (drop its `customers` and `orders`, or choose another database)",
            crmsync_store::backend::redact_url(url)
        )));
    }
    if backend == Backend::Sqlite {
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&mut conn)
            .await?;
    }
    for statement in ddl(backend) {
        sqlx::query(statement).execute(&mut conn).await?;
    }
    let (g, rows, order_rows) = rows(customers, orders, seed);
    let mut tx = conn.begin().await?;
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let q = format!(
            "INSERT INTO customers (id, company_name, contact_first_name, contact_last_name, email, email_confirmed_at, phone, city, country, created_at, updated_at) VALUES {}",
            placeholders(backend, chunk.len(), 11)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(q));
        for c in chunk {
            query = query
                .bind(c.id)
                .bind(c.company.clone())
                .bind(c.first)
                .bind(c.last)
                .bind(c.email.clone())
                .bind(c.confirmed.clone())
                .bind(c.phone.clone())
                .bind(c.city)
                .bind(c.country)
                .bind(c.created.clone())
                .bind(c.created.clone());
        }
        query.execute(&mut *tx).await?;
    }
    for chunk in order_rows.chunks(ROWS_PER_INSERT) {
        let q = format!(
            "INSERT INTO orders (id, customer_id, title, robot_model, quantity, amount, status, ordered_at, updated_at) VALUES {}",
            placeholders(backend, chunk.len(), 9)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(q));
        for o in chunk {
            query = query
                .bind(o.id)
                .bind(o.customer)
                .bind(o.title.clone())
                .bind(o.model)
                .bind(o.quantity)
                .bind(o.amount.clone())
                .bind(o.status)
                .bind(o.ordered.clone())
                .bind(o.ordered.clone());
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    conn.close().await?;
    Ok(g)
}

/// The rows of the demo, deterministic for `seed`.
fn rows(customers: u64, orders: u64, seed: u64) -> (Generated, Vec<Customer>, Vec<Order>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut g = Generated {
        customers,
        orders,
        ..Default::default()
    };
    let mut emails = HashSet::new();
    let mut out = Vec::new();
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
        out.push(Customer {
            id: id as i64,
            company,
            first,
            last,
            email,
            confirmed,
            phone,
            city,
            country,
            created,
        });
    }
    let mut order_rows = Vec::new();
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
        order_rows.push(Order {
            id: id as i64,
            customer,
            title: format!("Order #{id}: {qty}x {model}"),
            model,
            quantity: i64::from(qty),
            amount: format!("{}.00", u64::from(price) * u64::from(qty)),
            status,
            ordered,
        });
    }
    (g, out, order_rows)
}
