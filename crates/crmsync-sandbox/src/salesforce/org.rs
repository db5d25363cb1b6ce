//! The org's data: the schema (standard objects plus custom fields), every record ever
//! created (deleted and merged-away ones stay, flagged `IsDeleted`, for `queryAll` and
//! getDeleted) and the id counter. Invariant: a record's `fields` always holds every field
//! of its object (unset ones as `null`) under the field's canonical name.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::clock;
use super::ids;
use super::schema::{self, FieldType, ObjectDef};

/// One record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    pub fields: BTreeMap<String, Value>,
    /// When it was deleted or merged away (Salesforce datetime), for getDeleted.
    #[serde(default)]
    pub deleted_at: Option<String>,
}

impl Record {
    pub fn get(&self, field: &str) -> &Value {
        self.fields.get(field).unwrap_or(&Value::Null)
    }

    pub fn is_deleted(&self) -> bool {
        self.get("IsDeleted") == &Value::Bool(true)
    }

    pub fn id(&self) -> &str {
        self.get("Id").as_str().unwrap_or_default()
    }
}

/// A paged query result waiting to be fetched (`nextRecordsUrl`).
#[derive(Debug, Clone)]
pub(crate) struct Locator {
    pub rows: Vec<Value>,
    pub batch: usize,
}

/// Most query locators kept at once; older ones answer `INVALID_QUERY_LOCATOR`.
const MAX_LOCATORS: usize = 100;

/// Schema and records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Org {
    pub objects: Vec<ObjectDef>,
    /// Object name → id → record.
    pub records: BTreeMap<String, BTreeMap<String, Record>>,
    pub next_id: u64,
    pub created_at: String,
    #[serde(skip)]
    pub locators: BTreeMap<u64, Locator>,
    #[serde(skip)]
    pub next_locator: u64,
    /// (object, field) → lower-cased value → ids ever stored with it, for the unique and
    /// External ID text fields: the candidates of [`Org::matching`], which checks each against
    /// the record itself (a stale entry is harmless, a missing one is not, so every insert goes
    /// through [`Org::put`]). Rebuilt by [`Org::reindex`] after loading.
    #[serde(skip)]
    pub key_index: HashMap<(String, String), HashMap<String, BTreeSet<String>>>,
}

impl Org {
    pub fn new() -> Self {
        let now = clock::now();
        Self {
            objects: schema::standard_objects(),
            records: BTreeMap::new(),
            // Start from the clock so ids differ across resets and restarts.
            next_id: u64::try_from(now.timestamp()).unwrap_or(0) * 1000,
            created_at: clock::format(now),
            locators: BTreeMap::new(),
            next_locator: 1,
            key_index: HashMap::new(),
        }
    }

    /// The same schema with no data (custom fields are dropped too).
    pub fn emptied(&self) -> Self {
        let mut fresh = Self::new();
        fresh.next_id = fresh.next_id.max(self.next_id);
        fresh
    }

    pub fn object(&self, name: &str) -> Option<&ObjectDef> {
        self.objects
            .iter()
            .find(|o| o.name.eq_ignore_ascii_case(name))
    }

    pub fn object_mut(&mut self, name: &str) -> Option<&mut ObjectDef> {
        self.objects
            .iter_mut()
            .find(|o| o.name.eq_ignore_ascii_case(name))
    }

    /// The object an id belongs to, by key prefix.
    pub fn object_of_id(&self, id: &str) -> Option<&ObjectDef> {
        let prefix = id.get(..3)?;
        self.objects.iter().find(|o| o.key_prefix == prefix)
    }

