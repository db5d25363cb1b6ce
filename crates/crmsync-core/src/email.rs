//! E-mail syntax as CRMs accept it, and the `normalize_email` transform. The rules are the
//! RFC 5321/5322 `dot-atom@domain` core, narrowed to what HubSpot and Salesforce take in
//! practice (every difference from the RFCs is listed in `docs/mapping.md`): no display names,
//! quoted local parts, comments or IP-literal domains; an ASCII local part of at most 64
//! characters; a domain of at least two labels of letters, digits and hyphens (Unicode letters
//! allowed for internationalised domains) ending in an alphabetic or `xn--` top-level label;
//! at most 254 characters in all.

/// Characters RFC 5322 allows in a dot-atom besides letters and digits.
const ATEXT: &str = "!#$%&'*+/=?^_`{|}~-";

/// Why `address` is not acceptable, as a short phrase that follows the address in a message.
pub fn check(address: &str) -> Result<(), String> {
    if address.is_empty() {
        return Err("is empty".into());
    }
    if address.chars().count() > 254 {
        return Err("is longer than 254 characters".into());
    }
    if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace".into());
    }
    if address.contains('<') || address.contains('>') {
        return Err("must be a bare address without a display name".into());
    }
    let Some((local, domain)) = address.split_once('@') else {
        return Err("has no `@`".into());
    };
    if domain.contains('@') {
        return Err("has more than one `@`".into());
    }
    check_local(local)?;
    check_domain(domain)
}

fn check_local(local: &str) -> Result<(), String> {
    if local.is_empty() {
        return Err("has nothing before the `@`".into());
    }
    if local.len() > 64 {
        return Err("has more than 64 characters before the `@`".into());
    }
    if local.starts_with('"') {
        return Err("has a quoted local part, which CRMs reject".into());
    }
    if let Some(c) = local
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '.' || ATEXT.contains(*c)))
    {
        return Err(format!("contains `{c}` before the `@`"));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("has a misplaced dot before the `@`".into());
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<(), String> {
    if domain.starts_with('[') {
        return Err("has an IP-literal domain, which CRMs reject".into());
    }
    if domain.is_empty() {
        return Err("has no domain after the `@`".into());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err(format!("domain `{domain}` has no dot"));
    }
    for label in &labels {
        if label.is_empty() {
            return Err(format!("domain `{domain}` has an empty label"));
        }
        if label.len() > 63 {
            return Err(format!("domain `{domain}` has a label over 63 characters"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "domain `{domain}` has a label starting or ending with `-`"
            ));
        }
        if let Some(c) = label.chars().find(|c| !(c.is_alphanumeric() || *c == '-')) {
            return Err(format!("domain `{domain}` contains `{c}`"));
        }
    }
    let tld = labels[labels.len() - 1];
    let alphabetic = tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic);
    let punycode = tld.len() > 4 && tld.to_ascii_lowercase().starts_with("xn--");
    if !(alphabetic || punycode) {
        return Err(format!("domain `{domain}` has no valid top-level label"));
    }
    Ok(())
}

/// The `normalize_email` transform: surrounding blanks removed and the domain lowercased
/// (domains are case-insensitive; the local part, strictly, is not, so it is kept).
pub fn normalize(value: &str) -> String {
    let v = value.trim();
    match v.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_lowercase()),
        None => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::{check, normalize};
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_addresses() {
        for a in [
            "ada@example.com",
            "a.b+tag@sub.example.co.uk",
            "x_y@robots.io",
            "o'brien@example.ie",
            "user@bücher.de",
            "user@example.xn--p1ai",
            "a-b@my-host.example",
        ] {
            assert_eq!(check(a), Ok(()), "{a}");
        }
    }

    #[test]
    fn rejects_what_crms_reject() {
        for a in [
            "",
            "plain",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "Ada <ada@x.com>",
            "a@[127.0.0.1]",
            "a@b.c1",
            "a@example.",
            ".a@x.com",
            "a..b@x.com",
            "\"a b\"@x.com",
            "jürgen@x.de",
            "a@-x.com",
            "a@x..com",
            "a(comment)@x.com",
        ] {
            assert!(check(a).is_err(), "{a}");
        }
        let long_local = format!("{}@x.com", "a".repeat(65));
        assert!(check(&long_local).is_err());
        let long = format!("a@{}.com", "b".repeat(260));
        assert!(check(&long).is_err());
    }

    #[test]
    fn normalize_trims_and_lowercases_the_domain_only() {
        assert_eq!(normalize("  Ada.L@Example.COM "), "Ada.L@example.com");
        assert_eq!(normalize("no-at-sign "), "no-at-sign");
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,80}") {
            let _ = check(&s);
            let _ = normalize(&s);
        }

        #[test]
        fn normalize_is_idempotent(s in ".{0,40}") {
            let once = normalize(&s);
            prop_assert_eq!(normalize(&once), once.clone());
        }

        #[test]
        fn normalizing_never_breaks_a_valid_address(local in "[a-zA-Z0-9_+-]{1,10}", dom in "[a-zA-Z]{1,10}", tld in "[a-zA-Z]{2,5}") {
            let a = format!(" {local}@{dom}.{tld} ");
            prop_assert_eq!(check(&normalize(&a)), Ok(()));
        }
    }
}
