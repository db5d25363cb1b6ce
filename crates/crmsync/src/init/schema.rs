//! What `crmsync init` reads from the app database, as plain data: per table what
//! [`crmsync_store::Source::describe`] and [`crmsync_store::Introspect`] said. The command
//! fills it (the only I/O); the proposal is built from it alone, so the builder is tested
//! without a database. [`columns_to_sample`] tells the command which columns' distinct values
//! the proposal lists, so only those are read.

use super::names::{Kind, kind_of_table, status_like};
use crmsync_store::{DistinctValues, ForeignKey, TableInfo};
use std::collections::BTreeMap;

/// How many distinct values of a status-like column are listed (a map skeleton beyond that
/// is no longer a status map one fills in by hand).
pub const MAX_VALUES: usize = 50;

/// One table or view as read.
#[derive(Debug, Clone)]
pub struct TableSnapshot {
    /// Columns, primary key and kind (table or view).
    pub info: TableInfo,
    pub foreign_keys: Vec<ForeignKey>,
    /// Column -> the labels of its enumerated type.
    pub declared: BTreeMap<String, Vec<String>>,
    /// Column -> its distinct values, for the columns [`columns_to_sample`] named.
    pub values: BTreeMap<String, DistinctValues>,
}

impl TableSnapshot {
    /// A table as described, without keys, enum types or sampled values (tests fill those).
    pub fn new(info: TableInfo) -> Self {
        TableSnapshot {
            info,
            foreign_keys: Vec::new(),
            declared: BTreeMap::new(),
            values: BTreeMap::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// The kind this table is proposed as, by its name.
    pub fn kind(&self) -> Option<Kind> {
        kind_of_table(&self.info.name)
    }
}

/// The columns of `table` whose distinct values the proposal lists: the status-like ones
/// (by name, or of an enumerated type) of a table that is proposed as a CRM object. Other
/// tables are never read beyond their catalog.
pub fn columns_to_sample(
    info: &TableInfo,
    declared: &BTreeMap<String, Vec<String>>,
) -> Vec<String> {
    if kind_of_table(&info.name).is_none() {
        return Vec::new();
    }
    info.columns
        .iter()
        .filter(|c| status_like(&c.name) || declared.contains_key(&c.name))
        .filter(|c| !c.primary_key)
        .map(|c| c.name.clone())
        .collect()
}

/// Test schemas, built without a database.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::TableSnapshot;
    use crmsync_store::{ColumnInfo, DistinctValues, ForeignKey, TableInfo, TableKind};

    /// A column: `spec` is `name type` with flags `pk`, `notnull` after it.
    pub fn col(spec: &str) -> ColumnInfo {
        let mut parts = spec.split_whitespace();
        let name = parts.next().unwrap_or_default().to_string();
        let data_type = parts.next().unwrap_or("text").to_string();
        let flags: Vec<&str> = parts.collect();
        ColumnInfo {
            name,
            data_type,
            nullable: !flags.contains(&"notnull") && !flags.contains(&"pk"),
            generated: false,
            has_default: flags.contains(&"pk"),
            primary_key: flags.contains(&"pk"),
        }
    }

    pub fn table(name: &str, columns: &[&str]) -> TableSnapshot {
        TableSnapshot::new(TableInfo {
            name: name.into(),
            kind: TableKind::Table,
            columns: columns.iter().map(|c| col(c)).collect(),
        })
    }

    pub fn fk(column: &str, table: &str) -> ForeignKey {
        ForeignKey {
            columns: vec![column.into()],
            table: table.into(),
            referenced: vec!["id".into()],
        }
    }

    pub fn values(items: &[&str], more: bool) -> DistinctValues {
        DistinctValues {
            values: items.iter().map(|s| s.to_string()).collect(),
            more,
        }
    }

    /// A Rails application's schema: accounts, users, orders, order_lines, products and the
    /// framework's bookkeeping tables.
    pub fn rails() -> Vec<TableSnapshot> {
        let accounts = table(
            "accounts",
            &[
                "id bigint pk",
                "name varchar notnull",
                "domain varchar",
                "created_at timestamp notnull",
                "updated_at timestamp notnull",
            ],
        );
        let mut users = table(
            "users",
            &[
                "id bigint pk",
                "email varchar notnull",
                "first_name varchar",
                "last_name varchar",
                "phone varchar",
                "country varchar",
                "email_verified_at timestamp",
                "account_id bigint",
                "hubspot_id varchar",
                "encrypted_password varchar notnull",
                "created_at timestamp notnull",
                "updated_at timestamp notnull",
            ],
        );
        users.foreign_keys = vec![fk("account_id", "accounts")];
        let mut orders = table(
            "orders",
            &[
                "id bigint pk",
                "user_id bigint notnull",
                "account_id bigint",
                "total_cents integer notnull",
                "tax_cents integer",
                "state varchar notnull",
                "created_at timestamp notnull",
                "updated_at timestamp notnull",
            ],
        );
        orders.foreign_keys = vec![fk("account_id", "accounts"), fk("user_id", "users")];
        orders.values.insert(
            "state".into(),
            values(&["paid", "pending", "shipped"], false),
        );
        let mut lines = table(
            "order_lines",
            &[
                "id bigint pk",
                "order_id bigint notnull",
                "product_id bigint notnull",
                "quantity integer notnull",
                "unit_price_cents integer notnull",
                "created_at timestamp notnull",
                "updated_at timestamp notnull",
            ],
        );
        lines.foreign_keys = vec![fk("order_id", "orders"), fk("product_id", "products")];
        vec![
            table("ar_internal_metadata", &["key varchar pk", "value varchar"]),
            accounts,
            lines,
            orders,
            table("products", &["id bigint pk", "name varchar"]),
            table("schema_migrations", &["version varchar pk"]),
            users,
        ]
    }
}
