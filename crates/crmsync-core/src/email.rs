//! E-mail syntax as CRMs accept it: RFC 5322 addr-spec syntax (via `email_address`), narrowed
//! to what HubSpot and Salesforce take in practice: no display name, a domain with a dot and a
//! top-level label of at least two letters, no IP-literal domains, at most 254 characters.

use email_address::EmailAddress;

/// Why an address is not acceptable, as a short sentence.
pub fn check(address: &str) -> Result<(), String> {
    if address.len() > 254 {
        return Err("is longer than 254 characters".into());
    }
    if address.chars().any(char::is_whitespace) {
        return Err("contains whitespace".into());
    }
    let parsed: EmailAddress = address
        .parse()
        .map_err(|e| format!("is not an e-mail address ({e})"))?;
    if parsed.display_part() != "" || parsed.email() != address {
        return Err("must be a bare address without a display name".into());
    }
    let domain = parsed.domain();
    if domain.starts_with('[') {
        return Err("has an IP-literal domain, which CRMs reject".into());
    }
    let Some((_, tld)) = domain.rsplit_once('.') else {
        return Err(format!("domain `{domain}` has no dot"));
    };
    if tld.len() < 2 || !tld.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(format!("domain `{domain}` has no valid top-level label"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts_ordinary_addresses() {
        for a in [
            "ada@example.com",
            "a.b+tag@sub.example.co.uk",
            "x_y@robots.io",
        ] {
            assert!(check(a).is_ok(), "{a}");
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
        ] {
            assert!(check(a).is_err(), "{a}");
        }
    }
}