    pub fn mint_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        ids::mint(prefix, self.next_id)
    }

    pub fn table(&self, object: &str) -> Option<&BTreeMap<String, Record>> {
        self.records.get(object)
    }

    /// Stores `record` as `id` of `object`, indexing its unique and External ID values.
    pub fn put(&mut self, object: &str, id: String, record: Record) {
        self.index(object, &id, &record);
        self.table_mut(object).insert(id, record);
    }

    /// Indexes every stored record again (after loading a state file).
    pub fn reindex(&mut self) {
        self.key_index.clear();
        let all: Vec<(String, String, Record)> = self
            .records
            .iter()
            .flat_map(|(o, t)| t.iter().map(|(id, r)| (o.clone(), id.clone(), r.clone())))
            .collect();
        for (object, id, record) in all {
            self.index(&object, &id, &record);
        }
    }

    fn index(&mut self, object: &str, id: &str, record: &Record) {
        let Some(def) = self.objects.iter().find(|o| o.name == object) else {
            return;
        };
        let keyed: Vec<String> = def
            .fields
            .iter()
            .filter(|f| f.unique || f.external_id)
            .map(|f| f.name.clone())
            .collect();
        for field in keyed {
            if let Value::String(v) = record.get(&field) {
                self.key_index
                    .entry((object.to_owned(), field))
                    .or_default()
                    .entry(v.to_lowercase())
                    .or_default()
                    .insert(id.to_owned());
            }
        }
    }

    pub fn table_mut(&mut self, object: &str) -> &mut BTreeMap<String, Record> {
        self.records.entry(object.to_owned()).or_default()
    }

    pub fn record(&self, object: &str, id: &str) -> Option<&Record> {
        self.records.get(object)?.get(id)
    }

    /// A live (not deleted) record anywhere in the org.
    pub fn live(&self, id: &str) -> Option<&Record> {
        let object = self.object_of_id(id)?;
        self.record(&object.name, id).filter(|r| !r.is_deleted())
    }

    /// Ids of live records of `object` whose `field` equals `value` (case-insensitively for
    /// text, as Salesforce external ids are), in id order.
    pub fn matching(&self, object: &str, field: &str, value: &str) -> Vec<String> {
        let Some(table) = self.records.get(object) else {
            return Vec::new();
        };
        let matches = |r: &Record| {
            !r.is_deleted()
                && match r.get(field) {
                    Value::String(s) => s.eq_ignore_ascii_case(value),
                    Value::Null => false,
                    Value::Bool(b) => value.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
                    other => other
                        .as_f64()
                        .is_some_and(|n| value.parse::<f64>().ok() == Some(n)),
                }
        };
        let keyed = self
            .objects
            .iter()
            .find(|o| o.name == object)
            .and_then(|o| o.field(field))
            .is_some_and(|f| (f.unique || f.external_id) && f.ty.is_text());
        if keyed {
            // Text key fields hold only strings, which the index covers.
            return self
                .key_index
                .get(&(object.to_owned(), field.to_owned()))
                .and_then(|by| by.get(&value.to_lowercase()))
                .into_iter()
                .flatten()
                .filter(|id| table.get(*id).is_some_and(matches))
                .cloned()
                .collect();
        }
        table
            .values()
            .filter(|r| matches(r))
            .map(|r| r.id().to_owned())
            .collect()
    }

    /// A record with every field of `def` set to its empty value.
    pub fn blank(def: &ObjectDef) -> BTreeMap<String, Value> {
        def.fields
            .iter()
            .map(|f| {
                let empty = if f.ty == FieldType::Boolean {
                    Value::Bool(false)
                } else {
                    Value::Null
                };
                (f.name.clone(), empty)
            })
            .collect()
    }

    /// Keeps a paged result and returns its locator number.
    pub fn keep_locator(&mut self, rows: Vec<Value>, batch: usize) -> u64 {
        let number = self.next_locator;
        self.next_locator += 1;
        self.locators.insert(number, Locator { rows, batch });
        while self.locators.len() > MAX_LOCATORS {
            self.locators.pop_first();
        }
        number
    }

    /// Live and deleted record counts per object, for `/_sandbox/stats`.
    pub fn counts(&self) -> Value {
        let mut out = Map::new();
        for def in &self.objects {
            let table = self.records.get(&def.name);
            let total = table.map_or(0, BTreeMap::len);
            let deleted = table.map_or(0, |t| t.values().filter(|r| r.is_deleted()).count());
            out.insert(
                def.name.clone(),
                serde_json::json!({"live": total - deleted, "deleted": deleted}),
            );
        }
        Value::Object(out)
    }
}
