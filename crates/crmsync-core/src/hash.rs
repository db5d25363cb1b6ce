//! The payload hash kept on each link: equal hashes mean "nothing to send". Computed over a
//! canonical form (sorted keys) so the same content always hashes the same. Also the mapping
//! fingerprint of a sync: equal fingerprints mean "the config maps rows as it did".

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Hex SHA-256 of the properties and association targets of one record.
pub fn payload_hash(
    properties: &BTreeMap<String, String>,
    associations: &BTreeMap<String, String>,
) -> String {
    let mut h = Sha256::new();
    for (k, v) in properties {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([1]);
    }
    h.update([2]);
    for (k, v) in associations {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([1]);
    }
    hex::encode(h.finalize())
}

/// Hex SHA-256 of everything in `sync`'s config that decides what a row becomes in the CRM
/// (fields, transforms, maps, rules, associations, ...). Its `Debug` form is canonical: every
/// map in a `SyncConfig` is a `BTreeMap`. A change of any sync-level key changes it; that costs
/// one re-plan (a read of the table, no API call for records whose payload stays the same).
pub fn mapping_fingerprint(sync: &crate::config::SyncConfig) -> String {
    let mut h = Sha256::new();
    h.update(format!("{sync:?}").as_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differs_when_any_part_differs() {
        let p = BTreeMap::from([("a".to_string(), "1".to_string())]);
        let q = BTreeMap::from([("a".to_string(), "2".to_string())]);
        let none = BTreeMap::new();
        let assoc = BTreeMap::from([("companies".to_string(), "7".to_string())]);
        assert_eq!(payload_hash(&p, &none), payload_hash(&p.clone(), &none));
        assert_ne!(payload_hash(&p, &none), payload_hash(&q, &none));
        assert_ne!(payload_hash(&p, &none), payload_hash(&p, &assoc));
        // Separators keep ("ab","") apart from ("a","b").
        let x = BTreeMap::from([("ab".to_string(), String::new())]);
        let y = BTreeMap::from([("a".to_string(), "b".to_string())]);
        assert_ne!(payload_hash(&x, &none), payload_hash(&y, &none));
    }
}
