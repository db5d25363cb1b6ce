//! Salesforce record ids: 15-character case-sensitive bodies with an 18-character case-safe
//! suffix (FACTS 3.11). Invariant: every id this sandbox hands out is 18 characters, starts
//! with its object's key prefix and carries a correct checksum; minted ids sort (as strings)
//! in the order they were minted.

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const SUFFIX: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// The three checksum characters of a 15-character id.
pub(crate) fn checksum(id15: &str) -> String {
    let bytes = id15.as_bytes();
    let mut out = String::with_capacity(3);
    for chunk in 0..3 {
        let mut bits = 0usize;
        for i in 0..5 {
            if bytes
                .get(chunk * 5 + i)
                .is_some_and(|b| b.is_ascii_uppercase())
            {
                bits |= 1 << i;
            }
        }
        out.push(char::from(SUFFIX[bits]));
    }
    out
}

/// A 15-character id made 18 characters long.
pub(crate) fn to18(id15: &str) -> String {
    format!("{id15}{}", checksum(id15))
}

/// The `n`-th id of an object with key `prefix` (3 characters).
pub(crate) fn mint(prefix: &str, n: u64) -> String {
    let mut digits = [b'0'; 12];
    let mut rest = n;
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(rest % 62) as usize];
        rest /= 62;
    }
    let body: String = digits.iter().map(|&b| char::from(b)).collect();
    to18(&format!("{prefix}{body}"))
}

/// The canonical 18-character form of a 15- or 18-character id, or `None` if it is not
/// shaped like an id. An 18-character id must carry the right checksum for its body.
pub(crate) fn normalize(raw: &str) -> Option<String> {
    if !raw.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    match raw.len() {
        15 => Some(to18(raw)),
        18 => {
            let body = raw.get(..15)?;
            let suffix = raw.get(15..)?;
            (checksum(body).eq_ignore_ascii_case(suffix)).then(|| to18(body))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_the_published_algorithm() {
        // 001000000000001: no uppercase letters → "AAA".
        assert_eq!(to18("001000000000001"), "001000000000001AAA");
        // Uppercase in the first position of the first chunk sets bit 0 → 'B'.
        assert_eq!(checksum("A0000000000000a"), "BAA");
        let id = mint("003", 12345);
        assert_eq!(id.len(), 18);
        assert!(id.starts_with("003"));
        assert_eq!(normalize(&id[..15]).as_deref(), Some(id.as_str()));
    }

    #[test]
    fn minted_ids_sort_in_mint_order() {
        let a = mint("001", 61);
        let b = mint("001", 62);
        let c = mint("001", 3_844_000);
        assert!(a < b && b < c, "{a} {b} {c}");
    }

    #[test]
    fn malformed_ids_are_rejected() {
        assert_eq!(normalize("001xyz"), None);
        assert_eq!(normalize("001000000000001ZZZ"), None);
        assert_eq!(normalize("001-00000000001AAA"), None);
    }
}
